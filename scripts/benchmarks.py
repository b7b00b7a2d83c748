"""Every figure the README and docs quote, from one run on one machine, into one file.

    python scripts/benchmarks.py                  # full settings (the README's figures)
    python scripts/benchmarks.py --quick          # short settings: proves the chain works
    python scripts/benchmarks.py --only api,daemon --out bench.txt

Prints (and writes to --out, default benchmarks-<UTC time>.txt) the machine line (CPU, int8
dot-product instructions, load average), the int8 context (the reference model's MACs and its
single-image LiteRT latency on one thread, scripts/compare_latency.py) and then each
`ecolens benchmark NAME` in turn, one at a time so they never compete for the CPU, each with
its wall time, and the machine line again at the end. Run it on a quiet machine: every
benchmark states the load average it saw, and ratios come from baselines in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

SCRIPTS = Path(__file__).resolve().parent

# benchmark -> (full settings: what the README quotes, quick settings: a short check)
SETTINGS: dict[str, tuple[list[str], list[str]]] = {
    "models": ([], ["--count", "10", "--rounds", "2"]),
    "daemon": ([], ["--runs", "1", "--idle-seconds", "3"]),
    "api": (
        ["--clients", "1,8,32"],
        ["--clients", "8", "--sizes", "640x480", "--seconds", "2", "--repeats", "1"],
    ),
    "coldstart": ([], ["--runs", "3"]),
    "fleet": ([], ["--results", "2000", "--runs", "1", "--rows", "50000", "--query-runs", "1"]),
}
CONTEXT = (["--rounds", "7", "--count", "40"], ["--rounds", "2", "--count", "10"])


def tee(command: Sequence[str], out: TextIO) -> int:
    """Run ``command``, copying its output line by line to the terminal and the file."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        out.write(line)
        out.flush()
    return process.wait()


def say(text: str, out: TextIO) -> None:
    print(text, flush=True)
    out.write(text + "\n")
    out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short settings (minutes, not an hour)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(SETTINGS)}")
    parser.add_argument("--out", type=Path, help="output file (default: benchmarks-<UTC time>.txt)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        print(
            f"error: --only: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}",
            file=sys.stderr,
        )
        return 2
    stamp = datetime.now(timezone.utc)
    out_path = args.out or Path(f"benchmarks-{stamp:%Y%m%dT%H%M%SZ}.txt")
    from ecolens.bench.machine import header
    from ecolens.models import reference_tflite

    failed = []
    started = time.monotonic()
    with out_path.open("w") as out:
        settings = "quick" if args.quick else "full"
        say(f"EcoLens benchmarks, {settings} settings, started {stamp:%Y-%m-%d %H:%M} UTC", out)
        say(header(), out)
        say("\n== int8 context: the reference model's MACs and single-image latency, 1 thread", out)
        context = CONTEXT[1] if args.quick else CONTEXT[0]
        tee([sys.executable, str(SCRIPTS / "compare_latency.py"), str(reference_tflite()), *context], out)
        for name in names:
            extra = SETTINGS[name][1] if args.quick else SETTINGS[name][0]
            command = [sys.executable, "-m", "ecolens.cli", "benchmark", name, *extra]
            say(f"\n== ecolens benchmark {' '.join([name, *extra])}", out)
            began = time.monotonic()
            code = tee(command, out)
            say(f"-- {name}: exit {code}, {time.monotonic() - began:.0f} s", out)
            if code:
                failed.append(name)
        say(f"\nat the end: {header()}", out)
        say(f"total {time.monotonic() - started:.0f} s; failed: {', '.join(failed) or 'none'}", out)
    print(f"written to {out_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
