"""The dashboard's production server over real sockets: malformed chunked bodies, slow senders, the upload gate and
the per-route limits, each answered from the headers before a body is read."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from conftest import start_dashboard
from genrecast.daemon.broker import BrokerConfig
from genrecast.daemon.config import ApiSettings
from genrecast.dashboard.app import SERVER_SETTINGS, create_app, make_server
from genrecast.dashboard.feed import Feed
from genrecast.dashboard.history import History
from genrecast.dashboard.jobs import BoundedPool
from genrecast.dashboard.offline import OfflineClassifier

WAIT_S = 30  # hang guard for every answer, never a speed check
# The request that killed werkzeug's development server: a chunk announcing 281 TB, five bytes of it, then close.
SEGFAULT = (b"POST /_dash-update-component HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFF\r\nhello")


def flac(seconds: float = 4.0, rate: int = 22050, fmt: str = "FLAC") -> bytes:
    buf = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 440 * t), rate, format=fmt)
    return buf.getvalue()


def answer(sock: socket.socket) -> tuple[int, dict, bytes]:
    """Read one response until the server closes or its Content-Length is in."""
    sock.settimeout(WAIT_S)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers.setdefault(key.strip().lower(), []).append(value.strip())
    length = int(headers.get("content-length", ["0"])[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)


def request(port: int, raw: bytes) -> tuple[int, dict, bytes]:
    with connect(port) as sock:
        sock.sendall(raw)
        return answer(sock)


def post_head(path: str, length: int | None, kind: str = "audio/flac", expect: bool = False) -> bytes:
    size = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    wait = "Expect: 100-continue\r\n" if expect else ""  # curl sends it for bodies over 1 MB
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n{size}\r\n{wait}\r\n".encode()


def get(port: int, path: str = "/_dash-layout") -> int:
    return request(port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())[0]


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def serve(model):
    """Start a server in this process with its limits replaced as given; stopped after the test."""
    running = []

    def start(pool: BoundedPool | None = None, api: ApiSettings | None = None, allow_hosts: tuple[str, ...] = (),
              **limits):
        history = History()
        app = create_app(history, Feed(BrokerConfig(), "genrecast", history), OfflineClassifier(str(model), pool=pool),
                         api or ApiSettings(max_mb=1))
        base, gate, allow = app.server.config[SERVER_SETTINGS]
        app.server.config[SERVER_SETTINGS] = (replace(base, **limits), gate, allow)
        server = make_server(app, "127.0.0.1", 0, allow_hosts)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        server.gate = gate
        return server

    yield start
    for server, thread in running:
        server.shutdown()
        thread.join(WAIT_S)


def test_the_segfault_request_leaves_the_real_command_serving(broker):
    """Sent three times to `genrecast dashboard`, then closed each time: the process lives and still answers."""
    proc, port = start_dashboard(broker.url)
    try:
        for _ in range(3):
            with connect(port) as sock:
                sock.sendall(SEGFAULT)
            assert get(port) == 200
        with connect(port) as sock:  # kept open: the chunk's size line alone is refused
            sock.sendall(SEGFAULT)
            status, _, body = answer(sock)
        assert status == 413 and b"limit" in body
        assert get(port) == 200 and proc.poll() is None
    finally:
        proc.terminate()
        output = proc.communicate(timeout=WAIT_S)[0]
    assert "Traceback" not in output


def test_a_chunked_upload_to_the_api_is_decoded(serve):
    server = serve()
    data = flac()
    body = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 5000]), data[i:i + 5000]) for i in range(0, len(data), 5000))
    status, _, raw = request(server.port, post_head("/api/v1/classify", None) + body + b"0\r\n\r\n")
    assert status == 200 and json.loads(raw)["windows"] == 2


def test_a_chunked_body_over_the_limit_is_refused_as_it_passes_it(serve):
    server = serve()
    with connect(server.port) as sock:
        sock.sendall(post_head("/api/v1/classify", None))
        for _ in range(40):  # 40 chunks of 50 kB: 2 MB against the 1 MB limit
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (50_000, b"\0" * 50_000))
            except OSError:  # refused and closed while we were still sending
                break
        status, headers, body = answer(sock)
    assert status == 413 and headers["content-type"] == ["application/json"]
    assert "limit" in json.loads(body)["error"]


@pytest.mark.parametrize("path, length", [("/api/v1/classify", 1_000_000 + 2**16 + 1),
                                          ("/_dash-update-component", 200 * 2**20), ("/", 2 * 2**20)])
def test_each_route_has_its_limit_checked_from_the_header(serve, path, length):
    server = serve()
    for expect in (False, True):  # with Expect: 100-continue, 413 instead of "100 Continue"
        with connect(server.port) as sock:
            sock.sendall(post_head(path, length, "application/json", expect))  # no body follows: the header decides
            assert answer(sock)[0] == 413


def test_a_body_over_waitress_own_ceiling_gets_the_apis_json_answer(serve):
    """Past the backstop under our limits (the largest + 1 MiB) waitress refuses first; the answer is still ours."""
    server = serve()
    with connect(server.port) as sock:
        sock.sendall(post_head("/api/v1/classify", 10**12))
        status, headers, body = answer(sock)
    assert status == 413 and headers["content-type"] == ["application/json"]
    assert json.loads(body)["error"] == "the body is over the API's limit of 1,065,536 bytes"


def test_one_address_cannot_hold_every_upload_slot(serve):
    """Slow uploads from one address (64 KiB/s keeps one going for minutes) held every slot, and everyone else was
    answered "busy". One address now holds all but one; another takes the last. Real HTTP, the second address
    named by X-Forwarded-For as a proxy on this machine names its visitors."""
    server = serve(pool=BoundedPool(workers=1, backlog=2), upload_from=100_000)
    assert server.gate.slots == 3
    holders = [connect(server.port) for _ in range(2)]
    try:
        for sock in holders:
            sock.sendall(post_head("/api/v1/classify", 900_000) + b"\0" * 1000)  # uploads under way
        wait_until(lambda: server.gate.held == 2, "two uploads from one address to take two slots")
        with connect(server.port) as sock:
            sock.sendall(post_head("/api/v1/classify", 900_000, expect=True))
            status, _, body = answer(sock)
        assert status == 503 and "2 of this address's" in json.loads(body)["error"]
        other = connect(server.port)
        holders.append(other)
        other.sendall(post_head("/api/v1/classify", 900_000, expect=True).replace(
            b"\r\n\r\n", b"\r\nX-Forwarded-For: 192.0.2.9\r\n\r\n", 1))
        assert answer(other)[0] == 100  # Continue: another visitor takes the last slot
        assert server.gate.held == 3
    finally:
        for sock in holders:
            sock.close()
    wait_until(lambda: server.gate.held == 0, "the abandoned uploads to free their slots")


def test_a_negative_content_length_is_a_bad_request(serve):
    server = serve()
    status, headers, body = request(server.port, post_head("/api/v1/classify", -1))
    assert status == 400 and headers["content-type"] == ["application/json"] and json.loads(body)["error"]


def test_a_full_gate_answers_503_before_reading_a_byte(serve):
    server = serve(pool=BoundedPool(workers=1, backlog=0), upload_from=100_000)
    holder = connect(server.port)
    try:
        holder.sendall(post_head("/api/v1/classify", 900_000) + b"\0" * 1000)  # an upload under way
        wait_until(lambda: server.gate.held == 1, "the first upload to take the only slot")
        for expect in (False, True):
            with connect(server.port) as sock:  # headers only: the answer must not wait for more
                sock.sendall(post_head("/api/v1/classify", 900_000, expect=expect))
                status, headers, body = answer(sock)
            assert status == 503 and headers["retry-after"] == ["1"] and json.loads(body)["error"].startswith("busy")
        assert get(server.port) == 200  # the page is not an upload: never gated
    finally:
        holder.close()
    wait_until(lambda: server.gate.held == 0, "the abandoned upload to free its slot")
    data = flac()
    status, _, raw = request(server.port, post_head("/api/v1/classify", len(data)) + data)
    assert status == 200


def test_slow_senders_get_408_and_do_not_hold_the_server(serve):
    """Twenty sockets trickle their headers or body; each is answered 408 and closed, and the page is served
    meanwhile."""
    server = serve(header_seconds=0.5, min_body_rate=2000)
    slow = [connect(server.port) for _ in range(20)]
    results: list[int] = []

    def trickle(sock: socket.socket, head: bytes) -> None:
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
            while True:
                sock.sendall(b"\0")
                time.sleep(0.1)
        except OSError:
            pass  # closed by the server, as it should

    heads = [post_head("/api/v1/classify", 500_000) if i % 2 else b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             for i in range(20)]
    senders = [threading.Thread(target=trickle, args=(s, h), daemon=True) for s, h in zip(slow, heads, strict=True)]
    for sender in senders:
        sender.start()
    assert get(server.port) == 200
    for sock in slow:
        results.append(answer(sock)[0])
        sock.close()
    for sender in senders:
        sender.join(WAIT_S)
    assert results == [408] * 20


def test_an_api_request_whose_headers_never_end_gets_its_408_in_json(serve):
    """The path was read from the headers, which had not ended: the API's 408 came as plain text."""
    server = serve(header_seconds=0.5)
    with connect(server.port) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
        code, headers, body = answer(sock)
    assert code == 408 and headers["content-type"] == ["application/json"], (headers, body)
    assert json.loads(body) == {"error": "the request arrived too slowly; the connection is closed"}
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        code, headers, _ = answer(sock)
    assert code == 408 and headers["content-type"] == ["text/plain; charset=utf-8"]


