"""Acoustic augmentation: what a microphone in a home hears when music plays from a loudspeaker.

The heads used to learn from clean studio audio only, and through a real room they fell from 74 % to 34 %
(issue 17). This stage plays each clip through a seeded chain before its log-mel is computed:

    loudspeaker band limit and tilt -> room (simulated home room, or a real large space) -> speech over it ->
    background noise at an SNR -> microphone band limit -> gain and a little clipping -> a lossy codec

Rooms are simulated with pyroomacoustics' hybrid of image sources and ray tracing (MIT) once per configuration
into a bank of impulse responses; the other steps are audiomentations' transforms (MIT), and the codec is Ogg
Vorbis through libsndfile.
Every draw is seeded by the clip and the copy, so a run repeats and the embedding cache can key on
(:meth:`AcousticConfig.fingerprint`, copy). Two configurations exist: :data:`TRAIN`, and :data:`BENCH` for
``benchmarks/room_bench.py`` and the trainer's room figures, whose rooms, noises and voices are never trained on.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from genrecast.dsp import read_audio, resample

from .cache import mark_used

RATE = 16000  # the chain runs at musicnn's rate: every clip is resampled to it before the log-mel anyway


@dataclass(frozen=True)
class RoomRange:
    """Shoebox rooms drawn uniformly from these ranges (metres, seconds)."""

    side: tuple[float, float] = (2.5, 8.0)
    height: tuple[float, float] = (2.3, 3.2)
    rt60: tuple[float, float] = (0.2, 1.0)
    # pyroomacoustics' hybrid simulator: image sources up to this order (the early reflections), the late tail by
    # ray tracing, with air absorption. Up to 0.6.0 it was image sources alone (max_order=40, ray_tracing=False),
    # which cut a small room's tail short: a 2.5 m room asked for 1.0 s decayed in 0.38 s; the full order it needs
    # (about 200) takes 10-40 s a room, the hybrid 0.3 s.
    max_order: int = 3
    ray_tracing: bool = True


@dataclass(frozen=True)
class AcousticConfig:
    """One augmentation chain. Probabilities say how often a step is applied; ranges are drawn uniformly."""

    name: str
    seed: int  # seeds the room bank and, with each clip's id and copy, every draw
    rooms: RoomRange = RoomRange()
    n_rooms: int = 48  # simulated impulse responses in the bank
    p_room: float = 0.85  # reverberation at all ...
    p_large_space: float = 0.15  # ... and of those, a real measured large space instead of a home room
    noise_part: int = 0  # which half of the recorded noise and speech sources this chain may use (0 or 1)
    p_speaker: float = 0.7
    speaker_highpass_hz: tuple[float, float] = (150.0, 300.0)  # small loudspeakers: little below this
    tilt_db: tuple[float, float] = (-6.0, 6.0)  # high-shelf tilt of the loudspeaker
    p_speech: float = 0.3
    speech_snr_db: tuple[float, float] = (0.0, 15.0)  # people talking over the radio
    p_noise: float = 0.9
    noise_snr_db: tuple[float, float] = (0.0, 30.0)
    p_mic: float = 0.5
    mic_lowpass_hz: tuple[float, float] = (4000.0, 7500.0)
    gain_db: tuple[float, float] = (-12.0, 6.0)
    p_clip: float = 0.2
    clip_percentile: tuple[float, float] = (0.0, 5.0)  # the loudest this share of samples is clipped
    p_codec: float = 0.3
    codec_quality: tuple[float, float] = (0.0, 0.3)  # Vorbis quality (0 is about 64 kb/s at 16 kHz)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        return asdict(self)


TRAIN = AcousticConfig(name="train", seed=17)
# Held out: another seed (other rooms drawn), a room range a little wider than training's (2.2-9 m, up to RT60
# 1.2 s: it contains most of training's), the other half of the recorded noises and speakers, and no real large
# spaces: home rooms only.
BENCH = AcousticConfig(name="bench", seed=90017, rooms=RoomRange(side=(2.2, 9.0), height=(2.2, 3.4), rt60=(0.25, 1.2)),
                       n_rooms=24, p_room=1.0, p_large_space=0.0, noise_part=1, p_speech=0.3,
                       noise_snr_db=(5.0, 25.0), codec_quality=(0.1, 0.4))


def room_impulse_response(rng: np.random.Generator, rooms: RoomRange, rate: int = RATE) -> np.ndarray:
    """One simulated shoebox room: loudspeaker and microphone at random places at least 0.5 m from the walls."""
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(*rooms.side), rng.uniform(*rooms.side), rng.uniform(*rooms.height)])
    rt60 = rng.uniform(*rooms.rt60)
    absorption, sabine_order = pra.inverse_sabine(rt60, dims)  # raises for a room too large to decay that fast
    if rooms.ray_tracing:  # the tracer draws from pyroomacoustics' own generators (without it, 0.6.0's rooms again)
        pra.random.seed(int(rng.integers(2**63)))
    room = pra.ShoeBox(dims, fs=rate, materials=pra.Material(absorption), max_order=min(sabine_order, rooms.max_order),
                       ray_tracing=rooms.ray_tracing, air_absorption=rooms.ray_tracing)
    if rooms.ray_tracing:
        room.set_ray_tracing()
    src, mic = (rng.uniform(0.5, dims - 0.5) for _ in range(2))
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], np.float32)
    return rir / np.max(np.abs(rir))


def banks_hold(cfg: AcousticConfig, group: str) -> bool:
    """Whether ``cfg``'s noise and voice banks keep the sources of ``group``: half of them (a stable hash of the group),
    so training and the bench never share a voice or noise. Half of all groups, not of a fold's: a held-out clip's own
    sound may be background in its fold's training copies."""
    return zlib.crc32(group.encode()) % 2 == cfg.noise_part


