"""Running the model on every core: whole batches on several threads at once, over one onnxruntime session.

onnxruntime's own intra-op threads split each operator of a call between the cores; measured on this project's
2-core machine with the default model (``benchmarks/scale_bench.py``, docs/daemon.md *Every core*), that cost about
70 % more CPU per window than one thread and gained nothing at the daemon's batch sizes. Whole calls on separate
threads, each single-threaded, cost no more CPU per window than one thread: onnxruntime's ``run`` releases the GIL
and may be called from several threads at once on one session. So the session stays single-threaded and a call's
worth of windows is the unit of parallel work.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from .model import GenreModel, Output

T = TypeVar("T")


class Inference:
    """Up to ``threads`` model calls at once, on a pool of that many workers (none for one thread)."""

    def __init__(self, model: GenreModel, threads: int) -> None:
        self.model, self.threads = model, threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="inference") if threads > 1 else None

    def predict(self, batches: list[np.ndarray]) -> list[Output]:
        """Every batch's outputs, in order. The calling thread takes batches too, so one batch (or one thread) runs
        here with no hand-over, and a worker that the machine has not given a core yet is not waited for: it finds
        nothing left, or its turn is cancelled before it starts."""
        if self._pool is None or len(batches) < 2:
            return [self.model.predict(b) for b in batches]
        out: list[Output | None] = [None] * len(batches)
        todo = deque(range(len(batches)))

        def take() -> None:
            while True:
                try:
                    i = todo.popleft()  # atomic: each batch is taken once
                except IndexError:
                    return
                out[i] = self.model.predict(batches[i])

        helpers = [self._pool.submit(take) for _ in range(min(self.threads, len(batches)) - 1)]
        take()
        for helper in helpers:
            if not helper.cancel():  # started: it may be running a batch
                helper.result()
        return out

    def ordered(self, batches: Iterable[tuple[np.ndarray, T]]) -> Iterator[tuple[Output, T]]:
        """Outputs of a stream of ``(batch, tag)`` pairs, in order, each with its tag, while the caller goes on
        making the next batches; at most ``2 * threads`` batches are waiting or running, so memory stays flat. A batch
        the caller needs that no worker has started yet is run by the caller."""
        if self._pool is None:
            for batch, tag in batches:
                yield self.model.predict(batch), tag
            return
        pending: deque[tuple[Future, np.ndarray, T]] = deque()

        def first() -> tuple[Output, T]:
            future, batch, tag = pending.popleft()
            return (self.model.predict(batch) if future.cancel() else future.result()), tag

        try:
            for batch, tag in batches:
                pending.append((self._pool.submit(self.model.predict, batch), batch, tag))
                while len(pending) >= 2 * self.threads:
                    yield first()
            while pending:
                yield first()
        finally:  # the caller stopped early (an error): nothing of ours keeps running
            for future, _, _ in pending:
                future.cancel()
            for future, _, _ in pending:
                if not future.cancelled():
                    future.exception()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
