"""Home Assistant discovery messages: devices, entities, namespacing, and what their templates make of our payloads.

The real Home Assistant core reads them in tests/test_home_assistant.py; these check the messages themselves."""

from __future__ import annotations

import json
import signal

import jinja2
import paho.mqtt.client as mqtt
import pytest
from conftest import free_port
from daemon_helpers import WAIT, Daemon, Subscriber, genrecast, write_tones
from genrecast.daemon.config import ConfigError, load_settings
from genrecast.daemon.decision import State
from genrecast.daemon.events import DaemonStatus, GenreChange, Status
from genrecast.daemon.ha_discovery import Discovery, legacy_retraction, node_id, retraction
from genrecast.daemon.ha_leftovers import other_processes, stale_configs
from genrecast.dsp import GTZAN_GENRES

from genrecast import __version__

LABELS = tuple(GTZAN_GENRES)


def discovery(prefix="genrecast", **kw) -> Discovery:
    return Discovery(prefix, "den", "m-1", LABELS, 10.0, **kw)


def config(msg) -> dict:
    return json.loads(msg.payload)


def render(template: str, payload: dict) -> str:
    """Home Assistant renders value templates with Jinja2 over the payload as ``value_json``."""
    return jinja2.Environment().from_string(template).render(value_json=payload)


def test_a_stream_is_a_device_via_its_process_with_four_entities_at_qos_1():
    d = discovery(configuration_url="http://dash.local:8050/")
    msg = d.stream("living_room", area="Living room")
    c = config(msg)
    assert msg.topic == "homeassistant/device/genrecast/living_room/config" and msg.retain and msg.qos == 1
    assert c["device"] == {"identifiers": ["genrecast/genrecast/living_room"], "name": "Genrecast Living Room",
                           "manufacturer": "genrecast", "model": "m-1", "sw_version": __version__,
                           "via_device": "genrecast/genrecast/_daemon/den", "suggested_area": "Living room",
                           "configuration_url": "http://dash.local:8050/"}
    assert c["origin"] == {"name": "genrecast", "sw_version": __version__}
    parts = c["components"]
    assert {k: v["platform"] for k, v in parts.items()} == {"genre": "sensor", "confidence": "sensor",
                                                           "music": "binary_sensor", "status": "sensor"}
    assert all(p["qos"] == 1 for p in parts.values()) and c["qos"] == 1
    assert parts["genre"]["device_class"] == "enum"
    assert parts["genre"]["options"] == [*LABELS, "uncertain", "no_music", "silence"]
    assert (parts["confidence"]["unit_of_measurement"], parts["confidence"]["state_class"]) == ("%", "measurement")
    assert parts["music"]["device_class"] == "sound"
    assert parts["status"]["entity_category"] == "diagnostic"
    assert parts["status"]["options"] == ["online", "stalled", "offline"]
    # expire_after: a few refresh periods, on everything a dead daemon could leave standing
    assert {p["expire_after"] for p in parts.values()} == {30}
    assert len({p["unique_id"] for p in parts.values()}) == 4


def test_the_process_is_a_device_with_a_diagnostic_status():
    msg = discovery().process()
    c = config(msg)
    assert msg.topic == "homeassistant/device/genrecast/_daemon_den/config" and msg.retain
    assert c["device"]["identifiers"] == ["genrecast/genrecast/_daemon/den"]
    assert c["device"]["name"] == "Genrecast Den Daemon"  # title case, as its streams' devices
    (status,) = c["components"].values()
    assert status["state_topic"] == "genrecast/_daemon/den/status" and status["entity_category"] == "diagnostic"
    assert status["options"] == ["online", "offline"] and status["qos"] == 1
    # offline and its reason stay until the process is back: expired, HA showed unavailable and dropped the reason
    assert "expire_after" not in status
    assert "configuration_url" not in c["device"]  # none configured


def test_two_prefixes_share_no_topic_unique_id_or_device():
    a, b = discovery("genrecast").stream("kitchen"), discovery("home/other").stream("kitchen")
    assert a.topic != b.topic and b.topic == "homeassistant/device/home_other/kitchen/config"
    ids = [{p["unique_id"] for p in config(m)["components"].values()} | set(config(m)["device"]["identifiers"])
           for m in (a, b)]
    assert not ids[0] & ids[1]
    assert node_id("a/b+c") == "a_b_c"