@dataclass(frozen=True)
class Banks:
    """Folders of 16 kHz WAVs the chain draws from: impulse responses, noises, voices; ``id`` names what they
    were made of (:func:`bank_id`)."""

    id: str
    rooms: Path
    large_spaces: Path | None
    noise: Path
    speech: Path


def bank_id(cfg: AcousticConfig, noise_files: Sequence[tuple[Path, str]], speech_files: Sequence[tuple[Path, str]],
            rir_folder: Path | None) -> str:
    """The chain's configuration and the name and bytes of every source its banks keep. A bank is written once and
    reused, and cached room copies are keyed on it: keyed on the configuration alone, a run with other noises or
    voices (another ``--nonmusic`` folder or ``--synthetic-noise`` count, a clip skipped) silently reused the bank,
    and the copies, that an earlier run had drawn from its own sources."""
    from .corpus import file_hash  # corpus reads clips through this module's chains

    h = hashlib.sha256(cfg.fingerprint().encode())
    kept = [(bank, p) for bank, files in (("noise", noise_files), ("speech", speech_files))
            for p, g in files if banks_hold(cfg, g)]
    if rir_folder and cfg.p_large_space > 0:
        kept += [("large", p) for p in sorted(rir_folder.glob("*.flac"))]
    for bank, p in kept:  # which bank a file is in matters too: a voice is not a noise
        h.update(f"{bank}/{p.name}".encode() + file_hash(p).digest())
    return h.hexdigest()[:12]


def build_banks(cfg: AcousticConfig, cache: Path, noise_files: Sequence[tuple[Path, str]],
                speech_files: Sequence[tuple[Path, str]], rir_folder: Path | None) -> Banks:
    """Write (once) the chain's banks under ``cache/<name>-<bank id>``: ``noise_files`` and ``speech_files`` are
    ``(path, group)`` pairs, of which the chain keeps its own half; ``rir_folder`` holds real impulse responses."""
    bid = bank_id(cfg, noise_files, speech_files, rir_folder)
    root = cache / f"{cfg.name}-{bid}"
    done = root / ".complete"
    banks = Banks(bid, root / "rooms", root / "large" if rir_folder and cfg.p_large_space > 0 else None,
                  root / "noise", root / "speech")
    if done.exists():
        mark_used(root)
        return banks
    for d in (banks.rooms, banks.noise, banks.speech):
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    for i in range(cfg.n_rooms):
        sf.write(banks.rooms / f"room{i:03d}.wav", room_impulse_response(rng, cfg.rooms), RATE)
    if banks.large_spaces is not None:
        banks.large_spaces.mkdir(exist_ok=True)
        for p in sorted(rir_folder.glob("*.flac")):
            a = read_audio(p)
            sf.write(banks.large_spaces / f"{p.stem}.wav", resample(a.samples, a.sample_rate, RATE), RATE)
    for files, folder in ((noise_files, banks.noise), (speech_files, banks.speech)):
        for p, _ in [(p, g) for p, g in files if banks_hold(cfg, g)]:
            a = read_audio(p)
            sf.write(folder / f"{p.stem}.wav", resample(a.samples, a.sample_rate, RATE), RATE)
    done.write_text(json.dumps(cfg.to_dict()))
    return banks


