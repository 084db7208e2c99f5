"""The dashboard's HTTP server: waitress (a maintained production WSGI server: a fixed thread pool, bodies over
512 KiB spooled to a temporary file, chunked bodies decoded by itself), with the limits decided from each request's
headers, before a byte of its body is read.

- Each route has its own body limit (:class:`Limits`): a larger ``Content-Length`` gets 413 at once, a chunked
  body 413 as soon as it (or a chunk it announces) would pass the limit.
- With a token set, an upload without the token's credentials (the API's bearer, the page's session cookie) gets
  401 from its headers.
- A large body (an upload) needs one of the :class:`Gate`'s slots, as many as the classifying pool has room for
  jobs, held from its headers until its answer is sent. Without a free slot the answer is 503 at once and nothing
  of the body is read, so at most ``slots`` uploads exist at any time, whatever arrives.
- A request must arrive in time: its headers within ``header_seconds``, its body at ``min_body_rate`` on average
  after that. A slow sender gets 408 and the connection is closed, so trickling clients cannot hold the threads;
  a connection that sends nothing at all is closed after ``first_byte_seconds``, so silent ones cannot hold the
  200 connection slots.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.utilities import Error, RequestEntityTooLarge

from .auth import Credentials, guesser, visitor
from .guard import SECURITY_HEADERS
from .jobs import DEFAULT_BACKLOG, DEFAULT_WORKERS

log = logging.getLogger(__name__)

API_CLASSIFY = "/api/v1/classify"
PAGE_UPDATE = "/_dash-update-component"  # every page callback, the file check's upload among them
MiB = 2**20
THREADS = 8  # requests served at once; the page's polls are quick, uploads are bounded by the gate


@dataclass(frozen=True)
class Limits:
    """Body limits in bytes, per route, and how fast a request must arrive."""

    api_body: int  # POST /api/v1/classify: the API's own limit ([api] max_mb)
    page_body: int  # the page's callbacks: its upload, base64 inside JSON
    other_body: int = MiB  # every other route: no route takes a large body
    upload_from: int = MiB  # a body larger than this (or chunked) is an upload and needs a gate slot
    header_seconds: float = 10.0  # from a request's first byte to the end of its headers
    min_body_rate: float = 64 * 1024  # bytes a second, on average after header_seconds
    idle_seconds: int = 30  # a kept-alive connection with no request this long is closed
    # A new connection that has sent nothing this long is closed: idle ones held every one of waitress's 200
    # connection slots for their 30 s, and the page went unanswered for anyone, token or not.
    first_byte_seconds: float = 5.0

    def body_limit(self, path: str) -> int:
        if path == API_CLASSIFY:
            return self.api_body
        if path == PAGE_UPDATE:
            return self.page_body
        return self.other_body


class Gate:
    """Counts the uploads being received or handled; refuses one more than ``slots``, and one visitor's upload past
    ``slots - 1``: five slow uploads from one address (64 KiB/s keeps one going for minutes) held every slot, and
    the page's file check and the API answered "busy" to everyone else."""

    def __init__(self, slots: int = DEFAULT_WORKERS + DEFAULT_BACKLOG) -> None:
        self.slots = slots
        self._held = 0
        self._by: dict[str, int] = {}  # visitor -> slots held
        self._lock = threading.Lock()

    @property
    def per_visitor(self) -> int:
        return max(1, self.slots - 1)

    def enter(self, visitor: str) -> bool:
        with self._lock:
            if self._held >= self.slots or self._by.get(visitor, 0) >= self.per_visitor:
                return False
            self._held += 1
            self._by[visitor] = self._by.get(visitor, 0) + 1
            return True

    def leave(self, visitor: str) -> None:
        with self._lock:
            self._held -= 1
            if self._by.get(visitor, 0) > 1:
                self._by[visitor] -= 1
            else:
                self._by.pop(visitor, None)

    @property
    def held(self) -> int:
        with self._lock:
            return self._held


class Refusal(Error):
    """An answer given from the headers alone; JSON under ``/api/`` (as every API answer), plain text elsewhere."""

    def __init__(self, code: int, reason: str, message: str, api: bool, headers: tuple = ()) -> None:
        super().__init__(message)
        self.code, self.reason, self.api, self.extra = code, reason, api, headers

    def to_response(self, ident=None):
        if self.api:
            body, kind = json.dumps({"error": self.body}).encode(), "application/json"
        else:
            body, kind = (self.body + "\n").encode(), "text/plain; charset=utf-8"
        return f"{self.code} {self.reason}", [("Content-Type", kind), *self.extra, *SECURITY_HEADERS], body


