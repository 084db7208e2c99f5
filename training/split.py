"""Train/validation/test splits by track, never by window.

Windows of one track are strongly correlated (same recording, same mix); putting some in training and others in
test measures memorisation, which is how the original project's 94.6 % came about. Every function here assigns
whole tracks to exactly one part.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import Track

PARTS = ("train", "val", "test")
# accepted file names per part in a split folder; "valid" is what the fault-filtered GTZAN split files use
_PART_FILES = {"train": ("train.txt", "train_filtered.txt"), "val": ("val.txt", "valid.txt", "valid_filtered.txt"),
               "test": ("test.txt", "test_filtered.txt")}


class SplitError(ValueError):
    """A split that cannot be used: overlapping parts, an empty part, an unreadable split folder."""


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    source: str  # "random(seed=0, val=0.15, test=0.25)" or the split folder

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for part in PARTS:
            for tid in getattr(self, part):
                if tid in seen:
                    raise SplitError(f"track {tid} is in both {seen[tid]} and {part}")
                seen[tid] = part

    def part(self, name: str) -> tuple[str, ...]:
        if name not in PARTS:
            raise SplitError(f"unknown split part {name!r} (choose from {', '.join(PARTS)})")
        return getattr(self, name)

    def to_dict(self) -> dict:
        return {"source": self.source, **{p: list(getattr(self, p)) for p in PARTS}}

    @classmethod
    def from_dict(cls, data: dict) -> Split:
        return cls(*(tuple(data[p]) for p in PARTS), source=data["source"])


def _shuffled_by_genre(tracks: Sequence[Track], seed: int) -> list[list[str]]:
    """Each genre's track ids in a seeded order that does not depend on the order ``tracks`` come in."""
    by_genre: dict[str, list[str]] = defaultdict(list)
    for t in tracks:
        by_genre[t.genre].append(t.track_id)
    rng = np.random.default_rng(seed)
    out = []
    for genre in sorted(by_genre):
        ids = sorted(by_genre[genre])
        rng.shuffle(ids)
        out.append(ids)
    return out


def random_split(tracks: Sequence[Track], seed: int, val_frac: float = 0.15, test_frac: float = 0.25) -> Split:
    """Stratified by genre, deterministic for a seed and independent of the order ``tracks`` come in.

    Each genre with at least three tracks gives at least one to validation and one to test, so every genre is
    tested even when the data are tiny.
    """
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    for ids in _shuffled_by_genre(tracks, seed):
        n = len(ids)
        n_test = max(1, round(n * test_frac)) if n >= 3 else 0
        n_val = max(1, round(n * val_frac)) if n >= 3 else 0
        parts["test"] += ids[:n_test]
        parts["val"] += ids[n_test : n_test + n_val]
        parts["train"] += ids[n_test + n_val :]
    return Split(*(tuple(sorted(parts[p])) for p in PARTS), source=f"random(seed={seed}, val={val_frac}, "
                 f"test={test_frac}, stratified by genre, by track)")


def kfold_split(tracks: Sequence[Track], folds: int, fold: int, seed: int, val_frac: float = 0.15) -> Split:
    """Fold ``fold`` (0-based) of a stratified k-fold by track: over the ``folds`` folds every track is tested once.

    With a few dozen tracks one test part is too small to rank anything; pooling the k test parts scores every
    track, at k times the training cost. Validation tracks come from the other folds.
    """
    if not 0 <= fold < folds or folds < 2:
        raise SplitError(f"fold must be in 1..{folds} and folds >= 2, got fold {fold + 1} of {folds}")
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    for ids in _shuffled_by_genre(tracks, seed):
        rest = [t for i, t in enumerate(ids) if i % folds != fold]
        n_val = max(1, round(len(rest) * val_frac)) if len(rest) >= 2 else 0
        parts["test"] += ids[fold::folds]
        parts["val"] += rest[:n_val]
        parts["train"] += rest[n_val:]
    return Split(*(tuple(sorted(parts[p])) for p in PARTS), source=f"fold {fold + 1}/{folds} (seed={seed}, "
                 f"val={val_frac}, stratified by genre, by track)")


def _track_id(line: str) -> str:
    """``blues/blues.00012.wav`` or ``blues.00012`` -> ``blues.00012``."""
    name = line.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, _, ext = name.rpartition(".")
    return stem if stem and ext.lower() in {"wav", "au", "flac", "ogg", "aiff", "aif", "mp3"} else name


def read_split(folder: str | os.PathLike) -> Split:
    """A folder with one file per part (``train.txt``, ``val.txt``, ``test.txt``), one track id or path per line.

    Use it for an artist-disjoint ("fault-filtered") split; blank lines and ``#`` comments are ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SplitError(f"{folder}: a split is a folder holding train.txt, val.txt and test.txt")
    parts = {}
    for part in PARTS:
        found = [folder / n for n in _PART_FILES[part] if (folder / n).is_file()]
        if not found:
            raise SplitError(f"{folder}: no {' or '.join(_PART_FILES[part])}")
        lines = found[0].read_text().splitlines()
        parts[part] = tuple(_track_id(x) for x in lines if x.strip() and not x.lstrip().startswith("#"))
    return Split(*(parts[p] for p in PARTS), source=str(folder))


def restrict(split: Split, available: Sequence[str]) -> tuple[Split, list[str]]:
    """Drop ids with no usable track (unreadable, absent); returns the split and the dropped ids."""
    have = set(available)
    missing = sorted(t for p in PARTS for t in split.part(p) if t not in have)
    kept = Split(*(tuple(t for t in split.part(p) if t in have) for p in PARTS), source=split.source)
    for p in ("train", "val"):
        if not kept.part(p):
            raise SplitError(f"the {p} part of split {split.source} has no usable track")
    return kept, missing
