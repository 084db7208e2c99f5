"""Payload parsing: the daemon's own messages parse; anything off-contract is refused, counted, never raised."""

from __future__ import annotations

import json

import pytest
from dashboard_payloads import encode, genre, prediction, status
from genrecast.daemon.broker import BrokerConfig
from genrecast.dashboard.feed import Feed
from genrecast.dashboard.history import History
from genrecast.dashboard.parse import GenreChange, PayloadError, Prediction, Status, parse_message

P = "genrecast"


def test_contract_payloads_parse():
    s = parse_message(P, "genrecast/kitchen/status", encode(status("kitchen", "offline", reason="sigterm")))
    assert isinstance(s, Status) and (s.stream_id, s.state, s.reason) == ("kitchen", "offline", "sigterm")
    p = parse_message(P, "genrecast/kitchen/prediction", encode(prediction("kitchen", "jazz", 0.55)))
    assert isinstance(p, Prediction)
    assert dict(zip(p.labels, p.probabilities, strict=True))["jazz"] == pytest.approx(0.55)
    assert (p.decision.kind, p.decision.genre, p.top_genre) == ("genre", "jazz", "jazz")
    assert p.time.tzinfo is not None
    g = parse_message(P, "genrecast/kitchen/genre", encode(genre("kitchen", None, "silence")))
    assert isinstance(g, GenreChange) and (g.decision.kind, g.decision.genre) == ("silence", None)
    assert p.music is None  # a model without a music head sends none


def test_no_music_and_the_music_probability_parse():
    p = parse_message(P, "genrecast/kitchen/prediction", encode(prediction("kitchen", kind="no_music", music=0.12)))
    assert (p.decision.kind, p.decision.genre, p.music) == ("no_music", None, pytest.approx(0.12))
    g = parse_message(P, "genrecast/kitchen/genre", encode(genre("kitchen", None, "no_music", 0.88)))
    assert (g.decision.kind, g.decision.genre, g.music) == ("no_music", None, False)
    unsure = {**genre("kitchen", None, "uncertain", 0.3), "music": True}  # music with no clear genre
    assert parse_message(P, "genrecast/kitchen/genre", encode(unsure)).music is True
    older = {k: v for k, v in genre("kitchen").items() if k != "music"}  # a daemon that sends no music
    assert parse_message(P, "genrecast/kitchen/genre", encode(older)).music is None


def test_tags_parse_likeliest_first_and_are_none_when_absent():
    p = parse_message(P, "genrecast/kitchen/prediction",
                      encode(prediction("kitchen", music=0.9, tags={"80s": 0.31, "rock": 0.62})))
    assert p.tags == (("rock", 0.62), ("80s", 0.31))
    assert parse_message(P, "genrecast/kitchen/prediction", encode(prediction("kitchen"))).tags == ()


def test_a_provisional_window_says_so_and_a_full_one_does_not():
    window = {**prediction("kitchen"), "provisional": True}
    assert parse_message(P, "genrecast/kitchen/prediction", encode(window)).provisional
    assert not parse_message(P, "genrecast/kitchen/prediction", encode(prediction("kitchen"))).provisional


def test_a_long_reason_or_source_is_cut_not_refused():
    """The daemon sets no length on them (a file source's path, an error naming it, the streams a process lost):
    over 200 characters the whole status was refused, and the stream or its process never showed offline."""
    events = pytest.importorskip("genrecast.daemon.events")
    path = "file:/srv/" + "recordings/" * 30 + "x.wav"
    m = events.Status("offline", source=path, reason=f"error: {path[5:]}: no such file").message(P, "den")
    s = parse_message(P, m.topic, m.payload.encode())
    assert (len(s.source), len(s.reason)) == (200, 200) and s.reason.endswith("…") and s.state == "offline"
    m = events.DaemonStatus("offline", "i", reason="end of stream; failed: " + ", ".join(f"s{i}" for i in range(99)))
    gone = parse_message(P, m.message(P, "vm").topic, m.message(P, "vm").payload.encode())
    assert not gone.online and len(gone.reason) == 200


