"""``genrecast ha-cleanup``: retract the Home Assistant discovery of streams this process's config no longer has.

Discovery configs are retained, so a stream removed from the config stays a device in HA (unavailable) until its
config is replaced by an empty one. This reads the retained configs under the discovery prefix and empties those
that belong to this process (by ``via_device``) but name a stream it does not have, and the single-sensor configs
of versions up to 0.3.0 (``<discovery_prefix>/sensor/genrecast_<id>/config``) that name this process. Such a stream's
own retained state (``<prefix>/<id>/status`` and ``genre``, found by the status's ``daemon``) goes too: scripts and
the dashboard would otherwise list a stream that no longer exists, offline, for good. Last, the devices of other
processes under the prefix that are not online and announce no stream any more (a name this process had before,
say), and their retained statuses.
"""

from __future__ import annotations

import argparse
import secrets
import threading

from genrecast.contract import DAEMON_TOPIC, RETAINED_KINDS, daemon_status_topic, stream_topic
from genrecast.errors import UserError
from genrecast.text import counted

WAIT_SECONDS = 10.0


def register(sub) -> None:
    from .run_cmd import add_identity, add_run_settings, flag_names

    p = sub.add_parser("ha-cleanup",
                       help="remove Home Assistant devices of streams no longer configured",
                       description="Retract (empty, retained) the Home Assistant discovery configs of this process's "
                                   "streams that its settings no longer have (and their retained status and genre), "
                                   "of the old single-sensor form, and of other processes under the prefix that are "
                                   "not online and announce no stream (an earlier name of this one, say), with their "
                                   "retained status. Give the settings `run` is given.")
    add_identity(p)
    p.add_argument("--dry-run", action="store_true", help="only list what would be retracted")
    add_run_settings(p.add_argument_group("run's other settings", "taken so that run's command line works here as "
                                          "it is; only those above decide what is retracted"))
    p.set_defaults(func=handler, flag_names=flag_names(p))


class RetainedReader:
    """A short MQTT session that reads every retained message under some topics and can empty them."""

    def __init__(self, broker) -> None:
        from .broker import mqtt_client

        self.broker = broker
        self.client = mqtt_client(broker, f"genrecast-ha-cleanup-{secrets.token_hex(3)}")
        self.retained: dict[str, bytes] = {}
        self._marker = ""
        self._done = threading.Event()
        self._failure: list[str] = []

    def read(self, topics: list[str], marker: str) -> dict[str, bytes]:
        """Subscribe, then publish ``marker`` (not retained) and wait for it to come back: the broker delivers in
        order, so every retained message under ``topics`` has arrived by then."""
        from .broker import diagnose, refusal

        self._marker = marker

        def on_connect(c, userdata, flags, reason_code, properties):
            if reason_code.is_failure:
                self._failure.append(refusal(reason_code))
                self._done.set()
            else:
                c.subscribe([(t, 1) for t in [*topics, marker]])

        def on_subscribe(c, userdata, mid, reason_codes, properties):
            c.publish(marker, b"1", qos=1)

        def on_message(c, userdata, msg):
            if msg.topic == self._marker:
                self._done.set()
            elif not self._done.is_set():  # a config or status sent while we read is as current as a retained one
                if msg.payload:
                    self.retained[msg.topic] = msg.payload
                else:
                    self.retained.pop(msg.topic, None)

        self.client.on_connect, self.client.on_subscribe = on_connect, on_subscribe
        self.client.on_message = on_message
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=self.broker.keepalive)
        except OSError:
            raise UserError(f"cannot reach broker {self.broker.url}: {diagnose(self.broker)}") from None
        self.client.loop_start()
        if not self._done.wait(WAIT_SECONDS) or self._failure:
            raise UserError(f"broker {self.broker.url}: {self._failure[0] if self._failure else 'no answer'}")
        return self.retained

    def retract(self, topics: list[str]) -> None:
        """An empty retained message on each topic, acknowledged by the broker."""
        sent = [self.client.publish(t, b"", qos=1, retain=True) for t in topics]
        for info in sent:
            info.wait_for_publish(WAIT_SECONDS)
            if not info.is_published():
                raise UserError(f"broker {self.broker.url} did not acknowledge the retractions")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def handler(args: argparse.Namespace) -> int:
    from paho.mqtt.client import topic_matches_sub

    from .ha_discovery import LEGACY_FILTER, node_id
    from .ha_leftovers import live_streams, other_processes, stale_configs, stale_streams, stream_of
    from .run_cmd import settings_from

    settings = settings_from(args, "dry_run")
    dp, prefix = settings.discovery_prefix, settings.prefix
    reader = RetainedReader(settings.broker.to_broker())
    discovery = [f"{dp}/device/{node_id(prefix)}/+/config", LEGACY_FILTER]
    try:
        retained = reader.read([*discovery, *(stream_topic(prefix, "+", kind) for kind in RETAINED_KINDS),
                                daemon_status_topic(prefix, "+")],
                               f"{prefix}/{DAEMON_TOPIC}/{settings.daemon_name()}/cleanup-{secrets.token_hex(4)}")
        configs = {t: p for t, p in retained.items() if any(topic_matches_sub(f, t) for f in discovery)}
        live = live_streams(retained, settings)
        stale, kept = [], []
        for topic in [*stale_configs(configs, settings), *stale_streams(retained, settings)]:
            (kept if stream_of(topic, settings) in live else stale).append(topic)
        others = other_processes(retained, settings)
        stale += others.stale
        if not args.dry_run:
            reader.retract(stale)
        for topic in stale:
            print(f"{'would retract' if args.dry_run else 'retracted'} {topic}")
        for sid in sorted({stream_of(t, settings) for t in kept}):
            print(f"kept stream {sid}: process {settings.daemon_name()} still publishes it; restart that process "
                  "with these settings, then run this again")
        offline = others.offline
        for name, streams in offline.items():
            print(f"left process {name} (offline) and its {counted(len(streams), 'stream')} ({', '.join(streams)}): "
                  f"if it is this process under an earlier name (with several streams it is named after the host, "
                  f"with one after its stream), run this again with --name {name}, then once more without it; if it "
                  f"is another machine, switched off, leave it")
    finally:
        reader.close()
    if not stale and not kept and not offline:
        print("nothing to retract")
    return 0
