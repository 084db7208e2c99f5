"""The acoustic augmentation stage (training.acoustic): seeded, SNRs and band limits as configured, rooms that
decay as their RT60 says, banks that keep training and bench sources apart, and clips that carry their chain."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from genrecast.training import acoustic
from genrecast.training.acoustic import RATE, AcousticConfig, Chain, RoomRange, build_banks, room_impulse_response
from genrecast.training.corpus import Clip, base_id, heard_through, labelled_clips, read_clip_windows
from genrecast.training.musicnn import MUSICNN_DSP, N_FRAMES
from scipy.signal import butter, sosfilt

# every step off: a test switches on the one it measures
QUIET = AcousticConfig(name="quiet", seed=1, n_rooms=2, p_room=0.0, p_speaker=0.0, p_speech=0.0, p_noise=0.0,
                       p_mic=0.0, gain_db=(0.0, 0.0), p_clip=0.0, p_codec=0.0)


def _tone(seconds: float = 3.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> tuple[list, list, Path]:
    """Noise and speech recordings of many groups (so both halves get some), and two real-space responses."""
    root = tmp_path_factory.mktemp("acoustic-src")
    rng = np.random.default_rng(0)
    noise, speech = [], []
    for i in range(12):
        p = root / f"noise{i}.wav"
        sf.write(p, (0.1 * rng.standard_normal(4 * 22050)).astype(np.float32), 22050)  # resampled into the bank
        noise.append((p, f"machine{i}"))
        q = root / f"speech{i}.wav"
        env = (np.sin(2 * np.pi * 4 * np.arange(4 * RATE) / RATE) > 0.3).astype(np.float32)
        sf.write(q, (0.2 * env * rng.standard_normal(4 * RATE)).astype(np.float32), RATE)
        speech.append((q, f"speaker{i}"))
    rirs = root / "rir"
    rirs.mkdir()
    for i in range(2):
        decay = np.exp(-np.arange(RATE) / (0.1 * RATE)) * rng.standard_normal(RATE)
        sf.write(rirs / f"space{i}.flac", decay.astype(np.float32), RATE)
    return noise, speech, rirs


def _chain(cfg: AcousticConfig, sources, tmp_path: Path) -> Chain:
    noise, speech, rirs = sources
    return Chain(cfg, build_banks(cfg, tmp_path / "banks", noise, speech, rirs))


def test_training_chain_is_seeded_by_clip_and_copy(sources, tmp_path):
    chain = _chain(acoustic.TRAIN, sources, tmp_path)
    x = _tone()
    a, b, c = chain(x, "rock.00001@train0"), chain(x, "rock.00001@train0"), chain(x, "rock.00001@train1")
    assert a.dtype == np.float32 and a.shape == x.shape
    assert np.array_equal(a, b)  # the same clip and copy: the same room, noise, filters and codec
    assert not np.allclose(a, c)  # another copy: another draw
    assert np.abs(a).max() <= 1.0


def test_background_noise_is_added_at_the_configured_snr(sources, tmp_path):
    for snr in (0.0, 10.0, 25.0):
        cfg = replace(QUIET, name=f"snr{snr:g}", p_noise=1.0, noise_snr_db=(snr, snr))
        x = _tone()
        y = _chain(cfg, sources, tmp_path)(x, "clip")
        noise = y - x
        measured = 10 * np.log10(np.mean(x**2) / np.mean(noise**2))
        assert abs(measured - snr) < 0.5, (snr, measured)


def test_speech_over_music_comes_from_the_speech_bank(sources, tmp_path):
    cfg = replace(QUIET, name="talk", p_speech=1.0, speech_snr_db=(5.0, 5.0))
    x = _tone()
    talk = _chain(cfg, sources, tmp_path)(x, "clip") - x
    assert abs(10 * np.log10(np.mean(x**2) / np.mean(talk**2)) - 5.0) < 0.5


def _band_db(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    return 10 * np.log10(spec[(f >= lo) & (f < hi)].sum() + 1e-20)


def test_loudspeaker_removes_the_bass_and_microphone_the_top(sources, tmp_path):
    rng = np.random.default_rng(3)
    white = (0.1 * rng.standard_normal(4 * RATE)).astype(np.float32)
    speaker = replace(QUIET, name="speaker", p_speaker=1.0, speaker_highpass_hz=(300.0, 300.0), tilt_db=(0.0, 0.0))
    mic = replace(QUIET, name="mic", p_mic=1.0, mic_lowpass_hz=(4000.0, 4000.0))
    ys, ym = _chain(speaker, sources, tmp_path)(white, "w"), _chain(mic, sources, tmp_path)(white, "w")
    # a phone or TV speaker: little below 150-300 Hz
    assert _band_db(white, 20, 100) - _band_db(ys, 20, 100) > 15
    assert abs(_band_db(white, 1000, 3000) - _band_db(ys, 1000, 3000)) < 1
    assert _band_db(white, 6500, 8000) - _band_db(ym, 6500, 8000) > 15
    assert abs(_band_db(white, 300, 2000) - _band_db(ym, 300, 2000)) < 1


def _rt60(rir: np.ndarray) -> float:
    """RT60 from Schroeder's backward integral, extrapolated from its -5 to -25 dB slope (T20)."""
    edc = np.cumsum(rir[::-1].astype(np.float64) ** 2)[::-1]
    db = 10 * np.log10(edc / edc[0])
    i5, i25 = np.argmax(db <= -5), np.argmax(db <= -25)
    return 3.0 * (i25 - i5) / RATE


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_a_simulated_room_decays_as_its_rt60_says(rt60):
    rng = np.random.default_rng(7)
    rooms = RoomRange(side=(5.0, 6.0), height=(2.6, 2.8), rt60=(rt60, rt60))
    measured = [_rt60(room_impulse_response(rng, rooms)) for _ in range(3)]
    # Sabine's formula in an image-source shoebox: the measured decay is near, not equal to, the one asked for
    assert all(0.6 * rt60 < m < 1.5 * rt60 for m in measured), measured
    rir = room_impulse_response(np.random.default_rng(1), rooms)
    assert np.abs(rir).max() == pytest.approx(1.0)


