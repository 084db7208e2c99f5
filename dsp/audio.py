"""Decoding to mono float32: files through libsndfile, raw PCM from pipes.

Every failure becomes an :class:`AudioError` whose message names the file and the problem in one
line, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


class AudioError(ValueError):
    """Audio that cannot be used: missing, unreadable, empty or truncated."""


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32, mono
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def downmix(samples: np.ndarray) -> np.ndarray:
    """``[n]`` or ``[n, channels]`` -> mono float32 by averaging channels."""
    samples = np.asarray(samples)
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float64) if samples.shape[1] > 1 else samples[:, 0]
    elif samples.ndim != 1:
        raise AudioError(f"expected 1-D or 2-D audio, got shape {samples.shape}")
    return np.ascontiguousarray(samples, dtype=np.float32)


PCM_FORMATS = {"s16le": ("<i2", 32768.0), "s32le": ("<i4", 2147483648.0), "f32le": ("<f4", 1.0)}


def decode_pcm(data: bytes, fmt: str, channels: int) -> np.ndarray:
    """Interleaved little-endian PCM bytes -> mono float32 in [-1, 1]. ``len(data)`` must be whole frames."""
    if fmt not in PCM_FORMATS:
        raise AudioError(f"unknown PCM format {fmt!r} (choose from {', '.join(PCM_FORMATS)})")
    if channels < 1:
        raise AudioError(f"channels must be >= 1, got {channels}")
    dtype, scale = PCM_FORMATS[fmt]
    frame_bytes = np.dtype(dtype).itemsize * channels
    if len(data) % frame_bytes:
        raise AudioError(f"{len(data)} bytes is not a whole number of {fmt} frames of {channels} channel(s)")
    pcm = np.frombuffer(data, dtype=dtype).astype(np.float32)
    if scale != 1.0:
        pcm /= scale
    return downmix(pcm.reshape(-1, channels))


def _check_wav_length(path: Path) -> None:
    """libsndfile quietly reads a cut-off WAV; compare the data chunk's declared size to the file."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                available = size - pos - 8
                # 0 and 0xFFFFFFFF mark a stream written without a known length (arecord to a pipe).
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    raise AudioError(
                        f"{path}: truncated WAV: header declares {chunk_size} bytes of audio, file holds {available}"
                    )
                return
            pos += 8 + chunk_size + (chunk_size & 1)
    raise AudioError(f"{path}: truncated WAV: no audio data chunk")


def read_audio(path: str | os.PathLike) -> Audio:
    """Read any libsndfile format (WAV int16/24/32/float, FLAC, OGG, AIFF, ...) as mono float32."""
    path = Path(path)
    try:
        if not path.exists():
            raise AudioError(f"{path}: no such file")
        if path.is_dir():
            raise AudioError(f"{path}: is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(f"{path}: empty file")
        _check_wav_length(path)
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except OSError as exc:  # e.g. a service user without read permission
        raise AudioError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        detail = str(exc).split(":")[-1].strip() or type(exc).__name__
        raise AudioError(f"{path}: not a readable audio file ({detail})") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio samples")
    mono = downmix(samples)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    return Audio(mono, int(rate))
