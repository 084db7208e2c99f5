"""Temperature scaling (Guo et al., 2017): one scalar T, fitted on the validation windows, so that
``softmax(logits / T)`` says about as often as it is right how sure the model is.

A classifier trained on few tracks tends to be surer than it is right on music like its training data. The daemon's
"uncertain" state and every probability published over MQTT mean something only if the probabilities are
calibrated. Dividing logits by T > 0 never changes a window's top genre. It cannot make a model doubt sounds of no
genre at all, and one T fitted on a handful of validation tracks is mostly noise (see models/README.md).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

LOG_T_BOUNDS = (np.log(0.05), np.log(20.0))


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels under ``softmax(logits / temperature)``."""
    logp = log_softmax(np.asarray(logits, np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T in [0.05, 20] minimising validation NLL (searched over log T, where the loss is smooth)."""
    if len(y) == 0:
        raise ValueError("no windows to calibrate on")
    res = minimize_scalar(lambda lt: nll(logits, y, float(np.exp(lt))), bounds=LOG_T_BOUNDS, method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Gap between confidence and accuracy, averaged over equal-width confidence bins weighted by their size."""
    if len(y) == 0:
        return 0.0
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == y
    which = np.minimum((conf * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            gap += sel.sum() * abs(conf[sel].mean() - right[sel].mean())
    return float(gap / len(y))
