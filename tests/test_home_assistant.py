"""genrecast as Home Assistant users see it: a real HA core (2025.4.4), a real Mosquitto, the daemon's discovery.

One Home Assistant for the module, onboarded through its REST API and given the MQTT integration through its
config-flow API, as a new user would. Each test drives daemons with their own stream ids and reads the result
through ``/api/states``, the registries, the ``state_changed`` events Home Assistant sends and its log.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from conftest import MosquittoBroker
from daemon_helpers import WAIT, Daemon, write_tones
from genrecast.dsp import GTZAN_GENRES
from ha_harness import HomeAssistant, ha_venv
from tcp_relay import TcpRelay
from tiny_model import build_tiny_model, tiny_spec

from genrecast import __version__

HIPHOP, JAZZ = GTZAN_GENRES.index("hiphop"), GTZAN_GENRES.index("jazz")
REFRESH = 2  # seconds between republished states: Home Assistant expires them after 3 (6 s)
OPTIONS = [*GTZAN_GENRES, "uncertain", "no_music", "silence"]
OUTAGE_SECONDS = 16  # long enough for the old 30-s backoff to show (its tries: 1, 3, 7, 15, 31 s after the loss)
BACK_WITHIN = 10  # seconds after the network's return: the 5-s backoff cap and slack for a loaded machine (15 before)


@pytest.fixture(scope="module")
def ha_broker(tmp_path_factory):
    b = MosquittoBroker(tmp_path_factory.mktemp("ha-broker"))
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def ha(ha_broker, tmp_path_factory):
    home = HomeAssistant(ha_venv(), tmp_path_factory.mktemp("ha"))
    home.start()
    try:
        home.onboard()
        home.add_mqtt(ha_broker.host, ha_broker.port)
        yield home
    finally:
        home.stop()
    assert not our_warnings(home.log)


@pytest.fixture(scope="module")
def music_model(tmp_path_factory):
    """The tiny test model with a music head: a tone is music (its label), white noise is not."""
    return build_tiny_model(tmp_path_factory.mktemp("music-model") / "music.onnx", tiny_spec(music_threshold=0.5))


# Home Assistant's own line when an emptied device config reaches it after it has forgotten the device: deleting a
# device on its page empties the config, and whether Home Assistant's removal or that message comes first is a race
# inside Home Assistant (test_a_device_deleted_in_home_assistant_comes_back_at_its_next_birth_message). No payload
# of ours makes it: the daemon never empties a device config.
HOME_ASSISTANTS_DELETE = re.compile(r"No device components to cleanup for \w+, node_id 'genrecast'")


def our_warnings(log: str) -> list[str]:
    """Home Assistant's warnings and errors that mention our topics, devices or payloads."""
    lines = [line for line in log.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]
    return [line for line in lines if re.search(r"genrecast|homeassistant/device|_daemon", line, re.I)
            and not HOME_ASSISTANTS_DELETE.search(line)]


STARTED: list[Daemon] = []


@pytest.fixture(autouse=True)
def no_daemon_left():
    """A test that failed half-way leaves no daemon behind to publish into the next one."""
    yield
    while STARTED:
        d = STARTED.pop()
        if d.proc.poll() is None:
            d.proc.kill()
            d.finish()


def daemon(broker_url: str, model, *args: str, stdin=subprocess.DEVNULL, refresh: float = REFRESH) -> Daemon:
    d = Daemon(*args, "--model", str(model), "--broker", broker_url, "--ha-discovery", "--refresh", str(refresh),
               stdin=stdin)
    STARTED.append(d)
    return d


def stop(d: Daemon, how: int = signal.SIGTERM) -> None:
    d.signal(how)
    d.finish()


def entity(ha: HomeAssistant, unique_id: str) -> str:
    """The entity id Home Assistant gave the entity with ``unique_id``, once it has it."""
    return ha.entity(unique_id)


def showing(ha: HomeAssistant, entity_id: str, state: str, since: int = 0):
    return ha.wait_for(lambda c: c.entity_id == entity_id and c.state == state, f"{entity_id} = {state}", since)


def pcm(labels, seconds_each: float = 1.0) -> bytes:
    """Raw s16le mono 22050 Hz: a tone per label (``"noise"``: white noise), as ``write_tones`` makes them."""
    import soundfile as sf

    path = write_tones(_scratch(), labels, seconds_each)
    return (sf.read(str(path), dtype="float32")[0] * 32767).astype(np.int16).tobytes()


