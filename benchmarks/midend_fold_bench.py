"""What folding the mid end's constant input channels saves: the musicnn backbone exported with and without it.

Run on demand (not in CI; needs the musicnn wheel that ``make setup`` fetches):
``.venv/bin/python benchmarks/midend_fold_bench.py [--reps N]``. Both graphs are the MSD_musicnn backbone with the
pruned front end (``Musicnn.pruned``), raw log-mel in, pooled features and penultimate layer out, exported as the
trainer exports (opset 17, dynamic batch); ``unfolded`` puts the first mid-end convolution back over all 561 channels.
They take turns, ``--reps`` calls each per batch size; ``ms`` is the median per-thread CPU time per window (one
intra-op thread computes on the calling thread, so a busy machine does not inflate it). The last line is
``fold: batch=<b> unfolded_ms=<> folded_ms=<> saved=<%> max_abs_diff=<>``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import copy  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from genrecast.training import DEFAULT_WHEEL as WHEEL  # noqa: E402
from genrecast.training.musicnn import N_FRAMES, load_musicnn, musicnn_input  # noqa: E402


class Backbone(torch.nn.Module):
    def __init__(self, net) -> None:
        super().__init__()
        self.net = net

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        acts = self.net.activations(musicnn_input(logmel))
        return torch.cat([acts.mean_pool, acts.max_pool, acts.penultimate], 1)


def session(net, path: Path):
    """An onnxruntime session of the exported backbone (imported here, after genrecast: it turns off onnxruntime's
    telemetry, which onnxruntime reads when it starts)."""
    import onnxruntime as ort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Backbone(net), (torch.zeros(2, 96, N_FRAMES) - 5,), str(path), input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, opset_version=17,
                          dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=60)
    parser.add_argument("--batches", default="1,2,8")
    args = parser.parse_args()
    msd = load_musicnn(WHEEL, "MSD_musicnn")
    folded = msd.pruned()
    unfolded = msd.pruned()
    unfolded.midend[0] = copy.deepcopy(msd.midend[0]).eval()
    line = ""
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {"unfolded": session(unfolded, Path(tmp) / "u.onnx"),
                    "folded": session(folded, Path(tmp) / "f.onnx")}
        for b in (int(x) for x in args.batches.split(",")):
            x = (np.random.default_rng(b).standard_normal((b, 96, N_FRAMES)) * 3 - 5).astype(np.float32)
            outs = {k: s.run(None, {"x": x})[0] for k, s in sessions.items()}
            diff = float(np.abs(outs["folded"] - outs["unfolded"]).max())
            cpu: dict[str, list[float]] = {k: [] for k in sessions}
            for _ in range(args.reps):
                for k, s in sessions.items():
                    t0 = time.thread_time()
                    s.run(None, {"x": x})
                    cpu[k].append((time.thread_time() - t0) / b * 1000)
            u, f = (float(np.median(cpu[k])) for k in ("unfolded", "folded"))
            line = (f"fold: batch={b} unfolded_ms={u:.3f} folded_ms={f:.3f} saved={1 - f / u:.1%} "
                    f"max_abs_diff={diff:.1e}")
            print(line, flush=True)
    print(f"{line} (load_avg={os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    from bench_cli import run

    run(main)
