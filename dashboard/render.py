"""Pure functions from a :class:`Snapshot` to Dash components and Plotly figures.

Text from MQTT reaches the page only as component children (React escapes it) or, inside figures, passed through
:func:`plot_text`, because Plotly reads a subset of HTML tags (links included) in labels and hover text.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import itertools
import json
import logging
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dash import Patch, html, no_update
from genrecast.dsp.level import QUIET_RMS
from genrecast.dsp.modelspec import GTZAN_GENRES

from .feed import FeedStatus
from .history import STALE_AFTER_S, Snapshot, StreamView
from .offline import FileResult
from .parse import Prediction

log = logging.getLogger(__name__)

TIMELINE_SECONDS = 300.0
# Windows appended to a drawn timeline before it is drawn afresh: an append is a few hundred bytes, a full timeline
# about 150 kB, and the points that scrolled out of view stay in the page until the next full drawing.
TIMELINE_REDRAW_AFTER = 300
ORDERS = ("id", "genre", "state")  # the overview's sort orders; genre and state also group
COMPACT_FROM = 12  # more streams than this: small cards, so hundreds fit on a screen
# Tableau 10: distinct, colour-blind-friendlier than Plotly's default, one colour per GTZAN genre; labels beyond
# GTZAN's (a model's `electronic`) take the darker shades of Tableau 20, so no two labels of a model share a colour.
# Not Tableau's grey for rock (the tenth): beside a silent window's grey (MUTED), a rock file's bars and timeline
# read as silent. Rock is indigo.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#393b79")
EXTRA_PALETTE = ("#17becf", "#8c564b", "#bcbd22", "#7f7f7f", "#1f77b4", "#d62728", "#9467bd", "#2ca02c", "#e377c2",
                 "#ff7f0e")
MUTED = "#c5ccd3"  # the bars of a silent window: the model's answer to silence means nothing
# The states without a genre, shaded over the timeline's bands (full height, each with its legend entry): the
# probabilities of a no_music or silent period mean nothing, and an uncertain one's are split.
SHADES = {
    "uncertain": {"fillcolor": "rgba(255, 255, 255, 0.35)",
                  "fillpattern": {"shape": ".", "fgcolor": "#616e7c", "size": 6, "solidity": 0.25}},
    "no_music": {"fillcolor": "rgba(255, 255, 255, 0.55)",
                 "fillpattern": {"shape": "/", "fgcolor": "#1f2933", "size": 8, "solidity": 0.3}},
    "silence": {"fillcolor": "rgba(31, 41, 51, 0.6)"},
}


def plot_text(text: str) -> str:
    """Payload text made literal for Plotly, which would otherwise honour tags like ``<a href>`` in it."""
    return html_lib.escape(text, quote=False)


def ordered_labels(labels: tuple[str, ...]) -> list[str]:
    """GTZAN genres in their usual order first, then any other label in the order the daemon sent it."""
    known = [g for g in GTZAN_GENRES if g in labels]
    return known + [label for label in labels if label not in GTZAN_GENRES]


def colour(label: str, labels: list[str]) -> str:
    if label in GTZAN_GENRES:
        return PALETTE[GTZAN_GENRES.index(label)]
    others = [x for x in labels if x not in GTZAN_GENRES]
    return EXTRA_PALETTE[others.index(label) % len(EXTRA_PALETTE)]


def age_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def clock_text(t: datetime) -> str:
    """Wall-clock time in the dashboard host's local zone, as people read it, with the zone's name: a page opened
    from another zone showed the host's hours unlabelled."""
    return t.astimezone().strftime("%H:%M:%S %Z").rstrip()


def header(feed: FeedStatus, snapshot: Snapshot) -> list:
    if feed.connected:
        text, css = f"broker connected · {feed.broker_url}", "ok"
    else:
        text, css = f"broker disconnected · retrying {feed.broker_url}", "bad"
        text += f" ({feed.problem})" if feed.problem else ""
    broker = html.Span(text, className=f"pill {css}", id="broker-state")
    counts = f"{len(snapshot.streams)} stream{'s' * (len(snapshot.streams) != 1)}"
    children = [broker, html.Span(counts, className="muted")]
    if feed.rejected:
        children.append(
            html.Span(f"{feed.rejected} bad message(s) ignored", className="muted", title=feed.last_rejection or "")
        )
    return children


