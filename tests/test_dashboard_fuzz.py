"""No single message may break the page: a corpus of hostile payloads, fed through the feed into the history,
then rendered by the page's own poll functions in UTC and in a zone west of it (where year 1 and 9999 overflow)."""

from __future__ import annotations

import copy
import json
import random
import time

import pytest
from dashboard_payloads import encode, genre, prediction, status
from genrecast.daemon.broker import BrokerConfig
from genrecast.dashboard.app import overview_outputs, stream_outputs
from genrecast.dashboard.feed import Feed
from genrecast.dashboard.history import History
from genrecast.dashboard.parse import PayloadError, parse_message

HOSTILE = [
    None, True, False, 0, -1, 1, 0.5, -0.0, 1e308, -1e308, 10**30, 2**63, "", "x" * 200, "x" * 201,
    "<b>bold</b>", "\u202e\u0000", "rock", "genre", "silence", "online", [], {}, [1, 2], {"a": {"b": None}},
    "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2199-12-31T23:59:59Z",
    "2026-02-30T00:00:00Z", "2026-01-01T00:00:00",
]


def _paths(d: dict, base: tuple = ()) -> list[tuple]:
    out = []
    for key, value in d.items():
        out.append((*base, key))
        if isinstance(value, dict):
            out += _paths(value, (*base, key))
    return out


def _set(d: dict, path: tuple, value) -> dict:
    d = copy.deepcopy(d)
    target = d
    for key in path[:-1]:
        target = target.get(key) if isinstance(target, dict) else None
    if isinstance(target, dict):  # an earlier mutation may have replaced the parent object
        target[path[-1]] = value
    return d


def corpus() -> list[tuple[str, bytes]]:
    """Every field of every kind set to every hostile value, plus random multi-field mutations."""
    rng = random.Random(10)
    base = {"status": status("s"), "prediction": prediction("s"), "genre": genre("s")}
    out = []
    for kind, payload in base.items():
        paths = [p for p in _paths(payload) if p != ("stream_id",)]
        for path in paths:
            for value in HOSTILE:
                out.append((kind, _set(payload, path, value)))
        for _ in range(150):
            mutated = payload
            for path in rng.sample(paths, 3):
                mutated = _set(mutated, path, rng.choice(HOSTILE))
            out.append((kind, mutated))
    messages = []
    for i, (kind, payload) in enumerate(out):
        sid = f"s{i % 50:02d}"  # a few dozen streams, each hit by many different payloads in turn
        payload = {**payload, "stream_id": sid}
        messages.append((f"genrecast/{sid}/{kind}", json.dumps(payload).encode()))
    return messages


@pytest.fixture(params=["UTC", "America/New_York", "Asia/Kathmandu"])
def zone(request, monkeypatch):
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def test_no_message_breaks_a_poll(zone):
    history = History(clock=lambda: 1000.0)
    feed = Feed(BrokerConfig(), "genrecast", history)
    messages = corpus()
    for topic, payload in messages:
        feed.handle(topic, payload)
        selected = topic.split("/")[1]
        overview_outputs(history, feed, selected, None)  # raises if any card cannot be rendered
        stream_outputs(history, selected, None)
    assert 0 < feed.status().rejected < len(messages)  # the corpus holds both kinds


@pytest.mark.parametrize("field", ["since", "time"])
@pytest.mark.parametrize("value", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00",
                                   "0001-01-01T00:00:00+05:00", "1969-12-31T23:59:59Z"])
def test_times_outside_a_sane_range_are_refused(field, value):
    with pytest.raises(PayloadError, match=field):
        parse_message("genrecast", "genrecast/k/genre", encode({**genre("k"), field: value}))


def test_a_stream_that_cannot_be_drawn_costs_its_card_only(monkeypatch):
    """Second line of defence: should the parser let through what rendering cannot take, the rest still shows."""
    from genrecast.dashboard import render

    history = History(clock=lambda: 1000.0)
    feed = Feed(BrokerConfig(), "genrecast", history)
    for sid in ("a", "b"):
        feed.handle(f"genrecast/{sid}/prediction", encode(prediction(sid)))
    real = render.stream_card

    def broken_for_a(view, *args):
        if view.stream_id == "a":
            raise OverflowError("date value out of range")
        return real(view, *args)

    monkeypatch.setattr(render, "stream_card", broken_for_a)
    monkeypatch.setattr(render, "timeline_figure", lambda *args: 1 / 0)
    _, cards, *_ = overview_outputs(history, feed, "a", None)
    assert "cannot show this stream (OverflowError)" in str(cards[0]) and "rock" in str(cards[1])
    bars, timeline, facts, _ = stream_outputs(history, "a", None)
    assert "ZeroDivisionError" in bars["layout"]["title"]["text"] and facts == []


def test_until_one_is_chosen_the_first_online_stream_is_shown():
    from dash import no_update

    history = History(clock=lambda: 0.0)
    feed = Feed(BrokerConfig(), "genrecast", history)
    for sid, state in (("attic", "offline"), ("kitchen", "online"), ("zoo", "online")):
        history.add(parse_message("genrecast", f"genrecast/{sid}/status", encode(status(sid, state))))
    assert overview_outputs(history, feed, None, None)[-2] == "kitchen"  # it was "attic", ended long ago
    assert overview_outputs(history, feed, "zoo", None)[-2] is no_update  # a choice stays