def test_silent_connections_are_closed_and_cannot_hold_every_slot(serve):
    """Before: 200 connections that never sent a byte held all of waitress's connection slots for their 30-s idle
    timeout, and the page went unanswered, token or not. Now each is closed once it has been silent for
    first_byte_seconds (the idle timeout is set far longer here, so only that can close them)."""
    server = serve(first_byte_seconds=0.5, idle_seconds=3600)
    silent = [connect(server.port) for _ in range(205)]  # more than the 200 slots: the rest wait in the backlog
    for sock in silent:
        assert sock.recv(1) == b""  # closed by the server, without a word
        sock.close()
    assert get(server.port) == 200


def test_a_large_page_request_without_an_upload_is_refused_not_parsed(serve):
    """Before: 28 MB of nested empty lists, within the page route's limit, went whole to Dash's JSON parser (the
    server's memory went from 71 to 794 MB, and stayed). Only an upload's data URL may make a page request large."""
    server = serve()
    body = json.dumps({"output": "file-result.children", "inputs": [{"id": "upload", "property": "contents",
                                                                     "value": [[]] * 700_000}]}).encode()
    assert len(body) > 2 * 2**20
    status, _, text = request(server.port, post_head("/_dash-update-component", len(body), "application/json")
                              + body)
    assert status == 413 and b"besides its upload" in text


