"""Cutting log-mel frames into the model's classification windows, whole-signal or streaming.

Windows are ``[n_mels, n_frames]`` (the model's input layout). Hops are whole frames, so a hop of
``hop_seconds`` is rounded to the nearest frame (1 s -> 43 frames = 0.998 s at the defaults).
"""

from __future__ import annotations

import numpy as np

from .config import DSPConfig

MIN_SECONDS = 1.0  # shorter input is refused: too little to repeat into a window that means anything


def window_samples(cfg: DSPConfig, win_frames: int) -> int:
    """Samples (at ``cfg.sample_rate``) that one window of ``win_frames`` frames covers."""
    return (win_frames - 1) * cfg.hop_length + cfg.n_fft


def repeat_pad(samples: np.ndarray, n: int) -> np.ndarray:
    """Tile ``samples`` until they are ``n`` long (unchanged when already that long).

    Short clips (1 s to one window) are looped rather than zero-padded: a loop keeps the clip's own texture and
    loudness over the whole window, where silence would read as a pause. Applied at the model's sample rate, after
    resampling, by both the daemon's pipeline and the trainer, so a short clip gets the same window in both.
    """
    samples = np.asarray(samples, np.float32)
    if samples.shape[0] >= n or samples.shape[0] == 0:
        return samples
    return np.resize(samples, n)


def pad_short_clip(samples: np.ndarray, cfg: DSPConfig, win_frames: int) -> np.ndarray:
    """A whole clip (at ``cfg.sample_rate``) of at least :data:`MIN_SECONDS` but shorter than one window, repeated
    to one window; any other clip unchanged (one under the minimum then yields no window: the caller refuses it)."""
    samples = np.asarray(samples, np.float32)
    if samples.shape[0] < MIN_SECONDS * cfg.sample_rate:
        return samples
    return repeat_pad(samples, window_samples(cfg, win_frames))


def frame_seconds(cfg: DSPConfig) -> float:
    """One frame's hop in seconds: hops are whole frames, so one under half of this rounds to none."""
    return cfg.hop_length / cfg.sample_rate


def hop_too_short(cfg: DSPConfig, hop_seconds: float) -> bool:
    """Whether a hop is under half a frame, so would round to none (``hop_frames`` makes it one instead)."""
    return hop_seconds < frame_seconds(cfg) / 2


def hop_frames(cfg: DSPConfig, hop_seconds: float) -> int:
    return max(1, round(hop_seconds * cfg.sample_rate / cfg.hop_length))


def windows_sharing(cfg: DSPConfig, win_frames: int, hop_seconds: float) -> int:
    """How many of the windows after one share some of its frames: after a silent window, those that may still
    hold part of the silence (3 for musicnn's 187 frames at a 1-s hop)."""
    return -(-win_frames // hop_frames(cfg, hop_seconds)) - 1


def window_starts(n_frames: int, win_frames: int, hop: int) -> np.ndarray:
    """First frame of each full window; a signal shorter than one window yields none."""
    if n_frames < win_frames:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_frames - win_frames + 1, hop, dtype=np.int64)


def slice_windows(frames: np.ndarray, win_frames: int, hop: int) -> np.ndarray:
    """``[n_frames, n_mels]`` -> ``[n_windows, n_mels, win_frames]`` float32 (a copy)."""
    starts = window_starts(frames.shape[0], win_frames, hop)
    out = np.empty((starts.shape[0], frames.shape[1], win_frames), dtype=np.float32)
    for i, s in enumerate(starts):
        out[i] = frames[s : s + win_frames].T
    return out


class WindowStream:
    """Collects frames as they arrive and hands out each window once its last frame is in.

    Memory is bounded by one window plus one push worth of frames. ``push`` returns a list of
    ``(first_frame_index, window)`` pairs; the index places the window on the stream's time axis.
    """

    def __init__(self, win_frames: int, hop: int) -> None:
        if win_frames < 1 or hop < 1:
            raise ValueError("window and hop must be at least one frame")
        self.win_frames, self.hop = win_frames, hop
        self._frames: np.ndarray | None = None  # frames from index self._base on
        self._base = 0
        self._next_start = 0

    @property
    def next_start(self) -> int:
        """First frame of the next window to come."""
        return self._next_start

    def push(self, frames: np.ndarray) -> list[tuple[int, np.ndarray]]:
        if frames.shape[0] == 0:
            return []
        self._frames = frames if self._frames is None else np.concatenate([self._frames, frames])
        out = []
        end = self._base + self._frames.shape[0]
        while self._next_start + self.win_frames <= end:
            lo = self._next_start - self._base
            out.append((self._next_start, np.ascontiguousarray(self._frames[lo : lo + self.win_frames].T)))
            self._next_start += self.hop
        drop = min(self._next_start - self._base, self._frames.shape[0])
        if drop > 0:
            self._frames = self._frames[drop:]
            self._base += drop
        return out
