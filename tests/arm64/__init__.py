"""arm64 check: the edge runtime's real aarch64 wheels, run under qemu in a Debian arm64 root."""
