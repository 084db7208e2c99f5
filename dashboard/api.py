"""The dashboard's HTTP API under ``/api/v1`` (docs/api.md): classify posted audio, the streams' state, health.

Everything under ``/api/`` answers JSON, errors included (``{"error": message}`` with a status a program can
branch on), never a traceback or an HTML page. Classifying runs on the :class:`OfflineClassifier`'s bounded
pool, shared with the page's "check a file", so uploads cannot starve the live page.

The body limit is the API's own (``[api] max_mb``, ``--api-max-mb``): the server refuses a larger declared length
before reading (:mod:`dashboard.server`), and here the body is copied to a temporary file, never held in memory,
and cut one byte past the limit.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC

import numpy as np
from flask import Blueprint, Flask, Response, jsonify, request
from genrecast.daemon.config import ApiSettings
from genrecast.daemon.model import HEARD
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from .auth import Credentials, visitor
from .feed import Feed
from .history import History, StreamView
from .jobs import Busy
from .offline import OfflineClassifier

log = logging.getLogger(__name__)

MAX_NAME = 200  # longest file name echoed back
CLASSIFY_PARAMS = {"name", "windows", "heard"}  # the query parameters /v1/classify takes
# Raw bodies: audio/* and these; no Content-Type at all is taken as raw audio too. The decoder, not the
# declared type, decides whether the bytes are audio, so a mislabelled FLAC still works.
RAW_TYPES = ("application/octet-stream", "application/ogg")
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
COPY_BYTES = 2**20  # an upload is copied to its temporary file this much at a time


class ApiError(Exception):
    """An answer other than 200: its status, a one-line message and any headers it needs."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def install_api(server: Flask, history: History, feed: Feed, offline: OfflineClassifier,
                config: ApiSettings, credentials: Credentials | None = None) -> None:
    """Add ``/api/...`` to the dashboard's Flask server; ``credentials`` (the token, if set) guard every route."""
    api = Blueprint("api", __name__, url_prefix="/api")
    server.json.sort_keys = False  # keep the order we build: tags likeliest first, labels in the model's order
    allowed: dict[str, tuple[str, ...]] = {}  # path -> its methods, for a 405 of a method Flask does not route

    def not_allowed(methods: tuple[str, ...]) -> ApiError:
        return ApiError(405, f"{request.method[:20]} is not allowed here; use {' or '.join(methods)}",
                        {"Allow": ", ".join(methods)})

    def route(rule: str, methods: tuple[str, ...]):
        """Register for every method, so that a wrong one gets our JSON 405 (not the page's catch-all route)."""

        def register(view):
            allowed[f"/api{rule}"] = methods

            def checked(**kwargs):
                if request.method not in methods and not (request.method == "HEAD" and "GET" in methods):
                    raise not_allowed(methods)
                return view(**kwargs)

            api.add_url_rule(rule, view.__name__, checked, methods=ANY_METHOD, provide_automatic_options=False)
            return view

        return register

    @api.before_request
    def authorize():
        if credentials is None:
            return
        who = visitor(request.remote_addr, request.headers.get)
        if held := credentials.held_back(who):
            raise ApiError(429, held[0], {"Retry-After": held[1]})
        if not credentials.bearer(request.headers.get("Authorization", "")):
            credentials.wrong(who)
            # One line per refusal, rate-limited by genrecast.logs: a scanner cannot flood the journal.
            log.warning("refused an API request without the right token, from %s", who,
                        extra={"repeat_key": "refused"})  # one kind whatever the address: a scanner may use many
            raise ApiError(401, "missing or wrong bearer token (send Authorization: Bearer <token>)",
                           {"WWW-Authenticate": 'Bearer realm="genrecast"'})

    @route("/v1/classify", ("POST",))
    def classify():
        from genrecast.daemon.classify_cmd import track_json, track_result
        from genrecast.dsp import AudioError, ModelSpecError

        unknown = sorted(set(request.args) - CLASSIFY_PARAMS)
        if unknown:  # ?window=1 for ?windows=1 answered without the windows, in silence
            raise ApiError(400, f"unknown query parameter ?{clean_name(unknown[0])[:20]}= (classify takes "
                                f"{', '.join(sorted(CLASSIFY_PARAMS))})")
        windows = flag("windows")
        heard = request.args.get("heard", "auto")
        if heard not in HEARD:
            raise ApiError(400, f"?heard= must be {' or '.join(HEARD)}, got {heard[:20]!r}")
        with tempfile.NamedTemporaryFile(prefix="genrecast-upload-") as spool:
            name = spool_upload(config, spool)
            try:
                model, result = offline.windows(spool.name, name, heard)
            except Busy as exc:
                raise ApiError(503, str(exc), {"Retry-After": "1"}) from None
            except AudioError as exc:
                raise ApiError(400, str(exc)) from None
            except ModelSpecError as exc:
                raise ApiError(503, f"the model cannot be used: {exc}") from None
        track = track_json(track_result(model, name, result), model.model_id)
        answer = {"name": track.pop("file"), **track}
        if windows:
            answer["window_results"] = window_json(model, result)
        return jsonify(answer)

    @route("/v1/streams", ("GET",))
    def streams():
        snapshot, status = history.snapshot(), feed.status()
        now = history.clock()
        return jsonify({
            "mqtt_connected": status.connected,
            "streams": [stream_json(view, now, status.connected) for view in snapshot.streams],
        })

    @route("/v1/health", ("GET",))
    def health():
        load = offline.pool.load()
        return jsonify({
            "status": "ok",
            "mqtt_connected": feed.status().connected,
            "streams": len(history.snapshot().streams),
            "classify_jobs": load.jobs,
            "classify_capacity": load.capacity,
        })

    @api.route("", methods=ANY_METHOD, provide_automatic_options=False)  # "/api" itself: no redirect to "/api/"
    @api.route("/", methods=ANY_METHOD, provide_automatic_options=False)
    @api.route("/<path:rest>", methods=ANY_METHOD, provide_automatic_options=False)
    def unknown(rest: str = ""):
        raise ApiError(404, f"no API endpoint {request.path[:MAX_NAME]!r}; see docs/api.md")

    @api.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return error_response(exc.status, str(exc), exc.headers)

    @api.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:  # e.g. a malformed multipart body, or the server's own limit
        return error_response(exc.code or 400, exc.description or exc.name)

    @api.errorhandler(Exception)
    def bug(exc: Exception) -> Response:
        log.exception("API request %s %s failed", request.method, request.path[:MAX_NAME])
        return error_response(500, f"internal error ({type(exc).__name__}); the dashboard's log has the details")

    server.register_blueprint(api)

    @server.errorhandler(MethodNotAllowed)
    def method_error(exc: MethodNotAllowed):
        """A method no route takes (TRACE, PROPFIND, ...) is refused by Flask's routing, before any blueprint."""
        if not request.path.startswith("/api/"):
            return exc
        methods = allowed.get(request.path)
        if methods is None:
            return error_response(404, f"no API endpoint {request.path[:MAX_NAME]!r}; see docs/api.md")
        return api_error(not_allowed(methods))


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def flag(name: str) -> bool:
    value = request.args.get(name, "0").lower()
    if value not in ("0", "1", "true", "false"):
        raise ApiError(400, f"?{name}= must be 1 or 0 (or true or false), got {value[:20]!r}")
    return value in ("1", "true")


