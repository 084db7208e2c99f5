"""Soak benchmark (run on demand, not in CI): one ``genrecast run`` with N real-time streams for a set time.

N real GTZAN excerpts, each a file paced at real time and looped (``--stream sI=file:... --speed 1 --loop``; every
loop decodes the file again), are classified by one process into a real Mosquitto on loopback, while a subscriber
counts what arrives. Every minute it prints the process's RSS, its CPU seconds per stream-second over that minute,
threads, open file descriptors, the windows received in that minute against those due, and the audio dropped so far
(from the streams' status). A leak shows as RSS, threads or descriptors that keep growing; a stall as a minute
short of windows. RSS growth is the slope of a least-squares line through the minutes after the first, in MB per
hour (none under three minutes). Windows due count the hop in whole frames, as the daemon cuts it. The daemon's log
is a file in the run's folder. The last line is:
``soak: model=<id> streams=<N> minutes=<> rss_mb_first=<> rss_mb_last=<> rss_growth_mb_per_h=<> cpu_per_stream_s=<>
windows=<received>/<due> dropped_s=<> threads=<first>-><last> fds=<first>-><last>`` (one line)
"""

from __future__ import annotations

import os

for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import MosquittoBroker  # noqa: E402
from genrecast.daemon.model import DEFAULT_MODEL, load_model  # noqa: E402
from genrecast.daemon.pipeline import Pipeline  # noqa: E402
from procstat import cpu_s, open_files, rss_mb, status_field  # noqa: E402
from scale_bench import GENRECAST, tracks  # noqa: E402


class Counter:
    """Predictions received per stream, and each stream's latest status, from the broker."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.lock = threading.Lock()
        self.windows = 0
        self.seen: set[str] = set()  # streams that published a window
        self.status: dict[str, dict] = {}
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"soak-{os.getpid()}")
        self.client.on_connect = lambda c, *a: c.subscribe([("genrecast/+/prediction", 0), ("genrecast/+/status", 0)])
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not subscribed.wait(30):
            raise SystemExit("soak: could not subscribe to the broker")

    def _on_message(self, client, userdata, msg) -> None:
        data = json.loads(msg.payload)
        with self.lock:
            if msg.topic.endswith("/status"):
                self.status[data["stream_id"]] = data
            else:
                self.windows += 1
                self.seen.add(data["stream_id"])

    def snapshot(self) -> tuple[int, float, int, int]:
        """Windows so far, audio dropped so far (s), streams whose status is online, streams that published."""
        with self.lock:
            return (self.windows, sum(s.get("dropped_s", 0.0) for s in self.status.values()),
                    sum(s["state"] == "online" for s in self.status.values()), len(self.seen))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def soak(model: Path, n: int, minutes: int, hop: float, workdir: Path) -> str:
    broker = MosquittoBroker(workdir)
    broker.start()
    counter = Counter(broker)
    args = [GENRECAST, "run", "--model", str(model), "--broker", broker.url, "--speed", "1", "--loop",
            "--hop", str(hop), "--name", "soak", "--log-level", "warning",
            *[f"--stream=s{i}=file:{p}" for i, p in enumerate(tracks(n))]]
    log = workdir / "daemon.log"  # a file, not a pipe: a full pipe would block the daemon's every log line
    with log.open("w") as stderr:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr)

    def died(when: str) -> SystemExit:
        return SystemExit(f"soak: genrecast run exited {when}: {log.read_text()[-2000:]}")

    rows = []
    spec = load_model(model).spec
    real_hop = Pipeline(spec, hop, 44100).hop_seconds  # whole frames: 0.992 s for 1 s at 16 kHz
    try:
        deadline = time.monotonic() + 120 + n
        while counter.snapshot()[2] < n or counter.snapshot()[3] < n:  # every stream online and classifying
            if proc.poll() is not None:
                raise died("during start-up")
            if time.monotonic() > deadline:
                raise SystemExit("soak: not every stream came online")
            time.sleep(0.5)
        t_prev, cpu_prev, (win_prev, *_) = time.monotonic(), cpu_s(proc.pid), counter.snapshot()
        for minute in range(1, minutes + 1):
            time.sleep(max(0.0, t_prev + 60.0 - time.monotonic()))
            if proc.poll() is not None:
                raise died(f"in minute {minute}")
            now, cpu, (win, dropped, online, _) = time.monotonic(), cpu_s(proc.pid), counter.snapshot()
            row = {"minute": minute, "rss": rss_mb(proc.pid), "cpu": (cpu - cpu_prev) / (n * (now - t_prev)),
                   "threads": status_field(proc.pid, "Threads"), "fds": open_files(proc.pid),
                   "windows": win - win_prev, "due": n * (now - t_prev) / real_hop, "dropped": dropped,
                   "online": online}
            rows.append(row)
            print(f"minute: {minute} rss_mb={row['rss']:.1f} cpu_per_stream_s={row['cpu']:.4f} "
                  f"threads={row['threads']} fds={row['fds']} windows={row['windows']}/{row['due']:.0f} "
                  f"online={online}/{n} dropped_s={dropped:.1f} load_avg={os.getloadavg()[0]:.1f}", flush=True)
            t_prev, cpu_prev, win_prev = now, cpu, win
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        counter.close()
        broker.stop()
    later = rows[1:]  # the first minute still holds start-up's growth
    hours = np.array([r["minute"] for r in later]) / 60.0
    slope = float(np.polyfit(hours, [r["rss"] for r in later], 1)[0]) if len(later) > 1 else float("nan")
    cpu = float(np.mean([r["cpu"] for r in rows]))
    got, due = sum(r["windows"] for r in rows), sum(r["due"] for r in rows)
    return (f"soak: model={spec.model_id} streams={n} minutes={minutes} "
            f"rss_mb_first={rows[0]['rss']:.1f} rss_mb_last={rows[-1]['rss']:.1f} rss_growth_mb_per_h={slope:.1f} "
            f"cpu_per_stream_s={cpu:.4f} windows={got}/{due:.0f} dropped_s={rows[-1]['dropped']:.1f} "
            f"threads={rows[0]['threads']}->{rows[-1]['threads']} fds={rows[0]['fds']}->{rows[-1]['fds']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="default: the shipped default model")
    p.add_argument("--streams", type=int, default=8, help="real-time streams in the one process (default 8)")
    p.add_argument("--minutes", type=int, default=60, help="how long, after every stream is running (default 60)")
    p.add_argument("--hop", type=float, default=1.0)
    a = p.parse_args()
    if a.minutes < 1 or a.streams < 1:
        sys.exit("soak: --minutes and --streams must be at least 1")
    with tempfile.TemporaryDirectory(prefix="genrecast-soak-") as tmp:
        print(soak(a.model, a.streams, a.minutes, a.hop, Path(tmp)))


if __name__ == "__main__":
    from bench_cli import run

    run(main)
