"""Every core: whole model calls on several threads at once, outputs in order, memory still flat."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np
import pytest
from genrecast.daemon.inference import Inference
from genrecast.daemon.model import load_model


class Meeting:
    """The real model, whose calls wait until ``n`` of them are running at once: serial calls never get there."""

    def __init__(self, model, n: int) -> None:
        self.model, self.barrier, self.threads = model, threading.Barrier(n, timeout=30), set()

    def predict(self, windows):
        self.threads.add(threading.get_ident())
        self.barrier.wait()
        return self.model.predict(windows)


@contextmanager
def running(model, threads: int):
    """An :class:`Inference` closed however the test ends."""
    inference = Inference(model, threads)
    try:
        yield inference
    finally:
        inference.close()


def batches(model, n: int, size: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.normal(-5, 3, (size, model.spec.dsp.n_mels, model.spec.n_frames)).astype(np.float32)
            for _ in range(n)]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_every_batch_comes_back_in_order(model, threads):
    loaded = load_model(model)
    xs = batches(loaded, 7)
    want = [loaded.predict(x).genre for x in xs]
    with running(loaded, threads) as inference:
        got = inference.predict(xs)
        assert [g.genre.shape for g in got] == [(2, 10)] * 7
        assert all(np.array_equal(g.genre, w) for g, w in zip(got, want, strict=True))
        ordered = list(inference.ordered((x, i) for i, x in enumerate(xs)))
        assert [tag for _, tag in ordered] == list(range(7))
        assert all(np.array_equal(o.genre, w) for (o, _), w in zip(ordered, want, strict=True))


def test_two_threads_run_two_calls_at_once(model):
    """The tick's batches are shared: the calling thread runs one while a worker runs the other."""
    meeting = Meeting(load_model(model), 2)
    with running(meeting, 2) as inference:
        assert len(inference.predict(batches(meeting.model, 2))) == 2
        assert len(meeting.threads) == 2 and threading.get_ident() in meeting.threads
        # and a file's batches while the caller cuts the next ones (two calls at once, or the barrier would break)
        meeting.threads.clear()
        assert len(list(inference.ordered((x, None) for x in batches(meeting.model, 4)))) == 4
        assert len(meeting.threads) >= 2


def test_one_batch_runs_on_the_calling_thread(model):
    """One window a tick (one stream) pays no hand-over to a worker."""
    meeting = Meeting(load_model(model), 1)
    with running(meeting, 2) as inference:
        inference.predict(batches(meeting.model, 1))
        assert meeting.threads == {threading.get_ident()}


def test_busy_workers_are_not_waited_for(model):
    """On a machine whose other cores are taken, the workers may not run for a while: the caller then runs every
    batch itself instead of waiting for them (a tick must not stall on a thread that never got a core)."""
    loaded = load_model(model)
    inference = Inference(loaded, 3)
    release = threading.Event()
    try:
        stuck = [inference._pool.submit(release.wait) for _ in range(3)]  # every worker busy elsewhere
        xs = batches(loaded, 5)
        results = {}
        caller = threading.Thread(target=lambda: results.update(
            got=inference.predict(xs), ordered=list(inference.ordered((x, i) for i, x in enumerate(xs)))))
        caller.start()
        caller.join(60)  # a hang guard: waiting for the workers would only end with the release below
        assert not caller.is_alive(), "the caller waited for busy workers"
        assert all(np.array_equal(g.genre, loaded.predict(x).genre) for g, x in zip(results["got"], xs, strict=True))
        assert [i for _, i in results["ordered"]] == list(range(5))
        assert not any(f.done() for f in stuck)
    finally:
        release.set()
        inference.close()
