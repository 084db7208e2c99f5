"""Labelled tracks and their log-mel frames, computed by ``dsp`` (the daemon's own code) and cached on disk.

A track is one audio file whose genre is the part of its name before the first dot (``blues.00012.wav``), laid
out GTZAN-style (``<root>/<genre>/<genre>.NNNNN.ext``) or flat (``<root>/<genre>.NNNNN.ext``). Files that cannot be
decoded are skipped and listed, never fatal: real GTZAN holds at least one corrupt file (jazz.00054).
A clip between ``dsp.windows.MIN_SECONDS`` and one window long is repeated to one window exactly as the daemon
repeats it (:func:`dsp.windows.pad_short_clip`); a shorter one is skipped and listed.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from genrecast.dsp import AudioError, DSPConfig, logmel, read_audio, resample
from genrecast.dsp.windows import MIN_SECONDS, pad_short_clip

from genrecast import dsp

AUDIO_SUFFIXES = (".wav", ".au", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "genrecast" / "features"


@dataclass(frozen=True)
class Track:
    track_id: str  # file name without its extension, e.g. "blues.00012"; unique within a dataset
    genre: str
    path: Path
    content_key: str = ""  # hash of the file's bytes, once read


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass
class Dataset:
    """Tracks with their frames (``[n_frames, n_mels]`` raw log-mel) and what had to be left out."""

    tracks: list[Track]
    frames: list[np.ndarray]
    skipped: list[Skipped] = field(default_factory=list)
    cache_hits: int = 0

    def subset(self, track_ids: Sequence[str]) -> Dataset:
        index = {t.track_id: i for i, t in enumerate(self.tracks)}
        picked = [index[t] for t in track_ids]
        return Dataset([self.tracks[i] for i in picked], [self.frames[i] for i in picked])

    def fingerprint(self) -> str:
        """Which tracks (by id and content key) fed a model: stored in its metadata."""
        h = hashlib.sha256()
        for t in sorted(self.tracks, key=lambda t: t.track_id):
            h.update(f"{t.track_id}:{t.genre}:{t.content_key}\n".encode())
        return h.hexdigest()[:16]


def scan(root: str | os.PathLike, labels: Sequence[str]) -> tuple[list[Track], list[Skipped]]:
    """Every audio file under ``root`` named ``<label>.<anything>``; other files are listed as skipped."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such data folder")
    tracks: dict[str, Track] = {}
    skipped = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES):
        genre = path.name.split(".", 1)[0]
        if genre not in labels:
            skipped.append(Skipped(path, f"genre {genre!r} is not one of the model's labels"))
        elif path.stem in tracks:
            skipped.append(Skipped(path, f"duplicate track id {path.stem} (also {tracks[path.stem].path})"))
        else:
            tracks[path.stem] = Track(path.stem, genre, path)
    return sorted(tracks.values(), key=lambda t: t.track_id), skipped


def _features_code_hash() -> str:
    """Hash of the dsp sources: a change to how features are computed must invalidate the cache, too."""
    h = hashlib.sha256()
    for fn in (read_audio, resample, logmel, dsp.sparse_mel):
        h.update(Path(inspect.getfile(fn)).read_bytes())
    return h.hexdigest()[:12]


def cache_dir_for(cache_root: Path, cfg: DSPConfig) -> Path:
    return Path(cache_root) / f"{cfg.fingerprint()}-{_features_code_hash()}"


def _file_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:24]


def track_frames(path: Path, cfg: DSPConfig, win_frames: int) -> np.ndarray:
    """Decode, convert to the model's sample rate, repeat a short clip to one window of ``win_frames`` frames and
    compute the log-mel, exactly as the daemon does; a clip under the minimum length raises :class:`AudioError`."""
    audio = read_audio(path)
    x = pad_short_clip(resample(audio.samples, audio.sample_rate, cfg.sample_rate), cfg, win_frames)
    frames = logmel(x, cfg)
    if frames.shape[0] < win_frames:
        raise AudioError(f"{path}: {audio.seconds:.2f} s is shorter than the {MIN_SECONDS:g} s minimum")
    return frames


def _cached_frames(cache: Path, key: str, win_frames: int) -> Path | None:
    """A cached file for this track: padded clips are stored per window length, other tracks once."""
    for name in (f"{key}-w{win_frames}.npy", f"{key}.npy"):
        if (cache / name).exists():
            return cache / name
    return None


def load(
    root: str | os.PathLike,
    cfg: DSPConfig,
    labels: Sequence[str],
    min_frames: int,
    cache_root: Path | None = DEFAULT_CACHE,
) -> Dataset:
    """Scan ``root`` and compute (or read from cache) each track's frames.

    ``min_frames`` is one classification window: shorter clips of at least the minimum length are repeated to it,
    shorter ones skipped. ``cache_root=None`` disables the cache.
    """
    tracks, skipped = scan(root, labels)
    cache = cache_dir_for(cache_root, cfg) if cache_root is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    kept, frames, hits = [], [], 0
    first_with: dict[str, str] = {}  # content key -> track id: byte-identical copies would leak across a split
    for track in tracks:
        try:
            track = replace(track, content_key=_file_key(track.path))
            if track.content_key in first_with:
                skipped.append(Skipped(track.path, f"the same audio as {first_with[track.content_key]}"))
                continue
            first_with[track.content_key] = track.track_id
            cached = _cached_frames(cache, track.content_key, min_frames) if cache is not None else None
            x = np.load(cached) if cached is not None else None
            if x is not None and x.shape[0] >= min_frames:  # an older cache may hold a short clip unpadded
                hits += 1
            else:
                x = track_frames(track.path, cfg, min_frames)
                if cache is not None:
                    padded = x.shape[0] == min_frames  # a padded clip, or one exactly a window long: same frames
                    target = cache / f"{track.content_key}{f'-w{min_frames}' if padded else ''}.npy"
                    tmp = target.with_suffix(f".{os.getpid()}.tmp.npy")
                    np.save(tmp, x)
                    tmp.replace(target)  # atomic: a concurrent run never reads half a file
        except (AudioError, OSError) as exc:
            skipped.append(Skipped(track.path, str(exc)))
            continue
        kept.append(track)
        frames.append(x)
    return Dataset(kept, frames, skipped, hits)
