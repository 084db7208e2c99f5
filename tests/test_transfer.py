"""The shipped recipe on a few generated clips: corpus and groups, folds, heads, the exported graph, the command.

Full training on the shared data runs outside CI (models/README.md says how); here every stage runs for real on
generated audio small enough for seconds of CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from genrecast.daemon.model import load_model
from genrecast.dsp import GTZAN_GENRES, weigh_heads
from genrecast.dsp.windows import hop_frames
from genrecast.training.acoustic import TRAIN, Chain, build_banks
from genrecast.training.corpus import (
    Clip,
    genre_clips,
    heard_through,
    nonmusic_clips,
    read_clip_windows,
    read_corpus,
    speaker_or_source,
    usable,
)
from genrecast.training.embed import PARTS, backbone_activations, embed_clips
from genrecast.training.export import export_onnx
from genrecast.training.musicnn import MSD_TAGS, MUSICNN_DSP, N_FRAMES, TAG_ORIGIN, WINDOW_SECONDS, load_musicnn
from genrecast.training.transfer import HeadConfig, TransferNet, WindowSet, features, fit_heads
from genrecast.training.transfer_cv import group_folds, held_out
from test_musicnn_port import WHEEL

from genrecast.cli import main

RATE = 16000


def _music(genre: str, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    base = {"blues": 110.0, "classical": 880.0, "metal": 220.0}[genre]
    x = sum(0.15 * np.sin(2 * np.pi * base * k * t) * (1 + np.sin(2 * np.pi * 2 * t)) for k in (1, 1.5, 2))
    if genre == "metal":
        x = np.clip(4 * x, -0.5, 0.5)
    return (x + 0.005 * rng.standard_normal(t.shape)).astype(np.float32)


def _not_music(kind: str, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    if kind == "noise":
        return (0.1 * rng.standard_normal(n)).astype(np.float32)
    # "speech": noise bursts at a syllable rate, band-limited by a crude moving average
    env = (np.sin(2 * np.pi * 4 * np.arange(n) / RATE) > 0.3).astype(np.float32)
    return (0.3 * env * np.convolve(rng.standard_normal(n), np.ones(8) / 8, "same")).astype(np.float32)


@pytest.fixture(scope="module")
def corpus_dirs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("transfer")
    data, other = root / "gtzan", root / "nonmusic"
    for g, genre in enumerate(("blues", "classical", "metal")):
        (data / genre).mkdir(parents=True)
        for i in range(4):
            seconds = 2.0 if i == 3 else 4.5  # one short clip per genre, repeat-padded to a window
            sf.write(data / genre / f"{genre}.{i:05d}.wav", _music(genre, seconds, 10 * g + i), RATE)
    for kind, names in (("speech", ("fsdd__0_anna_1", "fsdd__1_anna_2", "fsdd__2_bob_1", "fsdd__3_carl_1")),
                        ("noise", ("household_noise_x__fan_0", "household_noise_x__fan_1", "household_noise_x__hum_0",
                                   "freesound_x__rain")),
                        ("music", ("freesound_x__tune",))):
        (other / kind).mkdir(parents=True)
        for j, name in enumerate(names):
            x = _music("blues", 3.5, 90 + j) if kind == "music" else _not_music(kind, 3.5, 50 + j)
            sf.write(other / kind / f"{name}.wav", x, RATE)
    sf.write(other / "speech" / "fsdd__9_dan_1.wav", _not_music("speech", 0.5, 1), RATE)  # under 1 s: skipped
    return data, other


@pytest.fixture(scope="module")
def backbones():
    return {name: load_musicnn(WHEEL, name) for name in HeadConfig().backbones}


def test_groups_keep_a_speaker_or_a_machine_together():
    assert speaker_or_source("fsdd", "0_george_25") == speaker_or_source("fsdd", "7_george_3") == "fsdd/george"
    assert speaker_or_source("librispeech_samples_x", "8238-274553-0000") == "librispeech_samples_x/8238"
    uid = "9df8ab6f-9357-4520-827f-c302ebb5a8d8"
    assert speaker_or_source("mycroft_precise_community", f"{uid}_abc_1") == f"mycroft_precise_community/{uid}"
    assert speaker_or_source("household_noise_timgrau", "dishwasher_3") == "household_noise_timgrau/dishwasher"
    assert speaker_or_source("freesound_samples_ibm_max", "rain") == "freesound_samples_ibm_max/rain"


def test_corpus_reads_kinds_and_groups(corpus_dirs):
    data, other = corpus_dirs
    genres = genre_clips(data, GTZAN_GENRES)
    assert len(genres) == 12 and {c.genre for c in genres} == {"blues", "classical", "metal"}
    clips = nonmusic_clips(other)
    assert {c.kind for c in clips} == {"speech", "noise", "music"}
    assert [c.is_music for c in clips if c.kind == "music"] == [True]
    anna = [c for c in clips if c.group == "fsdd/anna"]
    assert len(anna) == 2


def test_group_folds_never_split_a_group_and_deal_every_kind():
    clips = [Clip(f"c{i}", None, False, kind, f"{kind}/g{i % 6}", Path("x"))
             for i in range(24) for kind in ("speech", "noise")]
    folds = group_folds(clips, 3, seed=0)
    by_group: dict[str, set[int]] = {}
    for c, f in zip(clips, folds, strict=True):
        by_group.setdefault(c.group, set()).add(f)
    assert all(len(f) == 1 for f in by_group.values())
    for kind in ("speech", "noise"):
        assert {f for c, f in zip(clips, folds, strict=True) if c.kind == kind} == {0, 1, 2}
    assert folds == group_folds(list(reversed(clips)), 3, seed=0)[::-1]  # independent of order


def test_heads_learn_separable_genres_and_music():
    rng = np.random.default_rng(0)
    labels = ("a", "b", "c")
    centres = rng.normal(0, 3, size=(4, 8))
    clips, acts = [], []
    for i in range(30):
        k = i % 4  # 0..2 genres, 3 not music
        clips.append(Clip(f"x{i}", labels[k] if k < 3 else None, k < 3, "long" if k < 3 else "noise", f"x{i}",
                          Path("x")))
        acts.append({"b:p": (centres[k] + rng.normal(0, 0.5, size=(3, 8))).astype(np.float32),
                     "c:q": rng.normal(0, 1, size=(3, 2)).astype(np.float32)})
    cfg = HeadConfig(features=("b:p", "c:q"), music_features=("b:p",))
    everything = WindowSet.build(clips, acts, cfg.features)
    genre = everything.where(lambda c: c.genre is not None)
    heads = fit_heads(genre, everything, labels, cfg)
    gp, mp = heads.predict(everything.x)
    truth = np.array([clips[c].genre for c in everything.clip_index])
    has = truth != None  # noqa: E711 (element-wise)
    assert (np.array(labels)[gp[has].argmax(1)] == truth[has]).all()
    assert (mp[has] > 0.5).all() and (mp[~has] < 0.5).all()
    # the music head reads only its own features: the others' weights are exactly 0, its own are not
    assert (heads.music_w[8:] == 0).all() and (heads.music_w[:8] != 0).all() and (heads.genre_w[:, 8:] != 0).any()
    assert not heads.has_direct  # no room copies to leave out: the direct head would be the genre head
    with pytest.raises(ValueError, match="must be some of"):
        HeadConfig(features=("b:p",), music_features=("c:q",))


def _tracks_and_room_copies(rng, labels, n: int, centres, room_centre) -> tuple[list, list]:
    """``n`` one-feature tracks of three windows round their label's centre, each with a room copy round
    ``room_centre(label index)``."""
    clips, acts = [], []
    for i in range(n):
        k = i % len(labels)
        for name, centre, acoustic in ((f"x{i}", centres[k], None), (f"x{i}@room", room_centre(k), ("room", 0))):
            clips.append(Clip(name, labels[k], True, "long", f"x{i}", Path("x"), acoustic=acoustic))
            acts.append({"b:p": (centre + rng.normal(0, 0.5, size=(3, 8))).astype(np.float32)})
    return clips, acts


def test_the_direct_head_learns_the_recorded_clips_alone():
    """A room that moves every genre toward another's sound: the genre head learns both, the direct head only the
    recordings, so it is the one that is right about recordings, and the other the one that is right in the room."""
    rng = np.random.default_rng(1)
    labels = ("a", "b", "c")
    centres = rng.normal(0, 3, size=(3, 8))
    clips, acts = _tracks_and_room_copies(rng, labels, 24, centres, lambda k: centres[(k + 1) % 3] + 0.6 * centres[k])
    cfg = HeadConfig(features=("b:p",), music_features=("b:p",))
    everything = WindowSet.build(clips, acts, cfg.features)
    heads = fit_heads(everything, everything, labels, cfg)
    assert heads.has_direct and heads.direct_w.shape == heads.genre_w.shape
    recorded = everything.where(lambda c: c.acoustic is None)
    truth = np.array([labels.index(recorded.clips[c].genre) for c in recorded.clip_index])
    assert (heads.predict(recorded.x, direct=True)[0].argmax(1) == truth).all()
    room = everything.where(lambda c: c.acoustic is not None)
    room_truth = np.array([labels.index(room.clips[c].genre) for c in room.clip_index])
    assert (heads.predict(room.x)[0].argmax(1) == room_truth).mean() > (
        heads.predict(room.x, direct=True)[0].argmax(1) == room_truth).mean()
    np.testing.assert_array_equal(heads.predict(recorded.x, direct=True)[1], heads.predict(recorded.x)[1])  # music
    assert not fit_heads(everything, everything, labels, replace(cfg, direct_head=False)).has_direct
    assert not fit_heads(everything, everything, labels, replace(cfg, room_detector=False)).has_room_detector


def test_the_room_detector_tells_room_copies_from_recordings_and_weighs_the_heads_by_it():
    """A room that colours every clip the same way (a reverberant floor) and also moves each genre toward another's
    sound: the detector learns the colour, so recordings read the direct head and room copies the room head."""
    rng = np.random.default_rng(2)
    labels = ("a", "b", "c")
    centres, colour = rng.normal(0, 3, size=(3, 8)), rng.normal(0, 3, size=8)
    clips, acts = _tracks_and_room_copies(rng, labels, 30, centres,
                                          lambda k: colour + 0.5 * centres[(k + 1) % 3] + 0.5 * centres[k])
    for i in range(6):  # speech, recorded and through the room: the detector learns the room, not the music
        clips.append(Clip(f"s{i}", None, False, "speech", f"s{i}", Path("s")))
        acts.append({"b:p": rng.normal(0, 1, size=(2, 8)).astype(np.float32)})
        clips.append(Clip(f"s{i}@room", None, False, "speech", f"s{i}", Path("s"), acoustic=("room", 0)))
        acts.append({"b:p": (colour + rng.normal(0, 1, size=(2, 8))).astype(np.float32)})
    cfg = HeadConfig(features=("b:p",), music_features=("b:p",))
    everything = WindowSet.build(clips, acts, cfg.features)
    heads = fit_heads(everything.where(lambda c: c.genre is not None), everything, labels, cfg)
    assert heads.has_room_detector and heads.room_w.shape == heads.mean.shape
    recorded, room = (everything.where(lambda c, r=r: (c.acoustic is not None) == r) for r in (False, True))
    assert (heads.room(recorded.x) < 0.5).all() and (heads.room(room.x) > 0.5).all()
    genre = [part.where(lambda c: c.genre is not None) for part in (recorded, room)]
    for part, read in zip(genre, ("direct", "room"), strict=True):  # each window nearer the head for its side
        right, other = (heads.predict(part.x, direct=d)[0] for d in (read == "direct", read != "direct"))
        heard = heads.predict_heard(part.x)
        assert (np.abs(heard - right).sum(1) < np.abs(heard - other).sum(1)).all()
        truth = np.array([labels.index(part.clips[c].genre) for c in part.clip_index])
        assert (heard.argmax(1) == truth).mean() >= (other.argmax(1) == truth).mean()
    assert not fit_heads(everything.where(lambda c: c.genre is not None), everything, labels,
                         replace(cfg, room_detector=False)).has_room_detector
    np.testing.assert_allclose(weigh_heads(np.eye(3)[[0]], np.eye(3)[[1]], np.array([0.25])), [[0.25, 0.75, 0]])


def test_the_shipped_recipe_reads_both_of_the_wheels_networks():
    # the card's Choices: the MagnaTagATune network's pools beside the Million Song one's; the first names the tags
    assert HeadConfig().backbones == ("MSD_musicnn", "MTT_musicnn")
    assert HeadConfig().features == ("MSD_musicnn:mean_pool", "MSD_musicnn:max_pool", "MSD_musicnn:penultimate",
                                     "MTT_musicnn:mean_pool", "MTT_musicnn:max_pool")


def test_embeddings_are_cached_per_backbone_so_adding_one_reuses_the_other(backbones, corpus_dirs, tmp_path):
    data, _ = corpus_dirs
    clips = genre_clips(data, GTZAN_GENRES)[:2]
    hop, cache = hop_frames(MUSICNN_DSP, 1.0), tmp_path / "cache"
    _, one, _ = embed_clips(clips, {"MSD_musicnn": backbones["MSD_musicnn"]}, MUSICNN_DSP, N_FRAMES, hop, cache)
    assert len(list(cache.glob("*.npz"))) == 2
    for entry in cache.glob("*.npz"):  # written an hour ago
        os.utime(entry, (entry.stat().st_atime, entry.stat().st_mtime - 3600))
    read_again = time.time() - 1
    _, both, _ = embed_clips(clips, backbones, MUSICNN_DSP, N_FRAMES, hop, cache)
    assert len(list(cache.glob("*.npz"))) == 4  # only the new backbone's were computed
    # a hit is a use: --prune-cache keeps what a run read, not only what it wrote
    assert all(entry.stat().st_mtime >= read_again for entry in cache.glob("*.npz"))
    for a, b in zip(one, both, strict=True):
        assert set(b) == {f"{n}:{p}" for n in backbones for p in PARTS}
        np.testing.assert_array_equal(a["MSD_musicnn:penultimate"], b["MSD_musicnn:penultimate"])
        assert not np.allclose(b["MSD_musicnn:penultimate"], b["MTT_musicnn:penultimate"])  # two networks


def test_a_room_copy_is_cached_apart_for_each_bank_it_was_drawn_from(backbones, corpus_dirs, tmp_path):
    """The same clip, chain configuration and copy, played through banks drawn from other noise recordings: its
    cached embedding must not be reused (it was, when the key named the configuration alone)."""
    data, _ = corpus_dirs
    cfg = replace(TRAIN, p_noise=1.0, noise_snr_db=(0.0, 0.0), n_rooms=2)  # the noise decides the copy
    clip = heard_through(genre_clips(data, GTZAN_GENRES)[0], cfg, 0)
    banks = {}
    for name, seed in (("a", 1), ("b", 2)):  # the same names and groups, other sounds
        (tmp_path / name).mkdir()
        rng = np.random.default_rng(seed)
        for i in range(8):
            sf.write(tmp_path / name / f"noise{i}.wav", (0.1 * rng.standard_normal(3 * RATE)).astype(np.float32), RATE)
        banks[name] = [(tmp_path / name / f"noise{i}.wav", f"machine{i}") for i in range(8)]
    msd, hop, cache = {"MSD_musicnn": backbones["MSD_musicnn"]}, hop_frames(MUSICNN_DSP, 1.0), tmp_path / "cache"
    got = []
    for name in ("a", "b", "a"):
        chains = {cfg.fingerprint(): Chain(cfg, build_banks(cfg, tmp_path / "banks", banks[name], [], None))}
        got.append(embed_clips([clip], msd, MUSICNN_DSP, N_FRAMES, hop, cache, 0, None, chains)[1][0])
    assert len(list(cache.glob("*.npz"))) == 2
    assert not np.allclose(got[0]["MSD_musicnn:mean_pool"], got[1]["MSD_musicnn:mean_pool"])
    np.testing.assert_array_equal(got[0]["MSD_musicnn:mean_pool"], got[2]["MSD_musicnn:mean_pool"])
    with pytest.raises(ValueError, match="was not given"):
        embed_clips([clip], msd, MUSICNN_DSP, N_FRAMES, hop, cache)


def test_exported_graph_equals_backbones_plus_heads(backbones, corpus_dirs, tmp_path):
    """What the daemon runs (ONNX, raw log-mel in) equals the trainer's heads on both backbones' activations."""
    from dataclasses import replace

    from genrecast.dsp import ModelSpec

    data, other = corpus_dirs
    clips = genre_clips(data, GTZAN_GENRES)[:3] + nonmusic_clips(other)[:2]
    hop = hop_frames(MUSICNN_DSP, 1.0)
    windows = [read_clip_windows(c, MUSICNN_DSP, N_FRAMES, hop) for c in clips]
    acts = [{f"{name}:{p}": v for name, b in backbones.items() for p, v in backbone_activations(b, w).items()}
            for w in windows]
    cfg = HeadConfig()
    everything = WindowSet.build(clips, acts, cfg.features)
    heads = fit_heads(everything.where(lambda c: c.genre is not None), everything, GTZAN_GENRES, cfg)
    heads.temperature = 1.7
    # a direct head's weights as the trainer would give it (its own temperature baked in too)
    turn = np.roll(np.arange(len(GTZAN_GENRES)), 1)  # each genre's weights on the next one's row
    heads.direct_w, heads.direct_b, heads.direct_temperature = heads.genre_w[turn], heads.genre_b[turn], 0.8
    heads.room_w, heads.room_b = heads.genre_w[0] - heads.genre_w[1], 0.3  # and a room detector's
    spec = replace(ModelSpec(name="t", version="1"), dsp=MUSICNN_DSP, window_seconds=WINDOW_SECONDS,
                   music_threshold=0.5, tags=MSD_TAGS, tag_origin=TAG_ORIGIN["MSD_musicnn"], tag_threshold=0.3,
                   direct_head=True, room_detector=True)
    path = tmp_path / "m.onnx"
    export_onnx(TransferNet(backbones, heads), spec, path)
    model = load_model(path)
    x = np.concatenate(windows)
    out = model.predict(x)
    want_g, want_m = heads.predict(np.concatenate([features(a, cfg.features) for a in acts]))
    np.testing.assert_allclose(out.genre, want_g, atol=2e-4)
    np.testing.assert_allclose(out.music, want_m, atol=2e-4)
    want_direct = heads.predict(np.concatenate([features(a, cfg.features) for a in acts]), direct=True)[0]
    np.testing.assert_allclose(out.direct, want_direct, atol=2e-4)
    assert np.abs(want_direct - want_g).max() > 0.01  # two heads, not one read twice
    want_room = heads.room(np.concatenate([features(a, cfg.features) for a in acts]))
    np.testing.assert_allclose(out.room, want_room, atol=2e-4)
    np.testing.assert_allclose(out.genre_for("auto"), heads.predict_heard(
        np.concatenate([features(a, cfg.features) for a in acts])), atol=3e-4)
    # the tags are the first backbone's own: MSD_musicnn's tag probabilities, as its tagger computes them
    want_tags = 1 / (1 + np.exp(-np.concatenate([a["MSD_musicnn:logits"] for a in acts])))
    assert out.tags.shape == (len(x), 50)
    np.testing.assert_allclose(out.tags, want_tags, atol=2e-4)
    with torch.no_grad():
        g, m, t, *_ = TransferNet(backbones, heads)(torch.from_numpy(x))
    np.testing.assert_allclose(out.genre, g.numpy(), atol=2e-4)
    np.testing.assert_allclose(out.tags, t.numpy(), atol=2e-4)


def test_train_transfer_command_cross_validates_and_exports_both_models(corpus_dirs, tmp_path):
    data, other = corpus_dirs
    ood, rir = tmp_path / "ood", tmp_path / "rir"
    for g, genre in enumerate(("classical", "electronic")):  # a second collection, with a label GTZAN lacks
        (ood / genre).mkdir(parents=True)
        for i in range(2):
            x = _music("classical" if genre == "classical" else "metal", 4.5, 70 + 10 * g + i)
            sf.write(ood / genre / f"emotify_magnatune__{g}{i}.ogg", x, RATE)
    rir.mkdir()
    decay = np.exp(-np.arange(RATE // 2) / (0.05 * RATE)) * np.random.default_rng(0).standard_normal(RATE // 2)
    sf.write(rir / "space.flac", decay.astype(np.float32), RATE)
    out, cache = tmp_path / "run", tmp_path / "c"
    stale = [cache / "0123456789abcdef01234567.npz", cache / "acoustic" / "train-0123456789ab"]  # an older corpus's
    stale[1].mkdir(parents=True)
    np.savez(stale[0], x=np.zeros(3))
    (stale[1] / "noise.wav").write_bytes(b"0" * 1000)
    foreign = [cache / "notes.txt", cache / "flips.npz"]  # not the trainer's (decision_flips writes such a cache)
    for entry in stale + foreign:
        if not entry.exists():
            entry.write_text("mine")
        os.utime(entry, (time.time() - 86400, time.time() - 86400))
    proc = subprocess.run(
        [sys.executable, "-m", "genrecast", "train-transfer", "--data", str(data), "--nonmusic", str(other),
         "--ood", str(ood), "--rir", str(rir), "--augment", "1", "--hold-out", "2",
         "--backbone", str(WHEEL), "--folds", "2", "--fast", "--fast-epochs", "2",
         "--synthetic-noise", "1", "--fast-synthetic-noise", "1", "--fast-seeds", "3,4",
         "--cache", str(cache), "--prune-cache", "--out", str(out), "--version", "9.9.9", "--fast-version", "9.9.10"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # --prune-cache: the entries this run did not use are gone, its own and other files kept
    assert f"cache {cache}: removed 2 entries this run did not use" in proc.stdout
    assert not any(entry.exists() for entry in stale) and all(entry.read_text() == "mine" for entry in foreign)
    assert len(list(cache.glob("*.npz"))) > 16 and len(list((cache / "acoustic").iterdir())) == 2  # train, bench
    assert "embedded 16 genre tracks" in proc.stdout and "1 skipped" in proc.stdout
    for name, model_id in (("model.onnx", "genrecast-gtzan-9.9.9"), ("fast.onnx", "genrecast-gtzan-fast-9.9.10")):
        model = load_model(out / name)
        assert model.model_id == model_id and model.spec.dsp == MUSICNN_DSP and model.spec.music_threshold == 0.5
        assert model.spec.n_frames == N_FRAMES
        # the transfer graph carries the backbone's tags; the distilled student has none
        assert model.spec.tags == (MSD_TAGS if name == "model.onnx" else ())
        # and a direct genre head, for audio heard as recorded, and a room detector; the student has the one head
        assert model.spec.direct_head == model.spec.room_detector == (name == "model.onnx")
    cv = json.loads((out / "cv.json").read_text())
    rows = cv["oof"]
    assert cv["spec"]["labels"] == [*GTZAN_GENRES, "electronic"]
    assert sorted(r["clip"] for r in rows if r["genre"]) == sorted(
        [c.clip_id for c in genre_clips(data, GTZAN_GENRES)] + [f"ood/{g}/emotify_magnatune__{i}{j}" for i, g in
                                                                enumerate(("classical", "electronic")) for j in (0, 1)])
    assert {r["fold"] for r in rows} == {0, 1}
    assert cv["cv"]["genre"]["all"]["n_tracks"] == 16 and cv["cv"]["music"]["speech"]["clips"] == 4
    assert cv["cv"]["genre"]["gtzan"]["n_tracks"] == 12 and cv["cv"]["genre"]["ood"]["n_tracks"] == 4
    # every clip once more through a held-out room, scored by the fold that held it out
    assert cv["cv"]["room"]["genre"]["all"]["n_tracks"] == 16 and cv["cv"]["room"]["music"]["speech"]["clips"] == 4
    # the direct head's figures beside the genre head's, clean and through the held-out rooms
    direct = cv["cv"]["direct"]
    assert direct["genre"]["all"]["n_tracks"] == 16 and direct["room"]["genre"]["all"]["n_tracks"] == 16
    assert "the direct genre head (recorded clips alone)" in proc.stdout
    # and both weighed by the room detector, with how many clips it calls heard through a room
    heard = cv["cv"]["heard"]
    assert heard["genre"]["all"]["n_tracks"] == 16 and heard["room"]["genre"]["all"]["n_tracks"] == 16
    assert set(heard["called_room"]) == {"recorded", "room"}
    assert all(0 <= share <= 1 for part in heard["called_room"].values() for share in part.values())
    assert "weighed by the room detector (heard = auto)" in proc.stdout
    assert cv["spec"]["training"]["heads"]["room_detector"] is True
    across = cv["cv"]["cross_source"]
    assert across["gtzan_to_ood"]["labels"] == ["blues", "classical", "metal"]
    assert across["gtzan_to_ood"]["clean"]["n_tracks"] == 2  # only the genres GTZAN has: classical
    assert across["gtzan_to_ood"]["direct"]["clean"]["n_tracks"] == 2
    assert across["gtzan_to_ood"]["heard"]["clean"]["n_tracks"] == 2
    assert across["ood_to_gtzan"]["direct"]["room"]["n_tracks"] == 4
    assert cv["spec"]["training"]["direct_temperature"] > 0 and cv["spec"]["training"]["heads"]["direct_head"]
    assert len(cv["cv"]["direct_temperatures"]) == 2  # one per fold, as the room head's
    assert any("(the room head)" in note for note in cv["spec"]["training"]["caveats"])
    assert sum(note.startswith("heard = auto") for note in cv["spec"]["training"]["caveats"]) == 2
    assert across["ood_to_gtzan"]["labels"] == ["classical", "electronic"]
    assert across["ood_to_gtzan"]["room"]["n_tracks"] == 4  # GTZAN's classical tracks
    training = cv["spec"]["training"]
    assert training["acoustic"]["copies"] == 1 and training["acoustic"]["train"]["name"] == "train"
    assert (training["heads"]["l2"], training["heads"]["music_l2"]) == (0.1, 0.01)  # each head its own penalty
    assert "CC BY-NC-SA" in training["data"]["ood_licence"]
    assert training["held_out"] == {"fold": 2, "folds": 2, "seed": 0} and "never see fold 2/2" in proc.stdout
    assert cv["cv"]["music"]["synthetic"]["clips"] == 6  # one generated clip per noise kind
    assert (out / "synthetic-noise" / "synthetic" / "synthetic__brown_000.flac").is_file()
    assert training["backbone"] == "MSD_musicnn + MTT_musicnn (frozen)"
    assert training["heads"]["features"][-1] == "MTT_musicnn:max_pool"
    licence = training["backbone_licence"]
    assert licence.startswith("musicnn 0.1.0") and "Million Song" in licence and "MagnaTagATune" in licence
    fast = json.loads((out / "fast_cv.json").read_text())
    assert fast["cv"]["genre"]["all"]["n_tracks"] == 16
    assert fast["cv"]["room"]["genre"]["all"]["n_tracks"] == 16  # the students through the held-out rooms too
    assert fast["spec"]["training"]["config"]["window_stride"] == 1  # the shipped recipe's, by default
    assert fast["spec"]["training"]["config"]["widths"] == [24, 48, 96, 192]
    # the student's draws: every seed cross-validated on --seed's folds, the first one's students exported
    assert fast["spec"]["training"]["config"]["seed"] == 3
    by_seed = fast["spec"]["training"]["cv_by_seed"]
    assert [f["seed"] for f in by_seed] == [3, 4]
    assert by_seed[0]["clean"] == fast["cv"]["genre"]["all"]["track_accuracy"]
    assert by_seed[1]["room"] is not None and "fast variant over seeds 3: " in proc.stdout
    assert fast["spec"]["training"]["teacher"] == "genrecast-gtzan-9.9.9"  # --fast-version names the student only
    assert fast["spec"]["training"]["teacher_sha256"] == hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    # distilled on Magnatune's excerpts too: their licence is the student's metadata's as well (it had none)
    assert "CC BY-NC-SA" in fast["spec"]["training"]["data"]["ood_licence"]
    assert "ISC licence" in fast["spec"]["training"]["teacher_licence"]
    # the student's own generated noise (6 kinds, each as made and through one training room) is never scored
    assert "the student also hears 12 generated noise clips" in proc.stdout
    assert (out / "fast-synthetic-noise" / "synthetic" / "student__brown_000.flac").is_file()
    assert fast["spec"]["training"]["own_synthetic_noise_per_kind"] == 1
    assert fast["cv"]["music"]["synthetic"]["clips"] == 6 and fast["cv"]["room"]["music"]["synthetic"]["clips"] == 6
    for k in (1, 2):  # each fold's student, for benches on the fold it never heard
        held = load_model(out / f"fast-fold{k}.onnx").spec.training["held_out"]
        assert held == {"fold": k, "folds": 2, "seed": 0}
    # room_bench reads, keeps and deals the clips as the run did, so its fold is the one a --hold-out model never
    # heard (dealt from every file, the half-second clip's speaker moved other speakers between folds)
    corpus = read_corpus(data, other, ood, out / "synthetic-noise")
    hop = hop_frames(MUSICNN_DSP, 1.0)
    (g, _), (n, skipped) = (usable(c, MUSICNN_DSP, N_FRAMES, hop) for c in (corpus.genre, corpus.other))
    assert [c.clip_id for c in skipped] == ["speech/fsdd__9_dan_1"]
    for k in (0, 1):
        assert {c.clip_id for c in held_out(g, n, 2, k, 0)} == {r["clip"] for r in rows if r["fold"] == k}


def test_train_transfer_names_a_missing_backbone(corpus_dirs, tmp_path):
    data, other = corpus_dirs
    proc = subprocess.run(
        [sys.executable, "-m", "genrecast", "train-transfer", "--data", str(data), "--nonmusic", str(other),
         "--backbone", str(tmp_path / "nope.whl"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "nope.whl" in proc.stderr and "make setup" in proc.stderr


@pytest.mark.parametrize(("option", "value", "wanted"), [
    ("--folds", "1", "a whole number >= 2"), ("--folds", "five", "a whole number >= 2"),
    ("--augment", "-1", "a whole number >= 0"), ("--threads", "0", "a whole number >= 1"),
    ("--l2", "-0.1", "a finite number >= 0"), ("--copy-weight", "nan", "a finite number >= 0"),
    ("--music-threshold", "1", "a number strictly between 0 and 1"),
    ("--features", "MSD_musicnn:mean", "backbone:part (MSD_musicnn, MTT_musicnn; mean_pool, max_pool, penultimate, "
                                       "logits)"),
    ("--tag-threshold", "0", "a number strictly between 0 and 1"),
    ("--seed", "-5", "a whole number >= 0"),  # a traceback from the noise generator, after the data was read
])
def test_train_transfer_rejects_a_bad_option_in_one_line_naming_it(option, value, wanted, tmp_path, capsys):
    # checked before any audio is read or any run folder made, so nothing is half-written
    with pytest.raises(SystemExit) as exit_:
        main(["train-transfer", "--data", str(tmp_path), "--nonmusic", str(tmp_path), option, value,
              "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and f"argument {option}: expected {wanted}, got '{value}'" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("case", ["no ood folder", "no rir folder", "no impulse response", "no tracks",
                                  "fewer tracks than folds", "no speech or noise", "no ood audio", "out is a file",
                                  "cache cannot be made", "fast flag without --fast", "fast crops without --fast"])
def test_train_transfer_names_bad_data_before_making_the_run_folder(case, corpus_dirs, tmp_path):
    """Each of these once failed after minutes of embedding, with a traceback and a half-written run folder."""
    data, other = corpus_dirs
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio here")
    extra, wanted = {
        "no ood folder": (["--ood", str(tmp_path / "absent")], f"--ood {tmp_path / 'absent'}: no such data folder"),
        "no rir folder": (["--rir", str(tmp_path / "absent")], f"--rir {tmp_path / 'absent'}: no such data folder"),
        "no impulse response": (["--rir", str(empty)], f"--rir {empty}: no impulse responses (*.flac) in it"),
        "no tracks": (["--data", str(empty)], f"--data {empty}: 0 GTZAN tracks"),
        "fewer tracks than folds": (["--folds", "20"], "fewer than the 20 folds"),
        # each of these was taken in silence (the music head then learnt from generated noise alone), or gave a
        # traceback after the data was read
        "no speech or noise": (["--nonmusic", str(data)], f"--nonmusic {data}: no audio in speech/ or noise/"),
        "no ood audio": (["--ood", str(empty)], f"--ood {empty}: no <label>/<name>.<ext> audio in it"),
        "out is a file": (["--out", str(empty / "notes.txt")], f"--out {empty / 'notes.txt'}: cannot make this folder"),
        "cache cannot be made": (["--cache", str(empty / "notes.txt" / "c")],
                                 f"--cache {empty / 'notes.txt' / 'c'}: cannot make this folder"),
        "fast flag without --fast": (["--fast-epochs", "2"], "--fast-epochs shapes the fast variant, which only"),
        "fast crops without --fast": (["--fast-crops", "4"], "--fast-crops shapes the fast variant, which only"),
    }[case]
    proc = subprocess.run(
        [sys.executable, "-m", "genrecast", "train-transfer", "--data", str(data), "--nonmusic", str(other),
         "--backbone", str(WHEEL), "--out", str(tmp_path / "o"), *extra],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert wanted in proc.stderr
    assert not (tmp_path / "o").exists()


def test_train_transfer_neither_overwrites_a_run_nor_trains_on_unreadable_tracks(corpus_dirs, tmp_path):
    """Rerunning into a finished run's folder overwrote its model.onnx and cv.json in silence; tracks named like
    GTZAN's that none could read were embedded as 0 tracks, and training went on with no genre at all."""
    data, other = corpus_dirs
    done = tmp_path / "done"
    done.mkdir()
    (done / "model.onnx").write_bytes(b"a finished run's")
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(3):
        (junk / f"blues.{i:05d}.wav").write_text("not audio")

    def train(*args):
        return subprocess.run([sys.executable, "-m", "genrecast", "train-transfer", "--nonmusic", str(other),
                               "--backbone", str(WHEEL), "--folds", "2", "--augment", "0", "--no-room-figures",
                               "--synthetic-noise", "0", "--cache", str(tmp_path / "c"), *args],
                              capture_output=True, text=True, timeout=300)

    proc = train("--data", str(data), "--out", str(done))
    assert proc.returncode == 2 and f"--out {done}: holds a run's model.onnx already" in proc.stderr, proc.stderr
    assert (done / "model.onnx").read_bytes() == b"a finished run's"
    proc = train("--data", str(junk), "--out", str(tmp_path / "o"), "--synthetic-noise", "1")
    assert proc.returncode == 2 and f"--data {junk}: 0 readable genre tracks, fewer than the 2 folds" in proc.stderr, \
        proc.stderr[-2000:]
    assert not (tmp_path / "o").exists()  # the folder this run made, and its generated noise, are gone again


