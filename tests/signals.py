"""Deterministic generated test signals (no copyrighted audio needed)."""

from __future__ import annotations

import numpy as np


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def music_like(seconds: float, rate: int = 22050, seed: int = 0) -> np.ndarray:
    """Chords, a decaying kick, noise bursts and a stretch of digital silence: wide dynamic range."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    x = np.zeros(n)
    for f in (110.0, 138.6, 164.8, 220.0, 1760.0):
        x += 0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    beat = (t % 0.5) < 0.08
    x += beat * 0.4 * np.sin(2 * np.pi * 60 * t) * np.exp(-(t % 0.5) * 30)
    x += 0.02 * rng.standard_normal(n) * ((t % 1.0) > 0.7)
    x[int(0.4 * n) : int(0.4 * n) + rate // 2] = 0.0
    return x.astype(np.float32)


def sparse_wav(path, seconds: float, rate: int = 44100, channels: int = 2):
    """A long 16-bit WAV of digital silence that takes no disk: its data chunk is a hole in a sparse file."""
    import struct

    data_bytes = round(seconds * rate) * channels * 2
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels, rate,
                         rate * channels * 2, channels * 2, 16, b"data", data_bytes)
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + data_bytes)
    return path
