"""The feed against a real Mosquitto: what the page is told when the broker turns the dashboard away."""

from __future__ import annotations

import time

from conftest import MosquittoBroker
from genrecast.daemon.broker import BrokerConfig
from genrecast.dashboard.feed import Feed
from genrecast.dashboard.history import History


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




def wait(what, condition):
    """Until ``condition()`` holds; the deadline only guards against a hang."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_an_evicted_stream_gets_its_retained_state_back(broker):
    """Through a real broker: the feed resubscribes to a returning stream's retained topics."""
    from dashboard_payloads import encode, prediction, status
    from paho.mqtt.client import CallbackAPIVersion, Client

    history = History(max_streams=2)
    feed = Feed(BrokerConfig(host=broker.host, port=broker.port), "genrecast", history)
    feed.start()
    pub = Client(CallbackAPIVersion.VERSION2)
    pub.connect(broker.host, broker.port)
    pub.loop_start()

    def kitchen():
        return history.snapshot().stream("kitchen")

    try:
        wait("feed connected", lambda: feed.status().connected)
        pub.publish("genrecast/kitchen/status", encode(status("kitchen")), qos=1, retain=True).wait_for_publish()
        wait("kitchen's status", lambda: kitchen() is not None and kitchen().status is not None)
        for name in ("x", "y"):  # two streams with a status, not retained: kitchen is the quietest, forgotten
            pub.publish(f"genrecast/{name}/status", encode(status(name)), qos=1).wait_for_publish()
        wait("kitchen evicted", lambda: kitchen() is None)
        pub.publish("genrecast/kitchen/prediction", encode(prediction("kitchen")), qos=1).wait_for_publish()
        wait("kitchen's retained status again", lambda: kitchen() is not None and kitchen().status is not None)
        assert kitchen().status.state == "online" and kitchen().latest is not None
    finally:
        pub.loop_stop()
        pub.disconnect()
        feed.stop()


def test_a_retained_message_is_as_old_as_its_time_a_live_one_as_its_arrival(broker):
    """A stream that ended ten minutes ago read "last message 2 s ago" (and its API age 2 s) after every start of
    the dashboard: the broker's retained copy counted as just heard. It now counts from its own time. A live
    message counts from its arrival even when its publisher's clock is ten minutes slow. Through a real broker."""
    from datetime import UTC, datetime, timedelta

    from dashboard_payloads import encode, status
    from paho.mqtt.client import CallbackAPIVersion, Client

    long_ago = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    pub = Client(CallbackAPIVersion.VERSION2)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    pub.publish("genrecast/ended/status", encode(status("ended", time=long_ago)), qos=1, retain=True).wait_for_publish()
    history = History()
    feed = Feed(BrokerConfig(host=broker.host, port=broker.port), "genrecast", history)
    feed.start()

    def age(stream_id):
        return history.clock() - history.snapshot().stream(stream_id).last_message_at

    try:
        wait("the retained status", lambda: history.snapshot().stream("ended") is not None)
        wait("feed connected", lambda: feed.status().connected)
        pub.publish("genrecast/slow/status", encode(status("slow", time=long_ago)), qos=1).wait_for_publish()
        wait("the live status", lambda: history.snapshot().stream("slow") is not None)
        assert 590 < age("ended") < 900
        assert age("slow") < 60
        assert history.snapshot().stream("ended").liveness(history.clock(), True) == "stalled"  # online, silent
    finally:
        feed.stop()
        pub.loop_stop()
        pub.disconnect()
