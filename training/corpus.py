"""The labelled clips a transfer model learns from: genre tracks, and recordings that are not music.

Genre tracks come from a GTZAN-style tree (``<genre>/<genre>.NNNNN.ext``, an optional ``manifest.csv`` naming each
excerpt's kind); non-music clips from ``<kind>/<source>__<name>.ext`` (kinds ``speech``, ``noise`` and ``music``,
the last being music outside the ten genres). Every clip carries a *group*: the unit a split must keep whole. For
GTZAN that is the track; for speech the speaker; for household noise the machine; so no fold tests a voice or a
dishwasher it was trained on.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from genrecast.dsp import (
    AUDIO_SUFFIXES,
    GTZAN_GENRES,
    AudioError,
    DSPConfig,
    audio_folder,
    logmel,
    read_audio,
    resample,
)
from genrecast.dsp.dcblock import dc_block
from genrecast.dsp.level import LevelStream, normalise, window_rms
from genrecast.dsp.windows import (
    MIN_SECONDS,
    frame_seconds,
    pad_short_clip,
    slice_windows,
    window_samples,
    window_starts,
)

from .acoustic import RATE, AcousticConfig, Chain

NONMUSIC_KINDS = ("speech", "noise", "music", "synthetic")  # synthetic: generated noise (training.synth_noise)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Clip:
    clip_id: str  # unique: "blues.00012" or "speech/fsdd__0_george_25"
    genre: str | None  # one of the model's labels, or None for a clip outside the ten genres
    is_music: bool
    kind: str  # "long" | "short" (genre tracks) or a non-music kind: "speech" | "noise" | "music" | "synthetic"
    group: str  # clips of one group always fall on the same side of a split
    path: Path
    crop: tuple[float, float] | None = None  # (start, seconds) of the file, for a crop made by augmentation
    source: str = "gtzan"  # the collection it comes from: "gtzan", "ood" (Magnatune) or "nonmusic"
    acoustic: tuple[str, int] | None = None  # (chain fingerprint, copy) when heard through training.acoustic


UNREADABLE = (AudioError, OSError)  # a clip that raises one of these is skipped and listed, never fatal

SHORT_SECONDS = 5.0  # without a manifest, an excerpt shorter than this counts as a short clip


def _excerpt_kinds(root: Path) -> dict[str, str]:
    """GTZAN track id -> "long" or "short" from the shared manifest (absent: judged by length)."""
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        return {}
    with manifest.open(newline="") as f:
        return {row["track"]: ("short" if "short" in row["excerpt"] else "long") for row in csv.DictReader(f)}


def genre_clips(root: str | Path, labels: Sequence[str]) -> list[Clip]:
    """Every ``<genre>.<n>.<ext>`` file under ``root`` whose genre is one of ``labels``."""
    root = audio_folder(root)
    kinds = _excerpt_kinds(root)
    clips = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        genre = path.name.split(".", 1)[0]
        if genre in labels:
            kind = kinds.get(path.stem) or _kind_by_length(path)
            clips.append(Clip(path.stem, genre, True, kind, path.stem, path))
    return clips


def labelled_clips(root: str | Path, labels: Sequence[str], source: str) -> list[Clip]:
    """Every ``<label>/<name>.<ext>`` file under ``root`` whose folder is one of ``labels``: a second collection
    of genre music (the shared ``ood/`` Magnatune excerpts), one track per file, all of them long excerpts."""
    root = audio_folder(root)
    return [Clip(f"{source}/{label}/{path.stem}", label, True, "long", f"{source}/{label}/{path.stem}", path,
                 source=source)
            for label in labels for path in sorted((root / label).glob("*")) if path.suffix.lower() in AUDIO_SUFFIXES]


def file_hash(path: Path):
    """A sha256 of the file's bytes, ready to extend (a fresh copy each call). Each file is read once per process:
    the repeat check and every embedding cache key hash it, and each room copy and crop names its original's file."""
    return _file_hash(path).copy()


@functools.cache
def _file_hash(path: Path):
    return hashlib.sha256(path.read_bytes())


def without_repeats(clips: Sequence[Clip]) -> tuple[list[Clip], list[tuple[Clip, str]]]:
    """The clips whose file's bytes were not seen earlier in ``clips``, and each repeat with what it repeats: one
    recording under two names could land in two folds and be tested on what the heads trained on."""
    first: dict[str, Clip] = {}
    kept, repeats = [], []
    for clip in clips:
        try:
            digest = file_hash(clip.path).hexdigest()
        except OSError:  # unreadable: the embedding step skips and lists it
            kept.append(clip)
            continue
        if digest in first:
            repeats.append((clip, f"the same file as {first[digest].path}"))
        else:
            first[digest] = clip
            kept.append(clip)
    return kept, repeats


