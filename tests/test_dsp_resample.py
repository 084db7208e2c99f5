import numpy as np
import pytest
from genrecast.dsp import StreamResampler, resample
from signals import tone


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    """Peak of a zero-padded, windowed spectrum refined by parabolic interpolation."""
    n = 1 << 20
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size), n))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / n


@pytest.mark.parametrize("rate_in", [44100, 48000, 16000])
def test_tone_keeps_its_pitch_through_conversion(rate_in):
    y = resample(tone(440, 2.0, rate_in), rate_in, 22050)
    assert y.dtype == np.float32
    assert y.size == pytest.approx(2.0 * 22050, abs=2)
    assert dominant_frequency(y, 22050) == pytest.approx(440.0, abs=0.05)
    assert np.max(np.abs(y[1000:-1000])) == pytest.approx(0.5, rel=0.01)  # passband gain stays flat


def test_same_rate_is_untouched():
    x = tone(440, 0.1, 22050)
    assert resample(x, 22050, 22050) is x


def test_streaming_conversion_in_chunks_equals_whole_signal():
    x = tone(440, 2.0, 44100)
    stream = StreamResampler(44100, 22050)
    rng = np.random.default_rng(1)
    pieces, pos = [], 0
    while pos < x.size:
        n = int(rng.integers(1, 3000))
        pieces.append(stream.push(x[pos : pos + n], last=pos + n >= x.size))
        pos += n
    y = np.concatenate(pieces)
    assert y.size == pytest.approx(x.size / 2, abs=2)
    assert dominant_frequency(y, 22050) == pytest.approx(440.0, abs=0.05)
    # Bit-identical to the whole-signal conversion the trainer uses: training and a live stream see the same samples.
    np.testing.assert_array_equal(y, resample(x, 44100, 22050))


def test_bad_rates_are_refused():
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(0, 22050)
