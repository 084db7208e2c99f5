"""The dashboard's MQTT subscriber: a paho client on its own thread that fills a :class:`History`.

paho's network thread retries the connection by itself (first connection included), so the page can start before
the broker and outlive it; the feed only records whether it is connected, so the page can say so.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from genrecast.daemon.broker import BrokerConfig, ConnectFailures, disconnect_reason, refusal
from paho.mqtt.enums import CallbackAPIVersion

from genrecast.contract import RETAINED_KINDS, stream_topic

from .history import History
from .parse import PayloadError, parse_message, topic_filters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedStatus:
    connected: bool
    broker_url: str
    rejected: int  # messages ignored because they broke the contract
    last_rejection: str | None  # why the latest one was ignored, for the page and the log
    problem: str | None  # why we are not connected, when the broker said (e.g. "Not authorized")


class Feed:
    def __init__(self, broker: BrokerConfig, prefix: str, history: History) -> None:
        self.broker = broker
        self.prefix = prefix
        self.history = history
        self._lock = threading.Lock()
        self._connected = False
        self._problem: str | None = None
        self._rejected = 0
        self._last_rejection: str | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, clean_session=True)
        if broker.username:
            self._client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            self._client.tls_set(ca_certs=broker.ca_file)
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)  # a local dashboard should come back quickly
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_connect_fail = self._on_connect_fail
        self._failures = ConnectFailures(broker, log)
        self._refused = False
        self._stopping = False
        self._subscription: int | None = None  # message id of the main SUBSCRIBE, acknowledged in _on_subscribe

    def start(self) -> None:
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def status(self) -> FeedStatus:
        with self._lock:
            return FeedStatus(self._connected, self.broker.url, self._rejected, self._last_rejection, self._problem)

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Add one message to the history, or count it as rejected; never raises on bad input. A ``retained`` one
        (the broker's copy, sent at subscribing) is as old as its ``time`` says: a stream that ended ten minutes
        ago read "last message 2 s ago" after every start of the dashboard. A live one is as old as its arrival,
        whatever the publisher's clock says."""
        try:
            message = parse_message(self.prefix, topic, payload)
        except PayloadError as exc:
            self._reject(f"{topic[:200]}: {exc}")
            return
        except Exception as exc:  # a parser bug must cost one message, not the paho thread (and the page)
            log.exception("could not parse a message on %s", topic[:200])
            self._reject(f"{topic[:200]}: unparseable ({type(exc).__name__})")
            return
        sent = getattr(message, "time", None) if retained else None
        age = max(0.0, (datetime.now(UTC) - sent).total_seconds()) if sent else 0.0
        if self.history.add(message, age):
            self._refetch(message.stream_id)

    def _refetch(self, stream_id: str) -> None:
        """Have the broker send a returning stream's retained status and genre again: it does so for a new
        subscription. Unsubscribed at once; what the broker queued for the subscription still arrives."""
        topics = [stream_topic(self.prefix, stream_id, kind) for kind in RETAINED_KINDS]
        self._client.subscribe([(t, 0) for t in topics])
        self._client.unsubscribe(topics)

    def _reject(self, why: str) -> None:
        with self._lock:
            self._rejected += 1
            self._last_rejection = why
            count = self._rejected
        if count == 1 or count % 1000 == 0:  # a misbehaving publisher must not flood the log
            log.warning("ignored %d bad message(s) so far; latest: %s", count, why)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = True
            self._failed(refusal(reason_code))
            return
        self._failures.succeeded()
        # (re)subscribe on every connection: the broker forgets subscriptions of a clean session
        self._subscription = client.subscribe([(topic, 0) for topic in topic_filters(self.prefix)])[1]

    def _on_connect_fail(self, client, userdata) -> None:
        self._failed()

    def _failed(self, why: str | None = None) -> None:
        """Log the cause (first try and every 10th) and show the latest on the page."""
        self._failures.failed(why)
        with self._lock:
            self._problem = self._failures.why

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # Connected means receiving: only once the broker acknowledged the subscription, so a message
        # published after the page says "connected" is never missed.
        if mid != self._subscription:
            return  # a returning stream's retained state being fetched again (see _refetch)
        with self._lock:
            self._connected, self._problem = True, None
        log.info("connected to %s", self.broker.url)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            was, self._connected = self._connected, False
        if was and reason_code.is_failure:  # not our own stop()
            log.warning("lost the broker %s (%s); reconnecting", self.broker.url, disconnect_reason(reason_code))
        elif self._refused:  # the broker said no, counted in _on_connect, and hung up
            self._refused = False
        elif not was and not self._stopping:  # dropped before any answer: plain MQTT spoken to a TLS port, say
            self._failed()

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        # an exception escaping a paho callback would stop the network thread, hence the care here
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            self._reject("a topic that is not UTF-8")
            return
        self.handle(topic, msg.payload, bool(msg.retain))
