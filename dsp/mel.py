"""Slaney mel filterbank, built once and stored sparsely.

Each triangular filter touches a contiguous run of FFT bins, so a band is kept as (first bin,
weights): the projection costs about 2 * n_bins multiply-adds per frame instead of n_mels * n_bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import DSPConfig

_F_SP = 200.0 / 3  # Slaney: linear below 1 kHz, 66.67 Hz per mel
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (librosa ``htk=False``)."""
    hz = np.asanyarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_part = hz >= _MIN_LOG_HZ
    return np.where(log_part, _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-300) / _MIN_LOG_HZ) / _LOGSTEP, mel)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asanyarray(mel, dtype=np.float64)
    hz = _F_SP * mel
    log_part = mel >= _MIN_LOG_MEL
    return np.where(log_part, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), hz)


def mel_filterbank(cfg: DSPConfig) -> np.ndarray:
    """Dense ``[n_mels, n_bins]`` filterbank with Slaney area normalisation (librosa ``norm='slaney'``)."""
    fft_freqs = np.fft.rfftfreq(cfg.n_fft, d=1.0 / cfg.sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


@dataclass(frozen=True)
class SparseMel:
    """Band ``m`` covers bins ``start[m] : start[m] + (offset[m+1] - offset[m])`` with ``weights[offset[m]:...]``."""

    start: np.ndarray  # int64 [n_mels]
    offset: np.ndarray  # int64 [n_mels + 1]
    weights: np.ndarray  # float64 [nnz]

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> SparseMel:
        starts, offsets, chunks = [], [0], []
        for row in dense:
            nz = np.flatnonzero(row)
            lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
            starts.append(lo)
            chunks.append(row[lo:hi])
            offsets.append(offsets[-1] + hi - lo)
        weights = np.concatenate(chunks) if chunks else np.zeros(0)
        return cls(np.asarray(starts, np.int64), np.asarray(offsets, np.int64), weights.astype(np.float64))


def sparse_mel(cfg: DSPConfig) -> SparseMel:
    return SparseMel.from_dense(mel_filterbank(cfg))
