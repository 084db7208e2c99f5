"""``genrecast dashboard``: settings shared with the daemon's config, and the real command serving on loopback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, start_dashboard
from genrecast.dashboard.cli import dashboard_settings

from genrecast.errors import UserError


@pytest.fixture
def config(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("GENRECAST_")]:  # a developer's settings must not leak in
        monkeypatch.delenv(name)
    path = tmp_path / "kitchen.toml"
    path.write_text('prefix = "home/music"\nsource = "mic"\n[broker]\nurl = "mqtt://127.0.0.1:1999"\n'
                    'username = "u"\npassword = "p"\nkeepalive = 15\n')
    return str(path)


def broker_config(url, config):
    return dashboard_settings(config, broker=url).broker


def topic_prefix(flag, config):
    return dashboard_settings(config, prefix=flag).prefix


def test_broker_from_config_flag_and_url_credentials(config):
    from_file = broker_config(None, config)
    assert (from_file.port, from_file.username, from_file.password, from_file.keepalive) == (1999, "u", "p", 15)
    flag = broker_config("mqtt://127.0.0.1:2000", config)
    assert (flag.port, flag.username, flag.password, flag.keepalive) == (2000, "u", "p", 15)
    in_url = broker_config("mqtt://a:b@127.0.0.1:2000", config)
    assert (in_url.username, in_url.password) == ("a", "b")
    assert broker_config(None, None).url == "mqtt://127.0.0.1:1883"
    with pytest.raises(UserError, match="--broker"):
        broker_config("http://127.0.0.1", config)


def test_a_plain_broker_flag_beside_a_configs_ca_file_is_refused(tmp_path):
    """The config's CA went unread and its password went in the clear, without a word (run refuses the same)."""
    ca = tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(tmp_path / "ca.key"), "-out", str(ca), "-days", "1", "-subj", "/CN=test CA"],
                   check=True, capture_output=True)
    config = tmp_path / "tls.toml"
    config.write_text(f'source = "mic"\n[broker]\nurl = "mqtts://127.0.0.1:8883"\nusername = "u"\npassword = "p"\n'
                      f'ca_file = "{ca}"\n')
    with pytest.raises(UserError, match="^--broker: mqtt://127.0.0.1:2000 is not TLS, but the config sets broker"):
        broker_config("mqtt://127.0.0.1:2000", str(config))
    assert broker_config("mqtts://127.0.0.1:2000", str(config)).ca_file == str(ca)


def test_prefix_from_flag_then_environment_then_config(config, monkeypatch):
    assert topic_prefix(None, config) == "home/music"
    assert topic_prefix("lab", config) == "lab"
    monkeypatch.setenv("GENRECAST_PREFIX", "shed")
    assert topic_prefix(None, config) == "shed" and topic_prefix("lab", config) == "lab"
    monkeypatch.delenv("GENRECAST_PREFIX")
    assert topic_prefix(None, None) == "genrecast"
    for bad in ("a/#", "a/+/b", "trailing/", ""):
        with pytest.raises(UserError, match="prefix"):
            topic_prefix(bad, None)
    monkeypatch.setenv("GENRECAST_PREFIX", "$SYS")  # refused alone, mended by the flag, as `run` does
    with pytest.raises(UserError, match="prefix"):
        topic_prefix(None, config)
    assert topic_prefix("lab", config) == "lab"


def test_api_flags_over_config_and_environment(config, monkeypatch):
    secret = "correct-horse-battery-staple"
    monkeypatch.setenv("GENRECAST_API_MAX_MB", "5")
    api = dashboard_settings(config).api
    assert (api.token, api.max_mb, api.allow_open) == (None, 5.0, False)
    api = dashboard_settings(config, api_token=secret, api_max_mb=2, allow_open=True).api
    assert (api.token, api.max_mb, api.allow_open) == (secret, 2.0, True)
    with pytest.raises(UserError, match="--api-token") as err:
        dashboard_settings(config, api_token="short")
    assert "short" not in str(err.value)
    with pytest.raises(UserError, match="api.max_mb"):
        dashboard_settings(config, api_max_mb=0)


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel writes them) with a socket listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if Path(table).exists():
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def test_command_serves_the_page_on_loopback_only(broker):
    proc, port = start_dashboard(broker.url)
    try:
        assert listening_addresses(port) == {"0100007F"}, "the dashboard must bind 127.0.0.1 unless told otherwise"
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert "<title>genrecast</title>" in page
        links = re.findall(r'(?:src|href)="([^"]*)"', page)
        assert links and all(link.startswith("/") for link in links), f"not all served by the dashboard: {links}"
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert f"http://127.0.0.1:{port}/" in output


