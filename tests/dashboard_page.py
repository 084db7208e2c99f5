"""The dashboard as a browser sees it: the page served on a free loopback port with its feed subscribed to the test
broker, a headless Chromium, a paho publisher, and waits on what the page shows (hang guards, never speed)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest
from genrecast.daemon.broker import BrokerConfig
from genrecast.daemon.config import ApiSettings
from genrecast.dashboard.app import create_app, make_server
from genrecast.dashboard.feed import Feed
from genrecast.dashboard.history import History
from genrecast.dashboard.offline import OfflineClassifier
from paho.mqtt.enums import CallbackAPIVersion
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WAIT_S = 60  # hang guard for every wait on the page or the broker


def start_chromium(profile: Path, *flags: str) -> webdriver.Chrome:
    """Debian's headless Chromium through its chromedriver, with a throwaway profile (and more ``flags``)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("chromium and chromium-driver are not installed: run `make test`, which installs them")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={profile}", *flags):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


@contextmanager
def serve_dashboard(broker, model: Path, history: History | None = None, api: ApiSettings | None = None,
                    allow_hosts: tuple[str, ...] = (), callback_delay_s: float = 0.0) -> Iterator[SimpleNamespace]:
    """The page served from a thread, its feed subscribed: messages published from then on reach the page.
    ``callback_delay_s``: every answer to the page's callbacks held back this long, as from a busy machine."""
    history = history or History()
    feed = Feed(BrokerConfig.from_url(broker.url), "genrecast", history)
    app = create_app(history, feed, OfflineClassifier(str(model)), api)
    if callback_delay_s:
        app.server.wsgi_app = delayed(app.server.wsgi_app, callback_delay_s)
    server = make_server(app, "127.0.0.1", 0, allow_hosts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    feed.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not feed.status().connected:  # the feed has no event to wait on: poll it, as a hang guard only
            assert time.monotonic() < deadline, "the dashboard's feed never subscribed"
            time.sleep(0.05)
        yield SimpleNamespace(url=f"http://127.0.0.1:{server.port}/", feed=feed, history=history, server=server)
    finally:
        feed.stop()
        server.shutdown()
        thread.join(10)


class Publisher:
    def __init__(self, broker) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, kind: str, payload: dict | bytes, retain: bool = False, stream_id: str | None = None) -> None:
        stream_id = stream_id or payload["stream_id"]
        data = payload if isinstance(payload, bytes) else json.dumps(payload)
        self.client.publish(f"genrecast/{stream_id}/{kind}", data, qos=1, retain=retain).wait_for_publish(WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def delayed(wsgi_app: Callable, seconds: float) -> Callable:
    """``wsgi_app`` answering the page's callbacks ``seconds`` late."""
    def app(environ: dict, start_response: Callable):
        if environ.get("PATH_INFO", "").endswith("/_dash-update-component"):
            time.sleep(seconds)
        return wsgi_app(environ, start_response)

    return app


def wait_for(driver, what: str, condition) -> None:
    try:
        WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(lambda d: condition(d))
    except TimeoutException:
        pytest.fail(f"the page never showed {what}")
