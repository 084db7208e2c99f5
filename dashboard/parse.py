"""Turn the daemon's MQTT messages into typed values, refusing anything that does not fit the contract.

The dashboard trusts nothing it reads from the broker: any client may publish under our prefix. A payload that
is not valid version-1 JSON of the expected shape raises :class:`PayloadError` (the feed counts and drops it), and
every string and collection is bounded so a hostile publisher cannot grow the dashboard's memory.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from genrecast.dsp.modelspec import TOP_TAGS

from genrecast.contract import (
    DAEMON_TOPIC,
    DECISION_KINDS,
    MESSAGE_KINDS,
    PROCESS_STATES,
    RETAINED_KINDS,
    STREAM_STATES,
    VERSION,
    daemon_status_topic,
    stream_topic,
)

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_TEXT = 200  # longest stream id, model id, source or genre label we keep
MAX_LABELS = 64
# Times a daemon can send: a clock that never synced still reads 1970 or later. Outside this range local-time
# conversion overflows (year 1 or 9999 moved to another zone), so such a time is refused, not rendered.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)


class PayloadError(ValueError):
    """A message that does not follow the MQTT contract; it is ignored and counted."""


@dataclass(frozen=True)
class Decision:
    """The daemon's smoothed decision: what the stream is playing, as opposed to the last window's top class."""

    kind: str  # one of DECISION_KINDS
    genre: str | None
    confidence: float

    def same_state(self, other: Decision | None) -> bool:
        """Same kind and genre; the confidence moves with every window and does not make a new state."""
        return other is not None and (self.kind, self.genre) == (other.kind, other.genre)


@dataclass(frozen=True)
class Status:
    stream_id: str
    state: str  # one of STREAM_STATES
    time: datetime
    model_id: str | None = None
    source: str | None = None
    reason: str | None = None
    daemon: str | None = None  # the publishing process: the stream is down while that process's status is offline


@dataclass(frozen=True)
class ProcessStatus:
    """``<prefix>/_daemon/<name>/status``: a daemon process's availability (its ``offline`` is its last will)."""

    name: str
    online: bool
    reason: str | None = None
    retired: bool = False  # an empty retained status: `ha-cleanup` forgot a process that is gone for good


@dataclass(frozen=True)
class Prediction:
    stream_id: str
    model_id: str
    time: datetime
    window_start_s: float
    window_end_s: float
    labels: tuple[str, ...]  # in the order the daemon sent them
    probabilities: tuple[float, ...]  # aligned with labels
    top_genre: str
    top_confidence: float
    decision: Decision
    rms: float
    latency_ms: float
    music: float | None = None  # the window's music probability, sent by models with a music head
    tags: tuple[tuple[str, float], ...] = ()  # announced style tags and their probabilities, likeliest first
    provisional: bool = False  # a stream's first second or two: the audio so far repeated to one window
    quiet: bool = False  # under the stream's silence gate: the model's answer to near silence, left out of the state


@dataclass(frozen=True)
class GenreChange:
    stream_id: str
    model_id: str
    time: datetime
    decision: Decision
    since: datetime
    music: bool | None = None  # the daemon's own answer (True for uncertain music); None from one sending none
    tags: tuple[tuple[str, float], ...] = ()  # the state's announced style tags, likeliest first


@dataclass(frozen=True)
class Retired:
    """An empty ``status`` or ``genre``: MQTT's way to delete a retained message, done for a stream that is gone."""

    stream_id: str


Message = Status | Prediction | GenreChange | Retired | ProcessStatus
def topic_filters(prefix: str) -> list[str]:
    """The subscriptions that receive every stream's messages, and every daemon process's status, under ``prefix``."""
    return [stream_topic(prefix, "+", kind) for kind in MESSAGE_KINDS] + [daemon_status_topic(prefix, "+")]


def parse_message(prefix: str, topic: str, payload: bytes) -> Message:
    """Parse one message received on ``<prefix>/<stream_id>/<kind>``; raise :class:`PayloadError` if it is bad."""
    parts = topic.removeprefix(f"{prefix}/").split("/") if topic.startswith(f"{prefix}/") else []
    if len(parts) == 3 and parts[0] == DAEMON_TOPIC and parts[2] == "status":
        return _process_status(_text(parts[1], "process name in topic"), payload)
    if len(parts) != 2 or parts[1] not in MESSAGE_KINDS:
        raise PayloadError(f"unexpected topic {topic[:MAX_TEXT]!r}")
    stream_id, kind = _text(parts[0], "stream id in topic"), parts[1]
    if not payload and kind in RETAINED_KINDS:
        return Retired(stream_id)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("payload is not a JSON object")
    if data.get("version") != VERSION:
        raise PayloadError(f"unsupported payload version {data.get('version')!r}")
    if _text(data.get("stream_id"), "stream_id") != stream_id:
        raise PayloadError("stream_id in payload differs from the topic's")
    return {"status": _status, "prediction": _prediction, "genre": _genre}[kind](stream_id, data)


def _status(stream_id: str, d: dict) -> Status:
    state = d.get("state")
    if state not in STREAM_STATES:
        raise PayloadError(f"status state must be one of {STREAM_STATES}, got {state!r}")
    return Status(
        stream_id=stream_id,
        state=state,
        time=_time(d.get("time"), "time"),
        model_id=_optional_text(d.get("model_id"), "model_id"),
        source=_prose(d.get("source"), "source"),
        reason=_prose(d.get("reason"), "reason"),
        daemon=_optional_text(d.get("daemon"), "daemon"),
    )