def _scratch():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp()) / "pcm.wav"


def test_devices_entities_options_values_and_availability(ha, ha_broker, music_model, tmp_path):
    # hiphop with a second of jazz every 4: the state stays hiphop, its confidence moves with every window
    kitchen = write_tones(tmp_path / "kitchen.wav", [HIPHOP, HIPHOP, HIPHOP, JAZZ] * 8)
    hall = write_tones(tmp_path / "hall.wav", ["noise"] * 30)
    config = tmp_path / "den.toml"
    config.write_text(f'name = "den"\nloop = true\ndashboard_url = "http://127.0.0.1:8050/"\n\n'
                      f'[streams.kitchen]\nsource = "file:{kitchen}"\narea = "Kitchen"\n\n'
                      f'[streams.hall]\nsource = "file:{hall}"\n')
    d = daemon(ha_broker.url, music_model, "--config", str(config))
    try:
        uid = "genrecast/genrecast/{}/{}".format
        genre, hall_genre = entity(ha, uid("kitchen", "genre")), entity(ha, uid("hall", "genre"))
        showing(ha, genre, "hiphop")
        showing(ha, hall_genre, "no_music")
        ids = ha.entity_ids()
        g = ha.state(genre)
        assert g["attributes"]["device_class"] == "enum" and g["attributes"]["options"] == OPTIONS
        # lean attributes: when the state began, and whether it is still the first answer, from the provisional
        # windows of the stream's first seconds (files here are paced in real time); no version, time, kind or genre
        # repeating the state
        assert set(g["attributes"]) - {"options", "device_class", "friendly_name", "icon"} == {"since", "provisional"}
        held = ha.wait_for(lambda c: c.entity_id == genre and c.state == "hiphop" and not c.attributes["provisional"],
                           "hiphop from the stream's first full window")
        # before it, hiphop as a first answer with the same since (unless Home Assistant subscribed too late to see it)
        early = [c.attributes for c in ha.changes[:ha.changes.index(held)] if c.entity_id == genre
                 and c.state == "hiphop"]
        assert all(a["provisional"] is True and a["since"] == held.attributes["since"] for a in early), early
        assert g["attributes"]["friendly_name"] == "Genrecast Kitchen Genre"
        music = {s: ha.state(ids[uid(s, "music")]) for s in ("kitchen", "hall")}
        assert {s: m["state"] for s, m in music.items()} == {"kitchen": "on", "hall": "off"}
        assert ha.state(ids[uid("hall", "confidence")])["state"] == "unknown"  # a genre's confidence only
        assert music["kitchen"]["attributes"]["device_class"] == "sound"
        status = ha.state(ids[uid("kitchen", "status")])
        assert status["state"] == "online" and status["attributes"]["options"] == ["online", "stalled", "offline"]
        assert status["attributes"]["reason"] is None
        process = ha.state(ids["genrecast/genrecast/_daemon/den/status"])
        assert process["state"] == "online"

        # Confidence is live: it moves on after the genre was announced (the old attribute stayed at that value).
        confidence = ids[uid("kitchen", "confidence")]
        c = ha.state(confidence)
        assert (c["attributes"]["unit_of_measurement"], c["attributes"]["state_class"]) == ("%", "measurement")
        at_change = ha.mark()
        first = ha.state(confidence)["state"]
        assert 0 < float(first) <= 100
        ha.wait_for(lambda ch: ch.entity_id == confidence and re.fullmatch(r"[\d.]+", ch.state or "")
                    and ch.state != first, "a new confidence", at_change)
        assert ha.state(genre)["state"] == "hiphop"

        # Devices: one for the process, one per stream via it, with versions, area and the dashboard's address.
        devices = {tuple(i) for dev in ha.devices() for i in dev["identifiers"]}
        assert ("mqtt", "genrecast/genrecast/_daemon/den") in devices
        by_id = {dev["identifiers"][0][1]: dev for dev in ha.devices() if dev["identifiers"][0][0] == "mqtt"}
        proc_dev, kitchen_dev = by_id["genrecast/genrecast/_daemon/den"], by_id["genrecast/genrecast/kitchen"]
        assert kitchen_dev["via_device_id"] == proc_dev["id"] == by_id["genrecast/genrecast/hall"]["via_device_id"]
        assert kitchen_dev["area_id"] == "kitchen" and kitchen_dev["name"] == "Genrecast Kitchen"
        assert kitchen_dev["sw_version"] == __version__ and kitchen_dev["model"].startswith("tiny-test")
        assert kitchen_dev["configuration_url"] == "http://127.0.0.1:8050/"
        # QoS 1 end to end: Home Assistant subscribed at 1, so what it received came at 1 (at 0 before)
        info = ha.ws("mqtt/device/debug_info", device_id=kitchen_dev["id"])
        received = [m for e in info["entities"] for sub in e["subscriptions"] for m in sub["messages"]]
        assert received and {m["qos"] for m in received} == {1}

        mark = ha.mark()
    finally:
        stop(d)
    # A clean stop: the process's status says why; the streams' entities are unavailable.
    showing(ha, genre, "unavailable", mark)
    reason = ha.wait_for(lambda ch: ch.entity_id == ids["genrecast/genrecast/_daemon/den/status"]
                         and ch.state == "offline", "the process offline", mark)
    assert reason.attributes["reason"] == "stopped"
    assert not our_warnings(ha.log)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["restart", "kill-9"])
