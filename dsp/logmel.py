"""Incremental log-mel spectrogram: chunks of any size in, identical frames out.

The stream keeps fewer than ``n_fft`` samples of state between calls; a frame is emitted as soon
as its last sample arrives, so the output never depends on how the input was chunked. Frames
follow librosa's ``center=False`` convention: frame ``k`` covers samples ``[k*hop, k*hop + n_fft)``.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.signal

from .config import DEFAULT_DSP, DSPConfig
from .mel import sparse_mel

# Frames transformed per FFT call: bounds scratch memory for long inputs and keeps it in cache.
_BLOCK_FRAMES = 32


@numba.njit(cache=True, nogil=True, fastmath=True)
def _logmel_kernel(carry, n_carry, chunk, window, hop, mel_start, mel_offset, mel_w, half_power, floor, out):
    """Frames over ``carry[:n_carry] ++ chunk``; returns how many leading samples were consumed."""
    n_fft = window.shape[0]
    n_bins = n_fft // 2 + 1
    n_total = n_carry + chunk.shape[0]
    n_frames = out.shape[0]
    n_mels = mel_start.shape[0]
    frames = np.empty((min(n_frames, _BLOCK_FRAMES), n_fft))
    power = np.empty(n_bins)
    for block0 in range(0, n_frames, _BLOCK_FRAMES):
        nb = min(_BLOCK_FRAMES, n_frames - block0)
        for b in range(nb):
            base = (block0 + b) * hop
            split = min(max(n_carry - base, 0), n_fft)  # samples of this frame still in the carry
            for i in range(split):
                frames[b, i] = carry[base + i] * window[i]
            shift = base - n_carry
            for i in range(split, n_fft):
                frames[b, i] = chunk[shift + i] * window[i]
        spec = np.fft.rfft(frames[:nb])
        for b in range(nb):
            for k in range(n_bins):
                c = spec[b, k]
                power[k] = c.real * c.real + c.imag * c.imag
            if half_power != 1.0:
                for k in range(n_bins):
                    power[k] = power[k] ** half_power
            for m in range(n_mels):
                acc = 0.0
                lo = mel_offset[m]
                first = mel_start[m] - lo
                for k in range(lo, mel_offset[m + 1]):
                    acc += mel_w[k] * power[first + k]
                out[block0 + b, m] = np.log(max(acc, floor))
    consumed = n_frames * hop
    # Keep the unconsumed tail (always < n_fft samples) for the next call.
    n_left = n_total - consumed
    for i in range(n_left):
        j = consumed + i
        carry[i] = carry[j] if j < n_carry else chunk[j - n_carry]
    return n_left


class LogMelStream:
    """Stateful log-mel front end shared by training and the daemon.

    ``push`` returns ``[n_new_frames, n_mels]`` float32 natural-log mel power, floored at
    ``cfg.log_floor``. ``frames_emitted`` counts frames so far, so a frame's stream time is
    ``index * hop_length / sample_rate``.
    """

    def __init__(self, cfg: DSPConfig = DEFAULT_DSP) -> None:
        self.cfg = cfg
        self._window = scipy.signal.get_window(cfg.window, cfg.n_fft, fftbins=True).astype(np.float64)
        mel = sparse_mel(cfg)
        self._mel = (mel.start, mel.offset, mel.weights)
        self._carry = np.zeros(cfg.n_fft, dtype=np.float64)
        self._n_carry = 0
        self.frames_emitted = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"expected mono samples (1-D), got shape {samples.shape}")
        cfg = self.cfg
        n_frames = cfg.frames_in(self._n_carry + samples.shape[0])
        out = np.empty((n_frames, cfg.n_mels), dtype=np.float32)
        self._n_carry = _logmel_kernel(
            self._carry, self._n_carry, samples, self._window, cfg.hop_length, *self._mel,
            cfg.power / 2.0, cfg.log_floor, out,
        )
        self.frames_emitted += n_frames
        return out

    def reset(self) -> None:
        self._n_carry = 0
        self.frames_emitted = 0


def logmel(samples: np.ndarray, cfg: DSPConfig = DEFAULT_DSP) -> np.ndarray:
    """Whole-signal log-mel, ``[n_frames, n_mels]``: one push through a fresh stream."""
    return LogMelStream(cfg).push(samples)