def test_the_discovery_prefix_is_configurable():
    assert discovery(discovery_prefix="ha").stream("k").topic == "ha/device/genrecast/k/config"


@pytest.mark.parametrize(("state", "genre", "music", "confidence"), [
    (State("genre", "jazz", 0.734), "jazz", "ON", "73"),  # whole percents: fewer recorder rows
    # HA reads "None" as unknown; before, silence was a confidence of 100 % in the long-term statistics
    (State("no_music", None, 0.9), "no_music", "OFF", "None"),
    (State("silence", None, 1.0), "silence", "OFF", "None"),
    # the start's "not yet known": unknown, so HA's not_from: [unknown, unavailable] guards a "to: jazz" trigger
    (State("uncertain", None, 0.0), "None", "None", "None"),
    # not yet judged after a silence: the Music sensor renders nothing, which HA ignores, so it stays off until the
    # sound is judged (it went off -> unknown -> on at every pause between tracks)
    (State("uncertain", None, 0.2), "uncertain", "", "None"),
    # music with no clear genre: music all the same (before, unknown for as long as it lasted)
    (State("uncertain", None, 0.3, judged=True), "uncertain", "ON", "None"),
])
def test_the_templates_turn_the_genre_payload_into_states(state, genre, music, confidence):
    parts = config(discovery().stream("kitchen"))["components"]
    payload = json.loads(GenreChange("m-1", state, "2026-11-25T00:40:00.000Z").message("genrecast", "kitchen").payload)
    assert render(parts["genre"]["value_template"], payload) == genre
    assert genre in [*parts["genre"]["options"], "None"]
    assert render(parts["music"]["value_template"], payload) == music
    assert render(parts["confidence"]["value_template"], payload) == confidence
    # lean attributes: when the state began and whether it is a first provisional answer, not the version, the time
    # or the state again
    assert json.loads(render(parts["genre"]["json_attributes_template"], payload)) == {
        "since": "2026-11-25T00:40:00.000Z", "provisional": False}
    tagged = json.loads(GenreChange("m-1", state, "2026-11-25T00:40:00.000Z", {"rock": 0.6}).message("g", "k").payload)
    assert json.loads(render(parts["genre"]["json_attributes_template"], tagged))["tags"] == {"rock": 0.6}
    early = json.loads(GenreChange("m-1", state, "2026-11-25T00:40:00.000Z", {"rock": 0.6}, provisional=True).message(
        "g", "k").payload)
    assert json.loads(render(parts["genre"]["json_attributes_template"], early)) == {
        "since": "2026-11-25T00:40:00.000Z", "provisional": True, "tags": {"rock": 0.6}}


def test_a_model_without_a_music_head_shows_its_unjudged_uncertain_as_unknown():
    """It never judges an uncertain (music or speech, it cannot tell): rendering nothing there, as for a model with
    a head while the sound after a pause is judged, kept the last on or off for as long as the uncertain lasted."""
    template = config(discovery(music_head=False).stream("kitchen"))["components"]["music"]["value_template"]
    for state, shown in ((State("uncertain", None, 0.25), "None"), (State("uncertain", None, 0.0), "None"),
                         (State("genre", "jazz", 0.7), "ON"), (State("silence", None, 1.0), "OFF")):
        payload = json.loads(GenreChange("m-1", state, "2026-11-25T00:40:00.000Z").message("g", "kitchen").payload)
        assert render(template, payload) == shown, state
    assert render(config(discovery().stream("kitchen"))["components"]["music"]["value_template"], json.loads(
        GenreChange("m-1", State("uncertain", None, 0.25), "x").message("g", "k").payload)) == ""  # with a head


@pytest.mark.parametrize(("kind", "genre", "music"), [("genre", "jazz", "ON"), ("no_music", None, "OFF"),
                                                       ("silence", None, "OFF"), ("uncertain", None, "")])
def test_a_payload_from_before_music_was_sent_reads_as_its_kind_said(kind, genre, music):
    """An older daemon's retained state, until this one's first message replaces it."""
    template = config(discovery().stream("kitchen"))["components"]["music"]["value_template"]
    assert render(template, {"kind": kind, "genre": genre, "confidence": 0.5, "since": "x"}) == music


