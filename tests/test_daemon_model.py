"""Model loading (the metadata contract) and ``genrecast classify``."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
from daemon_helpers import genrecast, write_tones
from tiny_model import build_tiny_model, tiny_spec

from daemon.model import DEFAULT_MODEL, load_model
from dsp import DEFAULT_DSP, GTZAN_GENRES, ModelSpecError


def relabel(path, labels):
    """A 10-output graph whose metadata promises other labels."""
    model = onnx.load(str(path))
    model.metadata_props[0].value = tiny_spec(labels=labels).to_json()
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


def test_loads_spec_and_predicts_probabilities(model_path):
    model = load_model(model_path)
    assert model.spec.labels == GTZAN_GENRES and model.model_id == "tiny-test-1"
    windows = np.random.default_rng(0).normal(-5, 3, (3, 128, model.spec.n_frames)).astype(np.float32)
    p = model.predict(windows)
    assert p.shape == (3, 10) and np.allclose(p.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: build_tiny_model(p, with_metadata=False), "no 'genrecast.spec' metadata"),
        (lambda p: build_tiny_model(p, tiny_spec(dsp=replace(DEFAULT_DSP, n_mels=64))), "n_mels: model 64 vs 128"),
        (lambda p: build_tiny_model(p, n_frames=100), "does not fit [None, 128, 126]"),
        (lambda p: relabel(build_tiny_model(p), ("a", "b")), "does not fit [None, 2]"),
        (lambda p: p.write_bytes(b"not an onnx file"), "not a loadable ONNX model"),
    ],
    ids=["no-metadata", "other-features", "window-length", "label-count", "garbage"],
)
def test_refuses_models_that_break_the_contract(tmp_path, build, message):
    path = tmp_path / "bad.onnx"
    build(path)
    with pytest.raises(ModelSpecError) as err:
        load_model(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_malformed_spec_json_is_refused(tmp_path):
    path = build_tiny_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    model.metadata_props[0].value = '{"format": 1, "name": "x"}'
    onnx.save(model, str(path))
    with pytest.raises(ModelSpecError, match="malformed model spec"):
        load_model(path)


def test_missing_default_model_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr("daemon.model.DEFAULT_MODEL", tmp_path / "models" / "genrecast-gtzan.onnx")
    with pytest.raises(ModelSpecError, match="no such file.*genrecast train"):
        load_model()
    assert DEFAULT_MODEL.name == "genrecast-gtzan.onnx" and DEFAULT_MODEL.parent.name == "models"


def test_classify_json_text_and_bad_files(model_path, tmp_path):
    rock = write_tones(tmp_path / "rock.wav", [9] * 6, rate=44100, subtype="FLOAT")
    short = write_tones(tmp_path / "short.wav", [9] * 2)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....WAVEfmt garbage")
    proc = genrecast("classify", "--json", "--model", str(model_path), str(rock), str(short), str(junk),
                     str(tmp_path / "missing.wav"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    (line,) = out.splitlines()
    result = json.loads(line)
    assert result["file"] == str(rock) and result["genre"] == "rock" and result["probability"] > 0.9
    assert set(result["probabilities"]) == set(GTZAN_GENRES) and result["windows"] == 4
    assert result["model_id"] == "tiny-test-1"
    errors = err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("genrecast classify: error: ") for e in errors)
    assert "shorter than one 3 s window" in errors[0] and "missing.wav: no such file" in errors[2]

    proc = genrecast("classify", "--model", str(model_path), str(rock))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split("\t")[:2] == [str(rock), "rock"]


@pytest.mark.parametrize(("flag", "value"), [("--hop", "inf"), ("--hop", "nan"), ("--hop", "61"), ("--threads", "-1"),
                                             ("--threads", "0")])
def test_classify_refuses_bad_hop_and_threads_in_one_line(model_path, tmp_path, flag, value):
    wav = write_tones(tmp_path / "rock.wav", [9] * 4)
    proc = genrecast("classify", "--model", str(model_path), flag, value, str(wav))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and out == ""
    assert err.startswith(f"genrecast classify: error: {flag} must be ") and err.count("\n") == 1, err


def test_classify_real_gtzan_excerpt_runs(model_path, gtzan_dir):
    track = next(iter(sorted(gtzan_dir.rglob("*.flac"))), None) or pytest.skip("no FLAC under the GTZAN dir")
    proc = genrecast("classify", "--json", "--model", str(model_path), str(track))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["windows"] >= 12 and abs(sum(result["probabilities"].values()) - 1) < 1e-3


def test_run_refuses_a_bad_model_in_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    wav = write_tones(tmp_path / "a.wav", [1] * 4)
    proc = genrecast("run", "--source", f"file:{wav}", "--model", str(bad), "--broker", "mqtt://127.0.0.1:9")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.count("\n") == 1 and err.startswith("genrecast run: error: model ")


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk", b"\x00" * 1000],
                         ids=["empty", "riff", "zeros"])
def test_run_refuses_a_corrupt_file_in_one_line(tmp_path, model_path, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    proc = genrecast("run", "--source", f"file:{bad}", "--model", str(model_path), "--broker", "mqtt://127.0.0.1:9")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.count("\n") == 1 and err.startswith(f"genrecast run: error: {bad}: ")