def test_train_transfer_names_a_hold_out_fold_that_does_not_exist(corpus_dirs, tmp_path):
    data, other = corpus_dirs
    proc = subprocess.run(
        [sys.executable, "-m", "genrecast", "train-transfer", "--data", str(data), "--nonmusic", str(other),
         "--folds", "3", "--hold-out", "4", "--backbone", str(WHEEL), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--hold-out 4 names no fold: there are 3 (--folds)" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_file_repeated_under_another_name_is_left_out_once(tmp_path):
    # one recording in two folds would be tested on what the heads trained on
    from genrecast.training.corpus import genre_clips, without_repeats

    (tmp_path / "rock").mkdir()
    x = _music("metal", 2.5, 1)
    sf.write(tmp_path / "rock" / "rock.00001.flac", x, RATE)
    (tmp_path / "rock" / "rock.00007.flac").write_bytes((tmp_path / "rock" / "rock.00001.flac").read_bytes())
    sf.write(tmp_path / "rock" / "rock.00002.flac", _music("metal", 2.5, 2), RATE)
    kept, repeats = without_repeats(genre_clips(tmp_path, ("rock",)))
    assert [c.clip_id for c in kept] == ["rock.00001", "rock.00002"]
    assert [(c.clip_id, why) for c, why in repeats] == [
        ("rock.00007", f"the same file as {tmp_path / 'rock' / 'rock.00001.flac'}")]


def test_synthetic_noise_is_seeded_bounded_and_every_kind(tmp_path):
    from genrecast.training.synth_noise import KINDS, RATE, noise, write_synthetic

    for kind in KINDS:
        a, b = noise(kind, np.random.default_rng(3)), noise(kind, np.random.default_rng(3))
        assert np.array_equal(a, b) and a.shape == (4 * RATE,) and a.dtype == np.float32
        assert 10 ** (-30 / 20) - 1e-6 <= np.abs(a).max() <= 10 ** (-3 / 20) + 1e-6, kind
    with pytest.raises(ValueError, match="unknown noise kind"):
        noise("thunder", np.random.default_rng(0))
    one, two = write_synthetic(tmp_path / "a", 2, seed=1), write_synthetic(tmp_path / "b", 2, seed=1)
    files = sorted((one / "synthetic").iterdir())
    assert len(files) == 2 * len(KINDS)
    assert all(f.read_bytes() == (two / "synthetic" / f.name).read_bytes() for f in files)
    clips = nonmusic_clips(one)
    assert {c.kind for c in clips} == {"synthetic"} and not any(c.is_music for c in clips)
    assert len({c.group for c in clips}) == len(clips)
    # another prefix is another set: no clip id or group shared with the first, though both lie in synthetic/
    other = nonmusic_clips(write_synthetic(tmp_path / "c", 2, seed=2, prefix="student"))
    assert len(other) == len(clips) and {c.kind for c in other} == {"synthetic"}
    assert not {c.clip_id for c in other} & {c.clip_id for c in clips}
    assert not {c.group for c in other} & {c.group for c in clips}


def test_a_fast_variants_caveat_names_both_collections_it_learned_from():
    """The student's caveats said it learned from "589 GTZAN tracks (the ten genres ...)": 388 GTZAN tracks and 201
    Magnatune excerpts, eleven labels."""
    from genrecast.training.transfer_cli import _caveats

    score = {"track_accuracy": 0.5, "n_tracks": 0}
    cv = {"folds": 5, "genre": {"all": {**score, "n_tracks": 589}, "gtzan": {**score, "n_tracks": 388},
                                "ood": {**score, "n_tracks": 201}}}
    said = " ".join(_caveats(cv, "fast variant"))
    assert "trained on excerpts of 388 GTZAN tracks (" in said and "and 201 Magnatune excerpts (" in said, said
    del cv["genre"]["ood"]
    assert "trained on excerpts of 388 GTZAN tracks (" in " ".join(_caveats(cv, "fast variant"))


def test_room_bench_scores_a_fold_clean_and_through_rooms_and_says_so_in_its_last_line(corpus_dirs, tmp_path):
    """``benchmarks/room_bench.py`` end to end on a tiny corpus and model: its fold, its table and its last line,
    whose clean accuracy is the one ``classify`` gives the fold's genre tracks."""
    from genrecast.daemon.classify_cmd import classify_file
    from genrecast.training.acoustic import BENCH, bank_id, banks_hold
    from genrecast.training.corpus import bank_sources, read_corpus, usable
    from tiny_model import build_tiny_model, tagged_spec

    data, other = corpus_dirs
    ood = tmp_path / "ood"
    (ood / "classical").mkdir(parents=True)
    for i in range(2):
        sf.write(ood / "classical" / f"mag{i}.wav", _music("classical", 4.5, 70 + i), RATE)
    model = build_tiny_model(tmp_path / "tiny.onnx", tagged_spec())
    proc = subprocess.run([sys.executable, str(Path(__file__).parent.parent / "benchmarks" / "room_bench.py"),
                           "--model", str(model), "--data", str(data), "--nonmusic", str(other), "--ood", str(ood),
                           "--folds", "2", "--cache", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    corpus = read_corpus(data, other, ood, tmp_path / "cache" / "synthetic-noise")  # the noise the bench generated
    hop = hop_frames(MUSICNN_DSP, 1.0)
    genre, rest = (usable(c, MUSICNN_DSP, N_FRAMES, hop)[0] for c in (corpus.genre, corpus.other))
    fold = held_out(genre, rest, 2, 0, 0)
    tracks = [c for c in fold if c.genre is not None]
    # the bench's noises and voices: the fold's own (a --hold-out 1 model never heard them), not every fold's
    banks = bank_id(BENCH, *bank_sources([c for c in fold if c.genre is None]), None)
    assert banks != bank_id(BENCH, *bank_sources(rest), None)
    assert lines[0] == (f"room bench: fold 1/2 (seed 0): {len(tracks)} genre tracks, {len(fold) - len(tracks)} other "
                        f"clips; chain bench {BENCH.fingerprint()}, banks {banks}")
    noise, speech = bank_sources([c for c in fold if c.genre is None])
    kept = [sum(banks_hold(BENCH, g) for _, g in bank) for bank in (noise, speech)]
    assert lines[1] == (f"  the chain's noises and voices: {kept[0]} noise and {kept[1]} speech recordings of fold 1, "
                        "none used by training chains")
    tiny = load_model(model)
    right = [classify_file(tiny, str(c.path), 1.0).genre == c.genre for c in tracks]
    fields = dict(kv.split("=") for kv in lines[-1].removeprefix("room: ").split())
    assert list(fields) == ["model", "clean_acc", "room_acc", "ratio", "no_music_in_room", "music_kept_in_room"]
    assert fields["model"] == tiny.model_id and float(fields["clean_acc"]) == pytest.approx(np.mean(right), abs=5e-4)
    assert float(fields["ratio"]) == pytest.approx(float(fields["room_acc"]) / float(fields["clean_acc"]), abs=2e-3)
    assert all(0.0 <= float(fields[k]) <= 1.0 for k in ("room_acc", "no_music_in_room", "music_kept_in_room"))
    table = {ln.split()[0]: ln.split() for ln in lines if ln.strip() and ln.split()[0] in {c.genre for c in tracks}}
    assert sum(int(row[1]) for row in table.values()) == len(tracks)  # every genre of the fold, its tracks counted


def test_no_music_is_also_scored_on_the_clips_whose_sound_training_never_held(tmp_path):
    """The training chain's banks are drawn from half of all groups, not per fold: a held-out voice could be
    background in its own fold's training copies, and the card's no_music figures were half made of such clips."""
    from genrecast.training.acoustic import banks_hold
    from genrecast.training.corpus import Clip
    from genrecast.training.transfer_report import summarise

    groups = [f"speaker{i}" for i in range(40)]
    held = [g for g in groups if banks_hold(TRAIN, g)]
    assert 0 < len(held) < len(groups)  # half, by a stable hash
    clips = [Clip(f"speech/{g}", None, False, "speech", g, tmp_path / f"{g}.flac", source="nonmusic") for g in groups]
    # every clip the banks hold is called no_music; of the others, the first two are called music
    unheard = [g for g in groups if g not in held]
    music = [np.array([0.9 if g in unheard[:2] else 0.1]) for g in groups]
    probs = [np.full((1, 2), 0.5) for _ in groups]
    out = summarise(clips, probs, music, ("blues", "rock"), 0.5,
                    heard_in_training=lambda c: banks_hold(TRAIN, c.group))["music"]["speech"]
    assert (out["clips"], out["no_music_clips"]) == (40, 38)
    assert (out["unheard_clips"], out["unheard_no_music_clips"]) == (len(unheard), len(unheard) - 2)
    # without the question, the figure is not made up
    assert "unheard_clips" not in summarise(clips, probs, music, ("blues", "rock"), 0.5)["music"]["speech"]
