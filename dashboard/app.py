"""The Dash app: a page that polls the in-process :class:`History` and redraws what changed.

Polling a local object (``dcc.Interval``) keeps the browser side free of websockets and lets the page survive
a broker outage: the data simply stops changing and the header says why.
"""

from __future__ import annotations

import binascii
import socket
import tempfile
from pathlib import Path

from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import DependencyException
from genrecast.daemon.config import ApiSettings

from . import render, spool
from .api import install_api
from .auth import LOGOUT, Credentials, install_login
from .feed import Feed
from .guard import Guard, HostAllowList
from .history import History
from .jobs import Busy
from .offline import MAX_UPLOAD_BYTES, OfflineClassifier
from .server import DashboardServer, Gate, Limits
from .sessions import EndedSessions

ASSETS = Path(__file__).with_name("assets")
REFRESH_MS = 500  # with the network round trip, a message shows well within 1.5 s
GRAPH_CONFIG = {"displayModeBar": False}  # the toolbar would cover titles in a narrow window
GRAPH_STYLE = {"height": "320px", "minWidth": 0}
# The page's largest upload, base64-encoded (4/3) inside Dash's JSON, with room for the rest of the request
MAX_REQUEST_BYTES = MAX_UPLOAD_BYTES * 4 // 3 + 2**20
STALE_PAGE_MS = 5000  # the page says it is not current after this long without an answer (or 6 ticks, if longer)
SERVER_SETTINGS = "genrecast.server"  # the app's Flask config key: the server's limits and gate, see make_server


