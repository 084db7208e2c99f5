"""The HTTP API (docs/api.md) over real HTTP: a running dashboard server, a real Mosquitto feeding it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import paho.mqtt.publish as mqtt_publish
import pytest
import soundfile as sf
from conftest import free_port, wait_for_port
from dashboard_payloads import genre, prediction, status
from genrecast.daemon.broker import BrokerConfig
from genrecast.daemon.classify_cmd import TrackResult, classify_file, track_json
from genrecast.daemon.config import ApiSettings
from genrecast.daemon.model import load_model
from genrecast.dashboard.app import create_app, make_server
from genrecast.dashboard.feed import Feed
from genrecast.dashboard.guard import is_loopback
from genrecast.dashboard.history import History
from genrecast.dashboard.jobs import BoundedPool
from genrecast.dashboard.offline import OfflineClassifier
from genrecast.dsp.windows import window_samples
from tiny_model import GTZAN_GENRES, tiny_spec, tone_hz

WAIT_S = 30
TOKEN = "tok-" + uuid.uuid4().hex  # unique, so finding it in a log cannot be a coincidence


@pytest.fixture(scope="module")
def model_path(model) -> str:
    """The tiny model's path as the dashboard's settings hold it."""
    return str(model)


def tone(genre_name: str, seconds: float = 7.0, rate: int = 22050, fmt: str = "FLAC", hiss: float = 0.0) -> bytes:
    """``hiss``: white noise of that amplitude under the tone (0.003: the tiny room detector hears a room)."""
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    x = 0.3 * np.sin(2 * np.pi * tone_hz(GTZAN_GENRES.index(genre_name)) * t)
    sf.write(buf, x + hiss * np.random.default_rng(1).standard_normal(len(t)), rate, format=fmt)
    return buf.getvalue()


def wait_until(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while not (result := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
    return result


def serve(broker, model_path: str, api: ApiSettings, pool: BoundedPool | None = None):
    history = History()
    feed = Feed(BrokerConfig.from_url(broker.url), "genrecast", history)
    offline = OfflineClassifier(model_path, pool=pool)
    server = make_server(create_app(history, feed, offline, api), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    feed.start()
    wait_until(lambda: feed.status().connected, "the feed to subscribe")
    return SimpleNamespace(base=f"http://127.0.0.1:{server.port}", offline=offline, server=server, feed=feed,
                           thread=thread)


def stop(running) -> None:
    running.feed.stop()
    running.server.shutdown()
    running.thread.join(10)


@pytest.fixture
def api(broker, model_path):
    running = serve(broker, model_path, ApiSettings(max_mb=0.5))
    yield running
    stop(running)


def call(url: str, body: bytes | None = None, headers: dict | None = None, method: str | None = None):
    """(status, headers, parsed JSON body) of one request; 4xx and 5xx are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            raw = err.read()
        assert err.headers.get_content_type() == "application/json", raw[:300]
        return err.code, err.headers, json.loads(raw)


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_classify_answers_what_classify_json_prints(api, model_path, tmp_path):
    data = tone("jazz")
    code, _, answer = call(f"{api.base}/api/v1/classify?name=jazz.flac", data, {"Content-Type": "audio/flac"})
    assert code == 200
    (tmp_path / "jazz.flac").write_bytes(data)
    printed = track_json(classify_file(load_model(model_path), str(tmp_path / "jazz.flac"), 1.0), "tiny-test-1")
    assert printed.pop("file") == str(tmp_path / "jazz.flac")
    assert set(answer) == {"name", "model_id"} | {f.name for f in fields(TrackResult)} - {"file"}
    assert answer["genre"] == "jazz" and answer["windows"] == 5 and "window_results" not in answer
    assert answer["genre_head"] is None  # a model with one genre head
    assert answer == json.loads(json.dumps({"name": "jazz.flac", **printed}))


