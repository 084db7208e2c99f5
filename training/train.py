"""The training loop: seeded, single-threaded by default (reproducible on CPU), early stopping on validation loss.

Training windows are cropped at random starts each epoch (as many per track as the evaluation hop gives);
validation windows are the fixed ones the daemon would see. The model with the lowest validation loss is kept.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from genrecast.dsp.windows import slice_windows

from . import augment
from .augment import AugmentConfig
from .dataset import Dataset
from .models import GenreNet, build


@dataclass(frozen=True)
class TrainConfig:
    model: str = "default"
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-3
    patience: int = 12  # epochs without a better validation loss before stopping
    seed: int = 0
    threads: int = 1
    max_steps: int = 0  # stop after this many optimiser steps in all (0 = no limit); for smoke tests
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float


@dataclass
class TrainResult:
    model: GenreNet  # weights of the best epoch
    history: list[EpochStats]
    best_epoch: int
    stopped_early: bool


def band_stats(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel-band mean and std of all training frames (std floored so a silent band cannot blow up)."""
    allf = np.concatenate(frames, axis=0).astype(np.float64)
    return allf.mean(axis=0).astype(np.float32), np.maximum(allf.std(axis=0), 1e-3).astype(np.float32)


def fixed_windows(ds: Dataset, labels: tuple[str, ...], win: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """All evaluation windows of a dataset with their label indices."""
    xs = [slice_windows(f, win, hop) for f in ds.frames]
    ys = [np.full(len(x), labels.index(t.genre)) for x, t in zip(xs, ds.tracks, strict=True)]
    return np.concatenate(xs), np.concatenate(ys)


class Progress:
    """One line per epoch; within the epoch a bar redrawn in place when stderr is a terminal."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.live = stream.isatty()

    def step(self, epoch: int, done: int, total: int, loss: float, acc: float) -> None:
        if self.live:
            bar = "#" * (20 * done // total)
            self.stream.write(f"\repoch {epoch:3d} [{bar:<20}] {done}/{total} loss {loss:.3f} acc {acc:.3f}")
            self.stream.flush()

    def epoch(self, s: EpochStats, best: bool) -> None:
        self.stream.write(("\r" if self.live else "") + f"epoch {s.epoch:3d}  train loss {s.train_loss:.3f} "
                          f"acc {s.train_acc:.3f}  val loss {s.val_loss:.3f} acc {s.val_acc:.3f}  "
                          f"{s.seconds:.1f}s{'  *best' if best else ''}\n")
        self.stream.flush()


def window_logits(model: GenreNet, x: np.ndarray, batch: int = 128) -> torch.Tensor:
    """Logits (before temperature) of raw log-mel windows, in eval mode."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model.logits(model.normalise(torch.from_numpy(x[i : i + batch])))
                          for i in range(0, len(x), batch)])


def evaluate_loss(model: GenreNet, x: np.ndarray, y: np.ndarray, batch: int = 128) -> tuple[float, float]:
    logits, yt = window_logits(model, x, batch), torch.from_numpy(y)
    # summed per batch, as the kept checkpoints were chosen with: the same command must pick the same epoch
    total = sum(F.cross_entropy(logits[i : i + batch], yt[i : i + batch], reduction="sum").item()
                for i in range(0, len(x), batch))
    return total / len(x), int((logits.argmax(1) == yt).sum()) / len(x)


def train(
    train_ds: Dataset,
    val_ds: Dataset,
    labels: tuple[str, ...],
    win: int,
    hop: int,
    cfg: TrainConfig,
    checkpoint: Path | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(cfg.seed)
    mean, std = band_stats(train_ds.frames)
    model = build(cfg.model, len(labels), mean, std)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    train_y = np.array([labels.index(t.genre) for t in train_ds.tracks])
    n_frames = np.array([f.shape[0] for f in train_ds.frames])
    val_x, val_y = fixed_windows(val_ds, labels, win, hop)
    eye = torch.eye(len(labels))

    history: list[EpochStats] = []
    best_loss, best_epoch, best_state = float("inf"), 0, copy.deepcopy(model.state_dict())
    steps, stopped_early = 0, False
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        pairs = augment.window_starts(n_frames, win, hop, cfg.augment.crop, rng)
        order = rng.permutation(len(pairs))
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        n_batches = (len(order) + cfg.batch_size - 1) // cfg.batch_size
        for b in range(n_batches):
            idx = [pairs[j] for j in order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            raw = torch.from_numpy(np.stack([train_ds.frames[t][s : s + win].T for t, s in idx]))
            y = torch.from_numpy(train_y[[t for t, _ in idx]])
            x = augment.mask(model.normalise(augment.gain(raw, cfg.augment.gain_db, rng)), cfg.augment, rng)
            x, target = augment.mixup(x, eye[y], cfg.augment.mixup_alpha, rng)
            logits = model.logits(x)
            loss = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == target.argmax(1)).sum())
            seen += len(idx)
            steps += 1
            if progress:
                progress.step(epoch, b + 1, n_batches, loss_sum / seen, correct / seen)
            if cfg.max_steps and steps >= cfg.max_steps:
                break
        val_loss, val_acc = evaluate_loss(model, val_x, val_y)
        stats = EpochStats(epoch, loss_sum / seen, correct / seen, val_loss, val_acc, time.perf_counter() - t0)
        history.append(stats)
        improved = val_loss < best_loss - 1e-4
        if improved:
            best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(model.state_dict())
            if checkpoint is not None:
                torch.save({"epoch": epoch, "config": cfg.to_dict(), "state_dict": best_state}, checkpoint)
        if progress:
            progress.epoch(stats, improved)
        if cfg.max_steps and steps >= cfg.max_steps:
            break
        if epoch - best_epoch >= cfg.patience:
            stopped_early = True
            break
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, history, best_epoch, stopped_early)
