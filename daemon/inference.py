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
        """Every batch's outputs, in order. The calling thread runs one share itself, so one batch (or one thread)
        runs here with no hand-over to a worker."""
        if self._pool is None or len(batches) < 2:
            return [self.model.predict(b) for b in batches]
        n = min(self.threads, len(batches))
        # batch i goes to share i % n: consecutive batches of the same size land on different threads
        futures = [self._pool.submit(self._run, batches[k::n]) for k in range(1, n)]
        shares = [self._run(batches[0::n]), *(f.result() for f in futures)]
        return [shares[i % n][i // n] for i in range(len(batches))]

    def _run(self, batches: list[np.ndarray]) -> list[Output]:
        return [self.model.predict(b) for b in batches]

    def ordered(self, batches: Iterable[tuple[np.ndarray, T]]) -> Iterator[tuple[Output, T]]:
        """Outputs of a stream of ``(batch, tag)`` pairs, in order, each with its tag, while the caller goes on
        making the next batches; at most ``2 * threads`` batches are waiting or running, so memory stays flat."""
        if self._pool is None:
            for batch, tag in batches:
                yield self.model.predict(batch), tag
            return
        pending: deque[tuple[Future, T]] = deque()
        try:
            for batch, tag in batches:
                pending.append((self._pool.submit(self.model.predict, batch), tag))
                while len(pending) >= 2 * self.threads:
                    future, done = pending.popleft()
                    yield future.result(), done
            while pending:
                future, done = pending.popleft()
                yield future.result(), done
        finally:  # the caller stopped early (an error): nothing of ours keeps running
            for future, _ in pending:
                future.cancel()
            for future, _ in pending:
                if not future.cancelled():
                    future.exception()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
