"""How often the published state changes on real music, for choosing the decision's hysteresis and dwell defaults.

Each long GTZAN excerpt (15-20 s) in ``--data`` is looped to ``--seconds`` of audio, as a radio playing one
style for a while, and classified window by window (hop 1 s) by the model, exactly as ``genrecast run`` cuts
windows of a live stream: the provisional windows of its first seconds (the audio so far repeated to one window),
then the full ones. Every decision setting in the grid then replays the same windows through
:class:`daemon.decision.Decider`; the hysteresis/dwell grid replays the full windows only, without the confident
first answer (``first_confidence`` None), as the daemon decided before issue 19. Printed per setting: state
changes per hour of audio (each one a retained message, a journal line and a Home Assistant state change), the
share of windows whose state names the track's true genre, and the share uncertain; for the first-answer grid also
the median audio seconds to the first genre named and to the first correct one (a window counts at its end, so
this is the audio the answer needed; ``benchmarks/daemon_bench.py`` measures the same on the daemon's clock).
The last line sums up the shipped defaults, before (full windows, full dwell) and after.

    .venv/bin/python benchmarks/decision_flips.py --data ../shared/data/gtzan
"""

from __future__ import annotations

import argparse
import csv
import itertools
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from genrecast.daemon.config import MODEL_BATCH  # noqa: E402
from genrecast.daemon.decision import Decider, DecisionConfig  # noqa: E402
from genrecast.daemon.inference import Inference  # noqa: E402
from genrecast.daemon.model import DEFAULT_MODEL, HEARD, genre_head, load_model  # noqa: E402
from genrecast.daemon.pipeline import Pipeline  # noqa: E402
from genrecast.dsp import read_audio  # noqa: E402

from genrecast.errors import UserError  # noqa: E402


