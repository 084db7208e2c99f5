"""The feed against a real Mosquitto: what the page is told when the broker turns the dashboard away."""

from __future__ import annotations

import time

from conftest import MosquittoBroker

from daemon.broker import BrokerConfig
from dashboard.feed import Feed
from dashboard.history import History


def test_refused_connection_is_explained(tmp_path):
    broker = MosquittoBroker(tmp_path)
    # no anonymous clients and no password file: every login is refused
    broker.conf.write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous false\npersistence false\n")
    broker.start()
    feed = Feed(BrokerConfig(host=broker.host, port=broker.port, username="who", password="wrong"), "genrecast",
                History())
    feed.start()
    try:
        deadline = time.monotonic() + 30
        while feed.status().problem is None and time.monotonic() < deadline:
            time.sleep(0.1)
        status = feed.status()
        assert not status.connected
        assert status.problem and "refused" in status.problem and "authori" in status.problem.lower()
    finally:
        feed.stop()
        broker.stop()


