#!/usr/bin/env bash
# A real Home Assistant core for tests/test_home_assistant.py, in its own venv under .cache/ (never the project's
# .venv: it pins its own versions of aiohttp, paho-mqtt, ...), made once and reused. Idempotent.
#   scripts/setup_ha.sh          install if missing, then print the venv's path
# HA 2025.4.4 is the newest release that installs on Python 3.13.0 (later ones need 3.13.2 or newer).
set -euo pipefail
cd "$(dirname "$0")/.."

HA_VERSION=2025.4.4
UV_VERSION=0.6.10  # what homeassistant==2025.4.4 requires
HA_PYTHON=${HA_PYTHON:-/root/.pyenv/versions/3.13.0/bin/python3}
VENV=.cache/ha/$HA_VERSION
stamp=$VENV/.genrecast-ha-installed
# The integrations the test configures (configuration.yaml, and MQTT through its config flow); Home Assistant's
# always-loaded ones are added by ha_requirements.py.
DOMAINS="http api config onboarding websocket_api mqtt"
want="$HA_VERSION $UV_VERSION $DOMAINS $(sha256sum scripts/ha_requirements.py | cut -d' ' -f1)"

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    if [ ! -x "$HA_PYTHON" ]; then
        echo "setup_ha: no Python 3.13 at $HA_PYTHON (set HA_PYTHON)" >&2
        exit 2
    fi
    echo "setup_ha: installing homeassistant==$HA_VERSION into $VENV" >&2
    rm -rf "$VENV"
    "$HA_PYTHON" -m venv "$VENV"
    # uv (Home Assistant's own installer, the version it pins) fetches in parallel: 2 min here, pip took 5 to 7.
    "$VENV/bin/python" -m pip install -q "uv==$UV_VERSION"
    uv=("$VENV/bin/uv" pip install -q --python "$VENV/bin/python")
    "${uv[@]}" "homeassistant==$HA_VERSION"
    # What Home Assistant would pip-install at its first start (the frontend, MQTT's paho-mqtt, ...): the test
    # runs it with --skip-pip, so nothing is downloaded at run time. Its own constraints keep its pins.
    constraints=$("$VENV/bin/python" -c "import homeassistant, pathlib; print(pathlib.Path(homeassistant.__file__).parent / 'package_constraints.txt')")
    "$VENV/bin/python" scripts/ha_requirements.py $DOMAINS > "$VENV/requirements.txt"
    "${uv[@]}" -r "$VENV/requirements.txt" -c "$constraints"
    echo "$want" > "$stamp"
fi
echo "$VENV"
