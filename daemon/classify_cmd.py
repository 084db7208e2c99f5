"""``genrecast classify FILE...``: offline, as fast as possible, one track-level genre per file.

The track's probabilities are the mean over its windows (cut exactly as the daemon cuts them). A bad
file gets one line on stderr and the others are still classified; the exit status is 2 if any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np

BATCH = 64  # windows per onnxruntime call: amortises call overhead, bounds memory for long files


@dataclass(frozen=True)
class FileWindows:
    seconds: float
    starts: list[float]  # each window's start offset, seconds
    probabilities: np.ndarray  # [n_windows, n_labels]


@dataclass(frozen=True)
class TrackResult:
    file: str
    genre: str
    probability: float
    probabilities: dict[str, float]
    windows: int
    seconds: float


def register(sub) -> None:
    p = sub.add_parser("classify", help="classify audio files offline (track-level genre)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", help="ONNX model (default: the bundled genrecast-gtzan.onnx)")
    p.add_argument("--hop", type=float, default=1.0, help="seconds between windows (default 1)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    p.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    p.set_defaults(func=handler)


def classify_windows(model, audio, hop_seconds: float, name: str) -> FileWindows:
    """Every window's probabilities for decoded ``audio``, cut exactly as the daemon cuts a stream."""
    from dsp import AudioError

    from .pipeline import Pipeline

    windows = Pipeline(model.spec, hop_seconds, audio.sample_rate).push(audio.samples, last=True)
    if not windows:
        raise AudioError(f"{name}: {audio.seconds:.2f} s is shorter than one {model.spec.window_seconds:g} s window")
    probs = np.concatenate([
        model.predict(np.stack([w.logmel for w in windows[i : i + BATCH]])) for i in range(0, len(windows), BATCH)
    ])
    return FileWindows(audio.seconds, [w.start_s for w in windows], probs)


def track_result(model, name: str, result: FileWindows) -> TrackResult:
    """The track-level answer from every window's: what ``classify`` prints and the HTTP API returns."""
    from .decision import track_probabilities

    probs = track_probabilities(result.probabilities)
    best = int(np.argmax(probs))
    labels = model.spec.labels
    return TrackResult(name, labels[best], float(probs[best]),
                       {k: round(float(v), 5) for k, v in zip(labels, probs, strict=True)},
                       len(result.starts), round(result.seconds, 3))


def track_json(result: TrackResult, model_id: str) -> dict:
    """One ``classify --json`` line: every field of :class:`TrackResult` plus the model id."""
    from dataclasses import asdict

    return {**asdict(result), "model_id": model_id}


def classify_file(model, path: str, hop_seconds: float) -> TrackResult:
    from dsp import read_audio

    return track_result(model, path, classify_windows(model, read_audio(path), hop_seconds, path))


def handler(args: argparse.Namespace) -> int:
    from dsp import AudioError

    from .cli import UserError
    from .config import valid_hop, valid_threads
    from .model import load_model

    if not valid_hop(args.hop):
        raise UserError(f"--hop must be more than 0 and at most 60 seconds, got {args.hop}")
    if not valid_threads(args.threads):
        raise UserError(f"--threads must be 1 to 64, got {args.threads}")
    model = load_model(args.model, args.threads)
    failed = 0
    for path in args.files:
        try:
            result = classify_file(model, path, args.hop)
        except AudioError as exc:
            print(f"genrecast classify: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps(track_json(result, model.model_id)), flush=True)
        else:
            print(f"{path}\t{result.genre}\t{result.probability:.3f}", flush=True)
    return 2 if failed else 0
