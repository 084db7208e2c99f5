"""Home Assistant MQTT discovery: a device for the process and one per stream (HA's device-based discovery).

One retained config message per device at ``<discovery_prefix>/device/<node>/<object>/config`` names its entities
(components). The node is the topic prefix (made topic-safe), so two installations with different prefixes never
share a discovery topic, ``unique_id`` or device; unique ids and device identifiers spell out the topics they read.

- The process device (object ``_daemon_<name>``) has one diagnostic ``Status`` entity: online or offline, with the
  reason (``stopped``, ``connection lost``, ...) as an attribute.
- Each stream's device (object ``<stream_id>``, ``via_device`` the process's) has ``Genre`` (an enum: the model's
  labels and ``uncertain``, ``no_music``, ``silence``), ``Confidence`` (%), ``Music`` (a sound binary sensor) and a
  diagnostic ``Status`` (online, stalled, offline).

Genre, confidence and music read the retained ``genre`` topic, which the daemon republishes every
``refresh_seconds``; each sets ``expire_after`` to :data:`EXPIRE_PERIODS` of them, so a daemon that died while
the broker was down (no last will reaches anyone then) does not leave its last genre standing in HA for ever.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from genrecast import __version__
from genrecast.contract import (
    DAEMON_TOPIC,
    DECISION_KINDS,
    PROCESS_STATES,
    STREAM_STATES,
    daemon_status_topic,
    stream_topic,
)

from .events import Message

DEFAULT_DISCOVERY_PREFIX = "homeassistant"
EXPIRE_PERIODS = 3  # refresh periods without a message before HA shows genre and confidence as unavailable
DAEMON_OBJECT = f"{DAEMON_TOPIC}_"  # the process device's object id is this + its name (no stream id takes it)

STALLED_IS_OFFLINE = "{{ 'online' if value_json.state == 'online' else 'offline' }}"  # a stalled stream is down
# The start's "not yet known" (genrecast.contract.not_yet_known), as a template: uncertain at confidence 0.
NOT_YET_KNOWN = "value_json.kind == 'uncertain' and value_json.confidence == 0"
# The genre, else the kind; unknown ("None") for the start's "not yet known": it showed "uncertain", so after every
# restart a "to: jazz" trigger fired past the guard Home Assistant's users write, not_from: [unknown, unavailable].
GENRE_STATE = ("{{ value_json.genre if value_json.kind == 'genre' else 'None' if " + NOT_YET_KNOWN
               + " else value_json.kind }}")
# The daemon's own answer (State.music): on for a genre and for music with no clear genre (a judged uncertain), off
# for no_music and silence, unknown ("None") at the start. With a music head, a refresh of the start's unjudged
# state (music null, a confidence over 0) renders nothing, which Home Assistant ignores (after a silence the
# decision holds silence until the sound is judged: it went off -> unknown -> on at every pause). A model without one
# never judges an uncertain (it cannot tell music from speech): unknown for as long as that lasts, not the last on or
# off.
# A payload from before `music` was sent: its kind says what it can (its uncertain as unjudged).
_MUSIC = ("{% set music = value_json.get('music', none if value_json.kind == 'uncertain' "
          "else value_json.kind == 'genre') %}{{ 'ON' if music is true else 'OFF' if music is false else ")
MUSIC_STATE = _MUSIC + "'None' if " + NOT_YET_KNOWN + " else '' }}"
MUSIC_STATE_NO_HEAD = _MUSIC + "'None' }}"
# A genre's confidence only: silence's 1 and no_music's 1 - music are another quantity, and would fill the
# long-term statistics (state_class) with a silent night's 100 %. HA shows "unknown" ("None") meanwhile.
# Whole percents, as shown: a tenth changed with nearly every refresh, a recorder row each (8,600 a day a stream).
CONFIDENCE_PERCENT = "{{ (value_json.confidence * 100) | round(0) | int if value_json.kind == 'genre' else 'None' }}"
# when the state began, whether it came from a live stream's first provisional windows only (a first answer, which
# may sit under min_confidence), and a tagging model's tags of the window that brought it (no version, time or
# repeated state)
_SINCE = "'since': value_json.since, 'provisional': value_json.get('provisional') is true"
GENRE_ATTRIBUTES = ("{{ ({" + _SINCE + ", 'tags': value_json.tags} if 'tags' in value_json else {" + _SINCE
                    + "}) | tojson }}")
REASON_ATTRIBUTE = "{{ {'reason': value_json.get('reason')} | tojson }}"  # online: no reason (null)
# A stream's also says what it listens to, and how much audio it dropped for falling behind (null: none): both
# change rarely, so they cost the recorder little, and a stream that cannot keep up was invisible in Home Assistant.
STREAM_STATUS_ATTRIBUTES = ("{{ {'reason': value_json.get('reason'), 'source': value_json.get('source'), "
                            "'dropped_s': value_json.get('dropped_s')} | tojson }}")
ORIGIN = {"name": "genrecast", "sw_version": __version__}
# genrecast 0.3.0 and older announced one sensor per stream here, whatever the discovery prefix was set to
LEGACY_TOPIC = "homeassistant/sensor/genrecast_{}/config"
LEGACY_FILTER = "homeassistant/sensor/+/config"  # what ha-cleanup reads to find them (MQTT has no genrecast_+)


def process_device_id(prefix: str, name: str) -> str:
    """The process device's identifier (and its entities' unique-id stem): the status topic it reads, spelled out."""
    return f"genrecast/{daemon_status_topic(prefix, name).removesuffix('/status')}"


def node_id(prefix: str) -> str:
    """The discovery topic's node: the topic prefix with every character HA does not allow there as ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", prefix)


