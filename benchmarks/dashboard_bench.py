"""Dashboard benchmark at scale (run on demand, not in CI): the page's update cost and the server's memory.

N streams (default 200), each with a full timeline (600 windows, 10 minutes at a 1-s hop), are put into the
dashboard's history; live predictions then arrive for every stream once a second, as from N daemons, and
``--changes`` of them a second move to another genre (by default one in 30: each stream changes about every 30 s).
The real app is served on loopback and loaded in headless Chromium, and measured twice in the same run for
``--seconds`` each: with the overview drawn whole whenever a card changed (as before 0.6.x's patching), then with
only the changed cards sent. Reported: the server's time per overview update (a tick where only ages moved, and a
full redraw), and for each phase the browser's update requests per second, their durations and sizes, and its long
tasks (main thread busy > 50 ms) per second; and the server's RSS. The last line is:
``dashboard: streams=<N> changes_per_s=<> tick_ms_p50=<> redraw_ms=<> updates_per_s=<> kb_per_s=<> kb_per_s_whole=<>
longtask_ms_per_s=<> longtask_ms_per_s_whole=<> rss_mb=<>`` (one line)
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dashboard_payloads import GENRES, encode, prediction, status  # noqa: E402
from genrecast.daemon.broker import BrokerConfig  # noqa: E402
from genrecast.dashboard import render  # noqa: E402
from genrecast.dashboard.app import create_app, make_server  # noqa: E402
from genrecast.dashboard.feed import Feed, FeedStatus  # noqa: E402
from genrecast.dashboard.history import History  # noqa: E402
from genrecast.dashboard.offline import OfflineClassifier  # noqa: E402
from genrecast.dashboard.parse import parse_message  # noqa: E402


def fill(history: History, n: int, windows: int) -> None:
    for i in range(n):
        sid = f"s{i:03d}"
        history.add(parse_message("genrecast", f"genrecast/{sid}/status", encode(status(sid))))
        for t in range(windows):
            history.add(parse_message("genrecast", f"genrecast/{sid}/prediction",
                                      encode(prediction(sid, GENRES[(i + t // 60) % 10], 0.8, t=float(t)))))


def server_costs(history: History, repeats: int = 20) -> tuple[float, float]:
    """ms for the overview's work on a tick where only ages moved (key, liveness), and for a full redraw."""
    feed = FeedStatus(True, "mqtt://127.0.0.1:1883", 0, None, None)
    ticks, redraws = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        snap, now = history.snapshot(timelines=False), history.clock()
        entries, _ = render.overview(snap, now, "s000", feed, "genrecast")
        render.overview_cards(entries, [e.key for e in entries], now, "s000", True, True)
        render.liveness(snap, now, True)
        t1 = time.perf_counter()
        render.overview_cards(entries, None, now, "s000", True, True)
        t2 = time.perf_counter()
        ticks.append(t1 - t0)
        redraws.append(t2 - t0)
    return float(np.median(ticks)) * 1000, float(np.median(redraws)) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--streams", type=int, default=200)
    p.add_argument("--windows", type=int, default=600)
    p.add_argument("--seconds", type=float, default=20.0, help="each phase's length")
    p.add_argument("--changes", type=int, default=None, help="streams moving to another genre each second")
    a = p.parse_args()
    changes = a.streams // 30 if a.changes is None else a.changes
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from tiny_model import build_tiny_model

    history = History()
    fill(history, a.streams, a.windows)
    tick_ms, redraw_ms = server_costs(history)
    feed = Feed(BrokerConfig.from_url("mqtt://127.0.0.1:9"), "genrecast", history)  # never started: fed below
    model = build_tiny_model(Path("/tmp") / "dashboard-bench-tiny.onnx")
    server = make_server(create_app(history, feed, OfflineClassifier(str(model))), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()

    def live() -> None:  # every stream speaks once a second, as N daemons would; some change genre
        t, shift, moved = float(a.windows), [0] * a.streams, 0
        while not stop.is_set():
            for _ in range(changes):
                shift[moved % a.streams] += 1
                moved += 1
            for i in range(a.streams):
                sid = f"s{i:03d}"
                feed.handle(f"genrecast/{sid}/prediction",
                            encode(prediction(sid, GENRES[(i + shift[i]) % 10], 0.8, t=t)))
            t += 1
            stop.wait(1.0)

    threading.Thread(target=live, daemon=True).start()
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get(f"http://127.0.0.1:{server.port}/")
        driver.execute_script("window.__long = 0; new PerformanceObserver(l => l.getEntries().forEach("
                              "e => window.__long += e.duration)).observe({entryTypes: ['longtask']});")
        time.sleep(5)  # the first full draw
        phases = {}
        for name, share in (("whole", -1.0), ("patched", render.REDRAW_SHARE)):
            render.REDRAW_SHARE = share  # -1: any changed card redraws the whole overview, as before patching
            driver.execute_script("performance.clearResourceTimings(); window.__long = 0;")
            time.sleep(a.seconds)
            phases[name] = (driver.execute_script(
                "return performance.getEntriesByType('resource').filter(e => e.name.includes('_dash-update'))"
                ".map(e => [e.duration, e.transferSize])"), driver.execute_script("return window.__long"))
        cards = driver.execute_script("return document.querySelectorAll('#overview .card').length")
    finally:
        driver.quit()
        stop.set()
        server.shutdown()
    figures = {}
    print(f"server: overview tick (ages only) {tick_ms:.1f} ms, full redraw {redraw_ms:.1f} ms")
    for name, (entries, long_ms) in phases.items():
        durations = np.array([e[0] for e in entries]) if entries else np.array([0.0])
        kb = sum(e[1] for e in entries) / 1024
        figures[name] = (len(entries) / a.seconds, kb / a.seconds, long_ms / a.seconds)
        print(f"browser, {name}: {cards} cards, {changes} changes a second, {len(entries)} update requests in "
              f"{a.seconds:g} s, request ms p50 {np.percentile(durations, 50):.0f} p99 "
              f"{np.percentile(durations, 99):.0f}, {kb / a.seconds:.0f} kB/s, long tasks {long_ms / a.seconds:.0f} "
              "ms/s")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (updates, kb, long_ms), (_, kb_whole, long_whole) = figures["patched"], figures["whole"]
    print(f"dashboard: streams={a.streams} changes_per_s={changes} tick_ms_p50={tick_ms:.1f} "
          f"redraw_ms={redraw_ms:.1f} updates_per_s={updates:.1f} kb_per_s={kb:.0f} kb_per_s_whole={kb_whole:.0f} "
          f"longtask_ms_per_s={long_ms:.0f} longtask_ms_per_s_whole={long_whole:.0f} rss_mb={rss:.0f}")


if __name__ == "__main__":
    from bench_cli import run

    run(main)
