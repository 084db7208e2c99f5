"""One token for the whole dashboard: the API takes it as a bearer token (dashboard/api.py); the page asks for it once
in a login form and then carries a session cookie.

The cookie is a random session id and the time of login, signed with the token (itsdangerous), so checking it needs
no server-side store, it survives a restart, and every session ends when the token changes. Logging out ends its
session on the server too (dashboard/sessions.py): a copy of the cookie is refused from then on. It is HttpOnly
(page scripts cannot read it), SameSite=Lax (another site's POST does not carry it) and Secure wherever the browser
can still send it back: over HTTPS, behind a TLS proxy on this machine (``X-Forwarded-Proto: https`` from loopback)
and on loopback, which browsers treat as secure. Over plain HTTP from another machine it cannot be Secure, and the
token crossed the network readable: that is logged, and docs/deployment.md shows the TLS proxy to put in front.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from html import escape

from flask import Flask, Response, redirect, request
from itsdangerous import BadSignature, TimestampSigner
from werkzeug.http import parse_cookie

from .guard import host_name, is_loopback
from .sessions import EndedSessions

log = logging.getLogger(__name__)

COOKIE = "genrecast_session"
SESSION_SECONDS = 30 * 24 * 3600
GUESSES = 10  # wrong tokens one address may send within GUESS_SECONDS before every try of it is refused (429)
GUESS_SECONDS = 60.0
GUESSERS = 10_000  # addresses remembered at most: a scan from many cannot grow the memory
LOGIN = "/login"
LOGOUT = "/logout"
_unnamed = threading.Event()  # set once a proxy without X-Forwarded-For was warned about


def visitor(peer: str, header: Callable[[str], str | None]) -> str:
    """Whose request it is, for counting wrong tokens: the peer's address, or, from a reverse proxy on this machine
    (a loopback peer), the last address of its ``X-Forwarded-For``: the one the proxy itself added. The entries
    before it are the client's own to write, and a peer beyond loopback is not trusted with the header at all. (A
    process on this machine may name anyone, and so hold a visitor back for a minute: it is trusted as the proxy is.)"""
    forwarded = header("X-Forwarded-For") or ""
    if not is_loopback(peer or ""):
        return peer
    if not forwarded:
        if header("X-Forwarded-Proto") and not _unnamed.is_set():
            _unnamed.set()
            log.warning("a reverse proxy on this machine forwards requests without X-Forwarded-For: every visitor "
                        "looks like loopback, so wrong tokens cannot be held back; add it to the proxy "
                        "(docs/deployment.md)")
        return peer
    last = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(host_name(last)))  # a port or brackets, as some proxies write, set aside
    except ValueError:
        return last or "unnamed"  # counted as written ("unknown", say): never the loopback that is not held back


def guesser(address: str) -> str:
    """Whose guesses an address's are: an IPv6 host has a /64 of its own to rotate through (privacy addresses,
    or at will), so its guesses count by /64; an IPv4 one (a dual-stack socket's ``::ffff:`` form too) by address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


class Credentials:
    """The token's two forms: the API's bearer header and the page's session cookie. Also checked by the server
    from an upload's headers, so one without them is refused before its body is read (dashboard/server.py)."""

    def __init__(self, token: str, clock=time.monotonic, ended: EndedSessions | None = None) -> None:
        self.token = token
        self.ended = ended if ended is not None else EndedSessions()
        self._signer = TimestampSigner(token, salt="genrecast-session")
        self._clock = clock
        self._wrong: dict[str, deque[float]] = {}  # address -> when its recent wrong tokens came
        self._lock = threading.Lock()

    def wait(self, address: str) -> float:
        """Seconds before ``address`` may try a token again: 0 unless it sent :data:`GUESSES` wrong ones within
        :data:`GUESS_SECONDS`. Without it, anyone reaching the dashboard could try 150 tokens a second. Loopback is
        never held back: it is this machine, or a reverse proxy that does not say whom it forwards (:func:`visitor`)."""
        if is_loopback(address or ""):
            return 0.0
        with self._lock:
            times = self._wrong.get(guesser(address))
            if not times:
                return 0.0
            while times and self._clock() - times[0] > GUESS_SECONDS:
                times.popleft()
            return GUESS_SECONDS - (self._clock() - times[0]) if len(times) >= GUESSES else 0.0

    def held_back(self, address: str) -> tuple[str, str] | None:
        """The refusal's text and ``Retry-After`` while ``address`` is held back (else None), alike at the API, the
        login form and an upload's headers."""
        if not (wait := self.wait(address)):
            return None
        return f"too many wrong tokens from this address: try again in {math.ceil(wait)} s", str(math.ceil(wait))

    def wrong(self, address: str) -> None:
        """Count a wrong token from ``address``."""
        if is_loopback(address or ""):
            return
        key = guesser(address)
        with self._lock:
            if key not in self._wrong and len(self._wrong) >= GUESSERS:
                self._wrong.pop(next(iter(self._wrong)))  # the longest known
            times = self._wrong.setdefault(key, deque(maxlen=GUESSES))
            times.append(self._clock())

    def bearer(self, authorization: str) -> bool:
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    def session(self, cookie: str | None) -> bool:
        return self._opened(cookie) is not None

    def _opened(self, cookie: str | None) -> tuple[str, float] | None:
        """A valid session cookie's id and the wall-clock time it expires; None for any other cookie."""
        if not cookie:
            return None
        try:
            value, signed = self._signer.unsign(cookie, max_age=SESSION_SECONDS, return_timestamp=True)
        except BadSignature:  # SignatureExpired is one too
            return None
        session_id = value.decode("ascii", "replace")
        return None if session_id in self.ended else (session_id, signed.timestamp() + SESSION_SECONDS)

    def new_session(self) -> str:
        return self._signer.sign(secrets.token_urlsafe(16)).decode()

    def end_session(self, cookie: str | None) -> None:
        """Logging out: this session's cookie is refused from now on, wherever a copy of it is."""
        if opened := self._opened(cookie):
            self.ended.end(*opened)

    def allow(self, path: str, authorization: str, cookie_header: str) -> bool:
        """From raw headers: the bearer token under /api/, the session cookie elsewhere."""
        if path.startswith("/api/"):
            return self.bearer(authorization)
        return self.session(parse_cookie(cookie_header).get(COOKIE))


def install_login(server: Flask, credentials: Credentials) -> None:
    """Every route but the API's and the login form's needs a valid session cookie."""
    token = credentials.token

    @server.before_request
    def require_session():
        path = request.path
        if path in (LOGIN, "/api") or path.startswith("/api/") or credentials.session(request.cookies.get(COOKIE)):
            return None  # the API checks its bearer token itself
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            return redirect(LOGIN, 303)
        return Response(f"log in first: {LOGIN}\n", 401, content_type="text/plain; charset=utf-8")

    @server.route(LOGIN, methods=["GET", "POST"])
    def login():
        if request.method == "GET":
            return login_page()
        given = request.form.get("token", "")
        who = visitor(request.remote_addr, request.headers.get)
        if held := credentials.held_back(who):
            return login_page(held[0]), 429, {"Retry-After": held[1]}
        if not hmac.compare_digest(given.encode(), token.encode()):
            credentials.wrong(who)
            log.warning("refused a login with a wrong token, from %s", who,
                        extra={"repeat_key": "refused login"})
            return login_page("wrong token"), 401
        secure = sent_securely()
        if not secure:
            log.warning("a login over plain HTTP from %s: the token and the session cookie crossed the network "
                        "readable; put a TLS proxy in front (docs/deployment.md)", who,
                        extra={"repeat_key": "plain login"})
        response = redirect("/", 303)
        response.set_cookie(COOKIE, credentials.new_session(), max_age=SESSION_SECONDS, path="/",
                            httponly=True, samesite="Lax", secure=secure)
        return response

    @server.route(LOGOUT, methods=["POST"])
    def logout():
        credentials.end_session(request.cookies.get(COOKIE))
        response = redirect(LOGIN, 303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Lax")
        return response


def sent_securely() -> bool:
    """Whether the browser reached us over TLS, or over loopback (a secure context for browsers)."""
    if request.scheme == "https":
        return True
    peer_is_local = is_loopback(request.remote_addr or "")
    if peer_is_local and request.headers.get("X-Forwarded-Proto", "").lower() == "https":
        return True
    return peer_is_local and is_loopback(host_name(request.host))


def login_page(problem: str | None = None) -> Response:
    note = f'<p class="error">{escape(problem)}</p>' if problem else ""
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>genrecast: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}}
input{{width:100%;padding:.5rem;margin:.5rem 0;box-sizing:border-box}}.error{{color:#b00020}}</style></head>
<body><h1>genrecast</h1>{note}
<form method="post" action="{LOGIN}"><label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<input type="submit" value="Log in"></form>
<p>The token is the dashboard's <code>GENRECAST_API_TOKEN</code> (or <code>[api] token</code>).</p></body></html>
"""
    return Response(html, content_type="text/html; charset=utf-8")
