"""Pure functions from a :class:`Snapshot` to Dash components and Plotly figures.

Text from MQTT reaches the page only as component children (React escapes it) or, inside figures, passed through
:func:`plot_text`, because Plotly reads a subset of HTML tags (links included) in labels and hover text.
"""

from __future__ import annotations

import html as html_lib
import logging
from datetime import datetime, timedelta

from dash import html

from dsp.modelspec import GTZAN_GENRES

from .feed import FeedStatus
from .history import STALE_AFTER_S, Snapshot, StreamView
from .offline import FileResult
from .parse import Prediction

log = logging.getLogger(__name__)

TIMELINE_SECONDS = 300.0
# Tableau 10: distinct, colour-blind-friendlier than Plotly's default, one colour per GTZAN genre
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")


def plot_text(text: str) -> str:
    """Payload text made literal for Plotly, which would otherwise honour tags like ``<a href>`` in it."""
    return html_lib.escape(text, quote=False)


def ordered_labels(labels: tuple[str, ...]) -> list[str]:
    """GTZAN genres in their usual order first, then any other label in the order the daemon sent it."""
    known = [g for g in GTZAN_GENRES if g in labels]
    return known + [label for label in labels if label not in GTZAN_GENRES]


def colour(label: str, labels: list[str]) -> str:
    index = GTZAN_GENRES.index(label) if label in GTZAN_GENRES else labels.index(label)
    return PALETTE[index % len(PALETTE)]


def age_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def clock_text(t: datetime) -> str:
    """Wall-clock time in the dashboard host's local zone, as people read it."""
    return t.astimezone().strftime("%H:%M:%S")


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


def status_pill(view: StreamView, now: float, connected: bool) -> html.Span:
    status = view.liveness(now, connected)
    title = (view.status.reason if view.status else None) or ""
    if status == "stalled":
        title = f"says it is online, but sent nothing for over {STALE_AFTER_S:g} s"
    css = {"online": "ok", "offline": "bad", "stalled": "bad"}.get(status, "muted-pill")
    return html.Span(status, className=f"pill {css} status", title=title)


def decision_text(view: StreamView) -> tuple[str, str]:
    """Headline and its CSS class: the smoothed genre, or the state when there is none."""
    d = view.decision
    if d is None:
        return "waiting…", "state-none"
    if d.kind == "genre" and d.genre:
        return d.genre, "state-genre"
    return d.kind, f"state-{d.kind}"


def stream_card(view: StreamView, now: float, selected: bool, connected: bool) -> html.Div:
    headline, css = decision_text(view)
    d = view.decision
    details = [f"{d.kind} · {d.confidence:.0%}" if d else "no decision yet"]
    if view.since:
        details.append(f"since {clock_text(view.since)}")
    return html.Div(
        className=f"card{' selected' if selected else ''}",
        **{"data-stream": view.stream_id},
        children=[
            html.Div(
                [html.Span(view.stream_id, className="stream-id"), status_pill(view, now, connected)],
                className="card-top",
            ),
            html.Div(headline, className=f"headline {css}"),
            html.Div(" · ".join(details), className="detail"),
            html.Div(f"last message {age_text(now - view.last_message_at)}", className="detail age"),
            html.Div(f"model {view.model_id or 'unknown'}", className="detail model"),
        ],
    )


def overview(snapshot: Snapshot, now: float, selected: str | None, feed: FeedStatus, prefix: str) -> list:
    if not snapshot.streams:
        return [
            html.Div(
                f"No streams yet: waiting for {prefix}/+/status, prediction and genre at {feed.broker_url}.",
                className="empty",
            )
        ]
    return [_safe_card(v, now, v.stream_id == selected, feed.connected) for v in snapshot.streams]


def _safe_card(view: StreamView, now: float, selected: bool, connected: bool) -> html.Div:
    """A card, or a plain one saying it cannot be drawn: one odd stream must not blank the page for all."""
    try:
        return stream_card(view, now, selected, connected)
    except Exception as exc:  # the parser should have refused what breaks this; this is the second line
        log.exception("cannot draw the card of stream %s", view.stream_id)
        return html.Div(
            className=f"card{' selected' if selected else ''}",
            **{"data-stream": view.stream_id},
            children=[html.Span(view.stream_id, className="stream-id"),
                      html.Div(f"cannot show this stream ({type(exc).__name__})", className="detail")],
        )


