"""Settings layering (TOML < env < flags) and refusals that name the key."""

from __future__ import annotations

import re

import pytest
from daemon_helpers import ROOT, genrecast
from genrecast.daemon.config import ConfigError, load_settings
from genrecast.daemon.sources import default_stream_id

TOML = """
source = "file:/music/a.wav"
stream_id = "kitchen"
hop_seconds = 2
qos = 0
ha_discovery = true

[broker]
url = "mqtt://127.0.0.1:1884"
username = "genre"
"""


def test_file_then_env_then_flags(tmp_path):
    path = tmp_path / "kitchen.toml"
    path.write_text(TOML)
    s = load_settings(path, environ={})
    assert (s.source, s.stream_id, s.hop_seconds, s.qos, s.ha_discovery) == ("file:/music/a.wav", "kitchen", 2.0, 0,
                                                                              True)
    assert s.broker.to_broker().port == 1884 and s.broker.username == "genre"

    env = {"GENRECAST_QOS": "2", "GENRECAST_BROKER_URL": "mqtt://127.0.0.1:1885", "GENRECAST_LOOP": "yes",
           "GENRECAST_CONFIG": str(path), "PATH": "/bin"}
    s = load_settings(path, environ=env)
    assert (s.qos, s.loop, s.broker.url, s.broker.username) == (2, True, "mqtt://127.0.0.1:1885", "genre")

    s = load_settings(path, {"qos": 1, "broker_url": "mqtt://127.0.0.1:1886", "stream_id": None}, environ=env)
    assert (s.qos, s.broker.url, s.stream_id) == (1, "mqtt://127.0.0.1:1886", "kitchen")
    # the decision's keys reach the stream's decider
    decision = load_settings(path, {"silence_windows": 2, "music_margin": 0.1}, environ={}).decision()
    assert (decision.silence_windows, decision.music_margin, decision.silence_rms) == (2, 0.1, 0.003)


