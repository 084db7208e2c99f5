"""The dashboard with 200 live streams in headless Chromium, fed through a real Mosquitto.

Every stream must be on the page, the overview must filter, sort and group, and the stale and offline marks must be
right for each stream. Waits assert what the page shows, never how fast (speed: benchmarks/dashboard_bench.py).
"""

from __future__ import annotations

import re
import time

import pytest
from dashboard_page import WAIT_S, Publisher, serve_dashboard, wait_for
from dashboard_payloads import GENRES, prediction, status
from genrecast.dashboard.history import History
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

N = 200


@pytest.fixture
def dashboard(broker, model):
    """The page on a clock the test can move forward (to make streams stale)."""
    shift = [0.0]
    with serve_dashboard(broker, model, History(clock=lambda: time.monotonic() + shift[0])) as page:
        page.shift = shift
        yield page


def cards(driver) -> dict[str, str]:
    """Stream id -> the card's text, for every card on the page, read in one script (the page redraws often)."""
    return dict(driver.execute_script(
        "return Array.from(document.querySelectorAll('#overview .card'), c => [c.dataset.stream, c.innerText])"))


def headlines(driver) -> dict[str, str]:
    """Stream id -> the genre (or state) the card shows."""
    return dict(driver.execute_script(
        "return Array.from(document.querySelectorAll('#overview .card'), "
        "c => [c.dataset.stream, c.querySelector('.headline').innerText])"))


def pill(driver, stream_id: str) -> str:
    return driver.execute_script(
        "const c = Array.from(document.querySelectorAll('#overview .card'))"
        ".find(c => c.dataset.stream === arguments[0]); return c ? c.querySelector('.status').innerText : '';",
        stream_id)


def type_search(driver, text: str) -> None:
    box = driver.find_element(By.ID, "search")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    if text:
        box.send_keys(text)


def test_two_hundred_streams_filter_group_and_mark_stale(browser, dashboard, broker, tmp_path):  # noqa: F811
    ids = [f"s{i:03d}" for i in range(N)]
    pub = Publisher(broker)
    for i, sid in enumerate(ids):
        state = {7: "offline", 8: "stalled"}.get(i, "online")
        pub.send("status", status(sid, state, **({"reason": "no audio for 10 s"} if state == "stalled" else {})),
                 retain=True)
        pub.send("prediction", prediction(sid, GENRES[i % 10], 0.8))

    browser.set_window_size(1400, 1000)
    browser.get(dashboard.url)
    wait_for(browser, f"all {N} streams", lambda d: len(cards(d)) == N)
    assert browser.find_elements(By.CSS_SELECTOR, "#overview.cards.compact")
    wait_for(browser, "the first stream in the detail view",
             lambda d: "stream s000" in d.execute_script("return document.getElementById('facts').innerText"))
    assert pill(browser, "s007") == "offline" and pill(browser, "s008") == "stalled"

    # 15 s pass; every stream but five speaks again: those five, and only they, are marked stale.
    dashboard.shift[0] = 15.0
    quiet = {"s100", "s101", "s102", "s103", "s104"}
    for i, sid in enumerate(ids):
        if sid not in quiet:
            pub.send("prediction", prediction(sid, GENRES[i % 10], 0.8, t=1.0))
    pub.close()
    spoke = [s for s in ids if s not in quiet | {"s007", "s008"}]
    # wait for every stream's news, not only the quiet ones': a loaded machine shows the 195 windows later
    wait_for(browser, "the quiet streams marked stalled and the others online",
             lambda d: all(pill(d, s) == "stalled" for s in quiet) and all(pill(d, s) == "online" for s in spoke))
    now = cards(browser)
    ages = {s: int(re.search(r"last message (\d+) s ago", text).group(1)) for s, text in now.items()}
    assert all(15 <= ages[s] <= 15 + WAIT_S for s in quiet)  # the clock moved 15 s past their last message
    assert all(ages[s] < 15 for s in spoke)
    browser.save_screenshot(str(tmp_path / "dashboard-200.png"))

    type_search(browser, "rock")  # the genre of every tenth stream
    wait_for(browser, "only the rock streams", lambda d: set(cards(d)) == {s for i, s in enumerate(ids) if i % 10 == 9})
    assert browser.find_element(By.ID, "shown").text == "showing 20 of 200"
    type_search(browser, "stalled")
    wait_for(browser, "only the stalled streams", lambda d: set(cards(d)) == quiet | {"s008"})
    type_search(browser, "")
    wait_for(browser, "every stream again", lambda d: len(cards(d)) == N)

    # three streams change genre: only their cards are sent (a patch, see test_dashboard_render), and the page
    # shows the change on just those
    pub = Publisher(broker)
    moved = {"s010": "metal", "s020": "jazz", "s031": "pop"}
    for sid, new_genre in moved.items():
        pub.send("prediction", prediction(sid, new_genre, 0.9, t=2.0))
    pub.close()
    wait_for(browser, "the three new genres on their cards",
             lambda d: all(headlines(d)[sid] == g for sid, g in moved.items()))
    assert headlines(browser) == {sid: moved.get(sid, GENRES[i % 10]) for i, sid in enumerate(ids)}

    browser.find_element(By.CSS_SELECTOR, "#order").click()
    browser.find_element(By.XPATH, "//*[@role='option' and normalize-space()='by state']").click()

    def groups(d) -> list[str]:
        return d.execute_script("return Array.from(document.querySelectorAll('#overview .group'), g => g.innerText)")

    wait_for(browser, "the streams grouped by state",
             lambda d: groups(d) == ["offline (1)", f"online ({N - 7})", "stalled (6)"])
    order = browser.execute_script(
        "return Array.from(document.querySelectorAll('#overview .card'), c => c.dataset.stream)")
    assert order[0] == "s007" and set(order[-6:]) == quiet | {"s008"}
    browser.save_screenshot(str(tmp_path / "dashboard-200-by-state.png"))