@pytest.mark.parametrize("raw", [b"GET /_dash-layout HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                                 b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                                 b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"])
def test_every_answer_forbids_framing_and_sniffing(serve, raw):
    """Before, no answer said so: another site could frame the page (and its upload and login) in a hidden frame."""
    status, headers, _ = request(serve().port, raw)
    assert status in (200, 421)
    assert headers["x-frame-options"] == ["DENY"] and headers["x-content-type-options"] == ["nosniff"]
    assert headers["content-security-policy"] == ["frame-ancestors 'none'"]
    assert headers["referrer-policy"] == ["same-origin"]  # no-referrer made a same-origin form say Origin: null


def page_upload(data_url: str) -> bytes:
    return json.dumps({"output": "file-result.children", "outputs": {"id": "file-result", "property": "children"},
                       "inputs": [{"id": "upload", "property": "contents", "value": data_url}],
                       "changedPropIds": ["upload.contents"],
                       "state": [{"id": "upload", "property": "filename", "value": "big.flac"}]}).encode()


@pytest.mark.parametrize("seconds", [4.0, 60.0])  # under and over the 1 MiB from which the upload is spooled
def test_the_pages_upload_is_classified_small_or_spooled(serve, seconds):
    import base64

    server = serve()
    data = flac(seconds, fmt="WAV")
    body = page_upload("data:audio/wav;base64," + base64.b64encode(data).decode())
    assert (len(body) > 2**20) == (seconds > 10)
    status, _, raw = request(server.port, post_head("/_dash-update-component", len(body), "application/json") + body)
    assert status == 200 and b"big.flac" in raw and f"{seconds:.1f} s".encode() in raw, raw[:500]


