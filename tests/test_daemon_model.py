"""Model loading (the metadata contract) and ``genrecast classify``."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import replace

import numpy as np
import onnx
import pytest
from daemon_helpers import genrecast, write_tones
from genrecast.daemon.model import DEFAULT_MODEL, GENRE_HEADS, HEARD, genre_head, load_model
from genrecast.dsp import DEFAULT_DSP, GTZAN_GENRES, ModelSpecError
from signals import sparse_wav
from tiny_model import TINY_TAGS, build_tiny_model, direct_label, musicnn_like_spec, tagged_spec, tiny_spec


def respec(path, spec):
    """A graph whose metadata promises something else than it was built for."""
    model = onnx.load(str(path))
    model.metadata_props[0].value = spec.to_json()
    onnx.save(model, str(path))


def relabel(path, labels):
    respec(path, tiny_spec(labels=labels))


def test_loads_spec_and_predicts_probabilities(model):
    loaded = load_model(model)
    assert loaded.spec.labels == GTZAN_GENRES and loaded.model_id == "tiny-test-1"
    windows = np.random.default_rng(0).normal(-5, 3, (3, 128, loaded.spec.n_frames)).astype(np.float32)
    out = loaded.predict(windows)
    assert out.genre.shape == (3, 10) and np.allclose(out.genre.sum(axis=1), 1, atol=1e-5)
    assert out.music.tolist() == [1.0, 1.0, 1.0]  # no music head: every window counts as music


def test_music_head_is_read_when_the_spec_sets_a_threshold(tmp_path):
    model = load_model(build_tiny_model(tmp_path / "m.onnx", tiny_spec(music_threshold=0.5)))
    assert model.spec.music_threshold == 0.5
    peaked, flat = np.full((128, model.spec.n_frames), -20.0, np.float32), np.full((128, model.spec.n_frames), -5.0)
    peaked[40] = 5.0
    out = model.predict(np.stack([peaked, flat]))
    assert out.genre.shape == (2, 10) and out.music.shape == (2,)
    assert out.music[0] > 0.99 and out.music[1] < 0.05


def test_tags_are_read_when_the_spec_names_them(tmp_path):
    model = load_model(build_tiny_model(tmp_path / "m.onnx", tagged_spec()))
    assert model.spec.tags == TINY_TAGS
    peaked = np.full((1, 128, model.spec.n_frames), -20.0, np.float32)
    peaked[0, 12 * 6 + 6] = 5.0  # the middle band of metal's group
    out = model.predict(peaked)
    assert out.tags.shape == (1, 10) and out.tags[0].argmax() == TINY_TAGS.index("heavy metal")
    assert list(model.spec.announced_tags(out.tags[0])) == ["heavy metal"]
    assert load_model(build_tiny_model(tmp_path / "plain.onnx")).predict(peaked).tags is None


def test_the_direct_genre_head_is_read_when_the_spec_names_it(tmp_path):
    model = load_model(build_tiny_model(tmp_path / "m.onnx", tagged_spec(direct_head=True)))
    peaked = np.full((1, 128, model.spec.n_frames), -20.0, np.float32)
    peaked[0, 12 * 6 + 6] = 5.0  # the middle band of metal's group
    out = model.predict(peaked)
    assert out.genre[0].argmax() == 6 and out.direct[0].argmax() == direct_label(6)
    assert out.genre_for("room") is out.genre and out.genre_for("direct") is out.direct
    assert out.room is None
    with pytest.raises(ValueError, match="lacks one"):  # no detector to weigh by: genre_head never says auto for it
        out.genre_for("auto")
    with pytest.raises(ValueError, match="no genre head"):  # a leftover bool, or a typo, is not the room head
        out.genre_for(True)
    plain = load_model(build_tiny_model(tmp_path / "plain.onnx")).predict(peaked)
    assert plain.direct is None and plain.genre_for("direct") is plain.genre  # one head serves every source


def test_what_each_heard_setting_reads_for_a_microphone_and_for_anything_else():
    one, two = tiny_spec(), tiny_spec(direct_head=True)
    detector = tiny_spec(direct_head=True, room_detector=True)
    reads = {(name, heard, recorded): genre_head(spec, heard, recorded)
             for name, spec in (("one", one), ("two", two), ("detector", detector))
             for heard in HEARD for recorded in (True, False)}
    assert {k: v for k, v in reads.items() if k[0] == "one"} == dict.fromkeys(
        [k for k in reads if k[0] == "one"])  # one head serves every source: no name
    assert reads[("two", "auto", True)] == "direct" and reads[("two", "auto", False)] == "room"
    # with a detector a file, pipe or stream is judged from its sound; a microphone still hears a room
    assert reads[("detector", "auto", True)] == "auto" and reads[("detector", "auto", False)] == "room"
    assert all(reads[(name, h, r)] == h for name in ("two", "detector") for h in GENRE_HEADS for r in (True, False))
    with pytest.raises(ValueError, match="heard must be one of auto, room, direct"):
        genre_head(detector, "kitchen")


def test_a_room_detector_weighs_the_two_genre_heads_window_by_window(tmp_path):
    model = load_model(build_tiny_model(tmp_path / "m.onnx", tagged_spec(direct_head=True, room_detector=True)))
    windows = np.full((3, 128, model.spec.n_frames), -21.0, np.float32)
    windows[:, 12 * 6 + 6] = 5.0  # metal's band, over the floor: as recorded
    windows[1] += 14.0  # every band lifted: a hiss, heard through a room
    windows[2] += 7.0  # half-way: about even
    out = model.predict(windows)
    assert out.room[0] < 0.01 and out.room[1] > 0.99 and 0.2 < out.room[2] < 0.8
    weighed = out.genre_for("auto")
    np.testing.assert_allclose(weighed, out.room[:, None] * out.genre + (1 - out.room[:, None]) * out.direct,
                               rtol=1e-6)
    np.testing.assert_allclose(weighed.sum(axis=1), 1.0, rtol=1e-5)
    assert weighed[0].argmax() == direct_label(6) and weighed[1].argmax() == 6


def test_a_model_for_another_front_end_loads_and_runs(tmp_path):
    model = load_model(build_tiny_model(tmp_path / "m.onnx", musicnn_like_spec()))
    assert (model.spec.dsp.sample_rate, model.spec.dsp.n_mels, model.spec.n_frames) == (16000, 96, 187)
    assert model.predict(np.zeros((1, 96, 187), np.float32)).genre.shape == (1, 10)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: build_tiny_model(p, with_metadata=False), "no 'genrecast.spec' metadata"),
        (lambda p: respec(build_tiny_model(p), tiny_spec(dsp=replace(DEFAULT_DSP, n_mels=64))),
         "does not fit [None, 64, 126]"),
        (lambda p: build_tiny_model(p, n_frames=100), "does not fit [None, 128, 126]"),
        (lambda p: relabel(build_tiny_model(p), ("a", "b")), "does not fit [None, 2]"),
        (lambda p: p.write_bytes(b"not an onnx file"), "not a loadable ONNX model"),
        (lambda p: build_tiny_model(p, tiny_spec(music_threshold=0.5), music_head=False),
         "sets music_threshold but the graph has no 'music' output"),
        (lambda p: respec(build_tiny_model(p, tiny_spec(music_threshold=0.5)), tagged_spec()),
         "names 10 tags but the graph has no 'tags' output"),
        (lambda p: respec(build_tiny_model(p, tagged_spec()), tagged_spec(tags=TINY_TAGS[:9])),
         "'tags' output shape ['batch', 10] does not fit [None, 9]"),
        (lambda p: respec(build_tiny_model(p, tagged_spec()), tagged_spec(direct_head=True)),
         "names a direct genre head but the graph has no 'direct_probabilities' output"),
        (lambda p: respec(build_tiny_model(p, tagged_spec(direct_head=True)),
                          tagged_spec(direct_head=True, room_detector=True)),
         "names a room detector but the graph has no 'room' output"),
    ],
    ids=["no-metadata", "mel-count", "window-length", "label-count", "garbage", "no-music-head", "no-tags",
         "tag-count", "no-direct-head", "no-room-detector"],
)
def test_refuses_models_that_break_the_contract(tmp_path, build, message):
    path = tmp_path / "bad.onnx"
    build(path)
    with pytest.raises(ModelSpecError) as err:
        load_model(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_model_names_the_stages_around_its_log_mel_and_gets_those(tmp_path):
    """The DC block and the level normalisation are the front end too: a model names those its windows went through,
    the daemon computes those (a file from before they were named gets both, as it did), and a model naming a stage
    this version does not compute is refused, not fed another front end."""
    from genrecast.daemon.pipeline import Pipeline
    from genrecast.dsp.modelspec import STAGES, UNSTAMPED_STAGES

    path = build_tiny_model(tmp_path / "m.onnx")
    assert load_model(path).spec.stages == STAGES == UNSTAMPED_STAGES  # written by the trainer's ModelSpec
    model = onnx.load(str(path))
    data = json.loads(model.metadata_props[0].value)
    del data["stages"]
    model.metadata_props[0].value = json.dumps(data)
    onnx.save(model, str(path))
    assert load_model(path).spec.stages == UNSTAMPED_STAGES  # written before the key
    # quiet music with a constant offset: the stages change the windows, and only those named apply
    t = np.arange(3 * 22050) / 22050
    quiet = (0.01 * np.sin(2 * np.pi * 440 * t) + 0.05).astype(np.float32)
    windows = {stages: Pipeline(tiny_spec(stages=stages), 1.0, 22050).push(quiet, last=True)[0].logmel
               for stages in (STAGES, STAGES[:1], STAGES[1:], ())}
    assert all(not np.allclose(windows[a], windows[b], atol=1e-3) for a in windows for b in windows if a != b)
    # without the DC block the offset's energy lies in the lowest bands, which the level normalisation alone
    # cannot remove; without the level normalisation the window is as quiet as its samples
    assert windows[()][0].mean() > windows[STAGES[:1]][0].mean() + 5
    assert windows[STAGES].mean() > windows[STAGES[:1]].mean() + 5
    for stages, message in [(("dc-onepole-20hz",), "needs the front-end stage 'dc-onepole-20hz', which this "
                                                   "genrecast does not compute"),
                            (STAGES[::-1], "stages must be some of"), (STAGES[:1] * 2, "stages must be some of")]:
        with pytest.raises(ModelSpecError, match=message):
            tiny_spec(stages=stages)
    respec_json = json.dumps({**data, "stages": ["level-up-to-0.2-5s-0.003-40db"]})
    model.metadata_props[0].value = respec_json
    onnx.save(model, str(path))
    with pytest.raises(ModelSpecError, match="trained by another version of genrecast"):
        load_model(path)


def test_malformed_spec_json_is_refused(tmp_path):
    path = build_tiny_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    model.metadata_props[0].value = '{"format": 1, "name": "x"}'
    onnx.save(model, str(path))
    with pytest.raises(ModelSpecError, match=f"^model {path}: malformed model spec"):  # which file, too
        load_model(path)


def test_a_shipped_model_is_found_by_its_bare_name_from_anywhere(tmp_path, monkeypatch):
    """An installed wheel has no models/ folder beside the user: `--model genrecast-gtzan-fast.onnx` must still work."""
    monkeypatch.chdir(tmp_path)
    fast = load_model("genrecast-gtzan-fast.onnx")
    assert fast.path == DEFAULT_MODEL.with_name("genrecast-gtzan-fast.onnx") and "fast" in fast.model_id
    assert load_model("genrecast-gtzan-fast").path == fast.path  # the name without .onnx, as the card writes it
    with pytest.raises(ModelSpecError, match="no such file .the package ships genrecast-gtzan-fast.onnx, "
                                             "genrecast-gtzan.onnx"):
        load_model("genrecast-gtzan-fats.onnx")
    with pytest.raises(ModelSpecError, match="is a folder, not a file"):
        load_model(tmp_path)
    (tmp_path / "genrecast-gtzan-fast.onnx").write_bytes(b"mine")  # a file of that name here is the one meant
    with pytest.raises(ModelSpecError, match="not a loadable ONNX model"):
        load_model("genrecast-gtzan-fast.onnx")


def test_missing_default_model_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr("genrecast.daemon.model.DEFAULT_MODEL", tmp_path / "models" / "genrecast-gtzan.onnx")
    with pytest.raises(ModelSpecError, match="no such file.*genrecast train-transfer"):
        load_model()
    assert DEFAULT_MODEL.name == "genrecast-gtzan.onnx" and DEFAULT_MODEL.parent.name == "models"


def test_classify_json_text_and_bad_files(model, tmp_path):
    rock = write_tones(tmp_path / "rock.wav", [9] * 6, rate=44100, subtype="FLOAT")
    tiny = write_tones(tmp_path / "tiny.wav", [9], seconds_each=0.9)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....WAVEfmt garbage")
    proc = genrecast("classify", "--json", "--model", str(model), str(rock), str(tiny), str(junk),
                     str(tmp_path / "missing.wav"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    line, *failed = out.splitlines()
    result = json.loads(line)
    assert [json.loads(f)["file"] for f in failed] == [str(tiny), str(junk), str(tmp_path / "missing.wav")]
    assert all(json.loads(f).keys() == {"file", "error"} for f in failed)
    assert result["file"] == str(rock) and result["genre"] == "rock" and result["probability"] > 0.9
    assert result["kind"] == "genre" and result["music"] is None  # this model has no music head
    assert result["tags"] is None  # nor tags
    assert result["genre_head"] is None  # and one genre head
    assert set(result["probabilities"]) == set(GTZAN_GENRES) and result["windows"] == 4
    assert result["model_id"] == "tiny-test-1"
    errors = err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("genrecast classify: error: ") for e in errors)
    assert "0.90 s is shorter than the 1 s minimum" in errors[0] and "missing.wav: no such file" in errors[2]

    proc = genrecast("classify", "--model", str(model), str(rock))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split("\t")[:2] == [str(rock), "rock"]


def _classify_heads(model, wav, *choices) -> tuple[dict, list]:
    """What ``classify --json`` answers for ``wav`` with each ``--heard`` choice (``()``: none given), and the room
    probability it reports with each."""
    answers, rooms = {}, []
    for heard in choices:
        proc = genrecast("classify", "--json", "--model", str(model), *heard, str(wav))
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        answer = json.loads(out)
        answers[heard[1:]] = answer["genre"], answer["genre_head"]
        rooms.append(answer["room"])
    return answers, rooms


def test_classify_reads_the_direct_head_for_a_file_unless_it_was_taped_in_a_room(tmp_path):
    model = build_tiny_model(tmp_path / "direct.onnx", tiny_spec(direct_head=True))
    wav = write_tones(tmp_path / "jazz.wav", [5] * 4)
    answers, rooms = _classify_heads(model, wav, (), ("--heard", "auto"), ("--heard", "room"), ("--heard", "direct"))
    direct = GTZAN_GENRES[direct_label(5)], "direct"
    assert answers == {(): direct, ("auto",): direct, ("room",): ("jazz", "room"), ("direct",): direct}
    assert rooms == [None] * 4  # no room detector to report


def test_classify_lets_a_room_detector_judge_how_a_file_was_made_unless_told(tmp_path):
    model = build_tiny_model(tmp_path / "detector.onnx", tiny_spec(direct_head=True, room_detector=True))
    recorded = write_tones(tmp_path / "jazz.wav", [5] * 4)
    taped = write_tones(tmp_path / "jazz-taped.wav", [5] * 4, hiss=0.003)  # the same tone over a room's hiss
    direct = GTZAN_GENRES[direct_label(5)]
    told = (("--heard", "room"), ("--heard", "direct"))
    answers, rooms = _classify_heads(model, recorded, (), *told)
    assert answers == {(): (direct, "auto"), ("room",): ("jazz", "room"), ("direct",): (direct, "direct")}
    assert len(set(rooms)) == 1 and rooms[0] < 0.1  # what the detector heard, whichever head was read
    answers, rooms = _classify_heads(model, taped, (), *told)
    assert answers == {(): ("jazz", "auto"), ("room",): ("jazz", "room"), ("direct",): (direct, "direct")}
    assert len(set(rooms)) == 1 and rooms[0] > 0.9


@pytest.mark.parametrize("seconds", [1.0, 2.0, 2.99])
def test_classify_repeats_a_short_clip_to_one_window(model, tmp_path, seconds):
    clip = write_tones(tmp_path / "short.wav", [3], seconds_each=seconds, rate=44100)
    proc = genrecast("classify", "--json", "--model", str(model), str(clip))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["windows"] == 1 and result["kind"] == "genre" and result["genre"] == "disco", result
    assert result["seconds"] == pytest.approx(seconds, abs=1e-3)


def test_classify_says_silence_for_an_all_silent_file(model, tmp_path):
    quiet = write_tones(tmp_path / "quiet.wav", [None] * 10)
    proc = genrecast("classify", "--json", "--model", str(model), str(quiet))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert (result["kind"], result["genre"], result["windows"]) == ("silence", None, 8)
    proc = genrecast("classify", "--model", str(model), str(quiet))
    assert proc.communicate(timeout=60)[0].split("\t")[1] == "silence"


def test_a_constant_offset_is_no_sound(model, tmp_path):
    """A cheap USB microphone's DC offset (0.05 of full scale here, over the 0.003 of ``silence_rms``) with the room
    quiet: silence, as without it; the gate reads the samples' level about their mean (it read 0.05 and said a
    genre). A tone on the same offset is still heard."""
    import soundfile as sf

    quiet = tmp_path / "offset.wav"
    sf.write(quiet, np.full(10 * 22050, 0.05, np.float32) + 0.0005 * np.random.default_rng(0).standard_normal(
        10 * 22050).astype(np.float32), 22050, subtype="FLOAT")
    tone = write_tones(tmp_path / "tone.wav", [2] * 5)
    sf.write(tone, sf.read(tone, dtype="float32")[0] + 0.05, 22050, subtype="FLOAT")
    proc = genrecast("classify", "--json", "--model", str(model), str(quiet), str(tone))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    quiet_result, tone_result = (json.loads(line) for line in out.splitlines())
    assert (quiet_result["kind"], quiet_result["genre"]) == ("silence", None), quiet_result
    assert (tone_result["kind"], tone_result["genre"]) == ("genre", GTZAN_GENRES[2]), tone_result


def test_classify_says_no_music_with_a_music_head_and_tags_music_only(tmp_path):
    model = build_tiny_model(tmp_path / "m.onnx", tagged_spec())
    tone = write_tones(tmp_path / "tone.wav", [2] * 5)
    noise = write_tones(tmp_path / "noise.wav", ["noise"] * 5)
    proc = genrecast("classify", "--json", "--model", str(model), str(tone), str(noise))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    music, other = map(json.loads, out.splitlines())
    assert (music["kind"], music["genre"]) == ("genre", "country") and music["music"] > 0.9
    assert list(music["tags"])[0] == "country" and music["tags"]["country"] > 0.9  # likeliest first
    assert (other["kind"], other["genre"]) == ("no_music", None) and other["music"] < 0.1
    assert other["probability"] == pytest.approx(1 - other["music"], abs=1e-4)
    assert set(other["probabilities"]) == set(GTZAN_GENRES)
    assert other["tags"] == {}  # tags heard in noise are not announced


@pytest.mark.parametrize(("flag", "value"), [("--hop", "inf"), ("--hop", "nan"), ("--hop", "61"), ("--threads", "-1"),
                                             ("--threads", "0")])
def test_classify_refuses_bad_hop_and_threads_in_one_line(model, tmp_path, flag, value):
    wav = write_tones(tmp_path / "rock.wav", [9] * 4)
    proc = genrecast("classify", "--model", str(model), flag, value, str(wav))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and out == ""
    assert err.startswith(f"genrecast classify: error: {flag} must be ") and err.count("\n") == 1, err


def test_classify_real_gtzan_excerpt_runs(model, gtzan_dir):
    track = next(iter(sorted(gtzan_dir.rglob("*.flac"))), None) or pytest.skip("no FLAC under the GTZAN dir")
    proc = genrecast("classify", "--json", "--model", str(model), str(track))
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
def test_run_refuses_a_corrupt_file_in_one_line(tmp_path, model, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    proc = genrecast("run", "--source", f"file:{bad}", "--model", str(model), "--broker", "mqtt://127.0.0.1:9")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.count("\n") == 1 and err.startswith(f"genrecast run: error: {bad}: ")


def _classify_peak(model, path, inference) -> tuple[int, int]:
    from genrecast.daemon.classify_cmd import classify_file

    tracemalloc.start()
    try:
        windows = classify_file(model, str(path), 1.0, inference).windows
        return windows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("threads", [1, 2])
def test_classify_memory_does_not_grow_with_file_length(model, tmp_path, threads):
    """Decoded in blocks, scored in batches: ten times the audio, about the same peak (whole-file decoding and
    resampling took 273 MB for 30 s and 514 MB for 10 min). With several threads, the batches waiting for one are
    bounded too."""
    from genrecast.daemon.inference import Inference

    model = load_model(str(model))
    inference = Inference(model, threads)
    _classify_peak(model, sparse_wav(tmp_path / "warm.wav", 5), inference)  # one-off allocations out of the way
    # both longer than one batch of windows, so both score full batches
    short_windows, short_peak = _classify_peak(model, sparse_wav(tmp_path / "short.wav", 90, rate=44100), inference)
    long_windows, long_peak = _classify_peak(model, sparse_wav(tmp_path / "long.wav", 450, rate=44100), inference)
    inference.close()
    assert (short_windows, long_windows) == (88, 448)
    assert long_peak < 1.2 * short_peak + 2**20, (short_peak, long_peak)  # whole-file: over 100 MB more


def test_a_file_source_decodes_as_it_goes(tmp_path):
    """Ten minutes of 44.1 kHz stereo: opening reads the header only, and replay holds a chunk at a time."""
    import threading

    from genrecast.daemon.sources import FileSource

    path = sparse_wav(tmp_path / "long.wav", 600, rate=44100)
    tracemalloc.start()
    try:
        source = FileSource(str(path), speed=0)
        handed = sum(c.samples.shape[0] for c in source.chunks(threading.Event()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert handed == 600 * 44100 and source.seconds == 600
    assert peak < 8 * 2**20, peak  # the whole file decoded: over 200 MB


@pytest.mark.parametrize("how", ["classify", "run --hop", "file", "env", "stream table"])
def test_a_hop_shorter_than_one_frame_is_refused_not_rounded_naming_where_it_was_set(model, tmp_path, how):
    wav = write_tones(tmp_path / "a.wav", [1] * 4)
    config = tmp_path / "hop.toml"
    run, env = ("run", "--model", str(model), "--broker", "mqtt://127.0.0.1:9"), {}
    if how == "classify":
        args, said = ("classify", "--model", str(model), "--hop", "0.001", str(wav)), "--hop 0.001 s"
    elif how == "run --hop":
        args, said = (*run, "--hop", "0.001", "--source", f"file:{wav}"), "hop_seconds (from --hop): 0.001 s"
    elif how == "file":
        config.write_text(f'hop_seconds = 0.001\nsource = "file:{wav}"\n')
        args, said = (*run, "--config", str(config)), f"hop_seconds (from file {config}): 0.001 s"
    elif how == "env":
        args, said, env = (*run, "--source", f"file:{wav}"), "hop_seconds (from env): 0.001 s", {
            "GENRECAST_HOP_SECONDS": "0.001"}
    else:  # the second stream's own table: the error named --hop, which no one gave
        config.write_text(f'[streams.a]\nsource = "file:{wav}"\n\n[streams.b]\nsource = "file:{wav}"\n'
                          "hop_seconds = 0.001\n")
        args, said = (*run, "--config", str(config), "--stream", f"c=file:{wav}"), (  # --stream: sources only
            f"streams.b.hop_seconds (from file {config}): 0.001 s")
    proc = genrecast(*args, env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    model_name = "this model" if how == "classify" else "tiny-test-1"
    assert err == f"genrecast {args[0]}: error: {said} is shorter than one frame of {model_name} (23.2 ms)\n", err


@pytest.mark.parametrize("speed", ["1e-9", "0.001", "-1", "1e6", "nan"])
def test_absurd_speeds_are_refused(speed):
    from genrecast.daemon.config import ConfigError, load_settings

    with pytest.raises(ConfigError,
                       match="speed \\(from flags\\): bad value .* \\(0 \\(as fast as possible\\) or 0.01 to 1000"):
        load_settings(flags={"speed": float(speed)}, environ={})


@pytest.mark.parametrize("bad", [np.nan, 2.0])  # NaN scores give NaN probabilities; 2 + a sigmoid exceeds 1
def test_a_graph_whose_outputs_are_not_probabilities_is_refused_at_load(bad, tmp_path):
    """Such a model once loaded, and `classify --json` printed NaN (not JSON) or a probability of 5, with exit 0."""
    path = build_tiny_model(tmp_path / "bad.onnx", tagged_spec())
    graph = onnx.load(path)
    if np.isnan(bad):
        weights = next(i for i in graph.graph.initializer if i.name == "weights")
        weights.CopyFrom(onnx.numpy_helper.from_array(np.full(onnx.numpy_helper.to_array(weights).shape, np.nan,
                                                              np.float32), "weights"))
    else:  # the music output moved past 1
        node = next(n for n in graph.graph.node if n.output[0] == "music")
        node.output[0] = "music_unscaled"
        graph.graph.node.append(onnx.helper.make_node("Add", ["music_unscaled", "offset"], ["music"]))
        graph.graph.initializer.append(onnx.numpy_helper.from_array(np.float32(bad), "offset"))
    onnx.save(graph, path)
    output = "probabilities" if np.isnan(bad) else "music"
    with pytest.raises(ModelSpecError, match=f"its '{output}' output for a test window is not a probability"):
        load_model(path)
    clip = write_tones(tmp_path / "a.wav", [0], 3.0)
    proc = genrecast("classify", "--json", "--model", str(path), str(clip))
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out) == (2, "") and err.count("\n") == 1 and "not a probability" in err, err


def test_a_model_that_gives_nan_only_for_real_audio_stops_classify_in_one_line(tmp_path):
    """It passes the load's test window (zeros), so classify checks what every window gives: sqrt(level + 1) over
    itself is 1 for the test window and NaN for a tone, whose mean log-mel is far below -1."""
    path = build_tiny_model(tmp_path / "odd.onnx", tagged_spec())
    graph = onnx.load(path)
    node = next(n for n in graph.graph.node if n.output[0] == "probabilities")
    node.output[0] = "p_raw"
    h, nh = onnx.helper, onnx.numpy_helper
    graph.graph.node.extend([
        h.make_node("ReduceMean", ["logmel"], ["overall"], axes=[1, 2], keepdims=0),
        h.make_node("Add", ["overall", "one"], ["shifted"]),
        h.make_node("Sqrt", ["shifted"], ["root"]),
        h.make_node("Div", ["root", "root"], ["factor"]),  # 1, or NaN where the level is under -1
        h.make_node("Reshape", ["factor", "column"], ["factor2"]),
        h.make_node("Mul", ["p_raw", "factor2"], ["probabilities"]),
    ])
    graph.graph.initializer.extend([nh.from_array(np.float32(1.0), "one"),
                                    nh.from_array(np.array([-1, 1], np.int64), "column")])
    onnx.save(graph, path)
    model = load_model(path)  # the test window passes
    assert np.isfinite(model.predict(np.zeros((1, model.spec.dsp.n_mels, model.spec.n_frames), np.float32)).genre).all()
    clip = write_tones(tmp_path / "a.wav", [0], 3.0)
    proc = genrecast("classify", "--json", "--model", str(path), str(clip))
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out) == (2, ""), (out, err)
    assert err.count("\n") == 1 and f"gave a probability that is NaN or outside 0-1 for {clip}" in err, err


def test_onnxruntime_keeps_no_device_id_and_sends_nothing(tmp_path):
    """onnxruntime (1.29 on) keeps a telemetry device id and an upload queue under ~/.cache and sends usage events
    to Microsoft by default. Importing genrecast turns that off; the user may turn it back on. Both runs are in a
    network namespace of their own, with no network: the control turns telemetry on, and must not send it."""
    import os
    import shutil
    import subprocess
    import sys

    offline = [shutil.which("unshare") or "unshare", "-rn"]
    if subprocess.run([*offline, "true"], capture_output=True).returncode != 0:
        pytest.skip("no network namespace here (unshare -rn): the control run could reach the network")
    code = "from genrecast.daemon.model import load_model; print(load_model().model_id)"
    for home, setting in ((tmp_path / "ours", None), (tmp_path / "theirs", "0")):
        home.mkdir()
        # onnxruntime stays quiet under CI itself (these variables): without them it acts as on a user's machine
        ci = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "TF_BUILD", "CIRCLECI", "BUILDKITE", "TEAMCITY_VERSION",
              "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ID", "JENKINS_URL", "APPVEYOR", "TRAVIS")
        env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME", *ci)}
        env["HOME"] = str(home)
        if setting is not None:
            env["ORT_DISABLE_TELEMETRY"] = setting
        proc = subprocess.run([*offline, sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "ours" / ".cache").exists()
    assert (tmp_path / "theirs" / ".cache" / "Microsoft").is_dir()  # what the default does, so the test can fail
