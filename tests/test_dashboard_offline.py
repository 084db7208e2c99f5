"""The page's "check a file": the daemon's windows and model, per-window probabilities, problems shown as text."""

from __future__ import annotations

import base64
import io
import threading

import numpy as np
import pytest
import soundfile as sf
from genrecast.dashboard import offline, render
from genrecast.dashboard.app import file_result
from genrecast.dashboard.jobs import BoundedPool
from genrecast.dashboard.offline import OfflineClassifier
from genrecast.dsp import AudioError, ModelSpecError
from genrecast.dsp.windows import window_samples
from signals import sparse_wav
from tiny_model import GTZAN_GENRES, build_tiny_model, tiny_spec, tone_hz


def tone_wav(genre: str, seconds: float = 7.0, rate: int = 44100, amplitude: float = 0.3) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, amplitude * np.sin(2 * np.pi * tone_hz(GTZAN_GENRES.index(genre)) * t), rate, format="WAV")
    return buf.getvalue()


def headline(result) -> str:
    """The text of the file panel's headline line."""
    line = render.file_summary(result)[0]
    return "".join(span.children for span in line.children)


def test_classifies_like_the_daemon(model, tmp_path):
    data = tone_wav("jazz")
    result = OfflineClassifier(str(model)).classify(data, "tone.wav")
    assert result.genre == "jazz" and result.model_id == "tiny-test-1"
    assert len(result.starts) == len(result.probabilities) == 5  # 7 s, 3-s windows, 1-s hop
    assert all(len(row) == 10 for row in result.probabilities)

    classify_cmd = pytest.importorskip("genrecast.daemon.classify_cmd")
    from genrecast.daemon.model import load_model

    (tmp_path / "tone.wav").write_bytes(data)
    track = classify_cmd.classify_file(load_model(model), str(tmp_path / "tone.wav"), 1.0)
    assert track.windows == len(result.starts)
    assert dict(zip(result.labels, result.mean, strict=True)) == pytest.approx(track.probabilities, abs=1e-4)


def test_a_short_clip_is_one_window_that_ends_where_the_file_does(model):
    """The page's player said end 3.0 for a 1.5 s file's one padded window (the API and `run` say 1.5)."""
    import json

    result = OfflineClassifier(str(model)).classify(tone_wav("metal", seconds=1.5), "short.wav")
    assert (result.kind, result.genre, len(result.starts)) == ("genre", "metal", 1)
    assert [(r["start"], r["end"]) for r in json.loads(render.player_windows(result))] == [(0.0, 1.5)]


def test_silence_and_no_music_are_said_on_the_page(model, tmp_path):
    silent = OfflineClassifier(str(model)).classify(tone_wav("rock", amplitude=0.0), "quiet.wav")
    assert (silent.kind, silent.genre) == ("silence", None)
    assert headline(silent) == "silence every window is silent"
    music_model = build_tiny_model(tmp_path / "music.onnx", tiny_spec(music_threshold=0.5))
    buf = io.BytesIO()
    sf.write(buf, 0.1 * np.random.default_rng(0).standard_normal(5 * 22050), 22050, format="WAV")
    noise = OfflineClassifier(str(music_model)).classify(buf.getvalue(), "noise.wav")
    assert (noise.kind, noise.genre) == ("no_music", None) and noise.music < 0.1
    assert headline(noise).startswith("no_music ")
    tone = OfflineClassifier(str(music_model)).classify(tone_wav("jazz"), "tone.wav")
    assert (tone.kind, tone.genre) == ("genre", "jazz") and tone.music > 0.9


def test_the_files_timeline_shades_what_the_daemon_would_have_said_without_a_genre(tmp_path):
    from daemon_helpers import write_tones
    from tiny_model import tagged_spec

    tagged = str(build_tiny_model(tmp_path / "tagged.onnx", tagged_spec()))
    wav = write_tones(tmp_path / "mix.wav", [6] * 8 + ["noise"] * 8 + [None] * 8)  # silence_windows: 5
    result = OfflineClassifier(tagged).classify(wav.read_bytes(), "mix.wav")
    assert result.states[0] == "genre"  # as a stream starts: a window this sure of itself is taken at once
    assert result.states[-1] == "silence" and "no_music" in result.states
    _, timeline = render.file_figures(result)
    no_music = next(t for t in timeline["data"] if t["name"] == "no_music")
    assert no_music["y"] == [1.0 if s == "no_music" else 0.0 for s in result.states]


def test_the_player_reads_each_windows_own_answer_tags_and_the_stream_state(tmp_path):
    import json

    from daemon_helpers import write_tones
    from tiny_model import tagged_spec

    tagged = str(build_tiny_model(tmp_path / "tagged.onnx", tagged_spec()))
    wav = write_tones(tmp_path / "mix.wav", [6] * 6 + ["noise"] * 6)
    result = OfflineClassifier(tagged).classify(wav.read_bytes(), "mix.wav")
    rows = json.loads(render.player_windows(result))
    assert [r["start"] for r in rows] == pytest.approx(list(result.starts), abs=1e-3)
    spec = tiny_spec()  # its window as the pipeline cuts it, and as `run` publishes its end (2.995 s, not 3.0)
    span = window_samples(spec.dsp, spec.n_frames) / spec.dsp.sample_rate
    assert all(r["end"] - r["start"] == pytest.approx(span, abs=1e-3) for r in rows)
    first, last = rows[0], rows[-1]
    assert (first["kind"], first["answer"], first["state"]) == ("genre", "metal", "metal")  # a sure first window
    assert first["tags"][0] == "heavy metal" and first["probability"] > 0.9
    assert (last["kind"], last["answer"], last["tags"]) == ("no_music", "no_music", [])  # noise: no tags
    _, timeline = render.file_figures(result)
    assert timeline["layout"]["shapes"][0]["x0"] == 0  # the cursor, which the page moves


def test_the_player_never_asks_the_server():
    """Playing and seeking are handled in the page: no server callback listens to the player or the cursor."""
    from genrecast.daemon.broker import BrokerConfig
    from genrecast.dashboard.app import create_app
    from genrecast.dashboard.feed import Feed
    from genrecast.dashboard.history import History

    history = History()
    app = create_app(history, Feed(BrokerConfig.from_url("mqtt://127.0.0.1:1"), "genrecast", history),
                     OfflineClassifier(None))
    ids = {dep["id"] for cb in app.callback_map.values() for dep in cb["inputs"] + cb.get("state", [])}
    assert not ids & {"file-player", "file-cursor", "file-windows"}, ids
    assert any("file-player" in str(cb.get("output")) for cb in app._callback_list if cb.get("clientside_function"))


def test_problems_are_messages_on_the_page(model, monkeypatch):
    def shown(classifier: OfflineClassifier, contents: str) -> str:
        children = file_result(classifier, contents, "x.wav")
        assert len(children) == 1 and children[0].className == "error"
        return children[0].children

    wav = "data:audio/wav;base64," + base64.b64encode(tone_wav("rock", seconds=0.5)).decode()
    assert "0.50 s is shorter than the 1 s minimum" in shown(OfflineClassifier(str(model)), wav)
    assert "no such file" in shown(OfflineClassifier("/nonexistent/model.onnx"), wav)
    assert "garbled" in shown(OfflineClassifier(str(model)), "data:audio/wav;base64,@@@")
    junk = "data:audio/wav;base64," + base64.b64encode(b"RIFF....WAVEjunk" * 10).decode()
    assert shown(OfflineClassifier(str(model)), junk) == "x.wav: truncated WAV: no audio data chunk"
    monkeypatch.setattr(offline, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(AudioError, match="limit"):
        OfflineClassifier(str(model)).classify(b"\0" * 101, "big.wav")


def test_a_busy_pool_is_a_message_on_the_page(model):
    classifier = OfflineClassifier(str(model), pool=BoundedPool(workers=1, backlog=0))
    started, release = threading.Event(), threading.Event()
    blocker = threading.Thread(target=classifier.pool.run, args=(lambda: (started.set(), release.wait(30)),))
    blocker.start()
    try:
        assert started.wait(30)
        wav = "data:audio/wav;base64," + base64.b64encode(tone_wav("rock")).decode()
        (shown,) = file_result(classifier, wav, "x.wav")
        assert shown.className == "error" and shown.children.startswith("busy:")
    finally:
        release.set()
        blocker.join(30)
    assert classifier.classify(tone_wav("rock"), "x.wav").genre == "rock"


def test_errors_name_the_upload_not_the_servers_temporary_file(model):
    cut = tone_wav("rock", seconds=5.0)[:50_000]  # a truncated WAV: the check names the file
    with pytest.raises(AudioError) as err:
        OfflineClassifier(str(model)).classify(cut, "song.wav")
    assert str(err.value).startswith("song.wav: truncated") and "genrecast-upload-" not in str(err.value)


def test_the_work_an_upload_may_cause_is_bounded_by_its_header(model, tmp_path):
    """A small file can declare hours of audio (a low rate or many frames); it is refused before decoding."""
    path = sparse_wav(tmp_path / "long.wav", offline.MAX_UPLOAD_SECONDS + 60, rate=1000, channels=1)
    with pytest.raises(AudioError, match="long.wav: 31 min of audio is over the 30 min limit"):
        OfflineClassifier(str(model)).classify(path.read_bytes(), "long.wav")


def test_a_model_that_will_not_load_is_logged_once_however_many_files_it_refuses(tmp_path, caplog):
    (tmp_path / "song.onnx").write_bytes(b"RIFF not a model")
    offline = OfflineClassifier(str(tmp_path / "song.onnx"))
    for _ in range(3):
        with pytest.raises(ModelSpecError, match="not a loadable ONNX model"):
            offline.classify(tone_wav("jazz"), "tone.wav")
    logged = [r for r in caplog.records if r.name == "genrecast.dashboard.offline"]
    assert len(logged) == 1 and "cannot check files: model" in logged[0].getMessage()
