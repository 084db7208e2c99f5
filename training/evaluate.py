"""Window- and track-level scores of a model on labelled tracks, from each track's window probabilities.

A track's genre is the top of its mean window probabilities (:func:`daemon.decision.track_probabilities`), as the
daemon decides over a whole song. Track accuracy comes with a 95 % Clopper-Pearson interval: with a few dozen test
tracks that interval is the honest headline, not the point estimate. Mean window confidence beside window accuracy
(and their binned gap, the ECE) says whether the probabilities the daemon publishes can be taken at their word.
Used by the cross-validation (:mod:`training.transfer_cv`, :mod:`training.transfer_report`) and by
``genrecast evaluate`` (:mod:`training.evaluate_cmd`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from genrecast.daemon.decision import track_probabilities
from scipy.stats import beta

from .calibrate import expected_calibration_error


@dataclass
class GenreScores:
    precision: float
    recall: float
    f1: float
    support: int  # test tracks of this genre


@dataclass
class Evaluation:
    labels: list[str]
    n_tracks: int
    n_windows: int
    window_accuracy: float
    window_confidence: float  # mean top probability of a window; far above window_accuracy = overconfident
    window_ece: float  # expected calibration error over 10 confidence bins
    track_accuracy: float
    track_accuracy_ci95: tuple[float, float]
    per_genre: dict[str, GenreScores]  # track level
    confusion: list[list[int]]  # track level, rows = true genre, columns = predicted
    window_confusion: list[list[int]]
    tracks: list[dict]  # per track: id, genre, predicted, probability of the prediction

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        lo, hi = self.track_accuracy_ci95
        lines = [
            f"tracks {self.n_tracks}  windows {self.n_windows}",
            f"track accuracy  {self.track_accuracy:.3f}  (95% CI {lo:.3f}-{hi:.3f})",
            f"window accuracy {self.window_accuracy:.3f}  (mean confidence {self.window_confidence:.3f}, "
            f"calibration error {self.window_ece:.3f})",
            "",
            f"{'genre':<10} {'prec':>5} {'rec':>5} {'f1':>5} {'n':>3}   confusion (rows true, cols predicted)",
        ]
        predicted = np.asarray(self.confusion).sum(axis=0) if self.confusion else np.zeros(len(self.labels))
        for i, (label, row) in enumerate(zip(self.labels, self.confusion, strict=True)):
            g = self.per_genre[label]
            cells = " ".join(f"{c:2d}" for c in row)
            # undefined, not 0.00 (which read as a failure): no track of the genre, or none named it
            prec, rec = (f"{v:5.2f}" if ok else f"{'-':>5}" for v, ok in ((g.precision, predicted[i]),
                                                                          (g.recall, g.support)))
            f1 = f"{g.f1:5.2f}" if predicted[i] or g.support else f"{'-':>5}"  # 0 for a genre never recognised
            lines.append(f"{label:<10} {prec} {rec} {f1} {g.support:3d}   {cells}")
        lines.append(f"{'':<31}   " + " ".join(f"{lab[:2]:>2}" for lab in self.labels))
        return "\n".join(lines)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials."""
    if n == 0:
        return (0.0, 1.0)
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return (lo, hi)


def _confusion(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (true, pred), 1)
    return m


def _per_genre(conf: np.ndarray, labels: list[str]) -> dict[str, GenreScores]:
    out = {}
    for i, label in enumerate(labels):
        tp, predicted, actual = conf[i, i], conf[:, i].sum(), conf[i].sum()
        p = tp / predicted if predicted else 0.0
        r = tp / actual if actual else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out[label] = GenreScores(float(p), float(r), float(f1), int(actual))
    return out


def score(tracks: Sequence[tuple[str, str]], window_probs: Sequence[np.ndarray], labels: Sequence[str]) -> Evaluation:
    """Scores of ``(track id, true genre)`` pairs given each track's window probabilities ``[n_windows, n_labels]``."""
    labels = list(labels)
    n = len(labels)
    w_true, t_true, t_pred, per_track = [], [], [], []
    for (track_id, genre), probs in zip(tracks, window_probs, strict=True):
        y = labels.index(genre)
        mean = track_probabilities(probs)
        w_true += [y] * len(probs)
        t_true.append(y)
        t_pred.append(int(mean.argmax()))
        per_track.append({"track_id": track_id, "genre": genre, "predicted": labels[t_pred[-1]],
                          "probability": round(float(mean.max()), 4), "windows": len(probs)})
    w_true, t_true, t_pred = map(np.asarray, (w_true, t_true, t_pred))
    w_probs = np.concatenate(window_probs) if len(window_probs) else np.zeros((0, n))
    w_pred = w_probs.argmax(axis=1)
    conf = _confusion(t_true, t_pred, n)
    k = int((t_true == t_pred).sum())
    return Evaluation(
        labels=labels,
        n_tracks=len(t_true),
        n_windows=len(w_true),
        window_accuracy=float((w_true == w_pred).mean()) if len(w_true) else 0.0,
        window_confidence=float(w_probs.max(axis=1).mean()) if len(w_true) else 0.0,
        window_ece=expected_calibration_error(w_probs, w_true),
        track_accuracy=k / len(t_true) if len(t_true) else 0.0,
        track_accuracy_ci95=clopper_pearson(k, len(t_true)),
        per_genre=_per_genre(conf, labels),
        confusion=conf.tolist(),
        window_confusion=_confusion(w_true, w_pred, n).tolist(),
        tracks=per_track,
    )