def test_a_new_process_never_shows_the_old_genre_as_current(ha, ha_broker, model, tmp_path, how):
    """Before: the new process's ``online`` came with the old retained genre, shown as current for seconds."""
    name = f"radio{how}"
    first = daemon(ha_broker.url, model, "--source", f"file:{write_tones(tmp_path / 'a.wav', [HIPHOP] * 8)}",
                   "--loop", "--stream-id", name)
    genre = entity(ha, f"genrecast/genrecast/{name}/genre")
    showing(ha, genre, "hiphop")
    mark = ha.mark()
    stop(first, how)
    showing(ha, genre, "unavailable", mark)  # a clean goodbye, or the broker's will after kill -9
    second = daemon(ha_broker.url, model, "--source", f"file:{write_tones(tmp_path / 'b.wav', [JAZZ] * 8)}",
                    "--loop", "--stream-id", name)
    try:
        showing(ha, genre, "jazz", mark)
    finally:
        stop(second)
    shown = ha.history(genre, mark)
    assert "hiphop" not in shown, shown
    # "not yet known" until the first decision: unknown, which the usual not_from guard of a trigger names (it
    # was "uncertain", and a "to: jazz" trigger fired after every restart)
    assert shown[shown.index("jazz") - 1] == "unknown"
    assert not our_warnings(ha.log)


def test_the_docs_genre_changed_automation_fires_once_per_change_of_genre(ha, ha_broker, model, tmp_path):
    """docs/mqtt.md's "whenever the genre changes" automation, run in Home Assistant on a stream that changes genre
    once and then ends. Its trigger had only ``not_from``, so it also fired when the entity was first created and
    when the stream went unavailable: at every stop, restart, stall or broker restart."""
    from conftest import ROOT

    docs = (ROOT / "docs" / "mqtt.md").read_text()
    docs_one = re.search(r"^- id: genrecast_kitchen_genre_changed\n.*?(?=^- id: |^```)", docs, re.S | re.M)
    assert docs_one, "docs/mqtt.md has no genrecast_kitchen_genre_changed automation"
    alias = re.search(r'alias: "(.*?)"', docs_one.group(0)).group(1)
    barrier = "- id: genrecast_test_barrier\n  alias: barrier\n  triggers: []\n  actions: []\n"
    mark = ha.mark()
    ha.automations(docs_one.group(0).replace("sensor.genrecast_kitchen_genre", "sensor.genrecast_changer_genre")
                   + barrier)
    d = daemon(ha_broker.url, model, "--source",
               f"file:{write_tones(tmp_path / 'c.wav', [HIPHOP] * 8 + [JAZZ] * 8)}", "--stream-id", "changer")
    try:
        genre = entity(ha, "genrecast/genrecast/changer/genre")
        assert genre == "sensor.genrecast_changer_genre"
        jazz = showing(ha, genre, "jazz", mark)
        ha.wait_for(lambda c: c.entity_id == genre and c.state == "unavailable" and c.at > jazz.at,
                    "the Genre unavailable at the file's end", mark)
        d.finish()
    finally:
        stop(d)
    ran = ha.mark()
    ha.post("/api/services/automation/trigger", {"entity_id": "automation.barrier"})
    ha.wait_for(lambda c: c.entity_id == "automation.barrier" and c.attributes.get("last_triggered"),
                "the barrier automation's run", ran)  # every run the states before it started has started
    shown = ha.history(genre, mark)
    assert shown[-3:] == ["hiphop", "jazz", "unavailable"] and "unavailable" in shown[:-3], shown
    assert len(ha.fired(alias, mark)) == 1, shown  # hiphop -> jazz, and neither end's unavailable
    assert not our_warnings(ha.log)