def test_multipart_upload_and_per_window_results(api):
    body, headers = multipart("file", "song.wav", tone("rock", fmt="WAV"))
    code, _, answer = call(f"{api.base}/api/v1/classify?windows=1", body, headers)
    assert code == 200 and answer["name"] == "song.wav" and answer["genre"] == "rock"
    rows = answer["window_results"]
    assert len(rows) == answer["windows"] == 5
    assert [r["start_s"] for r in rows] == pytest.approx([0, 1, 2, 3, 4], abs=0.01)  # 1-s hop, in the file's time
    spec = tiny_spec()  # its window as the pipeline cuts it, and as `run` publishes its end (2.995 s, not 3.0)
    span = window_samples(spec.dsp, spec.n_frames) / spec.dsp.sample_rate
    assert all(r["end_s"] - r["start_s"] == pytest.approx(span, abs=1e-3) for r in rows)
    assert all(r["genre"] == "rock" and set(r["probabilities"]) == set(GTZAN_GENRES) for r in rows)
    assert answer["tags"] is None and all(r["tags"] is None for r in rows)  # a model without tags
    assert answer["room"] is None and all(r["room"] is None for r in rows)  # nor a room detector
    mean = {g: np.mean([r["probabilities"][g] for r in rows]) for g in GTZAN_GENRES}
    assert mean == pytest.approx(answer["probabilities"], abs=1e-4)  # the track's answer is the windows' mean


def test_each_window_says_whether_it_was_silent(api):
    """A silent window's top genre (the model's answer to silence means nothing) was all it said: the page's player
    read "silence" for the windows the API called classical."""
    rate = 22050
    buf = io.BytesIO()
    sf.write(buf, np.concatenate([sf.read(io.BytesIO(tone("rock", seconds=4.0)))[0], np.zeros(5 * rate)]), rate,
             format="FLAC")
    code, _, answer = call(f"{api.base}/api/v1/classify?windows=1", buf.getvalue(), {"Content-Type": "audio/flac"})
    assert code == 200, answer
    kinds = [(r["kind"], r["genre"]) for r in answer["window_results"]]
    assert kinds[0] == ("genre", "rock") and kinds[-1][0] == "silence" and {k for k, _ in kinds} == {"genre", "silence"}


def test_a_file_shorter_than_a_window_has_one_window_ending_where_the_file_does(api):
    """Its one (padded) window said end_s 3.0 for a 1.5 s file: outside the file, and not what `run` publishes
    (window_end_s 1.5)."""
    code, _, answer = call(f"{api.base}/api/v1/classify?windows=1", tone("jazz", seconds=1.5),
                           {"Content-Type": "audio/flac"})
    assert code == 200 and answer["seconds"] == pytest.approx(1.5)
    assert [(r["start_s"], r["end_s"]) for r in answer["window_results"]] == [(0.0, 1.5)]


def test_a_model_with_tags_answers_them_for_the_file_and_each_window(broker, tmp_path):
    from tiny_model import build_tiny_model, tagged_spec

    running = serve(broker, str(build_tiny_model(tmp_path / "tagged.onnx", tagged_spec())), ApiSettings())
    try:
        code, _, answer = call(f"{running.base}/api/v1/classify?windows=1&name=metal.flac", tone("metal"),
                               {"Content-Type": "audio/flac"})
    finally:
        stop(running)
    assert code == 200 and answer["genre"] == "metal" and list(answer["tags"])[0] == "heavy metal"
    assert all(list(r["tags"])[0] == "heavy metal" for r in answer["window_results"])


