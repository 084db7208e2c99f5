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

mkdir -p "$UNIT_DIR"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for unit in systemd/*.service; do
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