@dataclass(frozen=True)
class Corpus:
    """What ``train-transfer`` learns from and ``benchmarks/room_bench.py`` scores, each file once: both deal their
    folds from these lists, so a fold the bench scores is the fold a ``--hold-out`` model never heard."""

    genre: list[Clip]
    other: list[Clip]  # not music, and music of no genre
    labels: tuple[str, ...]  # GTZAN's ten, then the second collection's own
    repeats: list[tuple[Clip, str]]  # files left out, each with the file it repeats


def read_corpus(data: Path, nonmusic: Path, ood: Path | None = None, synthetic: Path | None = None) -> Corpus:
    """GTZAN under ``data``, a second collection under ``ood`` (its folders are labels), the non-music recordings
    under ``nonmusic`` and generated noise under ``synthetic`` (:func:`.synth_noise.write_synthetic`'s folder)."""
    genre, other = genre_clips(data, GTZAN_GENRES), nonmusic_clips(nonmusic)
    ood_labels = sorted(d.name for d in ood.iterdir() if d.is_dir()) if ood else []
    genre += labelled_clips(ood, ood_labels, "ood") if ood else []
    other += nonmusic_clips(synthetic) if synthetic else []
    kept, repeats = without_repeats(genre + other)
    return Corpus([c for c in kept if c.genre is not None], [c for c in kept if c.genre is None],
                  GTZAN_GENRES + tuple(x for x in ood_labels if x not in GTZAN_GENRES), repeats)


def usable(clips: Sequence[Clip], cfg: DSPConfig, win_frames: int, hop: int) -> tuple[list[Clip], list[Clip]]:
    """The clips whose windows can be read, and the rest (under :data:`MIN_SECONDS`, or not decodable): what the
    trainer's embedding step keeps and skips, for a caller that does not embed."""
    kept, skipped = [], []
    for clip in clips:
        try:
            read_clip_windows(clip, cfg, win_frames, hop, 1)
        except UNREADABLE:
            skipped.append(clip)
        else:
            kept.append(clip)
    return kept, skipped


NOISE_KINDS = ("noise", "synthetic")
BANK_KINDS = (*NOISE_KINDS, "speech")  # the non-music kinds a chain's banks draw on


def bank_sources(other: Sequence[Clip]) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """``(path, group)`` of the recorded and generated noises, and of the voices, that a chain's banks draw on."""
    return ([(c.path, c.group) for c in other if c.kind in NOISE_KINDS],
            [(c.path, c.group) for c in other if c.kind == "speech"])


def _kind_by_length(path: Path) -> str:
    try:
        return "short" if sf.info(str(path)).duration < SHORT_SECONDS else "long"
    except (RuntimeError, sf.LibsndfileError):  # unreadable: the embedding step skips and lists it
        return "long"


def speaker_or_source(source: str, name: str) -> str:
    """The group of a non-music clip named ``<source>__<name>``: who spoke or what made the sound."""
    if source.startswith("librispeech"):
        return f"{source}/{name.split('-', 1)[0]}"
    if source == "fsdd":
        parts = name.split("_")
        return f"{source}/{parts[1] if len(parts) > 2 else name}"
    match = _UUID.match(name)
    if match:  # Mycroft's and donateacry's recordings start with the contributor's id
        return f"{source}/{match.group(0).lower()}"
    if source.startswith("household_noise"):
        return f"{source}/{name.rsplit('_', 1)[0]}"
    return f"{source}/{name}"


