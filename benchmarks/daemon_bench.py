"""Daemon benchmark (run on demand, not in CI): end-to-end latency, CPU per audio second, classify throughput.

(1) latency: audio is written to ``genrecast run --source stdin`` in real time, 1024 samples at a time; for
    each window, from the moment the chunk holding its last sample was written to the daemon's pipe until a
    subscriber on the same broker received the prediction; p50 and p99.
(2) CPU: the daemon's user+system CPU seconds (from /proc) between the first and the last prediction,
    divided by the audio seconds between them (steady state, start-up excluded; one stream, one thread).
(3) throughput: ``classify`` of 30-s tracks in-process (decode, resample, log-mel, windows, ONNX), audio
    seconds per wall second; start-up excluded.
(4) classify memory: peak RSS of a ``genrecast classify`` process on 30 s and on 1 h of 44.1 kHz stereo WAV
    (digital silence in a sparse file: the work is the same as for music, the disk holds nothing); files are
    decoded in blocks, so the two should be about equal.
RSS is the daemon's peak resident memory (VmHWM). Uses models/genrecast-gtzan.onnx when present, otherwise the
tests' tiny model (said on output); real GTZAN excerpts when present beside the checkout, else generated audio.
The last line is:
``daemon: latency_p50_ms=<> latency_p99_ms=<> cpu_per_audio_s=<> classify_x_realtime=<> rss_mb=<>
classify_rss_30s_mb=<> classify_rss_1h_mb=<>`` (one line)
"""

from __future__ import annotations

import os

for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
import soundfile as sf  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import SHARED_GTZAN, MosquittoBroker  # noqa: E402
from genrecast.daemon.model import DEFAULT_MODEL, load_model  # noqa: E402
from genrecast.dsp import resample  # noqa: E402
from genrecast.dsp.windows import hop_frames, window_starts  # noqa: E402
from procstat import cpu_s, peak_rss_mb  # noqa: E402

CHUNK = 1024


def pick_model(tmp: Path) -> Path:
    if DEFAULT_MODEL.is_file():
        return DEFAULT_MODEL
    from tiny_model import build_tiny_model

    print("bench: models/genrecast-gtzan.onnx not found: using the tests' tiny model (inference cost not real)")
    return build_tiny_model(tmp / "tiny.onnx")


def model_rate(model: Path) -> int:
    """The bench feeds audio at the model's own rate, so no resampling is measured."""
    return load_model(model).spec.dsp.sample_rate


