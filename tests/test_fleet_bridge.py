"""The fleet form of docs/deployment.md for real: an edge Mosquitto bridges ``genrecast/#`` to a central one, a
multi-stream daemon publishes to the edge, and the dashboard's subscriber reads the centre."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest
from conftest import MosquittoBroker
from daemon_helpers import WAIT, Daemon, Subscriber, validate, write_tones
from genrecast.daemon.broker import BrokerConfig
from genrecast.dashboard.feed import Feed
from genrecast.dashboard.history import History


@pytest.fixture
def central(tmp_path):
    (tmp_path / "central").mkdir()
    b = MosquittoBroker(tmp_path / "central")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def edge(tmp_path, central):
    (tmp_path / "edge").mkdir()
    b = MosquittoBroker(tmp_path / "edge")
    b.conf.write_text(b.conf.read_text() + (
        "connection central\n"
        f"address {central.host}:{central.port}\n"
        "topic genrecast/# out 1\n"
        "topic homeassistant/# out 1\n"
        "topic homeassistant/status in 1\n"
        "bridge_protocol_version mqttv311\n"
        "try_private true\n"
        "notifications false\n"
        "restart_timeout 1\n"
    ))
    b.start()
    yield b
    b.stop()


def wait_until(predicate, what: str) -> None:
    """Poll a condition of the dashboard's history (it has no events to wait on); a hang guard, not a timing."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.1)


def test_daemon_on_the_edge_dashboard_at_the_centre(central, edge, model, tmp_path):
    loop = write_tones(tmp_path / "loop.wav", [3] * 4)
    history = History()
    feed = Feed(BrokerConfig(host=central.host, port=central.port), "genrecast", history)
    feed.start()
    centre = Subscriber(central.url)
    # The bridge is up once a message published at the edge reaches the centre (outside the dashboard's topics).
    probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bridge-probe")
    probe.connect(edge.host, edge.port)
    probe.loop_start()
    deadline = time.monotonic() + WAIT
    while not centre.of("homeassistant/probe"):
        assert time.monotonic() < deadline, "the edge never bridged to the centre"
        probe.publish("homeassistant/probe", '{"probe": 1}', qos=1).wait_for_publish(WAIT)
        time.sleep(0.2)
    probe.loop_stop()
    probe.disconnect()

    daemon = Daemon("--stream", f"bar=file:{loop}", "--stream", f"lobby=file:{loop}", "--loop", "--name", "site-a",
                    "--model", str(model), "--broker", edge.url, "--ha-discovery")
    try:
        for stream in ("bar", "lobby"):
            centre.wait_for(lambda m, s=stream: m.topic == f"genrecast/{s}/prediction", f"{stream} at the centre")

        def dashboard_sees_both() -> bool:
            views = {v.stream_id: v for v in history.snapshot().streams}
            return all(s in views and views[s].latest is not None and views[s].status is not None
                       and views[s].status.state == "online" for s in ("bar", "lobby"))

        wait_until(dashboard_sees_both, "the dashboard at the centre showing both streams online")
        assert feed.status().rejected == 0
        # Home Assistant at the centre (re)starts: its birth message crosses the bridge inwards, and the daemon at the
        # edge sends its devices again
        centre.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(WAIT)
        daemon.wait_log("3 device configs sent again")
        # The edge's daemon dies: its will, published by the edge broker, crosses the bridge too.
        daemon.proc.kill()
        daemon.finish()
        will = centre.wait_for(lambda m: m.topic == "genrecast/_daemon/site-a/status"
                               and m.payload["state"] == "offline", "the will at the centre")
        assert will.payload["reason"] == "connection lost"
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.finish()
        feed.stop()
        centre.close()
    for m in centre.messages:
        if m.topic.startswith("genrecast/"):
            validate(m.topic, m.payload)