def nonmusic_clips(root: str | Path) -> list[Clip]:
    """Every clip under ``root/<kind>/`` for the kinds in :data:`NONMUSIC_KINDS` (a missing kind is no clip)."""
    root = audio_folder(root)
    clips = []
    for kind in NONMUSIC_KINDS:
        for path in sorted((root / kind).glob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            source, _, name = path.stem.partition("__")
            clips.append(Clip(f"{kind}/{path.stem}", None, kind == "music", kind,
                              speaker_or_source(source, name or source), path, source="nonmusic"))
    return clips


def clip_windows(samples: np.ndarray, rate: int, cfg: DSPConfig, win_frames: int, hop: int,
                 max_windows: int = 0) -> np.ndarray:
    """``[n, n_mels, win_frames]`` log-mel windows of one clip, as the daemon cuts them, a quiet clip's raised
    (:mod:`dsp.level`'s slow gain over the clip's windows in order, as the daemon's
    :class:`~daemon.pipeline.Pipeline` follows a stream's).

    A clip shorter than one window but at least :data:`dsp.windows.MIN_SECONDS` long is repeat-padded to one
    window (:func:`dsp.windows.pad_short_clip`, the daemon's rule); ``max_windows`` > 0 keeps that many, evenly
    spread, so a long recording cannot outweigh many short ones.
    """
    model_rate = resample(dc_block(samples, rate), rate, cfg.sample_rate)  # the daemon's Pipeline's order
    padded = pad_short_clip(model_rate, cfg, win_frames)
    frames = logmel(padded, cfg)
    windows = slice_windows(frames, win_frames, hop)
    if not len(windows):
        raise AudioError(f"{samples.shape[0] / rate:.2f} s is shorter than the {MIN_SECONDS:g} s minimum")
    span = window_samples(cfg, win_frames)
    rms = [window_rms(padded[s : s + span]) for s in window_starts(frames.shape[0], win_frames, hop) * cfg.hop_length]
    shifts = LevelStream(hop * frame_seconds(cfg)).shifts(np.array(rms))  # every window in order, at the daemon's hop
    if max_windows and len(windows) > max_windows:
        keep = np.linspace(0, len(windows) - 1, max_windows).round().astype(int)
        windows, shifts = windows[keep], shifts[keep]
    for i, shift in enumerate(shifts):
        windows[i] = normalise(windows[i], float(shift))
    return windows


def short_crops(clip: Clip, seconds: float, n: int, rng: np.random.Generator) -> list[Clip]:
    """``n`` crops of 2-3 s from a long clip of ``seconds``, in the same group as the clip they come from.

    A short excerpt is repeat-padded to one window, which a long excerpt's windows never are; crops of long
    excerpts, padded the same way, teach the heads what that looks like for genres with few short clips.
    """
    out = []
    for i in range(n):
        length = float(rng.uniform(2.0, 3.0))
        start = float(rng.uniform(0.0, max(0.0, seconds - length)))
        out.append(Clip(f"{clip.clip_id}#crop{i}", clip.genre, clip.is_music, "crop", clip.group, clip.path,
                        (round(start, 3), round(length, 3))))
    return out


def heard_through(clip: Clip, cfg: AcousticConfig, copy: int, max_seconds: float = 0.0) -> Clip:
    """Copy ``copy`` of ``clip`` as a microphone in a room hears it through ``cfg``'s chain: same genre and group.
    The copy's id seeds the chain's draws, so each copy is another room, noise and level. ``max_seconds`` > 0 takes
    a seeded excerpt of a longer clip (a few windows of a long recording are all the trainer keeps of it anyway)."""
    clip_id = f"{clip.clip_id}@{cfg.name}{copy}"
    crop = clip.crop
    if max_seconds and crop is None:
        seconds = sf.info(str(clip.path)).duration
        if seconds > max_seconds:
            start = np.random.default_rng(zlib.crc32(clip_id.encode())).uniform(0.0, seconds - max_seconds)
            crop = (round(float(start), 3), max_seconds)
    return replace(clip, clip_id=clip_id, crop=crop, acoustic=(cfg.fingerprint(), copy))


def base_id(clip: Clip) -> str:
    """The clip a crop or a copy heard through a room was made from (its own id for a clip as recorded)."""
    return re.split("[@#]", clip.clip_id, maxsplit=1)[0]


def read_clip_windows(clip: Clip, cfg: DSPConfig, win_frames: int, hop: int, max_windows: int = 0,
                      chains: Mapping[str, Chain] | None = None) -> np.ndarray:
    """A clip's windows; a clip made by :func:`heard_through` is first played through its chain."""
    return clip_windows(*read_clip_audio(clip, chains), cfg, win_frames, hop, max_windows)


def read_clip_audio(clip: Clip, chains: Mapping[str, Chain] | None = None) -> tuple[np.ndarray, int]:
    """A clip's samples and rate: its crop of the file, played through its chain when it has one."""
    audio = read_audio(clip.path)
    samples, rate = audio.samples, audio.sample_rate
    if clip.crop is not None:
        start = round(clip.crop[0] * rate)
        samples = samples[start : start + round(clip.crop[1] * rate)]
    if clip.acoustic is not None:
        samples, rate = chain_of(clip, chains)(resample(samples, rate, RATE), clip.clip_id), RATE
    return samples, rate


def chain_of(clip: Clip, chains: Mapping[str, Chain] | None) -> Chain:
    """The chain a clip made by :func:`heard_through` is played through."""
    key = clip.acoustic[0]
    if not chains or key not in chains:
        raise ValueError(f"{clip.clip_id}: its acoustic chain {key} was not given")
    return chains[key]
