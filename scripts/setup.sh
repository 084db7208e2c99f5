#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine where we are root:
# Debian packages (only when one is missing), a .venv, the package in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(mosquitto portaudio19-dev pulseaudio pulseaudio-utils libasound2-plugins
              chromium chromium-driver sox libsndfile1 systemd openssl)
PYTHON=${PYTHON:-python3}
# A bare Debian has no compiler (PyAudio builds from source) and, for its own python3, no venv module.
command -v cc >/dev/null || APT_PACKAGES+=(gcc libc6-dev)
command -v "$PYTHON" >/dev/null || APT_PACKAGES+=(python3)
if ! "$PYTHON" -c "import ensurepip, sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_paths()['include'] + '/Python.h'))" 2>/dev/null; then
    APT_PACKAGES+=(python3-venv python3-dev)
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
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing genrecast into .venv (editable, with train and test extras)"
    .venv/bin/python -m pip install -q --upgrade pip
    # torch is pinned in the train extra: that exact version installs the CPU build.
    .venv/bin/python -m pip install -q -e ".[train,test]"
    echo "$want" > "$stamp"
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