def test_a_model_with_two_genre_heads_answers_with_the_direct_one_unless_asked_for_the_room(broker, tmp_path):
    from tiny_model import build_tiny_model, direct_label

    running = serve(broker, str(build_tiny_model(tmp_path / "direct.onnx", tiny_spec(direct_head=True))), ApiSettings())
    try:
        answers = {heard: call(f"{running.base}/api/v1/classify{query}", tone("jazz"), {"Content-Type": "audio/flac"})
                   for heard, query in (("direct", ""), ("room", "?heard=room"), ("bad", "?heard=kitchen"),
                                        ("auto", "?heard=auto"))}
    finally:
        stop(running)
    assert answers["direct"][0] == 200 and answers["direct"][2]["genre"] == GTZAN_GENRES[direct_label(5)]
    assert answers["direct"][2]["genre_head"] == "direct"
    assert answers["room"][0] == 200 and (answers["room"][2]["genre"], answers["room"][2]["genre_head"]) == (
        "jazz", "room")
    assert answers["bad"][0] == 400 and answers["bad"][2]["error"] == (
        "?heard= must be auto or room or direct, got 'kitchen'")
    # auto, the default, reads the direct head of a model without a room detector (a file is a recording)
    assert answers["auto"][0] == 200 and answers["auto"][2]["genre_head"] == "direct"
    assert all(answer[2].get("room") is None for answer in answers.values())  # no detector, no room probability


def test_a_model_with_a_room_detector_answers_by_the_sound_of_the_upload(broker, tmp_path):
    from tiny_model import build_tiny_model, direct_label

    model = build_tiny_model(tmp_path / "detector.onnx", tiny_spec(direct_head=True, room_detector=True))
    running = serve(broker, str(model), ApiSettings())
    try:
        answers = {name: call(f"{running.base}/api/v1/classify{query}", tone("jazz", hiss=hiss),
                              {"Content-Type": "audio/flac"})
                   for name, query, hiss in (("recorded", "?windows=1", 0.0), ("taped", "?windows=1", 0.003),
                                             ("taped, told direct", "?heard=direct", 0.003))}
    finally:
        stop(running)
    assert {name: (code, answer["genre"], answer["genre_head"]) for name, (code, _, answer) in answers.items()} == {
        "recorded": (200, GTZAN_GENRES[direct_label(5)], "auto"), "taped": (200, "jazz", "auto"),
        "taped, told direct": (200, GTZAN_GENRES[direct_label(5)], "direct")}
    assert answers["recorded"][2]["room"] < 0.1 < 0.9 < answers["taped"][2]["room"]
    for name in ("recorded", "taped"):  # the file's figure is its windows' mean
        rows = answers[name][2]["window_results"]
        assert answers[name][2]["room"] == pytest.approx(np.mean([r["room"] for r in rows]), abs=1e-4)


