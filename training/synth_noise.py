"""Synthetic stationary noise for the music head: hiss, rumble, mains hum, clicks and fans.

The recorded noise set is thin (mostly baby cries and a few household machines); without these a microphone's hiss
or a fan reads as "music" (white noise as metal, pink noise as classical). Each clip draws its colour, level and
tones from a seeded generator, so a run writes the same files, and their embeddings cache like any clip's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

KINDS = ("white", "pink", "brown", "hum", "clicks", "fan")
RATE = 16000
SECONDS = 4.0


def _coloured(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), unit peak."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    f[0] = f[1]
    x = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    return x / np.max(np.abs(x))


def noise(kind: str, rng: np.random.Generator, seconds: float = SECONDS) -> np.ndarray:
    """One clip of ``kind`` (one of :data:`KINDS`) at :data:`RATE`, peak between -30 and -3 dBFS."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    if kind in ("white", "pink", "brown"):
        x = _coloured(n, KINDS.index(kind), rng)
    elif kind == "hum":
        mains = rng.choice([50.0, 60.0])
        x = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6)) for k in range(1, 6))
        x = x + rng.uniform(0.0, 0.3) * _coloured(n, 1, rng)
    elif kind == "clicks":
        x = 0.05 * _coloured(n, rng.uniform(0, 2), rng)
        for at in rng.integers(0, n - 64, size=rng.integers(5, 60)):
            x[at : at + 64] += rng.uniform(0.3, 1.0) * rng.choice([-1, 1]) * np.exp(-np.arange(64) / 8)
    elif kind == "fan":
        whine = rng.uniform(80, 400)
        x = _coloured(n, rng.uniform(0.5, 1.5), rng) + rng.uniform(0.05, 0.4) * np.sin(2 * np.pi * whine * t)
    else:
        raise ValueError(f"unknown noise kind {kind!r} (choose from {', '.join(KINDS)})")
    return (x / np.max(np.abs(x)) * 10 ** (rng.uniform(-30, -3) / 20)).astype(np.float32)


def write_synthetic(folder: Path, per_kind: int, seed: int = 0, prefix: str = "synthetic") -> Path:
    """``per_kind`` clips of each kind as ``folder/synthetic/<prefix>__<kind>_<i>.flac``; returns ``folder``. Another
    ``prefix`` names another set (its clips' ids and groups differ), so two sets can be used side by side."""
    rng = np.random.default_rng(seed)
    out = folder / "synthetic"
    out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        for i in range(per_kind):
            sf.write(out / f"{prefix}__{kind}_{i:03d}.flac", noise(kind, rng), RATE, subtype="PCM_16")
    return folder