def spool_upload(config: ApiSettings, into) -> str:
    """Copy the posted audio into the file ``into`` and return its name: the raw body (``?name=`` names it) or
    multipart field ``file``. Refuses a body over the limit, reading at most one byte past it."""
    mimetype = request.mimetype
    multipart = mimetype == "multipart/form-data"
    if not (multipart or not mimetype or mimetype.startswith("audio/") or mimetype in RAW_TYPES):
        raise ApiError(415, f"Content-Type {mimetype[:100]} is not accepted: send the audio as the body with "
                            "Content-Type audio/* or application/octet-stream, or as multipart/form-data field 'file'")
    max_bytes = int(config.max_mb * 10**6)
    too_large = ApiError(413, f"the body is over the API's {config.max_mb:g} MB limit")
    length = request.content_length
    if length is not None and length > max_bytes + (2**16 if multipart else 0):  # multipart: room for its framing
        raise too_large  # before reading a byte of it
    if multipart:
        if not request.mimetype_params.get("boundary"):  # werkzeug then reads no part, and "no field 'file'" misled
            raise ApiError(400, "Content-Type multipart/form-data names no boundary: let the client set the header "
                                "(curl -F file=@song.flac), or send the audio as the body")
        try:
            upload = request.files.get("file")  # werkzeug spools a part over 500 kB to a temporary file
        except RequestEntityTooLarge:  # werkzeug's limit on parts that are not files, held in memory
            raise ApiError(400, "the multipart body cannot be read: a part that is not a file is over 500 kB, or "
                                "Content-Type names another boundary than the body's; send the audio as a file "
                                "part named 'file', with a filename") from None
        if upload is None:
            if "file" in request.form:
                raise ApiError(400, "multipart field 'file' is not a file part: give it a filename "
                                    "(Content-Disposition: form-data; name=\"file\"; filename=\"song.flac\")")
            raise ApiError(400, "the multipart body has no field 'file'")
        name, source = upload.filename or "upload", upload.stream
    else:
        name, source = request.args.get("name") or "upload", request.stream
    copied = 0
    while chunk := source.read(min(COPY_BYTES, max_bytes + 1 - copied)):
        into.write(chunk)
        copied += len(chunk)
    if copied > max_bytes:
        raise too_large
    if not copied and multipart:  # the body was not empty: the file in it was
        raise ApiError(400, f"{clean_name(name)}: empty file")
    if not copied:
        raise ApiError(400, "empty body: send the audio as the body or as multipart/form-data field 'file'")
    into.flush()
    return clean_name(name)


