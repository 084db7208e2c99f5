"""Pure rendering rules: what a card says about a stream's liveness, and payload text kept literal in figures."""

from __future__ import annotations

import itertools
import json

from dash import Patch, no_update
from dashboard_payloads import encode, genre, prediction, status
from genrecast.dashboard.history import History
from genrecast.dashboard.parse import parse_message
from genrecast.dashboard.render import (
    STALE_AFTER_S,
    TIMELINE_REDRAW_AFTER,
    decision_text,
    plot_text,
    probability_figure,
    status_pill,
    stream_facts,
    timeline_figure,
    timeline_update,
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


def test_a_stream_that_failed_says_why_and_waits_for_nothing():
    """A stream whose source never opened read "offline · waiting…", its hover naming only its process's stop
    (which hid the stream's own "error: /nope.wav: no such file")."""
    from genrecast.dashboard.parse import parse_message

    h = History(clock=lambda: 0.0)
    failed = status("b", "offline", reason="error: /nope.wav: no such file", daemon="vm")
    h.add(parse_message("genrecast", "genrecast/b/status", encode(failed)))
    h.add(parse_message("genrecast", "genrecast/_daemon/vm/status",
                        json.dumps({"version": 1, "daemon": "vm", "state": "offline", "reason": "stopped"}).encode()))
    view = h.snapshot().streams[0]
    pill = status_pill(view, 1.0, connected=True)
    assert pill.children == "offline"
    assert pill.title == "error: /nope.wav: no such file; its process vm is offline (stopped)"
    assert decision_text(view) == ("no answer", "state-none")
    assert decision_text(view_after(("status", status("kitchen")))) == ("waiting…", "state-none")  # online: it will


def test_the_starts_not_yet_known_is_no_decision():
    """Every stream sends "not yet known" (uncertain at confidence 0) before its first window: the card read
    "uncertain · 0%" for it, even for a stream whose source never opened and had gone offline."""
    start = genre("kitchen", None, "uncertain", 0.0)
    waiting = view_after(("status", status("kitchen")), ("genre", start))
    assert waiting.decision is None and decision_text(waiting) == ("waiting…", "state-none")
    gone = view_after(("status", status("kitchen", "offline", reason="error: mic:USB: no such device")),
                      ("genre", start))
    assert decision_text(gone) == ("no answer", "state-none")
    # the first windows' unsure state is the stream's decision, and the refreshes of the first dwell (still "not yet
    # known") leave it: the headline went waiting… / uncertain / waiting… every 10 s
    unsure = prediction("kitchen", kind="uncertain", confidence=0.19)
    first = view_after(("status", status("kitchen")), ("genre", start), ("prediction", unsure), ("genre", start))
    assert decision_text(first) == ("uncertain", "state-uncertain")
    # a new run's start ends the last run's genre
    rerun = view_after(("genre", genre("kitchen", "jazz")), ("genre", start))
    assert rerun.decision is None and rerun.since is None
    # a judged uncertain (music, no clear genre) is a decision
    assert decision_text(view_after(("genre", genre("kitchen", None, "uncertain", 0.31)))) == (
        "uncertain", "state-uncertain")


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
    assert len(timeline_figure(view, seconds=3600)["data"][0]["x"]) == 4  # the two, and the gap's two edges


def test_a_silent_window_names_no_top_genre():
    """During a pause the details read "top classical 89%" with a bright classical bar: the model's answer to
    silence, which means nothing."""
    from genrecast.dashboard.render import MUTED

    silent = {**prediction("kitchen", "classical", confidence=1.0, kind="silence", music=0.02), "rms": 0.0004}
    view = view_after(("prediction", silent))
    facts = [span.children for span in stream_facts(view)]
    assert "silent window" in facts and not any(f.startswith(("top ", "music ")) for f in facts)
    bars = probability_figure(view)
    assert bars["layout"]["title"]["text"].endswith(": silent") and set(bars["data"][0]["marker"]["color"]) == {MUTED}
    heard = view_after(("prediction", prediction("kitchen", "classical", confidence=0.89)))
    assert "top classical 89%" in [span.children for span in stream_facts(heard)]
    assert MUTED not in probability_figure(heard)["data"][0]["marker"]["color"]
    # a quiet window inside the music (a dip: the genre held) is as silent, though its state is the genre's
    dip = view_after(("prediction", {**prediction("kitchen", "classical", confidence=0.89), "quiet": True}))
    assert "silent window" in [span.children for span in stream_facts(dip)]
    assert set(probability_figure(dip)["data"][0]["marker"]["color"]) == {MUTED}
    # the sound after a silence, heard while silence stands until it is judged: not greyed
    judging = view_after(("prediction", prediction("kitchen", "jazz", confidence=0.89, kind="silence")))
    assert "top jazz 89%" in [span.children for span in stream_facts(judging)]
    assert MUTED not in probability_figure(judging)["data"][0]["marker"]["color"]


def test_a_no_music_stream_shows_no_music_and_its_music_probability():
    view = view_after(("prediction", prediction("kitchen", kind="no_music", confidence=0.9, music=0.1)))
    assert decision_text(view) == ("no_music", "state-no_music")
    assert "music 10%" in [span.children for span in stream_facts(view)]


def test_the_card_shows_the_latest_windows_tags_as_chips_likeliest_first():
    from dataclasses import replace

    from genrecast.dashboard.render import card_key, stream_card

    view = view_after(("status", status("kitchen")),
                      ("prediction", prediction("kitchen", music=0.9, tags={"80s": 0.35, "rock": 0.61})))
    chips = [c for c in stream_card(view, 0.0, False, True).children if getattr(c, "className", "") == "chips"]
    assert [(c.children, c.title) for c in chips[0].children] == [("rock", "rock: 61%"), ("80s", "80s: 35%")]
    quiet = view_after(("status", status("kitchen")), ("prediction", prediction("kitchen", kind="no_music",
                                                                                  music=0.1, tags={})))
    assert not any(getattr(c, "className", "") == "chips" for c in stream_card(quiet, 0.0, False, True).children)
    def key(v):
        return card_key(v, 0.0, False, True, False)

    assert key(view) != key(replace(view, latest=replace(view.latest, tags=(("rock", 0.61),))))  # redrawn on news
    assert stream_card(view, 0.0, False, True, compact=True).children[-1].className == "detail age"  # no chips
    # a compact card cuts a long id short ("living-r…"): whole on hover
    (shown_id, _pill) = stream_card(view, 0.0, False, True, compact=True).children[0].children
    assert (shown_id.className, shown_id.title) == ("stream-id", "kitchen")


def test_the_card_says_provisional_until_the_first_full_window():
    from genrecast.dashboard.render import stream_card

    def details(*windows):
        card = stream_card(view_after(("status", status("kitchen")), *windows), 0.0, False, True)
        return [c.children for c in card.children if getattr(c, "className", "") == "detail"][0]

    first = ("prediction", {**prediction("kitchen", "rock", 0.9), "provisional": True})
    assert "provisional" in details(first)
    assert "provisional" not in details(first, ("prediction", prediction("kitchen", "rock", 0.9, t=1.0)))


def test_the_card_says_music_with_no_clear_genre_when_the_daemon_judged_it_so():
    """The genre message's music answer: uncertain music (a medley) reads as music, not as an undecided sound."""
    from genrecast.dashboard.render import card_key, stream_card

    def details(view):
        card = stream_card(view, 0.0, False, True)
        return [c.children for c in card.children if getattr(c, "className", "") == "detail"][0]

    unsure = ("prediction", prediction("kitchen", kind="uncertain", confidence=0.3))
    judged = ("genre", {**genre("kitchen", None, "uncertain", 0.3), "music": True})
    undecided = view_after(("status", status("kitchen")), unsure)
    music = view_after(("status", status("kitchen")), unsure, judged)
    assert details(undecided).startswith("uncertain · 30%")
    assert details(music).startswith("music, no clear genre · 30%")

    def key(v):
        return card_key(v, 0.0, False, True, False)

    assert key(undecided) != key(music)  # redrawn when the answer comes
    # a window of a new state forgets it until that state's genre message comes
    speech = view_after(("status", status("kitchen")), unsure, judged,
                        ("prediction", prediction("kitchen", kind="no_music", confidence=0.8, t=1.0)))
    assert speech.music is None


def test_the_timeline_shades_uncertain_no_music_and_silent_periods():
    from genrecast.dashboard.render import SHADES

    kinds = ["genre", "no_music", "no_music", "silence", "uncertain", "genre"]
    h = History(clock=lambda: 0.0)
    for s, kind in enumerate(kinds):
        p = _at("kitchen", 100 + s, kind=kind)
        h.add(parse_message("genrecast", "genrecast/kitchen/prediction", encode(p)))
    figure = timeline_figure(h.stream("kitchen"))
    shaded = {t["name"]: t for t in figure["data"] if t.get("fill") == "tozeroy"}
    assert list(shaded) == list(SHADES) == ["uncertain", "no_music", "silence"]  # each with its legend entry
    assert shaded["no_music"]["y"] == [0, 1, 1, 0, 0, 0] and shaded["silence"]["y"] == [0, 0, 0, 1, 0, 0]
    assert shaded["uncertain"]["y"] == [0, 0, 0, 0, 1, 0]
    assert all(t["line"]["shape"] == "hv" and t["hoverinfo"] == "skip" for t in shaded.values())
    assert [t["name"] for t in figure["data"][:10]][:2] == ["blues", "classical"]  # the bands come first


def _at(stream_id: str, second: int, genre: str = "rock", kind: str = "genre") -> dict:
    p = prediction(stream_id, genre, 0.5 + second % 5 / 10, t=float(second), kind=kind)
    p["time"] = f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}Z"
    return p


