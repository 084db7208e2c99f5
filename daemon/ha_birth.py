"""Home Assistant's birth message: the devices announced again whenever Home Assistant's MQTT integration connects.

Home Assistant publishes ``online`` to ``homeassistant/status`` (its birth message, not retained) each time its MQTT
integration connects: at its start, and when the integration is reloaded. Its MQTT docs ask a publisher to send its
discovery again then. Without it, a device deleted in Home Assistant's UI (which empties its retained config) stayed
gone until the daemon restarted, and so did the devices of a broker that lost its retained messages while the daemon
kept its connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("genrecast.run")

HA_BIRTH_TOPIC = "homeassistant/status"  # Home Assistant's default, whatever its discovery prefix
BIRTH_PAYLOAD = b"online"


class BirthWatch:
    def __init__(self, discovery_prefix: str, announce: Callable[[], int]) -> None:
        """``announce()`` publishes every discovery config of this process again and says how many. Both the default
        birth topic and ``<discovery_prefix>/status`` are watched: the two are one unless the prefix was changed."""
        self.topics = sorted({HA_BIRTH_TOPIC, f"{discovery_prefix}/status"})
        self._announce = announce

    def on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        # A retained birth (Home Assistant set to retain it) comes with every subscription of ours, right after
        # our connect has sent the configs anyway: only a live one means Home Assistant has just connected.
        if topic in self.topics and payload == BIRTH_PAYLOAD and not retained:
            n = self._announce()
            log.info("Home Assistant connected to the broker (its birth message on %s): %d device configs sent "
                     "again", topic, n)
