"""Several streams in one ``genrecast run``: real child processes, a real Mosquitto, every payload schema-checked."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest
from daemon_helpers import WAIT, Daemon, NotifyListener, Subscriber, check_all, status_runs, validate, write_tones
from genrecast.daemon.broker import BrokerConfig
from genrecast.daemon.config import ConfigError, load_settings
from genrecast.daemon.model import genre_head
from genrecast.daemon.pipeline import Pipeline
from genrecast.dashboard.feed import Feed
from genrecast.dashboard.history import History
from genrecast.dsp import LogMelStream, ModelSpec
from genrecast.dsp.dcblock import dc_block
from genrecast.dsp.level import normalise, shift_for, window_rms
from genrecast.dsp.windows import pad_short_clip
from tiny_model import GTZAN_GENRES, build_tiny_model, direct_label, musicnn_like_spec, tiny_spec

from genrecast.cli import build_parser


def test_streams_from_flags_and_the_file_each_on_their_own_topics(broker, model, tmp_path):
    # Three streams by flag and one from the TOML file with its own hop: each its own tone, so a message on the
    # wrong topic would show up as the wrong genre.
    wavs = {name: write_tones(tmp_path / f"{name}.wav", [label] * 6) for name, label in
            (("a", 0), ("b", 3), ("c", 6), ("d", 9))}
    config = tmp_path / "streams.toml"
    config.write_text(f'name = "den"\nspeed = 0\n\n[streams.d]\nsource = "file:{wavs["d"]}"\nhop_seconds = 2\n')
    sub = Subscriber(broker.url)
    rc, err = Daemon("--config", str(config), *[f"--stream={n}=file:{wavs[n]}" for n in "abc"],
                     "--model", str(model), "--broker", broker.url, "--ha-discovery").finish()
    assert rc == 0, err
    sub.wait_for(lambda m: m.topic == "genrecast/_daemon/den/status" and m.payload["state"] == "offline",
                 "the process's goodbye")
    sub.close()
    check_all(sub.messages)
    expected = {"a": "blues", "b": "disco", "c": "metal", "d": "rock"}
    for name, genre in expected.items():
        predictions = [m.payload for m in sub.of(f"genrecast/{name}/prediction")]
        assert {p["top"]["genre"] for p in predictions} == {genre}
        assert {p["stream_id"] for p in predictions} == {name}
        starts = [p["window_start_s"] for p in predictions]
        assert len(starts) == (2 if name == "d" else 4)  # 6 s: windows at 0-3 s every 1 s, or 0 and 2 s for d
        status = [m.payload for m in sub.of(f"genrecast/{name}/status")]
        assert status_runs(status) == ["online", "offline"] and status[-1]["reason"] == "end of stream"
        assert status[0]["daemon"] == "den" and status[0]["dropped_s"] == 0  # a file read as fast as possible waits
        assert "genre_head" not in status[0]  # a model with one genre head
        (ha,) = sub.of(f"homeassistant/device/genrecast/{name}/config")
        assert [a["topic"] for a in ha.payload["components"]["genre"]["availability"]] == [
            f"genrecast/{name}/status", "genrecast/_daemon/den/status"]
        assert ha.payload["device"]["via_device"] == "genrecast/genrecast/_daemon/den"
    daemon = [m.payload for m in sub.of("genrecast/_daemon/den/status")]
    assert status_runs(daemon) == ["online", "offline"] and daemon[0]["streams"] == ["d", "a", "b", "c"]
    # the streams' statuses before the process's online: Home Assistant showed a stream's Status as the previous
    # run's retained offline in between (its availability is the process's)
    statuses = [m.topic for m in sub.messages if m.topic.endswith("/status")]
    assert statuses[:5] == [f"genrecast/{n}/status" for n in "dabc"] + ["genrecast/_daemon/den/status"]
    assert len({s.payload["instance"] for s in sub.messages if s.topic.endswith("status")}) == 1
    assert "4 stream(s)" in err


def test_one_failing_source_does_not_stop_the_others(broker, model, tmp_path):
    loop = write_tones(tmp_path / "loop.wav", [2] * 4)
    sub = Subscriber(broker.url)
    notify = NotifyListener(tmp_path / "notify.sock")
    daemon = Daemon("--stream", f"good=file:{loop}", "--stream", f"gone=file:{tmp_path / 'missing.wav'}",
                    "--stream", "pipe=stdin", "--loop", "--speed", "4", "--model", str(model),
                    "--broker", broker.url, "--ha-discovery", "--refresh", "1", stdin=subprocess.PIPE,
                    env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        # `systemctl status` says it too: it said "2 stream(s) running", which looked healthy
        notify.wait_for(lambda f: f == "STATUS=2 stream(s) running, 1 failed", "systemd's status")
        gone = sub.wait_for(lambda m: m.topic == "genrecast/gone/status", "the missing file's status")
        assert gone.payload["state"] == "offline" and "missing.wav" in gone.payload["reason"]
        # renewed like the others' (sent once, Home Assistant expired it 3 periods later, the reason hidden), and
        # with a device of its own there to show it (it had none)
        again = sub.wait_for(lambda m: m.topic == "genrecast/gone/status" and m.payload["time"] > gone.payload["time"],
                             "the missing file's status renewed")
        assert again.payload["reason"] == gone.payload["reason"]
        device = sub.wait_for(lambda m: m.topic == "homeassistant/device/genrecast/gone/config", "its device")
        assert device.payload["components"]["status"]["state_topic"] == "genrecast/gone/status"
        sub.wait_for(lambda m: m.topic == "genrecast/good/prediction", "the good stream's first window")
        daemon.proc.stdin.buffer.write(np.zeros(22050, np.int16).tobytes())
        daemon.proc.stdin.close()  # the pipe ends: that stream is done, the looping file goes on
        ended = sub.wait_for(lambda m: m.topic == "genrecast/pipe/status" and m.payload["state"] == "offline",
                             "the pipe's end")
        assert ended.payload["reason"] == "end of stream"
        n = len(sub.of("genrecast/good/prediction"))
        sub.wait_for(lambda m: len(sub.of("genrecast/good/prediction")) >= n + 3, "the good stream going on")
        # the ended pipe counted apart, not as failed: it said "1 stream(s) running", and the pipe was unexplained
        notify.wait_for(lambda f: f == "STATUS=1 stream(s) running, 1 failed, 1 ended", "the ended pipe counted")
    finally:
        daemon.signal(signal.SIGTERM)
        rc, err = daemon.finish()
        notify.close()
    sub.close()
    check_all(sub.messages)
    assert rc == 0, err  # stopped on request: that is success, even with a stream that never ran ...
    assert "stream gone:" in err and "stopped; failed: gone" in err  # ... which the log says
    # a live pipe's end is a warning: a radio's decoder that died read as a file that ended, in one info line
    assert "WARNING genrecast.run: stream pipe: stdin:s16le/22050/1 ended: the program writing to it closed it" in err
    assert "2 stream(s) (1 more did not open: gone)" in err  # it said "2 stream(s)" beside a status listing 3
    process = [m.payload for m in sub.messages if m.topic.startswith("genrecast/_daemon/")]
    assert process[-1]["reason"] == "stopped; failed: gone"  # the process's status says it too (it said "stopped")


def test_a_process_that_ends_by_itself_with_a_failed_stream_exits_1(broker, model, tmp_path):
    short = write_tones(tmp_path / "short.wav", [2] * 4)
    rc, err = Daemon("--stream", f"ok=file:{short}", "--stream", f"gone=file:{tmp_path / 'missing.wav'}",
                     "--speed", "0", "--rate", "44100", "--model", str(model), "--broker", broker.url).finish()
    assert rc == 1 and "end of stream; failed: gone" in err, err
    # a setting no stream reads is said once at the start (it was taken in silence)
    assert err.count("rate: set, but only stdin, pipe and mic sources read it and no stream here is one: not "
                     "used") == 1, err


def test_kill_9_leaves_every_stream_unavailable_through_the_process_will(broker, model, tmp_path):
    loop = write_tones(tmp_path / "loop.wav", [4] * 4)
    daemon = Daemon(*[f"--stream=s{i}=file:{loop}" for i in range(3)], "--name", "rack", "--loop",
                    "--model", str(model), "--broker", broker.url, "--ha-discovery")
    sub = Subscriber(broker.url)
    history = History()
    feed = Feed(BrokerConfig.from_url(broker.url), "genrecast", history)  # the dashboard's subscriber
    feed.start()
    for i in range(3):
        sub.wait_for(lambda m, i=i: m.topic == f"genrecast/s{i}/prediction", f"s{i} running")
    daemon.proc.kill()
    daemon.finish()
    deadline = time.monotonic() + WAIT  # the dashboard has no events to wait on: poll it, as a hang guard only
    while {v.stream_id: v.liveness(history.clock(), True) for v in history.snapshot().streams} != {
            f"s{i}": "offline" for i in range(3)}:
        assert time.monotonic() < deadline, "the dashboard never showed the killed process's streams offline"
        time.sleep(0.1)
    feed.stop()
    assert all("its process rack is offline" in v.process_gone for v in history.snapshot().streams)
    late = Subscriber(broker.url)  # what a newcomer (Home Assistant after a restart, a dashboard) sees
    will = late.wait_for(lambda m: m.topic == "genrecast/_daemon/rack/status" and m.retain, "the retained will")
    assert will.payload["state"] == "offline" and will.payload["reason"] == "connection lost"
    validate(will.topic, will.payload)
    for i in range(3):
        ha = late.wait_for(lambda m, i=i: m.topic == f"homeassistant/device/genrecast/s{i}/config", "discovery")
        status = late.wait_for(lambda m, i=i: m.topic == f"genrecast/s{i}/status" and m.retain, "stream status")
        genre = ha.payload["components"]["genre"]
        assert genre["availability_mode"] == "all"
        # Home Assistant's rule with availability_mode all: available only if every listed topic says so.
        retained = {m.topic: m.payload for m in late.messages if m.retain}
        available = all(retained[a["topic"]]["state"] == a["payload_available"] for a in genre["availability"])
        assert not available and status.payload["daemon"] == "rack"
    late.close()
    sub.close()


def test_a_silent_live_source_is_stalled_and_the_watchdog_notices_when_all_are(broker, model, tmp_path):
    sub = Subscriber(broker.url)
    notify = NotifyListener(tmp_path / "notify.sock")
    daemon = Daemon("--source", "stdin", "--stream-id", "radio", "--stall", "1", "--refresh", "1", "--model",
                    str(model), "--broker", broker.url, stdin=subprocess.PIPE,
                    env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"})
    stalled = sub.wait_for(lambda m: m.topic == "genrecast/radio/status" and m.payload["state"] == "stalled",
                           "stalled status")
    assert stalled.payload["reason"] == "no audio for 1 s"
    # Two refreshes of the stalled status, and no genre renewed meanwhile: its last genre is not current (it was
    # renewed every refresh, as if it were)
    sub.wait_for(lambda m: m.topic == "genrecast/radio/status" and m.payload["state"] == "stalled"
                 and len([s for s in sub.of("genrecast/radio/status") if s.payload["time"] > stalled.payload["time"]])
                 >= 2, "two refreshes of the stalled status")
    assert not [g for g in sub.of("genrecast/radio/genre") if g.payload["time"] > stalled.payload["time"]]
    daemon.wait_log("stream radio: no audio from stdin")
    give_up = notify.wait_for(lambda f: f.startswith("STATUS=every open stream stalled"), "give-up status")
    daemon.proc.stdin.buffer.write(np.full(22050, 3000, np.int16).tobytes())  # audio again
    daemon.proc.stdin.buffer.flush()
    resumed = notify.wait_for(lambda f: f.startswith("STATUS="), "a status after the audio came back", give_up + 1)
    notify.wait_for(lambda f: f == "WATCHDOG=1", "a watchdog ping after the audio came back", resumed)
    sub.wait_for(lambda m: m.topic == "genrecast/radio/status" and m.payload["state"] == "online"
                 and m.payload["time"] > stalled.payload["time"], "online again")
    daemon.proc.stdin.close()
    rc, err = daemon.finish()
    notify.close()
    sub.close()
    assert rc == 0, err
    # Between giving up and the audio coming back, systemd heard nothing: it would have restarted the service.
    assert "WATCHDOG=1" not in notify.fields[give_up:resumed] and "WATCHDOG=1" in notify.fields[:give_up]
    assert "audio again" in err


def test_two_processes_with_one_stream_id_warn_instead_of_fighting(broker, model, tmp_path):
    loop = write_tones(tmp_path / "loop.wav", [1] * 4)
    args = ("--source", f"file:{loop}", "--loop", "--stream-id", "twin", "--model", str(model), "--broker", broker.url)
    first = Daemon(*args)
    sub = Subscriber(broker.url)
    sub.wait_for(lambda m: m.topic == "genrecast/twin/prediction", "the first running")
    second = Daemon(*args)
    try:
        for d in (first, second):
            d.wait_log("stream twin is also published by another process")
        ids = {m.payload["instance"] for m in sub.of("genrecast/twin/status")}
        assert len(ids) == 2  # distinct client ids: neither knocked the other off the broker
    finally:
        for d in (first, second):
            d.signal(signal.SIGTERM)
        results = [d.finish() for d in (first, second)]
    sub.close()
    assert [rc for rc, _ in results] == [0, 0]
    assert not any("lost connection" in err for _, err in results)


def test_a_duplicates_goodbye_leaves_the_live_process_its_stream_and_its_home_assistant_device(broker, model,
                                                                                               tmp_path):
    """A second process given a running stream's id by mistake overwrote its Home Assistant device too (availability
    on the second process's status). Stopped, it left the stream unavailable in Home Assistant for good while the
    first kept publishing it: the first sent its status again, not its device."""
    loop = write_tones(tmp_path / "loop.wav", [1] * 4)
    common = ("--loop", "--model", str(model), "--broker", broker.url, "--ha-discovery")

    def device_names(m, process):
        return (m.topic == "homeassistant/device/genrecast/den/config" and m.payload
                and m.payload["device"]["via_device"].endswith(f"/_daemon/{process}"))

    first = Daemon("--name", "upstairs", "--stream", f"den=file:{loop}", *common)
    sub = Subscriber(broker.url)
    sub.wait_for(lambda m: m.topic == "genrecast/den/prediction", "the first running")
    second = Daemon("--source", f"file:{loop}", "--stream-id", "den", *common)
    try:
        second.wait_log("stream den is also published by another process")
        # its own answer to the first (its device again) delivered, so that its goodbye comes after it
        sub.wait_for(lambda m: len([x for x in sub.messages if device_names(x, "den")]) >= 2,
                     "the second's device sent again")
        second.signal(signal.SIGTERM)
        assert second.finish()[0] == 0

        def latest(m):  # the last message on its topic so far: what the broker keeps
            return m is [x for x in sub.messages if x.topic == m.topic][-1]

        sub.wait_for(lambda m: latest(m) and device_names(m, "upstairs"), "the stream's device naming the live process")
        sub.wait_for(lambda m: latest(m) and m.topic == "genrecast/den/status" and m.payload["state"] == "online"
                     and m.payload["daemon"] == "upstairs", "the stream's status online from the live process")
        # the twin it warned about, named as such (it guessed "a previous run's last will?")
        first.wait_log("stream den: the other process publishing it (genrecast-den-")
    finally:
        first.signal(signal.SIGTERM)
        rc, err = first.finish()
    sub.close()
    assert rc == 0, err
    device = [m for m in sub.messages if m.topic == "homeassistant/device/genrecast/den/config"][-1]
    assert device_names(device, "upstairs")  # the last word on the device is the live process's


def test_run_flag_parsing_keeps_stream_and_stream_id_apart():
    parser = build_parser()
    args = parser.parse_args(["run", "--stream", "a=mic", "--stream", "b=file:x.wav", "--stream-id", "k"])
    assert args.streams == ["a=mic", "b=file:x.wav"] and args.stream_id == "k"
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--stream-i", "k"])  # no abbreviations: this would have been --stream-id


@pytest.mark.parametrize(("toml", "flags", "message"), [
    ("", {"streams": ["a=stdin", "b=stdin"]}, "at most one stream may read stdin"),
    ('source = "mic"\n', {"streams": ["a=mic"]}, "source/stream_id (--source, --stream-id) and streams (--stream, "
                                                "[streams.<id>]): use one form"),
    ("", {"streams": ["a=mic", "b=mic", "a=stdin"]}, "the same stream id given twice: a"),
    ("", {"streams": ["nosource"]}, "--stream: expected ID=SOURCE"),
    ("[streams.a]\nsource = 'mic'\nhop_seconds = 0\n", {}, "streams.a.hop_seconds (from file"),
    ("[streams.a]\nsource = 'mic'\nqos = 0\n", {}, "): not a per-stream setting"),
    ("[streams.a]\nspeed = 2\n", {}, "streams.a (from file"),
    ("[streams._daemon]\nsource = 'mic'\n", {}, "stream_id: bad value '_daemon'"),
    ("streams = 3\n", {}, "expected tables"),
    ("", {"streams": ["bad id=mic"]}, "streams.bad id (from flags): the table's name is the stream's id: stream_id:"),
    # beside a file's tables, what --stream gave is still --stream's (the file was blamed)
    ("[streams.kitchen]\nsource = 'mic'\n", {"streams": ["den=bogus"]}, "streams.den.source (from flags): bad value"),
    ("[streams.kitchen]\nsource = 'mic'\n", {"streams": ["bad id=mic"]}, "streams.bad id (from flags): the table's"),
    ("[streams.a]\nsource = 'mic'\nheard = 'air'\n", {}, "s.toml): bad value 'air' (auto or room or direct)"),
])
def test_bad_stream_settings_are_refused(tmp_path, toml, flags, message):
    path = tmp_path / "s.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(path, flags, environ={})
    assert message in str(err.value)


def test_stream_tables_override_the_top_level_defaults(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('hop_seconds = 2\nspeed = 0\n[streams.a]\nsource = "file:a.wav"\n'
                    '[streams.b]\nsource = "file:b.wav"\nhop_seconds = 0.5\nloop = true\n')
    s = load_settings(path, {"streams": ["c=mic:USB"], "hop_seconds": 3.0}, environ={})
    by_id = {x.stream_id: x for x in s.stream_settings()}
    assert {k: (v.source, v.hop_seconds, v.loop, v.speed) for k, v in by_id.items()} == {
        "a": ("file:a.wav", 3.0, False, 0.0), "b": ("file:b.wav", 0.5, True, 0.0), "c": ("mic:USB", 3.0, False, 0.0)}
    assert json.dumps(s.daemon_name())  # several streams: named after the host
    one = load_settings(None, {"source": "stdin", "stream_id": "radio"}, environ={})
    assert [(x.stream_id, x.source) for x in one.stream_settings()] == [("radio", "stdin")]
    assert one.daemon_name() == "radio"


def _run_config(broker, model, tmp_path, streams: str):
    """``genrecast run`` on a config of ``streams`` (TOML tables) at full speed, to its end, with a subscriber that
    was listening from before the start: (the config's path, exit status, stderr, the subscriber)."""
    config = tmp_path / "streams.toml"
    config.write_text("speed = 0\n" + streams)
    sub = Subscriber(broker.url)
    rc, err = Daemon("--config", str(config), "--model", str(model), "--broker", broker.url).finish()
    return config, rc, err, sub


def test_a_model_with_a_direct_head_reads_it_for_direct_audio_and_the_other_for_a_room(broker, tmp_path):
    """One process, one model, one batch: a file is direct audio by default, a file taped in a room (``heard``) is
    not, and each stream's windows are scored by its own head (the tiny direct head gives each label's score to the
    next, so a wrong head shows as the next genre)."""
    spec = tiny_spec(direct_head=True)
    model = build_tiny_model(tmp_path / "direct.onnx", spec)
    wav = write_tones(tmp_path / "tone.wav", [3] * 6)  # disco's bands
    config, rc, err, sub = _run_config(broker, model, tmp_path, f'[streams.radio]\nsource = "file:{wav}"\n'
                                       f'[streams.taped]\nsource = "file:{wav}"\nheard = "room"\n'
                                       f'[streams.gone]\nsource = "file:{tmp_path / "missing.wav"}"\n')
    assert rc == 1, err  # the missing file's stream failed; the others ran to their end
    assert "stream taped: " in err and "the room genre head (heard = room)" in err
    assert "the direct genre head (heard = auto)" in err
    sub.wait_for(lambda m: m.topic == "genrecast/taped/status" and m.payload["state"] == "offline", "the end")
    sub.close()
    check_all(sub.messages)
    for stream, genre in (("radio", GTZAN_GENRES[direct_label(3)]), ("taped", "disco")):
        assert {m.payload["top"]["genre"] for m in sub.of(f"genrecast/{stream}/prediction")} == {genre}, stream
        assert {m.payload["genre_head"] for m in sub.of(f"genrecast/{stream}/status")} == {
            "direct" if stream == "radio" else "room"}  # said in the retained status, schema-checked above
    (gone,) = [m.payload for m in sub.of("genrecast/gone/status")]
    assert (gone["state"], gone["genre_head"]) == ("offline", "direct")  # a stream that never opened says it too
    settings = load_settings(config, {"streams": ["kitchen=mic:USB", "pipe=stdin"]}, environ={})
    heads = {s.stream_id: genre_head(spec, s.heard, s.recorded) for s in settings.stream_settings()}
    assert heads == {"radio": "direct", "taped": "room", "gone": "direct", "kitchen": "room",
                     "pipe": "direct"}  # auto, for a model without a room detector: a microphone is a room


def test_a_model_with_a_room_detector_judges_each_stream_by_its_sound_unless_told(broker, tmp_path):
    """``heard = auto`` with a room detector: a clean file reads the direct head and the same tone over a room's hiss
    the room head, both in one process; a stream told ``heard = direct`` keeps the direct head over the hiss."""
    model = build_tiny_model(tmp_path / "detector.onnx", tiny_spec(direct_head=True, room_detector=True))
    clean = write_tones(tmp_path / "tone.wav", [3] * 6)  # disco's bands
    taped = write_tones(tmp_path / "taped.wav", [3] * 6, hiss=0.003)
    _, rc, err, sub = _run_config(broker, model, tmp_path, f'[streams.radio]\nsource = "file:{clean}"\n'
                                  f'[streams.taped]\nsource = "file:{taped}"\n'
                                  f'[streams.told]\nsource = "file:{taped}"\nheard = "direct"\n')
    assert rc == 0, err
    assert "stream taped: " in err and "both genre heads weighed by the room detector (heard = auto)" in err
    sub.wait_for(lambda m: all(any(x.payload["state"] == "offline" for x in sub.of(f"genrecast/{s}/status"))
                               for s in ("radio", "taped", "told")), "every stream's end")
    sub.close()
    check_all(sub.messages)  # "auto" in the retained status, schema-checked
    next_one = GTZAN_GENRES[direct_label(3)]
    for stream, genre, head in (("radio", next_one, "auto"), ("taped", "disco", "auto"), ("told", next_one, "direct")):
        assert {m.payload["top"]["genre"] for m in sub.of(f"genrecast/{stream}/prediction")} == {genre}, stream
        assert {m.payload["genre_head"] for m in sub.of(f"genrecast/{stream}/status")} == {head}, stream


def test_heard_set_for_a_model_with_one_genre_head_is_named_in_a_warning(broker, model, tmp_path):
    wav = write_tones(tmp_path / "tone.wav", [3] * 4)
    rc, err = Daemon("--source", f"file:{wav}", "--speed", "0", "--heard", "room", "--model", str(model),
                     "--broker", broker.url).finish()
    assert rc == 0, err
    assert "heard: set, but tiny-test-1 has one genre head, which every source reads: not used" in err


def test_a_pipeline_started_late_keeps_offsets_from_the_sources_start():
    # Streams opened together are spread over the hop by skipping part of the first hop; the windows that follow
    # are those of the remaining audio, placed where they lie in the source.
    spec = ModelSpec(name="t", version="1")
    rate = spec.dsp.sample_rate
    x = (0.1 * np.sin(np.arange(6 * rate) * 0.05)).astype(np.float32)
    late = Pipeline(spec, 1.0, rate, skip_seconds=0.5)
    windows = late.push(x[:1000]) + late.push(x[1000:], last=True)
    plain = Pipeline(spec, 1.0, rate).push(x[rate // 2 :], last=True)
    assert [w.start_s for w in windows] == [0.5 + w.start_s for w in plain] and windows[0].start_s == 0.5
    assert all(np.array_equal(a.logmel, b.logmel) for a, b in zip(windows, plain, strict=True))


@pytest.mark.parametrize("skip", [0.0, 0.3])
def test_the_pipeline_says_how_much_audio_completes_its_next_window(skip):
    # The loop pushes a stream's audio once a window's worth is waiting; one sample short must not complete it.
    spec = ModelSpec(name="t", version="1")
    rate = spec.dsp.sample_rate
    x = (0.1 * np.sin(np.arange(8 * rate) * 0.05)).astype(np.float32)
    p = Pipeline(spec, 1.0, rate, skip_seconds=skip)
    pos = 0
    for _ in range(3):
        need = p.samples_to_next_window()
        assert p.push(x[pos : pos + need - 1]) == []
        assert len(p.push(x[pos + need - 1 : pos + need])) == 1
        pos += need


def test_a_long_backlog_at_a_high_rate_is_held_to_its_memory_cap(broker, model):
    """backlog_seconds 3600 at 384 kHz would let one stream hold 5.5 GB: it is capped, and the log says so."""
    daemon = Daemon("--stream", "hifi=stdin", "--rate", "384000", "--model", str(model), "--broker", broker.url,
                    env={"GENRECAST_BACKLOG_SECONDS": "3600"}, stdin=subprocess.PIPE)
    try:
        line = daemon.wait_log("backlog_seconds 3600 at 384000 Hz")
        assert "would hold 5.5 GB; holding 44 s (64 MiB)" in line
    finally:
        daemon.proc.stdin.close()
        rc, err = daemon.finish()
    assert rc == 0, err


def test_a_predecessors_retained_offline_statuses_are_replaced_without_a_line_each(broker, model, tmp_path):
    """A restarted many-stream process finds its predecessor's offline statuses retained; the broker may send them
    for our subscription before our own statuses reach it (a 100-stream restart logged 81 lines 'an offline status
    from ... replaced ours'). They are older than ours: no line, no resend, and ours is what the broker keeps."""
    import paho.mqtt.publish as publish

    n = 40
    loop = write_tones(tmp_path / "loop.wav", [1] * 4)
    config = tmp_path / "many.toml"
    config.write_text('name = "den"\nloop = true\n' + "".join(
        f'[streams.s{i}]\nsource = "file:{loop}"\n' for i in range(n)))
    old = {"version": 1, "state": "offline", "time": "2026-01-01T00:00:00+00:00", "instance": "previous-run",
           "reason": "connection lost"}
    host, port = broker.url.split("://")[1].split(":")
    publish.multiple([{"topic": f"genrecast/s{i}/status", "payload": json.dumps({**old, "stream_id": f"s{i}"}),
                       "qos": 1, "retain": True} for i in range(n)]
                     + [{"topic": "genrecast/_daemon/den/status", "qos": 1, "retain": True,
                         "payload": json.dumps({**old, "daemon": "den"})}], hostname=host, port=int(port))
    daemon = Daemon("--config", str(config), "--model", str(model), "--broker", broker.url)
    try:
        live = Subscriber(broker.url)
        live.wait_for(lambda m: len({x.topic for x in live.messages if x.topic.endswith("/prediction")}) == n,
                      "a window from every stream")
        live.close()
        retained = Subscriber(broker.url, topics=("genrecast/+/status",))  # what the broker keeps now
        retained.wait_for(lambda m: len(retained.of("/status")) == n, "every stream's retained status")
        retained.close()
    finally:
        daemon.signal(signal.SIGTERM)
        rc, err = daemon.finish()
    assert rc == 0, err
    kept = {m.topic: m.payload for m in retained.of("/status")}
    assert all(p["state"] == "online" and p["instance"] != "previous-run" for p in kept.values()), kept
    assert "replaced ours" not in err


@pytest.mark.parametrize("skip", [0.0, 0.3])
def test_provisional_windows_are_the_audio_so_far_repeated_whatever_the_pushes(skip):
    """Issue 19: from 1 s on, at each hop before the first window's end, the audio so far repeated to one window by
    the short-clip rule (one function for both); the same windows however the audio is pushed, and the loop is told
    when the next one is complete."""
    spec = musicnn_like_spec()
    rate = spec.dsp.sample_rate
    x = (0.1 * np.sin(np.arange(6 * rate) * 0.05) * np.linspace(0.5, 1, 6 * rate)).astype(np.float32)
    whole = Pipeline(spec, 1.0, rate, skip_seconds=skip, provisional=True).push(x, last=True)
    step = Pipeline(spec, 1.0, rate, skip_seconds=skip, provisional=True)
    stepped, pos = [], 0
    while len(stepped) < 3:
        need = step.samples_to_next_window()
        assert step.push(x[pos : pos + need - 1]) == []  # one sample short: nothing yet
        stepped += step.push(x[pos + need - 1 : pos + need])
        pos += need
    stepped += step.push(x[pos:], last=True)
    assert [w.provisional for w in whole] == [True, True] + [False] * (len(whole) - 2)
    assert [(w.start_s, w.end_s) for w in whole[:2]] == [(skip, skip + 1.024), (skip, skip + 2.016)]
    assert [(w.start_s, w.end_s, w.provisional) for w in stepped] == [(w.start_s, w.end_s, w.provisional)
                                                                    for w in whole]
    assert all(np.array_equal(a.logmel, b.logmel) for a, b in zip(stepped, whole, strict=True))
    kept = x[round(skip * rate) :]
    # the first 1.024 s (DC-blocked, as everything the front end hears) repeated, as classify would
    padded = pad_short_clip(dc_block(kept[:16384], rate), spec.dsp, spec.n_frames)
    assert np.array_equal(whole[0].logmel, normalise(LogMelStream(spec.dsp).push(padded)[: spec.n_frames].T,
                                                     shift_for(window_rms(padded))))  # at its own level
    # the full windows are those of a pipeline without provisional ones
    plain = Pipeline(spec, 1.0, rate, skip_seconds=skip).push(x, last=True)
    assert all(np.array_equal(a.logmel, b.logmel) for a, b in zip(whole[2:], plain, strict=True))
    assert len(whole) - 2 == len(plain)


def test_a_provisional_stream_that_ends_before_its_first_window_still_gets_its_short_clip_window():
    spec = musicnn_like_spec()
    rate = spec.dsp.sample_rate
    x = (0.1 * np.sin(np.arange(round(2.5 * rate)) * 0.05)).astype(np.float32)
    p = Pipeline(spec, 1.0, rate, provisional=True)
    windows = p.push(x, last=True)
    assert [(w.end_s, w.provisional) for w in windows] == [(1.024, True), (2.016, True), (2.5, False)]
    assert p.windows_out == 1  # the input's own window counts; the provisional ones do not
