"""SIGTERM-to-exit benchmark (run on demand, not in CI): the docs promise `genrecast run` exits within 2 s.

For each source kind (a real-time paced looping file, stdin fed in real time) it starts ``genrecast run`` against a
real Mosquitto, waits until predictions flow, sends SIGTERM and times until the process has exited; ``--runs`` times
each (default 10), plus the same with the broker gone (the goodbye cannot be delivered). The last line is:
``stop: runs=<n> file_max_ms=<> stdin_max_ms=<> broker_down_max_ms=<> overall_p50_ms=<> overall_max_ms=<>``
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import MosquittoBroker  # noqa: E402
from daemon_helpers import write_tones  # noqa: E402
from tiny_model import build_tiny_model  # noqa: E402

GENRECAST = str(Path(sys.executable).parent / "genrecast")
RATE = 22050


def one_stop(source: str, model: Path, broker: MosquittoBroker, stop_broker: bool) -> float:
    """Milliseconds from SIGTERM to the exit of one ``genrecast run`` that has published a prediction."""
    predicted = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"stop-bench-{time.monotonic_ns()}")
    sub.on_connect = lambda c, *a: c.subscribe("genrecast/stop/#", qos=1)
    sub.on_message = lambda c, u, msg: msg.topic.endswith("/prediction") and predicted.set()
    sub.connect(broker.host, broker.port)
    sub.loop_start()
    args = [GENRECAST, "run", "--model", str(model), "--broker", broker.url, "--stream-id", "stop", "--log-level",
            "warning"]
    if source == "stdin":
        proc = subprocess.Popen([*args, "--source", "stdin", "--rate", str(RATE)], stdin=subprocess.PIPE, cwd=ROOT)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE // 10) / RATE) * 32767).astype("<i2").tobytes()
        feeding = threading.Event()

        def feed() -> None:
            while not feeding.is_set():
                try:
                    proc.stdin.write(tone)
                    proc.stdin.flush()
                except (BrokenPipeError, ValueError):
                    return
                time.sleep(0.1)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
    else:
        proc = subprocess.Popen([*args, "--source", f"file:{source}", "--loop"], stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        assert predicted.wait(120), "no prediction within 120 s"
        sub.loop_stop()
        sub.disconnect()
        if stop_broker:
            broker.stop()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        return (time.monotonic() - t0) * 1000
    finally:
        if source == "stdin":
            feeding.set()
            proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
        if stop_broker:
            broker.start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="stops per case (default 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genrecast-stop-") as tmp_name:
        tmp = Path(tmp_name)
        model = build_tiny_model(tmp / "tiny.onnx")
        wav = write_tones(tmp / "loop.wav", [3] * 6, rate=RATE)
        broker = MosquittoBroker(tmp)
        broker.start()
        try:
            cases = {"file": (str(wav), False), "stdin": ("stdin", False), "broker_down": (str(wav), True)}
            times = {name: [one_stop(src, model, broker, down) for _ in range(args.runs)]
                     for name, (src, down) in cases.items()}
        finally:
            broker.stop()
    for name, ms in times.items():
        print(f"stop: {name}: " + " ".join(f"{m:.0f}" for m in ms) + " ms")
    every = np.concatenate(list(times.values()))
    print(f"stop: runs={args.runs} " + " ".join(f"{n}_max_ms={max(ms):.0f}" for n, ms in times.items())
          + f" overall_p50_ms={np.median(every):.0f} overall_max_ms={every.max():.0f}")


if __name__ == "__main__":
    from bench_cli import run

    run(main)
