"""The dashboard in headless Chromium, fed through a real Mosquitto by a real paho publisher.

Waits are generous and assert what the page shows, never how fast it shows it.
"""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime, timedelta

import pytest
from dashboard_page import WAIT_S, Publisher, serve_dashboard, start_chromium, wait_for
from dashboard_payloads import genre, prediction, status
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver import ActionChains
from selenium.webdriver.common.by import By

HOSTILE = "<img src=x onerror=alert(1)>"  # a legal topic level; must show as text, never become an element


@pytest.fixture
def dashboard(broker, model):
    with serve_dashboard(broker, model) as page:
        yield page


TOKEN = "page-token-0123456789abcdef"


@pytest.fixture
def publisher(broker):
    pub = Publisher(broker)
    yield pub
    pub.close()


def card_text(driver, stream_id: str) -> str:
    for card in driver.find_elements(By.CSS_SELECTOR, ".card"):
        try:
            if card.get_attribute("data-stream") == stream_id:
                return card.text
        except StaleElementReferenceException:  # the page redraws its cards every tick
            return ""
    return ""


def wait_card(driver, stream_id: str, *words: str) -> None:
    wait_for(driver, f"{words} in the card of {stream_id!r}",
             lambda d: all(w in card_text(d, stream_id) for w in words))


def count(driver, css: str) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, css))


def band_lengths(driver) -> list[int]:
    """How many windows each band of the page's timeline holds."""
    return driver.execute_script(
        "const g = document.querySelector('#timeline .js-plotly-plot');"
        "return g && g.data ? g.data.map(t => t.x.length) : [];")


def chips(driver, stream_id: str) -> list[str]:
    return driver.execute_script(
        "const card = [...document.querySelectorAll('#overview .card')].find(c => c.dataset.stream === arguments[0]);"
        "return card ? [...card.querySelectorAll('.chip')].map(c => c.textContent) : null;", stream_id)


def shaded(driver) -> dict[str, int]:
    """How many windows of the page's timeline each shaded state covers."""
    return driver.execute_script(
        "const g = document.querySelector('#timeline .js-plotly-plot');"
        "const out = {}; (g && g.data ? g.data : []).filter(t => t.fill === 'tozeroy')"
        ".forEach(t => { out[t.name] = t.y.filter(y => y === 1).length; }); return out;")


def header_text(driver) -> str:
    try:
        return driver.find_element(By.ID, "header").text
    except StaleElementReferenceException:
        return ""


