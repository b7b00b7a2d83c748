#!/bin/sh
# Install EcoLens on a device as systemd services.
#   sudo systemd/install.sh [--prefix /opt/ecolens] [--no-start]
# Creates the `ecolens` system user (group video), a virtual environment with the edge extra,
# /etc/ecolens/edge.toml, api.toml and api.env (kept if present), the daemon and API units,
# then enables and starts them.
set -eu

PREFIX=/opt/ecolens
START=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --no-start) START=no; shift ;;
        *) echo "usage: $0 [--prefix DIR] [--no-start]" >&2; exit 2 ;;
    esac
done

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
# One word per unit.
UNITS="ecolens-edge.service ecolens-api.service"

[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }

if ! id ecolens >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /var/lib/ecolens --shell /usr/sbin/nologin \
        --groups video ecolens
fi

# On Raspberry Pi OS, picamera2 comes from apt: let the venv see system packages.
python3 -m venv --system-site-packages "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet "$REPO[edge]"

# 0755: the API's dynamic user must reach api.toml; edge.toml (MQTT password) stays 0640.
install -d -m 0755 -o root -g root /etc/ecolens
if [ ! -e /etc/ecolens/edge.toml ]; then
    install -m 0640 -o root -g ecolens "$HERE/edge.example.toml" /etc/ecolens/edge.toml
fi
# The API runs as a dynamic user: its settings are world-readable, its secrets root-only.
if [ ! -e /etc/ecolens/api.toml ]; then
    install -m 0644 -o root -g root "$HERE/api.example.toml" /etc/ecolens/api.toml
fi
if [ ! -e /etc/ecolens/api.env ]; then
    install -m 0600 -o root -g root "$HERE/ecolens-api.env.example" /etc/ecolens/api.env
fi

for unit in $UNITS; do
    sed "s#/opt/ecolens/venv#$PREFIX/venv#g" "$HERE/$unit" > "/etc/systemd/system/$unit"
    chmod 0644 "/etc/systemd/system/$unit"
done
systemctl daemon-reload
"$PREFIX/venv/bin/ecolens" run --config /etc/ecolens/edge.toml --validate-config >/dev/null
if [ "$START" = yes ]; then
    # shellcheck disable=SC2086
    systemctl enable --now $UNITS
    echo "started: $UNITS (journalctl -u ecolens-edge -f)"
else
    echo "installed: $UNITS (not started)"
fi
