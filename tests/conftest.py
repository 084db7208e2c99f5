"""Shared fixtures: a real Mosquitto broker on a free loopback port, paths to the shared real audio, the tiny test
model, a headless Chromium."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_GTZAN = ROOT.parent / "shared" / "data" / "gtzan"


@pytest.fixture(autouse=True)
def _no_daemon_left_running():
    yield
    from daemon_helpers import kill_left_running

    kill_left_running()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def start_dashboard(broker_url: str, env: dict | None = None) -> tuple[subprocess.Popen, int]:
    """`genrecast dashboard` as a child process on a free loopback port, listening; stdout and stderr in one pipe.
    ``env``: variables added to this process's."""
    import os
    import sys

    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("genrecast")), "dashboard", "--broker", broker_url,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ | (env or {}))
    try:
        wait_for_port(port, timeout=60)
    except TimeoutError:
        proc.kill()
        raise
    return proc, port


class MosquittoBroker:
    """A real ``mosquitto`` on 127.0.0.1 that tests may stop and start again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.host = "127.0.0.1"
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> None:
        log = self.log.open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log)
        wait_for_port(self.port)

    def stop(self) -> None:
        terminate(self.proc, 5)
        self.proc = None


def terminate(proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM a child still running, and SIGKILL it if it has not exited within ``timeout``."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def broker(tmp_path):
    if not Path(shutil.which("mosquitto") or "/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: run `make test`, which installs it")
    b = MosquittoBroker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def gtzan_dir() -> Path:
    if not SHARED_GTZAN.is_dir():
        pytest.skip(f"real GTZAN excerpts not present at {SHARED_GTZAN} (only beside the project checkout)")
    return SHARED_GTZAN


@pytest.fixture
def tls_broker(tmp_path):
    """Mosquitto on mqtts:// with a throwaway CA, and a password: the [broker] settings a deployment uses."""
    def sh(*cmd: str) -> None:
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    sh("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test CA")
    sh("openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
       "-out", "server.pem", "-days", "1", "-extfile", "san.ext")
    sh("mosquitto_passwd", "-b", "-c", "passwd", "genre", "s3cret")
    b = MosquittoBroker(tmp_path)
    b.conf.write_text(f"listener {b.port} 127.0.0.1\nallow_anonymous false\npassword_file {tmp_path}/passwd\n"
                      f"cafile {tmp_path}/ca.pem\ncertfile {tmp_path}/server.pem\nkeyfile {tmp_path}/server.key\n"
                      f"persistence false\nuser {getpass.getuser()}\n")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def model(tmp_path_factory) -> Path:
    """The tiny ONNX test model (tests/tiny_model.py), built once: tests only read it."""
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A real headless Chromium (tests/dashboard_page.py), shared by a module's tests."""
    from dashboard_page import start_chromium

    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()
