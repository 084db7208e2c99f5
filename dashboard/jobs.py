"""Bounded background work for the dashboard: classifying uploads must never starve the live page.

Decoding and inference run on a few worker threads, not on the thread serving the request; at most ``backlog``
more jobs may wait for one. Beyond that a job is refused at once with :class:`Busy`, so a burst of uploads
gets a clear "try again" instead of piling up requests (and memory) behind each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

DEFAULT_WORKERS = 1  # one core for uploads; the page, the MQTT feed and the daemon keep the rest
DEFAULT_BACKLOG = 4


class Busy(Exception):
    """Every worker is busy and the backlog is full: the caller should try again shortly."""


@dataclass(frozen=True)
class Load:
    jobs: int  # running or waiting now
    capacity: int  # workers + backlog


class BoundedPool:
    def __init__(self, workers: int = DEFAULT_WORKERS, backlog: int = DEFAULT_BACKLOG) -> None:
        if workers < 1 or backlog < 0:
            raise ValueError("workers must be at least 1 and backlog at least 0")
        self.capacity = workers + backlog
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="genrecast-classify")
        self._lock = threading.Lock()
        self._jobs = 0

    def run(self, fn: Callable[..., T], *args) -> T:
        """Run ``fn(*args)`` on a worker and wait for its result (or exception); :class:`Busy` when full."""
        with self._lock:
            if self._jobs >= self.capacity:
                raise Busy(f"busy: {self._jobs} files are being classified or waiting; try again shortly")
            self._jobs += 1
        try:
            return self._executor.submit(fn, *args).result()
        finally:
            with self._lock:
                self._jobs -= 1

    def load(self) -> Load:
        with self._lock:
            return Load(self._jobs, self.capacity)
