"""The trainer's on-disk cache: what a run used is marked, and what no run has used since is removed on request.

Embeddings (``<key>.npz``) and acoustic banks (``acoustic/<chain>-<bank id>/``) are keyed by content, so a changed
corpus, chain or backbone leaves its old entries behind for good; only a run can tell which ones it still reads.
Each entry's modification time is its last use (set on every hit), so ``train-transfer --prune-cache`` removes the
entries older than the run's start.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

ACOUSTIC = "acoustic"  # the banks' folder inside the cache


def mark_used(entry: Path) -> None:
    """A hit: the entry's modification time becomes now (its content is unchanged)."""
    os.utime(entry)


@dataclass(frozen=True)
class Pruned:
    entries: int
    bytes: int


def _size(entry: Path) -> int:
    if entry.is_dir():
        return sum(p.stat().st_size for p in entry.rglob("*") if p.is_file())
    return entry.stat().st_size


def entries(cache: Path) -> list[Path]:
    """Every embedding file and bank folder in ``cache``; anything else there is not the trainer's to remove."""
    banks = sorted(p for p in (cache / ACOUSTIC).iterdir() if p.is_dir()) if (cache / ACOUSTIC).is_dir() else []
    return sorted(cache.glob("*.npz")) + banks


def prune(cache: Path, used_since: float) -> Pruned:
    """Remove the entries last used before ``used_since`` (a ``time.time()``); a run's leftover ``.tmp.npz`` of a
    killed write goes too."""
    removed = size = 0
    for entry in entries(cache):
        if entry.stat().st_mtime < used_since:
            size += _size(entry)
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            removed += 1
    return Pruned(removed, size)
