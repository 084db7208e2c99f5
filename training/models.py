"""The networks: raw log-mel window in, genre logits out, with the input normalisation baked in.

Baking per-band mean/std into the module (and so into the ONNX graph) means the daemon feeds windows exactly as
``dsp.LogMelStream`` makes them and cannot forget or mis-apply the normalisation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


class Normalise(nn.Module):
    """Per-mel-band standardisation with statistics of the training frames."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1))
        self.register_buffer("inv_std", 1.0 / torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


class GenreNet(nn.Module):
    """``normalise`` then ``body``. ``forward`` gives probabilities (the exported graph); training uses ``logits``.

    ``temperature`` divides the logits in ``forward`` only; ``genrecast train`` sets it after training to the value
    :func:`training.calibrate.fit_temperature` finds, and it is not part of a checkpoint's weights.
    """

    def __init__(self, body: nn.Module, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.normalise = Normalise(mean, std)
        self.body = body
        self.register_buffer("temperature", torch.tensor(1.0), persistent=False)

    def logits(self, normalised: torch.Tensor) -> torch.Tensor:
        return self.body(normalised.unsqueeze(1))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(self.normalise(logmel)) / self.temperature, dim=-1)


def baseline(n_labels: int) -> nn.Module:
    """The seed project's network, kept as the reference: two conv blocks (32, 128 channels) with max-pooling and
    20 % dropout, global average pooling, a 512 dense layer."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.2),
        nn.Conv2d(32, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(128, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, n_labels),
    )


class _MeanMaxOverTime(nn.Module):
    """``[B, C, F, T]`` -> ``[B, 2C]``: average over frequency, then mean and max over time.

    Max over time lets a short characteristic event (a drum fill, a distorted chord) decide; mean keeps the
    overall texture.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=2)
        return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)


def default(n_labels: int, widths: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.3) -> nn.Module:
    """Four small conv blocks with batch norm (which the tiny data need far more than width), ~100 k parameters,
    about 60 M multiply-adds per 3-s window."""
    layers: list[nn.Module] = []
    c_in = 1
    for c_out in widths:
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c_out
    return nn.Sequential(*layers, _MeanMaxOverTime(), nn.Dropout(dropout), nn.Linear(2 * c_in, n_labels))


MODELS: dict[str, Callable[[int], nn.Module]] = {"baseline": baseline, "default": default}


def build(name: str, n_labels: int, mean: np.ndarray, std: np.ndarray) -> GenreNet:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
    return GenreNet(MODELS[name](n_labels), mean, std)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
