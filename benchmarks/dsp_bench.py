"""Streaming log-mel vs librosa's batch melspectrogram, side by side in one run, single-threaded.

Run on demand (not in CI): ``.venv/bin/python benchmarks/dsp_bench.py [--reps N]``. Times are
per-thread CPU time (robust to other processes on a busy machine); the chunk p99 is wall time.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
from genrecast.dsp import DEFAULT_DSP, LogMelStream, read_audio, resample  # noqa: E402

SECONDS = 30
CHUNK = 1024
GTZAN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gtzan"


def test_audio(cfg) -> tuple[np.ndarray, str]:
    """30 s of real music from the shared excerpts when present, else a generated mix."""
    n = SECONDS * cfg.sample_rate
    files = sorted(GTZAN.glob("*/*.flac"))[:: max(1, len(sorted(GTZAN.glob("*/*.flac"))) // 4)]
    if files:
        parts = []
        for f in files:
            a = read_audio(f)
            parts.append(resample(a.samples, a.sample_rate, cfg.sample_rate))
            if sum(p.size for p in parts) >= n:
                break
        return np.concatenate(parts)[:n], f"real GTZAN excerpts ({', '.join(f.name for f in files[: len(parts)])})"
    rng = np.random.default_rng(0)
    t = np.arange(n) / cfg.sample_rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) + 0.05 * rng.standard_normal(n)
    return x.astype(np.float32), "generated tone + noise"


def run_stream(x: np.ndarray, cfg, chunk_times: list[float] | None = None) -> np.ndarray:
    stream = LogMelStream(cfg)
    out = []
    for i in range(0, x.size, CHUNK):
        t0 = time.perf_counter()
        out.append(stream.push(x[i : i + CHUNK]))
        if chunk_times is not None:
            chunk_times.append(time.perf_counter() - t0)
    return np.concatenate(out)


def run_librosa(x: np.ndarray, cfg) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=x, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
        center=False, power=cfg.power,
    )
    return np.log(np.maximum(mel, cfg.log_floor)).T


def cpu_time(fn, *args) -> float:
    t0 = time.thread_time()
    fn(*args)
    return time.thread_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    cfg = DEFAULT_DSP
    x, what = test_audio(cfg)
    print(f"audio: {x.size / cfg.sample_rate:.1f} s of {what}; chunks of {CHUNK} samples")

    ours = run_stream(x, cfg)  # also compiles / loads the numba cache
    ref = run_librosa(x.astype(np.float64), cfg)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    # Natural-log values: an absolute difference is the relative error of the mel power.
    max_rel_err = float(np.max(np.abs(np.expm1(ours.astype(np.float64) - ref))))

    stream_t, librosa_t, chunk_times = [], [], []
    for _ in range(args.reps):  # interleaved, so drift in machine load hits both alike
        stream_t.append(cpu_time(run_stream, x, cfg))
        librosa_t.append(cpu_time(run_librosa, x, cfg))
        run_stream(x, cfg, chunk_times)
    s, lib = float(np.median(stream_t)), float(np.median(librosa_t))
    print(f"stream (chunked) CPU ms: median {s * 1e3:.2f}  min {min(stream_t) * 1e3:.2f}")
    print(f"librosa (batch)  CPU ms: median {lib * 1e3:.2f}  min {min(librosa_t) * 1e3:.2f}")
    p99 = float(np.percentile(chunk_times, 99)) * 1e6
    print(
        f"dsp: speed_vs_librosa={lib / s:.2f}x realtime_factor={x.size / cfg.sample_rate / s:.0f} "
        f"max_rel_err={max_rel_err:.2e} chunk_p99_us={p99:.1f}"
    )


if __name__ == "__main__":
    from bench_cli import run

    run(main)
