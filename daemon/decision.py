"""From per-window probabilities to the stream's current state: genre, uncertain, or silence.

Single windows flicker; listeners want the genre of the last few seconds. Smoothing is either an
exponential moving average of the probabilities (``ema``, span N) or a vote of the last N windows'
top genres (``majority``). Quiet windows are reported as silence instead of classifying noise, and
restart the smoothing so the music after a pause is judged on its own.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class State:
    kind: str  # "genre" | "uncertain" | "silence"
    genre: str | None
    confidence: float

    def same_as(self, other: State | None) -> bool:
        return other is not None and (self.kind, self.genre) == (other.kind, other.genre)


SMOOTHING = ("ema", "majority")


def track_probabilities(window_probabilities: np.ndarray) -> np.ndarray:
    """A whole recording's genre probabilities: the mean over its windows.

    The one track-level rule: ``classify``, the dashboard's file check and the trainer's track accuracy all use it,
    so the accuracy in the model card is the accuracy of what ``classify`` reports.
    """
    return np.asarray(window_probabilities, np.float64).mean(axis=0)


@dataclass(frozen=True)
class DecisionConfig:
    smoothing: str = "ema"
    windows: int = 5
    silence_rms: float = 0.003
    min_confidence: float = 0.4


class Decider:
    def __init__(self, labels: tuple[str, ...], cfg: DecisionConfig) -> None:
        if cfg.smoothing not in SMOOTHING:
            raise ValueError(f"unknown smoothing {cfg.smoothing!r}")
        self.labels, self.cfg = labels, cfg
        self._alpha = 2.0 / (cfg.windows + 1)
        self._ema: np.ndarray | None = None
        self._recent: deque[np.ndarray] = deque(maxlen=cfg.windows)

    def update(self, probabilities: np.ndarray, rms: float) -> State:
        if rms < self.cfg.silence_rms:
            self._ema = None
            self._recent.clear()
            return State("silence", None, 1.0)
        p = np.asarray(probabilities, np.float64)
        if self.cfg.smoothing == "ema":
            self._ema = p if self._ema is None else self._alpha * p + (1 - self._alpha) * self._ema
            best = int(np.argmax(self._ema))
            confidence = float(self._ema[best])
        else:
            self._recent.append(p)
            votes = Counter(int(np.argmax(q)) for q in self._recent)
            best = max(votes.items(), key=lambda kv: (kv[1], -kv[0]))[0]
            # The winner's mean probability over all N windows: low when the vote is split or hesitant.
            confidence = float(np.mean([q[best] for q in self._recent]))
        if confidence < self.cfg.min_confidence:
            return State("uncertain", None, confidence)
        return State("genre", self.labels[best], confidence)