def odd_multipart(shape: str) -> tuple[bytes, dict]:
    """NO_FILENAME_<size>: field 'file' without a filename; WRONG_BOUNDARY_<size>: the header names another boundary."""
    size = int(shape.rsplit("_", 1)[1].rstrip("K")) * 1000
    if shape.startswith("WRONG_BOUNDARY"):
        body, _ = multipart("file", "x.wav", b"\0" * size)
        return body, {"Content-Type": "multipart/form-data; boundary=not-the-one-used"}
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n").encode() + b"a" * size \
        + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.parametrize(("method", "path", "body", "headers", "code", "message"), [
    ("POST", "/api/v1/classify", b"not audio at all" * 100, {"Content-Type": "application/octet-stream"}, 400,
     "upload: not a readable audio file"),
    ("POST", "/api/v1/classify?name=short.flac", "SHORT", {"Content-Type": "audio/flac"}, 400,
     "short.flac: 0.50 s is shorter than the 1 s minimum"),
    ("POST", "/api/v1/classify", b"", {"Content-Type": "audio/wav"}, 400, "empty body"),
    ("POST", "/api/v1/classify", b"--x\r\n", {"Content-Type": "multipart/form-data"}, 400, "names no boundary"),
    # a typo was ignored in silence, and the answer came without the windows asked for
    ("POST", "/api/v1/classify?window=1", "SHORT", {"Content-Type": "audio/flac"}, 400,
     "unknown query parameter ?window= (classify takes heard, name, windows)"),
    ("POST", "/api/v1/classify?a%0Ab=1", "SHORT", {"Content-Type": "audio/flac"}, 400, "unknown query parameter ?a?b="),
    ("POST", "/api/v1/classify", "EMPTY_FILE", {}, 400, "empty.wav: empty file"),  # it said "empty body"
    # the name it echoes is one line, and short: a newline made a two-line error, 5,000 characters came back whole
    ("POST", "/api/v1/classify?name=a%0Ab%0D%0Ac.wav", b"no audio" * 100, {"Content-Type": "audio/wav"}, 400,
     "a?b??c.wav: not a readable audio file"),
    ("POST", "/api/v1/classify?name=" + "x" * 5000, b"no audio" * 100, {"Content-Type": "audio/wav"}, 400,
     "x" * 199 + "…: not a readable audio file"),
    ("POST", "/api/v1/classify?windows=yes", "SHORT", {"Content-Type": "audio/flac"}, 400, "?windows="),
    ("POST", "/api/v1/classify", b"hello", {"Content-Type": "text/plain"}, 415, "text/plain is not accepted"),
    ("POST", "/api/v1/classify", b"a=b", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "is not accepted"),
    ("POST", "/api/v1/classify", b"\0" * 600_001, {"Content-Type": "audio/wav"}, 413, "over the API's 0.6 MB limit"),
    ("GET", "/api/v1/classify", None, {}, 405, "GET is not allowed here; use POST"),
    ("DELETE", "/api/v1/streams", None, {}, 405, "use GET"),
    ("GET", "/api/v2/anything", None, {}, 404, "no API endpoint '/api/v2/anything'"),
    # methods no route takes are refused by Flask's routing before the API sees them: JSON still, the right Allow
    ("TRACE", "/api/v1/streams", None, {}, 405, "TRACE is not allowed here; use GET"),
    ("PROPFIND", "/api/v1/classify", None, {}, 405, "PROPFIND is not allowed here; use POST"),
    ("TRACE", "/api/v2/anything", None, {}, 404, "no API endpoint '/api/v2/anything'"),
    ("GET", "/api", None, {}, 404, "no API endpoint '/api'"),  # was an HTML redirect to /api/
    # multipart bodies that trip werkzeug's 500 kB limit on parts that are not files: not "over the 0.6 MB limit"
    ("POST", "/api/v1/classify", "NO_FILENAME_550K", {}, 400, "a part that is not a file is over 500 kB"),
    ("POST", "/api/v1/classify", "NO_FILENAME_400K", {}, 400, "multipart field 'file' is not a file part"),
    ("POST", "/api/v1/classify", "WRONG_BOUNDARY_550K", {}, 400, "names another boundary than the body's"),
    ("POST", "/api/v1/classify", "WRONG_BOUNDARY_50K", {}, 400, "the multipart body has no field 'file'"),
])
def test_errors_are_json_with_the_right_status(broker, model_path, method, path, body, headers, code, message):
    running = serve(broker, model_path, ApiSettings(max_mb=0.6))
    try:
        if body == "SHORT":
            body = tone("jazz", seconds=0.5)
        elif body == "EMPTY_FILE":
            body, headers = multipart("file", "empty.wav", b"")
        elif isinstance(body, str):  # a multipart body of a given shape
            body, headers = odd_multipart(body)
        got, got_headers, answer = call(running.base + path, body, headers, method)
    finally:
        stop(running)
    assert (got, list(answer)) == (code, ["error"])
    assert message in answer["error"] and "Traceback" not in answer["error"]
    assert "genrecast-upload-" not in answer["error"]  # the temporary file is ours, not the caller's business
    if code == 405:
        assert got_headers["Allow"] in ("POST", "GET")
    assert got_headers.get_content_type() == "application/json"


def test_a_chunked_body_is_held_to_the_same_limit(api):
    url, wav = f"{api.base}/api/v1/classify", {"Content-Type": "audio/wav"}
    code, _, answer = call(url, iter([b"\0" * 300_000, b"\0" * 200_001]), wav)  # no length: sent chunked
    assert code == 413 and answer["error"] == "the body is over the API's 0.5 MB limit"
    rate = 8000
    header = len(tone("jazz", seconds=0, rate=rate, fmt="WAV"))
    exact = tone("jazz", seconds=(500_000 - header) / 2 / rate, rate=rate, fmt="WAV")  # 16-bit mono
    assert len(exact) == 500_000
    code, _, answer = call(url, iter([exact]), wav)
    assert (code, answer["genre"]) == (200, "jazz")


