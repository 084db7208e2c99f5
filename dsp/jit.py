"""numba kernels, compiled once and kept in numba's on-disk cache where there is a writable place for it."""

from __future__ import annotations

import functools
import logging

import numba


def jit(fn):
    """Compile with numba's on-disk cache where there is a writable place for it (source tree, NUMBA_CACHE_DIR,
    ~/.cache); a read-only install with no such place compiles once per process instead of failing, and so does
    one whose cache cannot be written when it is (a full /var/cache: the daemon died, blaming "writing")."""
    def uncached():
        return numba.njit(nogil=True, fastmath=True)(fn)

    try:
        kernel = numba.njit(cache=True, nogil=True, fastmath=True)(fn)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return uncached()

    @functools.wraps(fn)
    def call(*args):
        nonlocal kernel
        try:
            return kernel(*args)
        except OSError as exc:  # from saving the compiled kernel: numba has no public switch to stop trying
            logging.getLogger(__name__).warning("numba cannot write its cache (%s): compiled for this process only",
                                                exc.strerror or exc)
            kernel = uncached()
            return kernel(*args)

    return call