def test_status_entities_tell_a_stall_an_ended_source_and_a_crash_apart(ha, ha_broker, model, tmp_path):
    """Before, all three were just "unavailable"."""
    d = daemon(ha_broker.url, model, "--stream", "pipe=stdin", "--stream",
               f"short=file:{write_tones(tmp_path / 's.wav', [JAZZ] * 4)}", "--stall", "1", "--name", "trio",
               stdin=subprocess.PIPE)  # the pipe stays open and silent
    ids = {name: entity(ha, f"genrecast/genrecast/{name}/status") for name in ("pipe", "short")}
    process = entity(ha, "genrecast/genrecast/_daemon/trio/status")
    try:
        stalled = showing(ha, ids["pipe"], "stalled")
        assert stalled.attributes["reason"] == "no audio for 1 s"
        ended = showing(ha, ids["short"], "offline")
        assert ended.attributes["reason"] == "end of stream"
        assert ha.state(process)["state"] == "online"
        mark = ha.mark()
    finally:
        stop(d, signal.SIGKILL)
    crashed = showing(ha, process, "offline", mark)
    assert crashed.attributes["reason"] == "connection lost"
    assert not our_warnings(ha.log)


def test_two_prefixes_do_not_collide(ha, ha_broker, model, tmp_path):
    """Before: the second installation took over the first one's entity, then left it unavailable."""
    ours = daemon(ha_broker.url, model, "--source", f"file:{write_tones(tmp_path / 'a.wav', [HIPHOP] * 8)}",
                  "--loop", "--stream-id", "shared", "--name", "ours")
    theirs = daemon(ha_broker.url, model, "--source", f"file:{write_tones(tmp_path / 'b.wav', [JAZZ] * 8)}",
                    "--loop", "--stream-id", "shared", "--name", "theirs", "--prefix", "other")
    try:
        def shared(genre):
            return lambda c: c.state == genre and c.attributes.get("friendly_name") == "Genrecast Shared Genre"

        mine, other = ha.wait_for(shared("hiphop"), "our hiphop").entity_id, ha.wait_for(shared("jazz"), "their jazz")
        assert mine != other.entity_id, "one entity for both installations"
        mark = ha.mark()
        stop(theirs)
        showing(ha, other.entity_id, "unavailable", mark)
        assert ha.state(mine)["state"] == "hiphop"
        assert mine not in {c.entity_id for c in ha.changes[mark:]}
    finally:
        stop(ours)
    assert not our_warnings(ha.log)


def test_a_device_deleted_in_home_assistant_comes_back_at_its_next_birth_message(ha, ha_broker, model, tmp_path):
    """Deleting a device (its page, *Delete*) empties its retained config. Before, it stayed gone until the daemon
    restarted. Reloading the MQTT integration (as a restart of Home Assistant does) sends Home Assistant's birth
    message, and the running daemon announces the device again."""
    d = daemon(ha_broker.url, model, "--source", f"file:{write_tones(tmp_path / 'a.wav', [HIPHOP] * 8)}",
               "--loop", "--stream-id", "porch")
    try:
        genre = entity(ha, "genrecast/genrecast/porch/genre")
        showing(ha, genre, "hiphop")
        device = next(dev for dev in ha.devices() if dev["name"] == "Genrecast Porch")
        entry = device["config_entries"][0]
        mark = ha.mark()
        ha.ws("config/device_registry/remove_config_entry", device_id=device["id"], config_entry_id=entry)
        ha.wait_for(lambda c: c.entity_id == genre and c.state is None, "the entity removed", mark)
        assert "Genrecast Porch" not in {dev["name"] for dev in ha.devices()}
        mark = ha.mark()
        ha.post(f"/api/config/config_entries/entry/{entry}/reload", {})
        back = ha.wait_for(lambda c: c.state == "hiphop" and c.attributes.get("friendly_name") ==
                           "Genrecast Porch Genre", "the genre entity back", mark)
    finally:
        stop(d)
    assert back.entity_id == genre and "Genrecast Porch" in {dev["name"] for dev in ha.devices()}
    assert "device configs sent again" in d.log
    assert not our_warnings(ha.log)


