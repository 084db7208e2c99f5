import numpy as np
from genrecast.dsp import DEFAULT_DSP
from genrecast.dsp.windows import WindowStream, hop_frames, slice_windows, window_starts
from hypothesis import given, settings
from hypothesis import strategies as st


def test_hop_is_rounded_to_whole_frames():
    assert hop_frames(DEFAULT_DSP, 1.0) == 43
    assert hop_frames(DEFAULT_DSP, 0.001) == 1


def test_window_starts_cover_only_full_windows():
    assert window_starts(125, 126, 43).size == 0
    np.testing.assert_array_equal(window_starts(300, 126, 43), [0, 43, 86, 129, 172])


FRAMES = np.random.default_rng(0).standard_normal((400, 8)).astype(np.float32)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 90), min_size=1, max_size=20), st.integers(1, 60))
def test_streaming_windows_equal_batch_slicing(sizes, hop):
    batch = slice_windows(FRAMES, 50, hop)
    stream = WindowStream(50, hop)
    got, pos, i = [], 0, 0
    while pos < FRAMES.shape[0]:
        n = max(sizes[i % len(sizes)], 1)
        got += stream.push(FRAMES[pos : pos + n])
        pos += n
        i += 1
    assert [start for start, _ in got] == list(window_starts(400, 50, hop))
    np.testing.assert_array_equal(np.stack([w for _, w in got]), batch)
    assert batch.shape[1:] == (8, 50)


def test_windows_sharing_counts_the_windows_that_overlap_one():
    """After a silent window, those that may still hold some of the silence (the decision waits for them)."""
    from genrecast.dsp.windows import windows_sharing
    from genrecast.training.musicnn import MUSICNN_DSP, N_FRAMES

    assert windows_sharing(MUSICNN_DSP, N_FRAMES, 1.0) == 3  # 187 frames, 62 a hop
    assert windows_sharing(MUSICNN_DSP, N_FRAMES, 3.0) == 0  # windows side by side share nothing
    assert windows_sharing(MUSICNN_DSP, N_FRAMES, 0.5) == 6