def test_multi_level_prefix():
    msg = parse_message("home/music", "home/music/den/status", encode(status("den")))
    assert msg.stream_id == "den"


def test_the_daemons_own_messages_parse():
    """Cross-check against the publisher's code, so the two sides cannot drift apart unnoticed."""
    events = pytest.importorskip("genrecast.daemon.events")
    decision = pytest.importorskip("genrecast.daemon.decision")
    state = decision.State("genre", "rock", 0.7)
    probs = dict.fromkeys(("blues", "rock"), 0.5)
    messages = [
        events.Status("online", model_id="m-1", source="file:x.wav").message(P, "den"),
        events.Status("offline", reason="lost").message(P, "den"),
        events.Status("stalled", "m-1", "mic:USB", "no audio for 10 s", "host-1", "genrecast-host-1-x", 0.5).message(
            P, "den"),
        events.Prediction("m-1", 0.0, 3.0, probs, state, 0.2, 3.5).message(P, "den"),
        events.GenreChange("m-1", state, events.utc_now()).message(P, "den"),
        events.GenreChange("m-1", decision.State("silence", None, 0.0), events.utc_now()).message(P, "den"),
        events.GenreChange("m-1", decision.State("no_music", None, 0.9), events.utc_now()).message(P, "den"),
        events.Prediction("m-1", 0.0, 3.0, probs, decision.State("no_music", None, 0.9), 0.2, 3.5, 0.1).message(
            P, "den"),
        events.Prediction("m-1", 0.0, 3.0, probs, state, 0.2, 3.5, 0.9, {"rock": 0.6}).message(P, "den"),
        events.GenreChange("m-1", state, events.utc_now(), {"rock": 0.6}).message(P, "den"),
    ]
    for m in messages:
        assert parse_message(P, m.topic, m.payload.encode()).stream_id == "den"


def _mutated(kind: str, change) -> tuple[str, bytes]:
    build = {"status": status, "prediction": prediction, "genre": genre}[kind]
    payload = build("kitchen")
    change(payload)
    return f"genrecast/kitchen/{kind}", encode(payload)


BAD = [
    ("genrecast/kitchen/status", b"not json"),
    ("genrecast/kitchen/prediction", b""),  # only retained topics are cleared with an empty payload
    ("genrecast/kitchen/status", b"\xff\xfe"),
    ("genrecast/kitchen/status", b"[1, 2]"),
    ("genrecast/kitchen/status", b"[" * 30_000 + b"]" * 30_000),
    ("genrecast/kitchen/status", encode(status("kitchen"))[:-1] + b" " * 70_000 + b"}"),  # over the size cap
    ("genrecast/kitchen/other", encode(status("kitchen"))),
    ("genrecast/kitchen/extra/status", encode(status("kitchen"))),
    ("elsewhere/kitchen/status", encode(status("kitchen"))),
    ("genrecast/garage/status", encode(status("kitchen"))),  # stream id differs from the topic's
    _mutated("status", lambda d: d.update(version=2)),
    _mutated("status", lambda d: d.pop("version")),
    _mutated("status", lambda d: d.update(state="sleeping")),
    _mutated("status", lambda d: d.update(time="yesterday")),
    _mutated("status", lambda d: d.update(model_id=42)),
    _mutated("status", lambda d: d.update(source="")),  # a long one is cut, not refused (see above)
    _mutated("prediction", lambda d: d["probabilities"].update(rock="0.5")),
    _mutated("prediction", lambda d: d["probabilities"].update(rock=1.5)),
    _mutated("prediction", lambda d: d["probabilities"].update(rock=True)),
    _mutated("prediction", lambda d: d.update(probabilities={})),
    _mutated("prediction", lambda d: d.update(probabilities={f"g{i}": 0.0 for i in range(1000)})),
    _mutated("prediction", lambda d: d.update(top=None)),
    _mutated("prediction", lambda d: d.update(state={"kind": "genre", "genre": None, "confidence": 0.5})),
    _mutated("prediction", lambda d: d.update(state={"kind": "silence", "genre": "rock", "confidence": 0.5})),
    _mutated("prediction", lambda d: d.update(latency_ms=None)),
    _mutated("prediction", lambda d: d.update(music=1.5)),
    _mutated("prediction", lambda d: d.update(music="high")),
    _mutated("prediction", lambda d: d.update(tags=["rock"])),
    _mutated("prediction", lambda d: d.update(tags={"rock": 2.0})),
    _mutated("prediction", lambda d: d.update(tags={"x" * 201: 0.5})),
    _mutated("prediction", lambda d: d.update(tags={f"t{i}": 0.5 for i in range(6)})),  # the contract says 5
    _mutated("prediction", lambda d: d.update(provisional="yes")),
    _mutated("prediction", lambda d: d.update(state={"kind": "no_music", "genre": "rock", "confidence": 0.5})),
    _mutated("prediction", lambda d: d.update(rms=10**400)),  # valid JSON, too big for a float
    _mutated("prediction", lambda d: d.pop("window_end_s")),
    # the contract's minimum 0 (they were accepted before)
    _mutated("prediction", lambda d: d.update(window_start_s=-1e300)),
    _mutated("prediction", lambda d: d.update(rms=-5)),
    _mutated("prediction", lambda d: d.update(latency_ms=-1e300)),
    _mutated("genre", lambda d: d.update(kind="loud")),
    _mutated("genre", lambda d: d.update(confidence=-0.1)),
    _mutated("genre", lambda d: d.pop("since")),
    _mutated("genre", lambda d: d.update(music="yes")),
]


