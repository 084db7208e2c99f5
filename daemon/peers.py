"""Another process publishing our streams, or a dead predecessor's last will overwriting our status.

Client ids are unique per process (:func:`client_id`), so two processes given the same stream id no longer knock
each other off the broker; instead each would silently overwrite the other's topics. Every status we publish names
our ``instance``; we subscribe to our own status topics after publishing them. A live status from another instance
means a second publisher (warned about, once per publisher). An ``offline`` one sent live is a predecessor's last
will or a duplicate's goodbye, arriving after ours: we publish ours again. An ``offline`` one the broker sends as
retained, for our new subscription, is what the topic held before our status reached the broker (the SUBSCRIBE can
overtake publishes still in flight: a restarted 100-stream process logged 81 such lines); ours replaces it, so it
is ignored.

If our own status never comes back, the broker's account for us may write our topics but not read them (an
``acl_file`` with ``topic write`` only): the broker drops nothing we publish, but none of this can work, so
:meth:`PeerWatch.check_echo` says so once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable

log = logging.getLogger("genrecast.run")
ECHO_SECONDS = 15.0  # connected this long without our own status back: the account cannot read its topics


def client_id(name: str) -> str:
    """``genrecast-<name>-<host>-<6 hex>``: stable for the process's life, never shared by accident."""
    host = re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname())[:32] or "host"
    return f"genrecast-{name}-{host}-{os.getpid() % 0x10000:04x}{secrets.token_hex(1)}"


class PeerWatch:
    def __init__(self, instance: str, topics: dict[str, str], reassert: Callable[[str], None]) -> None:
        """``topics``: our status topics -> what they describe ("stream kitchen", "process den") for the log."""
        self.instance, self.topics, self._reassert = instance, topics, reassert
        self._seen: set[tuple[str, str, bool]] = set()
        self.heard_own = False  # one of our statuses came back: the broker lets us read what we publish
        self._told = False

    def check_echo(self, connected_for: float | None) -> None:
        """Called every refresh period with how long the connection has been up: after :data:`ECHO_SECONDS` of one
        connection without one of our own statuses back, say why, once. A loaded machine delays the echo by far
        less."""
        if self.heard_own or self._told or connected_for is None or connected_for < ECHO_SECONDS:
            return
        self._told = True
        log.warning("the broker does not send this process's own status back (%s): its account may write its "
                    "topics but not read them, so another process publishing these streams would go unnoticed "
                    "(docs/deployment.md, Credentials)", next(iter(self.topics)))

    def on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        if topic not in self.topics or not payload:
            return
        try:
            data = json.loads(payload)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return
        if data.get("instance") == self.instance:
            self.heard_own = True
            return
        other = data.get("instance") if isinstance(data.get("instance"), str) else "a client that gives no instance"
        live = data.get("state") != "offline"
        if retained and not live:
            return  # older than our status, which is on its way
        key = (topic, other[:200], live)
        if key in self._seen:
            return
        self._seen.add(key)
        if live:
            log.warning("%s is also published by another process (%s): each overwrites the other's messages; "
                        "give one of them another id", self.topics[topic], other[:200])
        elif (topic, other[:200], True) in self._seen:  # the twin warned about above: it stopped (or died)
            log.info("%s: the other process publishing it (%s) went offline, and its status replaced ours; sending "
                     "ours again", self.topics[topic], other[:200])
        else:
            log.info("%s: an offline status from %s (a previous run's last will?) replaced ours; sending ours again",
                     self.topics[topic], other[:200])
        self._reassert(topic)  # once per other publisher: a live one then sees us, and warns in turn