def test_music_with_no_clear_genre_is_music(ha, ha_broker, music_model, tmp_path):
    """The ten tones in turn, a second each: music, but no genre holds. The Music sensor was unknown for as long as
    that lasted (the template read only the state's kind); once uncertain has held the dwell it is on."""
    wav = write_tones(tmp_path / "medley.wav", list(range(10)) * 4)
    mark = ha.mark()
    d = daemon(ha_broker.url, music_model, "--source", f"file:{wav}", "--stream-id", "medley",
               "--first-confidence", "0")
    try:
        uid = "genrecast/genrecast/medley/{}".format
        genre, music = entity(ha, uid("genre")), entity(ha, uid("music"))
        began = showing(ha, genre, "uncertain", mark).attributes["since"]
        showing(ha, music, "on", mark)
        assert ha.state(genre)["state"] == "uncertain"
        assert ha.state(genre)["attributes"]["since"] == began  # judged music: news, not a new state
        assert not set(ha.history(genre, mark)) & set(GTZAN_GENRES), ha.history(genre, mark)
        assert "on" not in ha.history(music, mark)[:1]  # unknown first: nothing was judged yet
    finally:
        stop(d)


def test_the_music_sensor_goes_off_in_a_pause_and_back_on_without_passing_through_unknown(ha, ha_broker,
                                                                                          music_model):
    """Music, a pause of silence, music again. While the sound after the pause was being judged (the dwell), the
    Music sensor was unknown: off -> unknown -> on at every pause between tracks. It now stays off until then, and
    the Genre stays silence (it showed uncertain, music with no clear genre, and the docs' "say each new genre"
    automation announced it before every track after a silence)."""
    d = daemon(ha_broker.url, music_model, "--source", "stdin", "--stream-id", "pause", "--stall", "600",
               "--first-confidence", "0", stdin=subprocess.PIPE)
    try:
        uid = "genrecast/genrecast/pause/{}".format
        genre, music = entity(ha, uid("genre")), entity(ha, uid("music"))
        d.proc.stdin.buffer.write(pcm([JAZZ] * 10))
        d.proc.stdin.flush()
        showing(ha, music, "on")
        showing(ha, genre, "jazz")  # Home Assistant may change the two entities of one message in either order
        mark = ha.mark()
        d.proc.stdin.buffer.write(pcm([None] * 8 + [HIPHOP] * 10))  # five silent windows: silence
        d.proc.stdin.flush()
        showing(ha, genre, "hiphop", mark)
        showing(ha, music, "on", mark)
        assert ha.history(genre, mark) == ["silence", "hiphop"]  # silence while the hiphop was being judged
        assert ha.history(music, mark) == ["off", "on"]
    finally:
        d.proc.stdin.close()
        d.finish()
    assert not our_warnings(ha.log)


def test_a_stall_is_silence_and_the_genre_before_it_never_comes_back(ha, ha_broker, music_model):
    """A pipe's writer sent jazz and stopped; later another sent hiphop. Home Assistant showed unavailable -> jazz
    (with its old ``since``) -> hiphop, so jazz was current again for music no longer playing, and an automation on
    ``to: jazz`` fired for it. The stall is silence now, from its start, and the docs' "genre changed" automation
    runs for jazz -> silence and silence -> hiphop, never for the way through unavailable."""
    from conftest import ROOT

    docs = (ROOT / "docs" / "mqtt.md").read_text()
    docs_one = re.search(r"^- id: genrecast_kitchen_genre_changed\n.*?(?=^- id: |^```)", docs, re.S | re.M).group(0)
    alias = re.search(r'alias: "(.*?)"', docs_one).group(1)
    # its own id and alias: an automation reloaded under the docs' id keeps the last run of the test before
    ours = docs_one.replace("sensor.genrecast_kitchen_genre", "sensor.genrecast_relay_genre").replace(
        "genrecast_kitchen_genre_changed", "genrecast_relay_genre_changed").replace(alias, f"{alias} (relay)")
    barrier = "- id: genrecast_test_barrier\n  alias: barrier\n  triggers: []\n  actions: []\n"
    mark = ha.mark()
    ha.automations(ours + barrier)
    d = daemon(ha_broker.url, music_model, "--source", "stdin", "--stream-id", "relay", "--stall", "2",
               stdin=subprocess.PIPE)
    try:
        genre, status = entity(ha, "genrecast/genrecast/relay/genre"), entity(ha, "genrecast/genrecast/relay/status")
        d.proc.stdin.buffer.write(pcm([JAZZ] * 8))
        d.proc.stdin.flush()
        jazz = showing(ha, genre, "jazz", mark)
        stalled = ha.wait_for(lambda c: c.entity_id == status and c.state == "stalled" and c.at > jazz.at,
                              "the stream stalled", mark)
        d.proc.stdin.buffer.write(pcm([HIPHOP] * 8))
        d.proc.stdin.flush()
        ha.wait_for(lambda c: c.entity_id == genre and c.state == "hiphop" and c.at > stalled.at, "hiphop", mark)
    finally:
        d.proc.stdin.close()
        d.finish()
    ran = ha.mark()
    ha.post("/api/services/automation/trigger", {"entity_id": "automation.barrier"})
    ha.wait_for(lambda c: c.entity_id == "automation.barrier" and c.attributes.get("last_triggered"),
                "the barrier automation's run", ran)  # every run the states before it started has started
    shown = ha.history(genre, mark)
    after = shown[shown.index("jazz"):]
    around = after[1 : after.index("hiphop")]
    assert "jazz" not in around and around[0] == "silence" and set(around) <= {"silence", "unavailable"}, shown
    assert len(ha.fired(f"{alias} (relay)", mark)) == 2, shown  # jazz -> silence and silence -> hiphop
    assert not our_warnings(ha.log)