def test_multipart_without_the_file_field_and_the_page_still_served(api):
    body, headers = multipart("audio", "x.wav", tone("rock", fmt="WAV"))
    code, _, answer = call(f"{api.base}/api/v1/classify", body, headers)
    assert code == 400 and answer["error"] == "the multipart body has no field 'file'"
    with urllib.request.urlopen(f"{api.base}/", timeout=WAIT_S) as page:  # the page's catch-all is untouched
        assert "<title>genrecast</title>" in page.read().decode()


def test_streams_and_health_follow_the_mqtt_feed(api, broker):
    code, _, answer = call(f"{api.base}/api/v1/streams")
    assert code == 200 and answer == {"mqtt_connected": True, "streams": []}
    messages = [
        ("genrecast/kitchen/status", json.dumps(status("kitchen")), True),
        ("genrecast/kitchen/prediction", json.dumps(prediction("kitchen", "jazz", 0.8, music=0.9,
                                                              tags={"jazz": 0.7, "blues": 0.4})), False),
        ("genrecast/kitchen/genre", json.dumps(genre("kitchen", "jazz", confidence=0.75)), True),
    ]
    mqtt_publish.multiple([{"topic": t, "payload": p, "retain": r, "qos": 1} for t, p, r in messages],
                          hostname=broker.host, port=broker.port)
    streams = wait_until(lambda: [s for s in call(f"{api.base}/api/v1/streams")[2]["streams"] if s["since"]],
                         "the stream's genre message")
    (kitchen,) = streams
    assert {k: kitchen[k] for k in ("stream_id", "status", "reason", "source", "kind", "genre", "confidence", "music",
                                    "model_id")} == {
        "stream_id": "kitchen", "status": "online", "reason": None, "source": "file:kitchen.wav",
        "kind": "genre", "genre": "jazz", "confidence": 0.75, "music": True, "model_id": "gtzan-cnn-1"}
    assert list(kitchen["tags"].items()) == [("jazz", 0.7), ("blues", 0.4)]  # the latest window's, as the card
    assert kitchen["since"].endswith("+00:00") and kitchen["last_message_at"].endswith("+00:00")
    assert 0 <= kitchen["last_message_age_s"] < WAIT_S
    # the same message, the same time at every poll (wall time less an age moved by microseconds: always "new")
    assert {call(f"{api.base}/api/v1/streams")[2]["streams"][0]["last_message_at"] for _ in range(5)} == {
        kitchen["last_message_at"]}
    code, _, health = call(f"{api.base}/api/v1/health")
    assert code == 200
    assert health == {"status": "ok", "mqtt_connected": True, "streams": 1, "classify_jobs": 0,
                      "classify_capacity": 5}
    # a stream that ended before the dashboard started: its retained genre message's tags (they showed as none)
    mqtt_publish.single("genrecast/den/genre", json.dumps({**genre("den", "jazz"), "tags": {"jazz": 0.5}}),
                        retain=True, hostname=broker.host, port=broker.port)
    (den,) = wait_until(lambda: [s for s in call(f"{api.base}/api/v1/streams")[2]["streams"]
                                 if s["stream_id"] == "den"], "the ended stream")
    assert den["tags"] == {"jazz": 0.5}
    # why a stream is not online, as its card's pill says on hover: a client could not tell an error from an end
    mqtt_publish.single("genrecast/kitchen/status", json.dumps(status("kitchen", "offline", reason="error: x: boom")),
                        retain=True, hostname=broker.host, port=broker.port)
    (kitchen,) = wait_until(lambda: [s for s in call(f"{api.base}/api/v1/streams")[2]["streams"]
                                     if s["status"] == "offline"], "the stream offline")
    assert kitchen["reason"] == "error: x: boom"


def test_a_full_pool_gets_503_and_the_page_stays_live(broker, model_path):
    running = serve(broker, model_path, ApiSettings(), pool=BoundedPool(workers=1, backlog=0))
    started, release = threading.Event(), threading.Event()
    blocker = threading.Thread(target=running.offline.pool.run, args=(lambda: (started.set(), release.wait(WAIT_S)),))
    blocker.start()
    try:
        assert started.wait(WAIT_S)
        code, headers, answer = call(f"{running.base}/api/v1/classify", tone("jazz"), {"Content-Type": "audio/flac"})
        assert (code, headers["Retry-After"]) == (503, "1") and answer["error"].startswith("busy:")
        assert call(f"{running.base}/api/v1/health")[2]["classify_jobs"] == 1
        with urllib.request.urlopen(f"{running.base}/", timeout=WAIT_S) as page:
            assert page.status == 200
        release.set()
        blocker.join(WAIT_S)
        code, _, answer = call(f"{running.base}/api/v1/classify", tone("jazz"), {"Content-Type": "audio/flac"})
        assert (code, answer["genre"]) == (200, "jazz")
    finally:
        release.set()
        stop(running)


def test_missing_model_is_503_not_500(broker):
    running = serve(broker, "/nonexistent/model.onnx", ApiSettings())
    try:
        code, _, answer = call(f"{running.base}/api/v1/classify", tone("jazz"), {"Content-Type": "audio/flac"})
    finally:
        stop(running)
    assert code == 503 and "the model cannot be used" in answer["error"] and "no such file" in answer["error"]


def test_token_guards_every_api_route(broker, model_path):
    running = serve(broker, model_path, ApiSettings(token=TOKEN))
    try:
        for path in ("/api/v1/health", "/api/v1/streams", "/api/v1/classify", "/api/v2/x"):
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN},
                            {"Authorization": f"Basic {TOKEN}"}):
                code, got, answer = call(running.base + path, headers=headers)
                assert (code, got["WWW-Authenticate"]) == (401, 'Bearer realm="genrecast"'), (path, headers)
                assert "bearer token" in answer["error"]
        code, _, health = call(f"{running.base}/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"})
        assert (code, health["status"]) == (200, "ok")
        code, _, answer = call(f"{running.base}/api/v1/classify", tone("rock"),
                               {"Authorization": f"bearer {TOKEN}", "Content-Type": "audio/flac"})
        assert (code, answer["genre"]) == (200, "rock")
    finally:
        stop(running)


