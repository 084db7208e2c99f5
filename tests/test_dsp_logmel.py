import os
import subprocess
import sys

import librosa
import numpy as np
import pytest
from genrecast.dsp import DEFAULT_DSP, DSPConfig, LogMelStream, logmel, mel_filterbank, read_audio, resample
from hypothesis import given, settings
from hypothesis import strategies as st
from signals import music_like


def librosa_logmel(x: np.ndarray, cfg: DSPConfig) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=x.astype(np.float64), sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax_hz, power=cfg.power, center=False,
        window="hann", htk=False, norm="slaney",
    )
    return np.log(np.maximum(mel, cfg.log_floor)).T


def max_rel_err(ours: np.ndarray, ref_log: np.ndarray) -> float:
    # Both are natural logs of mel power, so exp(difference) - 1 is the relative error of the power.
    return float(np.max(np.abs(np.expm1(ours.astype(np.float64) - ref_log))))


MUSICNN = DSPConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96)  # the musicnn backbone's front end


def test_filterbank_equals_librosa_slaney():
    ref = librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128, htk=False, norm="slaney", dtype=np.float64)
    np.testing.assert_allclose(mel_filterbank(DEFAULT_DSP), ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "cfg",
    [
        DEFAULT_DSP,
        DSPConfig(n_fft=1024, hop_length=256, n_mels=64, fmin=30.0, fmax=8000.0),
        DSPConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, power=1.0),
        MUSICNN,
    ],
    ids=["defaults", "small-fft-band-limited", "16k-magnitude", "musicnn-16k-512-256-96"],
)
def test_matches_librosa_melspectrogram(cfg):
    x = music_like(6.0, cfg.sample_rate)
    ours = logmel(x, cfg)
    ref = librosa_logmel(x, cfg)
    assert ours.shape == ref.shape == (cfg.frames_in(x.size), cfg.n_mels)
    assert max_rel_err(ours, ref) <= 1e-5


@pytest.mark.parametrize("cfg", [DEFAULT_DSP, MUSICNN], ids=["defaults", "musicnn-16k-512-256-96"])
def test_matches_librosa_on_real_music(gtzan_dir, cfg):
    files = sorted(gtzan_dir.glob("*/*.flac"))[::20]
    for path in files:
        audio = read_audio(path)
        x = resample(audio.samples, audio.sample_rate, cfg.sample_rate)
        assert max_rel_err(logmel(x, cfg), librosa_logmel(x, cfg)) <= 1e-5, path.name


SIGNALS = {cfg: music_like(3.0, cfg.sample_rate, seed=3) for cfg in (DEFAULT_DSP, MUSICNN)}
BATCHES = {cfg: logmel(x, cfg) for cfg, x in SIGNALS.items()}


@pytest.mark.parametrize("cfg", [DEFAULT_DSP, MUSICNN], ids=["defaults", "musicnn-16k-512-256-96"])
@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=40))
def test_chunking_never_changes_the_frames(cfg, sizes):
    signal, batch = SIGNALS[cfg], BATCHES[cfg]
    stream = LogMelStream(cfg)
    pieces, pos, i = [], 0, 0
    while pos < signal.size:
        n = sizes[i % len(sizes)] or (1 if i % 7 == 0 else 0)  # empty chunks are legal too
        pieces.append(stream.push(signal[pos : pos + n]))
        pos += n
        i += 1
    got = np.concatenate(pieces)
    assert got.shape == batch.shape
    assert stream.frames_emitted == batch.shape[0]
    np.testing.assert_allclose(got, batch, rtol=0, atol=1e-6)


def test_frames_appear_as_soon_as_their_last_sample_arrives():
    cfg = DEFAULT_DSP
    stream = LogMelStream(cfg)
    assert stream.push(SIGNALS[DEFAULT_DSP][: cfg.n_fft - 1]).shape == (0, cfg.n_mels)
    assert stream.push(SIGNALS[DEFAULT_DSP][cfg.n_fft - 1 : cfg.n_fft]).shape == (1, cfg.n_mels)
    assert stream.push(SIGNALS[DEFAULT_DSP][cfg.n_fft : cfg.n_fft + cfg.hop_length - 1]).shape[0] == 0
    assert stream.push(SIGNALS[DEFAULT_DSP][cfg.n_fft + cfg.hop_length - 1 : cfg.n_fft + cfg.hop_length]).shape[0] == 1


def test_silence_is_floored_not_minus_infinity():
    frames = logmel(np.zeros(DEFAULT_DSP.n_fft * 3, dtype=np.float32))
    assert np.all(frames == np.float32(np.log(DEFAULT_DSP.log_floor)))


def test_zero_length_and_short_signals_give_no_frames():
    assert logmel(np.zeros(0, dtype=np.float32)).shape == (0, DEFAULT_DSP.n_mels)
    assert logmel(np.ones(DEFAULT_DSP.n_fft - 1, dtype=np.float32)).shape == (0, DEFAULT_DSP.n_mels)


def test_rejects_multichannel_input():
    with pytest.raises(ValueError, match="mono"):
        LogMelStream().push(np.zeros((100, 2), dtype=np.float32))


NO_CACHE_SCRIPT = """
import os, sys
import numba, numba.core.caching, numba.misc.appdirs, numpy, rocket_fft, soundfile, soxr  # loaded as root
os.seteuid(65534)  # now nothing is writable: not the source tree, not ~/.cache
sys.dont_write_bytecode = True
from genrecast import dsp
print(dsp.logmel(numpy.ones(4096, "float32")).shape)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user inside the child")
def test_read_only_install_still_computes_features():
    """A service user who can write neither the package's __pycache__ nor a home cache (no NUMBA_CACHE_DIR)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"HOME": "/nonexistent"}
    out = subprocess.run([sys.executable, "-c", NO_CACHE_SCRIPT], capture_output=True, text=True, env=env,
                         timeout=180, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(5, 128)"


CACHE_FULL = """
import logging, resource, signal
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk (ENOSPC)
resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))
import numpy as np
from genrecast.dsp.melstream import logmel
print(logmel(np.zeros(22050, np.float32)).shape)
"""


def test_a_numba_cache_that_cannot_be_written_costs_a_compile_not_the_process(tmp_path):
    """Before: the first kernel call raised numba's OSError from saving its cache (a full /var/cache under the
    unit), and the daemon exited 1 blaming "writing". Now it warns once and runs on the compiled kernel."""
    proc = subprocess.run([sys.executable, "-c", CACHE_FULL], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0 and proc.stdout.strip() == "(40, 128)", proc.stderr
    assert proc.stderr.count("WARNING numba cannot write its cache (File too large)") == 1, proc.stderr
