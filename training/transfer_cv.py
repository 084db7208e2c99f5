"""K-fold cross-validation of the transfer heads, by track for genres and by speaker or source for non-music.

Every genre track is tested exactly once, in the fold :func:`training.split.kfold_split` gives it (stratified by
genre, so both collections and every label are in every fold); every non-music group (a speaker, a contributor, a
machine) falls wholly in one fold. Each fold fits the heads on its training part (with the room copies of those
clips only), the temperature on its validation part, and predicts its test part, as recorded and through held-out
rooms. :func:`cross_source` trains on one collection and tests on the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from genrecast.dsp import weigh_heads

from .calibrate import fit_temperature
from .corpus import Clip, base_id
from .evaluate import score
from .split import Track, kfold_split
from .transfer import HeadConfig, Heads, WindowSet, fit_heads


def group_folds(clips: Sequence[Clip], folds: int, seed: int) -> list[int]:
    """A fold per clip: each kind's groups shuffled (seeded) and dealt round-robin, so every fold has every kind."""
    by_kind: dict[str, set[str]] = defaultdict(set)
    for c in clips:
        by_kind[c.kind].add(c.group)
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    for kind in sorted(by_kind):
        groups = sorted(by_kind[kind])
        rng.shuffle(groups)
        fold_of.update({g: i % folds for i, g in enumerate(groups)})
    return [fold_of[c.group] for c in clips]


def _tracks(clips: Sequence[Clip]) -> list[Track]:
    return [Track(c.clip_id, c.genre, c.path) for c in clips]


def fit_calibrated(genre: WindowSet, music: WindowSet, labels: Sequence[str], cfg: HeadConfig,
                   val: WindowSet | None) -> Heads:
    """Heads on ``genre``/``music``, with each genre head's temperature fitted on ``val``'s genre windows when there
    are any."""
    heads = fit_heads(genre, music, labels, cfg)
    if val is not None and len(val.x):
        y = np.array([labels.index(val.clips[c].genre) for c in val.clip_index])
        heads.temperature = fit_temperature(heads.logits(val.x)[0], y)
        if heads.has_direct:
            heads.direct_temperature = fit_temperature(heads.logits(val.x, direct=True)[0], y)
    return heads


@dataclass
class OutOfFold:
    """Every clip's windows as predicted by the fold that did not train on it."""

    clips: list[Clip]
    genre_probs: list[np.ndarray]  # per clip [n_windows, n_labels]
    music_probs: list[np.ndarray]  # per clip [n_windows]
    fold: list[int]
    heads: list[Heads]  # per fold
    direct_probs: list[np.ndarray] | None = None  # per clip, the direct genre head's, when the heads have one
    room_probs: list[np.ndarray] | None = None  # per clip [n_windows], the room detector's, when the heads have one

    @property
    def heard_probs(self) -> list[np.ndarray] | None:
        """Per clip, both genre heads weighed by the room detector (when there is one)."""
        if self.room_probs is None:
            return None
        return [weigh_heads(g, d, r) for g, d, r in zip(self.genre_probs, self.direct_probs, self.room_probs,
                                                        strict=True)]


def fold_parts(gset: WindowSet, nset: WindowSet, folds: int, k: int, seed: int) -> dict[str, list[Clip]]:
    """Fold ``k``'s clips: ``train``/``val``/``test`` genre tracks, ``n_train``/``n_test`` non-music clips."""
    split = kfold_split(_tracks(gset.clips), folds, k, seed)
    by_id = {c.clip_id: c for c in gset.clips}
    n_fold = group_folds(nset.clips, folds, seed)
    return {**{p: [by_id[t] for t in split.part(p)] for p in ("train", "val", "test")},
            "n_train": [c for c, f in zip(nset.clips, n_fold, strict=True) if f != k],
            "n_test": [c for c, f in zip(nset.clips, n_fold, strict=True) if f == k]}


def held_out(genre: Sequence[Clip], other: Sequence[Clip], folds: int, k: int, seed: int) -> list[Clip]:
    """The clips fold ``k`` tests, dealt as :func:`cross_validate` deals them (genre tracks by track, the rest by
    group): what a model trained with ``--hold-out`` never saw, and what ``benchmarks/room_bench.py`` scores."""
    test = set(kfold_split(_tracks(genre), folds, k, seed).test)
    return [c for c in genre if c.clip_id in test] + [c for c, f in zip(other, group_folds(other, folds, seed),
                                                                        strict=True) if f == k]


