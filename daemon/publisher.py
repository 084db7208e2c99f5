"""MQTT delivery that survives the broker going away (paho-mqtt 2.x, network loop in its own thread).

While connected, messages go straight to paho. While not, they wait in a bounded buffer (the oldest
dropped and counted in the log). On every (re)connect the newest retained message of each topic
(discovery, genre) goes first, then the statuses saying ``online``, then the buffer: a broker restarted without
persistence learns the current state, and a consumer never sees a stream come online over its old genre.
The broker's last will marks the process ``offline`` (``<prefix>/_daemon/<name>/status``) if it dies without
saying goodbye; one connection carries every stream of the process, and has only that one will. A will's payload
is fixed when its connection is made, so it is written anew before every (re)connect, with that moment as ``since``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import paho.mqtt.client as mqtt

from .broker import BrokerConfig, ConnectFailures, disconnect_reason, mqtt_client, refusal
from .events import Message, utc_now

log = logging.getLogger("genrecast.mqtt")

# paho's backoff between tries grows from 1 s to this: back within 5 s of the broker's return (a cap of 30 s kept
# Home Assistant's entities unavailable up to 15 s longer than the outage), one try every 5 s while it stays down
RECONNECT_MAX_SECONDS = 5


UNACKED_SWEEP = 1000  # sent messages held before the first sweep of the acknowledged ones behind the head


def _no_hello(since: str) -> list[Message]:
    return []


class Publisher:
    def __init__(self, broker: BrokerConfig, client_id: str, hello: Callable[[str], list[Message]],
                 will: Callable[[str], Message], qos: int = 1, buffer_messages: int = 1000) -> None:
        """``hello(since)`` makes the retained statuses (the process's last), sent on every connect with a fresh
        time, after the other retained messages (discovery, the current genres); they replace any older retained
        message of the same topics. ``will(since)`` makes the last will before every connection try. ``since`` is
        when that connection was opened (ISO 8601, UTC).
        """
        self.broker, self.qos, self._hello, self._will = broker, qos, hello, will
        self.since = utc_now()  # when the current (or next) connection was opened; renewed before every try
        self._buffer: deque[Message] = deque()
        self._limit = buffer_messages
        self._sticky: dict[str, Message] = {}
        self._lock = threading.Lock()
        self._acked = threading.Condition()
        self._connected = False
        self._connected_at = 0.0  # time.monotonic() when the current connection came up
        self._closing = False
        self._said_goodbye = threading.Event()  # our DISCONNECT went out: the broker will not send the will
        self._unacked: deque[mqtt.MQTTMessageInfo] = deque()  # QoS 1/2 messages sent, oldest first
        self._sweep_at = UNACKED_SWEEP
        self._refused = False  # the last try was turned down by the broker (a CONNACK failure)
        self._failures = ConnectFailures(broker, log, f", buffering up to {buffer_messages} messages")
        self.dropped = 0
        self._dropped_logged = 0
        client = mqtt_client(broker, client_id)
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_SECONDS)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        self._watched: list[str] = []
        self._on_watched: Callable[[str, bytes, bool], None] | None = None

    def watch(self, topics: list[str], handler: Callable[[str, bytes, bool], None]) -> None:
        """Subscribe to ``topics`` on every connect, after our own retained messages went out; call before start.

        ``handler(topic, payload, retained)`` runs on paho's thread (``retained``: sent for the new subscription
        from what the broker held); an exception in it is logged, never fatal.
        """
        self._watched, self._on_watched = list(topics), handler

    def resend(self, topic: str) -> None:
        """Publish the newest retained message of ``topic`` again (to win back a topic another client overwrote)."""
        fresh = {m.topic: m for m in self._hello(self.since)}
        with self._lock:
            msg = fresh.get(topic) or self._sticky.get(topic)
        if msg is not None:
            self.publish(msg)

    def resend_kept(self, topics: list[str]) -> int:
        """Publish the newest retained message of each of ``topics`` again, as kept (the discovery configs, at Home
        Assistant's birth message); how many there were."""
        with self._lock:
            kept = [self._sticky[t] for t in topics if t in self._sticky]
        for msg in kept:
            self.publish(msg)
        return len(kept)

    def refresh(self) -> None:
        """Publish the statuses again, with a fresh time: a heartbeat for consumers that expire silent states."""
        for msg in self._hello(self.since):
            self.publish(msg)

    def start(self) -> None:
        """Connect in the background; a broker that is down now is retried with backoff."""
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive)
        self._client.loop_start()

    def publish(self, msg: Message) -> None:
        with self._lock:
            if msg.retain:
                self._sticky[msg.topic] = msg
            if self._connected:
                self._send(msg)
                return
            if msg.retain:
                return  # remembered above and sent first on connect; only the newest per topic matters
            if len(self._buffer) >= self._limit:
                self._buffer.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("broker unreachable and buffer full (%d messages): %d oldest dropped so far",
                                self._limit, self.dropped)
            self._buffer.append(msg)

    def flush(self, timeout: float, wait_for_broker: bool = True, cancel: threading.Event | None = None) -> bool:
        """Wait until nothing is buffered and the broker acknowledged everything sent (QoS 1, 2); False on timeout.

        ``wait_for_broker=False``: give up at once while not connected (on SIGTERM: a reconnect waits at least a
        second, which the 2-s stop cannot spend on the slim chance). ``cancel``: a stop asked for meanwhile (a
        finished file waiting for the broker, then `systemctl stop`) ends the wait as ``wait_for_broker=False``.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._buffer and not self._count_unacked() and self._connected:
                    return True
                if not self._connected and not wait_for_broker:
                    return False
                if not self._connected and cancel is not None and cancel.is_set():
                    log.info("stop requested: no longer waiting for the broker")
                    return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._acked:  # not holding _lock: paho may call _on_publish from inside publish()
                self._acked.wait(min(left, 0.05))

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    @property
    def trouble(self) -> str | None:
        """Why the broker cannot be reached, for systemd's status line, once a try has failed; None while connected
        (or still connecting)."""
        why = self._failures.why
        return None if why is None or self.connected else f"broker {why}"

    @property
    def connected_for(self) -> float | None:
        """Seconds the current connection has been up; None while there is none."""
        with self._lock:
            return time.monotonic() - self._connected_at if self._connected else None

    @property
    def undelivered(self) -> int:
        with self._lock:
            return len(self._buffer) + self._count_unacked()

    def _count_unacked(self) -> int:
        """QoS 1/2 messages not yet acknowledged (call with ``_lock`` held: ``_send`` appends under it)."""
        self._forget_acked()
        return sum(_pending(info) for info in self._unacked)

    def _forget_acked(self) -> None:
        """Drop the acknowledged messages at the head (acknowledged in order, per QoS level), with ``_lock`` held;
        kept until the next count, every message ever sent stayed in memory (about 1 kB each, 26 MB an hour
        for 8 streams). A head that is never acknowledged would keep everything behind it, so once the queue
        doubles past its last size it is swept whole (amortised: each message is looked at a bounded number of
        times)."""
        while self._unacked and not _pending(self._unacked[0]):
            self._unacked.popleft()
        if len(self._unacked) > self._sweep_at:
            self._unacked = deque(info for info in self._unacked if _pending(info))
            self._sweep_at = max(UNACKED_SWEEP, 2 * len(self._unacked))

    def close(self, goodbye: Message, timeout: float = 0.5) -> None:
        """Publish the final (retained offline) status if connected, then disconnect; returns within ``timeout``.

        The network thread is not joined (``loop_stop``): with the broker down it sleeps in paho's reconnect
        backoff, up to a second between checks, which the 2 s exit promised after SIGTERM cannot afford. It
        is a daemon thread and ends at its next check; what matters, our DISCONNECT, is waited for here.
        """
        deadline = time.monotonic() + timeout
        self._failures.silence()
        with self._lock:
            self._closing = True
            connected = self._connected
            if connected:
                info = self._send(goodbye)
        if connected:
            # RuntimeError: the connection went away meanwhile; the broker publishes our will instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        self._client.disconnect()
        if connected:
            self._said_goodbye.wait(max(0.0, deadline - time.monotonic()))
        # The network thread may outlive the caller (above), and through this callback it would keep everything
        # the caller's statuses are made from, every stream's pipeline with it, until the interpreter's teardown
        # (where a native object still held by a running thread is reported on stderr as leaked, under load).
        # A closed publisher greets no broker again.
        self._hello = _no_hello

    # -- paho callbacks (network thread) --

    def _send(self, msg: Message) -> mqtt.MQTTMessageInfo:
        qos = self.qos if msg.qos is None else msg.qos
        info = self._client.publish(msg.topic, msg.payload, qos=qos, retain=msg.retain)
        if qos:  # QoS 0 is never acknowledged, and paho drops it unsent, unreported, if the connection goes
            self._forget_acked()
            self._unacked.append(info)
        return info

    def _on_pre_connect(self, client, userdata) -> None:
        """Before every connection try: the will goes in the CONNECT packet, so this is its last chance to be true."""
        self.since = utc_now()
        will = self._will(self.since)
        client.will_set(will.topic, will.payload, qos=1, retain=True)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = True
            self._failed(refusal(reason_code))
            return
        with self._lock:
            hello = self._hello(self.since)
            fresh = {m.topic for m in hello}
            for msg in [*(m for t, m in self._sticky.items() if t not in fresh), *hello]:
                self._send(msg)
            waiting = len(self._buffer)
            while self._buffer:
                self._send(self._buffer.popleft())
            self._connected, self._connected_at = True, time.monotonic()
            if self._watched:  # after our retained messages: what comes back is ours or newer than ours
                client.subscribe([(t, 1) for t in self._watched])
            dropped = self.dropped - self._dropped_logged
            self._dropped_logged = self.dropped
        self._failures.succeeded()
        log.info("connected to %s; sent %d buffered messages, %d dropped while away", self.broker.url,
                 waiting, dropped)

    def _on_connect_fail(self, client, userdata) -> None:
        self._failed()

    def _failed(self, why: str | None = None) -> None:
        """A failed try, said (on the first and every 10th) unless closing: the network thread is not joined, and
        its first try, late on a busy machine, was logged after the command's last line (exit 2's error)."""
        if not self._closing:
            self._failures.failed(why)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        # Not under _lock: paho can report a lost connection while holding its own message lock (resending after a
        # reconnect), which a publish() holding _lock waits for. A publish that still sees "connected" is refused
        # by paho (not connected) and kept for the next connection, as any send racing the drop is.
        was, self._connected = self._connected, False  # only paho's thread changes it (here and in _on_connect)
        if self._closing:
            self._said_goodbye.set()
        elif was:
            log.warning("lost connection to %s (%s); buffering up to %d messages, reconnecting",
                        self.broker.url, disconnect_reason(reason_code), self._limit)
        elif self._refused:  # the broker said no, counted in _on_connect, and hung up
            self._refused = False
        else:  # dropped before any answer: plain MQTT spoken to a TLS port, say
            self._failed()

    def _on_message(self, client, userdata, msg) -> None:
        if self._on_watched is None:
            return
        try:
            self._on_watched(msg.topic, msg.payload, bool(msg.retain))
        except Exception:  # an exception escaping a paho callback would stop the network thread
            log.exception("handling a message on %s failed", msg.topic[:200])

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._acked:  # wake flush(), which checks what is still unacknowledged
            self._acked.notify_all()


def _pending(info: mqtt.MQTTMessageInfo) -> bool:
    """Sent at QoS 1/2 and not yet acknowledged.

    A send made as the connection went is refused (not connected), yet paho keeps the message and sends it on
    reconnecting; its ``is_published()`` raises on that old error code forever, so its flag is read directly.
    """
    try:
        return not info.is_published()
    except RuntimeError:
        return not info._published  # paho's own flag, set when the broker acknowledges the resent message
    except ValueError:  # refused for a full queue: never sent, nothing to wait for
        return False