def music(seconds: float, rate: int) -> np.ndarray:
    """Real GTZAN excerpts back to back when present, else tones with noise; mono float32 at ``rate``."""
    tracks = sorted(SHARED_GTZAN.rglob("*.flac")) if SHARED_GTZAN.is_dir() else []
    n = round(seconds * rate)
    if tracks:
        parts, have = [], 0
        for path in tracks[:: max(1, len(tracks) // 8)]:
            x, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
            parts.append(resample(x.mean(axis=1), file_rate, rate))
            have += parts[-1].shape[0]
            if have >= n:
                break
        x = np.concatenate(parts)
        return np.tile(x, -(-n // x.shape[0]))[:n]
    rng = np.random.default_rng(0)
    t = np.arange(n) / rate
    return (0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def live_run(model: Path, broker: MosquittoBroker, seconds: float) -> tuple[list[float], float, float, float]:
    """Latencies (ms), CPU per audio second, peak RSS (MB), SIGTERM-to-exit time (ms) of one paced stream."""
    rate = model_rate(model)
    audio = music(seconds, rate)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    received: list[tuple[float, dict, float]] = []  # (monotonic receive time, payload, daemon cpu seconds)
    online = threading.Event()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "genrecast"), "run", "--source", "stdin", "--rate", str(rate),
         "--model", str(model), "--broker", broker.url, "--stream-id", "bench", "--log-level", "warning"],
        stdin=subprocess.PIPE, cwd=ROOT)

    def on_message(client, userdata, msg):
        now = time.monotonic()
        payload = json.loads(msg.payload)
        if msg.topic.endswith("/status") and payload["state"] == "online":
            online.set()
        elif msg.topic.endswith("/prediction"):
            received.append((now, payload, cpu_s(proc.pid)))

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub")
    sub.on_message = on_message
    sub.on_connect = lambda c, *a: c.subscribe("genrecast/bench/#", qos=1)
    sub.connect(broker.host, broker.port)
    sub.loop_start()
    assert online.wait(120), "daemon did not come online"
    written: list[tuple[int, float]] = []  # (samples handed over so far, monotonic time)
    start = time.monotonic()
    for pos in range(0, pcm.shape[0], CHUNK):
        due = start + (pos + CHUNK) / rate  # a live source hands over a chunk once it has been captured
        time.sleep(max(0.0, due - time.monotonic()))
        block = pcm[pos : pos + CHUNK]
        proc.stdin.write(block.tobytes())
        proc.stdin.flush()
        written.append((pos + block.shape[0], time.monotonic()))
    deadline = time.monotonic() + 5
    spec = load_model(model).spec
    n_windows = window_starts(spec.dsp.frames_in(audio.shape[0]), spec.n_frames, hop_frames(spec.dsp, 1.0)).size
    while len(received) < n_windows and time.monotonic() < deadline:
        time.sleep(0.05)
    rss = peak_rss_mb(proc.pid)
    t_term = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    stop_ms = (time.monotonic() - t_term) * 1000
    proc.stdin.close()
    sub.loop_stop()
    sub.disconnect()

    ends = np.array([n for n, _ in written])
    latencies = []
    for t_recv, payload, _ in received:
        last_sample = round(payload["window_end_s"] * rate) - 1
        i = int(np.searchsorted(ends, last_sample + 1))  # first chunk that contains the window's last sample
        latencies.append((t_recv - written[i][1]) * 1000)
    (_, first, cpu0), (_, last, cpu1) = received[0], received[-1]
    cpu_per_audio_s = (cpu1 - cpu0) / (last["window_end_s"] - first["window_end_s"])
    return latencies, cpu_per_audio_s, rss, stop_ms


def classify_throughput(model_path: Path, tmp: Path, n_tracks: int) -> float:
    from genrecast.daemon.classify_cmd import classify_file
    from genrecast.daemon.model import load_model

    rate = model_rate(model_path)
    audio = music(30.0 * n_tracks, rate)
    paths = []
    for i in range(n_tracks):
        paths.append(tmp / f"track{i}.wav")
        sf.write(str(paths[-1]), audio[i * 30 * rate : (i + 1) * 30 * rate], rate, subtype="PCM_16")
    model = load_model(model_path)
    classify_file(model, str(paths[0]), 1.0)  # warm-up: numba cache load, onnxruntime first run
    t0 = time.perf_counter()
    for p in paths:
        classify_file(model, str(p), 1.0)
    return 30.0 * n_tracks / (time.perf_counter() - t0)


def classify_rss_mb(model_path: Path, tmp: Path, seconds: float) -> float:
    """Peak resident memory (MB) of one ``genrecast classify`` process on ``seconds`` of 44.1 kHz stereo."""
    from signals import sparse_wav

    path = sparse_wav(tmp / f"silence-{seconds:g}s.wav", seconds, rate=44100, channels=2)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "genrecast"), "classify", "--model", str(model_path),
                             str(path)], stdout=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, f"classify failed on {path}"
    path.unlink()
    return usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="audio streamed in real time (default 120: about 118 windows, so p99 is not the maximum)")
    parser.add_argument("--tracks", type=int, default=10, help="30-s tracks for classify (default 10)")
    parser.add_argument("--classify-hours", type=float, default=1.0, help="long file for classify RSS (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genrecast-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model = pick_model(tmp)
        broker = MosquittoBroker(tmp)
        broker.start()
        try:
            latencies, cpu, rss, stop_ms = live_run(model, broker, args.seconds)
        finally:
            broker.stop()
        x_realtime = classify_throughput(model, tmp, args.tracks)
        rss_short, rss_long = (classify_rss_mb(model, tmp, s) for s in (30.0, args.classify_hours * 3600))
    p50, p99 = np.percentile(latencies, [50, 99])
    print(f"bench: model {model.name}; {len(latencies)} windows over {args.seconds:g} s paced; "
          f"latency max {max(latencies):.1f} ms; SIGTERM to exit {stop_ms:.0f} ms; {args.tracks} x 30-s tracks")
    print(f"daemon: latency_p50_ms={p50:.1f} latency_p99_ms={p99:.1f} cpu_per_audio_s={cpu:.4f} "
          f"classify_x_realtime={x_realtime:.0f} rss_mb={rss:.0f} classify_rss_30s_mb={rss_short:.0f} "
          f"classify_rss_{args.classify_hours:g}h_mb={rss_long:.0f}")


if __name__ == "__main__":
    main()