def create_app(history: History, feed: Feed, offline: OfflineClassifier, api: ApiSettings | None = None,
               refresh_ms: int = REFRESH_MS, state_dir: Path | None = None) -> Dash:
    """``state_dir``: where logged-out sessions are kept across restarts (dashboard/sessions.py); None: in memory."""
    # serve_locally: Dash and Plotly's JavaScript come from the installed packages, never from a CDN
    app = Dash(__name__, title="genrecast", update_title=None, serve_locally=True, assets_folder=str(ASSETS))
    api = api or ApiSettings()
    credentials = Credentials(api.token, ended=EndedSessions(state_dir)) if api.token else None
    install_api(app.server, history, feed, offline, api, credentials)
    if credentials:
        install_login(app.server, credentials)
    # A script path Dash does not serve raised, and logged a 2.8 kB traceback per request (a new kind of log line
    # for each path, so the repeat limit did not group them): it is just not here.
    app.server.register_error_handler(DependencyException, lambda _exc: ("no such script\n", 404,
                                                                        {"Content-Type": "text/plain"}))
    # what the server checks before the app sees a request: the API's limit (its multipart framing on top), the
    # page's, an upload slot per job the classifying pool can take, and an upload's credentials
    app.server.config[SERVER_SETTINGS] = (Limits(api_body=int(api.max_mb * 10**6) + 2**16,
                                                 page_body=MAX_REQUEST_BYTES), Gate(offline.pool.capacity),
                                          credentials)
    app.layout = html.Div(
        className="page",
        children=[
            html.Header(
                [
                    html.H1("genrecast"),
                    html.Div(id="header", className="header-info"),
                    *([html.Form(html.Button("Log out", type="submit", className="logout"), action=LOGOUT,
                                 method="post")] if api.token else []),
                ],
                className="top",
            ),
            html.Div(
                [
                    dcc.Input(id="search", type="search", placeholder="filter streams: id, genre or state",
                              debounce=False, className="search"),
                    dcc.Dropdown(id="order", options=[{"label": f"by {o}", "value": o} for o in render.ORDERS],
                                 value=render.ORDERS[0], clearable=False, searchable=False, className="order"),
                    html.Span(id="shown", className="muted"),
                ],
                className="overview-controls",
            ),
            html.Section(id="overview", className="cards"),
            html.Section(
                id="stream-panel",
                className="panel",
                children=[
                    html.Div(
                        [
                            html.Label("Stream", htmlFor="stream-select"),
                            dcc.Dropdown(id="stream-select", options=[], clearable=False, className="picker"),
                        ],
                        className="picker-row",
                    ),
                    html.Div(id="facts", className="facts"),
                    html.Div(
                        [
                            # responsive: the plot follows its box as the window narrows
                            dcc.Graph(id="probabilities", config=GRAPH_CONFIG, responsive=True, style=GRAPH_STYLE),
                            dcc.Graph(id="timeline", config=GRAPH_CONFIG, responsive=True, style=GRAPH_STYLE),
                        ],
                        className="graphs",
                    ),
                ],
            ),
            html.Section(
                className="panel",
                children=[
                    html.H2("Check a file"),
                    dcc.Upload(
                        id="upload",
                        children=html.Div(["Drop an audio file here or ", html.A("choose one", className="link")]),
                        max_size=MAX_UPLOAD_BYTES,
                        className="upload",
                    ),
                    # The checked file plays here (in the browser, from the upload it already holds); its
                    # position drives the timeline's cursor and the readout of the window under it (player.js)
                    html.Div(id="file-player-box", className="player", hidden=True, children=[
                        html.Audio(id="file-player", controls=True, preload="auto"),
                        html.Div(id="file-cursor", className="cursor-readout"),
                    ]),
                    dcc.Loading(html.Div(id="file-result"), type="dot"),
                ],
            ),
            dcc.Interval(id="tick", interval=refresh_ms),
            # read by assets/connection.js (no answer for this long: not current; the tick it paces) and
            # assets/upload_limit.js
            html.Div(id="page-config", hidden=True, **{"data-stale-after-ms": str(max(STALE_PAGE_MS, 6 * refresh_ms)),
                                                       "data-refresh-ms": str(refresh_ms),
                                                       "data-upload-max-bytes": str(MAX_UPLOAD_BYTES)}),
            dcc.Store(id="liveness"),  # every stream's age line and status pill, written into the cards below
            dcc.Store(id="overview-key"),  # each entry's key on the page (render.card_key): what it shows but liveness
            dcc.Store(id="liveness-done"),
            dcc.Store(id="drawn"),  # which stream's figures are on the page, as of when, and what its timeline holds
        ],
    )

    @app.callback(
        Output("header", "children"),
        Output("overview", "children"),
        Output("overview", "className"),
        Output("overview-key", "data"),
        Output("liveness", "data"),
        Output("shown", "children"),
        Output("stream-select", "options"),
        Output("stream-select", "value"),
        Output("stream-panel", "hidden"),
        Input("tick", "n_intervals"),
        Input("search", "value"),
        Input("order", "value"),
        State("stream-select", "value"),
        State("stream-select", "options"),
        State("overview-key", "data"),
    )
    def refresh_overview(_tick, query, order, selected, options, drawn_keys):
        return overview_outputs(history, feed, selected, options, query or "", order or render.ORDERS[0], drawn_keys)

    # In the browser: write each card's age line and status pill, without React redrawing hundreds of cards.
    app.clientside_callback(
        """
        function(live) {
            if (!live) { return window.dash_clientside.no_update; }
            document.querySelectorAll('#overview .card').forEach(function(card) {
                const row = live[card.dataset.stream];
                if (!row) { return; }
                const age = card.querySelector('.age'), pill = card.querySelector('.status');
                if (age && age.textContent !== row[0]) { age.textContent = row[0]; }
                if (pill && pill.textContent !== row[1]) { pill.textContent = row[1]; }
                if (pill && pill.className !== row[2]) { pill.className = row[2]; }
                if (pill && pill.title !== row[3]) { pill.title = row[3]; }
            });
            return window.dash_clientside.no_update;
        }
        """,
        Output("liveness-done", "data"),
        Input("liveness", "data"),
    )

    @app.callback(
        Output("probabilities", "figure"),
        Output("timeline", "figure"),
        Output("facts", "children"),
        Output("drawn", "data"),
        Input("tick", "n_intervals"),
        Input("stream-select", "value"),
        State("drawn", "data"),
    )
    def refresh_stream(_tick, selected, drawn):
        return stream_outputs(history, selected, drawn)

    @app.callback(Output("file-result", "children"), Input("upload", "contents"), State("upload", "filename"),
                  prevent_initial_call=True)
    def check_file(contents, filename):
        return file_result(offline, contents, filename or "upload")

    # The player takes the upload the browser already holds: nothing is sent back for it, nor while it plays.
    app.clientside_callback(
        "function(contents) { return contents || window.dash_clientside.no_update; }",
        Output("file-player", "src"),
        Input("upload", "contents"),
    )
    # A result with windows shows the player (and its first window); an error hides it.
    app.clientside_callback(
        """
        function(children) {
            const played = (children || []).some(c => c && c.props && c.props.id === 'file-windows');
            if (played && window.genrecastPlayer) { window.requestAnimationFrame(window.genrecastPlayer.refresh); }
            return !played;
        }
        """,
        Output("file-player-box", "hidden"),
        Input("file-result", "children"),
    )

    return app