@pytest.mark.parametrize(
    ("toml", "env", "flags", "message"),
    [
        ("colour = 'blue'\n", {}, {}, "unknown setting 'colour' (from file "),
        # a flag's name as a key: --hop sets hop_seconds
        ("hop = 1\n", {}, {}, "unknown setting 'hop' (from file {file}); did you mean 'hop_seconds'?"),
        ("[broker]\nurll = 'mqtt://h'\n", {}, {}, "unknown setting 'broker.urll' (from file {file}); did you mean "
                                                 "'broker.url'?"),
        ("[broker]\nport = 1883\n", {}, {}, "unknown setting 'broker.port'"),
        # appended to the example config, whose last table is [api]: it read as an unknown [api] key, with no hint
        ("[api]\nmax_mb = 50\nname = 'kitchen'\n", {}, {}, "unknown setting 'api.name' (from file {file}); 'name' is "
                                                         "a top-level setting: in TOML a key belongs to the [table] "
                                                         "above it, so put it above the file's first table"),
        ("qos = 'high'\n", {}, {}, "qos (from file"),
        ("hop_seconds = true\n", {}, {}, "hop_seconds (from file"),
        ("", {"GENRECAST_SPEED": "fast"}, {}, "speed (from env): expected float, got 'fast'"),
        ("", {"GENRECAST_SHOUTING": "1"}, {}, "GENRECAST_SHOUTING (from env): no such setting; a top-level key is "
                                              "GENRECAST_<KEY>"),
        # a table is set key by key, and the message names the variables that would have been right
        ("", {"GENRECAST_BROKER": "mqtt://x:1"}, {}, "GENRECAST_BROKER (from env): no such setting; [broker] takes "
                                                     "GENRECAST_BROKER_URL, GENRECAST_BROKER_USERNAME"),
        ("", {"GENRECAST_BROKER_PORT": "1"}, {}, "GENRECAST_BROKER_PORT (from env): no such setting; [broker] takes"),
        ("", {}, {"qos": 3}, "qos (from flags): bad value 3"),
        ("smoothing = 'median'\n", {}, {}, "smoothing (from file {file}): bad value 'median'"),
        ("stream_id = 'a/b'\n", {}, {}, "stream_id (from file {file}): bad value 'a/b'"),
        ("source = 'http://x'\n", {}, {}, "source (from file {file}): bad value"),
        ("[broker]\nurl = 'http://x'\n", {}, {}, "broker.url (from file {file}): broker URL must look like"),
        # port 0 was taken for the default port, and a path was dropped: both could reach another broker
        ("[broker]\nurl = 'mqtt://h:0'\n", {}, {},
         "broker.url (from file {file}): broker URL has port 0, which no broker listens on"),
        ("[broker]\nurl = 'mqtt://u:pw@h:1/x'\n", {}, {},
         "broker.url (from file {file}): a broker URL has no path, query or fragment (MQTT over TCP, not WebSockets; "
         "a / ? or # in a user name or password is written %2F %3F %23): 'mqtt://u:***@h:1/x'"),
        # an unescaped / in a password: the password was shown, as the URL did not parse as one with a login
        ("[broker]\nurl = 'mqtt://u:p/w@h:1883'\n", {}, {}, "broker.url (from file {file}): broker URL has a bad port: "
         "'mqtt://u:***@h:1883'"),
        ("broker = 3\n", {}, {}, "broker (from file"),
        ("qos = \n", {}, {}, "not valid TOML"),
        ("min_confidence = 0.5\nleave_confidence = 0.6\n", {}, {},
         "leave_confidence (from file {file}): bad value 0.6 (0 to min"),
        # both set, and at odds: the message says why (min_confidence alone is followed: see below)
        ("", {}, {"min_confidence": 0.0, "leave_confidence": 0.3},
         "leave_confidence (from flags): bad value 0.3 (0 to min_confidence (0.0): a genre is left below it, so a "
         "lower min_confidence needs a leave_confidence as low"),
        ("dwell_windows = 0\n", {}, {}, "dwell_windows (from file {file}): bad value 0"),
        ("", {"GENRECAST_SILENCE_WINDOWS": "0"}, {}, "silence_windows (from env): bad value 0 (1 to 1000)"),
        ("first_confidence = 0.3\n", {}, {},
         "first_confidence (from file {file}): bad value 0.3 (0 (off) or min_confidence (0.4) to 1"),
        ("min_confidence = 0.7\n", {"GENRECAST_FIRST_CONFIDENCE": "0.6"}, {},
         "first_confidence (from env): bad value 0.6 (0 (off) or min_confidence (0.7) to 1: a first answer this sure "
         "skips the dwell, so a higher min_confidence needs a first_confidence as high, or 0"),
        # control characters: the broker drops the whole connection for a malformed topic
        ('stream_id = "kitchen\\n"\n', {}, {}, "stream_id (from file {file}): bad value 'kitchen\\n'"),
        ('name = "hub\\n"\n', {}, {}, "name (from file {file}): bad value 'hub\\n'"),
        ('source = "stdin\\n"\n', {}, {}, "source (from file {file}): bad value 'stdin\\n'"),
        # a table's errors say where it was set, as the top level's do, and a table's name is named as such
        ('[streams."a\\n"]\nsource = "mic"\n', {}, {}, "(from file {file}): the table's name is the stream's id: "
                                                     "stream_id: bad value 'a\\n'"),
        ('prefix = "genre\\u0000cast"\n', {}, {}, "prefix (from file {file}): bad value 'genre\\x00cast'"),
        ("", {"GENRECAST_PREFIX": "home\x1b[2J"}, {}, "prefix (from env): bad value 'home\\x1b[2J' (non-empty, no "
                                                 "+ or #, no control characters"),
        ("prefix = '$SYS'\n", {}, {}, "not starting with $"),  # the broker's: everything published there is lost
        ("[streams]\n", {}, {}, "streams (from file"),  # empty: it used to fall back to the microphone
        ("[streams.a]\nsource = 'mic'\nstream_id = 'b'\n", {}, {}, "streams.a.stream_id (from file {file}): not a "
                                                                  "per-stream setting"),
        ("[streams.a]\nsource = 'mic'\nbogus = 1\n", {}, {},
         "streams.a.bogus (from file {file}): unknown setting (a [streams.<id>] table takes source and speed, loop,"),
        ("[streams.a]\nsource = 'mic'\nsped = 1\n", {}, {},
         "streams.a.sped (from file {file}): unknown setting; did you mean 'streams.a.speed'? (a [streams.<id>]"),
        ("[streams.a]\nsource = 'mic'\nspeed = 'x'\n", {}, {}, "streams.a.speed (from file {file}): expected "
                                                                                                     "float"),
        ("[streams.a]\nsource = 'mic'\nqos = 1\n", {}, {}, "streams.a.qos (from file {file}): not a per-stream "
                                                           "setting (it is the "
                                                           "process's: set it at the top level)"),
        ("batch = 0\n", {}, {}, "batch (from file {file}): bad value 0 (1 to 4096 windows)"),  # the range, not "out of"
        ("dwell_windows = true\n", {}, {}, "dwell_windows (from file {file}): expected int, got true"),  # not True
        ("[streams.a]\nsource = 'mic'\nchannels = 0\n", {}, {}, "streams.a.channels (from file {file}): bad value "
                                                                                       "0 (1 to 32)"),
        # MQTT sends a password only with a user name: paho dropped it without a word
        ("", {"GENRECAST_BROKER_PASSWORD": "s3cret"}, {}, "broker.password (from env): given without a username"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(tmp_path, toml, env, flags, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(path, flags, environ=env)
    assert message.format(file=path) in str(err.value)


def test_confidences_no_one_set_follow_min_confidence(tmp_path):
    """`--min-confidence 0.7` alone was refused, blaming a first_confidence of 0.6 the user never set (and 0.2 a
    leave_confidence of 0.3): a default now keeps in step with min_confidence, in a stream's own table too, while a
    value the user set stays as set (and is refused where it contradicts, above)."""
    def confidences(flags=None, toml=""):
        path = tmp_path / "c.toml"
        path.write_text(toml)
        return [(s.stream_id, s.min_confidence, s.leave_confidence, s.first_confidence)
                for s in load_settings(path, flags, environ={}).stream_settings()]

    assert confidences({"min_confidence": 0.7, "stream_id": "a"}) == [("a", 0.7, 0.2, 0.7)]
    assert confidences({"min_confidence": 0.1, "stream_id": "a"}) == [("a", 0.1, 0.1, 0.6)]
    assert confidences({"min_confidence": 0.7, "first_confidence": 0.0, "stream_id": "a"}) == [("a", 0.7, 0.2, 0.0)]
    # a stream's own min_confidence: its unset two follow it from their defaults, not from the top level's
    tables = ("min_confidence = 0.15\n[streams.a]\nsource = 'mic'\nmin_confidence = 0.8\n"
              "[streams.b]\nsource = 'stdin'\nmin_confidence = 0.5\n[streams.c]\nsource = 'mic:x'\n"
              "[streams.d]\nsource = 'mic:y'\nmin_confidence = 0.9\nfirst_confidence = 0.95\n")
    assert confidences(toml=tables) == [("a", 0.8, 0.2, 0.8), ("b", 0.5, 0.2, 0.6), ("c", 0.15, 0.15, 0.6),
                                        ("d", 0.9, 0.2, 0.95)]
    # but a value set at the top level stays as set, and a stream at odds with it is refused, naming the stream
    with pytest.raises(ConfigError, match=r"streams\.b\.leave_confidence \(from file .*c\.toml\): bad value 0\.35 "
                                          r"\(0 to min_confidence "
                                          r"\(0\.1\)"):
        confidences(toml="leave_confidence = 0.35\n[streams.b]\nsource = 'stdin'\nmin_confidence = 0.1\n")
    # a default with nothing to do with the table's min_confidence is the top level's (it read streams.b.hop_seconds)
    with pytest.raises(ConfigError, match=r"^hop_seconds \(from flags\): bad value -1"):
        confidences({"hop_seconds": -1.0}, toml="[streams.b]\nsource = 'stdin'\nmin_confidence = 0.1\n")
    # a default set elsewhere, at odds with the table's min_confidence, is named where it was set (the file was)
    with pytest.raises(ConfigError, match=r"^streams\.b\.leave_confidence \(from flags\): bad value 0\.35"):
        confidences({"leave_confidence": 0.35}, toml="[streams.b]\nsource = 'stdin'\nmin_confidence = 0.1\n")


def test_settings_no_stream_reads_are_named(tmp_path):
    """`--rate 44100` with a file source, `loop` with a microphone: taken in silence, changing nothing. Now `run`
    says so at its start (one warning each); what a stream of this process reads is not mentioned."""
    from genrecast.daemon.config import unused_settings

    def unused(flags=None, toml=""):
        path = tmp_path / "c.toml"
        path.write_text(toml)
        return unused_settings(load_settings(path, flags, environ={}))

    assert unused({"source": "file:x.wav", "rate": 44100, "speed": 0.0}) == [
        "rate: set, but only stdin, pipe and mic sources read it and no stream here is one: not used"]
    assert unused({"source": "mic", "rate": 16000}) == []  # the rate a microphone is opened at
    assert unused({"source": "stdin", "rate": 44100, "speed": 0.0}) == []
    assert unused({"source": "pipe:/run/radio.pcm", "rate": 44100, "channels": 2, "format": "s32le"}) == []
    assert unused(toml="rate = 44100\n[streams.a]\nsource = 'stdin'\n[streams.b]\nsource = 'mic'\nloop = true\n"
                  ) == ["streams.b.loop: set, but only file sources read it and this one is mic: not used"]
    # stdin is not paced: a speed of 4 meant nothing more than 1 and said nothing
    assert unused({"source": "stdin", "speed": 4.0}) == [
        "speed: 4 for stdin, which is not paced: 0 waits for the model (a recording), any other speed reads a pipe "
        "live (a file redirected to stdin is always waited for)"]
    assert unused(toml="[streams.a]\nsource = 'stdin'\nspeed = 2\n")[0].startswith("streams.a.speed: 2 for stdin")
    assert unused({"source": "pipe:/run/radio.pcm", "speed": 4.0}) == [
        "speed: 4 for pipe, which is not paced: 0 waits for the model (a recording), any other speed reads a pipe live"]
    examples = [ROOT / "systemd" / name for name in ("kitchen.toml.example", "streams.toml.example")]
    assert [unused_settings(load_settings(p, environ={})) for p in examples] == [[], []]  # the examples are clean


def test_broker_table_with_its_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    broker = load_settings(path, environ={"GENRECAST_BROKER_PASSWORD": "s3cret"}).broker.to_broker()
    assert (broker.host, broker.port, broker.username, broker.password) == ("127.0.0.1", 1884, "genre", "s3cret")
    assert load_settings(None, environ={}).broker.to_broker().url == "mqtt://127.0.0.1:1883"


def test_api_table_is_the_dashboards_but_checked_by_the_daemon(tmp_path):
    secret = "correct-horse-battery-staple"
    path = tmp_path / "c.toml"
    path.write_text(TOML + "\n[api]\nmax_mb = 2\n")
    env = {"GENRECAST_API_TOKEN": secret}
    api = load_settings(path, environ=env).api  # a variable meant for the dashboard does not stop the daemon
    assert (api.token, api.max_mb) == (secret, 2.0) and secret not in repr(api)
    assert load_settings(None, environ={}).api.token is None
    for table, problem in (("token = 'short'", "api.token .from file .*: must be 16"), ("max_mb = 0", "api.max_mb"),
                           ("tokn = 'x'", "unknown setting 'api.tokn'")):
        path.write_text(f"[api]\n{table}\n")
        with pytest.raises(ConfigError, match=problem) as err:
            load_settings(path, environ={})
        assert "short" not in str(err.value)
    with pytest.raises(ConfigError, match="api.token") as err:
        load_settings(None, environ={"GENRECAST_API_TOKEN": "zebra zebra zebra zebra"})
    assert "zebra" not in str(err.value)


def test_cli_prints_one_line_for_a_bad_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("hop_second = 1\n")
    proc = genrecast("run", "--config", str(path))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err == (f"genrecast run: error: unknown setting 'hop_second' (from file {path}); "
                   "did you mean 'hop_seconds'?\n")


def test_a_refused_flag_is_named_as_typed():
    """`--hop 100` once said "hop_seconds: bad value", naming neither the flag nor where the value came from."""
    for args, says in ((["--hop", "100"], "hop_seconds (from --hop): bad value 100.0 (more than 0, at most 60"),
                       (["--stream", "a=mic", "--refresh", "0"], "refresh_seconds (from --refresh): bad value 0.0"),
                       (["--broker", "mqtt://h:0"], "broker.url (from --broker): broker URL has port 0")):
        proc = genrecast("run", *args)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and err.startswith(f"genrecast run: error: {says}") and err.count("\n") == 1, err


def test_an_empty_config_variable_is_named_not_read_as_a_file_called_nothing():
    proc = genrecast("run", env={"GENRECAST_CONFIG": ""})
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (2, "genrecast run: error: config file: the path is empty (GENRECAST_CONFIG set "
                                         "to nothing?); unset it for no file\n")


@pytest.mark.parametrize(("content", "problem"), [
    (None, "cannot read (Is a directory)"),
    (b"\xff\xfe\x00stream = 1\n", "not UTF-8 text"),
])
def test_cli_prints_one_line_for_an_unreadable_config(tmp_path, content, problem):
    path = tmp_path  # a directory, unless content is given
    if content is not None:
        path = tmp_path / "binary.toml"
        path.write_bytes(content)
    proc = genrecast("run", "--config", str(path))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.startswith(f"genrecast run: error: config file {path}: {problem}") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("source", "stream_id"),
    [("file:/music/Kitchen Radio.wav", "kitchen-radio"), ("mic", "mic"), ("mic:USB Audio", "mic-usb-audio"),
     ("stdin", "stdin"), ("file:/x/+#.wav", "file"), ("file:/x/_daemon.wav", "daemon"),
     ("file:/x/_daemon_b.wav", "daemon_b"), ("file:/x/_kitchen_.wav", "_kitchen_")],
)
def test_default_stream_ids_are_topic_safe(source, stream_id):
    assert default_stream_id(source) == stream_id


SECRET = "s3cretPW"


@pytest.mark.parametrize("url", [f"mqtt://user:{SECRET}@127.0.0.1:99999", f"http://user:{SECRET}@127.0.0.1:1883",
                                 f"mqtt://user:{SECRET}@:1883"], ids=["bad-port", "bad-scheme", "no-host"])
@pytest.mark.parametrize("where", ["run-flag", "dashboard-flag", "config-file"])
def test_a_bad_broker_url_never_shows_its_password(tmp_path, url, where):
    config = tmp_path / "c.toml"
    config.write_text(f'[broker]\nurl = "{url}"\n')
    args = {"run-flag": ("run", "--broker", url), "dashboard-flag": ("dashboard", "--broker", url),
            "config-file": ("run", "--config", str(config))}[where]
    proc = genrecast(*args, "--port", "0") if where == "dashboard-flag" else genrecast(*args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert SECRET not in out + err and "user:***@" in err, err


def test_settings_do_not_show_the_password_in_their_repr():
    settings = load_settings(flags={"broker": {"url": "mqtt://u@h:1", "password": SECRET}}, environ={})
    assert SECRET not in repr(settings) and SECRET not in repr(settings.broker.to_broker())


def test_an_ipv6_broker_is_written_with_brackets():
    broker = load_settings(flags={"broker": {"url": "mqtts://[::1]:8883"}}, environ={}).broker.to_broker()
    assert broker.host == "::1" and broker.url == "mqtts://[::1]:8883"


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Notepad's "UTF-8 with BOM": TOML forbids the mark, and the file read as "Invalid statement (at line 1)"."""
    path = tmp_path / "c.toml"
    path.write_bytes("\ufeffhop_seconds = 1.5\narea = \"Küche\"\n".encode())
    settings = load_settings(path, environ={})
    assert (settings.hop_seconds, settings.area) == (1.5, "Küche")
    path.write_bytes(b"\xef\xbb\xbfarea = '\xff'\n")  # the bad byte's offset counts the mark
    with pytest.raises(ConfigError, match="not UTF-8 text .invalid start byte at byte 11.$"):
        load_settings(path, environ={})


def test_a_streams_default_that_is_refused_says_where_it_was_set(tmp_path):
    """A top-level key is every stream's default; its error read "streams.a.hop_seconds" with no origin."""
    path = tmp_path / "c.toml"
    path.write_text("hop_seconds = 100\n[streams.a]\nsource = 'mic'\n")
    with pytest.raises(ConfigError, match=f"^hop_seconds \\(from file {path}\\): bad value 100.0"):
        load_settings(path, environ={})
    with pytest.raises(ConfigError, match="^hop_seconds \\(from flags\\): bad value 100.0"):
        load_settings(None, {"streams": ["a=mic"], "hop_seconds": 100.0}, environ={})
    path.write_text("[streams.a]\nsource = 'mic'\nhop_seconds = 100\n")  # the table's own: named as before
    with pytest.raises(ConfigError, match=f"^streams.a.hop_seconds \\(from file {path}\\): bad value 100"):
        load_settings(path, environ={})


def test_under_systemd_a_config_error_names_the_file_to_edit(tmp_path):
    """The units hand the config over as a credential, so the daemon reads systemd's copy; its errors named only
    that copy (/run/credentials/genrecast@kitchen.service/config), not the file in /etc to edit."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    copy = credentials / "config"
    environ = {"CREDENTIALS_DIRECTORY": str(credentials), "GENRECAST_CONFIG_SOURCE": "/etc/genrecast/kitchen.toml"}
    copy.write_text("hop_seconds = [\n")
    shown = f"/etc/genrecast/kitchen.toml (systemd's copy: {copy})"
    with pytest.raises(ConfigError, match=re.escape(f"config file {shown}: not valid TOML")):
        load_settings(copy, environ=environ)
    copy.write_text('hop_secs = 1.0\n[streams.k]\nsource = "mic"\n')
    with pytest.raises(ConfigError, match=re.escape(f"unknown setting 'hop_secs' (from file {shown})")):
        load_settings(copy, environ=environ)
    # a file elsewhere is named as given, and the variable is no setting of its own
    elsewhere = tmp_path / "kitchen.toml"
    elsewhere.write_text("hop_seconds = [\n")
    with pytest.raises(ConfigError, match=re.escape(f"config file {elsewhere}: not valid TOML")):
        load_settings(elsewhere, environ=environ)
    copy.write_text('[streams.k]\nsource = "mic"\n')
    assert load_settings(copy, environ=environ).stream_settings()[0].stream_id == "k"
