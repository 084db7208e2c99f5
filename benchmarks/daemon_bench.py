"""Daemon benchmark (run on demand, not in CI): end-to-end latency, CPU per audio second, classify throughput.

(1) latency: audio is written to ``genrecast run --source stdin`` in real time, 1024 samples at a time; for
    each window, from the moment the chunk holding its last sample was written to the daemon's pipe until a
    subscriber on the same broker received the prediction; p50 and p99.
(2) CPU: the daemon's user+system CPU seconds (from /proc) between the first and the last prediction,
    divided by the audio seconds between them (steady state, start-up excluded; one stream, at each ``--threads``
    setting).
(3) throughput: ``classify`` of 30-s tracks in-process (decode, resample, log-mel, windows, ONNX), audio
    seconds per wall second; start-up excluded.
(4) classify memory: peak RSS of a ``genrecast classify`` process on 30 s and on 1 h of 44.1 kHz stereo WAV
    (digital silence in a sparse file: the work is the same as for music, the disk holds nothing); files are
    decoded in blocks, so the two should be about equal.
(5) first answer: ``genrecast run`` on a file paced at real time (``--speed 1``), the first ``--first-seconds`` of
    ``--first-tracks`` long GTZAN excerpts (genres in turn; default one per genre), one process each; on the daemon's
    own clock, from the stream's first sample to the first message naming a genre (``first_answer_s``) and to the
    first naming the excerpt's own genre (``first_correct_s``; an excerpt never right counts as infinite), medians
    over the excerpts. A paced file hands over a chunk (0.05 s) once its last sample would have been captured, so a
    window's message is published ``chunk end + latency_ms`` after the first sample: the end of the chunk holding the
    window's last sample, on the source's schedule, plus the daemon's own latency from that hand-over (the source
    thread's wake-up delay, under a millisecond, is not counted). ``--compare PATH`` measures another ``genrecast``
    executable (an older checkout) on the same excerpts, alternately.
``--threads 1,2`` measures (1)-(3) once per setting of ``threads``, (3) alternately, so that before and after are
measured side by side; the last line is the last setting's.
RSS is the daemon's peak resident memory (VmHWM). Uses models/genrecast-gtzan.onnx when present, otherwise the
tests' tiny model (said on output); real GTZAN excerpts when present beside the checkout, else generated audio.
The last line is:
``daemon: threads=<> latency_p50_ms=<> latency_p99_ms=<> cpu_per_audio_s=<> classify_x_realtime=<> rss_mb=<>
classify_rss_30s_mb=<> classify_rss_1h_mb=<> first_answer_s=<> first_correct_s=<>`` (one line)
"""

from __future__ import annotations

import os

for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
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
from genrecast.daemon.sources import CHUNK_SECONDS  # noqa: E402
from genrecast.dsp import read_audio, resample  # noqa: E402
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


def live_run(model: Path, broker: MosquittoBroker, seconds: float, threads: int
             ) -> tuple[list[float], float, float, float]:
    """Latencies (ms), CPU per audio second, peak RSS (MB), SIGTERM-to-exit time (ms) of one paced stream."""
    rate = model_rate(model)
    audio = music(seconds, rate)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    received: list[tuple[float, dict, float]] = []  # (monotonic receive time, payload, daemon cpu seconds)
    online = threading.Event()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "genrecast"), "run", "--source", "stdin", "--rate", str(rate),
         "--model", str(model), "--broker", broker.url, "--stream-id", "bench", "--log-level", "warning",
         "--threads", str(threads)],
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


def classify_throughput(model_path: Path, tmp: Path, n_tracks: int, settings: list[int],
                        rounds: int = 3) -> dict[int, float]:
    """Audio seconds per wall second per setting of ``threads``: the settings take turns, ``rounds`` times, and each
    keeps its best round (the one least disturbed by whatever else the machine ran)."""
    from genrecast.daemon.classify_cmd import classify_file
    from genrecast.daemon.inference import Inference
    from genrecast.daemon.model import load_model

    rate = model_rate(model_path)
    audio = music(30.0 * n_tracks, rate)
    paths = []
    for i in range(n_tracks):
        paths.append(tmp / f"track{i}.wav")
        sf.write(str(paths[-1]), audio[i * 30 * rate : (i + 1) * 30 * rate], rate, subtype="PCM_16")
    model = load_model(model_path)
    best = dict.fromkeys(settings, 0.0)
    for _ in range(rounds):
        for t in settings:
            inference = Inference(model, t)
            classify_file(model, str(paths[0]), 1.0, inference)  # warm-up: numba cache, onnxruntime first runs
            t0 = time.perf_counter()
            for p in paths:
                classify_file(model, str(p), 1.0, inference)
            best[t] = max(best[t], 30.0 * n_tracks / (time.perf_counter() - t0))
            inference.close()
            print(f"classify: threads={t} x_realtime={30.0 * n_tracks / (time.perf_counter() - t0):.0f} "
                  f"load_avg={os.getloadavg()[0]:.1f}", flush=True)
    return best


