#!/usr/bin/env bash
# `make demo`: the whole product on this machine, loopback only. A Mosquitto (ours, unless one already answers
# on 127.0.0.1:1883), the daemon on the bundled example clip looped in real time, and the dashboard.
# Ctrl-C stops what this script started, and nothing else. DEMO_CLIP and DEMO_PORT override the clip and port
# (not GENRECAST_*: the daemon refuses environment settings it does not know).
set -euo pipefail
cd "$(dirname "$0")/.."

CLIP=${DEMO_CLIP:-examples/groove-then-fan.flac}  # a groove, then a fan: genre, then no_music
MODEL=${GENRECAST_MODEL:-models/genrecast-gtzan.onnx}  # the daemon reads GENRECAST_MODEL too
MQTT_PORT=1883
DASH_PORT=${DEMO_PORT:-8050}
GENRECAST=.venv/bin/genrecast

for f in "$CLIP" "$MODEL"; do
    [ -f "$f" ] || { echo "demo: $f is missing (the model comes from \`genrecast train-transfer\`, see README.md)" >&2; exit 1; }
done

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { .venv/bin/python -c \
    'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for_port() {  # port, what, pid of the process that should open it
    for _ in $(seq 100); do
        answers "$1" && return 0
        kill -0 "$3" 2>/dev/null || { echo "demo: $2 exited before listening on port $1" >&2; return 1; }
        sleep 0.2
    done
    echo "demo: $2 is not listening on port $1 after 20 s" >&2
    return 1
}

pids=()
tmp=$(mktemp -d)
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM

if answers "$MQTT_PORT"; then
    echo "demo: using the MQTT broker already on 127.0.0.1:$MQTT_PORT"
else
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MQTT_PORT" > "$tmp/mosquitto.conf"
    "$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$tmp/mosquitto.conf" 2> "$tmp/mosquitto.log" &
    pids+=($!)
    wait_for_port "$MQTT_PORT" mosquitto "$!" || { cat "$tmp/mosquitto.log" >&2; exit 1; }
    echo "demo: started Mosquitto on 127.0.0.1:$MQTT_PORT"
fi
BROKER="mqtt://127.0.0.1:$MQTT_PORT"

answers "$DASH_PORT" && DASH_PORT=$(free_port)
"$GENRECAST" dashboard --broker "$BROKER" --host 127.0.0.1 --port "$DASH_PORT" &
pids+=($!)
wait_for_port "$DASH_PORT" dashboard "$!"

GENRECAST_MODEL=$MODEL "$GENRECAST" run --source "file:$CLIP" --loop --broker "$BROKER" &
pids+=($!)

echo
echo "demo: open http://127.0.0.1:$DASH_PORT/ in a browser: $CLIP plays on a loop, classified live"
echo "demo: (20 s of a generated groove, then 15 s of a generated fan that the model calls no_music)."
echo "demo: press Ctrl-C to stop."
wait -n "${pids[@]}" && status=0 || status=$?
echo "demo: a part of the demo stopped (exit status $status); stopping the rest" >&2
exit "$status"