def test_a_small_reverberant_room_rings_as_long_as_asked():
    """Up to 0.6.0 rooms were image sources alone, to order 40: a 2.5 m room asked for 1.0 s decayed in 0.38 s."""
    rooms = RoomRange(side=(2.5, 2.6), height=(2.3, 2.4), rt60=(1.0, 1.0))
    rir = room_impulse_response(np.random.default_rng(3), rooms)
    assert 0.8 < _rt60(rir) < 1.4 and len(rir) > RATE
    np.testing.assert_array_equal(rir, room_impulse_response(np.random.default_rng(3), rooms))  # the tracer is seeded
    capped = room_impulse_response(np.random.default_rng(3), replace(rooms, max_order=40, ray_tracing=False))
    assert _rt60(capped) < 0.6 and len(capped) < RATE // 2


def test_a_room_spreads_a_click_over_its_reverberation(sources, tmp_path):
    cfg = replace(QUIET, name="room", p_room=1.0, p_large_space=0.0,
                  rooms=RoomRange(side=(4.0, 4.0), height=(2.5, 2.5), rt60=(0.6, 0.6)))
    click = np.zeros(2 * RATE, np.float32)
    click[100] = 0.5
    y = _chain(cfg, sources, tmp_path)(click, "click")
    tail = y[100 + RATE // 10 : 100 + RATE // 2]  # 0.1-0.5 s after the click: the room still rings
    assert np.sqrt(np.mean(tail**2)) > 1e-4
    assert _rt60(y[100:]) == pytest.approx(0.6, rel=0.5)


def test_bench_and_training_banks_never_share_a_source(sources, tmp_path):
    noise, speech, rirs = sources
    train = build_banks(acoustic.TRAIN, tmp_path / "b", noise, speech, rirs)
    bench = build_banks(acoustic.BENCH, tmp_path / "b", noise, speech, rirs)
    for a, b in ((train.noise, bench.noise), (train.speech, bench.speech)):
        names_a, names_b = {p.name for p in a.glob("*.wav")}, {p.name for p in b.glob("*.wav")}
        assert names_a and names_b and not names_a & names_b
        assert len(names_a) + len(names_b) == 12
    assert len(list(train.rooms.glob("*.wav"))) == acoustic.TRAIN.n_rooms
    assert train.large_spaces is not None and len(list(train.large_spaces.glob("*.wav"))) == 2
    assert bench.large_spaces is None  # home rooms only
    assert acoustic.TRAIN.fingerprint() != acoustic.BENCH.fingerprint()
    assert acoustic.TRAIN.rooms != acoustic.BENCH.rooms and acoustic.TRAIN.seed != acoustic.BENCH.seed


def test_a_bank_is_named_by_the_sources_it_keeps(sources, tmp_path):
    """Built once and reused only for the same sources: other noises (another --nonmusic folder, another
    --synthetic-noise count) get their own bank beside it instead of the first run's."""
    noise, speech, rirs = sources
    first = build_banks(acoustic.TRAIN, tmp_path / "b", noise, speech, rirs)
    root = first.rooms.parent
    os.utime(root, (root.stat().st_atime, root.stat().st_mtime - 3600))
    reused = time.time() - 1
    again = build_banks(acoustic.TRAIN, tmp_path / "b", noise, speech, rirs)
    assert again == first
    assert root.stat().st_mtime >= reused  # reusing a bank is a use (train-transfer --prune-cache keeps it)
    other_folder = tmp_path / "other-noise"
    other_folder.mkdir()
    rng = np.random.default_rng(9)
    other = []
    for p, group in noise:  # the same names and groups, other sounds
        sf.write(other_folder / p.name, (0.05 * rng.standard_normal(2 * RATE)).astype(np.float32), RATE)
        other.append((other_folder / p.name, group))
    changed = build_banks(acoustic.TRAIN, tmp_path / "b", other, speech, rirs)
    assert changed.id != first.id and changed.noise != first.noise
    kept = sorted(changed.noise.glob("*.wav"))
    assert kept and not any(np.array_equal(sf.read(p)[0], sf.read(first.noise / p.name)[0]) for p in kept)
    assert build_banks(acoustic.TRAIN, tmp_path / "b", noise, speech, None).id != first.id  # no real spaces
    # the same files, the noises now filed as voices
    assert acoustic.bank_id(acoustic.TRAIN, [], noise + speech, rirs) != first.id


def test_vorbis_round_trip_keeps_length_and_level():
    x = _tone(2.0)
    y = acoustic.vorbis(x, 0.0)
    assert y.shape == x.shape and not np.array_equal(x, y)
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.1)


