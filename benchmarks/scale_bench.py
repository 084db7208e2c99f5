"""Scale benchmark (run on demand, not in CI): how many real-time streams one ``genrecast run`` carries.

(1) batch: the model alone, ``predict`` on B windows of real music at once; ms per call and per window, so the
    default ``batch`` (most windows per model call) can be chosen from the curve.
(2) ramp: for each N, one ``genrecast run`` with N streams of real GTZAN excerpts, each a file paced at real time
    and looped (``--stream sI=file:... --speed 1 --loop``), into a real Mosquitto on loopback. Once every stream
    has published a window, and ``--warmup`` seconds more, for ``--seconds`` it records every prediction's
    ``latency_ms`` (from the source handing over the audio that completed the window to the publish call: tick
    wait, features, model and queueing included), the process's CPU seconds (/proc) per stream-second, its RSS, and
    each stream's status (``dropped_s``).
    N passes when p99 latency <= 200 ms, no audio was dropped, and the backlog does not grow (each stream
    delivered at least 90 % of the windows due, less one for the span's edges, and the median latency of the last
    quarter is within 100 ms of the first quarter's).
Every model shipped beside the default is measured; the one a large deployment would use (the fast variant when it
ships, else the default, or ``--model``) comes last. ``--threads 1,2`` ramps each N once per setting of ``threads``
(model calls at once), one right after the other, so that before and after are measured side by side on a shared
machine. The last lines are, per model and setting:
``scale: model=<id> threads=<T> max_realtime_streams=<N> cpu_per_stream_s=<> rss_mb_at_100=<> batch=<>``
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

from conftest import SHARED_GTZAN, MosquittoBroker  # noqa: E402
from genrecast.daemon.model import DEFAULT_MODEL, load_model  # noqa: E402
from genrecast.daemon.pipeline import Pipeline  # noqa: E402
from genrecast.dsp import read_audio  # noqa: E402
from procstat import cpu_s, rss_mb  # noqa: E402

MODELS = DEFAULT_MODEL.parent  # the shipped models, beside the default
FAST_MODEL = MODELS / "genrecast-gtzan-fast.onnx"
GENRECAST = str(Path(sys.executable).parent / "genrecast")
P99_LIMIT_MS = 200.0


def tracks(n: int) -> list[Path]:
    files = sorted(SHARED_GTZAN.glob("*/*.*"))
    if not files:
        sys.exit(f"scale_bench: no GTZAN excerpts under {SHARED_GTZAN}")
    return [files[(i * 37) % len(files)] for i in range(n)]  # spread over the genres


def batch_curve(model_path: Path, sizes: list[int], repeats: int) -> dict[int, float]:
    """ms per window at each batch size, from windows of real music."""
    model = load_model(model_path)
    audio = read_audio(str(tracks(1)[0]))
    windows = [w.logmel for w in Pipeline(model.spec, 0.5, audio.sample_rate).push(audio.samples, last=True)]
    out = {}
    for b in sizes:
        x = np.stack([windows[i % len(windows)] for i in range(b)])
        model.predict(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.predict(x)
            times.append(time.perf_counter() - t0)
        call_ms = float(np.median(times)) * 1000
        out[b] = call_ms / b
        print(f"batch: model={model.model_id} b={b} call_ms={call_ms:.2f} per_window_ms={call_ms / b:.3f}")
    return out


class Recorder:
    def __init__(self, url: str) -> None:
        host, port = url.split("://")[1].split(":")
        self.lock = threading.Lock()
        self.latencies: list[tuple[float, str, float]] = []  # (received at, stream, latency_ms)
        self.dropped: dict[str, float] = {}
        self.seen: set[str] = set()  # streams that published a prediction
        self.recording = False
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"scale-bench-{os.getpid()}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([("genrecast/+/prediction", 0),
                                                                     ("genrecast/+/status", 0)])
        self.client.on_subscribe = lambda *a: self.connected.set()
        self.client.on_message = self._on_message
        self.client.connect(host, int(port))
        self.client.loop_start()
        self.connected.wait(30)

    def _on_message(self, client, userdata, msg) -> None:
        data = json.loads(msg.payload)
        with self.lock:
            if msg.topic.endswith("/status"):
                self.dropped[data["stream_id"]] = data.get("dropped_s", 0.0)
            else:
                self.seen.add(data["stream_id"])
            if self.recording and msg.topic.endswith("/prediction"):
                self.latencies.append((time.monotonic(), data["stream_id"], data["latency_ms"]))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run_n(model: Path, n: int, seconds: float, warmup: float, hop: float, batch: int, threads: int,
          workdir: Path) -> dict:
    broker = MosquittoBroker(workdir)
    broker.conf.write_text(broker.conf.read_text() + "max_queued_messages 100000\n")
    broker.start()
    rec = Recorder(broker.url)
    args = [GENRECAST, "run", "--model", str(model), "--broker", broker.url, "--speed", "1", "--loop",
            "--hop", str(hop), "--batch", str(batch), "--threads", str(threads), "--name", "bench",
            "--log-level", "warning",
            *[f"--stream=s{i}=file:{p}" for i, p in enumerate(tracks(n))]]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120 + n  # start-up decodes every file before the first window
        while len(rec.seen) < n:  # warm-up: every stream running, then ``warmup`` more seconds
            if proc.poll() is not None:
                raise SystemExit(f"scale_bench: genrecast run exited: {proc.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"scale_bench: only {len(rec.seen)} of {n} streams ever published")
            time.sleep(0.2)
        time.sleep(warmup)
        cpu0, t0 = cpu_s(proc.pid), time.monotonic()
        with rec.lock:
            rec.recording = True
        time.sleep(seconds)
        with rec.lock:
            rec.recording = False
            got = list(rec.latencies)
        cpu1, t1 = cpu_s(proc.pid), time.monotonic()
        rss = rss_mb(proc.pid)
        dropped = sum(rec.dropped.values())
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # hundreds of overloaded streams may not flush in time: it is measured
            proc.kill()
            proc.wait()
        rec.close()
        broker.stop()
    lat = np.array([x[2] for x in got]) if got else np.array([np.inf])
    span = t1 - t0
    per_stream = np.bincount([int(s[1:]) for _, s, _ in got], minlength=n) if got else np.zeros(n)
    quarter = max(1, len(got) // 4)
    growth = float(np.median(lat[-quarter:]) - np.median(lat[:quarter])) if got else np.inf
    due = span / hop
    result = {
        "n": n, "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
        "cpu_per_stream_s": (cpu1 - cpu0) / (n * span), "rss_mb": rss, "dropped_s": dropped,
        "min_share": float(per_stream.min() / due), "growth_ms": growth,
    }
    # A stream's count of windows in the span is whole: one fewer than due is the span's edges, not a backlog.
    result["ok"] = (result["p99"] <= P99_LIMIT_MS and dropped == 0 and per_stream.min() >= 0.9 * due - 1
                    and growth <= 100)
    print(f"ramp: threads={threads} N={n} p50_ms={result['p50']:.1f} p99_ms={result['p99']:.1f} "
          f"cpu_per_stream_s={result['cpu_per_stream_s']:.4f} rss_mb={rss:.0f} dropped_s={dropped:.1f} "
          f"windows_share_min={result['min_share']:.2f} latency_growth_ms={growth:.0f} "
          f"load_avg={os.getloadavg()[0]:.1f} {'ok' if result['ok'] else 'FAIL'}", flush=True)
    return result


def ramp(model: Path, ns: list[int], seconds: float, warmup: float, hop: float, batch: int,
         settings: list[int]) -> dict[int, dict]:
    """Per setting of ``threads``: the most streams that passed, with their CPU per stream, and the RSS at 100."""
    results: dict[int, dict[int, dict]] = {t: {} for t in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns:
            going = [t for t in settings if not _past_limit(results[t], n)]
            if not going:
                break
            for t in going:  # side by side: each setting at this N before the next N
                d = Path(tmp) / f"n{n}-t{t}"
                d.mkdir()
                results[t][n] = run_n(model, n, seconds, warmup, hop, batch, t, d)
    model_id = load_model(model).model_id
    out = {}
    for t, rs in results.items():
        passing = [n for n, r in rs.items() if r["ok"]]
        best = max(passing) if passing else 0
        ref = rs.get(best) or rs[min(rs)]
        at_100 = rs.get(100, {}).get("rss_mb", float("nan"))
        out[t] = {"model": model_id, "max": best, "cpu": ref["cpu_per_stream_s"], "rss100": at_100}
    return out


def _past_limit(results: dict[int, dict], n: int) -> bool:
    """Two failures below ``n``: past the limit, not a noisy run (100 is always measured, for the RSS figure)."""
    return n > 100 and sum(not r["ok"] for r in results.values()) >= 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="the model a large deployment uses (default: the fast one if "
                                              "shipped, else the default)")
    p.add_argument("--ns", default="25,50,100,150,200,300,400", help="stream counts to ramp through")
    p.add_argument("--seconds", type=float, default=30.0, help="measured seconds per N")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds after every stream's first window")
    p.add_argument("--hop", type=float, default=1.0)
    p.add_argument("--batch", type=int, help="windows per model call (default: the daemon's)")
    p.add_argument("--batches", default="1,2,4,8,16,32,64,128", help="batch sizes for the model-only curve")
    p.add_argument("--threads", help="settings of threads to ramp side by side, e.g. 1,2 (default: the daemon's)")
    p.add_argument("--only", help="measure only this model file (the others shipped are skipped)", type=Path)
    a = p.parse_args()
    from genrecast.daemon.config import RunSettings

    batch = a.batch or RunSettings().batch
    settings = [int(x) for x in a.threads.split(",")] if a.threads else [RunSettings().threads]
    main_model = a.model or (FAST_MODEL if FAST_MODEL.is_file() else DEFAULT_MODEL)
    others = [m for m in sorted(MODELS.glob("*.onnx")) if m.resolve() != main_model.resolve()]
    ns = [int(x) for x in a.ns.split(",")]
    sizes = [int(x) for x in a.batches.split(",")]
    lines = []
    for model in [a.only] if a.only else [*others, main_model]:
        batch_curve(model, sizes, repeats=20)
        for t, r in ramp(model, ns, a.seconds, a.warmup, a.hop, batch, settings).items():
            lines.append(f"scale: model={r['model']} threads={t} max_realtime_streams={r['max']} "
                         f"cpu_per_stream_s={r['cpu']:.4f} rss_mb_at_100={r['rss100']:.0f} batch={batch}")
    print("\n".join(lines))


if __name__ == "__main__":
    from bench_cli import run

    run(main)
