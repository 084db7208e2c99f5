"""The DC blocker before the front end: an offset is gone, music's bass is not, and chunks change nothing."""

import numpy as np
import pytest
from genrecast.dsp.dcblock import CUTOFF_HZ, DCBlockStream, dc_block

RATE = 16000


def _gain_db(freq: float) -> float:
    """Steady-state gain at ``freq``: the last second of four of a sine, RMS out over RMS in."""
    t = np.arange(4 * RATE) / RATE
    x = np.sin(2 * np.pi * freq * t)
    y = dc_block(x, RATE)
    return 20 * np.log10(np.std(y[-RATE:]) / np.std(x[-RATE:]))


def test_an_offset_present_from_the_start_is_gone_from_the_first_sample():
    """A microphone's offset is there when the stream opens: no step decays through the first window."""
    x = np.full(RATE, 0.1, np.float32) + 0.01 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE).astype(np.float32)
    y = dc_block(x, RATE)
    assert abs(float(y.mean())) < 1e-3
    assert np.max(np.abs(y[:100])) < 0.012  # the tone alone, no 0.1 step


def test_an_offset_that_appears_later_decays_within_a_tenth_of_a_second():
    x = np.concatenate([np.zeros(RATE), np.full(RATE, 0.2)]).astype(np.float32)
    y = dc_block(x, RATE)
    assert np.max(np.abs(y[RATE + RATE // 10 :])) < 0.2 * np.exp(-2 * np.pi * CUTOFF_HZ * 0.1) * 1.01


@pytest.mark.parametrize("freq, most_loss_db", [(31.25, 0.5), (60.0, 0.15), (100.0, 0.05), (1000.0, 0.02)])
def test_music_keeps_its_bass(freq, most_loss_db):
    """The shipped front end's FFT bins are 31.25 Hz apart: its lowest band above DC loses under half a dB (a
    one-pole high-pass gains 0.02 dB at most, towards Nyquist)."""
    assert abs(_gain_db(freq)) < most_loss_db


def test_chunks_give_what_one_push_gives():
    """A microphone's uneven chunks, and the trainer's whole clip, are the same samples out (one feature pipeline)."""
    rng = np.random.default_rng(0)
    x = (0.05 + 0.1 * rng.standard_normal(3 * RATE)).astype(np.float32)
    stream, out, pos = DCBlockStream(RATE), [], 0
    while pos < x.size:
        n = int(rng.integers(1, 3000))
        out.append(stream.push(x[pos : pos + n]))
        pos += n
    np.testing.assert_array_equal(np.concatenate(out), dc_block(x, RATE))
    assert stream.push(np.zeros(0, np.float32)).shape == (0,)


def test_the_daemons_windows_of_music_on_an_offset_are_the_musics():
    """Music at 0.03 RMS on a 0.1 offset raised the lowest mel bands by about 30 and 10 dB (7 and 2 in natural log):
    a shop's USB microphone read rock as electronic or no_music, its `rms` looking fine."""
    from genrecast.daemon.pipeline import Pipeline
    from genrecast.dsp import ModelSpec
    from signals import music_like

    spec = ModelSpec(name="dc", version="1")
    music = music_like(5.0, 44100, seed=3)
    music = (0.03 * music / np.std(music)).astype(np.float32)

    def windows(x):
        return np.stack([w.logmel for w in Pipeline(spec, 1.0, 44100).push(x, last=True)])

    clean, offset = windows(music), windows(music + np.float32(0.1))
    assert np.max(np.abs(offset - clean)) < 0.01  # every band and frame, the first ones too (blocked before resampling)


def test_a_nan_sample_does_not_spoil_what_follows():
    """An IIR filter keeps a NaN in its state: every window after one bad sample was NaN (a review)."""
    stream = DCBlockStream(RATE)
    bad = np.full(100, 0.1, np.float32)
    bad[50] = np.nan
    stream.push(bad)
    assert np.all(np.isfinite(stream.push(np.full(100, 0.1, np.float32))))


def test_it_is_scipys_one_pole_high_pass():
    """The loop stands in for ``scipy.signal.lfilter`` (whose import cost the daemon 49 MB): the same answers."""
    from scipy.signal import lfilter, lfilter_zi

    x = (0.05 + 0.1 * np.random.default_rng(2).standard_normal(RATE)).astype(np.float32)
    r = np.exp(-2 * np.pi * CUTOFF_HZ / RATE)
    b, a = [1.0, -1.0], [1.0, -r]
    want, _ = lfilter(b, a, x.astype(np.float64), zi=lfilter_zi(b, a) * x[0])
    np.testing.assert_allclose(dc_block(x, RATE), want.astype(np.float32), atol=1e-6)