def overview_outputs(history: History, feed: Feed, selected: str | None, options: list | None, query: str = "",
                     order: str = "id", drawn_keys: list[str] | None = None) -> tuple:
    """The header, the cards (only when more than ages and pills changed), every card's liveness, and the picker."""
    snapshot, status, now = history.snapshot(timelines=False), feed.status(), history.clock()
    ids = [v.stream_id for v in snapshot.streams]
    new_options = [{"label": i, "value": i} for i in ids]
    new_selected = selected if selected in ids else first_online(snapshot, now, status.connected)
    compact = render.is_compact(snapshot)
    entries, shown = render.overview(snapshot, now, new_selected, status, feed.prefix, query, order)
    drawn = drawn_keys if isinstance(drawn_keys, list) else None
    # hundreds of cards are costly to redraw: only those whose key changed are sent (ages and pills: liveness)
    cards, keys = render.overview_cards(entries, drawn, now, new_selected, status.connected, compact)
    return (
        render.header(status, snapshot),
        cards,
        "cards compact" if compact else "cards",
        keys,
        render.liveness(snapshot, now, status.connected),
        shown,  # a few bytes: a stream more, or a filter that matches all, changes it with no card changed
        # setting a property, even to its value, would rerun the callbacks that read it
        new_options if new_options != options else no_update,
        new_selected if new_selected != selected else no_update,
        not ids,  # the overview already says that there is nothing to show
    )


def first_online(snapshot, now: float, connected: bool) -> str | None:
    """The stream shown until one is chosen: the first online one by id (the first by id was often a stream that
    ended long ago, its retained card kept), else the first."""
    streams = snapshot.streams
    return next((v.stream_id for v in streams if v.liveness(now, connected) == "online"),
                streams[0].stream_id if streams else None)


def stream_outputs(history: History, selected: str | None, drawn: dict | None) -> tuple:
    """The selected stream's figures and facts, or ``no_update`` when it has no news since they were drawn; its
    timeline only gets what it lacks (see :func:`render.timeline_update`)."""
    view = history.stream(selected)
    at = view.last_message_at if view else None
    same_stream = isinstance(drawn, dict) and drawn.get("stream") == selected
    if same_stream and drawn.get("at") == at:  # resend only when this stream has news, not any of hundreds
        return no_update, no_update, no_update, no_update
    bars, timeline, facts, held = render.stream_panel(view, drawn.get("timeline") if same_stream else None)
    return bars, timeline, facts, {"stream": selected, "at": at, "timeline": held}


def file_result(offline: OfflineClassifier, contents: str | None, filename: str) -> list:
    """Classify an upload (a ``data:...;base64,...`` URL from dcc.Upload, or the reference to the file a large one
    was spooled to, see :mod:`dashboard.spool`); a problem is shown, never raised."""
    from genrecast.dsp import AudioError, ModelSpecError

    garbled = [html.Div(f"{filename}: the upload arrived garbled", className="error")]
    with tempfile.NamedTemporaryFile(prefix="genrecast-upload-") as decoded:
        if contents == spool.REFERENCE:
            path = spool.spooled_path()
            if path is None:
                return garbled
        else:
            try:
                spool.decode_data_url(contents or "", decoded)
            except binascii.Error:
                return garbled
            path = decoded.name
        try:
            result = offline.classify(path, filename)
        except (AudioError, ModelSpecError, Busy) as exc:
            return [html.Div(str(exc), className="error")]
    bars, timeline = render.file_figures(result)
    return [
        *render.file_summary(result),
        html.Div(
            [dcc.Graph(figure=bars, config=GRAPH_CONFIG, responsive=True, style=GRAPH_STYLE),
             dcc.Graph(id="file-timeline", figure=timeline, config=GRAPH_CONFIG, responsive=True, style=GRAPH_STYLE)],
            className="graphs",
        ),
        html.Div(id="file-windows", hidden=True, **{"data-windows": render.player_windows(result)}),
    ]


def make_server(app: Dash, host: str, port: int, allow_hosts: tuple[str, ...] = ()) -> DashboardServer:
    """The production server for ``app`` (see :mod:`dashboard.server`); port 0 picks a free one (``server.port``).

    It answers only to ``host``, localhost and ``allow_hosts`` by name, and applies the limits :func:`create_app`
    chose before the app reads anything.
    """
    limits, gate, credentials = app.server.config[SERVER_SETTINGS]
    guarded = Guard(spool.SpoolUploads(app.server), HostAllowList(host, allow_hosts))
    return DashboardServer(guarded, listen(host, port), limits, gate, credentials)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, bound here so that a bind error reaches the caller as an OSError to word (a name
    that does not resolve is a ``socket.gaierror``)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                        flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart without waiting for old connections
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock
