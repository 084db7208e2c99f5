"""The HTTP checks made before Dash sees a request: a Host allow-list and a same-origin rule for writes.

A web page on ``attacker.example`` whose DNS name is rebound to 127.0.0.1 would otherwise read the dashboard with
the victim's browser. The browser still sends ``Host: attacker.example``, which is refused here. A page on another
origin may still send a "simple" POST (a form, or fetch with ``no-cors``) without reading the answer; that alone
could make the classifier work, so a request that changes or computes anything (every method but GET, HEAD and
OPTIONS) is refused when the browser says it comes from another origin (``Sec-Fetch-Site``, else ``Origin``).
Programs (curl, scripts) send neither header and are not affected. Body limits are the server's
(:mod:`dashboard.server`), applied before anything reads a body.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
BRACKETED = re.compile(r"\[([^\]]*)\](?::\d*)?")  # [v6-address] with an optional port, nothing else


def host_name(header: str) -> str:
    """``Host`` header -> the name alone: ``[::1]:8050`` -> ``::1``, ``Kitchen.local.:80`` -> ``kitchen.local``."""
    header = header.strip().lower()
    if header.startswith("["):
        bracketed = BRACKETED.fullmatch(header)
        return bracketed.group(1) if bracketed else ""  # "[::1]evil.example" names no host we serve
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return header.rstrip(".")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address; a host name may resolve to anything, so it is not."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # a dual-stack socket (--host ::) sees an IPv4 peer as ::ffff:127.0.0.1, which Python does not call loopback
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostAllowList:
    """The bound address, localhost and the configured names; any IP address too when bound to all interfaces
    (a literal address cannot be rebound, and it is how people reach a dashboard on another machine)."""

    def __init__(self, bound: str, names: Iterable[str] = ()) -> None:
        self.any_ip = bound in WILDCARDS
        self.names = {host_name(n) for n in (*LOCAL_NAMES, *names, *(() if self.any_ip else (bound,)))}

    def allows(self, header: str) -> bool:
        name = host_name(header)
        return name in self.names or (self.any_ip and _is_ip(name))


def same_origin(environ: dict) -> bool:
    """False when the browser says the request comes from a page of another origin."""
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site is not None:
        return site in ("same-origin", "none")  # "none": typed by the user, a bookmark
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return True  # not a browser, or one too old to say: a page of another origin could not read answers anyway
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == environ.get("HTTP_HOST", "").lower()


# On every answer: no other site may frame the page (clickjacking its upload or login), no browser guesses a type
# other than the one sent, and no address of the dashboard leaks to a site it links to. Not "no-referrer": under it
# a browser's same-origin form POST says ``Origin: null``, and over plain HTTP to a name or address that is not
# loopback (no ``Sec-Fetch-Site`` there) the login and logout from another machine were refused as another origin's.
SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                    ("Content-Security-Policy", "frame-ancestors 'none'"), ("Referrer-Policy", "same-origin"))


class Guard:
    """WSGI middleware applying :class:`HostAllowList` and :func:`same_origin` to every request, and
    :data:`SECURITY_HEADERS` to every answer."""

    def __init__(self, app: Callable, hosts: HostAllowList) -> None:
        self.app, self.hosts = app, hosts

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        def with_headers(status: str, headers: list, exc_info=None):
            have = {k.lower() for k, _ in headers}
            return start_response(status, [*headers, *((k, v) for k, v in SECURITY_HEADERS if k.lower() not in have)],
                                  exc_info)

        return self._guarded(environ, with_headers)

    def _guarded(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not self.hosts.allows(environ.get("HTTP_HOST", "")):
            return refuse(start_response, path, "421 Misdirected Request",
                          "This dashboard does not answer to that host name (see --allow-host).")
        if environ.get("REQUEST_METHOD") not in SAFE_METHODS and not same_origin(environ):
            return refuse(start_response, path, "403 Forbidden",
                          "A page of another origin may not send requests to this dashboard.")
        return self.app(environ, start_response)


def refuse(start_response: Callable, path: str, status: str, text: str) -> list[bytes]:
    """The answer, JSON under ``/api/`` as every API answer is (the server has read any body already)."""
    if path.startswith("/api/"):
        body, kind = json.dumps({"error": text}).encode(), "application/json"
    else:
        body, kind = (text + "\n").encode(), "text/plain; charset=utf-8"
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]
