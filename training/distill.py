"""The fast variant: a small CNN taught to reproduce the transfer model's outputs (knowledge distillation).

The student sees the same log-mel windows as the teacher and learns the teacher's soft genre distribution (KL
divergence, weighted by how sure the teacher is that the window is music at all, since a genre of speech means
nothing) and its music probability (binary cross-entropy). Soft targets carry what the teacher learned from a
million songs about which genres sound alike, which a few hundred hard labels cannot. Frequency and time masks on
the student's input (never the teacher's) keep it from copying by rote.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Normalise(nn.Module):
    """Per-mel-band standardisation with statistics of the training windows, baked into the exported graph, so the
    daemon feeds windows exactly as ``dsp.LogMelStream`` makes them and cannot forget or mis-apply it."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1))
        self.register_buffer("inv_std", 1.0 / torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


class _MeanMaxOverTime(nn.Module):
    """``[B, C, F, T]`` -> ``[B, 2C]``: average over frequency, then mean and max over time.

    Max over time lets a short characteristic event (a drum fill, a distorted chord) decide; mean keeps the
    overall texture.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=2)
        return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)


def conv_body(n_out: int, widths: tuple[int, ...]) -> nn.Module:
    """Small conv blocks with batch norm (which little data need far more than width), then mean and max over
    time, 30 % dropout and one linear layer: ~100 k parameters with the default widths."""
    layers: list[nn.Module] = []
    c_in = 1
    for c_out in widths:
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c_out
    return nn.Sequential(*layers, _MeanMaxOverTime(), nn.Dropout(0.3), nn.Linear(2 * c_in, n_out))


@dataclass(frozen=True)
class DistillConfig:
    """The student's recipe; the defaults made the shipped fast variant but for its seed, 1 (``--fast-seeds 1``;
    models/README.md)."""

    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-3
    widths: tuple[int, ...] = (24, 48, 96, 192)
    stem_pool: int = 2  # average-pool the input by this in time and frequency first: 4x fewer multiply-adds
    freq_mask: int = 12  # widest frequency mask (bands)
    time_mask: int = 24  # widest time mask (frames)
    seed: int = 0
    threads: int = 1
    # every Nth window of each clip in the transfer set (neighbours overlap by 2/3): fast 0.5.1 learned from all,
    # twice 0.5.0's training for the same network (models/README.md)
    window_stride: int = 1

    def to_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}


class FastNet(nn.Module):
    """Raw log-mel ``[B, n_mels, T]`` -> ``(genre probabilities [B, n_labels], music probability [B])``: the input
    standardised, average-pooled by ``stem_pool``, then :func:`conv_body` with one output per genre plus music."""

    def __init__(self, n_labels: int, mean: np.ndarray, std: np.ndarray, widths: tuple[int, ...],
                 stem_pool: int) -> None:
        super().__init__()
        self.n_labels = n_labels
        self.normalise = Normalise(mean, std)
        self.body = nn.Sequential(nn.AvgPool2d(stem_pool), conv_body(n_labels + 1, widths))

    def logits(self, normalised: torch.Tensor) -> torch.Tensor:
        return self.body(normalised.unsqueeze(1))

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.logits(self.normalise(logmel))
        return torch.softmax(z[:, : self.n_labels], dim=-1), torch.sigmoid(z[:, self.n_labels])


def _mask(x: torch.Tensor, cfg: DistillConfig, rng: np.random.Generator) -> torch.Tensor:
    x = x.clone()
    for i in range(x.shape[0]):
        f, t = rng.integers(0, cfg.freq_mask + 1), rng.integers(0, cfg.time_mask + 1)
        f0, t0 = rng.integers(0, x.shape[1] - f + 1), rng.integers(0, x.shape[2] - t + 1)
        x[i, f0 : f0 + f, :] = 0.0
        x[i, :, t0 : t0 + t] = 0.0
    return x


def distill_loss(logits: torch.Tensor, genre_t: torch.Tensor, music_t: torch.Tensor, n_labels: int) -> torch.Tensor:
    kl = (genre_t * (torch.log(genre_t.clamp_min(1e-8)) - F.log_softmax(logits[:, :n_labels], dim=1))).sum(1)
    bce = F.binary_cross_entropy_with_logits(logits[:, n_labels], music_t, reduction="none")
    return (music_t * kl + bce).mean()


def train_student(windows: np.ndarray, genre_t: np.ndarray, music_t: np.ndarray, cfg: DistillConfig,
                  log=None) -> FastNet:
    """Fit a :class:`FastNet` to the teacher's outputs ``genre_t`` ``[n, n_labels]`` and ``music_t`` ``[n]``.

    The student with the lowest loss on a held-back tenth of the windows is kept.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n_labels = genre_t.shape[1]
    flat = windows.transpose(0, 2, 1).reshape(-1, windows.shape[1]).astype(np.float64)
    model = FastNet(n_labels, flat.mean(0).astype(np.float32), np.maximum(flat.std(0), 1e-3).astype(np.float32),
                    cfg.widths, cfg.stem_pool)
    order = rng.permutation(len(windows))
    held, train = order[: len(order) // 10], order[len(order) // 10 :]
    x, g, m = torch.from_numpy(windows), torch.from_numpy(genre_t.astype(np.float32)), torch.from_numpy(
        music_t.astype(np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(train) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    best, best_state = float("inf"), copy.deepcopy(model.state_dict())
    for epoch in range(cfg.epochs):
        model.train()
        perm = rng.permutation(train)
        for b in range(0, len(perm), cfg.batch_size):
            idx = perm[b : b + cfg.batch_size]
            z = model.logits(_mask(model.normalise(x[idx]), cfg, rng))
            loss = distill_loss(z, g[idx], m[idx], n_labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            held_loss = float(sum(distill_loss(model.logits(model.normalise(x[held[i : i + 256]])),
                                               g[held[i : i + 256]], m[held[i : i + 256]], n_labels) * len(
                held[i : i + 256]) for i in range(0, len(held), 256)) / max(1, len(held)))
        if held_loss < best:
            best, best_state = held_loss, copy.deepcopy(model.state_dict())
        if log:
            mark = "  *best" if held_loss == best else ""
            log(f"epoch {epoch + 1}/{cfg.epochs} held-back loss {held_loss:.4f}{mark}")
    model.load_state_dict(best_state)
    return model.eval()


def predict(model: FastNet, windows: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        outs = [model(torch.from_numpy(windows[i : i + batch])) for i in range(0, len(windows), batch)]
    if not outs:
        return np.zeros((0, model.n_labels), np.float32), np.zeros(0, np.float32)
    return torch.cat([o[0] for o in outs]).numpy(), torch.cat([o[1] for o in outs]).numpy()
