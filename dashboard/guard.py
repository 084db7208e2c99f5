"""The HTTP checks made before Dash sees a request: a Host allow-list and a request-size limit.

The page has no login and trusts whoever can reach it, so it must not be reachable by name from elsewhere:
a web page on ``attacker.example`` whose DNS name is rebound to 127.0.0.1 would otherwise read it with the
victim's browser. The browser still sends ``Host: attacker.example``, which is refused here. The size limit
refuses a body before anything reads it, so a huge POST costs nothing; a body sent chunked, with no length to
check, is cut one byte past the limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


def host_name(header: str) -> str:
    """``Host`` header -> the name alone: ``[::1]:8050`` -> ``::1``, ``Kitchen.local.:80`` -> ``kitchen.local``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return header.rstrip(".")


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


class Guard:
    """WSGI middleware applying :class:`HostAllowList` and ``max_body`` bytes to every request."""

    def __init__(self, app: Callable, hosts: HostAllowList, max_body: int) -> None:
        self.app, self.hosts, self.max_body = app, hosts, max_body

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not self.hosts.allows(environ.get("HTTP_HOST", "")):
            return _refuse(start_response, "421 Misdirected Request",
                           "This dashboard does not answer to that host name (see --allow-host).")
        length = environ.get("CONTENT_LENGTH") or ""
        if length and (not length.isdigit() or int(length) > self.max_body):
            return _refuse(start_response, "413 Content Too Large",
                           f"Requests are limited to {self.max_body // 2**20} MiB.")
        if not length and "wsgi.input" in environ:  # sent chunked: whoever reads it gets at most one byte too many
            environ["wsgi.input"] = CappedInput(environ["wsgi.input"], self.max_body + 1)
        return self.app(environ, start_response)


class CappedInput:
    """A request body that ends after ``limit`` bytes, so a chunked upload cannot be read without bound (the
    reader sees more than it allows and refuses it, as the API does)."""

    def __init__(self, stream, limit: int) -> None:
        self._stream, self._left = stream, limit

    def read(self, size: int = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._stream.read(size) if size else b""
        self._left -= len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._stream.readline(size) if size else b""
        self._left -= len(data)
        return data


def _refuse(start_response: Callable, status: str, text: str) -> list[bytes]:
    body = (text + "\n").encode()
    # Connection: close, as the body we did not read must not be taken for the next request
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            ("Connection", "close")])
    return [body]