@pytest.mark.parametrize(("topic", "payload"), BAD)
def test_bad_payloads_are_refused(topic, payload):
    with pytest.raises(PayloadError):
        parse_message(P, topic, payload)


def test_nan_is_refused():
    d = prediction("kitchen")
    d["rms"] = float("nan")
    with pytest.raises(PayloadError):
        parse_message(P, "genrecast/kitchen/prediction", json.dumps(d).encode())  # json writes NaN, reads it back


def test_an_unexpected_parser_error_costs_one_message_not_the_feed(monkeypatch):
    import genrecast.dashboard.feed

    def broken(prefix, topic, payload):
        raise RuntimeError("a bug")

    feed = Feed(BrokerConfig(), P, History())
    monkeypatch.setattr(genrecast.dashboard.feed, "parse_message", broken)
    feed.handle("genrecast/kitchen/status", encode(status("kitchen")))  # must not raise
    assert feed.status().rejected == 1 and "RuntimeError" in feed.status().last_rejection


def test_feed_counts_bad_messages_and_keeps_good_ones():
    """The MQTT callback's path, without a broker: nothing raises, rejects are counted, good ones land."""
    history = History()
    feed = Feed(BrokerConfig(), P, history)
    for topic, payload in BAD:
        feed.handle(topic, payload)
    feed.handle("genrecast/kitchen/status", encode(status("kitchen")))
    assert feed.status().rejected == len(BAD)
    assert feed.status().last_rejection.startswith("genrecast/kitchen/genre")
    assert [v.stream_id for v in history.snapshot().streams] == ["kitchen"]


def test_a_process_status_parses_and_a_bad_one_is_refused():
    from genrecast.dashboard.parse import ProcessStatus, topic_filters

    assert "genrecast/_daemon/+/status" in topic_filters("genrecast")
    events = pytest.importorskip("genrecast.daemon.events")
    will = events.DaemonStatus("offline", "genrecast-rack-h-0a1b2c", ("a",), "connection lost").message(P, "rack")
    assert parse_message(P, will.topic, will.payload.encode()) == ProcessStatus("rack", False, "connection lost")
    # emptied by ha-cleanup: forgotten, not a bad message counted on the page after every clean-up
    assert parse_message(P, will.topic, b"") == ProcessStatus("rack", False, retired=True)
    for payload in (b"[]", encode({"version": 1, "daemon": "other", "state": "offline"}),
                    encode({"version": 1, "daemon": "rack", "state": "asleep"}), b"x" * 70000):
        with pytest.raises(PayloadError):
            parse_message(P, f"{P}/_daemon/rack/status", payload)