def test_after_a_network_outage_the_current_genre_comes_first_and_quickly(ha, ha_broker, music_model):
    """The daemon's link to the broker is cut (the broker and Home Assistant stay up); the music changes meanwhile.

    Before: back 15 s after the network was (backoff up to 30 s), its ``online`` first: the old genre shown as
    current. Now: back within the 5-s backoff cap, the new genre first."""
    relay = TcpRelay(ha_broker.port)
    relay.start()
    # States expire after 30 s here, longer than the outage: what Home Assistant shows on the return is the
    # order the daemon sends in, not an expiry.
    d = daemon(f"mqtt://127.0.0.1:{relay.port}", music_model, "--source", "stdin", "--stream-id", "live",
               "--stall", "600", stdin=subprocess.PIPE, refresh=10)
    try:
        genre = entity(ha, "genrecast/genrecast/live/genre")
        d.proc.stdin.buffer.write(pcm([HIPHOP] * 10))
        d.proc.stdin.flush()
        showing(ha, genre, "hiphop")
        mark = ha.mark()
        relay.cut()
        showing(ha, genre, "unavailable", mark)  # the broker published the process's will
        d.wait_log("lost connection")
        d.proc.stdin.buffer.write(pcm(["noise"] * 10))
        d.proc.stdin.flush()
        d.wait_log("stream live: no_music")
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - ha.changes[mark].at)))  # the outage's length
        back = time.monotonic()
        relay.start()
        delay = relay.wait_connection(back, WAIT) - back
        showing(ha, genre, "no_music", mark)
        print(f"\ndaemon reconnected {delay:.2f} s after the network came back")
        assert delay < BACK_WITHIN, delay
    finally:
        d.proc.stdin.close()
        d.finish()
        relay.cut()
    shown = ha.history(genre, mark)
    assert "hiphop" not in shown, shown  # before: unavailable -> hiphop -> no_music
    assert not our_warnings(ha.log)


def publish_retained(broker: MosquittoBroker, *messages: tuple[str, str]) -> None:
    """Publish ``(topic, payload)`` pairs, retained at QoS 1, as another client than the daemon."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(WAIT)
    client.loop_stop()
    client.disconnect()


def probe(ha: HomeAssistant, broker: MosquittoBroker, value: str) -> None:
    """A plain MQTT sensor of the test's own: once HA shows ``value``, it is connected and has read what came."""
    publish_retained(broker, ("homeassistant/sensor/genrecast_test_probe/config",
                              '{"name": "probe", "unique_id": "test-probe", "state_topic": "test/probe"}'),
                     ("test/probe", value))
    showing(ha, entity(ha, "test-probe"), value)