def test_vorbis_takes_a_long_recording_and_keeps_short_clips_as_they_were():
    """libsndfile's encoder put a whole write on the stack: 135 s of audio in one write crashed the process (the
    music-flips bench's rooms). A clip of a minute or less is still one write: the training copies stay the same."""
    import io
    import subprocess
    import sys

    code = ("import numpy as np; from genrecast.training.acoustic import vorbis, RATE; "
            "x = (np.random.default_rng(0).standard_normal(140 * RATE) * 0.1).astype('float32'); "
            "print(vorbis(x, 0.2).shape[0] == x.shape[0])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", (proc.returncode, proc.stderr[-1000:])
    x = (np.random.default_rng(1).standard_normal(30 * RATE) * 0.1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, RATE, format="OGG", subtype="VORBIS", compression_level=0.8)
    buf.seek(0)
    assert np.array_equal(acoustic.vorbis(x, 0.2), sf.read(buf, dtype="float32")[0])


def test_low_pass_reference_agrees_with_the_band_measure():
    """The band measure used above sees a known filter as it is (so the filter tests can fail)."""
    rng = np.random.default_rng(5)
    white = rng.standard_normal(4 * RATE)
    low = sosfilt(butter(8, 4000, fs=RATE, output="sos"), white)
    assert _band_db(white, 6500, 8000) - _band_db(low, 6500, 8000) > 30


def test_a_clip_heard_through_a_chain_reads_through_it(sources, tmp_path):
    folder = tmp_path / "ood" / "electronic"
    folder.mkdir(parents=True)
    sf.write(folder / "emotify_magnatune__7.ogg", _tone(4.0), RATE)
    (clip,) = labelled_clips(tmp_path / "ood", ["electronic", "pop"], "ood")
    assert clip == Clip("ood/electronic/emotify_magnatune__7", "electronic", True, "long",
                        "ood/electronic/emotify_magnatune__7", folder / "emotify_magnatune__7.ogg", source="ood")
    copy = heard_through(clip, acoustic.TRAIN, 1)
    assert base_id(copy) == clip.clip_id and copy.group == clip.group and copy.genre == "electronic"
    chain = _chain(acoustic.TRAIN, sources, tmp_path)
    clean = read_clip_windows(clip, MUSICNN_DSP, N_FRAMES, 256)
    heard = read_clip_windows(copy, MUSICNN_DSP, N_FRAMES, 256, 0, {acoustic.TRAIN.fingerprint(): chain})
    assert heard.shape == clean.shape and not np.allclose(heard, clean)
    with pytest.raises(ValueError, match="was not given"):
        read_clip_windows(copy, MUSICNN_DSP, N_FRAMES, 256)


def test_the_shipped_chains_are_what_the_card_says():
    """The training chain's ranges are issue 17's asks as the card states them; the bench's its own draws."""
    t, b = acoustic.TRAIN, acoustic.BENCH
    assert (t.rooms.side, t.rooms.height, t.rooms.rt60) == ((2.5, 8.0), (2.3, 3.2), (0.2, 1.0))
    assert (t.rooms.max_order, t.rooms.ray_tracing, t.n_rooms, t.p_room, t.p_large_space) == (3, True, 48, 0.85, 0.15)
    assert (t.speaker_highpass_hz, t.tilt_db, t.mic_lowpass_hz) == ((150.0, 300.0), (-6.0, 6.0), (4000.0, 7500.0))
    assert (t.noise_snr_db, t.speech_snr_db, t.p_speech, t.p_noise) == ((0.0, 30.0), (0.0, 15.0), 0.3, 0.9)
    assert (t.p_speaker, t.p_mic) == (0.7, 0.5)
    assert (t.gain_db, t.p_clip, t.clip_percentile, t.p_codec, t.codec_quality) == (
        (-12.0, 6.0), 0.2, (0.0, 5.0), 0.3, (0.0, 0.3))
    assert b.seed != t.seed and b.noise_part != t.noise_part and (b.p_room, b.p_large_space) == (1.0, 0.0)
    assert (b.rooms.side, b.rooms.height, b.rooms.rt60, b.n_rooms) == ((2.2, 9.0), (2.2, 3.4), (0.25, 1.2), 24)
    assert (b.noise_snr_db, b.p_speech, b.codec_quality, b.rooms.ray_tracing) == ((5.0, 25.0), 0.3, (0.1, 0.4), True)


def test_tilt_gain_clipping_and_codec_each_do_their_part(sources, tmp_path):
    rng = np.random.default_rng(5)
    white = (0.1 * rng.standard_normal(4 * RATE)).astype(np.float32)
    up, down = (_chain(replace(QUIET, name=f"tilt{g:g}", p_speaker=1.0, speaker_highpass_hz=(20.0, 20.0),
                               tilt_db=(g, g)), sources, tmp_path)(white, "w") for g in (6.0, -6.0))
    # a high shelf (its corner drawn, the same for the same key), the level kept: the top against the bass, up or down

    def tilt(y):
        return _band_db(y, 7500, 8000) - _band_db(y, 60, 200) - (_band_db(white, 7500, 8000) - _band_db(white, 60, 200))

    assert 2.0 < tilt(up) < 6.5 and -6.5 < tilt(down) < -2.0
    gain = replace(QUIET, name="gain", gain_db=(-6.0, -6.0))
    assert np.allclose(_chain(gain, sources, tmp_path)(white, "w"), white * 10 ** (-6 / 20), atol=1e-6)
    loud = np.clip(3 * white, -1, 1)
    clip = replace(QUIET, name="clip", p_clip=1.0, clip_percentile=(5.0, 5.0))
    z = _chain(clip, sources, tmp_path)(loud, "w")
    flat = (z >= z.max() - 1e-6) | (z <= z.min() + 1e-6)
    assert z.max() < loud.max() and 0.04 < np.mean(flat) < 0.06  # the loudest 5 % flattened, half at either peak
    codec = replace(QUIET, name="codec", p_codec=1.0, codec_quality=(0.0, 0.0))
    c = _chain(codec, sources, tmp_path)(white, "w")
    error_db = 10 * np.log10(np.mean(white**2) / np.mean((c - white) ** 2))
    assert c.shape == white.shape and 1.0 < error_db < 10.0  # quality 0 (white noise: 3.6 dB; at 0.9, 18 dB)


def test_a_real_large_space_is_one_of_the_given_responses(sources, tmp_path):
    noise, speech, rirs = sources
    cfg = replace(QUIET, name="large", p_room=1.0, p_large_space=1.0)
    click = np.zeros(2 * RATE, np.float32)
    click[100] = 0.5
    y = _chain(cfg, sources, tmp_path)(click, "click")[100 : 100 + RATE]
    given = [sf.read(p)[0] for p in sorted(rirs.glob("*.flac"))]
    best = max(abs(np.corrcoef(y[: len(r)], r[: len(y)])[0, 1]) for r in given)
    assert best > 0.99  # the click comes back as one of the shared spaces' own responses