def test_a_garbled_spooled_upload_is_a_message(serve):
    server = serve()
    body = page_upload("data:audio/flac;base64," + "@" * 2_000_000)
    status, _, raw = request(server.port, post_head("/_dash-update-component", len(body), "application/json") + body)
    assert status == 200 and b"big.flac: the upload arrived garbled" in raw


def test_unknown_script_paths_are_404_without_a_traceback(serve, caplog):
    """Each used to log a 2.8 kB traceback, a new kind of line per path: 100 requests gave 2,400 log lines."""
    server = serve()
    with caplog.at_level("INFO"):
        statuses = {get(server.port, f"/_dash-component-suites/dash/x{n}.js") for n in range(20)}
        statuses.add(get(server.port, "/_dash-component-suites/nosuchpackage/x.js"))
    assert statuses == {404}
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")], caplog.text[:500]


def test_a_refusal_sends_its_headers_once(serve):
    """The host guard's 421 went out with Connection: close twice under the development server."""
    server = serve()
    status, headers, _ = request(server.port, b"GET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n")
    assert status == 421 and all(len(values) == 1 for values in headers.values()), headers


def test_with_a_token_an_upload_without_it_is_refused_from_its_headers(serve):
    """No body is read, and no upload slot taken, for a client that does not hold the token."""
    token = "upload-token-0123456789"
    server = serve(api=ApiSettings(token=token, max_mb=5), upload_from=100_000)
    for path, kind in (("/api/v1/classify", "application/json"), ("/_dash-update-component", "text/plain")):
        with connect(server.port) as sock:
            sock.sendall(post_head(path, 2_000_000, "application/json", expect=True))  # headers only
            status, headers, body = answer(sock)
        assert status == 401 and headers["content-type"][0].startswith(kind) and server.gate.held == 0
    data = flac(40.0, fmt="WAV")
    assert len(data) > 100_000
    head = post_head("/api/v1/classify", len(data), "audio/wav").replace(
        b"\r\n\r\n", f"\r\nAuthorization: Bearer {token}\r\n\r\n".encode(), 1)
    status, _, raw = request(server.port, head + data)
    assert status == 200 and json.loads(raw)["seconds"] == pytest.approx(40.0)


def test_an_uploads_headers_count_wrong_tokens_and_are_held_back_too():
    """Before: an upload's token was checked from its headers, never counted and never held back, and the right
    token got `100 Continue`: an unlimited oracle beside the API's limited one. Waitress's parser itself, as the
    server runs it for a peer that is not loopback (which a loopback-only test cannot connect from)."""
    from genrecast.dashboard.auth import GUESSES, Credentials
    from genrecast.dashboard.server import Gate, GuardedParser, Limits
    from waitress.adjustments import Adjustments

    credentials = Credentials("t" * 24)
    parser = type("P", (GuardedParser,), {"limits": Limits(api_body=10 * 2**20, page_body=2**20), "gate": Gate(5),
                                          "credentials": credentials, "address": "192.0.2.7"})

    def upload(token: str) -> int:
        head = (f"POST /api/v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: audio/flac\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n").encode()
        request = parser(Adjustments())
        request.received(head)
        return request.error.code if request.error else 100

    assert upload("t" * 24) == 100
    assert [upload("wrong-" + "t" * 20) for _ in range(GUESSES)] == [401] * GUESSES
    assert upload("t" * 24) == 429  # held back, the right token too