def test_streams_live_updates_offline_and_safe_text(browser, dashboard, publisher, tmp_path):
    publisher.send("status", status("kitchen"), retain=True)
    publisher.send("genre", genre("kitchen", "rock"), retain=True)  # retained: on the page before any window
    publisher.send("status", status("garage"), retain=True)
    publisher.send("prediction", prediction("garage", "jazz", 0.81))

    browser.set_window_size(1280, 1000)
    browser.get(dashboard.url)
    wait_card(browser, "kitchen", "rock", "online", "model gtzan-cnn-1")
    wait_card(browser, "garage", "jazz", "online", "81%")
    assert "provisional" not in card_text(browser, "garage")
    publisher.send("prediction", {**prediction("kitchen", "rock", 0.9), "provisional": True})
    wait_card(browser, "kitchen", "rock", "provisional")  # a first guess on the audio so far
    wait_for(browser, "broker connected", lambda d: "broker connected" in header_text(d))

    # a new window changes what is shown, in the card and in the selected stream's bar chart
    for t in range(8):
        publisher.send("prediction", prediction("kitchen", "metal", 0.55 + 0.05 * t, t=float(t)))
    wait_card(browser, "kitchen", "metal", "90%")
    assert "provisional" not in card_text(browser, "kitchen")  # full windows since
    browser.find_element(By.CSS_SELECTOR, "#stream-select").click()
    browser.find_element(By.XPATH, "//*[@role='option' and normalize-space()='kitchen']").click()
    wait_for(browser, "kitchen's latest window in the facts line",
             lambda d: "stream kitchen" in d.find_element(By.ID, "facts").text
             and "top metal 90%" in d.find_element(By.ID, "facts").text)
    wait_for(browser, "ten probability bars", lambda d: count(d, "#probabilities .point") == 10)
    # a click on a card selects its stream too (it did nothing: only the picker did), and so do Enter and Space
    # (found and clicked in one script: the cards are redrawn as their ages tick, so a found element can go stale)
    browser.execute_script("document.querySelector('#overview .card[data-stream=\"garage\"] .headline').click()")
    wait_for(browser, "garage selected by its card",
             lambda d: "stream garage" in d.find_element(By.ID, "facts").text
             and "selected" in d.find_element(By.CSS_SELECTOR, '.card[data-stream="garage"]').get_attribute("class"))
    browser.execute_script("document.querySelector('#overview .card[data-stream=\"kitchen\"]').dispatchEvent("
                           "new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}))")
    wait_for(browser, "kitchen selected again, from the keyboard",
             lambda d: "stream kitchen" in d.find_element(By.ID, "facts").text)
    wait_for(browser, "ten timeline bands and the three shaded states",
             lambda d: count(d, "#timeline .scatterlayer .trace") == 13)
    # the selected stream's next windows reach its timeline (appended to the bands the page holds)
    before = band_lengths(browser)
    start = datetime.now(UTC)
    for t in range(8, 11):  # a second apart and after every window before: an append, never a redraw
        window = prediction("kitchen", "metal", 0.9, t=float(t))
        window["time"] = (start + timedelta(seconds=t)).isoformat().replace("+00:00", "Z")
        publisher.send("prediction", window)
    wait_for(browser, "three more windows in every timeline band",
             lambda d: band_lengths(d) == [before[0] + 3] * 13)

    # the card shows the latest window's tags as chips; periods without a genre are shaded on the timeline
    window = prediction("kitchen", "metal", 0.9, t=11.0, music=0.95, tags={"heavy metal": 0.8, "80s": 0.35})
    window["time"] = (start + timedelta(seconds=11)).isoformat().replace("+00:00", "Z")
    publisher.send("prediction", window)
    wait_for(browser, "the tags as chips on kitchen's card, likeliest first",
             lambda d: chips(d, "kitchen") == ["heavy metal", "80s"])
    for t, kind in ((12, "no_music"), (13, "no_music"), (14, "silence"), (15, "uncertain")):
        window = prediction("kitchen", "metal", 0.3, kind=kind, t=float(t), music=0.1 if kind == "no_music" else 0.9)
        window["time"] = (start + timedelta(seconds=t)).isoformat().replace("+00:00", "Z")
        publisher.send("prediction", window)
    wait_for(browser, "the no_music, silent and uncertain windows shaded",
             lambda d: shaded(d) == {"no_music": 2, "silence": 1, "uncertain": 1})
    wait_for(browser, "a legend naming the shaded states", lambda d: {"no_music", "silence", "uncertain"} <= set(
        e.text for e in d.find_elements(By.CSS_SELECTOR, "#timeline .legendtext")))
    wait_card(browser, "kitchen", "uncertain")
    assert chips(browser, "kitchen") == []  # that window came without tags: no chips

    # an offline status is shown as offline; the other stream is unaffected
    publisher.send("status", status("garage", "offline", reason="stopped"), retain=True)
    wait_card(browser, "garage", "offline")
    wait_card(browser, "kitchen", "online")

    # a stream id and a genre full of markup are shown as text; bad payloads are counted, not shown
    publisher.send("status", status(HOSTILE), retain=True)
    publisher.send("prediction", prediction(HOSTILE, "<b>polka</b>", 0.9))
    publisher.send("prediction", b"{not json", stream_id="kitchen")
    wait_card(browser, HOSTILE, "<b>polka</b>")
    wait_for(browser, "the bad message counted", lambda d: "1 bad message(s) ignored" in header_text(d))
    assert not browser.find_elements(By.CSS_SELECTOR, "img, b"), "payload text became markup"

    browser.save_screenshot(str(tmp_path / "dashboard-wide.png"))
    browser.set_window_size(420, 1400)  # a phone-sized window: one column, nothing wider than the screen
    wait_for(browser, "the page fitting a narrow window",
             lambda d: d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"))
    browser.save_screenshot(str(tmp_path / "dashboard-narrow.png"))

    # everything the page loaded came from the dashboard itself: no CDN, no fonts from elsewhere
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith(dashboard.url) for r in resources), resources