def test_the_status_entity_names_the_reason():
    parts = config(discovery().stream("kitchen"))["components"]
    payload = json.loads(Status("stalled", "m-1", "mic", "no audio for 10 s", "den", "i").message("g", "k").payload)
    assert render(parts["status"]["value_template"], payload) == "stalled"
    assert json.loads(render(parts["status"]["json_attributes_template"], payload)) == {
        "reason": "no audio for 10 s", "source": "mic", "dropped_s": None}
    # audio dropped for falling behind was in the payload only: now an attribute too
    online = json.loads(Status("online", "m-1", "mic", None, "den", "i", 2.5).message("g", "k").payload)
    assert json.loads(render(parts["status"]["json_attributes_template"], online)) == {
        "reason": None, "source": "mic", "dropped_s": 2.5}


def test_two_streams_that_read_the_same_in_home_assistant_are_refused():
    """Before: living-room and living_room were two devices both named "Genrecast Living Room", the second one's
    entities sensor.genrecast_living_room_genre_2 and so on."""
    with pytest.raises(ConfigError, match="stream living-room and stream living_room read the same in Home Assistant "
                                          "\\('Living Room'\\): rename one"):
        load_settings(None, {"streams": ["living-room=mic", "living_room=mic:usb"], "ha_discovery": True}, environ={})
    assert len(load_settings(None, {"streams": ["living-room=mic", "living_room=mic:usb"]},
                             environ={}).stream_settings()) == 2  # without Home Assistant, no harm
    with pytest.raises(ConfigError, match="the process den and stream den-daemon read the same in Home Assistant"):
        load_settings(None, {"streams": ["den-daemon=mic", "hall=mic:usb"], "name": "den", "ha_discovery": True},
                      environ={})


def test_discovery_settings_are_checked(tmp_path):
    s = load_settings(None, {"discovery_prefix": "ha", "refresh_seconds": 2.0,
                             "dashboard_url": "http://127.0.0.1:8050/"}, environ={})
    assert (s.discovery_prefix, s.refresh_seconds, s.dashboard_url) == ("ha", 2.0, "http://127.0.0.1:8050/")
    toml = tmp_path / "g.toml"
    toml.write_text('[streams.kitchen]\nsource = "mic"\narea = "Kitchen"\n')
    assert load_settings(toml, environ={}).stream_settings()[0].area == "Kitchen"
    for bad, key in [({"discovery_prefix": "ha/#"}, "discovery_prefix"), ({"refresh_seconds": 0.5}, "refresh_seconds"),
                     ({"dashboard_url": "ftp://x"}, "dashboard_url"), ({"stream_id": "_daemon_x"}, "stream_id")]:
        with pytest.raises(ConfigError, match=key):
            load_settings(None, bad, environ={})


def test_cleanup_picks_this_process_removed_streams_and_its_old_single_sensors():
    settings = load_settings(None, {"streams": ["kitchen=mic"], "name": "den"}, environ={})
    d = discovery()
    other = Discovery("genrecast", "hall", "m-1", LABELS, 10.0)
    old = {"availability": [{"topic": "genrecast/kitchen/status"}, {"topic": "genrecast/_daemon/den/status"}]}
    retained = {m.topic: m.payload.encode() for m in (d.process(), d.stream("kitchen"), d.stream("gone"),
                                                       other.stream("hall1"))}
    retained["homeassistant/sensor/genrecast_kitchen/config"] = json.dumps(old).encode()
    retained["homeassistant/sensor/someone_else/config"] = b'{"name": "x"}'
    assert stale_configs(retained, settings) == ["homeassistant/device/genrecast/gone/config",
                                                 "homeassistant/sensor/genrecast_kitchen/config"]
    assert retraction("t").payload == "" and retraction("t").retain
    # what the daemon itself empties before announcing a stream's device: 0.3.0 used this discovery prefix always
    assert legacy_retraction("kitchen") == retraction("homeassistant/sensor/genrecast_kitchen/config")


