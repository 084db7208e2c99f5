"""Frozen-backbone embeddings of every clip's windows, cached on disk.

Transfer heads train in seconds once each window's backbone activations are known, while the backbone itself costs
tens of milliseconds a window; so the activations are computed once per (backbone, front end, clip content) and
reused by every fold, recipe and ablation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from genrecast.dsp import DSPConfig
from genrecast.dsp.dcblock import FINGERPRINT as DC_BLOCK
from genrecast.dsp.level import FINGERPRINT as LEVEL

from .acoustic import Chain
from .cache import mark_used
from .corpus import UNREADABLE, Clip, chain_of, file_hash, read_clip_windows
from .musicnn import Musicnn, musicnn_input

# What is kept per window: musicnn's pooled vectors, the penultimate layer and the 50 tag logits.
PARTS = ("mean_pool", "max_pool", "penultimate", "logits")


def backbone_activations(model: Musicnn, windows: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
    """``[n, n_mels, T]`` log-mel windows (:func:`.corpus.clip_windows`') -> each of :data:`PARTS` as ``[n, dim]``
    float32."""
    out: dict[str, list[np.ndarray]] = {p: [] for p in PARTS}
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            acts = model.activations(musicnn_input(torch.from_numpy(windows[i : i + batch])))
            for p in PARTS:
                out[p].append(getattr(acts, p).numpy())
    return {p: np.concatenate(v) if v else np.zeros((0, 0), np.float32) for p, v in out.items()}


def _key(clip: Clip, tag: str, chains: Mapping[str, Chain] | None) -> str:
    h = file_hash(clip.path)
    h.update(tag.encode() + (f":crop{clip.crop}".encode() if clip.crop else b""))
    if clip.acoustic:  # the chain's whole configuration, its banks and the copy (each draws its own room and noise)
        bank = chain_of(clip, chains).banks.id
        h.update(f":acoustic{clip.acoustic[0]}:{bank}:{clip.acoustic[1]}:{clip.clip_id}".encode())
    return h.hexdigest()[:24]


def embed_clips(
    clips: Sequence[Clip],
    models: Mapping[str, Musicnn],
    cfg: DSPConfig,
    win_frames: int,
    hop: int,
    cache: Path,
    max_windows: int = 0,
    log: Callable[[str], None] | None = None,
    chains: Mapping[str, Chain] | None = None,
) -> tuple[list[Clip], list[dict[str, np.ndarray]], list[tuple[Clip, str]]]:
    """Activations of every usable clip by every named backbone, keyed ``name:part``; unusable clips listed. Each
    backbone's are cached apart under ``cache`` by content, backbone name, front end and, for a clip heard through a
    room, the chain's configuration, its banks' id and the copy (so adding a backbone reuses the others').
    ``chains`` plays such clips (by fingerprint); a clip's windows are read once for all the backbones that miss
    it."""
    cache.mkdir(parents=True, exist_ok=True)
    kept, acts, skipped = [], [], []
    for i, clip in enumerate(clips):
        merged: dict[str, np.ndarray] = {}
        windows = None
        try:
            for name, model in models.items():
                tag = f'{name}:{cfg.fingerprint()}:{DC_BLOCK}:{LEVEL}:{win_frames}:{hop}:{max_windows}'
                path = cache / f"{_key(clip, tag, chains)}.npz"
                if path.exists():
                    with np.load(path) as z:
                        a = {p: z[p] for p in PARTS}
                    mark_used(path)
                else:
                    if windows is None:
                        windows = read_clip_windows(clip, cfg, win_frames, hop, max_windows, chains)
                    a = backbone_activations(model, windows)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
                    np.savez(tmp, **a)
                    tmp.replace(path)
                merged |= {f"{name}:{p}": v for p, v in a.items()}
        except UNREADABLE as exc:
            skipped.append((clip, str(exc)))
            continue
        kept.append(clip)
        acts.append(merged)
        if log and (i + 1) % 100 == 0:
            log(f"embedded {i + 1}/{len(clips)} clips")
    return kept, acts, skipped
