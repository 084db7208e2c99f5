"""Decoding to mono float32: files through libsndfile, raw PCM from pipes.

Every failure becomes an :class:`AudioError` whose message names the file and the problem in one
line, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from genrecast.paths import EMPTY_PATH, path_problem

RATE_RANGE = (1000, 384000)  # Hz, for every source: files, stdin and the config's ``rate``
MAX_CHANNELS = 32  # for every source: a header claiming more is broken, and would make each block huge
BLOCK_FRAMES = 1 << 16  # frames per read: 1.5 s at 44.1 kHz, at most 8 MB even at 32 float channels
MAX_AMPLITUDE = 1000.0  # float audio may overshoot 1.0 a little; 60 dB over full scale is not audio
TRUNCATION_TOLERANCE = 0.01  # MP3 headers without a frame index estimate the length; a true cut is far larger
# file names taken for audio when a folder is scanned (the trainer's corpus, `genrecast evaluate`): formats
# libsndfile decodes, GTZAN's original Sun .au included
AUDIO_SUFFIXES = (".wav", ".au", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


def audio_folder(root: str | Path) -> Path:
    """``root`` as a folder of audio files to read, or ``FileNotFoundError`` naming it: every reader of a data
    folder says the same one line."""
    if problem := path_problem(root, "data folder"):
        raise FileNotFoundError(f"{root}: {problem}")
    return Path(root)


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


def check_samples(samples: np.ndarray, name: str) -> np.ndarray:
    """The one rule every source's samples meet, files and pipes alike: finite, and within MAX_AMPLITUDE of full
    scale. A NaN, or a float so large its power overflows, would turn every probability after it into NaN."""
    if samples.size and not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if samples.size and (peak := float(np.max(np.abs(samples)))) > MAX_AMPLITUDE:
        raise AudioError(f"{name}: a sample of {peak:.3g} is over {MAX_AMPLITUDE:g} times full scale")
    return samples


PCM_FORMATS = {"s16le": ("<i2", 32768.0), "s32le": ("<i4", 2147483648.0), "f32le": ("<f4", 1.0)}


WAV_HEADER_MAX = 1 << 16  # a WAV header (LIST, bext, iXML chunks and all) that has not ended here is not read


def might_be_wav(data: bytes) -> bool:
    """Whether ``data`` is, or may grow into, the start of a WAV file (RIFF or RF64, then WAVE)."""
    return any(magic.startswith(data[:4]) for magic in (b"RIFF", b"RF64")) and b"WAVE".startswith(data[8:12])


# The openings of compressed or containered audio that a raw-PCM reader would take for samples (noise, to the model)
CONTAINERS = ((b"fLaC", "FLAC"), (b"OggS", "Ogg"), (b"ID3", "MP3"), (b"FORM", "AIFF"), (b"caff", "CAF"),
              (b"\x1aE\xdf\xa3", "Matroska/WebM"), (b"#!AMR", "AMR"))


def container(data: bytes) -> str | None:
    """The kind of audio file ``data`` opens with, if it is one raw PCM is not (MP4's ``ftyp`` sits at byte 4);
    else None. An MP3 without an ID3 tag opens with a frame sync that raw PCM can too: not told."""
    if data[4:8] == b"ftyp":
        return "MP4/M4A"
    return next((name for magic, name in CONTAINERS if data.startswith(magic)), None)


def wav_header(data: bytes) -> tuple[str | None, int, int, int] | None:
    """``(format, rate, channels, header bytes)`` when ``data`` begins with a WAV file's header up to its samples
    (``format`` one of :data:`PCM_FORMATS`, or None for another encoding), else None (not a WAV, or its header not
    all there yet): what a WAV piped to a raw-PCM reader starts with."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        return None
    at, fmt, rate, channels = 12, None, 0, 0
    while at + 8 <= len(data):
        name, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        if name == b"data":
            return fmt, rate, channels, at + 8
        if name == b"fmt " and at + 24 <= len(data):
            code = int.from_bytes(data[at + 8 : at + 10], "little")
            channels = int.from_bytes(data[at + 10 : at + 12], "little")
            rate = int.from_bytes(data[at + 12 : at + 16], "little")
            bits = int.from_bytes(data[at + 22 : at + 24], "little")
            if code == 0xFFFE and at + 34 <= len(data):  # WAVE_FORMAT_EXTENSIBLE: the sub-format says
                code = int.from_bytes(data[at + 32 : at + 34], "little")
            fmt = {(1, 16): "s16le", (1, 32): "s32le", (3, 32): "f32le"}.get((code, bits))
        at += 8 + size + size % 2
    return None


def decode_frames(data: bytes, fmt: str, channels: int) -> np.ndarray:
    """Interleaved little-endian PCM bytes -> ``[frames, channels]`` float32 in [-1, 1]; ``len(data)`` must be whole
    frames (a live input's channels are mixed by :class:`dsp.channels.LiveDownmix`)."""
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
    return pcm.reshape(-1, channels)


def _check_complete(path: Path, name: str) -> None:
    """A cut-off WAV or Ogg file decodes without a word from libsndfile; its container says it was cut."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            _check_wav_length(f, size, name)
        elif head[:4] == b"OggS":
            f.seek(max(0, size - OGG_MAX_PAGE))
            _check_ogg_end(f.read(), name)


def _check_wav_length(f: BinaryIO, size: int, name: str) -> None:
    """libsndfile quietly reads a cut-off WAV; compare the data chunk's declared size to the file."""
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
        if chunk_id == b"data":
            available = size - pos - 8
            # 0 and 0xFFFFFFFF mark a stream written without a known length (arecord to a pipe).
            if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                raise AudioError(
                    f"{name}: truncated WAV: header declares {chunk_size} bytes of audio, file holds {available}"
                )
            return
        pos += 8 + chunk_size + (chunk_size & 1)
    raise AudioError(f"{name}: truncated WAV: no audio data chunk")


OGG_MAX_PAGE = 27 + 255 + 255 * 255  # header, segment table, 255 segments of 255 bytes


def _check_ogg_end(tail: bytes, name: str) -> None:
    """libsndfile reads a cut-off Ogg file to its last whole page, and takes its length from that page, so the
    decoded length matches and nothing looks wrong. A whole stream ends in a complete page marked end-of-stream;
    ``tail``: the file's last :data:`OGG_MAX_PAGE` bytes, which hold its last page."""
    at = tail.rfind(b"OggS")
    while at >= 0:  # the last page that ends exactly at the end of the file ("OggS" may also occur inside data)
        head = tail[at : at + 27]
        if len(head) == 27 and at + 27 + head[26] <= len(tail):
            length = 27 + head[26] + sum(tail[at + 27 : at + 27 + head[26]])
            if at + length == len(tail):
                if head[5] & 0x04:  # the end-of-stream flag
                    return
                break
        at = tail.rfind(b"OggS", 0, at)
    raise AudioError(f"{name}: truncated Ogg stream: it ends without its last page")


class AudioFile:
    """An audio file opened for reading in blocks, so memory stays flat however long the file is.

    Opening checks what the header says (a readable format, a sample rate in :data:`RATE_RANGE`, some frames);
    :meth:`blocks` checks the samples as they come: finite, and as many as the header declared.
    """

    def __init__(self, path: str | os.PathLike, name: str | None = None) -> None:
        """``name``: how messages call the file (an upload's own name rather than the temporary file's path)."""
        self.path = Path(path)
        self.name = name or str(path)
        self._file = _open_checked(self.path, self.name)
        self.sample_rate = int(self._file.samplerate)
        self.frames = int(self._file.frames)

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    def blocks(self, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """Mono float32 blocks from the start of the file to its end."""
        with self._errors():
            self._file.seek(0)
        decoded = 0
        while True:
            with self._errors():
                block = self._file.read(block_frames, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            mono = check_samples(downmix(block), self.name)
            decoded += block.shape[0]
            yield mono
        # A cut-off MP3 or WAV decodes up to the cut; its header still declares the whole length.
        if decoded < self.frames * (1 - TRUNCATION_TOLERANCE):
            raise AudioError(f"{self.name}: truncated: the header declares {self.seconds:.2f} s, "
                             f"only {decoded / self.sample_rate:.2f} s decode")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AudioFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise AudioError(f"{self.name}: cannot read ({exc.strerror or exc})") from None
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise AudioError(f"{self.name}: not a readable audio file ({_detail(exc)})") from None


def _detail(exc: Exception) -> str:
    detail = str(exc).split(":")[-1].strip() or type(exc).__name__
    # libsndfile says this of an existing file whose bytes its MP3 reader (libmpg123) gives up on: text named
    # .mp3, or an MP3 cut inside its first frames. The caller has checked the file exists and is a regular file.
    if detail.startswith("File does not exist or is not a regular file"):
        return "Format not recognised, or a damaged MP3 header."
    return detail


def _open_checked(path: Path, name: str) -> sf.SoundFile:
    try:
        if not name:
            raise AudioError(EMPTY_PATH)
        if problem := path_problem(path):
            special = problem.kind == "special"
            pipe = " (raw PCM from a named pipe: `genrecast run --source pipe:PATH`)" if special else ""
            raise AudioError(f"{name}: {problem}{pipe}")
        if path.stat().st_size == 0:
            raise AudioError(f"{name}: empty file")
        _check_complete(path, name)
        f = sf.SoundFile(str(path))
    except OSError as exc:  # e.g. a service user without read permission
        raise AudioError(f"{name}: cannot read ({exc.strerror or exc})") from None
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{name}: not a readable audio file ({_detail(exc)})") from None
    problem = check_rate(f.samplerate)
    if problem is None and not 1 <= f.channels <= MAX_CHANNELS:
        problem = f"the header declares {f.channels} channels (1 to {MAX_CHANNELS} are read)"
    if problem is None and f.frames == 0:
        problem = "contains no audio samples"
    if problem:
        f.close()
        raise AudioError(f"{name}: {problem}")
    return f


def check_rate(rate: int) -> str | None:
    """Why a sample rate cannot be used, or None. The same range for files, stdin and the config: a header
    claiming 1 Hz would make each byte of a file seconds of audio to resample, gigabytes from a tiny file."""
    if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        return f"sample rate {rate} Hz is outside {RATE_RANGE[0]}-{RATE_RANGE[1]} Hz"
    return None


def read_audio(path: str | os.PathLike) -> Audio:
    """Read any libsndfile format (WAV int16/24/32/float, FLAC, OGG, MP3, AIFF, ...) whole, as mono float32.

    For short clips (training, tests); long inputs go through :class:`AudioFile` block by block.
    """
    with AudioFile(path) as f:
        return Audio(np.concatenate(list(f.blocks())), f.sample_rate)