def page_request(base: str, path: str, body: bytes | None = None, cookie: str | None = None,
                 accept: str = "application/json") -> tuple[int, dict, bytes]:
    """(status, headers, body) without following redirects."""
    import http.client
    from urllib.parse import urlsplit

    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=WAIT_S)
    try:
        headers = {"Accept": accept, **({"Cookie": cookie} if cookie else {})}
        if body is not None:
            headers["Content-Type"] = ("application/x-www-form-urlencoded" if path == "/login"
                                       else "application/json")
        conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_the_token_guards_the_page_and_every_dash_route(broker, model_path):
    """Without the session cookie nothing of the page answers: not the layout, not a callback (which returned
    every stream's id, status and genre before), not the upload; the login form sets the cookie."""
    from urllib.parse import urlencode

    running = serve(broker, model_path, ApiSettings(token=TOKEN))
    try:
        callback = json.dumps({"output": "file-result.children",
                               "outputs": {"id": "file-result", "property": "children"},
                               "inputs": [{"id": "upload", "property": "contents",
                               "value": "data:audio/flac;base64,AAAA"}], "changedPropIds": ["upload.contents"],
                               "state": [{"id": "upload", "property": "filename", "value": "x.flac"}]}).encode()
        for path in ("/_dash-layout", "/_dash-dependencies", "/assets/style.css", "/_favicon.ico",
                     "/_dash-component-suites/dash/dcc/dash_core_components.js"):
            assert page_request(running.base, path)[0] == 401, path
        assert page_request(running.base, "/_dash-update-component", callback)[0] == 401
        status, headers, _ = page_request(running.base, "/", accept="text/html")
        assert (status, headers["location"]) == (303, "/login")
        status, _, form = page_request(running.base, "/login", accept="text/html")
        assert status == 200 and b'name="token"' in form
        status, headers, _ = page_request(running.base, "/login", urlencode({"token": "wrong-" + TOKEN}).encode())
        assert status == 401 and "set-cookie" not in headers
        status, headers, _ = page_request(running.base, "/login", urlencode({"token": TOKEN}).encode())
        assert (status, headers["location"]) == (303, "/")
        cookie = headers["set-cookie"]
        assert all(flag in cookie for flag in ("HttpOnly", "SameSite=Lax", "Secure", "Path=/"))
        assert TOKEN not in cookie
        session = cookie.split(";")[0]
        assert page_request(running.base, "/", cookie=session, accept="text/html")[0] == 200
        assert page_request(running.base, "/_dash-layout", cookie=session)[0] == 200
        status, _, body = page_request(running.base, "/_dash-update-component", callback, cookie=session)
        assert status == 200 and b"file-result" in body
        forged = session[:-4] + ("AAAA" if not session.endswith("AAAA") else "BBBB")
        assert page_request(running.base, "/_dash-layout", cookie=forged)[0] == 401
        # the API keeps its bearer token: the page's cookie is not one
        assert call(f"{running.base}/api/v1/health", headers={"Cookie": session})[0] == 401
    finally:
        stop(running)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_command_requires_the_token_and_never_logs_it(broker, model_path, how):
    port = free_port()
    genrecast = Path(sys.executable).with_name("genrecast")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENRECAST_")}
    args = [str(genrecast), "dashboard", "--broker", broker.url, "--port", str(port), "--model", model_path]
    if how == "flag":
        args += ["--api-token", TOKEN]
    else:
        env["GENRECAST_API_TOKEN"] = TOKEN
    wrong = "wrong-" + uuid.uuid4().hex
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, timeout=60)
        base = f"http://127.0.0.1:{port}/api/v1"
        assert call(f"{base}/health")[0] == 401
        assert call(f"{base}/streams", headers={"Authorization": f"Bearer {wrong}"})[0] == 401
        code, _, answer = call(f"{base}/classify", tone("jazz"),
                               {"Authorization": f"Bearer {TOKEN}", "Content-Type": "audio/flac"})
        assert (code, answer["genre"]) == (200, "jazz")
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert "page and API need the token" in output  # the second refusal is held back by the repeat limit
    assert output.count("refused an API request without the right token, from 127.0.0.1") == 1, output
    assert TOKEN not in output and wrong not in output


def test_a_bad_token_is_refused_without_echoing_it(model_path):
    genrecast = Path(sys.executable).with_name("genrecast")
    secret = "short-" + uuid.uuid4().hex[:4]
    proc = subprocess.run([str(genrecast), "dashboard", "--api-token", secret, "--port", "0"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "genrecast dashboard: error: --api-token: must be 16 to 512 printable ASCII characters " \
                          "without spaces\n"


def test_loopback_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    # a dual-stack socket's IPv4 peer: a reverse proxy on 127.0.0.1 reaching --host :: (it was held back as a guesser)
    assert is_loopback("::ffff:127.0.0.1") and not is_loopback("::ffff:192.168.1.5")


def test_an_address_that_guesses_tokens_is_held_back(model_path):
    """Before, every wrong token was answered 401 at once: anyone who could reach the dashboard could try about
    150 a second. Ten wrong ones in a minute from one address now hold that address back (429, the right token too:
    a guesser learns nothing meanwhile); another address is not, nor loopback (a proxy there names its visitors:
    test_dashboard_server.py).
    Flask's test client: a client of another address than loopback cannot exist in a loopback-only test."""
    history = History()
    app = create_app(history, Feed(BrokerConfig(), "genrecast", history), OfflineClassifier(str(model_path)),
                     ApiSettings(token=TOKEN))
    client = app.server.test_client()

    def api(address: str, token: str) -> int:
        return client.get("/api/v1/streams", headers={"Authorization": f"Bearer {token}"},
                          environ_base={"REMOTE_ADDR": address}).status_code

    for _ in range(10):
        assert api("192.0.2.7", "wrong-" + TOKEN) == 401
    held = client.get("/api/v1/streams", headers={"Authorization": f"Bearer {TOKEN}"},
                      environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert held.status_code == 429 and 0 < int(held.headers["Retry-After"]) <= 60, held.get_json()
    login = client.post("/login", data={"token": TOKEN}, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert login.status_code == 429 and b"too many wrong tokens" in login.data
    assert api("192.0.2.8", TOKEN) == 200
    for _ in range(20):
        assert api("127.0.0.1", "wrong-" + TOKEN) == 401
    assert api("127.0.0.1", TOKEN) == 200


def test_a_held_back_address_may_try_again_once_its_minute_is_over():
    from genrecast.dashboard.auth import GUESS_SECONDS, GUESSES, Credentials

    now = [1000.0]
    credentials = Credentials(TOKEN, clock=lambda: now[0])
    for _ in range(GUESSES):
        assert credentials.wait("192.0.2.7") == 0
        credentials.wrong("192.0.2.7")
        now[0] += 1
    assert credentials.wait("192.0.2.7") == pytest.approx(GUESS_SECONDS - GUESSES)
    now[0] += GUESS_SECONDS
    assert credentials.wait("192.0.2.7") == 0


def test_an_ipv6_guesser_is_held_back_across_its_64():
    """Before, each address counted apart: a host with a /64 (every IPv6 host) guessed without limit by rotating
    its address. A dual-stack socket's IPv4 peer counts as itself."""
    from genrecast.dashboard.auth import GUESSES, Credentials

    credentials = Credentials(TOKEN)
    for i in range(GUESSES):
        credentials.wrong(f"2001:db8:1:2::{i + 1:x}")
    assert credentials.wait("2001:db8:1:2:aaaa::1") > 0
    assert credentials.wait("2001:db8:1:3::1") == 0  # another /64: another site
    for _ in range(GUESSES):
        credentials.wrong("::ffff:192.0.2.7")
    assert credentials.wait("192.0.2.7") > 0 and credentials.wait("192.0.2.8") == 0


def test_ended_sessions_are_kept_in_their_file_until_they_would_have_expired(tmp_path, caplog, monkeypatch):
    """What a restart reads back (dashboard/sessions.py): ids still unexpired; expired ones are dropped, so the file
    does not grow with every logout; past MAX_ENDED the soonest to expire goes; a damaged file is named, not fatal."""
    from genrecast.dashboard import sessions

    now = [1000.0]
    ended = sessions.EndedSessions(tmp_path, clock=lambda: now[0])
    ended.end("a", 1100.0)
    ended.end("b", 2000.0)
    assert "a" in ended and "b" in ended and "c" not in ended
    now[0] = 1500.0
    ended.end("c", 3000.0)
    assert "a" not in ended
    assert set(json.loads((tmp_path / sessions.FILE).read_text())) == {"b", "c"}
    now[0] = 2500.0
    again = sessions.EndedSessions(tmp_path, clock=lambda: now[0])
    assert "c" in again and "b" not in again
    monkeypatch.setattr(sessions, "MAX_ENDED", 2)
    again.end("d", 4000.0)
    again.end("e", 5000.0)
    assert ("c" in again, "d" in again, "e" in again) == (False, True, True)
    (tmp_path / sessions.FILE).write_text("{not json")
    with caplog.at_level("WARNING"):
        assert "d" not in sessions.EndedSessions(tmp_path, clock=lambda: now[0])
    assert f"{tmp_path / sessions.FILE}: unreadable" in caplog.text