def _apply(figure: dict, patch) -> dict:
    """What the page does with a Patch's operations (those timeline_update sends: Extend and Assign)."""
    figure = json.loads(json.dumps(figure))  # as the page holds it: every band with its own lists
    for op in patch.to_plotly_json()["operations"]:
        *path, last = op["location"]
        target = figure
        for key in path:
            target = target[key]
        if op["operation"] == "Extend":
            target[last].extend(op["params"]["value"])
        elif op["operation"] == "Assign":
            target[last] = op["params"]["value"]
        else:
            raise AssertionError(f"unexpected patch operation {op['operation']}")
    return figure


def _visible(figure: dict) -> list:
    """Each band's points inside the x range, which is what the page shows."""
    lo, hi = figure["layout"]["xaxis"]["range"]
    return [[(x, y) for x, y in zip(t["x"], t["y"], strict=True) if lo <= x <= hi] for t in figure["data"]]


def test_the_timeline_gets_only_its_new_windows_and_then_shows_what_a_full_drawing_would():
    h = History(clock=lambda: 0.0)

    def add(*payloads):
        for p in payloads:
            h.add(parse_message("genrecast", "genrecast/kitchen/prediction", encode(p)))
        return h.stream("kitchen")

    page, held = timeline_update(add(*(_at("kitchen", s) for s in range(400, 410))), None)
    assert isinstance(page, dict) and held["windows"] == 10
    assert timeline_update(h.stream("kitchen"), held)[0] is no_update  # no new window, nothing sent
    for second in range(410, 700, 7):  # windows scroll the earliest out of the 300-s span
        view = add(*(_at("kitchen", s, "jazz" if s > 600 else "rock", ("genre", "no_music", "silence")[s // 40 % 3])
                     for s in range(second, second + 7)))
        patch, held = timeline_update(view, held)
        assert isinstance(patch, Patch) and len(json.dumps(patch.to_plotly_json())) < 1000 * 7  # per window
        page = _apply(page, patch)
        assert _visible(page) == _visible(timeline_figure(view))
        assert page["layout"]["xaxis"]["range"] == timeline_figure(view)["layout"]["xaxis"]["range"]
    one, _ = timeline_update(add(_at("kitchen", 704)), held)  # the daemon's usual news: one window a second
    assert len(json.dumps(timeline_figure(h.stream("kitchen")))) > 50 * len(json.dumps(one.to_plotly_json()))


def test_the_timeline_shows_a_gap_where_no_window_came_drawn_whole_or_extended():
    """A stall, a crash or a restart: the bands were a straight ramp from the last window before it to the first
    after it, as if something had been heard. Now they drop to nothing over any stretch longer than a stall."""
    h = History(clock=lambda: 0.0)

    def add(*seconds):
        for s in seconds:
            h.add(parse_message("genrecast", "genrecast/kitchen/prediction", encode(_at("kitchen", s, "rock"))))
        return h.stream("kitchen")

    page, held = timeline_update(add(*range(400, 410)), None)
    patch, held = timeline_update(add(*range(440, 445)), held)  # 31 s without a window
    page = _apply(page, patch)
    full = timeline_figure(h.stream("kitchen"))
    assert _visible(page) == _visible(full)
    rock = next(t for t in full["data"] if t["name"] == "rock")
    assert len(rock["x"]) == 10 + 2 + 5
    assert rock["y"][10:12] == [0.0, 0.0] and min(rock["y"][:10] + rock["y"][12:]) > 0  # nothing heard between
    assert rock["x"][10] > rock["x"][9] and rock["x"][11] < rock["x"][12]
    assert all(t["y"][10:12] == [0.0, 0.0] for t in full["data"])  # the shading too
    # windows a second apart draw no gap, and neither do two ten seconds apart
    assert len(timeline_figure(add(454))["data"][0]["x"]) == 10 + 2 + 5 + 1  # 10 s apart: a stall only after
    # a stream whose hop is 15 s: its windows are not a row of gaps (they were: every window a 2-ms spike)
    sparse = History(clock=lambda: 0.0)
    for k in range(20):
        p = _at("slow", 300 + 15 * k)
        p["window_start_s"], p["window_end_s"] = 15.0 * k, 15.0 * k + 3
        sparse.add(parse_message("genrecast", "genrecast/slow/prediction", encode(p)))
    rock = next(t for t in timeline_figure(sparse.stream("slow"))["data"] if t["name"] == "rock")
    assert len(rock["x"]) == 20 and min(rock["y"]) > 0


def test_the_timeline_is_drawn_afresh_when_an_append_would_be_wrong_or_the_page_holds_too_much():
    h = History(clock=lambda: 0.0)
    for s in range(100, 110):
        h.add(parse_message("genrecast", "genrecast/kitchen/prediction", encode(_at("kitchen", s))))
    _, held = timeline_update(h.stream("kitchen"), None)
    late = _at("kitchen", 50)  # delivered after a broker outage: it belongs before what the page shows
    h.add(parse_message("genrecast", "genrecast/kitchen/prediction", encode(late)))
    assert isinstance(timeline_update(h.stream("kitchen"), held)[0], dict)
    other_labels = _at("kitchen", 200)
    other_labels["probabilities"]["polka"] = other_labels["probabilities"].pop("rock")  # a model with other labels
    h.add(parse_message("genrecast", "genrecast/kitchen/prediction", encode(other_labels)))
    _, held = timeline_update(h.stream("kitchen"), None)
    h.add(parse_message("genrecast", "genrecast/kitchen/prediction", encode(_at("kitchen", 201))))
    assert isinstance(timeline_update(h.stream("kitchen"), held)[0], dict)  # back to the first model's labels
    full = {**held, "appended": TIMELINE_REDRAW_AFTER}
    hour_later = other_labels | {"time": "2026-01-01T01:00:00Z"}
    h.add(parse_message("genrecast", "genrecast/kitchen/prediction", encode(hour_later)))
    assert isinstance(timeline_update(h.stream("kitchen"), full)[0], dict)


def test_a_stream_heard_again_in_a_new_life_is_drawn_afresh():
    """Window counts start again when a stream is forgotten and heard again, or the dashboard restarts while a page
    stays open: a count that happens to be higher than the page's must not be taken for news since its drawing."""
    first, second = History(clock=lambda: 0.0), History(clock=lambda: 0.0)  # the server before and after a restart
    for s in range(100, 120):
        first.add(parse_message("genrecast", "genrecast/kitchen/prediction", encode(_at("kitchen", s))))
    _, held = timeline_update(first.stream("kitchen"), None)
    for s in range(200, 260):
        second.add(parse_message("genrecast", "genrecast/kitchen/prediction", encode(_at("kitchen", s))))
    assert isinstance(timeline_update(second.stream("kitchen"), held)[0], dict)
    first.add(parse_message("genrecast", "genrecast/kitchen/status", b""))  # its retained status cleared
    for s in range(300, 330):
        first.add(parse_message("genrecast", "genrecast/kitchen/prediction", encode(_at("kitchen", s))))
    assert first.stream("kitchen").windows == 30 > held["windows"]
    assert isinstance(timeline_update(first.stream("kitchen"), held)[0], dict)


def test_the_detail_view_follows_the_selected_stream_and_sends_nothing_without_news():
    from genrecast.dashboard.app import stream_outputs

    ticks = itertools.count()
    h = History(clock=lambda: float(next(ticks)))
    for s in range(100, 110):
        for sid in ("a", "b"):
            h.add(parse_message("genrecast", f"genrecast/{sid}/prediction", encode(_at(sid, s))))
    *_, drawn_a = stream_outputs(h, "a", None)
    assert all(x is no_update for x in stream_outputs(h, "a", drawn_a))
    h.add(parse_message("genrecast", "genrecast/a/prediction", encode(_at("a", 110))))
    _, timeline, _, drawn_a = stream_outputs(h, "a", drawn_a)
    assert isinstance(timeline, Patch)
    _, timeline, _, drawn_b = stream_outputs(h, "b", drawn_a)  # another stream: its own figure, whole
    assert isinstance(timeline, dict) and drawn_b["stream"] == "b"
    _, timeline, _, _ = stream_outputs(h, "a", drawn_b)  # and back: the page holds b's timeline now
    assert isinstance(timeline, dict)


def test_a_model_with_labels_beyond_gtzan_gives_every_label_its_own_colour():
    p = prediction("kitchen")
    p["probabilities"]["electronic"] = 0.0  # an 11-label model: GTZAN's ten and electronic
    view = view_after(("prediction", p))
    bars = probability_figure(view)["data"][0]
    assert bars["x"][-1] == "electronic"
    assert len(set(bars["marker"]["color"])) == len(bars["x"]) == 11
    lines = {t["name"]: t["line"]["color"] for t in timeline_figure(view)["data"] if t.get("stackgroup")}  # not shades
    assert len(set(lines.values())) == 11 and lines["electronic"] != lines["blues"]


def test_no_genre_is_drawn_in_a_grey_that_reads_as_silence():
    """Rock had Tableau's grey (#bab0ac), beside a silent window's (#c5ccd3): a rock file looked silent."""
    from genrecast.dashboard.render import MUTED, PALETTE

    def rgb(colour: str) -> tuple[int, ...]:
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))

    for colour in PALETTE:
        r, g, b = rgb(colour)
        assert max(r, g, b) - min(r, g, b) > 40, colour  # a hue, not a grey
        assert sum(abs(x - y) for x, y in zip(rgb(colour), rgb(MUTED), strict=True)) > 120, colour


