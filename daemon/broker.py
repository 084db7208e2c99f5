"""Where and how to reach the MQTT broker; shared by the daemon and the dashboard."""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

KEEPALIVE_RANGE = (5, 65535)  # seconds; MQTT encodes keepalive in 16 bits
PROBE_TIMEOUT = 5.0
# A minimal MQTT 3.1.1 CONNECT (clean session, empty client id, keepalive 5 s): enough to tell an MQTT listener
# from a TLS one, which drops or answers with a TLS alert.
_CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 5, 0, 0])


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    keepalive: int = 30

    @classmethod
    def from_url(cls, url: str, **overrides) -> BrokerConfig:
        """``mqtt://[user[:pass]@]host[:port]`` or ``mqtts://...`` (default ports 1883 and 8883)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:  # a port that is not a number or over 65535
            raise ValueError(f"broker URL has a bad port: {redact_url(url)!r}") from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(
                f"broker URL must look like mqtt://host:port or mqtts://host:port, got {redact_url(url)!r}")
        if port == 0:  # once taken for "no port": the default one, perhaps another broker's
            raise ValueError(f"broker URL has port 0, which no broker listens on: {redact_url(url)!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:  # once dropped without a word
            raise ValueError(f"a broker URL has no path, query or fragment (MQTT over TCP, not WebSockets; a / ? "
                             f"or # in a user name or password is written %2F %3F %23): {redact_url(url)!r}")
        tls = parts.scheme == "mqtts"
        port = port or (8883 if tls else 1883)
        fields = {
            "host": parts.hostname,
            "port": port,
            "tls": tls,
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
        }
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**fields)

    @property
    def url(self) -> str:
        """The URL without credentials, safe to log; an IPv6 address in brackets, as URLs write it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


def mqtt_client(broker: BrokerConfig, client_id: str = ""):
    """A paho client (MQTT 3.1.1, callback API 2) with ``broker``'s login and TLS settings, not yet connected."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=broker.ca_file)
    return client


def redact_url(url: str) -> str:
    """``mqtt://user:secret@host`` -> ``mqtt://user:***@host``: for every message that repeats a URL the user gave.

    Done on the text, not on a parsed URL, because the URLs that need it most are the ones that do not parse.
    """
    return re.sub(r"(//[^/@:]*):.*@", r"\1:***@", url)  # to the last @: a password may hold an unescaped / or @


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The TLS settings paho is given, for checking a CA file early and for :func:`diagnose`."""
    return ssl.create_default_context(cafile=ca_file)


def diagnose(broker: BrokerConfig) -> str:
    """Why a connection to ``broker`` fails, in words: name, refused, timeout, TLS, certificate, or not MQTT.

    paho reports only that a try failed; this probe repeats the connection by hand to say why (it does not
    log in: a refused login comes back from paho as a CONNACK reason, see :func:`refusal`).
    """
    where = f"{broker.host}:{broker.port}"
    try:
        raw = socket.create_connection((broker.host, broker.port), timeout=PROBE_TIMEOUT)
    except socket.gaierror as exc:
        return f"cannot resolve {broker.host} ({exc.strerror})"
    except TimeoutError:
        return f"no answer from {where} within {PROBE_TIMEOUT:g} s (firewall or wrong address?)"
    except ConnectionRefusedError:
        return f"connection refused: nothing listens on {where}"
    except OSError as exc:
        return f"cannot connect to {where} ({exc.strerror or exc})"
    with raw:
        try:
            if broker.tls:
                try:
                    conn = tls_context(broker.ca_file).wrap_socket(raw, server_hostname=broker.host)
                except ssl.SSLCertVerificationError as exc:
                    return f"TLS: the broker's certificate is not trusted ({exc.verify_message})"
                except ssl.SSLError as exc:
                    return f"TLS handshake failed ({exc.reason or exc}); is {where} a TLS port?"
                except OSError as exc:  # a plain MQTT listener resets the connection at our TLS hello
                    return f"TLS handshake failed ({exc.strerror or exc}); is {where} a TLS port?"
            else:
                conn = raw
            conn.sendall(_CONNECT)
            reply = conn.recv(4)
        except TimeoutError:
            return f"{where} accepted the connection but did not answer MQTT within {PROBE_TIMEOUT:g} s"
        except OSError as exc:
            reply = b""
            detail = f" ({exc.strerror or exc})"
        else:
            detail = ""
    if reply[:1] == b"\x20":
        return f"{where} answers MQTT; the connection failed for another reason"
    if not broker.tls and reply[:1] in (b"", b"\x15"):
        return f"{where} closed the connection without an MQTT answer{detail}: is it a TLS port (use mqtts://)?"
    return f"{where} does not answer MQTT{detail}"


def refusal(reason: object) -> str:
    """A CONNACK failure, named: bad credentials are the common case and worth saying plainly."""
    text = str(reason)
    if any(word in text.lower() for word in ("authori", "password", "user name")):
        return f"the broker refused the login ({text}): check the username and password"
    return f"the broker refused the connection ({text})"


def disconnect_reason(reason: object) -> str:
    """Why a connection was lost. MQTT 3.1.1 has no reason codes for it, so paho says "Unspecified error" for a
    broker that stopped or a network that broke: say that instead."""
    text = str(reason)
    if text == "Unspecified error":
        return "the broker closed the connection or the network dropped it"
    return text


class ConnectFailures:
    """Says why connecting fails on the first try and every 10th after, not once per retry (paho retries every
    1-30 s, and the journal should not fill with the same line). Shared by the daemon and the dashboard."""

    EVERY = 10

    def __init__(self, broker: BrokerConfig, log: logging.Logger, suffix: str = "") -> None:
        self.broker, self.log, self.suffix = broker, log, suffix
        self._lock = threading.Lock()
        self.count = 0  # failed tries since the last success
        self.why: str | None = None  # the latest cause found
        self._silenced = False  # see silence()

    def failed(self, why: str | None = None) -> None:
        """Record a failed try; ``why`` when the broker said it (a CONNACK), else it is probed on the tries logged."""
        with self._lock:
            self.count += 1
            count = self.count
        if count % self.EVERY != 1:
            return
        self.why = why or diagnose(self.broker)
        with self._lock:  # not after silence(): checked and said under the lock that silence() takes
            if not self._silenced:
                self.log.warning("cannot reach broker %s: %s; retrying (attempt %d)%s", self.broker.url, self.why,
                                 count, self.suffix)

    def silence(self) -> None:
        """Say nothing more, and wait for a line being said now: a closing process's last line is its own (a first
        try, late on a busy machine, probed the broker while the process ended, and its line came after exit 2's
        error)."""
        with self._lock:
            self._silenced = True

    def succeeded(self) -> None:
        with self._lock:
            self.count, self.why = 0, None