def test_behind_a_proxy_on_this_machine_wrong_tokens_count_by_the_visitor_it_names(serve, caplog, monkeypatch):
    """Before, every request through a reverse proxy came from loopback, which is never held back: behind the proxy
    docs/deployment.md recommends, tokens could be guessed without limit. The proxy's own entry, the last of
    X-Forwarded-For, now names whose guesses they are; entries before it are the client's to forge, and count
    for nothing. Real HTTP from loopback, as a proxy on this machine sends it."""
    from genrecast.dashboard import auth

    token = "proxy-token-0123456789"
    server = serve(api=ApiSettings(token=token, max_mb=5), upload_from=100_000)

    def api(token: str, forwarded: str | None, proto: str = "") -> int:
        extra = (f"X-Forwarded-For: {forwarded}\r\n" if forwarded else "") + proto
        return request(server.port, (f"GET /api/v1/streams HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                     f"Authorization: Bearer {token}\r\n{extra}\r\n").encode())[0]

    guesses = [api("wrong-" + token, f"198.51.100.{n}, 192.0.2.7") for n in range(auth.GUESSES)]
    assert guesses == [401] * auth.GUESSES
    assert api(token, "192.0.2.7") == 429  # held back, the right token too
    assert api(token, "203.0.113.5, 198.51.100.1") == 200  # the forged entries counted for nothing
    login = (b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Forwarded-For: 192.0.2.7\r\n"
             b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 28\r\n\r\n"
             b"token=proxy-token-0123456789")
    assert request(server.port, login)[0] == 429
    upload = post_head("/api/v1/classify", 2_000_000, "audio/wav", expect=True).replace(
        b"\r\n\r\n", f"\r\nAuthorization: Bearer {token}\r\nX-Forwarded-For: 192.0.2.7\r\n\r\n".encode(), 1)
    with connect(server.port) as sock:
        sock.sendall(upload)
        assert answer(sock)[0] == 429 and server.gate.held == 0
    # written with a port or brackets (as some proxies do), or not an address at all: counted all the same
    for forwarded, same in (("192.0.2.9:5555", "192.0.2.9"), ("[2001:db8::1]:443", "2001:db8::1"),
                            ("unknown", "unknown")):
        assert [api("wrong-" + token, forwarded) for _ in range(auth.GUESSES)] == [401] * auth.GUESSES
        assert api(token, same) == 429, forwarded
    for _ in range(auth.GUESSES):  # loopback itself, naming no visitor, is this machine: never held back
        assert api("wrong-" + token, None) == 401
    assert api(token, None) == 200

    monkeypatch.setattr(auth, "_unnamed", threading.Event())
    with caplog.at_level("WARNING", logger="genrecast.dashboard.auth"):
        for _ in range(3):
            assert api(token, None, "X-Forwarded-Proto: https\r\n") == 200
    unnamed = [r for r in caplog.records if "without X-Forwarded-For" in r.getMessage()]
    assert len(unnamed) == 1, caplog.text


def test_behind_a_tls_proxy_on_this_machine_the_session_cookie_is_secure(serve, caplog):
    """Waitress stripped X-Forwarded-Proto from every request, so behind the TLS proxy of docs/deployment.md the
    cookie was never marked Secure, and every login was logged as one over plain HTTP. Real HTTP from loopback,
    with the Host and headers that proxy sends; without its X-Forwarded-Proto the login is plain HTTP indeed."""
    token = "proxy-token-0123456789"
    server = serve(api=ApiSettings(token=token), allow_hosts=("dashboard.example.lan",))

    def login(proto: str) -> tuple[int, dict]:
        body = f"token={token}".encode()
        status, headers, _ = request(server.port, (
            "POST /login HTTP/1.1\r\nHost: dashboard.example.lan\r\nConnection: close\r\n"
            f"X-Forwarded-For: 192.0.2.7\r\n{proto}Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        return status, headers

    with caplog.at_level("WARNING", logger="genrecast.dashboard.auth"):
        status, headers = login("X-Forwarded-Proto: https\r\n")
        assert status == 303 and "Secure" in headers["set-cookie"][0], headers
        assert "plain HTTP" not in caplog.text
        status, headers = login("")
        assert status == 303 and "Secure" not in headers["set-cookie"][0], headers
    assert "a login over plain HTTP from 192.0.2.7" in caplog.text


def test_an_ipv6_host_holds_upload_slots_by_its_64():
    """Keyed by address, a host could rotate through its /64 and take every slot all the same. Waitress's parser
    itself, as the server runs it for peers that are not loopback (which a loopback-only test cannot connect from)."""
    from genrecast.dashboard.server import Gate, GuardedParser, Limits
    from waitress.adjustments import Adjustments

    gate = Gate(3)

    def upload(address: str) -> int:
        parser = type("P", (GuardedParser,), {"limits": Limits(api_body=10 * 2**20, page_body=2**20), "gate": gate,
                                              "credentials": None, "address": address})
        request = parser(Adjustments())
        request.received(b"POST /api/v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/flac\r\n"
                         b"Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n")
        return request.error.code if request.error else 100

    assert [upload(f"2001:db8:1:2::{i}") for i in (1, 2, 3)] == [100, 100, 503]  # one /64: all slots but one
    assert upload("2001:db8:1:3::1") == 100  # another /64 takes the last
    assert gate.held == 3