def test_broker_outage_is_shown_and_recovered(browser, dashboard, broker, tmp_path):
    pub = Publisher(broker)
    pub.send("status", status("kitchen"), retain=True)
    pub.send("prediction", prediction("kitchen", "blues", 0.7))
    pub.close()
    browser.set_window_size(1280, 1000)
    browser.get(dashboard.url)
    wait_card(browser, "kitchen", "blues")
    wait_for(browser, "broker connected", lambda d: "broker connected" in header_text(d))

    broker.stop()
    wait_for(browser, "broker disconnected", lambda d: "broker disconnected" in header_text(d))
    wait_card(browser, "kitchen", "blues")  # the last data stays on the page during an outage
    browser.save_screenshot(str(tmp_path / "dashboard-disconnected.png"))

    broker.start()  # same port; the retained status is gone (no persistence), the stream stays known
    wait_for(browser, "broker connected again", lambda d: "broker connected" in header_text(d))
    pub = Publisher(broker)
    pub.send("prediction", prediction("kitchen", "reggae", 0.66, t=5.0))
    pub.close()
    wait_card(browser, "kitchen", "reggae")



def test_check_a_file(browser, dashboard, tmp_path):
    """Upload through the page's file input: a tone the tiny model hears as 'metal', then a file that is not audio."""
    import numpy as np
    import soundfile as sf
    from tiny_model import GTZAN_GENRES, tone_hz

    metal = GTZAN_GENRES.index("metal")
    t = np.arange(6 * 22050) / 22050
    sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * tone_hz(metal) * t), 22050)
    (tmp_path / "notes.wav").write_text("not audio at all")

    browser.set_window_size(1280, 1400)
    browser.get(dashboard.url)
    wait_for(browser, "the upload field", lambda d: count(d, "#upload input[type=file]") == 1)
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(tmp_path / "tone.wav"))
    result = lambda d: d.find_element(By.ID, "file-result").text  # noqa: E731
    wait_for(browser, "the file's genre", lambda d: "metal" in result(d) and "tone.wav" in result(d))
    wait_for(browser, "the file's timeline", lambda d: count(d, "#file-result .scatterlayer .trace") == 13)
    assert browser.find_element(By.ID, "file-player-box").is_displayed()  # and its player
    browser.save_screenshot(str(tmp_path / "dashboard-file.png"))

    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(tmp_path / "notes.wav"))
    wait_for(browser, "an error for a file that is not audio",
             lambda d: "notes.wav: not a readable audio file" in result(d) and count(d, "#file-result .error") == 1)
    assert not browser.find_element(By.ID, "file-player-box").is_displayed()  # nothing to play


def test_with_a_token_the_page_asks_for_it_once(browser, broker, model, publisher):
    """The login form in a real browser: a wrong token is refused, the right one sets the session cookie, and
    every callback of the page works with it (the cards fill), until logging out."""
    from genrecast.daemon.config import ApiSettings

    token = TOKEN
    with serve_dashboard(broker, model, api=ApiSettings(token=token)) as page:
        publisher.send("status", status("kitchen"), retain=True)
        publisher.send("genre", genre("kitchen", "rock"), retain=True)
        browser.get(page.url)
        wait_for(browser, "the login form", lambda d: d.current_url.endswith("/login") and count(d, "#token"))
        browser.find_element(By.ID, "token").send_keys("wrong-" + token)
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        wait_for(browser, "the wrong token refused", lambda d: "wrong token" in d.page_source)
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        wait_card(browser, "kitchen", "rock", "online")
        cookie = browser.get_cookie("genrecast_session")
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
        browser.find_element(By.CSS_SELECTOR, "button.logout").click()
        wait_for(browser, "the login form again", lambda d: d.current_url.endswith("/login") and count(d, "#token"))
        assert browser.get_cookie("genrecast_session") is None


