"""Synthesise the bundled example clips (no recorded or copyrighted music).

``synth-groove.flac``: a 20-s four-bar groove at 120 BPM: kick, snare, hi-hat, a bass line and triad chords, all
generated from sines and seeded noise. ``groove-then-fan.flac``: that groove, then 15 s of a generated fan (pink
noise with a motor whine), so ``make demo`` shows a stream going from a genre to ``no_music`` and back.
``python scripts/make_example.py [FOLDER]`` rewrites both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 22050
BPM = 120
SECONDS = 20


def envelope(n: int, decay: float) -> np.ndarray:
    return np.exp(-np.arange(n) / RATE * decay)


def groove(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = SECONDS * RATE
    out = np.zeros(n)
    beat = int(RATE * 60 / BPM)
    roots = [110.0, 146.83, 164.81, 130.81]  # A2 D3 E3 C3, one bar each
    for b in range(n // beat):
        start = b * beat
        root = roots[(b // 4) % 4]
        seg = min(beat, n - start)
        t = np.arange(seg) / RATE
        if b % 2 == 0:  # kick: pitch-dropping sine
            out[start : start + seg] += 0.8 * np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 40)) * t) * envelope(seg, 12)
        else:  # snare: noise burst plus body
            body = 0.3 * np.sin(2 * np.pi * 190 * t)
            out[start : start + seg] += (0.35 * rng.standard_normal(seg) + body) * envelope(seg, 25)
        for half in (0, beat // 2):  # hi-hat on eighths
            h = min(beat // 4, n - start - half)
            if h > 0:
                out[start + half : start + half + h] += 0.12 * rng.standard_normal(h) * envelope(h, 60)
        out[start : start + seg] += 0.35 * np.sin(2 * np.pi * root / 2 * t) * envelope(seg, 3)  # bass
        for ratio in (1.0, 1.26, 1.5):  # chord
            out[start : start + seg] += 0.08 * np.sin(2 * np.pi * root * 2 * ratio * t) * envelope(seg, 1.5)
    return (0.9 * out / np.max(np.abs(out))).astype(np.float32)


def fan(seconds: float, seed: int = 11) -> np.ndarray:
    """Pink noise with a 180 Hz motor whine, at about -12 dBFS: a room with a fan, not music."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    f[0] = f[1]
    x = np.fft.irfft(spectrum / np.sqrt(f), n)
    x = x / np.max(np.abs(x)) + 0.15 * np.sin(2 * np.pi * 180 * np.arange(n) / RATE)
    return (0.25 * x / np.max(np.abs(x))).astype(np.float32)


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "examples"
    music = groove()
    for name, x in (("synth-groove.flac", music), ("groove-then-fan.flac", np.concatenate([music, fan(15)]))):
        sf.write(folder / name, x, RATE, subtype="PCM_16")
        print(f"wrote {folder / name}")


if __name__ == "__main__":
    main()
