"""Pure rendering rules: what a card says about a stream's liveness, and payload text kept literal in figures."""

from __future__ import annotations

from dashboard_payloads import encode, prediction, status
from genrecast.dashboard.history import History
from genrecast.dashboard.parse import parse_message
from genrecast.dashboard.render import (
    STALE_AFTER_S,
    decision_text,
    plot_text,
    probability_figure,
    status_pill,
    stream_facts,
    timeline_figure,
)


def view_after(*messages):
    h = History(clock=lambda: 0.0)
    for kind, payload in messages:
        h.add(parse_message("genrecast", f"genrecast/{payload['stream_id']}/{kind}", encode(payload)))
    return h.snapshot().streams[0]


def test_status_pill_says_stalled_only_when_we_would_hear_the_stream():
    view = view_after(("status", status("kitchen")))
    assert status_pill(view, 1.0, connected=True).children == "online"
    assert status_pill(view, STALE_AFTER_S + 1, connected=True).children == "stalled"
    assert status_pill(view, STALE_AFTER_S + 1, connected=False).children == "online"  # the header explains
    offline = view_after(("status", status("kitchen", "offline")))
    assert status_pill(offline, STALE_AFTER_S + 1, connected=True).children == "offline"
    unknown = view_after(("prediction", prediction("kitchen")))
    assert status_pill(unknown, 1.0, connected=True).children == "no status"


def test_payload_text_is_literal_in_figures():
    assert plot_text('<a href="x">rock</a> & <b>') == '&lt;a href="x"&gt;rock&lt;/a&gt; &amp; &lt;b&gt;'
    p = prediction("kitchen")
    p["probabilities"]["<i>polka</i>"] = p["probabilities"].pop("rock")
    view = view_after(("prediction", p))
    assert "&lt;i&gt;polka&lt;/i&gt;" in probability_figure(view)["data"][0]["x"]
    assert "&lt;i&gt;polka&lt;/i&gt;" in [t["name"] for t in timeline_figure(view)["data"]]


def test_bars_in_genre_order_and_timeline_limited_to_recent_windows():
    early, late = prediction("kitchen"), prediction("kitchen")
    early["time"], late["time"] = "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z"
    view = view_after(("prediction", early), ("prediction", late))
    assert probability_figure(view)["data"][0]["x"][:3] == ["blues", "classical", "country"]
    assert len(timeline_figure(view, seconds=300)["data"][0]["x"]) == 1
    assert len(timeline_figure(view, seconds=3600)["data"][0]["x"]) == 2


def test_a_no_music_stream_shows_no_music_and_its_music_probability():
    view = view_after(("prediction", prediction("kitchen", kind="no_music", confidence=0.9, music=0.1)))
    assert decision_text(view) == ("no_music", "state-no_music")
    assert "music 10%" in [span.children for span in stream_facts(view)]