def test_a_daemon_that_died_behind_a_crashed_broker_expires(ha, ha_broker, model, tmp_path):
    """The broker is killed, the daemon too while it is down (no will reaches anyone), the broker comes back empty.

    Before: Home Assistant showed the last genre, available, for ever. Now it expires after 3 refresh periods."""
    d = daemon(ha_broker.url, model, "--source", f"file:{write_tones(tmp_path / 'a.wav', [JAZZ] * 8)}", "--loop",
               "--stream-id", "attic")
    genre = entity(ha, "genrecast/genrecast/attic/genre")
    showing(ha, genre, "jazz")
    ha_broker.proc.kill()
    ha_broker.proc.wait()
    d.proc.kill()
    d.finish()
    ha_broker.start()
    probe(ha, ha_broker, f"back-{time.monotonic():.0f}")  # Home Assistant is connected again
    mark = ha.mark()
    state = ha.state(genre)["state"]
    if state != "unavailable":  # not yet expired: it must within expire_after, and nothing may bring it back
        showing(ha, genre, "unavailable", mark)
    assert ha.state(genre)["state"] == "unavailable"
    assert not our_warnings(ha.log)


def test_an_upgrade_from_the_single_sensor_form_keeps_the_genre_entity_id(ha, ha_broker, model, tmp_path):
    """0.3.0 and older announced one sensor per stream (this config, as 0.3.0 sent it). Before: the new device's
    Genre entity became ``sensor.genrecast_oldie_genre_2`` beside the dead old one, and automations and history on
    the old id stopped until the user ran ha-cleanup and renamed the new entity by hand."""
    old = {"name": "Genre", "unique_id": "genrecast_oldie_genre", "state_topic": "genrecast/oldie/genre",
           "value_template": "{{ value_json.genre if value_json.kind == 'genre' else value_json.kind }}",
           "json_attributes_topic": "genrecast/oldie/genre", "icon": "mdi:music", "availability_mode": "all",
           "availability": [{"topic": topic, "value_template": "{{ value_json.state }}"}
                            for topic in ("genrecast/oldie/status", "genrecast/_daemon/oldie/status")],
           "device": {"identifiers": ["genrecast_oldie"], "name": "genrecast oldie", "manufacturer": "genrecast",
                      "model": "genrecast-gtzan-0.2.0"}}
    publish_retained(ha_broker, ("homeassistant/sensor/genrecast_oldie/config", json.dumps(old)))
    old_id = entity(ha, "genrecast_oldie_genre")
    assert old_id == "sensor.genrecast_oldie_genre"
    d = daemon(ha_broker.url, model, "--source", f"file:{write_tones(tmp_path / 'a.wav', [JAZZ] * 8)}", "--loop",
               "--stream-id", "oldie")
    try:
        genre = entity(ha, "genrecast/genrecast/oldie/genre")
        assert genre == old_id
        assert "genrecast_oldie_genre" not in ha.entity_ids()
        showing(ha, genre, "jazz")
    finally:
        stop(d)
    assert not our_warnings(ha.log)


def test_the_automations_in_the_docs_pass_home_assistants_own_check(tmp_path):
    """docs/mqtt.md's examples, as a user appends them to the automations.yaml that a new Home Assistant's
    configuration.yaml includes, checked by Home Assistant's own `check_config` (which logs a bad trigger key as an
    ERROR and still exits 0). They were written under their own `automation:` key, which beside the stock include
    made Home Assistant drop one of the two: the editor's automations or these."""
    from conftest import ROOT

    block = re.search(r"```yaml\n(- id: .*?)```", (ROOT / "docs" / "mqtt.md").read_text(), re.S)
    assert block, "docs/mqtt.md has no automation example"
    (tmp_path / "configuration.yaml").write_text("homeassistant:\n  name: check\n"
                                                 "automation: !include automations.yaml\n")
    made_in_the_editor = "- id: '1733500000000'\n  alias: Editor's own\n  triggers: []\n  actions: []\n"
    (tmp_path / "automations.yaml").write_text(made_in_the_editor + block.group(1))
    done = subprocess.run([str(ha_venv() / "bin" / "hass"), "--script", "check_config", "-c", str(tmp_path),
                           "--info", "automation"], capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "ERROR" not in out and "Testing configuration" in out, out[-2000:]
    ids = re.findall(r"^- id: (\S+)$", block.group(1), re.M)
    assert len(ids) == len(set(ids)) == block.group(1).count("alias:") >= 2, ids  # each its own id
    for name in ("Editor's own", *re.findall(r'alias: "(.*?)"', block.group(1))):
        assert name in out, (name, out[-3000:])  # all loaded: the docs' and the editor's
