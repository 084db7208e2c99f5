"""Size and single-window latency of a genre model under onnxruntime on one core.

Run on demand (not in CI): ``.venv/bin/python benchmarks/model_bench.py [--model PATH] [--fast PATH] [--reps N]``.
One window per call (the daemon's live case). The fast variant (``models/genrecast-gtzan-fast.onnx`` when present)
is measured first and printed above as ``fast: ...``. ``window_ms_p50`` is per-thread CPU time, which a busy
machine does not inflate (with one intra-op thread onnxruntime computes on the calling thread); wall time is printed
too. The last line is ``model: onnx_kb=<> window_ms_p50=<> params=<>``; params counts the graph's stored numbers
(batch norm folded into the convolutions, plus the baked-in input normalisation).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from genrecast.daemon.model import DEFAULT_MODEL, load_model  # noqa: E402

FAST_MODEL = DEFAULT_MODEL.with_name("genrecast-gtzan-fast.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"ONNX model (default {DEFAULT_MODEL.name})")
    parser.add_argument("--fast", type=Path, default=FAST_MODEL, help="the fast variant, measured first if present")
    parser.add_argument("--reps", type=int, default=300, help="windows timed per model (default 300)")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error(f"--reps: at least 1, got {args.reps}")
    if args.fast != FAST_MODEL and not args.fast.is_file():  # the shipped one may be absent; one named must not be
        parser.error(f"--fast {args.fast}: no such file")
    if args.fast.is_file():
        print(f"fast: {measure(args.fast, args.reps)}")
    print(f"model: {measure(args.model, args.reps)}")


def measure(path: Path, reps: int) -> str:
    """Print one model's latency percentiles; return its summary fields."""
    model = load_model(path)  # single-threaded, as the daemon opens it
    spec = model.spec
    rng = np.random.default_rng(0)
    window = rng.normal(-6.0, 3.0, size=(1, spec.dsp.n_mels, spec.n_frames)).astype(np.float32)
    for _ in range(20):
        model.predict(window)
    cpu, wall = [], []
    for _ in range(reps):
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        model.predict(window)
        cpu.append((time.thread_time_ns() - c0) / 1e6)
        wall.append((time.perf_counter_ns() - w0) / 1e6)
    params = sum(int(np.prod(t.dims)) for t in onnx.load(str(path)).graph.initializer)
    kb = path.stat().st_size / 1024
    print(f"{spec.model_id}: {spec.n_frames}-frame window, {reps} single-window calls, 1 thread")
    for name, times in (("cpu ", cpu), ("wall", wall)):
        p50, p90, p99 = np.percentile(times, [50, 90, 99])
        print(f"{name} ms p50 {p50:.3f}  p90 {p90:.3f}  p99 {p99:.3f}")
    return f"onnx_kb={kb:.0f} window_ms_p50={np.percentile(cpu, 50):.3f} params={params}"


if __name__ == "__main__":
    from bench_cli import run

    run(main)