def cross_validate(gset: WindowSet, nset: WindowSet, labels: Sequence[str], cfg: HeadConfig, folds: int,
                   seed: int = 0, extra: WindowSet | None = None) -> OutOfFold:
    """``gset``: genre tracks; ``nset``: non-music clips and genre-less music; ``extra``: clips made from them
    (crops, copies heard through rooms), used for training only and only in the folds that train on the clip they
    were made from."""
    genre_probs: dict[str, np.ndarray] = {}
    music_probs: dict[str, np.ndarray] = {}
    direct_probs: dict[str, np.ndarray] = {}
    room_probs: dict[str, np.ndarray] = {}
    fold_of: dict[str, int] = {}
    fold_heads = []
    for k in range(folds):
        part = {p: {c.clip_id for c in clips} for p, clips in fold_parts(gset, nset, folds, k, seed).items()}
        g_train, g_val, g_test = (gset.where(lambda c, ids=part[p]: c.clip_id in ids) for p in ("train", "val", "test"))
        n_train, n_test = (nset.where(lambda c, ids=part[p]: c.clip_id in ids) for p in ("n_train", "n_test"))
        if extra is not None:
            g_train = g_train.join(extra.where(lambda c, ids=part["train"]: base_id(c) in ids))
            n_train = n_train.join(extra.where(lambda c, ids=part["n_train"]: base_id(c) in ids))
        heads = fit_calibrated(g_train, g_train.join(n_train), labels, cfg, g_val)
        fold_heads.append(heads)
        for test in (g_test, n_test):
            gp, mp = heads.predict(test.x)
            dp = heads.predict(test.x, direct=True)[0] if heads.has_direct else None
            rp = heads.room(test.x) if heads.has_room_detector else None
            for i, clip in enumerate(test.clips):
                genre_probs[clip.clip_id] = gp[test.clip_index == i]
                music_probs[clip.clip_id] = mp[test.clip_index == i]
                if dp is not None:
                    direct_probs[clip.clip_id] = dp[test.clip_index == i]
                if rp is not None:
                    room_probs[clip.clip_id] = rp[test.clip_index == i]
                fold_of[clip.clip_id] = k
    clips = gset.clips + nset.clips
    return OutOfFold(clips, [genre_probs[c.clip_id] for c in clips], [music_probs[c.clip_id] for c in clips],
                     [fold_of[c.clip_id] for c in clips], fold_heads,
                     [direct_probs[c.clip_id] for c in clips] if direct_probs else None,
                     [room_probs[c.clip_id] for c in clips] if room_probs else None)


def predict_held_out(oof: OutOfFold, copies: WindowSet, head: str = "room") -> tuple[list[np.ndarray],
                                                                                      list[np.ndarray]]:
    """Each copy (a clip heard through a bench room) predicted by the fold that held its clip out, by its genre
    ``head``: ``room``, ``direct``, or ``heard`` (both weighed by the room detector)."""
    if head not in ("room", "direct", "heard"):
        raise ValueError(f"no genre head {head!r}")
    fold_of = {c.clip_id: f for c, f in zip(oof.clips, oof.fold, strict=True)}
    genre, music = [], []
    for i, clip in enumerate(copies.clips):
        heads, x = oof.heads[fold_of[base_id(clip)]], copies.x[copies.clip_index == i]
        gp, mp = heads.predict(x, head == "direct")
        genre.append(heads.predict_heard(x) if head == "heard" else gp)
        music.append(mp)
    return genre, music


def room_held_out(oof: OutOfFold, copies: WindowSet) -> list[np.ndarray]:
    """Each copy's windows as the room detector of the fold that held its clip out judges them."""
    fold_of = {c.clip_id: f for c, f in zip(oof.clips, oof.fold, strict=True)}
    return [oof.heads[fold_of[base_id(clip)]].room(copies.x[copies.clip_index == i])
            for i, clip in enumerate(copies.clips)]


def cross_source(train: WindowSet, music: WindowSet, tests: dict[str, WindowSet], cfg: HeadConfig) -> dict:
    """Heads fitted on one collection's genre clips (``train``, with its room copies) and every non-music clip
    (``music``), scored on another collection's clips of the genres the first one has: what predicts accuracy on
    a user's music, which no collection we train on holds. ``tests`` names test sets (clean, through rooms); the
    direct genre head's scores, when the heads have one, are under ``direct``, and both weighed by the room detector,
    when there is one, under ``heard``."""
    labels = sorted({c.genre for c in train.clips})
    heads = fit_calibrated(train, train.join(music), labels, cfg, None)

    def scores(head: str) -> dict:
        out = {}
        for name, test in tests.items():
            test = test.where(lambda c: c.genre in labels)
            gp = heads.predict_heard(test.x) if head == "heard" else heads.predict(test.x, head == "direct")[0]
            ev = score([(c.clip_id, c.genre) for c in test.clips], [gp[test.clip_index == i] for i in
                                                                      range(len(test.clips))], labels)
            out[name] = {k: v for k, v in ev.to_dict().items() if k != "tracks"}
        return out

    return ({"labels": labels, **scores("room")} | ({"direct": scores("direct")} if heads.has_direct else {})
            | ({"heard": scores("heard")} if heads.has_room_detector else {}))
