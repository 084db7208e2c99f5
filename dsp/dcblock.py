"""A DC blocker before the front end: a cheap USB microphone's constant offset is not sound.

The models' mel filterbanks start at 0 Hz, so an offset of 0.1 of full scale raised the lowest two bands by about
30 and 10 dB, and music at 0.03 RMS read as ``electronic`` or ``no_music``. A one-pole high-pass at
:data:`CUTOFF_HZ` (scipy's ``lfilter``) removes it and leaves the music's bass: the shipped front end's FFT bins
are 31 Hz apart, and 31 Hz loses 0.4 dB. It comes before the front end that a model's metadata names
(:class:`dsp.DSPConfig`), for every model: the trainer applies it too (:class:`DCBlockStream`, one push for a whole
clip), so a model trained since learns what the daemon feeds it; the shipped models predate it (their card says
what it changes).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter, lfilter_zi

CUTOFF_HZ = 10.0
FINGERPRINT = f"dc-onepole-{CUTOFF_HZ:g}hz"  # keys cached features: a change here must not reuse older ones


def _coefficients(rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``y[n] = x[n] - x[n-1] + r y[n-1]``, with ``r`` placing the -3 dB point at :data:`CUTOFF_HZ`."""
    r = math.exp(-2.0 * math.pi * CUTOFF_HZ / rate)
    return np.array([1.0, -1.0]), np.array([1.0, -r])


class DCBlockStream:
    """The blocker with its state carried across chunks. Its state starts as if the first sample's level had always
    been there, so an offset present from the start is gone from the first sample (what else the first sample holds
    decays from there, as the daemon's and the trainer's windows alike)."""

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise ValueError(f"the sample rate must be positive, got {rate}")
        self._b, self._a = _coefficients(rate)
        self._zi: np.ndarray | None = None

    def push(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float64)
        if not x.size:
            return np.zeros(0, np.float32)
        if self._zi is None:
            self._zi = lfilter_zi(self._b, self._a) * x[0]
        y, self._zi = lfilter(self._b, self._a, x, zi=self._zi)
        if not np.all(np.isfinite(self._zi)):  # a NaN sample would stay in the state, and spoil every window after
            self._zi = None
        return y.astype(np.float32)


def dc_block(samples: np.ndarray, rate: int) -> np.ndarray:
    """A whole clip through a fresh :class:`DCBlockStream`."""
    return DCBlockStream(rate).push(samples)