def test_cleanup_picks_process_devices_left_without_streams_unless_online():
    """Before: a process that changed its name (the default name is the stream id with one stream, the host's with
    several) left its old device in Home Assistant, offline for ever, and ha-cleanup kept it."""
    settings = load_settings(None, {"streams": ["kitchen=mic", "hall=mic"], "name": "edge1"}, environ={})
    procs = {n: Discovery("genrecast", n, "m-1", LABELS, 10.0) for n in ("edge1", "kitchen", "attic", "shed", "gone")}
    announced = [procs["edge1"].stream("kitchen"), procs["edge1"].stream("hall"), procs["attic"].stream("a1"),
                 procs["shed"].stream("s1")]
    retained = {m.topic: m.payload.encode() for m in [*(p.process() for p in procs.values()), *announced]}
    for name, state in [("edge1", "online"), ("kitchen", "offline"), ("attic", "online"), ("shed", "offline")]:
        msg = DaemonStatus(state, "i").message("genrecast", name)
        retained[msg.topic] = msg.payload.encode()
    retained[procs["attic"].stream("a1").topic] = b'{"device": {}}'  # online: kept, streams or not
    # another prefix that shares the node (home/genrecast, home_genrecast): its device is not ours to judge
    neighbour = Discovery("home/genrecast", "b1", "m-1", LABELS, 10.0)
    assert neighbour.process_topic == "homeassistant/device/home_genrecast/_daemon_b1/config"
    settings_plus = load_settings(None, {"streams": ["kitchen=mic"], "name": "edge1", "prefix": "home_genrecast"},
                                  environ={})
    # anything may be published there: none of it is a traceback
    node = "homeassistant/device/home_genrecast"
    junk = {f"{node}/_daemon_x/config": b"[" * 100_000,
            f"{node}/_daemon_y/config": b'{"device": {"via_device": [1], "identifiers": 3}}',
            f"{node}/z/config": b'{"device": {"via_device": {"a": 1}}}',
            "homeassistant/sensor/genrecast_z/config": b'{"availability": 5}'}
    assert other_processes({neighbour.process().topic: neighbour.process().payload.encode(), **junk},
                           settings_plus).stale == []
    assert stale_configs(junk, settings_plus) == []
    # "kitchen" (this process's old name) and "gone" (no status left) go; "shed" is off but its stream is announced
    others = other_processes(retained, settings)
    assert others.stale == [procs["gone"].process_topic, procs["kitchen"].process_topic,
                            "genrecast/_daemon/kitchen/status"]
    assert list(others.offline) == ["shed"]


def test_ha_cleanup_retracts_what_the_config_no_longer_has(broker):
    d = discovery()
    old = {"name": "Genre", "availability": [{"topic": "genrecast/_daemon/den/status"}]}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    states = [Status("offline", "m-1", "mic", "stopped", daemon).message("genrecast", sid) for sid, daemon in
              (("kitchen", "den"), ("gone", "den"), ("theirs", "attic"))]  # "theirs": another process's stream
    states.append(DaemonStatus("offline", "i", reason="stopped").message("genrecast", "kitchen"))  # an old name
    old_name = Discovery("genrecast", "kitchen", "m-1", LABELS, 10.0).process()
    for topic, payload in [(m.topic, m.payload) for m in (d.process(), d.stream("kitchen"), d.stream("gone"),
                                                          old_name)] + [
            ("homeassistant/sensor/genrecast_kitchen/config", json.dumps(old)),
            ("genrecast/gone/genre", json.dumps({"genre": "jazz"}))] + [(m.topic, m.payload) for m in states]:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(WAIT)
    client.loop_stop()
    client.disconnect()
    args = ("ha-cleanup", "--stream", "kitchen=mic", "--name", "den", "--broker", broker.url)
    # with run's own flags too, as its help says ("give the settings run is given"): they were refused
    proc = genrecast(*args, "--ha-discovery", "--speed", "0", "--min-confidence", "0.5", "--threads", "1", "--dry-run")
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["would retract homeassistant/device/genrecast/gone/config",
                                "would retract homeassistant/sensor/genrecast_kitchen/config",
                                "would retract genrecast/gone/genre", "would retract genrecast/gone/status",
                                "would retract homeassistant/device/genrecast/_daemon_kitchen/config",
                                "would retract genrecast/_daemon/kitchen/status"]
    proc = genrecast(*args)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0 and out.count("retracted") == 6, (out, err)
    late = Subscriber(broker.url, topics=("homeassistant/#", "genrecast/#"))
    late.wait_for(lambda m: m.topic == d.stream("kitchen").topic, "the kept stream's config")
    late.wait_for(lambda m: m.topic == d.process_topic, "the process's config")
    late.wait_for(lambda m: m.topic == "genrecast/kitchen/status", "the kept stream's status")
    late.wait_for(lambda m: m.topic == "genrecast/theirs/status", "another process's stream, untouched")
    assert not [m.topic for m in late.messages if "gone" in m.topic or "/sensor/" in m.topic]
    late.close()
    proc = genrecast(*args)
    assert proc.communicate(timeout=WAIT)[0] == "nothing to retract\n"


