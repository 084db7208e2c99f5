"""Broker misconfiguration, against real Mosquitto listeners: each mistake gets one line naming its cause, in the
daemon and in the dashboard alike, and settings paho cannot take are refused before it sees them."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from conftest import free_port
from daemon_helpers import WAIT, Daemon, genrecast, write_tones
from genrecast.daemon.broker import BrokerConfig, diagnose
from genrecast.daemon.config import ConfigError, load_settings
from genrecast.dashboard.feed import Feed
from genrecast.dashboard.history import History


@pytest.fixture
def other_ca(tmp_path):
    """A CA that did not sign the broker's certificate."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", "other.key", "-out", "other.pem", "-days", "1", "-subj", "/CN=other"],
                   cwd=tmp_path, check=True, capture_output=True)
    return tmp_path / "other.pem"


def test_keepalive_paho_cannot_encode_is_refused():
    with pytest.raises(ConfigError, match="broker.keepalive \\(from flags\\): must be 5 to 65535 seconds, got 70000"):
        load_settings(flags={"broker": {"keepalive": 70000}}, environ={})


def test_a_ca_file_that_is_no_certificate_is_one_line_exit_2(tmp_path, model):
    wav = write_tones(tmp_path / "a.wav", [1] * 4)
    proc = genrecast("run", "--source", f"file:{wav}", "--model", str(model), "--broker", "mqtts://127.0.0.1:9",
                     "--ca-file", "/etc/hostname")
    _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2
    assert err == "genrecast run: error: broker.ca_file (from --ca-file): /etc/hostname is not a usable CA " \
                  "certificate (NO_CERTIFICATE_OR_CRL_FOUND)\n"


def test_a_ca_file_with_a_plain_mqtt_url_is_refused():
    """Nothing read it: the process connected in the clear, password and all, with no word to one who set a CA."""
    with pytest.raises(ConfigError, match="^broker.ca_file \\(from flags\\): set, but the broker URL "
                                          "mqtt://127.0.0.1:1883 is not TLS: use mqtts://"):
        load_settings(flags={"broker": {"url": "mqtt://127.0.0.1", "ca_file": "/etc/hostname"}}, environ={})


def test_a_ca_file_that_is_a_folder_is_named_so():
    """It said "no such file" of a folder that exists."""
    with pytest.raises(ConfigError, match="^broker.ca_file \\(from flags\\): '/etc': is a folder, not a CA file$"):
        load_settings(flags={"broker": {"url": "mqtts://127.0.0.1", "ca_file": "/etc"}}, environ={})


def test_each_cause_is_named(broker, tls_broker, other_ca, tmp_path):
    ca = str(tmp_path / "ca.pem")
    plain, tls = broker.port, tls_broker.port
    assert diagnose(BrokerConfig(port=free_port())).startswith("connection refused: nothing listens on")
    assert "is it a TLS port (use mqtts://)?" in diagnose(BrokerConfig(port=tls))
    assert diagnose(BrokerConfig(port=plain, tls=True, ca_file=ca)).startswith("TLS handshake failed")
    assert "certificate is not trusted" in diagnose(BrokerConfig(port=tls, tls=True, ca_file=str(other_ca)))
    assert diagnose(BrokerConfig(host="no-such-host.invalid")).startswith("cannot resolve no-such-host.invalid")


def test_daemon_says_plain_mqtt_met_a_tls_port(tls_broker, model, tmp_path):
    wav = write_tones(tmp_path / "a.wav", [1] * 4)
    daemon = Daemon("--source", f"file:{wav}", "--loop", "--model", str(model),
                    "--broker", f"mqtt://127.0.0.1:{tls_broker.port}")
    line = daemon.wait_log("cannot reach broker")
    daemon.signal(signal.SIGTERM)
    daemon.finish()
    assert "closed the connection without an MQTT answer" in line and "use mqtts://" in line


def test_daemon_names_an_untrusted_certificate_and_a_refused_login(tls_broker, other_ca, model, tmp_path):
    wav = write_tones(tmp_path / "a.wav", [1] * 4)
    url = f"mqtts://127.0.0.1:{tls_broker.port}"
    daemon = Daemon("--source", f"file:{wav}", "--loop", "--model", str(model), "--broker", url,
                    "--ca-file", str(other_ca))
    line = daemon.wait_log("cannot reach broker")
    daemon.signal(signal.SIGTERM)
    daemon.finish()
    assert "TLS: the broker's certificate is not trusted" in line
    daemon = Daemon("--source", f"file:{wav}", "--loop", "--model", str(model), "--broker", url,
                    "--ca-file", str(tmp_path / "ca.pem"), "--username", "genre", "--password", "wrong")
    line = daemon.wait_log("cannot reach broker")
    daemon.signal(signal.SIGTERM)
    daemon.finish()
    assert "refused the login" in line and "check the username and password" in line


def feed_problem(broker: BrokerConfig) -> str:
    feed = Feed(broker, "genrecast", History())
    feed.start()
    try:
        deadline = time.monotonic() + WAIT  # hang guard only
        while feed.status().problem is None:
            assert time.monotonic() < deadline, "the feed never said what is wrong"
            time.sleep(0.05)
        return feed.status().problem
    finally:
        feed.stop()


def test_dashboard_names_tcp_and_tls_failures_and_logs_them(tls_broker, other_ca, caplog):
    caplog.set_level("WARNING", logger="genrecast.dashboard.feed")
    assert feed_problem(BrokerConfig(port=free_port())).startswith("connection refused")
    assert "not trusted" in feed_problem(BrokerConfig(port=tls_broker.port, tls=True, ca_file=str(other_ca)))
    assert "use mqtts://" in feed_problem(BrokerConfig(port=tls_broker.port))
    said = [r.getMessage() for r in caplog.records]
    assert any("connection refused" in m for m in said) and any("not trusted" in m for m in said)


def test_a_connect_failure_probed_while_the_process_closes_is_not_said_after_its_last_line(monkeypatch):
    """CI, under load: the broker down, a bad file's exit 2 printed its error, and then the publisher's first
    connect failure, probed meanwhile, logged "cannot reach broker" as the process's last line."""
    import logging
    import threading

    from genrecast.daemon import broker as broker_module
    from genrecast.daemon.config import BrokerSettings

    probing, release = threading.Event(), threading.Event()

    def slow_diagnose(_broker):
        probing.set()
        release.wait(10)
        return "connection refused"

    monkeypatch.setattr(broker_module, "diagnose", slow_diagnose)
    said: list[str] = []
    log = logging.getLogger("genrecast.test-connect-failures")
    log.addHandler(handler := logging.Handler())
    handler.emit = lambda record: said.append(record.getMessage())
    failures = broker_module.ConnectFailures(BrokerSettings().to_broker(), log)
    late = threading.Thread(target=failures.failed)
    late.start()
    assert probing.wait(10)
    failures.silence()  # the process closes while the probe runs
    release.set()
    late.join(10)
    assert said == []
    fresh = broker_module.ConnectFailures(BrokerSettings().to_broker(), log)
    release.set()
    fresh.failed()
    assert said and said[0].startswith("cannot reach broker")  # said when nothing closes
