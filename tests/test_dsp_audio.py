import os
import shutil
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from genrecast.dsp import AudioError, AudioFile, decode_frames, downmix, read_audio
from genrecast.dsp.audio import BLOCK_FRAMES, RATE_RANGE, check_samples
from signals import sparse_wav, tone


@pytest.mark.parametrize(("subtype", "tol"), [("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-8), ("FLOAT", 0)])
def test_wav_sample_formats_decode_to_float32(tmp_path, subtype, tol):
    x = tone(440, 0.5, 22050, amp=0.7)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, x, 22050, subtype=subtype)
    audio = read_audio(path)
    assert audio.samples.dtype == np.float32 and audio.sample_rate == 22050
    np.testing.assert_allclose(audio.samples, x, atol=tol + 1e-9)


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(440, 0.2, 44100), tone(660, 0.2, 44100)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    audio = read_audio(tmp_path / "st.wav")
    np.testing.assert_allclose(audio.samples, (left + right) / 2, atol=1e-7)
    assert audio.sample_rate == 44100 and audio.seconds == pytest.approx(0.2)


def test_flac_is_read(tmp_path):
    sf.write(tmp_path / "a.flac", tone(220, 0.3, 22050), 22050)
    assert read_audio(tmp_path / "a.flac").samples.size == 6615


def _wav_bytes(tmp_path, seconds=0.5) -> bytes:
    sf.write(tmp_path / "src.wav", tone(440, seconds, 22050), 22050, subtype="PCM_16")
    return (tmp_path / "src.wav").read_bytes()


def _mp3_bytes(tmp_path) -> bytes:
    sf.write(tmp_path / "src.mp3", tone(440, 2.0, 22050, amp=0.3), 22050, format="MP3")
    return (tmp_path / "src.mp3").read_bytes()


def _fifo(path):
    os.mkfifo(path)
    return path


def _put(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.wav", "no such file"),
        (lambda d: d, "is a folder, not a file"),
        (lambda d: _put(d / "empty.wav", b""), "empty file"),
        (lambda d: _put(d / "text.wav", b"hello, I am not audio\n" * 20), "not a readable audio file"),
        (lambda d: _put(d / "cut.wav", _wav_bytes(d)[:5000]), "truncated WAV"),
        (lambda d: _put(d / "head.wav", _wav_bytes(d)[:30]), "not a readable audio file|truncated"),
        # libsndfile calls both "File does not exist or is not a regular file (possibly a pipe?)"
        (lambda d: _put(d / "text.mp3", b"hello, I am not audio\n" * 20), "not a readable audio file \\(Format not"),
        (lambda d: _put(d / "head.mp3", _mp3_bytes(d)[:300]), "not a readable audio file \\(Format not"),
        # `cat song.wav | genrecast classify /dev/stdin` said "empty file"
        (lambda d: _fifo(d / "fifo.wav"), "is a pipe or a device, not a file .raw PCM from a named pipe: "
                                                 "`genrecast run --source pipe:"),
    ],
    ids=["missing", "directory", "empty", "not-audio", "truncated-data", "truncated-header", "text-as-mp3",
         "mp3-header-only", "pipe"],
)
def test_bad_files_give_one_line_errors(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(AudioError, match=message) as err:
        read_audio(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_header_declaring_more_channels_than_are_read_is_named(tmp_path):
    """It once read as a fraction of a second of audio ("0.00 s is shorter than the 1 s minimum")."""
    sf.write(tmp_path / "many.wav", np.zeros((22050, 33), np.float32), 22050)
    with pytest.raises(AudioError, match="many.wav: the header declares 33 channels \\(1 to 32 are read\\)"):
        read_audio(tmp_path / "many.wav")
    sf.write(tmp_path / "most.wav", np.full((22050, 32), 0.1, np.float32), 22050)
    assert read_audio(tmp_path / "most.wav").samples.shape == (22050,)  # 32 channels, downmixed


def test_wav_with_no_samples_is_refused(tmp_path):
    sf.write(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32), 22050)
    with pytest.raises(AudioError, match="no audio samples"):
        read_audio(tmp_path / "zero.wav")


def test_streamed_wav_with_unknown_length_is_accepted(tmp_path):
    data = bytearray(_wav_bytes(tmp_path))
    pos = data.index(b"data")
    data[pos + 4 : pos + 8] = (0xFFFFFFFF).to_bytes(4, "little")  # what arecord writes to a pipe
    (tmp_path / "pipe.wav").write_bytes(bytes(data))
    assert read_audio(tmp_path / "pipe.wav").samples.size == 11025


def test_decode_pcm_formats_and_downmix():
    s16 = np.array([[16384, -16384], [32767, 32767]], dtype="<i2").tobytes()
    np.testing.assert_allclose(downmix(decode_frames(s16, "s16le", 2)), [0.0, 32767 / 32768], atol=1e-7)
    f32 = np.array([0.25, -0.5, 1.0], dtype="<f4").tobytes()
    np.testing.assert_array_equal(downmix(decode_frames(f32, "f32le", 1)), [0.25, -0.5, 1.0])
    with pytest.raises(AudioError, match="whole number"):
        downmix(decode_frames(s16[:-1], "s16le", 2))
    with pytest.raises(AudioError, match="unknown PCM format"):
        downmix(decode_frames(s16, "u8", 1))


def test_unreadable_file_is_one_line_for_an_unprivileged_user():
    """What a hardened service user meets: a file it may not read."""
    folder = Path(tempfile.mkdtemp(prefix="gc-perm-"))
    try:
        folder.chmod(0o755)
        sf.write(folder / "private.wav", tone(440, 0.5, 22050), 22050)
        (folder / "private.wav").chmod(0o600)
        as_root = os.geteuid() == 0
        if as_root:
            os.seteuid(65534)  # root reads anything: ask as nobody
        try:
            with pytest.raises(AudioError) as err:
                read_audio(folder / "private.wav")
        finally:
            if as_root:
                os.seteuid(0)
        assert str(err.value) == f"{folder / 'private.wav'}: cannot read (Permission denied)"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wav_with_rate(path: Path, rate: int, frames: int = 22050) -> Path:
    sf.write(path, tone(440, frames / 22050, 22050), 22050, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[24:28] = rate.to_bytes(4, "little")  # fmt chunk: sample rate, then bytes per second
    data[28:32] = (rate * 2).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("rate", [1, 999, 384001, 4_000_000])
def test_sample_rates_outside_the_stdin_range_are_refused(tmp_path, rate):
    """An 88 KB file claiming 1 Hz is half a day of audio: once decoded and resampled, gigabytes."""
    path = _wav_with_rate(tmp_path / "slow.wav", rate)
    with pytest.raises(AudioError, match=f"sample rate {rate} Hz is outside 1000-384000 Hz"):
        AudioFile(path)
    with pytest.raises(AudioError, match="outside"):
        read_audio(path)


def test_rates_at_the_ends_of_the_range_are_read(tmp_path):
    for rate in RATE_RANGE:
        assert read_audio(_wav_with_rate(tmp_path / f"{rate}.wav", rate)).sample_rate == rate


def test_blocks_hold_the_whole_file_in_order(tmp_path):
    x = tone(440, 2.0, 22050)
    sf.write(tmp_path / "a.wav", x, 22050, subtype="FLOAT")
    with AudioFile(tmp_path / "a.wav") as f:
        blocks = list(f.blocks(1000))
        again = list(f.blocks(1000))  # from the start again: how a looping file source replays
    assert [b.shape[0] for b in blocks[:2]] == [1000, 1000]
    np.testing.assert_array_equal(np.concatenate(blocks), x.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate(again), x.astype(np.float32))


def test_opening_a_long_file_reads_only_its_header(tmp_path):
    """Two hours of 44.1 kHz stereo (a sparse file, zeros): opening allocates nothing like its 1.3 GB."""
    path = sparse_wav(tmp_path / "long.wav", seconds=7200)
    tracemalloc.start()
    try:
        with AudioFile(path) as f:
            first = next(f.blocks())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f.seconds == 7200 and first.shape[0] == BLOCK_FRAMES
    assert peak < 10 * 2**20


def test_a_truncated_mp3_is_refused_not_classified_in_part(tmp_path):
    try:
        sf.write(tmp_path / "a.mp3", tone(440, 10.0, 22050), 22050, format="MP3")
    except (sf.LibsndfileError, TypeError, ValueError):
        pytest.fail("this libsndfile cannot write MP3; the project requires >= 1.1")
    data = (tmp_path / "a.mp3").read_bytes()
    assert read_audio(tmp_path / "a.mp3").seconds == pytest.approx(10.0, abs=0.1)
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"cut.mp3: truncated: the header declares 10.00 s, only 4.\d+ s decode"):
        read_audio(tmp_path / "cut.mp3")


@pytest.mark.parametrize("subtype", ["VORBIS", "OPUS"])
def test_a_truncated_ogg_is_refused_wherever_it_is_cut(tmp_path, subtype):
    """libsndfile decodes a cut Ogg file to its last whole page and reports that length, so only the container says
    it was cut: at a page boundary (no end-of-stream page) or inside a page."""
    rng = np.random.default_rng(0)
    music = tone(440, 20.0, 48000) + 0.3 * rng.standard_normal(20 * 48000).astype(np.float32)  # many pages
    sf.write(tmp_path / "a.ogg", 0.5 * music, 48000, format="OGG", subtype=subtype)
    data = (tmp_path / "a.ogg").read_bytes()
    assert read_audio(tmp_path / "a.ogg").seconds == pytest.approx(20.0, abs=0.05)
    pages = [i for i in range(len(data)) if data.startswith(b"OggS", i)]
    for cut in (len(data) // 2, len(data) // 5 * 4, pages[-1], len(data) - 1):  # inside pages, at the last page
        (tmp_path / "cut.ogg").write_bytes(data[:cut])
        with pytest.raises(AudioError, match="cut.ogg: truncated"):
            read_audio(tmp_path / "cut.ogg")


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e30, -2000.0])
def test_the_same_sample_rule_for_files_and_pipes(tmp_path, bad):
    """A NaN, or a float whose power overflows, would make every probability after it NaN (invalid JSON)."""
    x = tone(440, 1.0, 22050)
    x[100] = bad
    sf.write(tmp_path / "f.wav", x, 22050, subtype="FLOAT")
    message = "contains NaN or infinite samples" if not np.isfinite(bad) else "over 1000 times full scale"
    with pytest.raises(AudioError, match=message):
        read_audio(tmp_path / "f.wav")
    with pytest.raises(AudioError, match=f"^stdin: .*{message}"):
        check_samples(downmix(decode_frames(x.astype("<f4").tobytes(), "f32le", 1)), "stdin")


@pytest.mark.parametrize(("subtype", "channels", "want"), [
    ("PCM_16", 1, "s16le"), ("PCM_32", 2, "s32le"), ("FLOAT", 1, "f32le"), ("PCM_24", 1, None)])
def test_a_wav_header_is_found_with_its_format_and_length(tmp_path, subtype, channels, want):
    from genrecast.dsp.audio import wav_header

    path = tmp_path / "x.wav"
    sf.write(path, np.zeros((100, channels), np.float32), 16000, subtype=subtype)
    data = path.read_bytes()
    fmt, rate, ch, size = wav_header(data)
    assert (fmt, rate, ch) == (want, 16000, channels) and data[size - 8 : size - 4] == b"data"
    assert len(data) - size == 100 * channels * {"PCM_16": 2, "PCM_24": 3}.get(subtype, 4)  # the samples, no more
    assert wav_header(b"\x00" * 64) is None and wav_header(data[:20]) is None  # raw PCM; a header cut short


def test_a_long_wav_header_is_known_as_one_until_it_is_all_there(tmp_path):
    from genrecast.dsp.audio import might_be_wav, wav_header

    path = tmp_path / "tagged.wav"
    with sf.SoundFile(path, "w", 16000, 1, "PCM_16") as out:
        out.title = "x" * 5000  # a LIST chunk before the samples
        out.write(np.zeros(100, np.int16))
    data = path.read_bytes()
    assert might_be_wav(data[:2000]) and wav_header(data[:2000]) is None  # more to read
    fmt, rate, channels, size = wav_header(data)
    assert (fmt, rate, channels) == ("s16le", 16000, 1) and size > 5000 and len(data) - size == 200
    assert not might_be_wav(b"\x00\x01" * 8) and might_be_wav(b"RI") and not might_be_wav(b"RIFF\0\0\0\0AVI ")
