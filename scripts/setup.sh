#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine where we are root:
# Debian packages (only when one is missing), a .venv, the package in editable mode.
#   scripts/setup.sh                 everything: the service, training (torch) and the tests (chromium, pulseaudio, ...)
#   scripts/setup.sh --service       only what `genrecast run` and `genrecast dashboard` need, for a production host,
#                                    and the systemd units (scripts/install_units.sh; enables none)
#   ... --with-mqtt-clients          also mosquitto-clients (mosquitto_sub, to watch the topics by hand)
#   ... --plan                       print what would be installed, and do nothing
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu picks torch's CPU build from PyTorch's index (full set-up,
# into a new .venv: an installed torch of the pinned version, CUDA or not, already satisfies the pin)
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=full; PLAN=0; MQTT_CLIENTS=0
for arg in "$@"; do
    case "$arg" in
        --service) MODE=service ;;
        --with-mqtt-clients) MQTT_CLIENTS=1 ;;
        --plan) PLAN=1 ;;
        *) echo "setup: unknown option $arg (use --service, --with-mqtt-clients, --plan)" >&2; exit 2 ;;
    esac
done

# The service: PortAudio (PyAudio builds against its headers), libsndfile (soundfile), ALSA's PulseAudio plugin
# (a microphone behind PulseAudio or PipeWire).
APT_PACKAGES=(portaudio19-dev libsndfile1 libasound2-plugins)
PIP_SPEC="."
if [ "$MODE" = full ]; then
    # Tests and demo: a real broker, PulseAudio pipe sources, headless chromium, sox, TLS certificates, and a
    # Debian 12 with its systemd booted in a container for the units (debootstrap, systemd-nspawn).
    APT_PACKAGES+=(mosquitto pulseaudio pulseaudio-utils chromium chromium-driver sox systemd openssl)
    APT_PACKAGES+=(debootstrap systemd-container)
    PIP_SPEC=".[train,test]"  # torch is pinned in the train extra (PyPI's is the CUDA build: see TORCH_INDEX_URL)
fi
if [ "$MQTT_CLIENTS" = 1 ]; then
    APT_PACKAGES+=(mosquitto-clients)
fi
TORCH_PIN=$(sed -n 's/.*"torch==\([0-9.]*\)".*/\1/p' pyproject.toml)  # the train extra's one pin
PYTHON=${PYTHON:-python3}
# A bare Debian has no compiler (PyAudio builds from source) and, for its own python3, no venv module.
command -v cc >/dev/null || APT_PACKAGES+=(gcc libc6-dev)
command -v "$PYTHON" >/dev/null || APT_PACKAGES+=(python3)
if ! "$PYTHON" -c "import ensurepip, sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_paths()['include'] + '/Python.h'))" 2>/dev/null; then
    APT_PACKAGES+=(python3-venv python3-dev)
fi

if [ "$PLAN" = 1 ]; then
    echo "mode: $MODE"
    echo "apt: ${APT_PACKAGES[*]}"
    echo "pip: -e $PIP_SPEC"
    [ "$MODE" = full ] && echo "fetch: musicnn-0.1.0 wheel"
    [ "$MODE" = full ] && [ -n "${TORCH_INDEX_URL:-}" ] && echo "torch: $TORCH_PIN from $TORCH_INDEX_URL"
    [ "$MODE" = service ] && echo "units: $(cd systemd && echo *.service *.timer) -> ${UNIT_DIR:-/etc/systemd/system}"
    exit 0
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.genrecast-installed
# the version lives in genrecast/__init__.py: an editable install's metadata is only renewed by reinstalling
want="$MODE ${TORCH_INDEX_URL:-} $(cat pyproject.toml genrecast/__init__.py | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing genrecast into .venv (editable: $PIP_SPEC)"
    .venv/bin/python -m pip install -q --upgrade pip
    if [ "$MODE" = full ] && [ -n "${TORCH_INDEX_URL:-}" ]; then
        # PyPI's torch for Linux is the CUDA build (gigabytes); PyTorch's own CPU index has the small one:
        # TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu. Installed first, the pin below finds it in place.
        .venv/bin/python -m pip install -q "torch==$TORCH_PIN" --index-url "$TORCH_INDEX_URL"
    fi
    .venv/bin/python -m pip install -q -e "$PIP_SPEC"
    echo "$want" > "$stamp"
fi
if [ "$MODE" = service ]; then
    bash scripts/install_units.sh
    echo "setup: ready (service only)"
    exit 0
fi
# musicnn's pretrained weights (ISC licence) for the transfer recipe and its tests: the wheel is read, never installed
# (its pins are ancient). Checked against the hash of the release we ported.
MUSICNN_WHEEL=.cache/musicnn/musicnn-0.1.0-py3-none-any.whl
MUSICNN_SHA256=f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa
if [ ! -f "$MUSICNN_WHEEL" ]; then
    echo "setup: fetching the musicnn 0.1.0 wheel (pretrained weights, read at training time)"
    .venv/bin/python -m pip download -q --no-deps musicnn==0.1.0 -d .cache/musicnn
fi
echo "$MUSICNN_SHA256  $MUSICNN_WHEEL" | sha256sum -c --quiet -
echo "setup: ready"
