"""Channels to mono for a live input, whose wiring may cancel itself.

A balanced (TRS) mono output plugged into a stereo line-in, or a two-capsule microphone with one capsule's polarity
inverted, gives two channels that are each other's negative: their mean, :func:`dsp.downmix`'s answer, is silence.
A shop's music then read as ``silence`` with ``rms`` 0 and nothing said. :class:`LiveDownmix` watches the first
seconds of sound; where the channels' mean keeps under a tenth of their own level, it takes the first channel minus
the mean of the others instead (the same sound, the right way up) and says so once. A file's channels are its own,
and are averaged as ever.
"""

from __future__ import annotations

import numpy as np

from .audio import downmix

CANCEL_RATIO = 0.01  # the mean's power under this fraction of the channels' (20 dB down): they cancel
JUDGE_SECONDS = 2.0  # sound heard before judging
QUIET_POWER = 1e-5  # a push this quiet (-50 dBFS: a room's tone, a converter's noise) is not sound to judge by


class LiveDownmix:
    """``[n, channels]`` float32 -> mono, judging once, from the first :data:`JUDGE_SECONDS` of sound, whether the
    channels cancel. ``said`` is called once with a line to log when they do."""

    def __init__(self, rate: int, said=None) -> None:
        self._left = round(JUDGE_SECONDS * rate)  # sound still to hear before judging
        self._mean_power = self._channel_power = 0.0
        self.inverted = False
        self._said = said

    def push(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 2 or frames.shape[1] < 2:
            return downmix(frames)
        if self._left > 0:
            self._judge(frames)
        if self.inverted:
            return np.ascontiguousarray(frames[:, 0] - frames[:, 1:].mean(axis=1), dtype=np.float32) * np.float32(0.5)
        return downmix(frames)

    def _judge(self, frames: np.ndarray) -> None:
        """Sums the channels' and their mean's power over pushes of sound (a push is a chunk, 50 ms live)."""
        x = frames.astype(np.float64)
        x -= x.mean(axis=0)  # each channel's offset apart: cheap converters have one, and it does not cancel
        channel_power = float(np.sum(np.square(x)) / x.shape[1])
        if channel_power <= QUIET_POWER * x.shape[0]:
            return
        self._mean_power += float(np.sum(np.square(x.mean(axis=1))))
        self._channel_power += channel_power
        self._left -= x.shape[0]
        if self._left <= 0 and self._mean_power < CANCEL_RATIO * self._channel_power:
            self.inverted = True
            if self._said is not None:
                ratio_db = 10 * np.log10(max(self._mean_power, 1e-30) / self._channel_power)
                self._said(f"its {frames.shape[1]} channels cancel each other ({ratio_db:.0f} dB when averaged): one "
                           "is wired with its polarity inverted (a balanced output into a stereo input?); reading the "
                           "first channel against the others instead")
