"""Check training/musicnn.py against the original TensorFlow graph (run by scripts/musicnn_reference.py).

    .venv/bin/python scripts/musicnn_parity.py inputs IN.npz FILE...       # 3-s patches of FILEs, musicnn's input
    /tmp/tfref/bin/python scripts/musicnn_reference.py WHEEL_DIR MSD_musicnn IN.npz REF.npz
    .venv/bin/python scripts/musicnn_parity.py compare WHEEL MSD_musicnn IN.npz REF.npz [--fixture OUT.npz]

``inputs`` cuts up to three patches per file with genrecast's own front end; ``compare`` prints the largest
difference per layer and the port's top tags per file, and ``--fixture`` stores a small slice of the reference
(every 8th frame of each map) for the CI test ``tests/test_musicnn_port.py``.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from genrecast.dsp import read_audio  # noqa: E402
from genrecast.dsp.windows import hop_frames  # noqa: E402
from genrecast.training.corpus import clip_windows  # noqa: E402
from genrecast.training.musicnn import MUSICNN_DSP, N_FRAMES, TAGS, load_musicnn, musicnn_input  # noqa: E402

LAYERS = ("logits", "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate")
MAPS = ("timbral", "temporal", "cnn1", "cnn2", "cnn3")


def inputs(out: str, files: list[str]) -> None:
    xs, names = [], []
    for f in files:
        audio = read_audio(f)
        w = clip_windows(audio.samples, audio.sample_rate, MUSICNN_DSP, N_FRAMES, hop_frames(MUSICNN_DSP, 3.0), 3)
        xs.append(musicnn_input(torch.from_numpy(w))[:, 0].numpy())
        names += [Path(f).stem] * len(w)
    # float16-exact values, so a stored fixture reproduces the very input both graphs saw
    x = np.concatenate(xs).astype(np.float16).astype(np.float32)
    np.savez(out, x=x, names=np.array(names))
    print(f"{len(x)} patches from {len(files)} files -> {out}")


def compare(wheel: str, model: str, src: str, ref: str, fixture: str | None) -> None:
    net = load_musicnn(wheel, model)
    x, r = np.load(src), np.load(ref)
    with torch.no_grad():
        acts = net.activations(torch.from_numpy(x["x"]).unsqueeze(1))
    for name in LAYERS:
        ours = getattr(acts, name).numpy()
        theirs = r[name].reshape(ours.shape)
        print(f"{name:12s} {str(ours.shape):18s} max|diff| {np.abs(ours - theirs).max():.2e}  "
              f"max|ref| {np.abs(theirs).max():.2e}")
    p = torch.sigmoid(acts.logits).numpy()
    print(f"tag probabilities: max|diff| {np.abs(p - 1 / (1 + np.exp(-r['logits']))).max():.2e}")
    names = x["names"]
    for stem in dict.fromkeys(names):
        mean = p[names == stem].mean(axis=0)
        print(f"{stem:20s} " + ", ".join(TAGS[model][i] for i in np.argsort(-mean)[:4]))
    if fixture:
        keep = {n: r[n].reshape(getattr(acts, n).shape)[:, ::8] if n in MAPS else r[n] for n in LAYERS}
        np.savez_compressed(fixture, x=x["x"].astype(np.float16), **{n: v.astype(np.float32) for n, v in keep.items()})
        print(f"fixture -> {fixture}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("inputs")
    a.add_argument("out")
    a.add_argument("files", nargs="+")
    c = sub.add_parser("compare")
    for arg in ("wheel", "model", "src", "ref"):
        c.add_argument(arg)
    c.add_argument("--fixture")
    args = ap.parse_args()
    if args.cmd == "inputs":
        inputs(args.out, args.files)
    else:
        compare(args.wheel, args.model, args.src, args.ref, args.fixture)
