"""The trainer's on-disk cache: what a run used is marked, and what no run has used since is removed on request.

Embeddings (``<key>.npz``) and acoustic banks (``acoustic/<chain>-<bank id>/``) are keyed by content, so a changed
corpus, chain or backbone leaves its old entries behind for good; only a run can tell which ones it still reads.
Each entry's modification time is its last use (set on every hit), so ``train-transfer --prune-cache`` removes the
entries older than the run's start. Every run holds a shared lock on the cache; pruning needs it alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ACOUSTIC = "acoustic"  # the banks' folder inside the cache
_EMBEDDING = re.compile(r"[0-9a-f]{24}(\.\d+\.tmp)?\.npz")  # embed._key's names, and a killed write's leftover
_BANK = re.compile(r"[a-z]+-[0-9a-f]{12}")  # acoustic.build_banks' <chain>-<bank id>
_LOCK = ".lock"


def mark_used(entry: Path) -> None:
    """A hit: the entry's modification time becomes now (its content is unchanged). A cache this user may read but
    not write still serves the run; only pruning needs the marks."""
    with contextlib.suppress(OSError):
        os.utime(entry)


@dataclass(frozen=True)
class CacheRun:
    """A run's hold on the cache: the shared lock, and its start by the file system's own clock (which stamps the
    entries; ``time.time()`` runs ahead of it by up to a tick)."""

    cache: Path
    lock: IO
    started: float


def start_run(cache: Path) -> CacheRun:
    lock = (cache / _LOCK).open("a")
    fcntl.flock(lock, fcntl.LOCK_SH)
    os.utime(cache / _LOCK)
    return CacheRun(cache, lock, (cache / _LOCK).stat().st_mtime)


@dataclass(frozen=True)
class Pruned:
    entries: int
    size_bytes: int
    busy: bool = False  # another run holds the cache: nothing was removed
    failed: tuple[str, ...] = ()  # entries that could not be removed, each with why


def entries(cache: Path) -> list[Path]:
    """The trainer's embedding files and bank folders in ``cache``, by name; anything else is not its to remove."""
    files = [p for p in cache.glob("*.npz") if _EMBEDDING.fullmatch(p.name) and p.is_file() and not p.is_symlink()]
    folder = cache / ACOUSTIC
    banks = [p for p in folder.iterdir() if _BANK.fullmatch(p.name) and p.is_dir() and not p.is_symlink()] \
        if folder.is_dir() else []
    return sorted(files) + sorted(banks)


def _size(entry: Path) -> int:
    if entry.is_dir():
        return sum(p.stat().st_size for p in entry.rglob("*") if p.is_file())
    return entry.stat().st_size


def prune(run: CacheRun) -> Pruned:
    """Remove the entries last used before ``run`` started, if no other run holds the cache."""
    try:
        fcntl.flock(run.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return Pruned(0, 0, busy=True)
    removed = size = 0
    failed = []
    for entry in entries(run.cache):
        try:
            if entry.stat().st_mtime >= run.started:
                continue
            n = _size(entry)
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            failed.append(f"{entry}: {exc.strerror or exc}")
            continue
        removed, size = removed + 1, size + n
    fcntl.flock(run.lock, fcntl.LOCK_SH)
    return Pruned(removed, size, failed=tuple(failed))
