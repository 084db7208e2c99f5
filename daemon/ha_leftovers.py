"""What a process left in Home Assistant's retained discovery and state: the topics ``ha-cleanup`` retracts, and
what the daemon names at its start (a stream announced by this process that its settings no longer have).

Functions of the retained messages (topic -> payload) and the settings: reading and retracting are the command's
(:mod:`daemon.ha_cleanup_cmd`); :class:`LeftoverWatch` only says what it sees.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from paho.mqtt.client import topic_matches_sub

from genrecast.contract import DAEMON_TOPIC, RETAINED_KINDS, daemon_status_topic

from .ha_discovery import DAEMON_OBJECT, LEGACY_FILTER, Discovery, node_id, process_device_id

log = logging.getLogger("genrecast.run")


def retained_object(payload: bytes) -> dict | None:
    """A retained payload as a JSON object, or None: any client may publish anything there."""
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    return value if isinstance(value, dict) else None


def via_device(config: dict) -> str | None:
    device = config.get("device")
    via = device.get("via_device") if isinstance(device, dict) else None
    return via if isinstance(via, str) else None


class OwnConfigs:
    """Which discovery configs are this process's to keep or to retract, worked out once from the settings (a
    process of 500 streams would otherwise rebuild them for each of its 500 retained configs)."""

    def __init__(self, settings) -> None:
        name = settings.daemon_name()
        discovery = Discovery(settings.prefix, name, "", (), settings.refresh_seconds, settings.discovery_prefix)
        self.keep = {discovery.topic(s.stream_id) for s in settings.stream_settings()} | {discovery.process_topic}
        self.node_filter = discovery.topic("+")  # every device config of this prefix's node
        self.device_id = process_device_id(settings.prefix, name)
        self.status_topic = daemon_status_topic(settings.prefix, name)

    def stale(self, topic: str, payload: bytes) -> bool:
        """A config naming this process that its settings no longer have: a removed stream's device (by its
        ``via_device``), or the single-sensor form (up to 0.3.0) that the stream's device replaced."""
        config = retained_object(payload)
        if config is None or topic in self.keep:
            return False
        if "/device/" in topic:
            return not topic.rsplit("/", 2)[-2].startswith(DAEMON_OBJECT) and via_device(config) == self.device_id
        return "/sensor/" in topic and isinstance(config.get("availability"), list) and any(
            isinstance(a, dict) and a.get("topic") == self.status_topic for a in config["availability"])


def stale_configs(retained: dict[str, bytes], settings) -> list[str]:
    """The discovery topics among ``retained`` (topic -> payload) to retract for ``settings``."""
    own = OwnConfigs(settings)
    return [topic for topic, payload in sorted(retained.items()) if own.stale(topic, payload)]


def stale_streams(retained: dict[str, bytes], settings) -> list[str]:
    """The retained state topics among ``retained`` of streams this process published (their status names it as
    ``daemon``) that ``settings`` no longer has."""
    have = {s.stream_id for s in settings.stream_settings()}
    gone = set()
    for topic, payload in retained.items():
        head, _, kind = topic.rpartition("/")
        sid = head.removeprefix(f"{settings.prefix}/")
        if kind != "status" or "/" in sid or sid == DAEMON_TOPIC or sid in have:
            continue
        status = retained_object(payload)
        if status is not None and status.get("daemon") == settings.daemon_name():
            gone.add(sid)
    return sorted(t for t in retained if t.rpartition("/")[0].removeprefix(f"{settings.prefix}/") in gone
                  and t.rpartition("/")[2] in RETAINED_KINDS)


def live_streams(retained: dict[str, bytes], settings) -> set[str]:
    """The streams this process publishes now, by its retained status (online, and its ``streams``). Run after a
    stream was taken out of the settings but before the process was restarted with them, ha-cleanup retracted the
    running stream's device, which the process never sent again: the stream vanished from Home Assistant. A stream
    of a crashed run (its own status still online) is not one once the process runs without it."""
    status = retained_object(retained.get(daemon_status_topic(settings.prefix, settings.daemon_name()), b"")) or {}
    streams = status.get("streams") if status.get("state") == "online" else None
    return {s for s in streams if isinstance(s, str)} if isinstance(streams, list) else set()