def test_logging_out_ends_the_session_on_the_server_across_a_restart(broker, tmp_path):
    """Before, logging out only asked the browser to drop its cookie: a copy of it opened the page for 30 days. Now
    the copy is refused, also after a restart of the command (systemd's $STATE_DIRECTORY keeps what ended), and a
    new login works. Real HTTP to `genrecast dashboard`."""
    token = "logout-token-0123456789"
    env = {"GENRECAST_API_TOKEN": token, "STATE_DIRECTORY": str(tmp_path)}

    def call(port: int, method: str, path: str, cookie: str = "", body: bytes | None = None):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                         headers={"Cookie": cookie} if cookie else {})
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=30) as answer:
                return answer.status, answer.headers
        except urllib.error.HTTPError as refused:
            return refused.code, refused.headers

    def login(port: int) -> str:
        status, headers = call(port, "POST", "/login", body=f"token={token}".encode())
        assert status == 303, status
        return headers["Set-Cookie"].split(";")[0]

    proc, port = start_dashboard(broker.url, env)
    try:
        kept = login(port)
        ended = login(port)
        assert call(port, "GET", "/_dash-layout", ended)[0] == 200
        assert call(port, "POST", "/logout", ended)[0] == 303
        assert call(port, "GET", "/_dash-layout", ended)[0] == 401
        assert call(port, "GET", "/_dash-layout", kept)[0] == 200  # another browser's session goes on
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    proc, port = start_dashboard(broker.url, env)
    try:
        assert call(port, "GET", "/_dash-layout", ended)[0] == 401
        assert call(port, "GET", "/_dash-layout", kept)[0] == 200
        assert call(port, "GET", "/_dash-layout", login(port))[0] == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.parametrize("where", ["in-use", "not-here", "unresolvable"])
def test_bind_errors_are_one_line_and_exit_2(where):
    import socket

    port = free_port()
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        host = {"in-use": "127.0.0.1", "not-here": "192.0.2.1", "unresolvable": "no-such-host.invalid"}[where]
        proc = subprocess.run([str(Path(sys.executable).parent / "genrecast"), "dashboard", "--host", host,
                               "--port", str(port), "--broker", "mqtt://127.0.0.1:9", "--allow-open"],
                              capture_output=True, text=True, timeout=120)
    finally:
        taken.close()
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"genrecast dashboard: error: cannot serve on {host}:{port}: ")
    assert proc.stderr.count("\n") == 1, proc.stderr


def dashboard_exit(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "genrecast"), "dashboard", "--broker",
                           "mqtt://127.0.0.1:9", "--port", "1", *args], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("GENRECAST_")} | (env or {}))


def test_an_open_bind_beyond_loopback_needs_allow_open(tmp_path):
    """No token and not loopback: refused before serving, unless --allow-open or [api] allow_open says so (then
    the bind itself fails here: 192.0.2.1 is no address of this machine)."""
    refused = dashboard_exit("--host", "192.0.2.1")
    assert refused.returncode == 2 and "without a token" in refused.stderr and "--allow-open" in refused.stderr
    config = tmp_path / "dashboard.toml"
    config.write_text("[api]\nallow_open = true\n")
    for allowed in (dashboard_exit("--host", "192.0.2.1", "--allow-open"),
                    dashboard_exit("--host", "192.0.2.1", "--config", str(config))):
        assert allowed.returncode == 2 and "cannot serve on 192.0.2.1" in allowed.stderr, allowed.stderr


