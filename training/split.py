"""Cross-validation folds by track, never by window.

Windows of one track are strongly correlated (same recording, same mix); putting some in training and others in
test measures memorisation, which is how the original project's 94.6 % came about. :func:`kfold_split` assigns
whole tracks to exactly one part of each fold; :mod:`training.transfer_cv` deals the genre tracks with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PARTS = ("train", "val", "test")


class SplitError(ValueError):
    """A fold that cannot be dealt (an index outside 1..K), or parts that overlap."""


@dataclass(frozen=True)
class Track:
    """What a split deals: one genre track."""

    track_id: str  # unique, e.g. "blues.00012"
    genre: str
    path: Path


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for part in PARTS:
            for tid in getattr(self, part):
                if tid in seen:
                    raise SplitError(f"track {tid} is in both {seen[tid]} and {part}")
                seen[tid] = part

    def part(self, name: str) -> tuple[str, ...]:
        """``"train"``, ``"val"`` or ``"test"``."""
        return getattr(self, name)


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


def kfold_split(tracks: Sequence[Track], folds: int, fold: int, seed: int, val_frac: float = 0.15) -> Split:
    """Fold ``fold`` (0-based) of a stratified k-fold by track: over the ``folds`` folds every track is tested once.

    With a few hundred tracks one test part is too small to rank anything; pooling the k test parts scores every
    track, at k times the training cost. Validation tracks (for the temperature) come from the other folds.
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
    return Split(*(tuple(sorted(parts[p])) for p in PARTS))
