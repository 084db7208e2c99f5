#!/usr/bin/env bash
# Install genrecast's systemd units for this checkout, and the dashboard's config where there is none yet; enables
# nothing. The units name /opt/genrecast: a checkout elsewhere gets its own path written in.
#   UNIT_DIR    where the units go (default /etc/systemd/system)
#   CONFIG_DIR  where dashboard.toml goes (default /etc/genrecast; root-only, 0640: it will hold the token)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
CONFIG_DIR=${CONFIG_DIR:-/etc/genrecast}

# The units hide /home, /root and /run/user from the service (ProtectHome=yes): a checkout there, or a venv made
# from an interpreter there (pyenv's), cannot start (203/EXEC), so say so now rather than at the first start.
hidden() { case "$1/" in /home/*|/root/*|/run/user/*) return 0 ;; *) return 1 ;; esac; }
python_home=$(sed -n 's/^home = //p' .venv/pyvenv.cfg 2>/dev/null || true)
# where they really are: /opt/genrecast may be a link into /home
for path in "$(pwd -P)" ${python_home:+"$(readlink -f "$python_home")"}; do
    if hidden "$path"; then
        echo "setup: warning: $path is under /home, /root or /run/user, which the units hide from the service" \
             "(ProtectHome=yes); use a checkout in /opt and a system python3 (PYTHON=/usr/bin/python3)" >&2
    fi
done

mkdir -p "$UNIT_DIR"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for unit in systemd/*.service systemd/*.timer; do
    sed "s|/opt/genrecast|$ROOT|g" "$unit" > "$tmp"
    install -m 0644 "$tmp" "$UNIT_DIR/$(basename "$unit")"
done
if [ ! -e "$CONFIG_DIR/dashboard.toml" ]; then
    install -D -m 0640 systemd/dashboard.toml.example "$CONFIG_DIR/dashboard.toml"
fi
if [ -d /run/systemd/system ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then
    systemctl daemon-reload
fi
echo "setup: systemd units in $UNIT_DIR (enable with: systemctl enable --now genrecast-dashboard, see docs/deployment.md)"
