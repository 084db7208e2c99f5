"""The page's upload, kept out of memory. Dash sends a file dropped on "check a file" as a base64 ``data:`` URL
inside its JSON callback request, and would parse all of it into memory (the bytes, their text and the URL: about
three copies of the body per upload). For a callback request over 1 MiB this WSGI middleware reads the body a
slice at a time, decodes the URL into a temporary file as it passes, and hands Dash the same JSON with the URL
replaced by a short reference; the callback classifies the file (:func:`spooled_path`). Smaller requests pass
untouched. What is left must be small: 28 MB of other JSON (nested empty lists) took Dash's parse to 800 MB.
"""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
from collections.abc import Callable, Iterable

from flask import request

PATH = "/_dash-update-component"
SPOOL_FROM = 2**20
REFERENCE = "genrecast-spooled:upload"  # what the callback gets instead of the data URL
ENVIRON_KEY = "genrecast.spooled"  # the temporary file's path, for the callback
SLICE = 2**20  # read and decoded at a time (a multiple of 4: base64 decodes in groups of 4 characters)
MARK = b'"data:'


class SpoolUploads:
    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or "0"
        if environ.get("PATH_INFO") != PATH or not length.isdigit() or int(length) <= SPOOL_FROM:
            return self.app(environ, start_response)
        with tempfile.NamedTemporaryFile(prefix="genrecast-upload-") as spool:
            body, decoded = rewrite(environ["wsgi.input"], int(length), spool)
            if len(body) > SPOOL_FROM:  # no data URL took the bulk: JSON Dash would build whole in memory
                start_response("413 Content Too Large", [("Content-Type", "text/plain; charset=utf-8")])
                return [f"a page request holds at most {SPOOL_FROM:,} bytes besides its upload\n".encode()]
            environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
                       ENVIRON_KEY: spool.name if decoded else None}  # not base64: the callback says it is garbled
            return list(self.app(environ, start_response))  # answered while the file exists


def rewrite(stream, length: int, spool) -> tuple[bytes, bool]:
    """The JSON body with its first ``"data:...;base64,..."`` string replaced by :data:`REFERENCE`, and whether its
    decoded bytes are in ``spool`` (False when it is not base64). A body without one comes back whole (it is within
    the route's limit)."""
    left = length

    def read() -> bytes:
        nonlocal left
        chunk = stream.read(min(SLICE, left)) if left > 0 else b""
        left -= len(chunk)
        return chunk

    head = bytearray()
    while (at := head.find(MARK)) < 0 or head.find(b",", at) < 0:
        chunk = read()
        if not chunk:
            return bytes(head), False
        head += chunk
    comma = head.find(b",", at)
    decoded = head[at:comma].endswith(b";base64")
    prefix, pending = bytes(head[:at]), bytearray(head[comma + 1:])
    del head

    def decode(part: bytearray) -> bool:
        try:
            spool.write(base64.b64decode(bytes(part), validate=True))
        except binascii.Error:
            return False
        return True

    while (end := pending.find(b'"')) < 0:
        whole = len(pending) - len(pending) % 4
        decoded = decoded and decode(pending[:whole])  # once garbled, only the end of the URL is looked for
        del pending[:whole]
        chunk = read()
        if not chunk:
            return bytes(prefix + pending), False  # no end: not JSON, Dash refuses it
        pending += chunk
    decoded = decoded and decode(pending[:end])
    spool.flush()
    suffix = bytes(pending[end + 1:])
    while chunk := read():
        suffix += chunk
    return prefix + f'"{REFERENCE}"'.encode() + suffix, decoded


def decode_data_url(data_url: str, into) -> None:
    """A small upload that was not spooled: its ``data:...;base64,`` URL decoded into ``into`` a slice at a time."""
    start = data_url.find(",") + 1
    for at in range(start, len(data_url), 4 * SLICE):
        into.write(base64.b64decode(data_url[at:at + 4 * SLICE], validate=True))
    into.flush()


def spooled_path() -> str | None:
    """In a callback: the file the request's upload was decoded into, if it was spooled."""
    return request.environ.get(ENVIRON_KEY)