def _process_status(name: str, payload: bytes) -> ProcessStatus:
    if not payload:
        return ProcessStatus(name, online=False, retired=True)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        d = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(d, dict) or d.get("version") != VERSION:
        raise PayloadError("a process status must be a version-1 JSON object")
    if _text(d.get("daemon"), "daemon") != name or d.get("state") not in PROCESS_STATES:
        raise PayloadError("a process status names its process as the topic does, and is online or offline")
    return ProcessStatus(name, d["state"] == "online", _prose(d.get("reason"), "reason"))


def _prediction(stream_id: str, d: dict) -> Prediction:
    probs = d.get("probabilities")
    if not isinstance(probs, dict) or not 0 < len(probs) <= MAX_LABELS:
        raise PayloadError(f"probabilities must be an object of 1 to {MAX_LABELS} labels")
    labels = tuple(_text(label, "label") for label in probs)
    values = tuple(_probability(p, f"probabilities.{label}") for label, p in probs.items())
    top = d.get("top")
    if not isinstance(top, dict):
        raise PayloadError("top must be an object")
    return Prediction(
        stream_id=stream_id,
        model_id=_text(d.get("model_id"), "model_id"),
        time=_time(d.get("time"), "time"),
        window_start_s=_measure(d.get("window_start_s"), "window_start_s"),
        window_end_s=_measure(d.get("window_end_s"), "window_end_s"),
        labels=labels,
        probabilities=values,
        top_genre=_text(top.get("genre"), "top.genre"),
        top_confidence=_probability(top.get("confidence"), "top.confidence"),
        decision=_decision(d.get("state"), "state"),
        rms=_measure(d.get("rms"), "rms"),
        latency_ms=_measure(d.get("latency_ms"), "latency_ms"),
        music=None if d.get("music") is None else _probability(d.get("music"), "music"),
        tags=_tags(d.get("tags")),
        provisional=_flag(d.get("provisional", False), "provisional"),
        quiet=_flag(d.get("quiet", False), "quiet"),
    )


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise PayloadError(f"{name} must be true or false")
    return value


def _tags(value: object) -> tuple[tuple[str, float], ...]:
    """A window's (or a state's) announced tags, likeliest first whatever order they came in; none when absent."""
    if value is None:
        return ()
    if not isinstance(value, dict) or len(value) > TOP_TAGS:  # the contract's bound, which the memory budget counts on
        raise PayloadError(f"tags must be an object of at most {TOP_TAGS} tags")
    tags = [(_text(name, "tag"), _probability(p, f"tags.{name}")) for name, p in value.items()]
    return tuple(sorted(tags, key=lambda kv: -kv[1]))


def _genre(stream_id: str, d: dict) -> GenreChange:
    return GenreChange(
        stream_id=stream_id,
        model_id=_text(d.get("model_id"), "model_id"),
        time=_time(d.get("time"), "time"),
        decision=_decision(d, "genre payload"),
        since=_time(d.get("since"), "since"),
        music=_optional_bool(d.get("music"), "music"),
        tags=_tags(d.get("tags")),
    )


def _decision(d: object, name: str) -> Decision:
    if not isinstance(d, dict):
        raise PayloadError(f"{name} must be an object")
    kind = d.get("kind")
    if kind not in DECISION_KINDS:
        raise PayloadError(f"{name}.kind must be one of {DECISION_KINDS}, got {kind!r}")
    genre = _optional_text(d.get("genre"), f"{name}.genre")
    if (kind == "genre") != (genre is not None):
        raise PayloadError(f"{name}: a genre is given exactly when kind is 'genre'")
    return Decision(kind=kind, genre=genre, confidence=_probability(d.get("confidence"), f"{name}.confidence"))


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
        raise PayloadError(f"{name} must be a string of 1 to {MAX_TEXT} characters")
    return value


def _optional_bool(value: object, name: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise PayloadError(f"{name} must be true, false or null")
    return value


def _optional_text(value: object, name: str) -> str | None:
    return None if value is None else _text(value, name)


def _prose(value: object, name: str) -> str | None:
    """A text only shown (a reason, a source): the schema sets no length, so a long one is cut, not refused. A
    file source's long path, or an error naming one, cost the whole status: the stream never showed offline."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{name} must be a non-empty string")
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT - 1] + "…"


def _number(value: object, name: str) -> float:
    # bool is an int in Python but never a measurement
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{name} must be a finite number")
    try:
        number = float(value)  # JSON integers are unbounded: 10**400 does not fit a float
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise PayloadError(f"{name} must be a finite number")
    return number


def _measure(value: object, name: str) -> float:
    """An offset, a level or a delay: never negative (the contract's ``minimum: 0``)."""
    number = _number(value, name)
    if number < 0:
        raise PayloadError(f"{name} must not be negative, got {number:g}")
    return number


def _probability(value: object, name: str) -> float:
    p = _number(value, name)
    if not 0.0 <= p <= 1.0:
        raise PayloadError(f"{name} must lie in [0, 1], got {p}")
    return p


def _time(value: object, name: str) -> datetime:
    text = _text(value, name)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{name} is not an ISO 8601 time: {text!r}") from None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    if not EARLIEST_TIME <= t < LATEST_TIME:
        raise PayloadError(f"{name} {text!r} is outside {EARLIEST_TIME.year}-{LATEST_TIME.year - 1}")
    return t
