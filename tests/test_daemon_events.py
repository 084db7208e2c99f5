"""The MQTT payloads against their JSON Schemas, and the schemas against bad payloads."""

from __future__ import annotations

import json

import jsonschema
import pytest
from daemon_helpers import SCHEMAS, validate
from genrecast.daemon.decision import State
from genrecast.daemon.events import (
    DaemonStatus,
    GenreChange,
    Prediction,
    Status,
    UnpublishableError,
    utc_now,
)
from genrecast.dsp import GTZAN_GENRES


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schemas_are_valid_draft_2020_12(name):
    jsonschema.Draft202012Validator.check_schema(SCHEMAS[name])


def messages():
    probs = {g: 0.1 for g in GTZAN_GENRES}
    probs["rock"] = 0.1000001
    yield Status("online", "m-1", "file:/a.wav").message("genrecast", "kitchen")
    yield Status("offline", reason="connection lost").message("genrecast", "kitchen")
    yield Prediction("m-1", 0.0, 3.0, probs, State("uncertain", None, 0.1), 0.2, 1.5).message("genrecast", "kitchen")
    yield GenreChange("m-1", State("genre", "rock", 0.8), utc_now()).message("home/audio", "kitchen")
    yield GenreChange("m-1", State("silence", None, 1.0), utc_now()).message("genrecast", "kitchen")
    yield Prediction("m-1", 0.0, 3.0, probs, State("no_music", None, 0.8), 0.2, 1.5, music=0.2).message(
        "genrecast", "kitchen")
    yield GenreChange("m-1", State("no_music", None, 0.8), utc_now()).message("genrecast", "kitchen")
    yield Status("stalled", "m-1", "mic:USB", "no audio for 10 s", "den", "genrecast-den-h-0a1b2c", 1.5).message(
        "genrecast", "kitchen")
    yield Prediction("m-1", 0.0, 3.0, probs, State("genre", "rock", 0.8), 0.2, 1.5, music=0.9,
                     tags={"rock": 0.61, "80s": 0.32}).message("genrecast", "kitchen")
    yield GenreChange("m-1", State("genre", "rock", 0.8), utc_now(), {"rock": 0.61}).message("genrecast", "kitchen")


def test_tags_are_sent_only_by_a_model_with_tags():
    all_ = list(messages())
    assert json.loads(all_[8].payload)["tags"] == {"rock": 0.61, "80s": 0.32}
    assert list(json.loads(all_[8].payload)["tags"]) == ["rock", "80s"]  # the likeliest first, as given
    assert json.loads(all_[9].payload)["tags"] == {"rock": 0.61}
    assert "tags" not in json.loads(all_[5].payload) and "tags" not in json.loads(all_[3].payload)


def test_music_is_sent_only_by_a_model_with_a_music_head():
    with_head, without = list(messages())[5], list(messages())[2]
    assert json.loads(with_head.payload)["music"] == 0.2 and "music" not in json.loads(without.payload)


@pytest.mark.parametrize("msg", list(messages()), ids=lambda m: m.topic)
def test_every_message_kind_validates(msg):
    payload = json.loads(msg.payload)
    assert payload["version"] == 1 and payload["stream_id"] == "kitchen"
    validate(msg.topic, payload)
    assert msg.retain == (not msg.topic.endswith("/prediction"))


def test_a_predictions_state_says_whether_the_decision_is_music_as_the_genre_topic_does():
    """Not only the window's music probability: a consumer of predictions alone can tell a judged ``uncertain``
    (music with no clear genre) from one not judged yet, as Home Assistant's Music sensor does from the genre topic."""
    probs = {g: 0.1 for g in GTZAN_GENRES}
    for state, music in ((State("uncertain", None, 0.3), None), (State("uncertain", None, 0.3, judged=True), True),
                         (State("genre", "rock", 0.8), True), (State("no_music", None, 0.8), False),
                         (State("silence", None, 1.0), False)):
        prediction = Prediction("m-1", 0.0, 3.0, probs, state, 0.2, 1.5, music=0.5).message("genrecast", "kitchen")
        genre = GenreChange("m-1", state, utc_now()).message("genrecast", "kitchen")
        validate(prediction.topic, json.loads(prediction.payload))
        assert json.loads(prediction.payload)["state"]["music"] is music is json.loads(genre.payload)["music"]


def test_prediction_top_is_the_most_probable_label():
    msg = next(m for m in messages() if m.topic.endswith("/prediction"))
    assert json.loads(msg.payload)["top"] == {"genre": "rock", "confidence": 0.1}