def test_ha_cleanup_names_an_offline_process_whose_streams_it_leaves(broker):
    """A Home Assistant user's run: two streams in a process named after the host (vm), then one (a process named
    kitchen now). ha-cleanup said "nothing to retract" while hall and vm stayed in Home Assistant, offline, and only
    --name vm would have removed them. It now names vm and how, and that way works."""
    vm, kitchen = (Discovery("genrecast", n, "m-1", LABELS, 10.0) for n in ("vm", "kitchen"))
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    for m in (vm.process(), vm.stream("hall"), kitchen.process(), kitchen.stream("kitchen"),
              DaemonStatus("offline", "i", reason="stopped").message("genrecast", "vm"),
              DaemonStatus("online", "j").message("genrecast", "kitchen"),
              Status("offline", "m-1", "mic", "stopped", "vm").message("genrecast", "hall")):
        client.publish(m.topic, m.payload, qos=1, retain=True).wait_for_publish(WAIT)
    client.loop_stop()
    client.disconnect()
    args = ("ha-cleanup", "--stream", "kitchen=mic", "--broker", broker.url)  # named kitchen: its one stream
    out, err = genrecast(*args).communicate(timeout=WAIT)
    assert out == ("left process vm (offline) and its 1 stream (hall): if it is this process under an earlier name "
                   "(with several streams it is named after the host, with one after its stream), run this again "
                   "with --name vm, then once more without it; if it is another machine, switched off, leave "
                   "it\n"), (out, err)
    out, err = genrecast(*args, "--name", "vm").communicate(timeout=WAIT)
    assert out.splitlines() == ["retracted homeassistant/device/genrecast/hall/config",
                                "retracted genrecast/hall/status"], (out, err)
    out, err = genrecast(*args).communicate(timeout=WAIT)
    assert out.splitlines() == ["retracted homeassistant/device/genrecast/_daemon_vm/config",
                                "retracted genrecast/_daemon/vm/status"], (out, err)
    assert genrecast(*args).communicate(timeout=WAIT)[0] == "nothing to retract\n"


def test_ha_cleanup_keeps_a_stream_its_process_still_publishes(broker, model, tmp_path):
    """A stream taken out of the settings before its process was restarted with them: ha-cleanup retracted its
    device while it ran, and the process sends its status again but never its device, so the stream vanished from
    Home Assistant until its next restart. It is now kept, and said so, until the process no longer publishes it."""
    wav = write_tones(tmp_path / "tone.wav", [9] * 4)
    running = Daemon("--stream", f"kitchen=file:{wav}", "--stream", f"attic=file:{wav}", "--loop", "--name", "den",
                     "--model", str(model), "--broker", broker.url, "--ha-discovery")
    sub = Subscriber(broker.url)
    sub.wait_for(lambda m: m.topic == "genrecast/attic/status" and m.payload["state"] == "online", "attic online")
    args = ("ha-cleanup", "--stream", "kitchen=mic", "--name", "den", "--broker", broker.url)
    try:
        out, err = genrecast(*args).communicate(timeout=WAIT)
        assert out == ("kept stream attic: process den still publishes it; restart that process with these settings, "
                       "then run this again\n"), (out, err)
    finally:
        running.signal(signal.SIGTERM)
        rc, err = running.finish()
    assert rc == 0, err
    sub.close()
    late = Subscriber(broker.url, topics=("homeassistant/#",))
    late.wait_for(lambda m: m.topic == discovery().topic("attic") and m.payload, "attic's device, kept")
    late.close()
    out, _ = genrecast(*args).communicate(timeout=WAIT)  # stopped (offline): now it goes
    assert out.splitlines() == ["retracted homeassistant/device/genrecast/attic/config",
                                "retracted genrecast/attic/genre", "retracted genrecast/attic/status"]