def stream_id(view: StreamView) -> html.Span:
    """The card's id, whole on hover: a compact card cuts it short (``living-r…`` for two living-room streams)."""
    return html.Span(view.stream_id, className="stream-id", title=view.stream_id)


def status_pill(view: StreamView, now: float, connected: bool) -> html.Span:
    """online / offline / stalled (from the daemon, or by silence: see :meth:`StreamView.liveness`)."""
    status = view.liveness(now, connected)
    css = {"online": "ok", "offline": "bad", "stalled": "bad"}.get(status, "muted-pill")
    return html.Span(status, className=f"pill {css} status", title=view.why(now, connected))


def decision_text(view: StreamView) -> tuple[str, str]:
    """Headline and its CSS class: the smoothed genre, or the state when there is none."""
    d = view.decision
    if d is None:  # an offline stream is not waiting for one (a source that never opened, say)
        return ("no answer" if view.offline else "waiting…"), "state-none"
    if d.kind == "genre" and d.genre:
        return d.genre, "state-genre"
    return d.kind, f"state-{d.kind}"


def _kind_text(view: StreamView) -> str:
    """The decision's kind as the card's details say it: an uncertain that the daemon judged music says so."""
    d = view.decision
    return "music, no clear genre" if d.kind == "uncertain" and view.music else d.kind


def stream_card(view: StreamView, now: float, selected: bool, connected: bool, compact: bool = False) -> html.Div:
    """A stream's card; ``compact`` (hundreds of streams) keeps what changes rarely: id, status, genre, age."""
    headline, css = decision_text(view)
    top = html.Div([stream_id(view), status_pill(view, now, connected)],
                   className="card-top")
    age = html.Div(age_line(view, now), className="detail age")
    if compact:
        children = [top, html.Div(headline, className=f"headline {css}"), age]
    else:
        d = view.decision
        details = [f"{_kind_text(view)} · {d.confidence:.0%}" if d else "no decision yet"]
        if view.latest and view.latest.provisional:
            details.append("provisional")  # decided on the audio so far, until the first full window
        if view.since:
            details.append(f"since {clock_text(view.since)}")
        children = [top, html.Div(headline, className=f"headline {css}"), html.Div(" · ".join(details),
                    className="detail"), *tag_chips(view), age,
                    html.Div(f"model {view.model_id or 'unknown'}", className="detail model")]
    return _card(view.stream_id, selected, children)


def _card(stream_id: str, selected: bool, children: list) -> html.Div:
    """A card selects its stream when clicked, or on Enter or Space (assets/select.js): hence focusable."""
    return html.Div(className=f"card{' selected' if selected else ''}", tabIndex="0", role="button",
                    children=children, **{"data-stream": stream_id, "aria-pressed": "true" if selected else "false"})


def tag_chips(view: StreamView) -> list:
    """The latest window's style tags as chips, else its state's (none while the stream is not music: the daemon
    sends none then)."""
    tags = view.tags
    if not tags:
        return []
    return [html.Div([html.Span(name, className="chip", title=f"{name}: {p:.0%}") for name, p in tags],
                     className="chips")]


def age_line(view: StreamView, now: float) -> str:
    return f"last message {age_text(now - view.last_message_at)}"


def liveness(snapshot: Snapshot, now: float, connected: bool) -> dict[str, list[str]]:
    """Each stream's age line and status pill (text, class): sent every tick and written into the cards by the
    page, so the cards themselves are redrawn only when something else about them changes."""
    out = {}
    for v in snapshot.streams:
        p = status_pill(v, now, connected)
        out[v.stream_id] = [age_line(v, now), p.children, p.className, p.title]
    return out


# More entries changed than this share of the overview: drawn whole, not patched entry by entry
REDRAW_SHARE = 0.5


@dataclass(frozen=True)
class Entry:
    """One entry of the overview: a stream's card, a group's heading, or a line saying there is nothing to show."""

    key: str  # a digest of what it shows but for liveness: while it is unchanged, so is the entry on the page
    view: StreamView | None = None  # a card's stream
    text: str = ""  # a heading's or a line's text
    css: str = ""


def card_key(view: StreamView, now: float, selected: bool, connected: bool, compact: bool) -> str:
    """Everything a card shows except what :func:`liveness` updates, as a short digest (the page sends every
    card's back with each request)."""
    row = [view.stream_id, selected, view.liveness(now, connected), *decision_text(view)]
    if not compact:
        d = view.decision
        row += [f"{d.confidence:.0%}" if d else "", view.music, str(view.since), view.model_id,
                [name for name, _ in view.tags],
                bool(view.latest and view.latest.provisional)]
    return _digest(row)


