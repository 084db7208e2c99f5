"""How often the published state changes on real music, for choosing the decision's hysteresis and dwell defaults.

Each long GTZAN excerpt (15-20 s) in ``--data`` is looped to ``--seconds`` of audio, as a radio playing one
style for a while, and classified window by window (hop 1 s) by the model, exactly as ``genrecast run`` cuts
windows. Every decision setting in the grid then replays the same windows through :class:`daemon.decision.Decider`.
Printed per setting: state changes per hour of audio (each one a retained message, a journal line and a Home
Assistant state change), the share of windows whose state names the track's true genre, and the share uncertain.
The last line sums up the shipped defaults.

    .venv/bin/python benchmarks/decision_flips.py --data ../shared/data/gtzan
"""

from __future__ import annotations

import argparse
import csv
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from genrecast.daemon.decision import Decider, DecisionConfig  # noqa: E402
from genrecast.daemon.model import DEFAULT_MODEL, load_model  # noqa: E402
from genrecast.daemon.pipeline import Pipeline  # noqa: E402
from genrecast.dsp import read_audio  # noqa: E402


def long_excerpts(data: Path) -> list[tuple[str, Path]]:
    with open(data / "manifest.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["excerpt"].startswith("start of track")]
    return [(r["genre"], next(data.glob(f"{r['genre']}/{r['track']}.*"))) for r in rows]


def windows_of(model, path: Path, seconds: float):
    audio = read_audio(path)
    looped = np.tile(audio.samples, -(-round(seconds * audio.sample_rate) // audio.samples.shape[0]))
    windows = Pipeline(model.spec, 1.0, audio.sample_rate).push(looped[: round(seconds * audio.sample_rate)], True)
    out = model.predict(np.stack([w.logmel for w in windows]))
    return out.genre, out.music, np.array([w.rms for w in windows])


def replay(model, tracks, cfg: DecisionConfig) -> tuple[int, float, float, int]:
    """State changes, share of windows on the true genre, share uncertain, windows.

    A stream's first decision (from the ``uncertain`` every stream starts in) is not counted as a change."""
    changes = right = uncertain = total = 0
    for genre, (probs, music, rms) in tracks:
        decider, last, settled = Decider(model.spec.labels, cfg, model.spec.music_threshold), None, False
        for p, m, r in zip(probs, music, rms, strict=True):
            state = decider.update(p, m, r)
            changes += settled and not state.same_as(last)
            settled = settled or state.kind != "uncertain"
            last = state
            right += state.genre == genre
            uncertain += state.kind == "uncertain"
        total += len(probs)
    return changes, right / total, uncertain / total, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "gtzan")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--seconds", type=float, default=240.0, help="each excerpt looped to this long (240)")
    args = parser.parse_args()
    model = load_model(args.model)
    tracks = [(genre, windows_of(model, path, args.seconds)) for genre, path in long_excerpts(args.data)]
    base = DecisionConfig()
    grid = [replace(base, leave_confidence=leave, dwell_windows=dwell, min_confidence=enter)
            for enter, leave, dwell in itertools.product((0.4, 0.5), (0.2, 0.3, 0.4), (1, 3, 5, 8))
            if leave <= enter]
    before = replace(base, leave_confidence=base.min_confidence, dwell_windows=1)  # no hysteresis, no dwell
    print(f"model {model.model_id}; {len(tracks)} excerpts looped to {args.seconds:g} s, hop 1 s; "
          f"smoothing {base.smoothing} over {base.windows}")
    print(f"{'enter':>5} {'leave':>5} {'dwell':>5} {'changes/h':>9} {'on genre':>8} {'uncertain':>9}")
    rows = {}
    for cfg in [*grid, before, base]:
        changes, right, uncertain, total = replay(model, tracks, cfg)
        rows[cfg] = (changes * 3600 / total, right, uncertain)
        print(f"{cfg.min_confidence:5.2f} {cfg.leave_confidence:5.2f} {cfg.dwell_windows:5d} "
              f"{rows[cfg][0]:9.0f} {right:8.1%} {uncertain:9.1%}")
    per_hour, right, uncertain = rows[base]
    print(f"decision: changes_per_hour={per_hour:.0f} without_hysteresis={rows[before][0]:.0f} "
          f"on_genre={right:.3f} uncertain={uncertain:.3f}")


if __name__ == "__main__":
    main()