def test_a_login_from_another_machine_over_plain_http(broker, model, publisher, tmp_path):
    """``http://kitchen-pi:8050`` from a laptop, as docs/api.md shows: Chromium sends no ``Sec-Fetch-Site`` to a
    plain-HTTP origin that is not loopback, and under ``Referrer-Policy: no-referrer`` its same-origin form POST said
    ``Origin: null``, which the guard refused (403 for the login and the logout). Chromium judges an origin by its
    name, so a name mapped to 127.0.0.1 inside it is such an origin here."""
    from genrecast.daemon.config import ApiSettings

    driver = start_chromium(tmp_path / "profile", "--host-resolver-rules=MAP kitchen-pi 127.0.0.1")
    try:
        with serve_dashboard(broker, model, api=ApiSettings(token=TOKEN), allow_hosts=("kitchen-pi",)) as page:
            log_in(driver, page.url.replace("127.0.0.1", "kitchen-pi"), publisher)
            assert driver.get_cookie("genrecast_session")["secure"] is False  # plain HTTP: it could not come back
            driver.find_element(By.CSS_SELECTOR, "button.logout").click()
            wait_for(driver, "the login form again",
                     lambda d: d.current_url.endswith("/login") and count(d, "#token"))
            assert driver.get_cookie("genrecast_session") is None
    finally:
        driver.quit()


def log_in(driver, url: str, publisher) -> None:
    """A stream on the broker, the page opened at ``url`` and the token given in its login form: its card fills."""
    publisher.send("status", status("kitchen"), retain=True)
    publisher.send("genre", genre("kitchen", "rock"), retain=True)
    driver.get(url)
    wait_for(driver, "the login form", lambda d: d.current_url.endswith("/login") and count(d, "#token"))
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_card(driver, "kitchen", "rock", "online")


def test_a_page_whose_server_stopped_answering_says_it_is_not_current(browser, broker, model, publisher):
    """The ages and pills are the server's: with the dashboard's server gone the page froze while it still said
    "broker connected" and "0 s ago". Now it is greyed under a banner saying since when nothing is current."""
    with serve_dashboard(broker, model) as page:
        publisher.send("status", status("kitchen"), retain=True)
        publisher.send("genre", genre("kitchen", "rock"), retain=True)
        browser.get(page.url)
        wait_card(browser, "kitchen", "rock", "online")
        assert not browser.execute_script("return document.body.classList.contains('stale')")
        page.server.shutdown()
        wait_for(browser, "the page saying it is not current",
                 lambda d: d.execute_script("const b = document.getElementById('page-stale');"
                                            "return b && !b.hidden && document.body.classList.contains('stale')"
                                            " && b.textContent.startsWith('Not current: the dashboard')"))


def test_a_page_whose_session_ended_goes_to_the_login_form(browser, broker, model, publisher):
    """Logged out in another tab (or its session ended otherwise), the page's callbacks got 401 twice a second and
    the page went on showing the last data as live. Now it goes to the login form."""
    import urllib.request

    from genrecast.daemon.config import ApiSettings

    with serve_dashboard(broker, model, api=ApiSettings(token=TOKEN)) as page:
        log_in(browser, page.url, publisher)
        cookie = browser.get_cookie("genrecast_session")
        other_tab = urllib.request.Request(page.url + "logout", method="POST", data=b"",
                                           headers={"Cookie": f"genrecast_session={cookie['value']}"})
        with contextlib.suppress(urllib.error.HTTPError):  # its redirect to the login form is not followed here
            urllib.request.urlopen(other_tab, timeout=WAIT_S).close()
        wait_for(browser, "the login form once the session ended",
                 lambda d: d.current_url.endswith("/login") and count(d, "#token"))


