"""Trainer end to end on generated signals (and a few real excerpts when present): loading, caching, splits,
the loop, checkpointing, export, the torch/onnxruntime agreement, evaluation. Small and a few steps each."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from genrecast.daemon.model import load_model
from genrecast.dsp import DEFAULT_DSP, GTZAN_GENRES, DSPConfig, ModelSpec
from genrecast.dsp.windows import hop_frames, slice_windows
from genrecast.training import augment
from genrecast.training.augment import NONE, AugmentConfig
from genrecast.training.calibrate import expected_calibration_error, fit_temperature, nll
from genrecast.training.dataset import Dataset, Track, cache_dir_for, load
from genrecast.training.evaluate import clopper_pearson, evaluate
from genrecast.training.export import export_onnx
from genrecast.training.models import build
from genrecast.training.split import Split, SplitError, kfold_split, random_split, read_split, restrict
from genrecast.training.train import TrainConfig, evaluate_loss, fixed_windows, train

from genrecast.cli import main

SPEC = ModelSpec(name="test", version="0")
WIN = SPEC.n_frames
HOP = hop_frames(SPEC.dsp, SPEC.hop_seconds)
GENRES = ("blues", "classical", "metal")


def _signal(genre: str, seconds: float, rate: int, seed: int) -> np.ndarray:
    """Genre-like enough to be told apart: a low chord, a high tone, or loud noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    if genre == "blues":
        x = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (110.0, 165.0, 220.0))
    elif genre == "classical":
        x = 0.3 * np.sin(2 * np.pi * 1760.0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    else:
        x = 0.4 * rng.standard_normal(t.shape)
    return (x + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


@pytest.fixture(scope="session")
def synth_tree(tmp_path_factory) -> Path:
    """GTZAN layout at 16 kHz (so features need resampling), one flat file, one corrupt and one too-short file."""
    root = tmp_path_factory.mktemp("synth")
    for g, genre in enumerate(GENRES):
        (root / genre).mkdir()
        for i in range(4):
            sf.write(root / genre / f"{genre}.{i:05d}.wav", _signal(genre, 6.0, 16000, 10 * g + i), 16000)
    sf.write(root / "metal.00099.flac", _signal("metal", 5.0, 22050, 99), 22050)  # flat layout
    (root / "blues" / "blues.00054.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(64))  # corrupt
    sf.write(root / "classical" / "classical.00077.wav", _signal("classical", 0.5, 16000, 7), 16000)  # < 1 s
    (root / "notes.txt").write_text("not audio")
    return root


@pytest.fixture(scope="session")
def synth(synth_tree, tmp_path_factory) -> Dataset:
    return load(synth_tree, DEFAULT_DSP, GTZAN_GENRES, WIN, tmp_path_factory.mktemp("cache"))


def _toy_dataset(n_per_genre: int, seed: int, seconds: float = 5.0, signal: bool = True) -> Dataset:
    """Log-mel-like frames straight in memory (no audio), with a genre-dependent band when ``signal``."""
    rng = np.random.default_rng(seed)
    tracks, frames = [], []
    n = DEFAULT_DSP.frames_for_seconds(seconds)
    for g, genre in enumerate(GENRES):
        for i in range(n_per_genre):
            x = rng.normal(-5.0, 1.0, size=(n, DEFAULT_DSP.n_mels)).astype(np.float32)
            if signal:
                x[:, 20 * g : 20 * g + 20] += 3.0
            tracks.append(Track(f"{genre}.{seed:02d}{i:03d}", genre, Path("/nowhere")))
            frames.append(x)
    return Dataset(tracks, frames)


# --- dataset ---------------------------------------------------------------------------------------------------


def test_loader_skips_and_lists_unreadable_and_short_files(synth, synth_tree):
    ids = [t.track_id for t in synth.tracks]
    assert len(ids) == 3 * 4 + 1 and "metal.00099" in ids  # GTZAN tree and flat file
    reasons = {s.path.name: s.reason for s in synth.skipped}
    assert "not a readable audio file" in reasons["blues.00054.wav"] or "truncated" in reasons["blues.00054.wav"]
    assert "0.50 s is shorter than the 1 s minimum" in reasons["classical.00077.wav"]
    assert "notes.txt" not in reasons  # not audio at all: not a track, not worth a line
    # 16 kHz sources are converted to the model's rate before framing
    assert synth.frames[ids.index("blues.00000")].shape == (DEFAULT_DSP.frames_for_seconds(6.0), DEFAULT_DSP.n_mels)


def test_short_clips_are_padded_to_one_window_and_cached_padded(tmp_path):
    root, cache = tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    sf.write(root / "jazz.00001.wav", _signal("jazz", 2.0, 16000, 1), 16000)
    ds = load(root, DEFAULT_DSP, GTZAN_GENRES, WIN, cache)
    assert [t.track_id for t in ds.tracks] == ["jazz.00001"] and ds.frames[0].shape == (WIN, DEFAULT_DSP.n_mels)
    assert slice_windows(ds.frames[0], WIN, HOP).shape[0] == 1
    (cached,) = cache_dir_for(cache, DEFAULT_DSP).iterdir()
    assert cached.name.endswith(f"-w{WIN}.npy")
    again = load(root, DEFAULT_DSP, GTZAN_GENRES, WIN, cache)
    assert again.cache_hits == 1 and np.array_equal(again.frames[0], ds.frames[0])
    # a cache written before padding holds the clip's own (too few) frames: recomputed, not trusted
    cached.unlink()
    np.save(cached.with_name(cached.name.replace(f"-w{WIN}", "")), ds.frames[0][:50])
    old = load(root, DEFAULT_DSP, GTZAN_GENRES, WIN, cache)
    assert old.cache_hits == 0 and np.array_equal(old.frames[0], ds.frames[0])


def test_byte_identical_copies_are_kept_once(tmp_path):
    """GTZAN holds repeated recordings; an exact copy under another id would put one recording on both sides."""
    root = tmp_path / "data"
    root.mkdir()
    sf.write(root / "blues.00001.wav", _signal("blues", 4.0, 22050, 1), 22050)
    (root / "blues.00002.wav").write_bytes((root / "blues.00001.wav").read_bytes())
    sf.write(root / "rock.00003.wav", _signal("rock", 4.0, 22050, 3), 22050)
    ds = load(root, DEFAULT_DSP, GTZAN_GENRES, WIN, None)
    assert [t.track_id for t in ds.tracks] == ["blues.00001", "rock.00003"]
    assert [(s.path.name, s.reason) for s in ds.skipped] == [("blues.00002.wav", "the same audio as blues.00001")]


def test_feature_cache_is_hit_and_keyed_by_dsp_config(synth_tree, tmp_path):
    first = load(synth_tree, DEFAULT_DSP, GTZAN_GENRES, WIN, tmp_path)
    second = load(synth_tree, DEFAULT_DSP, GTZAN_GENRES, WIN, tmp_path)
    assert len(first.tracks) == len(second.tracks) == 13
    assert first.cache_hits == 0 and second.cache_hits == 13  # the track under 1 s is refused, never cached
    for a, b in zip(first.frames, second.frames, strict=True):
        np.testing.assert_array_equal(a, b)
    assert cache_dir_for(tmp_path, DEFAULT_DSP) != cache_dir_for(tmp_path, DSPConfig(n_mels=64))
    assert first.fingerprint() == second.fingerprint()


def test_original_gtzan_au_files_load_like_wav(tmp_path):
    """The 1000-track GTZAN ships as Sun .au (16-bit big-endian, 22050 Hz): same features as the same PCM in WAV."""
    x = _signal("jazz", 4.0, 22050, 5)
    for fmt, ext in (("AU", "au"), ("WAV", "wav")):
        (tmp_path / ext).mkdir()
        sf.write(tmp_path / ext / f"jazz.00000.{ext}", x, 22050, format=fmt, subtype="PCM_16")
    au, wav = (load(tmp_path / ext, DEFAULT_DSP, GTZAN_GENRES, WIN, None) for ext in ("au", "wav"))
    assert [t.track_id for t in au.tracks] == ["jazz.00000"] and not au.skipped
    np.testing.assert_array_equal(au.frames[0], wav.frames[0])


def test_real_excerpts_load(gtzan_dir, tmp_path):
    (tmp_path / "d").mkdir()
    for genre in ("jazz", "metal"):  # links, not copies: the shared audio stays where it is
        (tmp_path / "d" / f"{genre}.00000.flac").symlink_to(gtzan_dir / genre / f"{genre}.00000.flac")
    ds = load(tmp_path / "d", DEFAULT_DSP, GTZAN_GENRES, WIN, tmp_path / "cache")
    assert [t.genre for t in ds.tracks] == ["jazz", "metal"] and not ds.skipped
    for f in ds.frames:  # 15-20 s excerpts
        assert DEFAULT_DSP.frames_for_seconds(14.9) <= f.shape[0] <= DEFAULT_DSP.frames_for_seconds(20.1)


# --- splits ----------------------------------------------------------------------------------------------------


def test_random_split_is_stratified_deterministic_and_disjoint():
    ds = _toy_dataset(7, seed=0)
    split = random_split(ds.tracks, seed=3)
    assert split == random_split(list(reversed(ds.tracks)), seed=3)  # order of discovery does not matter
    assert split != random_split(ds.tracks, seed=4)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert set.union(*parts) == {t.track_id for t in ds.tracks}
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    for genre in GENRES:  # every genre on every side
        assert all(any(t.startswith(genre + ".") for t in p) for p in parts)


def test_windows_of_a_track_never_cross_the_split():
    ds = _toy_dataset(5, seed=1)  # random frames: a window identifies the one track it was cut from
    split = random_split(ds.tracks, seed=0)
    owner = {}
    for track, frames in zip(ds.tracks, ds.frames, strict=True):
        for w in slice_windows(frames, WIN, 1):
            owner[w.tobytes()] = track.track_id
    for part in ("train", "val", "test"):
        x, _ = fixed_windows(ds.subset(split.part(part)), GTZAN_GENRES, WIN, HOP)
        assert {owner[w.tobytes()] for w in x} == set(split.part(part))
    with pytest.raises(SplitError, match="both train and test"):
        Split(("blues.1",), (), ("blues.1",), source="bad")


def test_kfold_tests_every_track_exactly_once():
    ds = _toy_dataset(7, seed=0)
    splits = [kfold_split(ds.tracks, 4, f, seed=1) for f in range(4)]
    tested = [t for s in splits for t in s.test]
    assert sorted(tested) == sorted(t.track_id for t in ds.tracks)  # each once
    for s in splits:  # Split refuses overlap itself; check every track is used and each genre validated
        assert len(s.train) + len(s.val) + len(s.test) == len(ds.tracks)
        assert {t.split(".")[0] for t in s.val} == set(GENRES)
    assert splits[0] == kfold_split(list(reversed(ds.tracks)), 4, 0, seed=1)
    with pytest.raises(SplitError):
        kfold_split(ds.tracks, 4, 4, seed=1)


def test_split_folder_accepts_fault_filtered_names_and_drops_missing_tracks(tmp_path):
    (tmp_path / "train_filtered.txt").write_text("blues/blues.00000.wav\nblues/blues.00001.wav\n\n# comment\n")
    (tmp_path / "valid_filtered.txt").write_text("blues.00002\n")
    (tmp_path / "test.txt").write_text("blues/blues.00003.au\nblues/blues.00009.wav\n")
    split = read_split(tmp_path)
    assert split.train == ("blues.00000", "blues.00001") and split.val == ("blues.00002",)
    kept, missing = restrict(split, ["blues.00000", "blues.00001", "blues.00002", "blues.00003"])
    assert kept.test == ("blues.00003",) and missing == ["blues.00009"]
    with pytest.raises(SplitError, match="no usable track"):
        restrict(split, ["blues.00003"])
    (tmp_path / "val.txt").write_text("blues.00000\n")  # val.txt wins over valid_filtered.txt and overlaps train
    with pytest.raises(SplitError, match="both"):
        read_split(tmp_path)


# --- augmentation ----------------------------------------------------------------------------------------------


def test_augmentations_do_what_they_say():
    rng = np.random.default_rng(0)
    x = torch.randn(4, 128, WIN)
    shifted = augment.gain(x, 6.0, rng)
    offsets = (shifted - x).reshape(4, -1)
    assert torch.allclose(offsets, offsets[:, :1].expand_as(offsets), atol=1e-5)  # one constant per window
    assert offsets.abs().max() <= 6.0 * np.log(10) / 10 + 1e-6
    masked = augment.mask(x, AugmentConfig(freq_width=16, time_width=20), rng)
    assert (masked == 0).any() and torch.equal(masked[masked != 0], x[masked != 0])
    targets = torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    mixed_x, mixed_t = augment.mixup(x, targets, 0.4, rng)
    assert torch.allclose(mixed_t.sum(1), torch.ones(4)) and mixed_x.shape == x.shape
    assert augment.mask(x, NONE, rng) is x and augment.gain(x, NONE.gain_db, rng) is x
    pairs = augment.window_starts(np.array([WIN + 100, WIN]), WIN, HOP, crop=True, rng=rng)
    assert [t for t, _ in pairs] == [0, 0, 0, 1] and all(0 <= s <= 100 for _, s in pairs)


# --- training loop ---------------------------------------------------------------------------------------------


def _fit(cfg: TrainConfig, tmp_path: Path | None = None, val_signal: bool = True):
    train_ds, val_ds = _toy_dataset(2, seed=0), _toy_dataset(1, seed=1, signal=val_signal)
    ckpt = tmp_path / "ckpt.pt" if tmp_path else None
    return train(train_ds, val_ds, GTZAN_GENRES, WIN, HOP, cfg, checkpoint=ckpt), val_ds


def test_training_is_reproducible_for_a_seed_and_learns():
    cfg = TrainConfig(epochs=3, batch_size=4, seed=5)
    a, _ = _fit(cfg)
    b, _ = _fit(cfg)
    c, _ = _fit(replace(cfg, seed=6))
    assert [vars(s) | {"seconds": 0} for s in a.history] == [vars(s) | {"seconds": 0} for s in b.history]
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert a.history[0].train_loss != c.history[0].train_loss
    assert a.history[-1].val_loss < a.history[0].val_loss  # a separable toy problem is being learned


def test_best_checkpoint_is_kept_and_early_stopping_fires(tmp_path):
    # validation labels carry no signal, so validation loss soon stops improving
    cfg = TrainConfig(epochs=40, batch_size=4, patience=2, seed=0, lr=3e-3)
    result, val_ds = _fit(cfg, tmp_path, val_signal=False)
    losses = [s.val_loss for s in result.history]
    assert result.stopped_early and len(losses) < 40
    assert result.best_epoch == 1 + int(np.argmin(losses)) and len(losses) == result.best_epoch + cfg.patience
    saved = torch.load(tmp_path / "ckpt.pt")
    assert saved["epoch"] == result.best_epoch
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, saved["state_dict"][k]), k
    x, y = fixed_windows(val_ds, GTZAN_GENRES, WIN, HOP)
    assert evaluate_loss(result.model, x, y)[0] == pytest.approx(min(losses), rel=1e-5)


# --- export ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["default", "baseline"])
def test_torch_and_onnxruntime_agree(arch, tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build(arch, len(GTZAN_GENRES), rng.normal(-4, 1, 128), rng.uniform(0.5, 2, 128)).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, SPEC, path)
    loaded = load_model(path)
    assert loaded.spec == SPEC
    for batch in (1, 5):  # dynamic batch
        x = rng.normal(-5, 2, size=(batch, 128, WIN)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = loaded.predict(x).genre
        assert got.shape == (batch, len(GTZAN_GENRES))
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_exported_graph_applies_the_fitted_temperature(tmp_path):
    rng = np.random.default_rng(1)
    model = build("default", len(GTZAN_GENRES), rng.normal(-4, 1, 128), rng.uniform(0.5, 2, 128)).eval()
    x = rng.normal(-5, 2, size=(3, 128, WIN)).astype(np.float32)
    with torch.no_grad():
        logits = model.logits(model.normalise(torch.from_numpy(x))).numpy()
    model.temperature.fill_(2.5)
    export_onnx(model, SPEC, tmp_path / "t.onnx")
    expected = np.exp(logits / 2.5) / np.exp(logits / 2.5).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(load_model(tmp_path / "t.onnx").predict(x).genre, expected, atol=1e-5, rtol=0)
    assert "temperature" not in model.state_dict()  # checkpoints hold weights only; the spec records T


def test_model_for_other_features_loads_with_its_own_front_end(tmp_path):
    other = DSPConfig(n_mels=64)
    spec = ModelSpec(name="other", version="0", dsp=other)
    model = build("default", len(GTZAN_GENRES), np.zeros(64), np.ones(64)).eval()
    export_onnx(model, spec, tmp_path / "other.onnx")
    loaded = load_model(tmp_path / "other.onnx")
    assert loaded.spec.dsp == other
    out = loaded.predict(np.zeros((2, 64, spec.n_frames), np.float32))
    assert out.genre.shape == (2, len(GTZAN_GENRES)) and out.music.tolist() == [1.0, 1.0]  # no music head


# --- evaluation ------------------------------------------------------------------------------------------------


def test_evaluation_counts_windows_and_decides_tracks_by_mean_probability():
    ds = _toy_dataset(1, seed=2, seconds=4.0)  # 3 tracks of 2 windows each (4 s, 1 s hop)
    labels = GTZAN_GENRES
    table = {  # per track: both windows' probabilities
        "blues": [[0.6, 0.4], [0.1, 0.9]],  # windows say blues, classical; mean says classical (0.65)
        "classical": [[0.2, 0.8], [0.3, 0.7]],  # both right
        "metal": [[0.9, 0.1], [0.8, 0.2]],  # both "blues": wrong
    }

    def predict(windows):
        probs = np.zeros((len(windows), len(labels)), np.float32)
        key = next(g for g in GENRES if np.allclose(windows[0], ds.frames[GENRES.index(g)][:WIN].T))
        for i in range(len(windows)):
            probs[i, [0, 1]] = table[key][i]
        return probs

    ev = evaluate(predict, ds, labels, WIN, HOP)
    assert ev.n_windows == 6 and ev.n_tracks == 3
    assert ev.window_accuracy == pytest.approx(3 / 6) and ev.track_accuracy == pytest.approx(1 / 3)
    b, c, m = (labels.index(g) for g in GENRES)
    assert ev.confusion[b][c] == 1 and ev.confusion[c][c] == 1 and ev.confusion[m][b] == 1
    assert ev.per_genre["classical"].precision == pytest.approx(0.5) and ev.per_genre["classical"].recall == 1.0
    assert ev.per_genre["metal"].f1 == 0.0 and ev.per_genre["metal"].support == 1
    assert "track accuracy" in ev.table() and json.dumps(ev.to_dict())


def _sampled(temperature: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits, and labels drawn from softmax(logits / temperature): the true temperature is known."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 4, size=(n, 10))
    p = np.exp(logits / temperature)
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(10, p=row) for row in p])
    return logits, y


@pytest.mark.parametrize("true_t", [0.5, 1.0, 3.0])
def test_temperature_fit_recovers_the_temperature_that_made_the_labels(true_t):
    logits, y = _sampled(true_t, 20000, seed=3)
    t = fit_temperature(logits, y)
    assert t == pytest.approx(true_t, rel=0.05)
    assert nll(logits, y, t) <= min(nll(logits, y, true_t), nll(logits, y)) + 1e-9


def test_calibration_error_tells_overconfidence_from_calibration():
    logits, y = _sampled(1.0, 20000, seed=4)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert expected_calibration_error(probs, y) < 0.02  # labels drawn from these very probabilities
    sure = np.zeros((1000, 10))
    sure[:, 0] = 1.0  # always 100 % sure of genre 0, right half the time
    assert expected_calibration_error(sure, np.repeat([0, 1], 500)) == pytest.approx(0.5)


def test_clopper_pearson_interval():
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.1871, abs=1e-4) and hi == pytest.approx(0.8129, abs=1e-4)
    assert clopper_pearson(10, 10)[1] == 1.0 and clopper_pearson(0, 10)[0] == 0.0


# --- command line ----------------------------------------------------------------------------------------------


def test_train_and_evaluate_commands_end_to_end(synth_tree, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--data", str(synth_tree), "--epochs", "2", "--batch-size", "8", "--out", str(out),
               "--cache", str(tmp_path / "cache"), "--augment", "crop,gain,mask,mixup"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "skipped" in printed and "blues.00054.wav" in printed
    for name in ("model.onnx", "metrics.json", "history.png", "confusion.png", "checkpoint.pt"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["test"]["n_tracks"] == 3
    spec = load_model(out / "model.onnx").spec
    assert spec.dsp == DEFAULT_DSP and spec.labels == GTZAN_GENRES and len(spec.input_norm["mean"]) == 128
    assert any("tiny data" in c for c in spec.training["caveats"])
    assert any("too few for the calibration" in c for c in spec.training["caveats"])
    assert set(spec.training["split"]["test"]).isdisjoint(spec.training["split"]["train"])
    cal = spec.training["calibration"]
    assert cal["temperature"] > 0 and cal["val_windows"] > 0 and cal["val_nll_after"] <= cal["val_nll_before"]
    assert "calibration: temperature" in printed and "mean confidence" in printed

    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(out / "model.onnx"), "--data", str(synth_tree), "--part", "test",
                 "--json", str(report), "--cache", str(tmp_path / "cache")]) == 0
    ev = json.loads(report.read_text())
    assert sorted(t["track_id"] for t in ev["tracks"]) == sorted(spec.training["split"]["test"])
    assert ev["track_accuracy"] == pytest.approx(metrics["test"]["track_accuracy"])
    assert main(["evaluate", "--model", str(out / "model.onnx"), "--data", str(synth_tree),
                 "--cache", str(tmp_path / "cache")]) == 0
    assert "trained this model" in capsys.readouterr().out


def test_calibration_can_be_skipped(synth_tree, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data", str(synth_tree), "--epochs", "1", "--max-steps", "2", "--no-calibration",
                 "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    training = load_model(out / "model.onnx").spec.training
    assert training["calibration"] is None and not any("calibration" in c for c in training["caveats"])


@pytest.mark.parametrize("args, message", [
    (["--augment", "crop,warp"], "unknown augmentation warp"),
    (["--split", "/no/such/split"], "a split is a folder"),
    (["--fold", "2-4"], "--fold takes I/K"),
    (["--fold", "5/4"], "fold must be in 1..4"),
])
def test_train_user_errors_are_one_line(args, message, synth_tree, tmp_path, capsys):
    argv = ["train", "--data", str(synth_tree), "--out", str(tmp_path / "r"), "--cache", str(tmp_path), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert main(["train", "--data", str(tmp_path / "absent")]) == 2


def _fold_run(folder: Path, fold: str, right: dict[str, bool]) -> Path:
    folder.mkdir(parents=True)
    tracks = [{"track_id": t, "genre": "blues", "predicted": "blues" if ok else "rock"} for t, ok in right.items()]
    (folder / "metrics.json").write_text(json.dumps({
        "spec": {"training": {"split": {"source": f"fold {fold} (seed=0, val=0.15, stratified by genre, by track)"}}},
        "test": {"tracks": tracks, "n_windows": 10 * len(tracks), "window_accuracy": 0.5}}))
    return folder


def test_cv_summary_pools_folds_and_pairs_tracks(tmp_path, capsys):
    import runpy

    summary = runpy.run_path(str(Path(__file__).parents[1] / "scripts" / "cv_summary.py"))
    ids = [f"blues.{i:05d}" for i in range(20)]
    ref = [_fold_run(tmp_path / f"ref-f{f}", f"{f + 1}/2", {t: True for t in ids[f * 10 : f * 10 + 10]})
           for f in (0, 1)]
    other = [_fold_run(tmp_path / f"other-f{f}", f"{f + 1}/2",
                       {t: i % 2 == 0 for i, t in enumerate(ids[f * 10 : f * 10 + 10])}) for f in (0, 1)]
    assert summary["main"]([str(p) for p in ref] + ["--"] + [str(p) for p in other]) == 0
    out = capsys.readouterr().out
    assert "20/20" in out and "10/20" in out and "10/0" in out and "p=0.00" in out
    with pytest.raises(SystemExit, match="tested in two folds"):
        summary["main"]([str(ref[0]), str(ref[0])])
    with pytest.raises(SystemExit, match="not all folds of one K-fold split"):
        summary["main"]([str(ref[0])])
