"""The trainer's cache pruning (training.cache): only entries a run did not use, only the trainer's, never while
another run holds the cache."""

from __future__ import annotations

import os
import time

from genrecast.training.cache import ACOUSTIC, entries, mark_used, prune, start_run


def _old(path):
    os.utime(path, (time.time() - 86400, time.time() - 86400))
    return path


def _cache(tmp_path):
    cache = tmp_path / "c"
    (cache / ACOUSTIC / "train-0123456789ab").mkdir(parents=True)
    (cache / ACOUSTIC / "synthetic-noise").mkdir()  # room_bench's, when its cache is this folder
    for name in ("a" * 24 + ".npz", "b" * 24 + ".npz", "c" * 24 + ".1234.tmp.npz", "flips.npz", "notes.txt"):
        (cache / name).write_bytes(b"0" * 100)
    for p in [*cache.iterdir(), *(cache / ACOUSTIC).iterdir()]:
        _old(p)
    return cache


def test_prune_removes_only_the_trainers_entries_the_run_did_not_use(tmp_path):
    cache = _cache(tmp_path)
    assert [p.name for p in entries(cache)] == ["a" * 24 + ".npz", "b" * 24 + ".npz", "c" * 24 + ".1234.tmp.npz",
                                                "train-0123456789ab"]
    run = start_run(cache)
    mark_used(cache / ("a" * 24 + ".npz"))  # a hit
    (cache / ("d" * 24 + ".npz")).write_bytes(b"1")  # written by the run
    pruned = prune(run)
    assert (pruned.entries, pruned.size_bytes, pruned.busy, pruned.failed) == (3, 200, False, ())
    left = sorted(p.name for p in cache.iterdir())
    assert left == [".lock", "a" * 24 + ".npz", ACOUSTIC, "d" * 24 + ".npz", "flips.npz", "notes.txt"]
    assert [p.name for p in (cache / ACOUSTIC).iterdir()] == ["synthetic-noise"]


def test_prune_leaves_a_cache_another_run_holds(tmp_path):
    cache = _cache(tmp_path)
    run, other = start_run(cache), start_run(cache)
    assert prune(run).busy and len(entries(cache)) == 4
    other.lock.close()  # the other run ended
    assert prune(run).entries == 4


def test_a_hit_on_a_cache_it_cannot_write_still_serves(tmp_path):
    mark_used(tmp_path / "gone.npz")  # no error: marking is best effort