def first_excerpts(n: int) -> list[tuple[str, Path]]:
    """``n`` long GTZAN excerpts, genre by genre in turn: the first of each genre in the manifest, then the second of
    each, and so on (the default 10 is one per genre; a median over ten moves with a single excerpt)."""
    with open(SHARED_GTZAN / "manifest.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["excerpt"].startswith("start of track")]
    by_genre: dict[str, list[Path]] = {}
    for r in rows:
        by_genre.setdefault(r["genre"], []).append(next(SHARED_GTZAN.glob(f"{r['genre']}/{r['track']}.*")))
    turns = itertools.zip_longest(*by_genre.values())
    return [(path.parent.name, path) for turn in turns for path in turn if path is not None][:n]


def first_answer(genrecast: str, model: Path, broker: MosquittoBroker, wav: Path, genre: str) -> tuple[float, float]:
    """Seconds from the first sample of a paced file stream to the first genre named, and to ``genre`` named."""
    rate = sf.info(str(wav)).samplerate
    step = max(1, round(rate * CHUNK_SECONDS))  # the paced file source's chunk
    got: list[dict] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-first")
    subscribed = threading.Event()
    sub.on_message = lambda c, u, msg: got.append(json.loads(msg.payload))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_connect = lambda c, *a: c.subscribe("genrecast/first/prediction", qos=1)
    sub.connect(broker.host, broker.port)
    sub.loop_start()
    assert subscribed.wait(30), "bench subscriber did not subscribe"
    proc = subprocess.run([genrecast, "run", "--source", f"file:{wav}", "--speed", "1", "--model", str(model),
                           "--broker", broker.url, "--stream-id", "first", "--log-level", "warning"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sub.loop_stop()
    sub.disconnect()
    first = correct = math.inf
    for p in got:
        at = math.ceil(round(p["window_end_s"] * rate) / step) * step / rate + p["latency_ms"] / 1000
        if p["state"]["kind"] == "genre":
            first = min(first, at)
        if p["state"]["genre"] == genre:
            correct = min(correct, at)
    return first, correct


def first_answers(executables: list[str], model: Path, broker: MosquittoBroker, tmp: Path, n: int,
                  seconds: float) -> dict[str, tuple[float, float]]:
    """Median first_answer_s and first_correct_s per executable, which take turns on each excerpt."""
    rate = model_rate(model)
    out: dict[str, list[tuple[float, float]]] = {e: [] for e in executables}
    for genre, path in first_excerpts(n):
        audio = read_audio(str(path))
        wav = tmp / f"first-{path.stem}.wav"
        sf.write(str(wav), resample(audio.samples, audio.sample_rate, rate)[: round(seconds * rate)], rate,
                 subtype="PCM_16")
        for e in executables:
            out[e].append(first_answer(e, model, broker, wav, genre))
            print(f"first: {Path(e).parent.parent.parent.name}/{Path(e).name} {path.stem} "
                  f"answer_s={out[e][-1][0]:.2f} correct_s={out[e][-1][1]:.2f}", flush=True)
    return {e: (float(np.median([a for a, _ in r])), float(np.median([c for _, c in r]))) for e, r in out.items()}


def classify_rss_mb(model_path: Path, tmp: Path, seconds: float, threads: int) -> float:
    """Peak resident memory (MB) of one ``genrecast classify`` process on ``seconds`` of 44.1 kHz stereo."""
    from signals import sparse_wav

    path = sparse_wav(tmp / f"silence-{seconds:g}s.wav", seconds, rate=44100, channels=2)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "genrecast"), "classify", "--model", str(model_path),
                             "--threads", str(threads), str(path)], stdout=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, f"classify failed on {path}"
    path.unlink()
    return usage.ru_maxrss / 1024


def main() -> None:
    from genrecast.daemon.config import RunSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="audio streamed in real time (default 120: about 118 windows, so p99 is not the maximum)")
    parser.add_argument("--tracks", type=int, default=10, help="30-s tracks for classify (default 10)")
    parser.add_argument("--classify-hours", type=float, default=1.0, help="long file for classify RSS (default 1)")
    parser.add_argument("--threads", help="settings of threads to measure side by side, e.g. 1,2 (default: the "
                                          "daemon's)")
    parser.add_argument("--first-tracks", type=int, default=10,
                        help="excerpts for the first answer, genres in turn (default 10: one per genre)")
    parser.add_argument("--first-seconds", type=float, default=12.0,
                        help="of each excerpt (default 12: before issue 19 the first window and the dwell took 8 s)")
    parser.add_argument("--compare", help="another genrecast executable to measure the first answer of, alternately")
    parser.add_argument("--only", choices=("live", "classify", "first"), help="measure only this part")
    args = parser.parse_args()
    settings = [int(x) for x in args.threads.split(",")] if args.threads else [RunSettings().threads]
    parts = {args.only} if args.only else {"live", "classify", "first"}
    live, x_realtime, rss, first = {}, {}, {}, {}
    genrecast = str(Path(sys.executable).parent / "genrecast")
    with tempfile.TemporaryDirectory(prefix="genrecast-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model = pick_model(tmp)
        broker = MosquittoBroker(tmp)
        broker.start()
        try:
            if "live" in parts:
                for t in settings:
                    live[t] = live_run(model, broker, args.seconds, t)
                    lat, cpu, peak, stop_ms = live[t]
                    print(f"live: threads={t} latency_p50_ms={np.percentile(lat, 50):.1f} "
                          f"latency_p99_ms={np.percentile(lat, 99):.1f} cpu_per_audio_s={cpu:.4f} rss_mb={peak:.0f} "
                          f"stop_ms={stop_ms:.0f} load_avg={os.getloadavg()[0]:.1f}", flush=True)
            if "first" in parts and SHARED_GTZAN.is_dir():
                first = first_answers([genrecast, *([args.compare] if args.compare else [])], model, broker, tmp,
                                      args.first_tracks, args.first_seconds)
        finally:
            broker.stop()
        if "classify" in parts:
            x_realtime = classify_throughput(model, tmp, args.tracks, settings)
            for t in settings:
                rss[t] = tuple(classify_rss_mb(model, tmp, s, t) for s in (30.0, args.classify_hours * 3600))
                print(f"classify: threads={t} rss_30s_mb={rss[t][0]:.0f} "
                      f"rss_{args.classify_hours:g}h_mb={rss[t][1]:.0f}", flush=True)
    for e, (a, c) in first.items():
        print(f"first: {e}: first_answer_s={a:.2f} first_correct_s={c:.2f}")
    t = settings[-1]
    fields = [f"threads={t}"]
    if live:
        lat, cpu, peak, stop_ms = live[t]
        p50, p99 = np.percentile(lat, [50, 99])
        print(f"bench: model {model.name}; {len(lat)} windows over {args.seconds:g} s paced; latency max "
              f"{max(lat):.1f} ms; SIGTERM to exit {stop_ms:.0f} ms; {args.tracks} x 30-s tracks")
        fields += [f"latency_p50_ms={p50:.1f}", f"latency_p99_ms={p99:.1f}", f"cpu_per_audio_s={cpu:.4f}"]
    if x_realtime:
        fields.append(f"classify_x_realtime={x_realtime[t]:.0f}")
    if live:
        fields.append(f"rss_mb={live[t][2]:.0f}")
    if rss:
        fields += [f"classify_rss_30s_mb={rss[t][0]:.0f}", f"classify_rss_{args.classify_hours:g}h_mb={rss[t][1]:.0f}"]
    if first:
        fields += [f"first_answer_s={first[genrecast][0]:.2f}", f"first_correct_s={first[genrecast][1]:.2f}"]
    if len(settings) > 1 and x_realtime:
        print("classify: " + " ".join(f"threads={k} x_realtime={v:.0f}" for k, v in x_realtime.items()))
    print("daemon: " + " ".join(fields))


if __name__ == "__main__":
    from bench_cli import run

    run(main)
