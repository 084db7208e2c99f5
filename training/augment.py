"""Training-time augmentation; every random draw comes from one seeded ``numpy`` generator, so runs repeat.

Order in a training step: crop (choosing the window) -> gain (raw log-mel) -> normalise -> masking -> mixup.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

# a gain of g dB multiplies power by 10**(g/10), i.e. adds g*ln(10)/10 to a natural-log mel value
_LOG_PER_DB = math.log(10.0) / 10.0


@dataclass(frozen=True)
class AugmentConfig:
    """What to apply; zero disables a step. ``crop=False`` takes fixed windows at the evaluation hop."""

    crop: bool = True
    gain_db: float = 6.0  # uniform in [-gain_db, +gain_db] per window
    freq_masks: int = 2  # SpecAugment: this many bands of up to freq_width mel bins ...
    freq_width: int = 16
    time_masks: int = 2  # ... and this many spans of up to time_width frames, set to the band mean
    time_width: int = 20
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixing weight; 0 = no mixup

    def to_dict(self) -> dict:
        return asdict(self)


NONE = AugmentConfig(crop=False, gain_db=0.0, freq_masks=0, time_masks=0, mixup_alpha=0.0)


def window_starts(n_frames: np.ndarray, win: int, hop: int, crop: bool, rng: np.random.Generator) -> list[tuple]:
    """``(track, start)`` pairs: as many windows per track as the hop gives, at random starts when cropping."""
    pairs = []
    for i, n in enumerate(n_frames):
        count = 1 + (int(n) - win) // hop
        starts = rng.integers(0, int(n) - win + 1, size=count) if crop else np.arange(count) * hop
        pairs += [(i, int(s)) for s in starts]
    return pairs


def gain(raw: torch.Tensor, max_db: float, rng: np.random.Generator) -> torch.Tensor:
    if max_db <= 0:
        return raw
    db = rng.uniform(-max_db, max_db, size=(raw.shape[0], 1, 1)).astype(np.float32)
    return raw + torch.from_numpy(db * _LOG_PER_DB)


def mask(x: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """SpecAugment-style masking of normalised windows ``[B, n_mels, T]`` (0 = the band's training mean)."""
    if cfg.freq_masks == 0 and cfg.time_masks == 0:
        return x
    x = x.clone()
    n_mels, n_t = x.shape[1], x.shape[2]
    for b in range(x.shape[0]):
        for _ in range(cfg.freq_masks):
            w = int(rng.integers(0, cfg.freq_width + 1))
            f0 = int(rng.integers(0, n_mels - w + 1))
            x[b, f0 : f0 + w, :] = 0.0
        for _ in range(cfg.time_masks):
            w = int(rng.integers(0, cfg.time_width + 1))
            t0 = int(rng.integers(0, n_t - w + 1))
            x[b, :, t0 : t0 + w] = 0.0
    return x


def mixup(x: torch.Tensor, targets: torch.Tensor, alpha: float, rng: np.random.Generator):
    """Blend each window with another of the batch; ``targets`` are one-hot/soft ``[B, n_labels]``."""
    if alpha <= 0:
        return x, targets
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(x.shape[0]))
    return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm]
