"""One feature pipeline: what the trainer computes for a file is exactly what the daemon computes live."""

import numpy as np
import pytest
import soundfile as sf
from genrecast.daemon.pipeline import Pipeline
from genrecast.dsp import AudioError, ModelSpec, read_audio
from genrecast.dsp.windows import hop_frames
from genrecast.training.corpus import Clip, read_clip_windows
from signals import music_like
from tiny_model import MUSICNN_DSP


def trained(spec: ModelSpec, path) -> np.ndarray:
    """The windows the trainer cuts from a file (:mod:`training.corpus`, what the backbone embeds)."""
    clip = Clip(path.stem, None, True, "long", path.stem, path)
    return read_clip_windows(clip, spec.dsp, spec.n_frames, hop_frames(spec.dsp, 1.0))


def test_trainer_windows_equal_the_daemons_streamed_windows(tmp_path):
    stereo = np.stack([music_like(7.0, 44100, seed=1), music_like(7.0, 44100, seed=2)], axis=1)
    path = tmp_path / "track.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    spec = ModelSpec(name="parity", version="1")

    windows = trained(spec, path)

    audio = read_audio(path)
    pipeline = Pipeline(spec, 1.0, audio.sample_rate)
    rng = np.random.default_rng(0)
    live, pos = [], 0
    while pos < audio.samples.size:  # a microphone's uneven chunks
        n = int(rng.integers(100, 5000))
        live += pipeline.push(audio.samples[pos : pos + n], last=pos + n >= audio.samples.size)
        pos += n

    assert len(live) == windows.shape[0] == 5
    np.testing.assert_array_equal(np.stack([w.logmel for w in live]), windows)


def streamed(spec: ModelSpec, path) -> list:
    audio = read_audio(path)
    pipeline = Pipeline(spec, 1.0, audio.sample_rate)
    live = []
    for pos in range(0, audio.samples.size, 3000):
        live += pipeline.push(audio.samples[pos : pos + 3000], last=pos + 3000 >= audio.samples.size)
    return live


@pytest.mark.parametrize("spec", [ModelSpec(name="parity", version="1"),
                                  ModelSpec(name="musicnn", version="1", dsp=MUSICNN_DSP, window_seconds=3.008)],
                         ids=["defaults", "musicnn-16k-512-256-96"])
@pytest.mark.parametrize("seconds", [1.0, 2.2, 2.99])
def test_a_short_clip_gives_the_trainer_the_daemons_one_padded_window(tmp_path, spec, seconds):
    path = tmp_path / "short.wav"
    sf.write(path, music_like(seconds, 44100, seed=4), 44100, subtype="FLOAT")
    windows = trained(spec, path)
    live = streamed(spec, path)
    assert len(live) == windows.shape[0] == 1
    np.testing.assert_array_equal(live[0].logmel, windows[0])
    assert live[0].end_s == pytest.approx(seconds, abs=1e-3)


def test_under_a_second_is_refused_by_the_trainer_and_gives_the_daemon_no_window(tmp_path):
    path = tmp_path / "tiny.wav"
    sf.write(path, music_like(0.9, 22050, seed=5), 22050)
    spec = ModelSpec(name="parity", version="1")
    with pytest.raises(AudioError, match="0.90 s is shorter than the 1 s minimum"):
        trained(spec, path)
    assert streamed(spec, path) == []


@pytest.mark.parametrize("seconds", [9.0, 2.2])
def test_a_quiet_crescendo_gives_the_trainer_the_daemons_raised_windows(tmp_path, seconds):
    """The level normalisation (dsp.level) on both sides: music from 0.008 to 0.026 RMS, every window raised by the
    slow gain, and the trainer's evenly kept few of them (max_windows) as the daemon computed them. The files
    above are all loud enough that no gain applies."""
    spec = ModelSpec(name="musicnn", version="1", dsp=MUSICNN_DSP, window_seconds=3.008)
    x = music_like(seconds, 44100, seed=5)
    x = (x / np.sqrt(np.mean(x**2)) * np.linspace(0.008, 0.026, x.shape[0])).astype(np.float32)
    path = tmp_path / "quiet.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    live = streamed(spec, path)
    assert all(w.rms < 0.05 for w in live)  # every window raised
    clip = Clip(path.stem, None, True, "long", path.stem, path)
    every = read_clip_windows(clip, spec.dsp, spec.n_frames, hop_frames(spec.dsp, 1.0))
    np.testing.assert_array_equal(np.stack([w.logmel for w in live]), every)
    if len(live) > 3:
        kept = read_clip_windows(clip, spec.dsp, spec.n_frames, hop_frames(spec.dsp, 1.0), 3)
        np.testing.assert_array_equal(kept, every[np.linspace(0, len(every) - 1, 3).round().astype(int)])