def test_a_stream_counts_as_published_only_by_its_process_running_it_now():
    """Kept by ha-cleanup: what this process's online status lists. A crashed run's stream (its own status still
    online: the will covers the process's only) was kept for good once the process ran without it; a stream another
    process runs now is not this one's to keep; a stream id starting genrecast_ is its device's object id whole."""
    from genrecast.daemon.ha_leftovers import live_streams, stream_of

    settings = load_settings(None, {"streams": ["kitchen=mic"], "name": "den"}, environ={})

    def retained(*messages):
        return {m.topic: m.payload.encode() for m in messages}

    crashed = retained(DaemonStatus("online", "new", ("kitchen",)).message("genrecast", "den"),
                       Status("online", "m-1", "mic", None, "den", "old").message("genrecast", "attic"))
    assert live_streams(crashed, settings) == {"kitchen"}
    running = retained(DaemonStatus("online", "i", ("kitchen", "attic")).message("genrecast", "den"))
    assert live_streams(running, settings) == {"kitchen", "attic"}
    stopped = retained(DaemonStatus("offline", "i", ("kitchen", "attic"), "stopped").message("genrecast", "den"))
    assert live_streams(stopped, settings) == set()
    other = retained(DaemonStatus("online", "l", ("attic",)).message("genrecast", "loft"))
    assert live_streams(other, settings) == set()
    assert live_streams({"genrecast/_daemon/den/status": b'{"state": "online", "streams": 5}'}, settings) == set()
    assert [stream_of(t, settings) for t in ("homeassistant/device/genrecast/genrecast_x/config",
                                             "homeassistant/sensor/genrecast_kitchen/config",
                                             "genrecast/genrecast_x/genre")] == ["genrecast_x", "kitchen",
                                                                                 "genrecast_x"]


def test_the_daemon_names_a_removed_streams_device_and_the_command_that_removes_it(broker, model, tmp_path):
    """A stream taken out of the settings stayed an unavailable device in Home Assistant, unmentioned; the daemon
    now says so at its start (once), and leaves it for ha-cleanup."""
    wav = write_tones(tmp_path / "tone.wav", [9] * 4)
    flags = ("--model", str(model), "--broker", broker.url, "--ha-discovery", "--name", "den")
    rc, err = Daemon("--stream", f"kitchen=file:{wav}", "--stream", f"attic=file:{wav}", "--speed", "0",
                     *flags).finish()
    assert rc == 0, err
    d = Daemon("--stream", f"kitchen=file:{wav}", "--loop", *flags)
    line = d.wait_log("still announced to Home Assistant")
    d.signal(signal.SIGTERM)
    rc, err = d.finish()
    assert rc == 0, err
    assert line.rstrip().endswith(
        "stream attic: still announced to Home Assistant by process den, but not in its settings: its device stays "
        "unavailable there until `genrecast ha-cleanup` (with the settings `run` has) removes it")
    assert err.count("still announced") == 1
    late = Subscriber(broker.url, topics=("homeassistant/#",))
    late.wait_for(lambda m: m.topic == discovery().topic("attic") and m.payload, "attic's config, left in place")
    late.close()