def clean_name(name: str) -> str:
    """The name echoed in answers and errors: one line (a ``?name=`` with a newline made a two-line error), at most
    ``MAX_NAME`` characters."""
    name = "".join(c if c.isprintable() else "?" for c in name)
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


def window_json(model, result) -> list[dict]:
    """Every window the track's answer is the mean of: where it lies in the file, its answer alone by classify's rule
    (``kind``: a silent window's top genre means nothing, and said nothing of its silence) and its probabilities. A
    file shorter than a window is one padded window, which ends where the file does (the pipeline's end, as
    ``run``'s ``window_end_s``)."""
    labels = model.spec.labels
    tags = result.window_tags(model.spec) or [None] * len(result.starts)
    rooms = [None] * len(result.starts) if result.room is None else [round(float(r), 5) for r in result.room]
    return [
        {
            "start_s": round(start, 3),
            "end_s": round(end, 3),
            "kind": kind,
            "genre": labels[int(np.argmax(row))],
            "probabilities": {k: round(float(p), 5) for k, p in zip(labels, row, strict=True)},
            "music": round(float(music), 5) if model.spec.has_music_head else None,
            "tags": t,
            "room": room,
        }
        for start, end, kind, row, music, t, room in zip(result.starts, result.ends, result.window_kinds(model.spec),
                                                         result.probabilities, result.music, tags, rooms, strict=True)
    ]


def stream_json(view: StreamView, now: float, connected: bool) -> dict:
    """One stream as the page's card shows it; times are UTC ISO 8601."""
    age = max(0.0, now - view.last_message_at)
    decision = view.decision
    return {
        "stream_id": view.stream_id,
        "status": view.liveness(now, connected),
        "reason": view.why(now, connected) or None,
        "source": view.status.source if view.status else None,
        "kind": decision.kind if decision else None,
        "genre": decision.genre if decision else None,
        "confidence": decision.confidence if decision else None,
        "music": view.music,
        "since": view.since.astimezone(UTC).isoformat() if view.since else None,
        "model_id": view.model_id,
        "tags": dict(view.tags),
        "last_message_at": view.last_message_wall.isoformat() if view.last_message_wall else None,
        "last_message_age_s": round(age, 3),
    }