def _digest(row: list) -> str:
    return hashlib.blake2s(json.dumps(row, default=str).encode(), digest_size=8).hexdigest()


def _line(text: str, css: str) -> Entry:
    return Entry(_digest([css, text]), text=text, css=css)


def _genre_key(view: StreamView) -> str:
    headline, _ = decision_text(view)
    return headline


def overview(snapshot: Snapshot, now: float, selected: str | None, feed: FeedStatus, prefix: str,
             query: str = "", order: str = "id") -> tuple[list[Entry], str]:
    """The entries of the stream cards matching ``query`` (a part of the id, genre or state), sorted, and grouped
    by ``order`` when that is genre or state; and a line saying how many are shown. Nothing is drawn yet: see
    :func:`overview_cards`."""
    if not snapshot.streams:
        return [_line(f"No streams yet: waiting for {prefix}/+/status, prediction and genre at {feed.broker_url}.",
                      "empty")], ""
    keyed = [(v, v.liveness(now, feed.connected), _genre_key(v)) for v in snapshot.streams]
    words = query.lower().split()
    if words:
        keyed = [k for k in keyed if all(w in f"{k[0].stream_id} {k[1]} {k[2]}".lower() for w in words)]
    shown = f"showing {len(keyed)} of {len(snapshot.streams)}" if words else ""
    if not keyed:
        return [_line(f"No stream matches {query!r}.", "empty")], shown
    compact = is_compact(snapshot)

    def card(v: StreamView) -> Entry:
        return Entry(card_key(v, now, v.stream_id == selected, feed.connected, compact), view=v)

    group = {"genre": 2, "state": 1}.get(order)
    if group is None:
        return [card(v) for v, _, _ in keyed], shown
    keyed.sort(key=lambda k: (k[group], k[0].stream_id))
    out: list[Entry] = []
    for i, (v, *keys) in enumerate(keyed):
        if i == 0 or keys[group - 1] != keyed[i - 1][group]:
            count = sum(1 for k in keyed if k[group] == keys[group - 1])
            out.append(_line(f"{keys[group - 1]} ({count})", "group"))
        out.append(card(v))
    return out, shown


def is_compact(snapshot: Snapshot) -> bool:
    return len(snapshot.streams) > COMPACT_FROM


def overview_cards(entries: list[Entry], drawn: list[str] | None, now: float, selected: str | None,
                   connected: bool, compact: bool) -> tuple[object, object]:
    """The overview for a page that shows the entries keyed ``drawn`` (None: nothing yet), and the keys the page
    then shows (``no_update`` when none changed): ``no_update`` when none changed, a :class:`dash.Patch` of the
    changed ones when they are as many and at most ``REDRAW_SHARE`` of them changed, else every entry drawn. At
    1,000 streams the whole overview is about 900 kB, and some card changes at almost every tick; one card is a few
    hundred bytes, and the page redraws only it."""
    keys = [e.key for e in entries]
    if drawn == keys:
        return no_update, no_update
    same_length = drawn is not None and len(drawn) == len(keys)
    changed = [i for i, (old, new) in enumerate(zip(drawn, keys, strict=True)) if old != new] if same_length else []
    if same_length and len(changed) <= REDRAW_SHARE * len(keys):
        patch = Patch()
        for i in changed:
            patch[i] = _draw(entries[i], now, selected, connected, compact)
        return patch, keys
    return [_draw(e, now, selected, connected, compact) for e in entries], keys


def _draw(entry: Entry, now: float, selected: str | None, connected: bool, compact: bool) -> html.Div:
    if entry.view is None:
        return html.Div(entry.text, className=entry.css)
    return _safe_card(entry.view, now, entry.view.stream_id == selected, connected, compact)


def _safe_card(view: StreamView, now: float, selected: bool, connected: bool, compact: bool = False) -> html.Div:
    """A card, or a plain one saying it cannot be drawn: one odd stream must not blank the page for all."""
    try:
        return stream_card(view, now, selected, connected, compact)
    except Exception as exc:  # the parser should have refused what breaks this; this is the second line
        log.exception("cannot draw the card of stream %s", view.stream_id)
        return _card(view.stream_id, selected, [stream_id(view),
                                                 html.Div(f"cannot show this stream ({type(exc).__name__})",
                                                          className="detail")])


def stream_panel(view: StreamView | None, drawn_timeline: dict | None = None) -> tuple[dict, object, list, dict | None]:
    """The selected stream's bar chart, timeline (whole, or what to append to ``drawn_timeline``, the page's),
    facts, and what the page's timeline then holds; if its data cannot be drawn, the panel says so."""
    try:
        timeline, drawn = timeline_update(view, drawn_timeline)
        return probability_figure(view), timeline, stream_facts(view), drawn
    except Exception as exc:
        log.exception("cannot draw the panel of stream %s", view.stream_id if view else None)
        why = f"cannot show this stream ({type(exc).__name__})"
        return _empty(why), _empty(why), [], None


def silent_window(p: Prediction) -> bool:
    """A window under its stream's silence gate (``quiet``; from a daemon before that flag, a silent state's window
    under the default gate): while silence stands the sound after it is being judged, and those windows are heard."""
    return p.quiet or (p.decision.kind == "silence" and p.rms < QUIET_RMS)


def stream_facts(view: StreamView | None) -> list:
    """One line about the selected stream's source and latest window."""
    if view is None:
        return []
    facts = [f"stream {view.stream_id}", f"model {view.model_id or 'unknown'}"]
    if view.status and view.status.source:
        facts.append(f"source {view.status.source}")
    if p := view.latest:
        facts += [
            f"window {p.window_start_s:.1f}–{p.window_end_s:.1f} s",
            # a silent window's top genre and music are the model's answer to nothing (it read "top classical 89%")
            *(["silent window"] if silent_window(p) else
              [f"top {p.top_genre} {p.top_confidence:.0%}",
               *([f"music {p.music:.0%}"] if p.music is not None else [])]),
            f"latency {p.latency_ms:.0f} ms",
            f"rms {p.rms:.3f}",
        ]
    return [html.Span(f, className="fact") for f in facts]


def _layout(**extra) -> dict:
    base = {
        "margin": {"l": 48, "r": 12, "t": 36, "b": 40},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": "system-ui, sans-serif", "size": 13, "color": "#1f2933"},
        "yaxis": {"range": [0, 1], "tickformat": ".0%", "gridcolor": "#e4e7eb", "fixedrange": True},
    }
    return base | extra


def _empty(title: str) -> dict:
    return {"data": [], "layout": _layout(title={"text": title}, xaxis={"visible": False}, yaxis={"visible": False})}


def bar_figure(labels: tuple[str, ...], values: tuple[float, ...], title: str, revision: str,
               muted: bool = False) -> dict:
    """One bar per label, in GTZAN order, one fixed colour per genre (grey, ``muted``, for a window of silence)."""
    by_label = dict(zip(labels, values, strict=True))
    ordered = ordered_labels(labels)
    return {
        "data": [
            {
                "type": "bar",
                "x": [plot_text(label) for label in ordered],
                "y": [by_label[label] for label in ordered],
                "marker": {"color": [MUTED if muted else colour(label, ordered) for label in ordered]},
                "hovertemplate": "%{x}: %{y:.1%}<extra></extra>",
            }
        ],
        "layout": _layout(title={"text": title}, xaxis={"fixedrange": True, "tickangle": -30}, uirevision=revision),
    }


def band_labels(rows) -> list[str]:
    """The bands of a stacked figure, in order: every label of any row (a dict or a tuple of labels)."""
    return ordered_labels(tuple(dict.fromkeys(label for row in rows for label in row)))


def stacked_figure(x: list, rows: list[dict[str, float]], title: str, xaxis: dict, revision: str,
                   kinds: list[str | None] | None = None) -> dict:
    """Each label's probability stacked over ``x``, so the genre mix reads as coloured bands; with each point's
    state ``kinds``, the periods in a state of :data:`SHADES` are shaded over them (the traces after the bands)."""
    labels = band_labels(rows)
    traces = [
        {
            "type": "scatter",
            "mode": "lines",
            "stackgroup": "probabilities",
            "name": plot_text(label),
            "x": x,
            "y": [row.get(label, 0.0) for row in rows],
            "line": {"width": 0.5, "color": colour(label, labels)},
            "hovertemplate": "%{y:.0%}",
        }
        for label in labels
    ]
    if kinds is not None:
        traces += [
            {
                "type": "scatter",
                "mode": "lines",
                "name": kind,
                "x": x,
                "y": shade(kinds, kind),
                "fill": "tozeroy",
                "line": {"width": 0, "shape": "hv"},  # a state holds from its window until the next one
                "hoverinfo": "skip",
                "legendgroup": "states",
                **style,
            }
            for kind, style in SHADES.items()
        ]
    return {
        "data": traces,
        "layout": _layout(
            title={"text": title},
            hovermode="x unified",
            legend={"orientation": "h", "y": -0.2, "traceorder": "normal"},
            xaxis={"gridcolor": "#e4e7eb"} | xaxis,
            uirevision=revision,
        ),
    }


def shade(kinds: list[str | None], kind: str) -> list[float]:
    """The height of ``kind``'s shading at each point: full while the state is ``kind``, none otherwise (and in a
    gap, whose state is None)."""
    return [1.0 if k == kind else 0.0 for k in kinds]


def probability_figure(view: StreamView | None) -> dict:
    """The latest window's probabilities."""
    p = view.latest if view else None
    if p is None:
        return _empty("Latest window: none yet")
    silent = silent_window(p)  # the model's answer to silence means nothing: greyed, and said so
    return bar_figure(p.labels, p.probabilities, f"Latest window, {clock_text(p.time)}{': silent' if silent else ''}",
                      plot_text(p.stream_id), muted=silent)


def timeline_figure(view: StreamView | None, seconds: float = TIMELINE_SECONDS) -> dict:
    """The last ``seconds`` of windows, on the wall clock."""
    points = _recent(view.timeline, seconds) if view else []
    if not points:
        return _empty("Timeline: no windows yet")
    title = f"Last {round(seconds / 60)} minutes"
    xaxis = {"type": "date", "range": _span(points[-1], seconds), "tickformat": "%H:%M:%S", "nticks": 6}
    x, rows, kinds = _series(points, _gap(view.timeline))
    return stacked_figure(x, rows, title, xaxis, plot_text(points[-1].stream_id), kinds)


def _gap(timeline: tuple[Prediction, ...]) -> float:
    """How far apart two windows are a gap in the stream (nothing heard between them): over :data:`STALE_AFTER_S`,
    and over 2.5 of its usual steps (a stream with a 15-s hop is not a row of gaps)."""
    starts = sorted(p.window_start_s for p in timeline)
    steps = [b - a for a, b in itertools.pairwise(starts) if b > a]
    return max(STALE_AFTER_S, 2.5 * statistics.median(steps)) if steps else STALE_AFTER_S


def _series(points: list[Prediction], gap: float,
            after: float | None = None) -> tuple[list[str], list[dict], list[str | None]]:
    """The plot times, probabilities and states of ``points`` (in time order, the first after the time ``after``
    when a drawing is extended). Where two windows lie more than ``gap`` apart (a stall, a crash, a restart) the
    bands drop to nothing between them: they were drawn as a straight ramp across the silence."""
    x, rows, kinds = [], [], []
    previous = after
    for p in points:
        t = p.time.timestamp()
        if previous is not None and t - previous > gap:
            x += [_plot_time(datetime.fromtimestamp(edge, UTC)) for edge in (previous + 0.001, t - 0.001)]
            rows += [{}, {}]
            kinds += [None, None]
        x.append(_plot_time(p.time))
        rows.append(dict(zip(p.labels, p.probabilities, strict=True)))
        kinds.append(p.decision.kind)
        previous = t
    return x, rows, kinds


def timeline_update(view: StreamView | None, drawn: dict | None,
                    seconds: float = TIMELINE_SECONDS) -> tuple[object, dict | None]:
    """The timeline for a page whose timeline holds ``drawn`` (None: nothing of this stream), and what it holds after.

    Once a second the selected stream gains a window; resending the whole strip chart for it cost about 150-290 kB
    a second. When the new windows all come after the drawn ones, with the same labels, only they are sent, as a
    :class:`dash.Patch` that extends every band and moves the axis; anything else (another stream, windows delivered
    late after a broker outage, a new model's labels, a stream forgotten and heard again or a restarted server, whose
    window counts start again, ``TIMELINE_REDRAW_AFTER`` appends) draws the whole figure.
    """
    if view is None or not view.timeline:
        return timeline_figure(view, seconds), None
    new = view.windows - drawn["windows"] if drawn and drawn.get("incarnation") == view.incarnation else -1
    if new == 0:
        return no_update, drawn
    if drawn and 0 < new <= len(view.timeline) and drawn["appended"] + new <= TIMELINE_REDRAW_AFTER:
        points = sorted(view.timeline[-new:], key=lambda p: p.time)
        labels = drawn["labels"]
        if points[0].time.timestamp() > drawn["newest"] and all(sorted(p.labels) == sorted(labels) for p in points):
            patch = Patch()
            x, rows, kinds = _series(points, _gap(view.timeline), after=drawn["newest"])
            for i, label in enumerate(labels):
                patch["data"][i]["x"].extend(x)
                patch["data"][i]["y"].extend([row.get(label, 0.0) for row in rows])
            for i, kind in enumerate(SHADES, start=len(labels)):
                patch["data"][i]["x"].extend(x)
                patch["data"][i]["y"].extend(shade(kinds, kind))
            patch["layout"]["xaxis"]["range"] = _span(points[-1], seconds)
            return patch, {**drawn, "windows": view.windows, "newest": points[-1].time.timestamp(),
                           "appended": drawn["appended"] + new}
    shown = _recent(view.timeline, seconds)
    return timeline_figure(view, seconds), {"windows": view.windows, "incarnation": view.incarnation, "appended": 0,
                                            "newest": shown[-1].time.timestamp(),
                                            "labels": band_labels([p.labels for p in shown])}


def _span(newest: Prediction, seconds: float) -> list[str]:
    """A fixed span ending at the newest window: a strip chart that scrolls left as windows arrive."""
    return [_plot_time(newest.time - timedelta(seconds=seconds)), _plot_time(newest.time)]


def _plot_time(t: datetime) -> str:
    """Plotly ignores UTC offsets in date strings: local wall-clock time, as the rest of the page shows."""
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")


def file_summary(result: FileResult) -> list:
    """Headline and facts for a classified file; its name is the user's, shown as text like everything else."""
    n = len(result.starts)
    facts = [result.name, f"{result.seconds:.1f} s", f"{n} window{'s' * (n != 1)}", f"model {result.model_id}"]
    if result.music is not None:
        facts.append(f"music {result.music:.0%}")
    headline = result.genre if result.kind == "genre" else result.kind
    detail = " every window is silent" if result.kind == "silence" else f" {result.confidence:.0%} over the file"
    return [
        html.Div([html.Span(headline, className=f"headline state-{result.kind}"), html.Span(detail)],
                 className="file-headline"),
        html.Div([html.Span(f, className="fact") for f in facts], className="facts"),
    ]


def file_figures(result: FileResult) -> tuple[dict, dict]:
    """The file's mean probabilities and its windows over the file's own time axis, with the player's cursor (a
    line the page's player.js moves; :func:`player_windows` says what it reads)."""
    rows = [dict(zip(result.labels, row, strict=True)) for row in result.probabilities]
    name = plot_text(result.name)
    timeline = stacked_figure(list(result.starts), rows, "Windows through the file", {"ticksuffix": " s"}, name,
                              list(result.states))
    timeline["layout"]["shapes"] = [{"type": "line", "xref": "x", "yref": "paper", "x0": 0, "x1": 0, "y0": 0,
                                     "y1": 1, "line": {"color": "#1f2933", "width": 2}}]
    return bar_figure(result.labels, result.mean, "Mean over the file", name), timeline


def player_windows(result: FileResult) -> str:
    """Every window of a checked file as the player reads it in the page (JSON, in time order): where it lies, its
    own answer (top genre with its probability, or no_music / silence), its tags and the stream state then."""
    rows = []
    for i, (start, end, probs) in enumerate(zip(result.starts, result.ends, result.probabilities, strict=True)):
        best = max(range(len(probs)), key=probs.__getitem__)
        kind = result.window_kinds[i]
        rows.append({"start": round(start, 3), "end": round(end, 3), "kind": kind,
                     "answer": result.labels[best] if kind == "genre" else kind,
                     "probability": round(probs[best], 4), "tags": list(result.window_tags[i]),
                     "state": result.state_names[i]})
    return json.dumps(rows, separators=(",", ":"))


def _recent(timeline: tuple[Prediction, ...], seconds: float) -> list[Prediction]:
    """Windows within ``seconds`` of the newest, in time order: after a broker outage the daemon delivers its
    buffered windows late, so arrival order is not time order."""
    points = sorted(timeline, key=lambda p: p.time)
    return [p for p in points if (points[-1].time - p.time).total_seconds() <= seconds] if points else []