def test_home_assistants_birth_message_brings_a_device_deleted_there_back(broker, model, tmp_path):
    """Deleting a device in Home Assistant empties its retained config; it stayed gone until the daemon restarted.
    Home Assistant's birth message (its start, a reload of its MQTT integration) now makes the daemon send its
    configs again. A retained birth (Home Assistant set to retain it) comes with every subscription, right after
    the connect sent them: it does not."""
    wav = write_tones(tmp_path / "tone.wav", [9] * 4)
    flags = ("--model", str(model), "--broker", broker.url, "--ha-discovery", "--name", "den")
    rc, err = Daemon("--stream", f"porch=file:{wav}", "--stream", f"attic=file:{wav}", "--speed", "0",
                     *flags).finish()
    assert rc == 0, err
    sub = Subscriber(broker.url, topics=("homeassistant/device/#",))  # it publishes the births, not JSON
    sub.client.publish("homeassistant/status", b"online", qos=1, retain=True).wait_for_publish(WAIT)
    d = Daemon("--stream", f"porch=file:{wav}", "--loop", *flags)
    d.wait_log("still announced")  # attic's config, sent for the subscription that has the birth topic too
    porch = discovery().topic("porch")
    sub.client.publish(porch, b"", qos=1, retain=True).wait_for_publish(WAIT)  # the device deleted there
    sub.wait_for(lambda m: m.topic == porch and m.payload is None, "the config emptied")
    before = {id(m) for m in sub.of(porch)}
    sub.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(WAIT)
    back = sub.wait_for(lambda m: m.topic == porch and m.payload and id(m) not in before, "the config sent again")
    assert back.retain is False and back.payload["device"]["name"] == "Genrecast Porch"  # live, to subscribers
    late = Subscriber(broker.url, topics=(porch,))  # and retained again, for Home Assistant's next start
    late.wait_for(lambda m: m.payload, "the config, retained")
    d.signal(signal.SIGTERM)
    rc, err = d.finish()
    sub.client.publish("homeassistant/status", b"", qos=1, retain=True).wait_for_publish(WAIT)
    sub.close()
    late.close()
    assert rc == 0, err
    assert err.count("device configs sent again") == 1 and "2 device configs sent again" in err, err


def test_ha_cleanup_takes_every_flag_run_takes():
    from genrecast.cli import build_parser

    commands = build_parser().commands
    options = {name: {o for a in commands[name]._actions for o in a.option_strings} for name in ("run", "ha-cleanup")}
    assert options["run"] - options["ha-cleanup"] == set()


def test_ha_cleanup_says_plainly_when_the_broker_is_not_there():
    proc = genrecast("ha-cleanup", "--stream", "kitchen=mic", "--broker", f"mqtt://127.0.0.1:{free_port()}")
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2 and err.startswith("genrecast ha-cleanup: error: cannot reach broker") \
        and err.count("\n") == 1, err


def test_a_model_with_a_label_beyond_gtzan_reaches_mqtt_and_home_assistant_with_it(broker, tmp_path):
    """The shipped model's 11th label, electronic: nothing on the way hard-codes GTZAN's ten (the other tests' tiny
    model has only those)."""
    import numpy as np
    import soundfile as sf
    from genrecast.dsp import DEFAULT_DSP
    from tiny_model import build_tiny_model, tiny_spec, tone_hz

    labels = (*GTZAN_GENRES, "electronic")
    model = build_tiny_model(tmp_path / "eleven.onnx", tiny_spec(labels=labels))
    t = np.arange(6 * 22050) / 22050
    wav = tmp_path / "electronic.wav"
    sf.write(wav, (0.3 * np.sin(2 * np.pi * tone_hz(10, DEFAULT_DSP, n_labels=11) * t)).astype(np.float32), 22050)
    sub = Subscriber(broker.url, topics=("genrecast/#", "homeassistant/#"))
    rc, err = Daemon("--source", f"file:{wav}", "--speed", "0", "--model", str(model), "--broker", broker.url,
                     "--stream-id", "club", "--ha-discovery").finish()
    assert rc == 0, err
    sub.wait_for(lambda m: m.topic == "genrecast/club/status" and m.payload["state"] == "offline", "offline")
    sub.close()
    (cfg,) = [m.payload for m in sub.of("homeassistant/device/genrecast/club/config")]
    assert cfg["components"]["genre"]["options"] == [*labels, "uncertain", "no_music", "silence"]
    predictions = [m.payload for m in sub.of("club/prediction")]
    assert predictions and all(list(p["probabilities"]) == list(labels) for p in predictions)
    assert {p["top"]["genre"] for p in predictions} == {"electronic"}
    assert [m.payload["genre"] for m in sub.of("club/genre") if m.payload.get("kind") == "genre"][-1] == "electronic"