@pytest.mark.parametrize(("env", "problem"), [({"GENRECAST_API_TOKEN": ""}, "set but empty"),
                                              ({"GENRECAST_API_TOKN": "x" * 20},
                                               "GENRECAST_API_TOKN (from env): no such setting"),
                                              ({"GENRECAST_SPEED": "fast"}, "speed (from env)")])
def test_a_setting_the_daemon_would_refuse_stops_the_dashboard(env, problem):
    result = dashboard_exit(env=env)
    assert result.returncode == 2 and problem in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_the_dashboard_reads_the_daemons_file_named_by_genrecast_config(tmp_path):
    path = tmp_path / "kitchen.toml"
    path.write_text('[brokers]\nurl = "mqtt://127.0.0.1:1883"\n')
    proc = dashboard_exit(env={"GENRECAST_CONFIG": str(path)})
    assert proc.returncode == 2 and "'brokers'" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.parametrize("prefix", ["$SYS", "genre\x00cast", "home\n"])
def test_the_dashboard_refuses_the_prefixes_the_daemon_refuses(prefix):
    with pytest.raises(UserError, match="prefix \\(from --prefix\\): bad value"):
        dashboard_settings(prefix=prefix, environ={})


@pytest.mark.parametrize("text, named", [('[brokers]\nurl = "mqtt://127.0.0.1:1883"\n', "'brokers'"),
                                         ('speed = "fast"\n', "speed"),
                                         ('[api]\nmax_mb = 50\ntokn = "x"\n', "api.tokn")])
def test_a_config_the_daemon_would_refuse_stops_the_dashboard_too(tmp_path, text, named):
    path = tmp_path / "kitchen.toml"
    path.write_text(text)
    proc = dashboard_exit("--config", str(path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and named in proc.stderr, proc.stderr


def test_a_model_path_that_is_not_a_model_stops_the_dashboard_at_start(tmp_path):
    """The model is loaded on the first upload, but checked (in a child process) before serving: a text file once
    started the page, and every upload then failed."""
    (tmp_path / "notes.onnx").write_text("not a model\n")
    for model, why in ((tmp_path / "gone.onnx", "no such file (the package ships"), (tmp_path, "is a folder"),
                       (tmp_path / "notes.onnx", "notes.onnx: not a loadable ONNX model")):
        proc = dashboard_exit("--model", str(model))
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and why in proc.stderr, proc.stderr


@pytest.mark.parametrize(("args", "problem"), [(("--allow-host", "a b"), "argument --allow-host: expected a host name"),
                                               (("--allow-host", ""), "argument --allow-host: expected a host name"),
                                               (("--allow-host", "http://kitchen/"), "argument --allow-host"),
                                               (("--host", "kitchen local"), "argument --host: expected an address"),
                                               (("--host", ""), "serving on every interface without a token"),
                                               # behind a proxy: loopback, but the network's name is allowed
                                               (("--allow-host", "dashboard.example.lan"),
                                                "answering to dashboard.example.lan (--allow-host) without a token")])
def test_a_host_flag_that_can_never_match_is_refused_naming_it(args, problem):
    proc = dashboard_exit(*args)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and problem in proc.stderr, proc.stderr


def test_the_file_check_uses_the_model_and_hop_the_config_names(broker, model, tmp_path):
    """A config's streams on another model (the fast one, say) got the bundled model's answers on the page and the
    API: the file check is meant to answer as the daemon would."""
    from daemon_helpers import write_tones

    config = tmp_path / "shop.toml"
    config.write_text(f'model = "{model}"\nhop_seconds = 0.5\nsource = "mic"\n')
    wav = write_tones(tmp_path / "clip.wav", [3] * 5)
    proc, port = start_dashboard(broker.url, env={"GENRECAST_CONFIG": str(config)})
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/classify?name=clip.wav", wav.read_bytes(),
                                         {"Content-Type": "audio/wav"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert (answer["model_id"], answer["windows"]) == ("tiny-test-1", 4)  # 5 s of 3-s windows: 3 at a 1-s hop