def long_excerpts(data: Path) -> list[tuple[str, Path]]:
    with open(data / "manifest.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["excerpt"].startswith("start of track")]
    return [(r["genre"], next(data.glob(f"{r['genre']}/{r['track']}.*"))) for r in rows]


@dataclass(frozen=True)
class Windows:
    probs: np.ndarray
    music: np.ndarray
    rms: np.ndarray
    end_s: np.ndarray
    provisional: np.ndarray  # bool


def made_with(model, head: str, **settings) -> dict[str, str]:
    """What a cache of window outputs depends on: the model, the head read, the stages its windows go through (a
    cache made before the level normalisation replayed windows the daemon no longer sees) and the bench's own
    ``settings``."""
    return {"model": model.model_id, "head": head, "stages": ",".join(model.spec.stages),
            **{k: str(v) for k, v in settings.items()}}


def save_windows(path: Path, groups: dict[str, list[Windows]], made: dict[str, str]) -> None:
    """Named lists of streams' windows, and what they were made with (:func:`made_with`), to one ``.npz``."""
    np.savez(path, **{f"made.{k}": np.array(v) for k, v in made.items()},
             **{f"{g}.{i}.{f.name}": getattr(w, f.name) for g, ws in groups.items() for i, w in enumerate(ws)
                for f in dataclass_fields(Windows)})


def load_windows(path: Path, made: dict[str, str]) -> dict[str, list[Windows]]:
    """What :func:`save_windows` wrote, refused (naming the difference) unless made as ``made`` says."""
    with np.load(path) as saved:
        have = {k.removeprefix("made."): str(saved[k]) for k in saved.files if k.startswith("made.")}
        if have != made:
            diff = sorted(k for k in made.keys() | have.keys() if have.get(k) != made.get(k))
            raise UserError(f"--cache {path}: made with " + ", ".join(f"{k} {have.get(k, '(none)')}" for k in diff)
                            + ", not " + ", ".join(f"{k} {made.get(k, '(none)')}" for k in diff) + ": remove it")
        counts: dict[str, int] = {}
        for k in saved.files:
            if not k.startswith("made."):
                g, i, _ = k.split(".")
                counts[g] = max(counts.get(g, 0), int(i) + 1)
        return {g: [Windows(*(saved[f"{g}.{i}.{f.name}"] for f in dataclass_fields(Windows))) for i in range(n)]
                for g, n in counts.items()}


def windows_of(inference: Inference, path: Path, seconds: float, head: str | None) -> Windows:
    """The excerpt's windows, looped to ``seconds``."""
    audio = read_audio(path)
    return stream_windows(inference, looped(audio.samples, round(seconds * audio.sample_rate)), audio.sample_rate,
                          head)


def looped(samples: np.ndarray, n: int) -> np.ndarray:
    """``samples`` repeated to ``n`` samples, as a radio playing one style for a while."""
    return np.tile(samples, -(-n // samples.shape[0]))[:n]


def stream_windows(inference: Inference, samples: np.ndarray, rate: int, head: str | None) -> Windows:
    """A stream's windows as ``genrecast run`` cuts them at hop 1 s, scored in the daemon's batches: one call for
    all of them held every window's intermediates at once (2.4 GB for 0.4.0, and slower per window)."""
    pipeline = Pipeline(inference.model.spec, 1.0, rate, provisional=True)
    windows = pipeline.push(samples, True)
    outs = inference.predict([np.stack([w.logmel for w in windows[i:i + MODEL_BATCH]])
                              for i in range(0, len(windows), MODEL_BATCH)])
    return Windows(np.concatenate([o.genre_for(head) for o in outs]), np.concatenate([o.music for o in outs]),
                   np.array([w.rms for w in windows]), np.array([w.end_s for w in windows]),
                   np.array([w.provisional for w in windows]))


@dataclass(frozen=True)
class Replay:
    changes_per_hour: float
    on_genre: float  # share of windows whose state names the true genre
    uncertain: float
    first_answer_s: float  # median over the excerpts: audio until a genre is first named
    first_correct_s: float  # ... until the true genre is first named (excerpts never right count as infinite)


def replay(model, tracks, cfg: DecisionConfig, provisional: bool) -> Replay:
    """Every excerpt as one stream's windows (its provisional ones only when ``provisional``).

    A stream's first decision (from the ``uncertain`` every stream starts in) is not counted as a change; a wrong
    first answer corrected later is one change."""
    changes = right = uncertain = total = 0
    firsts, corrects = [], []
    for genre, w in tracks:
        decider = Decider.for_model(model.spec, cfg, 1.0)
        last, settled = None, False
        first = correct = np.inf
        for p, m, r, end, prov in zip(w.probs, w.music, w.rms, w.end_s, w.provisional, strict=True):
            if prov and not provisional:
                continue
            state = decider.update(p, m, r)
            changes += settled and not state.same_as(last)
            settled = settled or state.kind != "uncertain"
            last = state
            right += state.genre == genre
            uncertain += state.kind == "uncertain"
            total += 1
            first = min(first, end) if state.kind == "genre" else first
            correct = min(correct, end) if state.genre == genre else correct
        firsts.append(first)
        corrects.append(correct)
    audio_s = sum(float(w.end_s[-1]) for _, w in tracks)
    return Replay(changes * 3600 / audio_s, right / total, uncertain / total, float(np.median(firsts)),
                  float(np.median(corrects)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "gtzan",
                        help="the GTZAN folder itself, with its manifest.csv (default ../shared/data/gtzan)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"ONNX model (default {DEFAULT_MODEL.name})")
    parser.add_argument("--seconds", type=float, default=240.0, help="each excerpt looped to this long (240)")
    parser.add_argument("--threads", type=int, default=2, help="model calls at once, as the daemon's threads (2)")
    parser.add_argument("--heard", choices=HEARD, default="auto",
                        help="a stream's heard setting, for a model with two genre heads: auto (default), room or "
                             "direct")
    parser.add_argument("--recorded", action="store_true",
                        help="the excerpts reach the daemon as a radio piped in, not by a microphone: under "
                             "--heard auto a model with a room detector weighs its heads (a microphone reads the room "
                             "head)")
    parser.add_argument("--cache", type=Path, help="an .npz of the windows' outputs: read when it exists (refused "
                                                   "unless made with the same model, head, level normalisation, "
                                                   "seconds and number of excerpts), else written")
    args = parser.parse_args()
    model = load_model(args.model)
    read = genre_head(model.spec, args.heard, recorded=args.recorded) or "room"
    excerpts = long_excerpts(args.data)
    made = made_with(model, read, seconds=args.seconds, excerpts=len(excerpts))
    if args.cache and args.cache.is_file():  # the same model's windows, saved by an earlier run
        windows = load_windows(args.cache, made)["excerpts"]
    else:
        inference = Inference(model, args.threads)
        try:
            windows = [windows_of(inference, path, args.seconds, read) for _, path in excerpts]
        finally:
            inference.close()
        if args.cache:
            save_windows(args.cache, {"excerpts": windows}, made)
    tracks = [(genre, w) for (genre, _), w in zip(excerpts, windows, strict=True)]
    shipped = DecisionConfig()
    # before issue 19: full windows only, always the dwell, no music margin, silence at the first quiet window and
    # leave 0.3 (the last three changed 2026-12-07; their own bench is music_flips.py), so "before" and "without
    # hysteresis" stay the figures they were
    base = replace(shipped, first_confidence=None, music_margin=0.0, silence_windows=1, leave_confidence=0.3)
    grid = [replace(base, leave_confidence=leave, dwell_windows=dwell, min_confidence=enter)
            for enter, leave, dwell in itertools.product((0.4, 0.5), (0.2, 0.3, 0.4), (1, 3, 5, 8))
            if leave <= enter]
    no_hysteresis = replace(base, leave_confidence=base.min_confidence, dwell_windows=1)
    head = f" ({read} genre head)" if model.spec.direct_head else ""
    print(f"model {model.model_id}{head}; {len(tracks)} excerpts looped to {args.seconds:g} s, hop 1 s; "
          f"smoothing {base.smoothing} over {base.windows}")
    print("full windows, no first answer:")
    print(f"{'enter':>5} {'leave':>5} {'dwell':>5} {'changes/h':>9} {'on genre':>8} {'uncertain':>9}")
    rows = {}
    for cfg in [*grid, no_hysteresis, base]:
        r = rows[cfg] = replay(model, tracks, cfg, provisional=False)
        print(f"{cfg.min_confidence:5.2f} {cfg.leave_confidence:5.2f} {cfg.dwell_windows:5d} "
              f"{r.changes_per_hour:9.0f} {r.on_genre:8.1%} {r.uncertain:9.1%}")
    print("provisional windows, then full ones; the first answer taken without the dwell at first_confidence:")
    print(f"{'first':>5} {'changes/h':>9} {'on genre':>8} {'uncertain':>9} {'first s':>7} {'correct s':>9}")
    before = rows[base]
    for first in (None, 0.5, 0.6, 0.7, 0.8, 0.9):
        cfg = replace(shipped, first_confidence=first)
        r = replay(model, tracks, cfg, provisional=True)
        rows[cfg] = r
        print(f"{first if first is not None else '-':>5} {r.changes_per_hour:9.0f} {r.on_genre:8.1%} "
              f"{r.uncertain:9.1%} {r.first_answer_s:7.2f} {r.first_correct_s:9.2f}")
    after = rows[shipped]
    print(f"decision: changes_per_hour={after.changes_per_hour:.0f} before={before.changes_per_hour:.0f} "
          f"without_hysteresis={rows[no_hysteresis].changes_per_hour:.0f} on_genre={after.on_genre:.3f} "
          f"(before {before.on_genre:.3f}) uncertain={after.uncertain:.3f} (before {before.uncertain:.3f}) "
          f"first_answer_audio_s={after.first_answer_s:.2f} (before {before.first_answer_s:.2f}) "
          f"first_correct_audio_s={after.first_correct_s:.2f} (before {before.first_correct_s:.2f})")


if __name__ == "__main__":
    from bench_cli import run

    run(main)
