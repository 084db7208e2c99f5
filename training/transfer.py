"""Transfer heads on a frozen pretrained backbone: a genre classifier and a music / not-music detector.

Both heads are linear (multinomial and binary logistic regression) on standardised backbone activations, fitted
full-batch with L-BFGS and an L2 penalty. With a few hundred tracks, a linear read-out of features learned from a
million songs generalises far better than anything trained from scratch, and it fits in a second, so every choice
can be cross-validated.

Weights: every genre counts the same in total (classical has twice the tracks of the others), and within a genre
every track counts the same whatever its length (a 20-s excerpt gives 18 windows, a 2-s clip one), so the heads
are tuned for what the track-level accuracy measures. The music head balances music against not-music, and speech
against noise, so the thin noise set is not drowned by speech.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from genrecast.dsp import weigh_heads

from .corpus import Clip
from .musicnn import Musicnn, musicnn_input


def backbones_of(features: Sequence[str]) -> tuple[str, ...]:
    """The networks ``backbone:part`` features come from, in order of first use."""
    return tuple(dict.fromkeys(f.partition(":")[0] for f in features))


@dataclass(frozen=True)
class HeadConfig:
    # which frozen activations feed the heads, ``backbone:part``: the Million Song network's pools and penultimate
    # layer, and the MagnaTagATune network's pools (the card's *Choices*: 4 points more through rooms; its dense layer
    # would add 1.2 MB for nothing measurable); the first backbone's tags are the model's
    features: tuple[str, ...] = ("MSD_musicnn:mean_pool", "MSD_musicnn:max_pool", "MSD_musicnn:penultimate",
                                 "MTT_musicnn:mean_pool", "MTT_musicnn:max_pool")
    # the music head reads only these of them (the Million Song network's, as in 0.3.x: with the other network's
    # pools too it flagged 54 of 60 generated noises in rooms, under the 95 %); its other weights are 0
    music_features: tuple[str, ...] = ("MSD_musicnn:mean_pool", "MSD_musicnn:max_pool", "MSD_musicnn:penultimate")
    l2: float = 0.1  # the genre head's penalty (mean loss + l2 * |W|^2 / 2); the card's *Choices* measure it
    music_l2: float = 1e-2  # the music head's: more speech and noise flagged in rooms, more music kept than at 0.1
    max_iter: int = 200
    copy_weight: float = 1.0  # what a copy heard through a room weighs against a recorded clip of its class
    # a second genre head fitted on the recorded clips alone, for audio that reaches the model as recorded (a file, a
    # pipe, a radio stream): the card's *Choices* measure it better across collections than the head that also
    # learned the room copies, and worse through rooms, where a microphone is (only with room copies to leave out)
    direct_head: bool = True
    # a linear detector of audio heard through a room (the room copies) against the recorded clips, on the same
    # features, beside the direct head: under ``heard = auto`` it weighs the two genre heads window by window for
    # any source but a microphone (``classify`` of a file taped in a kitchen; the card's *Choices* measure it)
    room_detector: bool = True
    room_l2: float = 0.1

    def __post_init__(self) -> None:
        if not self.music_features or not set(self.music_features) <= set(self.features):
            raise ValueError(f"the music head's features {list(self.music_features)} must be some of the heads' "
                             f"{list(self.features)}")

    @property
    def backbones(self) -> tuple[str, ...]:
        """The networks the features come from, in order (as :func:`embed.embed_clips` names them)."""
        return backbones_of(self.features)

    def to_dict(self) -> dict:
        return {"features": list(self.features), "music_features": list(self.music_features), "l2": self.l2,
                "music_l2": self.music_l2, "max_iter": self.max_iter, "copy_weight": self.copy_weight,
                "direct_head": self.direct_head, "room_detector": self.room_detector, "room_l2": self.room_l2}


@dataclass
class Heads:
    """Standardisation and the linear heads, as numpy arrays (what the exported graph bakes in): the genre head
    (``genre_*``, which learned room copies too), the music head and, when fitted, the direct genre head
    (``direct_*``, recorded clips alone) and the room detector (``room_*``: heard through a room, or as recorded) on
    the same standardised features."""

    features: tuple[str, ...]  # ``backbone:part`` (HeadConfig.features)
    mean: np.ndarray  # [d]
    std: np.ndarray  # [d]
    genre_w: np.ndarray  # [n_labels, d]
    genre_b: np.ndarray  # [n_labels]
    music_w: np.ndarray  # [d]
    music_b: float
    temperature: float = 1.0
    direct_w: np.ndarray | None = None  # [n_labels, d]
    direct_b: np.ndarray | None = None  # [n_labels]
    direct_temperature: float = 1.0
    room_w: np.ndarray | None = None  # [d]
    room_b: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def has_direct(self) -> bool:
        return self.direct_w is not None

    @property
    def has_room_detector(self) -> bool:
        return self.room_w is not None

    def room(self, x: np.ndarray) -> np.ndarray:
        """``[n, d]`` features -> the probability that each window was heard through a room ``[n]``."""
        return self._room(self._standardise(x))

    def predict_heard(self, x: np.ndarray) -> np.ndarray:
        """Genre probabilities under ``heard = auto`` for any source but a microphone: each window's two heads
        weighed by the room detector (:func:`weigh_heads`, what the daemon computes from the graph's outputs)."""
        z = self._standardise(x)  # once for the three heads
        return weigh_heads(self._genre(z, False), self._genre(z, True), self._room(z))

    def logits(self, x: np.ndarray, direct: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Genre and music logits; ``direct``: the direct genre head's (which there must be)."""
        z = self._standardise(x)
        return self._genre_logits(z, direct), z @ self.music_w + self.music_b

    def predict(self, x: np.ndarray, direct: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``[n, d]`` features -> genre probabilities ``[n, n_labels]`` (the direct head's with ``direct``) and music
        probabilities ``[n]``."""
        z = self._standardise(x)
        return self._genre(z, direct), 1.0 / (1.0 + np.exp(-(z @ self.music_w + self.music_b)))

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def _genre_logits(self, z: np.ndarray, direct: bool) -> np.ndarray:
        w, b = (self.direct_w, self.direct_b) if direct else (self.genre_w, self.genre_b)
        return z @ w.T + b

    def _genre(self, z: np.ndarray, direct: bool) -> np.ndarray:
        g = self._genre_logits(z, direct) / (self.direct_temperature if direct else self.temperature)
        g = np.exp(g - g.max(axis=1, keepdims=True))
        return g / g.sum(axis=1, keepdims=True)

    def _room(self, z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(z @ self.room_w + self.room_b)))


def features(acts: dict[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    return np.concatenate([acts[k] for k in keys], axis=1).astype(np.float32)


@dataclass
class WindowSet:
    """Every window of some clips: features, the clip each came from, and per-window targets."""

    clips: list[Clip]
    x: np.ndarray  # [n, d]
    clip_index: np.ndarray  # [n] index into clips
    widths: dict[str, int] = field(default_factory=dict)  # each feature's columns of x, in order

    @classmethod
    def build(cls, clips: Sequence[Clip], acts: Sequence[dict[str, np.ndarray]], keys: Sequence[str]) -> WindowSet:
        xs = [features(a, keys) for a in acts]
        idx = np.concatenate([np.full(len(x), i) for i, x in enumerate(xs)]) if xs else np.zeros(0, int)
        widths = {k: acts[0][k].shape[1] for k in keys} if acts else {}
        return cls(list(clips), np.concatenate(xs) if xs else np.zeros((0, 0), np.float32), idx, widths)

    def columns(self, keys: Sequence[str]) -> np.ndarray:
        """Whether each column of ``x`` belongs to one of ``keys``."""
        return np.concatenate([np.full(w, k in keys) for k, w in self.widths.items()])

    def join(self, other: WindowSet) -> WindowSet:
        return WindowSet(self.clips + other.clips, np.concatenate([self.x, other.x]),
                         np.concatenate([self.clip_index, other.clip_index + len(self.clips)]),
                         self.widths or other.widths)

    def where(self, keep) -> WindowSet:
        """The clips for which ``keep(clip)`` holds."""
        return self.subset([i for i, c in enumerate(self.clips) if keep(c)])

    def subset(self, keep: Sequence[int]) -> WindowSet:
        keep = list(keep)
        remap = {old: new for new, old in enumerate(keep)}
        mask = np.isin(self.clip_index, keep)
        return WindowSet([self.clips[i] for i in keep], self.x[mask],
                         np.array([remap[i] for i in self.clip_index[mask]], dtype=int), self.widths)


def _balanced_weights(classes: Sequence[str], clip_of_window: np.ndarray,
                      clip_weight: np.ndarray | None = None) -> np.ndarray:
    """Per-window weights: each class sums to 1, and within a class each clip counts the same, or as much as
    ``clip_weight`` (per clip) says against the others."""
    windows_per_clip = np.bincount(clip_of_window)
    cw = np.ones(len(windows_per_clip)) if clip_weight is None else clip_weight
    weight_per_class: dict[str, float] = defaultdict(float)
    seen: set[int] = set()
    for c, k in zip(clip_of_window, classes, strict=True):
        if int(c) not in seen:
            seen.add(int(c))
            weight_per_class[k] += cw[c]
    w = np.array([cw[c] / (windows_per_clip[c] * weight_per_class[k])
                  for c, k in zip(clip_of_window, classes, strict=True)])
    return w / w.sum() * len(weight_per_class)


def _sides_equal(weights: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Scale per-window ``weights`` in place so that each side of a binary target (``side`` true or false) sums to 1,
    whatever number of kinds it holds; returns them."""
    for s in (True, False):
        weights[side == s] /= weights[side == s].sum()
    return weights


def _fit_linear(z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, n_out: int, l2: float, max_iter: int,
                binary: bool) -> tuple[np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    weight = torch.zeros(n_out if not binary else 1, z.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(weight.shape[0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)
    total = w.sum()

    def closure():
        opt.zero_grad()
        out = z @ weight.T + bias
        if binary:
            loss = (F.binary_cross_entropy_with_logits(out[:, 0], y, reduction="none") * w).sum() / total
        else:
            loss = (F.cross_entropy(out, y, reduction="none") * w).sum() / total
        loss = loss + 0.5 * l2 * (weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return weight.detach().numpy(), bias.detach().numpy()


def fit_heads(genre: WindowSet, music: WindowSet, labels: Sequence[str], cfg: HeadConfig) -> Heads:
    """Genre head on ``genre``'s windows (clips with a genre); music head on ``music``'s (music and not)."""
    both = np.concatenate([genre.x, music.x]).astype(np.float64)
    mean, std = both.mean(axis=0), np.maximum(both.std(axis=0), 1e-6)

    def z(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((x.astype(np.float64) - mean) / std)

    def copies_weigh(clips: Sequence[Clip]) -> np.ndarray:
        return np.array([cfg.copy_weight if c.acoustic else 1.0 for c in clips])

    def fit_genre(clips: WindowSet) -> tuple[np.ndarray, np.ndarray]:
        classes = [clips.clips[c].genre for c in clips.clip_index]
        return _fit_linear(z(clips.x), torch.tensor([labels.index(g) for g in classes]),
                           torch.from_numpy(_balanced_weights(classes, clips.clip_index, copies_weigh(clips.clips))),
                           len(labels), cfg.l2, cfg.max_iter, binary=False)

    gw, gb = fit_genre(genre)
    recorded = genre.where(lambda c: c.acoustic is None)
    dw, db = fit_genre(recorded) if cfg.direct_head and len(recorded.clips) < len(genre.clips) else (None, None)
    # music vs not, and within each side its kinds (genre tracks / genre-less music; speech / noise) balanced
    m_classes = [("music:" if music.clips[c].is_music else "not:") + ("genre" if music.clips[c].genre else
                 music.clips[c].kind) for c in music.clip_index]
    kind_w = _balanced_weights(m_classes, music.clip_index, copies_weigh(music.clips))
    side = np.array([k.startswith("music:") for k in m_classes])
    _sides_equal(kind_w, side)
    cols = music.columns(cfg.music_features)
    mw, mb = np.zeros((1, len(cols))), np.zeros(1)
    mw[:, cols], mb = _fit_linear(z(music.x)[:, torch.from_numpy(cols)], torch.from_numpy(side.astype(np.float64)),
                                  torch.from_numpy(kind_w), 1, cfg.music_l2, cfg.max_iter, binary=True)
    rw, rb = _fit_room(z(music.x), music, cfg) if cfg.room_detector and dw is not None else (None, None)
    return Heads(cfg.features, mean.astype(np.float32), std.astype(np.float32), gw.astype(np.float32),
                 gb.astype(np.float32), mw[0].astype(np.float32), float(mb[0]),
                 direct_w=None if dw is None else dw.astype(np.float32),
                 direct_b=None if db is None else db.astype(np.float32),
                 room_w=None if rw is None else rw[0].astype(np.float32), room_b=0.0 if rb is None else float(rb[0]))


def _fit_room(z: torch.Tensor, clips: WindowSet, cfg: HeadConfig) -> tuple[np.ndarray, np.ndarray]:
    """The room detector: every clip's room copies against the recorded clips, each side summing to the same and,
    within a side, genre tracks and each kind of other clip (speech, noise, genre-less music) counting the same."""
    heard = np.array([clips.clips[c].acoustic is not None for c in clips.clip_index])
    kinds = [("room:" if h else "recorded:") + ("genre" if clips.clips[c].genre else clips.clips[c].kind)
             for h, c in zip(heard, clips.clip_index, strict=True)]
    w = _sides_equal(_balanced_weights(kinds, clips.clip_index), heard)
    return _fit_linear(z, torch.from_numpy(heard.astype(np.float64)), torch.from_numpy(w), 1, cfg.room_l2,
                       cfg.max_iter, binary=True)


class TransferNet(torch.nn.Module):
    """The exported graph: raw log-mel -> each frozen musicnn -> standardised activations -> the heads, plus the
    first backbone's own tag probabilities (its pretrained output layer, which costs a 200x50 product).

    ``forward`` returns ``(genre probabilities [B, n_labels], music probability [B], tag probabilities [B, n_tags])``
    and, with a direct head, its genre probabilities ``[B, n_labels]``, then with a room detector its probability
    ``[B]``; the temperatures are baked in.
    """

    def __init__(self, backbones: dict[str, Musicnn], heads: Heads) -> None:
        super().__init__()
        self.backbones = torch.nn.ModuleDict({name: b.pruned() for name, b in backbones.items()})
        self.features = heads.features
        self._parts = [f.partition(":")[::2] for f in heads.features]  # (backbone, part), split once
        f32 = torch.float32
        self.register_buffer("mean", torch.as_tensor(heads.mean, dtype=f32))
        self.register_buffer("inv_std", 1.0 / torch.as_tensor(heads.std, dtype=f32))
        self.genre = torch.nn.Linear(heads.genre_w.shape[1], heads.genre_w.shape[0])
        self.genre.weight.data = torch.as_tensor(heads.genre_w / heads.temperature, dtype=f32)
        self.genre.bias.data = torch.as_tensor(heads.genre_b / heads.temperature, dtype=f32)
        self.music = torch.nn.Linear(heads.music_w.shape[0], 1)
        self.music.weight.data = torch.as_tensor(heads.music_w[None], dtype=f32)
        self.music.bias.data = torch.tensor([heads.music_b], dtype=f32)
        self.direct = None
        if heads.has_direct:
            self.direct = torch.nn.Linear(heads.direct_w.shape[1], heads.direct_w.shape[0])
            self.direct.weight.data = torch.as_tensor(heads.direct_w / heads.direct_temperature, dtype=f32)
            self.direct.bias.data = torch.as_tensor(heads.direct_b / heads.direct_temperature, dtype=f32)
        self.room = None
        if heads.has_room_detector:
            self.room = torch.nn.Linear(heads.room_w.shape[0], 1)
            self.room.weight.data = torch.as_tensor(heads.room_w[None], dtype=f32)
            self.room.bias.data = torch.tensor([heads.room_b], dtype=f32)

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = musicnn_input(logmel)
        acts = {name: b.activations(x) for name, b in self.backbones.items()}
        z = torch.cat([getattr(acts[backbone], part) for backbone, part in self._parts], 1)
        z = (z - self.mean) * self.inv_std
        tags = acts[next(iter(self.backbones))].logits
        out = torch.softmax(self.genre(z), dim=-1), torch.sigmoid(self.music(z)[:, 0]), torch.sigmoid(tags)
        if self.direct is not None:
            out = (*out, torch.softmax(self.direct(z), dim=-1))
        return out if self.room is None else (*out, torch.sigmoid(self.room(z)[:, 0]))