def test_a_page_slower_than_its_tick_still_draws_the_selected_stream(browser, broker, model, publisher):
    """With 1,000 streams on a busy machine, each answer to the page came back after the next half-second tick had
    asked again, and Dash drops an answer a newer request has overtaken: the selected stream's panel never drew.
    Answers held back 1 s here stand for that; the page now ticks no faster than its answers come back."""
    with serve_dashboard(broker, model, callback_delay_s=1.0) as page:
        publisher.send("status", status("kitchen"), retain=True)
        publisher.send("prediction", prediction("kitchen", "metal", 0.9))
        browser.get(page.url)
        wait_for(browser, "the selected stream's facts",
                 lambda d: "stream kitchen" in d.find_element(By.ID, "facts").text)
        assert int(browser.execute_script("return document.body.dataset.tickMs")) >= 2000  # a chain of two 1-s answers

def test_a_file_over_the_limit_is_refused_in_words(browser, dashboard, tmp_path):
    """dcc.Upload refuses a file over its max_size in the browser, and the upload's callback never hears of it: a
    26 MB file dropped on the page did nothing, and an earlier file's result stayed (and its player, once hidden,
    played on)."""
    from daemon_helpers import write_tones

    big = tmp_path / "big.wav"
    with big.open("wb") as f:
        f.truncate(22_000_000)  # 20.98 MiB: rounded down, it read "20 MiB is over the page's 20 MiB limit"
    browser.get(dashboard.url)
    wait_for(browser, "the upload field", lambda d: count(d, "#upload input[type=file]") == 1)
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(write_tones(tmp_path / "ok.wav",
                                                                                                 [6] * 20)))
    wait_for(browser, "the earlier file in its player", lambda d: d.execute_script(
        "const a = document.getElementById('file-player'); a.muted = true;"
        "return !document.getElementById('file-player-box').hidden && a.readyState >= 1;"))
    player = browser.find_element(By.ID, "file-player")  # its play button: a page may not play without a gesture
    ActionChains(browser).move_to_element_with_offset(player, -player.size["width"] // 2 + 16, 0).click().perform()
    wait_for(browser, "the earlier file playing", lambda d: not d.execute_script(
        "return document.getElementById('file-player').paused"))
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(big))
    wait_for(browser, "the refusal", lambda d: count(d, "#file-result .error") == 1 and d.find_element(
        By.ID, "file-result").text == f"big.wav: {math.ceil(big.stat().st_size * 10 / 2**20) / 10:.1f} MiB is over "
                                      "the page's 20 MiB limit")
    assert browser.execute_script("return document.getElementById('file-player').paused")

def test_long_labels_do_not_stretch_a_card(browser, dashboard, publisher):
    """A publisher's 200-character labels stretched a card to 15 lines; now it is as tall as any other."""
    long_genre = "a" * 200
    publisher.send("status", status("short"), retain=True)
    publisher.send("prediction", prediction("short", "jazz", 0.8))
    publisher.send("status", status("long"), retain=True)
    payload = prediction("long", "jazz", 0.8)
    payload["probabilities"] = {long_genre: 0.8, "b" * 200: 0.2}
    payload["top"]["genre"] = payload["state"]["genre"] = long_genre
    publisher.send("prediction", payload)
    browser.get(dashboard.url)
    wait_card(browser, "short", "jazz")
    wait_card(browser, "long", "aaaa")
    heights = browser.execute_script(  # the content's height: cards in one grid row are stretched alike
        "const h = {}; document.querySelectorAll('#overview .card').forEach(c => h[c.dataset.stream] = "
        "Array.from(c.children).reduce((sum, e) => sum + e.offsetHeight, 0)); return h;")
    assert heights["long"] <= heights["short"] + 2, heights


