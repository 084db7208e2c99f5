"""A DC blocker before the front end: a cheap USB microphone's constant offset is not sound.

The models' mel filterbanks start at 0 Hz, so an offset of 0.1 of full scale raised the lowest two bands by about
30 and 10 dB, and music at 0.03 RMS read as ``electronic`` or ``no_music``. A one-pole high-pass at
:data:`CUTOFF_HZ` removes it and leaves the music's bass: the shipped front end's FFT bins
are 31 Hz apart, and 31 Hz loses 0.4 dB. It comes before the front end that a model's metadata names
(:class:`dsp.DSPConfig`), for every model that names it in its ``stages`` (all do: the trainer's, and those written
before the key): the trainer applies it too (:class:`DCBlockStream`, one push for a whole
clip), so a model trained since learns what the daemon feeds it; the shipped models predate it (their card says
what it changes).
"""

from __future__ import annotations

import math

import numpy as np

from .jit import jit

CUTOFF_HZ = 10.0
FINGERPRINT = f"dc-onepole-{CUTOFF_HZ:g}hz"  # keys cached features: a change here must not reuse older ones


@jit
def _one_pole(x, r, x1, y1, out):
    """``y[n] = x[n] - x[n-1] + r y[n-1]`` into ``out``, from the state ``(x1, y1)``; returns the state after.
    A numba loop, not scipy's ``lfilter``: importing ``scipy.signal`` cost the daemon 49 MB (228 to 269 MB RSS,
    over its 250-MB budget). The tests hold it to ``lfilter``'s answers."""
    for i in range(x.shape[0]):
        y1 = x[i] - x1 + r * y1
        x1 = x[i]
        out[i] = y1
    return x1, y1


class DCBlockStream:
    """The blocker with its state carried across chunks. Its state starts as if the first sample's level had always
    been there, so an offset present from the start is gone from the first sample (what else the first sample holds
    decays from there, as the daemon's and the trainer's windows alike)."""

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise ValueError(f"the sample rate must be positive, got {rate}")
        self._r = math.exp(-2.0 * math.pi * CUTOFF_HZ / rate)  # the -3 dB point at CUTOFF_HZ
        self._state: tuple[float, float] | None = None  # the last input and output

    def push(self, samples: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(samples, dtype=np.float64)
        if not x.size:
            return np.zeros(0, np.float32)
        x1, y1 = self._state if self._state is not None else (float(x[0]), 0.0)
        y = np.empty_like(x)
        x1, y1 = _one_pole(x, self._r, x1, y1, y)
        # a NaN sample would stay in the state, and spoil every window after it
        self._state = (x1, y1) if math.isfinite(x1) and math.isfinite(y1) else None
        return y.astype(np.float32)


def dc_block(samples: np.ndarray, rate: int) -> np.ndarray:
    """A whole clip through a fresh :class:`DCBlockStream`."""
    return DCBlockStream(rate).push(samples)
