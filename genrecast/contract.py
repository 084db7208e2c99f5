"""The MQTT contract's shared words: what the daemon publishes and what the dashboard and ``ha-cleanup`` read.

The daemon writes these topics and the dashboard parses them without importing the daemon, so each word lives here
once: the payload version, the topic layout, a stream's decision kinds and the availability states.
``docs/mqtt.md`` and ``daemon/schemas`` describe the payloads in full.
"""

from __future__ import annotations

VERSION = 1  # every payload carries "version": VERSION; fields may be added within a version, never renamed
MESSAGE_KINDS = ("status", "prediction", "genre")  # a stream's topics: <prefix>/<stream_id>/<kind>
RETAINED_KINDS = ("status", "genre")  # the ones the broker keeps
DECISION_KINDS = ("genre", "uncertain", "no_music", "silence")  # what a stream's smoothed decision can be
STREAM_STATES = ("online", "stalled", "offline")
PROCESS_STATES = ("online", "offline")
DAEMON_TOPIC = "_daemon"  # <prefix>/_daemon/<name>/status: the process's, so no stream id may start with it


def not_yet_known(kind: str, confidence: float) -> bool:
    """The genre message a stream sends before its first window: ``uncertain`` at confidence 0, which no state taken
    from a window has (the smoothing starts from every genre equally likely). Readers show it as nothing known yet."""
    return kind == "uncertain" and confidence == 0


def stream_topic(prefix: str, stream_id: str, kind: str) -> str:
    return f"{prefix}/{stream_id}/{kind}"


def daemon_status_topic(prefix: str, name: str) -> str:
    return f"{prefix}/{DAEMON_TOPIC}/{name}/status"
