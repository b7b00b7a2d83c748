#!/bin/sh
# Install the EcoLens broker settings on the fleet server (Debian/Ubuntu/Raspberry Pi OS
# Mosquitto 2.x package layout).
#   sudo systemd/mosquitto/install.sh [--etc /etc/mosquitto] [--no-restart]
#   sudo systemd/mosquitto/install.sh --add-user NAME     # asks for the password
# Installs conf.d/ecolens.conf (always: it is ours) and ecolens.acl (kept if present, it may
# hold your aggregator users), creates an empty password file, checks that mosquitto.conf
# reads conf.d and that the TLS certificate is in place, then restarts Mosquitto.
set -eu

ETC=/etc/mosquitto
RESTART=yes
ADD_USER=
while [ $# -gt 0 ]; do
    case "$1" in
        --etc) ETC="$2"; shift 2 ;;
        --no-restart) RESTART=no; shift ;;
        --add-user) ADD_USER="$2"; shift 2 ;;
        *) echo "usage: $0 [--etc DIR] [--no-restart] | --add-user NAME" >&2; exit 2 ;;
    esac
done

HERE="$(cd "$(dirname "$0")" && pwd)"
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }
command -v mosquitto >/dev/null || { echo "Mosquitto is not installed: apt-get install mosquitto" >&2; exit 1; }
getent group mosquitto >/dev/null || { echo "no 'mosquitto' group: is the Debian mosquitto package installed?" >&2; exit 1; }

if [ -n "$ADD_USER" ]; then
    # A bin's user name must be its device_id (the ACL lets it write ecolens/<name>/# only).
    case "$ADD_USER" in
        */*|*+*|*'#'*|'') echo "user name must be one topic level (no / + #)" >&2; exit 2 ;;
    esac
    mosquitto_passwd "$ETC/ecolens.passwd" "$ADD_USER"
    echo "added $ADD_USER; reload Mosquitto to apply: systemctl reload mosquitto"
    exit 0
fi

install -d -m 0755 "$ETC/conf.d"
sed "s#/etc/mosquitto/#$ETC/#g" "$HERE/ecolens.conf" > "$ETC/conf.d/ecolens.conf"
chmod 0644 "$ETC/conf.d/ecolens.conf"
if [ ! -e "$ETC/ecolens.acl" ]; then
    install -m 0644 "$HERE/ecolens.acl" "$ETC/ecolens.acl"
fi
if [ ! -e "$ETC/ecolens.passwd" ]; then
    install -m 0640 -g mosquitto /dev/null "$ETC/ecolens.passwd"
fi

problems=0
if ! grep -Eq "^[[:space:]]*include_dir[[:space:]]+$ETC/conf.d/?[[:space:]]*$" "$ETC/mosquitto.conf" 2>/dev/null; then
    echo "warning: $ETC/mosquitto.conf does not read $ETC/conf.d: add the line 'include_dir $ETC/conf.d'" >&2
    problems=1
fi
for file in certs/ecolens-broker.crt certs/ecolens-broker.key; do
    if [ ! -r "$ETC/$file" ]; then
        echo "warning: $ETC/$file is missing: the TLS listener needs it (docs/fleet.md, 'The broker')" >&2
        problems=1
    fi
done
if [ ! -s "$ETC/ecolens.passwd" ]; then
    echo "next: add the aggregator and each bin: $0 --add-user ecolens-aggregator; $0 --add-user <device_id>"
fi

if [ "$RESTART" = yes ]; then
    [ "$problems" -eq 0 ] || { echo "not restarting Mosquitto until the warnings above are fixed" >&2; exit 1; }
    systemctl restart mosquitto
    echo "Mosquitto restarted with $ETC/conf.d/ecolens.conf"
else
    echo "installed $ETC/conf.d/ecolens.conf and $ETC/ecolens.acl (Mosquitto not restarted)"
fi