def test_the_documented_broker_accounts_let_discovery_and_the_duplicate_watch_through(tmp_path, model):
    """docs/deployment.md's ``acl_file``, as written. Before, it gave a site write access to its prefix only: the
    broker dropped every Home Assistant discovery config, and the status each process reads back to notice another
    publishing its streams, without a word to the daemon (MQTT 3.1.1 has no way to say so); and Home Assistant's
    account could not empty the config of a device deleted in its UI (nor would the sites have heard its birth message,
    at which they send their devices again)."""
    import getpass
    import re
    import subprocess

    from conftest import ROOT

    text = (ROOT / "docs" / "deployment.md").read_text()
    acl = re.search(r"Mosquitto's `acl_file`:\n\n  ```\n(.*?)\n  ```", text, re.S).group(1)
    (tmp_path / "acl").write_text("".join(line.strip() + "\n" for line in acl.splitlines()))
    for i, user in enumerate(("site-a", "homeassistant")):
        subprocess.run(["mosquitto_passwd", "-b", *([] if i else ["-c"]), str(tmp_path / "passwd"), user, "pw"],
                       check=True, capture_output=True)
    b = MosquittoBroker(tmp_path)
    b.conf.write_text(f"listener {b.port} 127.0.0.1\nallow_anonymous false\npassword_file {tmp_path}/passwd\n"
                      f"acl_file {tmp_path}/acl\npersistence false\nuser {getpass.getuser()}\n")
    b.start()
    ha = Subscriber(b.url, topics=("homeassistant/#", "genrecast/#"), auth=("homeassistant", "pw"))
    site = f"mqtt://site-a:pw@{b.host}:{b.port}"
    clip = write_tones(tmp_path / "bar.wav", [0] * 4)
    daemons = [Daemon("--source", f"file:{clip}", "--loop", "--stream-id", "bar", "--name", name, "--prefix",
                      "genrecast/site-a", "--model", str(model), "--broker", site, "--ha-discovery")
               for name in ("one", "two")]
    try:
        device = "homeassistant/device/genrecast_site-a/bar/config"
        ha.wait_for(lambda m: m.topic == device and m.payload, "the stream's device config, as Home Assistant's "
                    "account reads it")
        # a device deleted in Home Assistant's UI: it empties the config, retained. The account could write only
        # its birth message, so the broker dropped it and the device came back at Home Assistant's next start.
        ha.client.publish(device, b"", qos=1, retain=True)
        ha.wait_for(lambda m: m.topic == device and m.payload is None, "Home Assistant's emptied config, let through")
        # Home Assistant's next birth message reaches the sites' accounts, which send the device again
        before = {id(m) for m in ha.messages}
        ha.client.publish("homeassistant/status", b"online", qos=1)
        ha.wait_for(lambda m: m.topic == device and m.payload and id(m) not in before,
                    "the device config again, after Home Assistant's birth message")
        ha.wait_for(lambda m: m.topic == "genrecast/site-a/bar/genre", "the stream's genre")
        for d in daemons:
            d.wait_log("is also published by another process")
    finally:
        for d in daemons:
            d.signal(2)
            d.finish()
        ha.close()
        b.stop()


def test_an_account_that_cannot_read_its_own_topics_is_named_once(tmp_path, model):
    """The broker accepts, and drops, a subscription its ACL denies (SUBACK still grants it under MQTT 3.1.1), so
    the duplicate watch was off without a word. Now the daemon says so, once, at the first refresh 15 s or more
    into a connection."""
    import getpass
    import subprocess

    (tmp_path / "acl").write_text("user site-a\ntopic write genrecast/#\n")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp_path / "passwd"), "site-a", "pw"], check=True,
                   capture_output=True)
    b = MosquittoBroker(tmp_path)
    b.conf.write_text(f"listener {b.port} 127.0.0.1\nallow_anonymous false\npassword_file {tmp_path}/passwd\n"
                      f"acl_file {tmp_path}/acl\npersistence false\nuser {getpass.getuser()}\n")
    b.start()
    clip = write_tones(tmp_path / "bar.wav", [0] * 4)
    d = Daemon("--source", f"file:{clip}", "--loop", "--stream-id", "bar", "--model", str(model), "--refresh", "1",
               "--broker", f"mqtt://site-a:pw@{b.host}:{b.port}")
    try:
        d.wait_log("does not send this process's own status back (genrecast/_daemon/bar/status)")
        d.signal(2)
        d.finish()
        assert d.log.count("does not send this process's own status back") == 1
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.finish()
        b.stop()


def test_the_echo_check_waits_for_one_connection_and_says_it_once(caplog):
    """What the live test cannot show in a few seconds: no word while a connection is young or gone, none once our
    own status came back, and one only, however long it lasts."""
    from genrecast.daemon.peers import ECHO_SECONDS, PeerWatch

    caplog.set_level("WARNING", logger="genrecast.run")
    topic = "genrecast/_daemon/den/status"
    said = lambda: [r for r in caplog.records if "own status back" in r.getMessage()]  # noqa: E731
    deaf = PeerWatch("me", {topic: "process den"}, lambda t: None)
    for up in (None, 0.0, ECHO_SECONDS - 0.1, None):  # reconnects: each connection's own age
        deaf.check_echo(up)
    assert not said()
    deaf.check_echo(ECHO_SECONDS)
    deaf.check_echo(ECHO_SECONDS * 10)
    assert len(said()) == 1 and topic in said()[0].getMessage()
    caplog.clear()
    hearing = PeerWatch("me", {topic: "process den"}, lambda t: None)
    hearing.on_message(topic, b'{"instance": "me", "state": "online"}', retained=True)
    hearing.check_echo(ECHO_SECONDS * 10)
    assert not said()