class GuardedParser(HTTPRequestParser):
    """waitress's request parser, with the per-route limit, the gate and the deadlines applied."""

    limits: Limits
    gate: Gate
    credentials: Credentials | None  # the token's checks (None: no token)
    address = ""  # the peer's, set per connection (GuardedChannel)
    started: float | None = None
    holds_slot = False
    visitor = ""  # whose upload holds the slot (dashboard.auth.visitor)
    limit = 0
    path = ""  # until the headers are parsed

    def received(self, data: bytes) -> int:
        if self.started is None:
            self.started = time.monotonic()
        had_headers = self.headers_finished
        consumed = super().received(data)
        if self.error is not None:  # waitress's own refusals too: no "100 Continue" for them (see refuse)
            if not isinstance(self.error, Refusal):
                self._answer_as_ours()
            self.expect_continue = False
            return consumed
        if self.headers_finished and not had_headers:
            self._admit()
        elif had_headers and not self.completed:
            self._check_chunks()
        return consumed

    def _admit(self) -> None:
        self.limit = self.limits.body_limit(self.path)
        if self.content_length > self.limit:
            self.refuse(413, "Content Too Large", self._too_large())
        elif self.chunked or self.content_length > self.limits.upload_from:
            api = self.path.startswith("/api/")
            # the same hold-back as the API's own check: an upload's headers were an unlimited, silent oracle
            who = visitor(self.address, lambda name: self.headers.get(name.upper().replace("-", "_")))
            if self.credentials and (held := self.credentials.held_back(who)):
                self.refuse(429, "Too Many Requests", held[0], (("Retry-After", held[1]),))
            elif self.credentials and not self.credentials.allow(self.path, self.headers.get("AUTHORIZATION", ""),
                                                                 self.headers.get("COOKIE", "")):
                if api:
                    self.credentials.wrong(who)
                self.refuse(401, "Unauthorized", "missing or wrong bearer token (send Authorization: Bearer <token>)"
                            if api else "log in first: /login",
                            (("WWW-Authenticate", 'Bearer realm="genrecast"'),) if api else ())
            elif self.gate.enter(key := guesser(who)):  # an IPv6 host by its /64, which it may rotate through
                self.holds_slot, self.visitor = True, key
            else:
                self.refuse(503, "Service Unavailable", f"busy: {self.gate.slots} uploads are being received or "
                            f"classified, or {self.gate.per_visitor} of this address's; try again shortly",
                            (("Retry-After", "1"),))
        if self.error is None and self.chunked:
            self._check_chunks()

    def _answer_as_ours(self) -> None:
        """waitress refused first (its body-size backstop, a malformed request): the same answer in our form, so
        the API's is JSON like every other, and a body over the backstop names the route's limit."""
        if isinstance(self.error, RequestEntityTooLarge) and self.headers_finished:
            self.limit = self.limits.body_limit(self.path)
            self.refuse(413, "Content Too Large", self._too_large())
        else:
            self.refuse(self.error.code, self.error.reason, self.error.body)

    def _check_chunks(self) -> None:
        """A chunked body: refused once what arrived, or what its current chunk announces, passes the limit
        (a chunk of 0xFFFFFFFFFFFF bytes is refused from its size line)."""
        announced = getattr(self.body_rcv, "chunk_remainder", 0)
        if self.body_bytes_received + announced > self.limit + 64:  # 64: room for the chunks' size lines
            self.refuse(413, "Content Too Large", self._too_large())

    def _path_so_far(self) -> str:
        """The request line's path before the headers have ended (waitress keeps what came so far): a header
        timeout under ``/api/`` was answered in plain text, where every API answer is JSON."""
        line, newline, _ = self.header_plus.lstrip().partition(b"\n")
        parts = line.split()
        return urlsplit(parts[1].decode("latin-1")).path if newline and len(parts) >= 2 else ""

    def _too_large(self) -> str:
        where = "the API's" if self.path == API_CLASSIFY else "this route's"
        return f"the body is over {where} limit of {self.limit:,} bytes"

    def refuse(self, code: int, reason: str, message: str, headers: tuple = ()) -> None:
        self.error = Refusal(code, reason, message, (self.path or self._path_so_far()).startswith("/api/"), headers)
        self.completed = True
        self.expect_continue = False  # else waitress answers "100 Continue", reopens the request and reads the body
        self.release()

    def too_slow(self, now: float) -> bool:
        if self.started is None or self.completed:
            return False
        elapsed = now - self.started
        if not self.headers_finished:
            return elapsed > self.limits.header_seconds
        return self.body_bytes_received < (elapsed - self.limits.header_seconds) * self.limits.min_body_rate

    def release(self) -> None:
        if self.holds_slot:
            self.holds_slot = False
            self.gate.leave(self.visitor)

    def close(self) -> None:
        self.release()
        super().close()


