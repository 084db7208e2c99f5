"""One feature pipeline: what the trainer computes for a file is exactly what the daemon computes live."""

import numpy as np
import soundfile as sf
from signals import music_like

from daemon.pipeline import Pipeline
from dsp import DEFAULT_DSP, ModelSpec, read_audio
from dsp.windows import hop_frames, slice_windows
from training.dataset import track_frames


def test_trainer_windows_equal_the_daemons_streamed_windows(tmp_path):
    stereo = np.stack([music_like(7.0, 44100, seed=1), music_like(7.0, 44100, seed=2)], axis=1)
    path = tmp_path / "track.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    spec = ModelSpec(name="parity", version="1")

    trained = slice_windows(track_frames(path, DEFAULT_DSP), spec.n_frames, hop_frames(DEFAULT_DSP, 1.0))

    audio = read_audio(path)
    pipeline = Pipeline(spec, 1.0, audio.sample_rate)
    rng = np.random.default_rng(0)
    live, pos = [], 0
    while pos < audio.samples.size:  # a microphone's uneven chunks
        n = int(rng.integers(100, 5000))
        live += pipeline.push(audio.samples[pos : pos + n], last=pos + n >= audio.samples.size)
        pos += n

    assert len(live) == trained.shape[0] == 5
    np.testing.assert_array_equal(np.stack([w.logmel for w in live]), trained)
