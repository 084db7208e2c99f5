"""A live input's channels: averaged, unless they cancel (one wired with its polarity inverted)."""

import numpy as np
from genrecast.dsp.channels import JUDGE_SECONDS, LiveDownmix
from signals import music_like

RATE = 16000


def _pushed(mix: LiveDownmix, frames: np.ndarray, chunk: int = 800) -> np.ndarray:
    return np.concatenate([mix.push(frames[i : i + chunk]) for i in range(0, len(frames), chunk)])


def test_channels_that_cancel_are_read_against_each_other_and_said_once():
    """A balanced output into a stereo line-in: L = x, R = -0.97 x averaged to 1.5 % of the music, which read as
    `silence` (or, with any mismatch, a confident wrong genre), with nothing said (a microphone review)."""
    x = (0.03 * music_like(6.0, RATE, seed=4)).astype(np.float32)
    said: list[str] = []
    mix = LiveDownmix(RATE, said=said.append)
    out = _pushed(mix, np.stack([x, -0.97 * x], axis=1))
    judged = round(JUDGE_SECONDS * RATE)
    assert mix.inverted and len(said) == 1 and "cancel each other" in said[0], said
    # after the judging, the music at its own level, the right way up
    np.testing.assert_allclose(out[judged + 800 :], 0.985 * x[judged + 800 :], atol=1e-6)


def test_music_a_dead_channel_and_silence_are_averaged_as_ever():
    """Stereo music, a microphone alone in one input of two, and a quiet start are no cancelling wiring."""
    rng = np.random.default_rng(0)
    left = (0.03 * music_like(5.0, RATE, seed=5)).astype(np.float32)
    right = (0.7 * left + 0.01 * rng.standard_normal(left.size)).astype(np.float32)
    for frames in (np.stack([left, right], axis=1), np.stack([left, np.zeros_like(left)], axis=1),
                   np.zeros((5 * RATE, 2), np.float32)):
        said: list[str] = []
        mix = LiveDownmix(RATE, said=said.append)
        out = _pushed(mix, frames)
        assert not mix.inverted and not said
        np.testing.assert_array_equal(out, frames.mean(axis=1, dtype=np.float64).astype(np.float32))


def test_mono_passes_through():
    x = np.arange(10, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(LiveDownmix(RATE).push(x), x[:, 0])


def test_cancelling_channels_are_found_behind_an_offset_and_after_a_quiet_start():
    """A review: a cheap converter's offset on each channel (0.02 and 0.01) does not cancel, so the raw mean looked
    like sound and the verdict was "averaged"; the DC block then left silence. Nor may a room's tone before the
    music (-70 dBFS) be what the verdict is made of."""
    rng = np.random.default_rng(1)
    x = (0.03 * music_like(6.0, RATE, seed=6)).astype(np.float32)
    tone = (3e-4 * rng.standard_normal((3 * RATE, 2))).astype(np.float32)
    for frames in (np.stack([x + 0.02, -x + 0.01], axis=1),
                   np.concatenate([tone, np.stack([x, -x], axis=1)])):
        mix = LiveDownmix(RATE)
        _pushed(mix, frames)
        assert mix.inverted