def process_display_name(daemon: str) -> str:
    """The process device's readable name (``den`` -> ``Den Daemon``), beside its streams' ones, in the same title
    case ("Genrecast Kitchen daemon Status" read as a typo)."""
    return f"{display_name(daemon)} Daemon"


def display_name(text: str) -> str:
    """``living_room`` -> ``Living Room``: HA shows device names beside entity names ("Living Room Genre")."""
    return " ".join(w[:1].upper() + w[1:] for w in re.split(r"[-_ ]+", text) if w) or text


@dataclass(frozen=True)
class Discovery:
    """What every discovery message of one process shares."""

    prefix: str  # the topic prefix
    daemon: str  # the process's name
    model_id: str
    labels: tuple[str, ...]
    refresh_seconds: float
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX
    configuration_url: str | None = None  # the dashboard's URL, when one is configured
    music_head: bool = True  # the model judges music with no clear genre (ModelSpec.has_music_head)

    @property
    def expire_after(self) -> int:
        return math.ceil(EXPIRE_PERIODS * self.refresh_seconds)

    def topic(self, object_id: str) -> str:
        return f"{self.discovery_prefix}/device/{node_id(self.prefix)}/{object_id}/config"

    @property
    def process_topic(self) -> str:
        return self.topic(DAEMON_OBJECT + self.daemon)

    @property
    def process_device_id(self) -> str:
        return process_device_id(self.prefix, self.daemon)

    def _device(self, identifier: str, name: str, model: str, **extra) -> dict:
        device = {"identifiers": [identifier], "name": name, "manufacturer": "genrecast", "model": model,
                  "sw_version": __version__, **{k: v for k, v in extra.items() if v is not None}}
        if self.configuration_url:
            device["configuration_url"] = self.configuration_url
        return device

    def _daemon_availability(self) -> dict:
        return {"topic": daemon_status_topic(self.prefix, self.daemon), "value_template": "{{ value_json.state }}",
                "payload_available": "online", "payload_not_available": "offline"}

    def process(self) -> Message:
        """The process's device and its ``Status`` entity: no availability of its own (offline is its news), and no
        ``expire_after``, so that a stopped or crashed process shows ``offline`` and why until it is back, not
        unavailable (which hides the reason) 30 s later. Its streams' entities still expire."""
        status = {
            "platform": "sensor", "name": "Status", "unique_id": f"{self.process_device_id}/status",
            "entity_category": "diagnostic", "device_class": "enum", "options": list(PROCESS_STATES),
            "state_topic": daemon_status_topic(self.prefix, self.daemon), "value_template": "{{ value_json.state }}",
            "json_attributes_topic": daemon_status_topic(self.prefix, self.daemon),
            "json_attributes_template": REASON_ATTRIBUTE, "qos": 1,
        }
        config = {"device": self._device(self.process_device_id, f"Genrecast {process_display_name(self.daemon)}",
                                         "genrecast daemon"),
                  "origin": ORIGIN, "components": {"status": status}, "qos": 1}
        return Message(self.process_topic, json.dumps(config), retain=True, qos=1)

    def stream(self, stream_id: str, area: str | None = None) -> Message:
        """A stream's device and its four entities.

        Genre, confidence and music are available only while both the stream's status and its process's status
        say online (``availability_mode: all``): a process killed outright leaves its streams' retained
        ``online``, but the broker publishes the process's will. The stream's ``Status`` follows the process's
        availability alone, so that a stream that ended or stalled shows why.
        """
        status, genre = stream_topic(self.prefix, stream_id, "status"), stream_topic(self.prefix, stream_id, "genre")
        uid = f"genrecast/{self.prefix}/{stream_id}"
        both = {"availability": [{"topic": status, "value_template": STALLED_IS_OFFLINE,
                                  "payload_available": "online", "payload_not_available": "offline"},
                                 self._daemon_availability()],
                "availability_mode": "all", "expire_after": self.expire_after, "qos": 1,
                "state_topic": genre}
        components = {
            "genre": {"platform": "sensor", "name": "Genre", "unique_id": f"{uid}/genre", "device_class": "enum",
                      "options": [*self.labels, *(k for k in DECISION_KINDS if k != "genre")], "icon": "mdi:music",
                      "value_template": GENRE_STATE, "json_attributes_topic": genre,
                      "json_attributes_template": GENRE_ATTRIBUTES, **both},
            "confidence": {"platform": "sensor", "name": "Confidence", "unique_id": f"{uid}/confidence",
                           "unit_of_measurement": "%", "state_class": "measurement",
                           "suggested_display_precision": 0, "icon": "mdi:gauge",
                           "value_template": CONFIDENCE_PERCENT, **both},
            "music": {"platform": "binary_sensor", "name": "Music", "unique_id": f"{uid}/music",
                      "device_class": "sound",
                      "value_template": MUSIC_STATE if self.music_head else MUSIC_STATE_NO_HEAD, **both},
            "status": {"platform": "sensor", "name": "Status", "unique_id": f"{uid}/status",
                       "entity_category": "diagnostic", "device_class": "enum", "options": list(STREAM_STATES),
                       "state_topic": status, "value_template": "{{ value_json.state }}",
                       "json_attributes_topic": status, "json_attributes_template": STREAM_STATUS_ATTRIBUTES,
                       "availability": [self._daemon_availability()], "expire_after": self.expire_after,
                       "qos": 1},
        }
        config = {"device": self._device(uid, f"Genrecast {display_name(stream_id)}", self.model_id,
                                         via_device=self.process_device_id, suggested_area=area),
                  "origin": ORIGIN, "components": components, "qos": 1}
        return Message(self.topic(stream_id), json.dumps(config), retain=True, qos=1)


def legacy_retraction(stream_id: str) -> Message:
    """Empty the stream's single-sensor config of 0.3.0 and older, sent just before its device's config.

    Home Assistant gives an entity id once, when it first sees the entity: with the old sensor still there, the new
    Genre entity became ``sensor.genrecast_<id>_genre_2`` beside a dead one, and automations and history on the old
    id stopped. With the old one gone first, the new entity takes its id. An empty retained message where there is
    none changes nothing.
    """
    return retraction(LEGACY_TOPIC.format(stream_id))


def retraction(topic: str) -> Message:
    """An empty retained config: HA removes the device (or entity) and the broker forgets the config."""
    return Message(topic, "", retain=True, qos=1)
