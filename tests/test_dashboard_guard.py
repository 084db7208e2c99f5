"""The dashboard's HTTP guard against a real server on loopback: Host allow-list (DNS rebinding) and body limit."""

from __future__ import annotations

import http.client
import threading

import pytest
from genrecast.daemon.broker import BrokerConfig
from genrecast.dashboard.app import MAX_REQUEST_BYTES, create_app, make_server
from genrecast.dashboard.feed import Feed
from genrecast.dashboard.guard import HostAllowList, host_name
from genrecast.dashboard.history import History
from genrecast.dashboard.offline import OfflineClassifier


@pytest.fixture(scope="module")
def server():
    history = History()
    app = create_app(history, Feed(BrokerConfig(), "genrecast", history), OfflineClassifier())
    srv = make_server(app, "127.0.0.1", 0, allow_hosts=("kitchen.local",))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()


def request(server, method: str, host: str, body: bytes = b"", headers: dict | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)  # hang guard, not a speed check
    try:
        conn.putrequest(method, "/", skip_host=True)
        conn.putheader("Host", host)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8050", "127.0.0.1.attacker.example",
                                  "localhost.attacker.example", "", "192.168.1.20", "[::1]evil.example",
                                  "[::1]:8050evil"])
def test_foreign_host_names_are_refused(server, host):
    assert request(server, "GET", host) == 421


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST.", "[::1]", "kitchen.local"])
def test_the_bound_address_localhost_and_configured_names_are_served(server, host):
    assert request(server, "GET", f"{host}:{server.port}") == 200


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    """The header alone decides: the server answers without waiting for 200 MB that never come."""
    status = request(server, "POST", f"127.0.0.1:{server.port}", b"{}",
                     {"Content-Length": str(200 * 2**20), "Content-Type": "application/json"})
    assert status == 413 and MAX_REQUEST_BYTES < 200 * 2**20


@pytest.mark.parametrize(("headers", "status"), [
    ({"Origin": "http://attacker.example"}, 403),
    ({"Origin": "null"}, 403),
    ({"Sec-Fetch-Site": "cross-site", "Origin": "http://attacker.example"}, 403),
    ({"Sec-Fetch-Site": "same-site"}, 403),  # another port of this machine, Home Assistant's say, is not this origin
    ({"Sec-Fetch-Site": "same-origin"}, 415),  # let through: the API then refuses the type
    ({"Origin": "http://127.0.0.1:{port}"}, 415),
    ({}, 415),  # not a browser: curl, a script
])
def test_writes_from_another_origin_are_refused(server, headers, status):
    """A page elsewhere could POST a form or a no-cors fetch here (no token set): it must not make us work."""
    headers = {k: v.format(port=server.port) for k, v in headers.items()}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", "/api/v1/classify", b"", {"Content-Type": "text/plain", **headers})
        response = conn.getresponse()
        assert response.status == status and response.getheader("Content-Type") == "application/json"
    finally:
        conn.close()


def test_host_rules():
    assert host_name("[::1]:8050") == "::1" and host_name("Kitchen.Local.:80") == "kitchen.local"
    wildcard = HostAllowList("0.0.0.0", ("den.lan",))
    assert wildcard.allows("192.168.1.20:8050") and wildcard.allows("[fe80::1]") and wildcard.allows("den.lan")
    assert not wildcard.allows("attacker.example") and not wildcard.allows("192.168.1.20.nip.io")
    assert HostAllowList("192.168.1.20").allows("192.168.1.20:8050")
    assert not HostAllowList("192.168.1.20").allows("192.168.1.21")