class Chain:
    """The configured chain over its banks; ``chain(samples, key)`` gives the same output for the same key."""

    def __init__(self, cfg: AcousticConfig, banks: Banks) -> None:
        from audiomentations import (
            AddBackgroundNoise,
            ApplyImpulseResponse,
            ClippingDistortion,
            Gain,
            HighPassFilter,
            HighShelfFilter,
            LowPassFilter,
        )

        self.cfg = cfg
        self.banks = banks
        self.speaker = [HighPassFilter(*cfg.speaker_highpass_hz, p=1.0),
                        HighShelfFilter(min_gain_db=cfg.tilt_db[0], max_gain_db=cfg.tilt_db[1], p=1.0)]
        self.room = ApplyImpulseResponse(banks.rooms, p=1.0, leave_length_unchanged=True)
        self.large = (ApplyImpulseResponse(banks.large_spaces, p=1.0, leave_length_unchanged=True)
                      if banks.large_spaces else None)
        # a bank with nothing in its half (a tiny corpus) leaves its step out
        self.speech = (AddBackgroundNoise(banks.speech, *cfg.speech_snr_db, p=1.0)
                       if any(banks.speech.glob("*.wav")) else None)
        self.noise = (AddBackgroundNoise(banks.noise, *cfg.noise_snr_db, p=1.0)
                      if any(banks.noise.glob("*.wav")) else None)
        self.mic = LowPassFilter(*cfg.mic_lowpass_hz, p=1.0)
        self.gain = Gain(*cfg.gain_db, p=1.0)
        self.clip = ClippingDistortion(*(int(round(x)) for x in cfg.clip_percentile), p=1.0)

    def __call__(self, samples: np.ndarray, key: str) -> np.ndarray:
        """``samples`` (mono float32 at :data:`RATE`) heard through the chain; ``key`` names clip and copy."""
        cfg = self.cfg
        seed = zlib.crc32(f"{cfg.seed}:{key}".encode())
        rng = np.random.default_rng(seed)
        # audiomentations draws from the global generators: seed them from the key, so each clip repeats
        random.seed(seed)
        np.random.seed(seed % 2**32)
        x = np.asarray(samples, np.float32)
        level = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
        if rng.random() < cfg.p_speaker:
            for t in self.speaker:
                x = t(x, RATE)
        if rng.random() < cfg.p_room:
            x = (self.large if self.large is not None and rng.random() < cfg.p_large_space else self.room)(x, RATE)
        if level > 1e-5:  # digital silence stays silent: SNRs relative to nothing would be pure noise
            x = _rescale(x, level)
            if rng.random() < cfg.p_speech and self.speech:
                x = self.speech(x, RATE)
            if rng.random() < cfg.p_noise and self.noise:
                x = self.noise(x, RATE)
        if rng.random() < cfg.p_mic:
            x = self.mic(x, RATE)
        x = self.gain(x, RATE)
        if rng.random() < cfg.p_clip:
            x = self.clip(x, RATE)
        if rng.random() < cfg.p_codec:
            x = vorbis(np.clip(x, -1.0, 1.0), float(rng.uniform(*cfg.codec_quality)))
        return np.clip(x, -1.0, 1.0).astype(np.float32)  # what 16-bit PCM from a sound card can hold


def _rescale(x: np.ndarray, level: float) -> np.ndarray:
    """Back to the input's RMS after the room (an impulse response normalised to its peak changes the level)."""
    now = float(np.sqrt(np.mean(x**2)))
    return x * (level / now) if now > 0 else x


# Samples per write to the encoder. libsndfile puts a whole write on the stack: 135 s in one overflowed it (a
# segfault). Where the block falls changes the encoding, so clips up to a minute (every training clip) are still
# one write, as the shipped models' copies were made.
VORBIS_BLOCK = 60 * RATE


def vorbis(x: np.ndarray, quality: float) -> np.ndarray:
    """``x`` encoded to Ogg Vorbis at ``quality`` (0-1) and decoded again: what a low-bitrate stream delivers."""
    buf = io.BytesIO()
    channels = x.shape[1] if x.ndim > 1 else 1
    with sf.SoundFile(buf, "w", RATE, channels, format="OGG", subtype="VORBIS", compression_level=1.0 - quality) as f:
        for i in range(0, len(x), VORBIS_BLOCK):
            f.write(x[i : i + VORBIS_BLOCK])
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    out = np.zeros_like(x)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out