def stream_panel(view: StreamView | None) -> tuple[dict, dict, list]:
    """The selected stream's bar chart, timeline and facts; if its data cannot be drawn, the panel says so."""
    try:
        return probability_figure(view), timeline_figure(view), stream_facts(view)
    except Exception as exc:
        log.exception("cannot draw the panel of stream %s", view.stream_id if view else None)
        why = f"cannot show this stream ({type(exc).__name__})"
        return _empty(why), _empty(why), []


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
            f"top {p.top_genre} {p.top_confidence:.0%}",
            *([f"music {p.music:.0%}"] if p.music is not None else []),
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


def bar_figure(labels: tuple[str, ...], values: tuple[float, ...], title: str, revision: str) -> dict:
    """One bar per label, in GTZAN order, one fixed colour per genre."""
    by_label = dict(zip(labels, values, strict=True))
    ordered = ordered_labels(labels)
    return {
        "data": [
            {
                "type": "bar",
                "x": [plot_text(label) for label in ordered],
                "y": [by_label[label] for label in ordered],
                "marker": {"color": [colour(label, ordered) for label in ordered]},
                "hovertemplate": "%{x}: %{y:.1%}<extra></extra>",
            }
        ],
        "layout": _layout(title={"text": title}, xaxis={"fixedrange": True, "tickangle": -30}, uirevision=revision),
    }


def stacked_figure(x: list, rows: list[dict[str, float]], title: str, xaxis: dict, revision: str) -> dict:
    """Each label's probability stacked over ``x``, so the genre mix reads as coloured bands."""
    labels = ordered_labels(tuple(dict.fromkeys(label for row in rows for label in row)))
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


def probability_figure(view: StreamView | None) -> dict:
    """The latest window's probabilities."""
    p = view.latest if view else None
    if p is None:
        return _empty("Latest window: none yet")
    return bar_figure(p.labels, p.probabilities, f"Latest window, {clock_text(p.time)}", plot_text(p.stream_id))


def timeline_figure(view: StreamView | None, seconds: float = TIMELINE_SECONDS) -> dict:
    """The last ``seconds`` of windows, on the wall clock."""
    points = _recent(view.timeline, seconds) if view else []
    if not points:
        return _empty("Timeline: no windows yet")
    times = [_plot_time(p.time) for p in points]
    rows = [dict(zip(p.labels, p.probabilities, strict=True)) for p in points]
    title = f"Last {round(seconds / 60)} minutes"
    # a fixed span ending at the newest window: a strip chart that scrolls left as windows arrive
    span = [_plot_time(points[-1].time - timedelta(seconds=seconds)), times[-1]]
    xaxis = {"type": "date", "range": span, "tickformat": "%H:%M:%S", "nticks": 6}
    return stacked_figure(times, rows, title, xaxis, plot_text(points[-1].stream_id))


def _plot_time(t: datetime) -> str:
    """Plotly ignores UTC offsets in date strings: local wall-clock time, as the rest of the page shows."""
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")


def file_summary(result: FileResult) -> list:
    """Headline and facts for a classified file; its name is the user's, shown as text like everything else."""
    facts = [result.name, f"{result.seconds:.1f} s", f"{len(result.starts)} windows", f"model {result.model_id}"]
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
    """The file's mean probabilities and its windows over the file's own time axis."""
    rows = [dict(zip(result.labels, row, strict=True)) for row in result.probabilities]
    name = plot_text(result.name)
    return (
        bar_figure(result.labels, result.mean, "Mean over the file", name),
        stacked_figure(list(result.starts), rows, "Windows through the file",
                       {"ticksuffix": " s"}, name),
    )


def _recent(timeline: tuple[Prediction, ...], seconds: float) -> list[Prediction]:
    """Windows within ``seconds`` of the newest, in time order: after a broker outage the daemon delivers its
    buffered windows late, so arrival order is not time order."""
    points = sorted(timeline, key=lambda p: p.time)
    return [p for p in points if (points[-1].time - p.time).total_seconds() <= seconds] if points else []
