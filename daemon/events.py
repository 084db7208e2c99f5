"""The MQTT messages, one typed dataclass each; ``docs/mqtt.md`` and ``daemon/schemas`` describe them.

Topics are ``<prefix>/<stream_id>/<kind>``. Every payload carries ``"version": VERSION`` so consumers can
refuse what they do not understand; fields may be added within a version, never renamed or removed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from genrecast.contract import VERSION, daemon_status_topic, stream_topic

from .decision import State


def utc_now() -> str:
    """ISO 8601 UTC wall-clock time with milliseconds, e.g. ``2026-11-25T00:40:00.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Message:
    """What the publisher sends: the topic suffix, the JSON text, and whether the broker keeps it."""

    topic: str
    payload: str
    retain: bool
    qos: int | None = None  # None: the publisher's --qos; status is always 1, as docs/mqtt.md promises


class UnpublishableError(ValueError):
    """A message that would break the contract if sent (NaN or infinity is not JSON); it is dropped, not sent."""


def _message(prefix: str, stream_id: str, kind: str, body: dict, retain: bool, qos: int | None = None) -> Message:
    payload = {"version": VERSION, "stream_id": stream_id, **body}
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise UnpublishableError(f"{kind} message for {stream_id} holds a NaN or infinite number") from None
    return Message(stream_topic(prefix, stream_id, kind), text, retain, qos)


@dataclass(frozen=True)
class Status:
    """A stream's retained availability; with ``daemon`` naming the process whose status must be online too."""

    state: str  # "online" | "stalled" | "offline"
    model_id: str | None = None
    source: str | None = None
    reason: str | None = None
    daemon: str | None = None  # the process's name: <prefix>/_daemon/<daemon>/status
    instance: str | None = None  # the publishing process's MQTT client id, to tell two publishers apart
    dropped_s: float | None = None  # audio dropped so far because processing fell behind, seconds
    genre_head: str | None = None  # "room" | "direct" | "auto" (both weighed by a room detector), for a model with two

    def message(self, prefix: str, stream_id: str) -> Message:
        body = {"state": self.state, "time": utc_now()}
        body.update({k: v for k, v in asdict(self).items() if v is not None and k != "state"})
        return _message(prefix, stream_id, "status", body, retain=True, qos=1)


WILL_REASON = "connection lost"  # the reason in the will the broker publishes for us


@dataclass(frozen=True)
class DaemonStatus:
    """The process's retained availability at ``<prefix>/_daemon/<name>/status``; its ``offline`` is the last will.

    A will's payload is fixed when its connection is made, so its ``time`` can only be that moment: ``since``
    says so in every process status (when the connection it belongs to came up), and the will is renewed with
    each connection.
    """

    state: str  # "online" | "offline"
    instance: str
    streams: tuple[str, ...] = ()
    reason: str | None = None
    since: str | None = None  # ISO 8601 time this status's connection to the broker was opened

    def message(self, prefix: str, name: str) -> Message:
        time = self.since if self.since and self.reason == WILL_REASON else utc_now()  # a will: written at connect
        body = {"version": VERSION, "daemon": name, "state": self.state, "time": time, "instance": self.instance}
        if self.since:
            body["since"] = self.since
        if self.streams:
            body["streams"] = list(self.streams)
        if self.reason:
            body["reason"] = self.reason
        return Message(daemon_status_topic(prefix, name), json.dumps(body, separators=(",", ":")), retain=True, qos=1)


@dataclass(frozen=True)
class Prediction:
    model_id: str
    window_start_s: float
    window_end_s: float
    probabilities: dict[str, float]
    state: State
    rms: float
    latency_ms: float
    music: float | None = None  # the window's music probability, from a model with a music head
    tags: dict[str, float] | None = None  # the window's announced style tags (likeliest first), from a model with tags
    provisional: bool = False  # the audio so far repeated to one window, before the stream's first full window
    quiet: bool = False  # under the stream's silence gate: the model's answer means nothing, and the state left it out

    def message(self, prefix: str, stream_id: str) -> Message:
        top = max(self.probabilities, key=self.probabilities.get)
        body = {
            "model_id": self.model_id,
            "time": utc_now(),
            "window_start_s": round(self.window_start_s, 4),
            "window_end_s": round(self.window_end_s, 4),
            "probabilities": {k: round(v, 5) for k, v in self.probabilities.items()},
            "top": {"genre": top, "confidence": round(self.probabilities[top], 5)},
            "state": {"kind": self.state.kind, "genre": self.state.genre,
                      "confidence": round(self.state.confidence, 5), "music": self.state.music},
            "rms": round(self.rms, 6),
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.music is not None:
            body["music"] = round(self.music, 5)
        if self.tags is not None:
            body["tags"] = self.tags
        if self.provisional:
            body["provisional"] = True
        if self.quiet:
            body["quiet"] = True
        return _message(prefix, stream_id, "prediction", body, retain=False)


@dataclass(frozen=True)
class GenreChange:
    model_id: str
    state: State
    since: str  # ISO 8601 time the state began
    tags: dict[str, float] | None = None  # announced style tags of the window that brought it (a model with tags)
    provisional: bool = False  # decided before the stream's first full window; sent again without it once one came

    def message(self, prefix: str, stream_id: str) -> Message:
        body = {
            "model_id": self.model_id,
            "time": utc_now(),
            "kind": self.state.kind,
            "genre": self.state.genre,
            "confidence": round(self.state.confidence, 5),
            "music": self.state.music,
            "since": self.since,
        }
        if self.tags is not None:
            body["tags"] = self.tags
        if self.provisional:
            body["provisional"] = True
        return _message(prefix, stream_id, "genre", body, retain=True)