@pytest.mark.parametrize(
    ("topic", "change"),
    [
        ("p/s/status", lambda p: p.update(state="away")),
        ("p/s/status", lambda p: p.update(dropped_s=-1)),
        ("p/s/status", lambda p: p.pop("time")),
        ("p/s/status", lambda p: p.update(version=2)),
        ("p/s/prediction", lambda p: p.pop("top")),
        ("p/s/prediction", lambda p: p["probabilities"].update(rock=1.5)),
        ("p/s/prediction", lambda p: p["state"].update(kind="genre", genre=None)),
        ("p/s/genre", lambda p: p.update(kind="genre", genre=None)),
        ("p/s/genre", lambda p: p.update(kind="silence", genre="rock")),
        ("p/s/genre", lambda p: p.update(kind="no_music", genre="rock")),
        ("p/s/genre", lambda p: p.update(kind="speech", genre=None)),
        ("p/s/genre", lambda p: p.update(music=False)),  # a genre is music
        ("p/s/genre", lambda p: p.update(kind="silence", genre=None, music=True)),
        ("p/s/genre", lambda p: p.update(kind="no_music", genre=None, music=None)),
        ("p/s/genre", lambda p: p.update(music="yes")),
        ("p/s/genre", lambda p: p.update(kind="uncertain", genre=None, music=False)),  # never decided so
        ("p/s/prediction", lambda p: p.update(music=1.5)),
        ("p/s/prediction", lambda p: p["state"].update(kind="no_music", genre="rock")),
        ("p/s/prediction", lambda p: p["state"].update(kind="no_music", music=True)),  # no_music is not music
        ("p/s/genre", lambda p: p.update(since="yesterday")),
        ("p/s/prediction", lambda p: p.update(tags={"rock": 1.5})),
        ("p/s/prediction", lambda p: p.update(tags=["rock"])),
        ("p/s/prediction", lambda p: p.update(tags={f"t{i}": 0.5 for i in range(6)})),
        ("p/s/genre", lambda p: p.update(tags={"rock": "high"})),
    ],
)
def test_schemas_reject_broken_payloads(topic, change):
    kind = topic.rsplit("/", 1)[-1]
    msg = next(m for m in messages() if m.topic.endswith(kind))
    payload = json.loads(msg.payload)
    validate(topic, payload)
    change(payload)
    with pytest.raises(jsonschema.ValidationError):
        validate(topic, payload)


@pytest.mark.parametrize("msg", [DaemonStatus("online", "genrecast-den-h-0a1b2c", ("a", "b")).message("g", "den"),
                                 DaemonStatus("offline", "i", reason="connection lost").message("g", "den")])
def test_the_process_status_validates(msg):
    assert msg.topic == "g/_daemon/den/status" and msg.retain
    validate(msg.topic, json.loads(msg.payload))
    with pytest.raises(jsonschema.ValidationError):
        validate(msg.topic, {**json.loads(msg.payload), "state": "stalled"})


def test_the_dashboard_tests_payloads_follow_the_same_schemas():
    """The dashboard is tested against hand-written payloads; they must be ones the daemon could send."""
    dashboard_payloads = pytest.importorskip("dashboard_payloads")
    validate("g/kitchen/status", dashboard_payloads.status("kitchen"))
    validate("g/kitchen/status", dashboard_payloads.status("kitchen", "offline", reason="stopped"))
    validate("g/kitchen/prediction", dashboard_payloads.prediction("kitchen"))
    validate("g/kitchen/prediction", dashboard_payloads.prediction("kitchen", kind="uncertain"))
    validate("g/kitchen/genre", dashboard_payloads.genre("kitchen"))
    validate("g/kitchen/genre", dashboard_payloads.genre("kitchen", None, "silence", 1.0))
    validate("g/kitchen/genre", dashboard_payloads.genre("kitchen", None, "no_music", 0.9))
    validate("g/kitchen/prediction", dashboard_payloads.prediction("kitchen", kind="no_music", music=0.1))
    validate("g/kitchen/prediction", dashboard_payloads.prediction("kitchen", music=0.9, tags={"rock": 0.5}))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_number_is_never_serialised(bad):
    probs = dict.fromkeys(GTZAN_GENRES, 0.1)
    with pytest.raises(UnpublishableError, match="prediction message for kitchen holds a NaN or infinite number"):
        Prediction("m-1", 0.0, 3.0, probs, State("genre", "rock", bad), 0.2, 1.5).message("genrecast", "kitchen")
    with pytest.raises(UnpublishableError):
        GenreChange("m-1", State("genre", "rock", bad), utc_now()).message("genrecast", "kitchen")


def test_the_schemas_say_what_the_shared_contract_says():
    """The schemas are the contract's published form; the daemon and the dashboard read its words from
    genrecast.contract. A state added to one and not the other would be refused by a consumer that validates."""
    from genrecast import contract

    for name, schema in SCHEMAS.items():
        assert schema["properties"]["version"] == {"const": contract.VERSION}, name
    assert SCHEMAS["status"]["properties"]["state"]["enum"] == list(contract.STREAM_STATES)
    assert SCHEMAS["daemon-status"]["properties"]["state"]["enum"] == list(contract.PROCESS_STATES)
    assert SCHEMAS["genre"]["properties"]["kind"]["enum"] == list(contract.DECISION_KINDS)
    assert SCHEMAS["prediction"]["properties"]["state"]["properties"]["kind"]["enum"] == list(contract.DECISION_KINDS)
    assert set(SCHEMAS) == {*contract.MESSAGE_KINDS, "daemon-status"}
