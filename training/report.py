"""PNG plots for a run folder (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from .train import EpochStats  # noqa: E402


def plot_history(history: Sequence[EpochStats], best_epoch: int, path: str | os.PathLike) -> None:
    epochs = [s.epoch for s in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [s.train_loss for s in history], label="train")
    ax_loss.plot(epochs, [s.val_loss for s in history], label="validation")
    ax_acc.plot(epochs, [s.train_acc for s in history], label="train")
    ax_acc.plot(epochs, [s.val_acc for s in history], label="validation")
    for ax, name in ((ax_loss, "loss"), (ax_acc, "window accuracy")):
        ax.axvline(best_epoch, color="grey", linestyle=":", label="best (kept)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], title: str,
                   path: str | os.PathLike) -> None:
    n = len(labels)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = max(max(row) for row in confusion) or 1
    for i in range(n):
        for j in range(n):
            if confusion[i][j]:
                ax.text(j, i, str(confusion[i][j]), ha="center", va="center",
                        color="white" if confusion[i][j] > top / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