def test_the_overview_sends_only_the_cards_that_changed():
    """At 1,000 streams the whole overview is about 900 kB, and some card changes at almost every tick."""
    from genrecast.daemon.broker import BrokerConfig
    from genrecast.dashboard.app import overview_outputs
    from genrecast.dashboard.feed import Feed

    history = History(clock=lambda: 0.0)
    feed = Feed(BrokerConfig(), "genrecast", history)
    ids = [f"s{i:02d}" for i in range(20)]
    for sid in ids:
        feed.handle(f"genrecast/{sid}/prediction", encode(prediction(sid, "rock", 0.8)))

    def poll(drawn, order="id"):
        _, cards, _, keys, _, _, _, _, _ = overview_outputs(history, feed, "s00", None, "", order, drawn)
        return cards, keys

    cards, keys = poll(None)
    assert [c.to_plotly_json()["props"]["data-stream"] for c in cards] == ids and len(keys) == 20
    assert poll(keys) == (no_update, no_update)  # nothing new: nothing sent, not even the keys
    feed.handle("genrecast/s07/prediction", encode(prediction("s07", "jazz", 0.8, t=1.0)))
    patch, new_keys = poll(keys)
    assert isinstance(patch, Patch)
    (op,) = json.loads(json.dumps(patch.to_plotly_json(), default=lambda c: c.to_plotly_json()))["operations"]
    assert op["location"] == [7] and "jazz" in json.dumps(op["params"]["value"])
    assert [i for i, (a, b) in enumerate(zip(keys, new_keys, strict=True)) if a != b] == [7]
    assert poll(new_keys) == (no_update, no_update)
    # a page that never drew them, a stream more, or most cards changed (grouped by genre, one move shifts them
    # all): drawn whole
    assert isinstance(poll(new_keys[:5])[0], list)
    feed.handle("genrecast/s20/prediction", encode(prediction("s20", "rock", 0.8)))
    cards, keys = poll(new_keys)
    assert len(cards) == 21
    for sid in ids[:11]:
        feed.handle(f"genrecast/{sid}/prediction", encode(prediction(sid, "blues", 0.8, t=2.0)))
    cards, _ = poll(keys)
    assert isinstance(cards, list) and len(cards) == 21
    grouped, group_keys = poll(None, order="genre")
    assert grouped[0].children == "blues (11)"
    feed.handle("genrecast/s00/prediction", encode(prediction("s00", "rock", 0.8, t=3.0)))
    assert isinstance(poll(group_keys, order="genre")[0], list)
    # a filter that every stream matches changes no card, but the count it shows
    _, cards, _, _, _, shown, *_ = overview_outputs(history, feed, "s00", None, "s", "id", poll(None)[1])
    assert cards is no_update and shown == "showing 21 of 21"


def test_clock_times_name_their_zone(monkeypatch):
    """The page shows the dashboard host's local time; a viewer in another zone could not tell."""
    import time as time_module
    from datetime import UTC, datetime

    from genrecast.dashboard.render import clock_text

    monkeypatch.setenv("TZ", "America/New_York")
    time_module.tzset()
    try:
        assert clock_text(datetime(2026, 12, 7, 9, 31, 12, tzinfo=UTC)) == "04:31:12 EST"
    finally:
        monkeypatch.undo()
        time_module.tzset()