class GuardedChannel(HTTPChannel):
    """A connection: frees the slot of a request it never finished, and answers a slow one with 408."""

    def __init__(self, server, sock, addr, adj, map=None) -> None:
        super().__init__(server, sock, addr, adj, map)
        peer = addr[0] if isinstance(addr, tuple) else ""
        self.parser_class = type("Parser", (self.parser_class,), {"address": peer})  # its requests' peer

    def handle_close(self) -> None:
        with self.requests_lock:
            partial, self.request = self.request, None
        if partial is not None:
            partial.close()
        super().handle_close()

    def time_out(self, now: float) -> None:
        with self.requests_lock:
            request = self.request
            if request is None or self.requests or self.will_close or not request.too_slow(now):
                return
            request.refuse(408, "Request Timeout", "the request arrived too slowly; the connection is closed")
            self.requests.append(request)
            self.request = None
            self.server.add_task(self)


class GuardedServer(TcpWSGIServer):
    channel_class = GuardedChannel

    limits: Limits

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        mono = time.monotonic()
        for channel in list(self.active_channels.values()):
            channel.time_out(mono)
            # waitress's wall-clock stamps: equal while nothing was ever read from or sent on the connection
            if channel.last_activity == channel.creation_time and \
                    now - channel.creation_time > self.limits.first_byte_seconds:
                channel.will_close = True


class DashboardServer:
    """One listening socket served by waitress until :meth:`shutdown`; ``port`` is the one bound (0 picks one)."""

    def __init__(self, app, sock: socket.socket, limits: Limits, gate: Gate,
                 credentials: Credentials | None = None, threads: int = THREADS) -> None:
        self.limits, self.gate = limits, gate
        parser = type("Parser", (GuardedParser,), {"limits": limits, "gate": gate, "credentials": credentials})
        channel = type("Channel", (GuardedChannel,), {"parser_class": parser})
        adj = Adjustments(
            sockets=[sock], threads=threads, channel_timeout=limits.idle_seconds, cleanup_interval=1,
            # our limits come first; this one only backs them up
            max_request_body_size=max(limits.api_body, limits.page_body, limits.other_body) + MiB,
            connection_limit=200, ident="genrecast", expose_tracebacks=False,
            # waitress would strip X-Forwarded-* from every request, a proxy on this machine's too; they are
            # read only from a loopback peer (dashboard/auth.py), and nothing else reads them
            clear_untrusted_proxy_headers=False,
        )
        self._dispatcher = ThreadedTaskDispatcher()
        self._dispatcher.set_thread_count(adj.threads)
        self._map: dict = {}
        self._server = GuardedServer(app, map=self._map, _sock=sock, dispatcher=self._dispatcher, adj=adj,
                                     bind_socket=False, sockinfo=(sock.family, sock.type, sock.proto,
                                                                  sock.getsockname()))
        self._server.channel_class = channel
        self._server.limits = limits
        self.port = sock.getsockname()[1]
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._serving = False

    def serve_forever(self) -> None:
        from waitress import wasyncore

        self._serving = True
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, count=1)
        finally:
            self._dispatcher.shutdown(timeout=5)
            wasyncore.close_all(self._map)
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serving (from another thread) and wait until the loop has closed every connection; once is enough."""
        if self._stopped.is_set():
            return
        self._stop.set()
        if self._serving:
            self._server.pull_trigger()
            self._stopped.wait(30)
        else:
            self._server.close()
