"""The trainer's shared pieces (folds by track, temperature scaling, scores, the distilled student's export, the
corpus reading GTZAN's .au) and ``genrecast evaluate`` end to end on a real (tiny) ONNX model."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from daemon_helpers import GENRECAST, WAIT, write_tones
from genrecast.daemon.classify_cmd import classify_file
from genrecast.daemon.model import load_model
from genrecast.dsp import GTZAN_GENRES, DSPConfig, ModelSpec
from genrecast.training.calibrate import expected_calibration_error, fit_temperature, nll
from genrecast.training.corpus import genre_clips, read_clip_windows
from genrecast.training.distill import FastNet
from genrecast.training.evaluate import clopper_pearson, score
from genrecast.training.evaluate_cmd import labelled_files
from genrecast.training.export import export_onnx
from genrecast.training.musicnn import MUSICNN_DSP, N_FRAMES, WINDOW_SECONDS
from genrecast.training.split import Split, SplitError, Track, kfold_split
from tiny_model import build_tiny_model, tiny_spec

from genrecast.cli import main

GENRES = ("blues", "classical", "metal")

# --- folds -----------------------------------------------------------------------------------------------------


def _tracks(n_per_genre: int) -> list[Track]:
    return [Track(f"{g}.{i:05d}", g, Path("/nowhere")) for g in GENRES for i in range(n_per_genre)]


def test_kfold_tests_every_track_exactly_once():
    tracks = _tracks(7)
    splits = [kfold_split(tracks, 4, f, seed=1) for f in range(4)]
    tested = [t for s in splits for t in s.test]
    assert sorted(tested) == sorted(t.track_id for t in tracks)  # each once
    for s in splits:  # Split refuses overlap itself; check every track is used and each genre validated
        assert len(s.train) + len(s.val) + len(s.test) == len(tracks)
        assert {t.split(".")[0] for t in s.val} == set(GENRES)
    assert splits[0] == kfold_split(list(reversed(tracks)), 4, 0, seed=1)  # order of discovery does not matter
    assert splits[0] != kfold_split(tracks, 4, 0, seed=2)
    with pytest.raises(SplitError):
        kfold_split(tracks, 4, 4, seed=1)
    with pytest.raises(SplitError, match="both train and test"):
        Split(("blues.1",), (), ("blues.1",))


# --- calibration and scores ------------------------------------------------------------------------------------


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


def test_scores_count_windows_and_decide_tracks_by_mean_probability():
    labels = GTZAN_GENRES
    b, c, m = (labels.index(g) for g in GENRES)

    def probs(*windows):
        out = np.zeros((len(windows), len(labels)))
        out[:, [b, c]] = windows
        return out

    ev = score([("b1", "blues"), ("c1", "classical"), ("m1", "metal")], [
        probs([0.6, 0.4], [0.1, 0.9]),  # windows say blues, classical; the mean says classical (0.65)
        probs([0.2, 0.8], [0.3, 0.7]),  # both right
        probs([0.9, 0.1], [0.8, 0.2]),  # both "blues": wrong
    ], labels)
    assert ev.n_windows == 6 and ev.n_tracks == 3
    assert ev.window_accuracy == pytest.approx(3 / 6) and ev.track_accuracy == pytest.approx(1 / 3)
    assert ev.confusion[b][c] == 1 and ev.confusion[c][c] == 1 and ev.confusion[m][b] == 1
    assert ev.per_genre["classical"].precision == pytest.approx(0.5) and ev.per_genre["classical"].recall == 1.0
    assert ev.per_genre["metal"].f1 == 0.0 and ev.per_genre["metal"].support == 1
    assert [t["predicted"] for t in ev.tracks] == ["classical", "classical", "blues"]
    assert "track accuracy" in ev.table() and json.dumps(ev.to_dict())


def test_clopper_pearson_interval():
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.1871, abs=1e-4) and hi == pytest.approx(0.8129, abs=1e-4)
    assert clopper_pearson(10, 10)[1] == 1.0 and clopper_pearson(0, 10)[0] == 0.0


# --- the distilled student's export ----------------------------------------------------------------------------


@pytest.mark.parametrize("dsp, seconds", [(MUSICNN_DSP, WINDOW_SECONDS), (DSPConfig(n_mels=64), 3.0)],
                         ids=["musicnn-front-end", "another-front-end"])
def test_student_exports_what_torch_computes_with_both_heads(dsp, seconds, tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    student = FastNet(len(GTZAN_GENRES), rng.normal(-4, 1, dsp.n_mels), rng.uniform(0.5, 2, dsp.n_mels), (8, 16),
                      2).eval()
    spec = ModelSpec(name="fast", version="0", dsp=dsp, window_seconds=seconds, music_threshold=0.5)
    export_onnx(student, spec, tmp_path / "fast.onnx")
    loaded = load_model(tmp_path / "fast.onnx")
    assert loaded.spec == spec
    for batch in (1, 5):  # dynamic batch
        x = rng.normal(-5, 2, size=(batch, dsp.n_mels, spec.n_frames)).astype(np.float32)
        with torch.no_grad():
            genre, music = student(torch.from_numpy(x))
        out = loaded.predict(x)
        np.testing.assert_allclose(out.genre, genre.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(out.music, music.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(out.genre.sum(axis=1), 1.0, atol=1e-5)


# --- corpus ----------------------------------------------------------------------------------------------------


def test_original_gtzan_au_files_read_like_wav(tmp_path):
    """The 1000-track GTZAN ships as Sun .au (16-bit big-endian, 22050 Hz): same windows as the same PCM in WAV."""
    x = np.random.default_rng(5).uniform(-0.5, 0.5, 4 * 22050)
    windows = []
    for fmt, ext in (("AU", "au"), ("WAV", "wav")):
        (tmp_path / ext / "jazz").mkdir(parents=True)
        sf.write(tmp_path / ext / "jazz" / f"jazz.00000.{ext}", x, 22050, format=fmt, subtype="PCM_16")
        (clip,) = genre_clips(tmp_path / ext, GTZAN_GENRES)
        assert (clip.clip_id, clip.genre) == ("jazz.00000", "jazz")
        windows.append(read_clip_windows(clip, MUSICNN_DSP, N_FRAMES, 62))
    assert windows[0].shape[0] == 2
    np.testing.assert_array_equal(*windows)


# --- genrecast evaluate ----------------------------------------------------------------------------------------


@pytest.fixture
def labelled(tmp_path) -> Path:
    """Both layouts, a label the tiny model lacks, a noise track, and files that cannot be classified."""
    root = tmp_path / "music"
    for folder in ("blues", "classical", "rock", "electronic"):
        (root / folder).mkdir(parents=True)
    write_tones(root / "blues" / "a.wav", [0] * 4)  # right
    write_tones(root / "blues" / "b.wav", [0] * 5)  # right
    write_tones(root / "classical" / "c.wav", [1] * 4)  # right
    write_tones(root / "rock" / "d.wav", [0] * 4)  # a blues tone: answered blues, wrong
    write_tones(root / "rock" / "e.wav", ["noise"] * 4)  # answered no_music: wrong
    write_tones(root / "jazz.00001.wav", [5] * 4)  # GTZAN's naming, flat: right
    (root / "rock" / "live").mkdir()
    write_tones(root / "rock" / "live" / "g.wav", [9] * 4)  # in an album folder inside rock/: right
    write_tones(root / "untitled.wav", [9] * 4)  # no label at all: left out
    write_tones(root / "electronic" / "f.wav", [0] * 4)  # not one of the model's labels: left out
    (root / "blues" / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(64))
    write_tones(root / "classical" / "short.wav", [1], seconds_each=0.5)  # under 1 s
    (root / "notes.txt").write_text("not audio")
    return root


def test_evaluate_scores_labelled_music_as_classify_answers_it(labelled, tmp_path, capsys):
    model = build_tiny_model(tmp_path / "tiny.onnx", tiny_spec(music_threshold=0.5))
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(model), "--data", str(labelled), "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    left_out = f"left out 2 audio files with no label the model has: 1 at the top of {labelled}, 1 in electronic/"
    assert left_out in printed
    assert "corrupt.wav" in printed and "0.50 s is shorter than the 1 s minimum" in printed
    assert "classify's answer right 5/7 = 0.714" in printed and "answered no_music 1, silence 0" in printed
    # a genre with no track here and none answered: its scores are undefined, not 0.00 (which read as failures)
    assert re.search(r"^country +- +- +- +0 ", printed, re.M), printed
    ev = json.loads(report.read_text())
    assert (ev["tracks"], ev["answer_right"], ev["answered"]) == (7, 5, {"genre": 6, "no_music": 1})
    assert ev["left_out"] == {".": 1, "electronic": 1} and len(ev["skipped"]) == 2
    lo, hi = ev["answer_accuracy_ci95"]
    assert lo < 5 / 7 < hi and ev["genre"]["n_tracks"] == 7
    answers = {t["track_id"]: (t["genre"], t["answer"]) for t in ev["genre"]["tracks"]}
    assert answers == {"blues/a.wav": ("blues", "blues"), "blues/b.wav": ("blues", "blues"),
                       "classical/c.wav": ("classical", "classical"), "rock/d.wav": ("rock", "blues"),
                       "rock/e.wav": ("rock", "no_music"), "jazz.00001.wav": ("jazz", "jazz"),
                       "rock/live/g.wav": ("rock", "rock")}
    tiny = load_model(model)
    for track_id, (_, answer) in answers.items():  # the very answers `genrecast classify` gives
        result = classify_file(tiny, str(labelled / track_id), 1.0)
        assert (result.genre or result.kind) == answer, track_id


def test_labels_come_from_the_nearest_label_folder_then_the_name(labelled):
    found, unlabelled = labelled_files(labelled / "rock", GTZAN_GENRES)  # the folder given is a label too
    assert {p.relative_to(labelled).as_posix(): g for p, g in found.items()} == {
        "rock/d.wav": "rock", "rock/e.wav": "rock", "rock/live/g.wav": "rock"} and not unlabelled
    (labelled / "rock" / "jazz.00002.wav").write_bytes(b"")  # a GTZAN name inside a label folder: the folder wins
    assert labelled_files(labelled / "rock", GTZAN_GENRES)[0][labelled / "rock" / "jazz.00002.wav"] == "rock"


def test_evaluate_refuses_a_folder_with_nothing_to_score_in_one_line(labelled, tmp_path, capsys):
    model = build_tiny_model(tmp_path / "tiny.onnx", tiny_spec())
    assert main(["evaluate", "--model", str(model), "--data", str(labelled / "electronic")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no usable audio labelled with one of the model's labels" in err
    assert main(["evaluate", "--model", str(model), "--data", str(tmp_path / "absent")]) == 2
    assert "no such data folder" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(model), "--data", str(model)]) == 2  # said "no such data folder"
    assert f"{model}: is a file, not a data folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # "" was the current folder: a whole checkout, .venv and all
        main(["evaluate", "--model", str(model), "--data", ""])
    assert exit_.value.code == 2
    assert "argument --data: an empty path (an unset shell variable?)" in capsys.readouterr().err


def test_evaluate_refuses_a_report_it_could_not_write_before_it_classifies(labelled, tmp_path, capsys):
    model = build_tiny_model(tmp_path / "tiny.onnx", tiny_spec())
    # /proc lets even root create no file: a read-only mount is refused the same way, before the work
    for where, why in ((tmp_path, "is a folder, not a file"), (tmp_path / "absent" / "eval.json", "no such folder"),
                       (Path("/proc/genrecast-eval.json"), "not writable")):
        assert main(["evaluate", "--model", str(model), "--data", str(labelled), "--json", str(where)]) == 2
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and why in err and "Traceback" not in err
        assert "classify's answer" not in out  # refused before any track was classified


def test_evaluate_replaces_an_earlier_report_but_no_other_file(labelled, tmp_path, capsys):
    model = build_tiny_model(tmp_path / "tiny.onnx", tiny_spec())
    before = model.read_bytes()
    for victim in (model, labelled / "blues" / "a.wav"):  # --json naming the model, or a track it scores
        kept = victim.read_bytes()
        assert main(["evaluate", "--model", str(model), "--data", str(labelled), "--json", str(victim)]) == 2
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and "already holds something other than an earlier report" in err
        assert victim.read_bytes() == kept and "classify's answer" not in out
    assert model.read_bytes() == before
    other = tmp_path / "cv.json"  # another program's JSON is no report either
    other.write_text('{"spec": {}, "cv": {}}')
    assert main(["evaluate", "--model", str(model), "--data", str(labelled), "--json", str(other)]) == 2
    assert other.read_text() == '{"spec": {}, "cv": {}}'
    report = tmp_path / "eval.json"
    for earlier in ("", '{\n  "model_id": "tiny-test-1",\n  "genre_he'):  # empty (mktemp), an earlier one cut short
        report.write_text(earlier)
        assert main(["evaluate", "--model", str(model), "--data", str(labelled), "--json", str(report)]) == 0
        assert json.loads(report.read_text())["tracks"] == 7 and [p.name for p in tmp_path.iterdir()
                                                                 if p.name.endswith(".partial")] == []
    capsys.readouterr()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)  # a pipe is written through, not replaced
    assert main(["evaluate", "--model", str(model), "--data", str(labelled), "--json", str(fifo)]) == 0
    assert json.loads(reader.communicate(timeout=60)[0])["tracks"] == 7 and fifo.is_fifo()


def test_evaluate_writes_its_report_down_stdout_after_the_table(labelled, tmp_path):
    """``--json /dev/stdout`` was followed as a link: to a pipe's ``pipe:[N]``, which cannot be opened (the whole
    evaluation ran, then "not written"), or to the file stdout went to, which the report replaced, table and all."""
    model = build_tiny_model(tmp_path / "tiny.onnx", tiny_spec())
    args = [*GENRECAST, "evaluate", "--model", str(model), "--data", str(labelled), "--json"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout block-buffered, as in a pipe
    piped = subprocess.run([*args, "/dev/stdout"], capture_output=True, text=True, env=env, timeout=WAIT)
    into = tmp_path / "out.txt"
    with into.open("w") as out:
        filed = subprocess.run([*args, "/dev/fd/1"], stdout=out, stderr=subprocess.PIPE, text=True, env=env,
                               timeout=WAIT)
    for proc, text in ((piped, piped.stdout), (filed, into.read_text())):
        assert proc.returncode == 0, proc.stderr
        table, _, report = text.partition("\n{\n")
        assert "classify's answer right 6/7" in table, text
        assert json.loads("{\n" + report)["tracks"] == 7
    to_stderr = subprocess.run([*args, "/dev/stderr"], capture_output=True, text=True, env=env, timeout=WAIT)
    report = to_stderr.stderr[to_stderr.stderr.find('{\n  "model_id"'):]  # whatever else stderr holds before it
    assert to_stderr.returncode == 0 and json.loads(report)["tracks"] == 7, to_stderr.stderr
    for fd in ("7", "99999999999"):  # not open; no descriptor's number at all
        closed = subprocess.run([*args, f"/dev/fd/{fd}"], capture_output=True, text=True, env=env, timeout=WAIT)
        assert (closed.returncode, closed.stdout) == (2, ""), closed.stderr
        assert closed.stderr == f"genrecast evaluate: error: --json /dev/fd/{fd}: not open for writing\n"


def test_a_genre_never_recognised_scores_0_and_one_absent_is_undefined():
    jazz = np.array([[0.1, 0.8, 0.1]])  # every window answered jazz
    ev = score([("a", "blues"), ("b", "blues"), ("c", "jazz")], [jazz, jazz, jazz], ["blues", "jazz", "rock"])
    rows = {line.split()[0]: line.split()[1:5] for line in ev.table().splitlines()[5:8]}
    assert rows == {"blues": ["-", "0.00", "0.00", "2"],  # never named: no precision, but a failure all the same
                    "jazz": ["0.33", "1.00", "0.50", "1"], "rock": ["-", "-", "-", "0"]}