def test_the_checked_file_plays_and_the_readout_follows_the_window_under_the_cursor(browser, broker, tmp_path):
    """Metal for 6 s, then jazz: play it, seek in it, and the genre and tags shown are the window's under the cursor
    (the newest window started by then: window k of a 1-s hop starts at k s)."""
    from daemon_helpers import write_tones
    from tiny_model import build_tiny_model, tagged_spec

    tagged = build_tiny_model(tmp_path / "tagged.onnx", tagged_spec())
    wav = write_tones(tmp_path / "metal-then-jazz.wav", [6] * 6 + [5] * 6)
    with serve_dashboard(broker, tagged) as page:
        browser.set_window_size(1280, 1400)
        browser.get(page.url)
        wait_for(browser, "the upload field", lambda d: count(d, "#upload input[type=file]") == 1)
        browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(wav))
        wait_for(browser, "the player with the file loaded", lambda d: d.execute_script(
            "const a = document.getElementById('file-player');"
            "return a && !document.getElementById('file-player-box').hidden && a.readyState >= 1;"))
        wait_for(browser, "the first window in the readout", lambda d: readout(d)["window"] == "0")

        for at, window, genre, tag in ((1.5, "1", "metal", "heavy metal"), (8.2, "8", "jazz", "jazz"),
                                       (3.5, "3", "metal", "heavy metal")):
            browser.execute_script("document.getElementById('file-player').currentTime = arguments[0];", at)
            wait_for(browser, f"window {window} ({genre}) under the cursor at {at} s",
                     lambda d, at=at, window=window: readout(d)["window"] == window
                     and abs(readout(d)["time"] - at) < 0.01)
            shown = readout(browser)
            assert shown["genre"] == genre and shown["chips"][0] == tag, shown
            assert f"window {int(window)}.0–{int(window) + 3}.0 s" in shown["text"]  # starts 0.998 s apart
            # the daemon's state then, by its genre: it read "stream state genre", the same for metal and jazz
            state = browser.execute_script("return JSON.parse(document.getElementById('file-windows')"
                                           ".dataset.windows)[arguments[0]].state;", int(window))
            assert f"stream state: {state}" in shown["text"] and (state == "metal" or window == "8"), shown
            # the timeline's cursor moved there too, once the timeline is drawn (CI under load: still at 0 s)
            wait_for(browser, f"the timeline's cursor at {at} s", lambda d, at=at: cursor(d) == pytest.approx(at,
                                                                                                          abs=1e-3))

        # back to the start, then play as a user does, with the player's own play button (a page may not start
        # playing without a gesture), and watch the readout move on by itself
        browser.execute_script("const a = document.getElementById('file-player'); a.muted = true; a.currentTime = 0;")
        wait_for(browser, "the readout back at the start", lambda d: readout(d)["window"] == "0")
        player = browser.find_element(By.ID, "file-player")
        ActionChains(browser).move_to_element_with_offset(player, -player.size["width"] // 2 + 16, 0).click().perform()
        wait_for(browser, "the readout following the playing file past 2 s",
                 lambda d: readout(d)["time"] >= 2.0 and readout(d)["window"] in ("2", "3", "4"))
        browser.execute_script("document.getElementById('file-player').pause();")
        shown = readout(browser)
        starts = [w["start"] for w in browser.execute_script(
            "return JSON.parse(document.getElementById('file-windows').dataset.windows);")]
        under = max(i for i, s in enumerate(starts) if s <= shown["time"])
        assert shown["window"] == str(under)  # the window under the cursor, not another
        assert shown["genre"] == "metal" and cursor(browser) == pytest.approx(shown["time"], abs=1e-3)
        browser.save_screenshot(str(tmp_path / "dashboard-player.png"))


def readout(driver) -> dict:
    return driver.execute_script(
        "const r = document.getElementById('file-cursor'); if (!r) { return {}; }"
        "const g = r.querySelector('.cursor-genre');"
        "return {window: r.dataset.window, time: r.dataset.time === undefined ? -1 : parseFloat(r.dataset.time),"
        " genre: g ? g.textContent : null, text: r.textContent,"
        " chips: [...r.querySelectorAll('.chip')].map(c => c.textContent)};")


def cursor(driver) -> float | None:
    return driver.execute_script(
        "const g = document.querySelector('#file-timeline .js-plotly-plot');"
        "return g && g.layout.shapes ? g.layout.shapes[0].x0 : null;")
