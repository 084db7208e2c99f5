"""Signal processing shared by training and the daemon: decoding, resampling, streaming log-mel."""

from .audio import AUDIO_SUFFIXES, Audio, AudioError, AudioFile, audio_folder, decode_frames, downmix, read_audio
from .config import DEFAULT_DSP, DSPConfig
from .mel import mel_filterbank, sparse_mel
from .modelspec import (
    DIRECT_OUTPUT,
    GENRE_OUTPUT,
    GTZAN_GENRES,
    INPUT_NAME,
    METADATA_KEY,
    MUSIC_OUTPUT,
    ROOM_OUTPUT,
    TAGS_OUTPUT,
    ModelSpec,
    ModelSpecError,
    weigh_heads,
)
from .resample import StreamResampler, resample

__all__ = [
    "AUDIO_SUFFIXES",
    "DEFAULT_DSP",
    "Audio",
    "AudioError",
    "AudioFile",
    "DIRECT_OUTPUT",
    "DSPConfig",
    "GENRE_OUTPUT",
    "GTZAN_GENRES",
    "INPUT_NAME",
    "METADATA_KEY",
    "MUSIC_OUTPUT",
    "ROOM_OUTPUT",
    "TAGS_OUTPUT",
    "ModelSpec",
    "ModelSpecError",
    "LogMelStream",
    "StreamResampler",
    "weigh_heads",
    "audio_folder",
    "decode_frames",
    "downmix",
    "logmel",
    "mel_filterbank",
    "read_audio",
    "resample",
    "sparse_mel",
]


def __getattr__(name: str):
    # The numba kernel loads on first use, so light users (argument parsing, config checks) stay quick.
    if name in ("LogMelStream", "logmel"):
        from . import melstream

        return getattr(melstream, name)
    raise AttributeError(f"module 'genrecast.dsp' has no attribute {name!r}")
