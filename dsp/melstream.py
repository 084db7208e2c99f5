"""Incremental log-mel spectrogram: chunks of any size in, identical frames out.

The stream keeps fewer than ``n_fft`` samples of state between calls; a frame is emitted as soon
as its last sample arrives, so the output never depends on how the input was chunked. Frames
follow librosa's ``center=False`` convention: frame ``k`` covers samples ``[k*hop, k*hop + n_fft)``.

The kernel is compiled once and kept in numba's on-disk cache, which is keyed by this file's stamp and names
this module (``genrecast.dsp.melstream``): a cache written under an older module name is never read.
"""

from __future__ import annotations

import functools

import numpy as np
from rocket_fft import r2c

from .config import DEFAULT_DSP, DSPConfig
from .jit import jit
from .mel import sparse_mel

# Frames transformed per FFT call: bounds scratch memory for long inputs and keeps it in cache.
_BLOCK_FRAMES = 32
_FFT_AXES = np.array([1], dtype=np.int64)


@jit
def _logmel_kernel(carry, n_carry, chunk, window, hop, mel_start, mel_offset, mel_w, half_power, floor,
                   frames, spec, power, out):
    """Floored mel power of the frames over ``carry[:n_carry] ++ chunk`` into ``out``.

    ``frames``, ``spec`` and ``power`` are caller-owned scratch, so a call allocates nothing.
    Returns how many samples are left in ``carry``. The log is taken by the caller with numpy's
    SIMD log, several times faster than numba's scalar libm calls.
    """
    n_fft = window.shape[0]
    n_bins = power.shape[0]
    n_total = n_carry + chunk.shape[0]
    n_frames = out.shape[0]
    n_mels = mel_start.shape[0]
    for block0 in range(0, n_frames, _BLOCK_FRAMES):
        nb = min(_BLOCK_FRAMES, n_frames - block0)
        for b in range(nb):
            base = (block0 + b) * hop
            split = min(max(n_carry - base, 0), n_fft)  # samples of this frame still in the carry
            row = frames[b]
            if split > 0:
                src = carry[base : base + split]
                for i in range(split):
                    row[i] = src[i] * window[i]
            src = chunk[base + split - n_carry : base + n_fft - n_carry]
            dst = row[split:]
            win = window[split:]
            for i in range(n_fft - split):
                dst[i] = src[i] * win[i]
        r2c(frames[:nb], spec[:nb], _FFT_AXES, True, 1.0, 1)
        for b in range(nb):
            for k in range(n_bins):
                c = spec[b, k]
                power[k] = c.real * c.real + c.imag * c.imag
            if half_power != 1.0:
                for k in range(n_bins):
                    power[k] = power[k] ** half_power
            for m in range(n_mels):
                lo, hi = mel_offset[m], mel_offset[m + 1]
                w = mel_w[lo:hi]
                p = power[mel_start[m] : mel_start[m] + hi - lo]
                acc = 0.0
                for k in range(hi - lo):
                    acc += w[k] * p[k]
                out[block0 + b, m] = max(acc, floor)
    consumed = n_frames * hop
    # Keep the unconsumed tail (always < n_fft samples) for the next call.
    n_left = n_total - consumed
    from_carry = max(n_carry - consumed, 0)
    for i in range(from_carry):  # forward copy: the source is always ahead of the destination
        carry[i] = carry[consumed + i]
    src = chunk[chunk.shape[0] - (n_left - from_carry) :]
    dst = carry[from_carry:n_left]
    for i in range(n_left - from_carry):
        dst[i] = src[i]
    return n_left


@functools.lru_cache(maxsize=8)
def _constants(cfg: DSPConfig) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Window and sparse filterbank, built once per config (a training run opens thousands of streams)."""
    # Periodic Hann (scipy's get_window(..., fftbins=True), librosa's default), without importing
    # scipy.signal, which would add ~75 MB to the daemon's resident memory.
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(cfg.n_fft) / cfg.n_fft)
    mel = sparse_mel(cfg)
    arrays = (window, mel.start, mel.offset, mel.weights)
    for a in arrays:
        a.flags.writeable = False
    return window, arrays[1:]


class LogMelStream:
    """Stateful log-mel front end shared by training and the daemon.

    ``push`` returns ``[n_new_frames, n_mels]`` float32 natural-log mel power, floored at
    ``cfg.log_floor``. ``frames_emitted`` counts frames so far, so a frame's stream time is
    ``index * hop_length / sample_rate``.
    """

    def __init__(self, cfg: DSPConfig = DEFAULT_DSP) -> None:
        self.cfg = cfg
        self._window, self._mel = _constants(cfg)
        self._carry = np.zeros(cfg.n_fft, dtype=np.float64)
        self._scratch = (
            np.empty((_BLOCK_FRAMES, cfg.n_fft)),
            np.empty((_BLOCK_FRAMES, cfg.n_bins), dtype=np.complex128),
            np.empty(cfg.n_bins),
        )
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
            cfg.power / 2.0, cfg.log_floor, *self._scratch, out,
        )
        np.log(out, out=out)
        self.frames_emitted += n_frames
        return out


def logmel(samples: np.ndarray, cfg: DSPConfig = DEFAULT_DSP) -> np.ndarray:
    """Whole-signal log-mel, ``[n_frames, n_mels]``: one push through a fresh stream."""
    return LogMelStream(cfg).push(samples)