def stream_of(topic: str, settings) -> str:
    """The stream a retained topic belongs to: a device config's object id, the old sensor's, or a state topic's."""
    if topic_matches_sub(LEGACY_FILTER, topic):
        return topic.split("/")[-2].removeprefix("genrecast_")
    if topic_matches_sub(f"{settings.discovery_prefix}/device/+/+/config", topic):
        return topic.split("/")[-2]
    return topic.rpartition("/")[0].removeprefix(f"{settings.prefix}/")


def _other_processes(retained: dict[str, bytes], settings):
    """``(config topic, name, status topic, online, streams naming it)`` of every other process device under this
    prefix: its streams are the stream devices whose ``via_device`` is its identifier. A device of another prefix
    that shares the node (``home/genrecast`` and ``home_genrecast``) is not one: its identifier says so."""
    ours = Discovery(settings.prefix, settings.daemon_name(), "", (), settings.refresh_seconds,
                     settings.discovery_prefix).process_topic
    node = f"{settings.discovery_prefix}/device/{node_id(settings.prefix)}/"
    configs = {t: c for t, p in retained.items() if t.startswith(node) and (c := retained_object(p))}
    for topic in sorted(configs):
        obj = topic.removeprefix(node).removesuffix("/config")
        if not obj.startswith(DAEMON_OBJECT) or topic == ours:
            continue
        name = obj.removeprefix(DAEMON_OBJECT)
        device, device_id = configs[topic].get("device"), process_device_id(settings.prefix, name)
        if not isinstance(device, dict) or not isinstance(device.get("identifiers"), list) \
                or device_id not in device["identifiers"]:
            continue
        streams = sorted(t.removeprefix(node).removesuffix("/config") for t, c in configs.items()
                         if via_device(c) == device_id)
        status_topic = daemon_status_topic(settings.prefix, name)
        online = (retained_object(retained.get(status_topic, b"")) or {}).get("state") == "online"
        yield topic, name, status_topic, online, streams


@dataclass(frozen=True)
class OtherProcesses:
    """What ``ha-cleanup`` finds of the other processes under this prefix that are not online, in one pass."""

    # The device configs and retained statuses of those that no stream device names as ``via_device``: a name this
    # process had before (the default name is the stream id with one stream and the host's with several), or a
    # process retired for good. Home Assistant would otherwise keep a device with an offline Status for ever.
    stale: list[str]
    # Those whose streams are still announced, by name, with those streams: left alone, since a machine switched off
    # for the night looks the same, but said, since one that is this process under its old name does too (a config
    # cut from two streams to one renames the process, from the host's name to the stream's, and ha-cleanup said
    # "nothing to retract" while the removed stream stayed).
    offline: dict[str, list[str]]


def other_processes(retained: dict[str, bytes], settings) -> OtherProcesses:
    """The other processes under this prefix that are not online, stale or still announcing streams (a live
    process is left alone)."""
    stale, offline = [], {}
    for topic, name, status_topic, online, streams in _other_processes(retained, settings):
        if online:
            continue
        if streams:
            offline[name] = streams
        else:
            stale += [topic, *([status_topic] if status_topic in retained else [])]
    return OtherProcesses(stale, offline)


class LeftoverWatch:
    """The daemon's side: at every connect the broker sends the retained device configs of this process's node; a
    stream device that names this process as ``via_device`` but that its settings no longer have was left by a
    stream removed from them, and stays unavailable in Home Assistant for good. Said once per stream, with the
    command that removes it; not removed unasked, as running a few of the streams apart would then drop the others'
    devices, with their entity settings."""

    def __init__(self, settings) -> None:
        self.name, self.own = settings.daemon_name(), OwnConfigs(settings)
        self.filter = self.own.node_filter
        self._told: set[str] = set()

    def on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        if not retained or topic in self._told or not topic_matches_sub(self.filter, topic):
            return
        if self.own.stale(topic, payload):
            self._told.add(topic)
            log.warning("stream %s: still announced to Home Assistant by process %s, but not in its settings: its "
                        "device stays unavailable there until `genrecast ha-cleanup` (with the settings `run` has) "
                        "removes it", topic.rsplit("/", 2)[-2], self.name)
