"""Helpers for the daemon tests: a recording MQTT subscriber, schema checks, generated audio, the CLI."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import numpy as np
import paho.mqtt.client as mqtt
import soundfile as sf
from genrecast.dsp import DEFAULT_DSP, DSPConfig
from tiny_model import tone_hz

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = {k: json.loads((ROOT / "daemon" / "schemas" / f"{k}.schema.json").read_text())
           for k in ("status", "prediction", "genre", "daemon-status")}
GENRECAST = [str(Path(sys.executable).parent / "genrecast")]  # the installed console script
WAIT = 60.0  # hang guard for waits, never a speed assertion


def wait_until(cond: threading.Condition, find, timeout: float, failure):
    """What ``find()`` (called holding ``cond``) returns once it is not None, woken by ``cond``'s notifications;
    ``timeout`` only guards against a hang, which fails with ``failure()``."""
    deadline = time.monotonic() + timeout
    with cond:
        while (found := find()) is None:
            left = deadline - time.monotonic()
            assert left > 0, failure()
            cond.wait(min(left, 0.2))
        return found


def validate(topic: str, payload: dict) -> None:
    """Check a genrecast payload against the JSON Schema its topic's last segment names."""
    kind = "daemon-status" if "/_daemon/" in topic else topic.rsplit("/", 1)[-1]
    jsonschema.Draft202012Validator(SCHEMAS[kind], format_checker=jsonschema.FormatChecker()).validate(payload)


def check_all(messages) -> None:
    """Every genrecast message received matches its JSON Schema."""
    for m in messages:
        if m.topic.startswith("genrecast/"):
            validate(m.topic, m.payload)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: dict
    retain: bool


class Subscriber:
    """Records every message under ``topics`` from a real broker; reconnects when the broker restarts."""

    def __init__(self, url: str, topics: tuple[str, ...] = ("genrecast/#", "homeassistant/#"),
                 session: str | None = None, ca_file: Path | None = None, auth: tuple[str, str] | None = None) -> None:
        host, port = url.split("://")[1].split(":")
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._topics = topics
        self.connected = threading.Event()
        # session: a client id whose subscriptions the broker keeps (and queues for) while we are away.
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=session or f"test-sub-{id(self)}",
                                  clean_session=session is None)
        self.client.reconnect_delay_set(1, 2)
        if ca_file:
            self.client.tls_set(ca_certs=str(ca_file))
        if auth:
            self.client.username_pw_set(*auth)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(host, int(port))
        self.client.loop_start()
        assert self.connected.wait(WAIT), "subscriber could not connect"

    def _on_connect(self, client, userdata, flags, rc, props):
        client.subscribe([(t, 1) for t in self._topics])

    def _on_subscribe(self, client, userdata, mid, reason_codes, props):
        self.connected.set()  # only now are messages to our topics routed to us

    def _on_message(self, client, userdata, msg):
        try:
            payload = json.loads(msg.payload.decode("utf-8")) if msg.payload else None  # None: a retraction
        except ValueError:  # not ours: Home Assistant's birth message ("online"), say
            payload = msg.payload.decode("utf-8", "replace")
        with self._cond:
            self.messages.append(Received(msg.topic, payload, bool(msg.retain)))
            self._cond.notify_all()

    def of(self, suffix: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def wait_for(self, predicate, what: str, timeout: float = WAIT) -> Received:
        return wait_until(self._cond, lambda: next((m for m in self.messages if predicate(m)), None), timeout,
                          lambda: f"no message {what} within {timeout} s; got {[m.topic for m in self.messages][-10:]}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def write_tones(path: Path, labels: list[int | str | None], seconds_each: float = 1.0, rate: int = 22050,
                channels: int = 1, subtype: str = "PCM_16", cfg: DSPConfig = DEFAULT_DSP, hiss: float = 0.0) -> Path:
    """A WAV of consecutive sounds, one per entry: ``i`` = a pure tone the tiny model (for front end ``cfg``)
    calls label ``i``, ``"noise"`` = white noise (not music to its music head), ``None`` = silence; ``hiss``: white
    noise of that amplitude under all of it (0.003: what the tiny model's room detector calls heard through a
    room)."""
    n = round(seconds_each * rate)
    t = np.arange(n) / rate
    noise = np.random.default_rng(0)

    def part(i):
        if i is None:
            return np.zeros(n)
        if i == "noise":
            return 0.1 * noise.standard_normal(n)
        return 0.3 * np.sin(2 * np.pi * tone_hz(i, cfg) * t)

    parts = [part(i) for i in labels]
    x = np.concatenate(parts)
    x = (x + hiss * np.random.default_rng(1).standard_normal(len(x)) if hiss else x).astype(np.float32)
    sf.write(str(path), np.repeat(x[:, None], channels, axis=1) if channels > 1 else x, rate, subtype=subtype)
    return path


def genrecast(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    """Start ``genrecast ARGS`` as a child process with stdout and stderr captured."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen([*GENRECAST, *args], cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


# Runs the rest of its command line with SIGHUP at its default (exec keeps it so; an ignored one is inherited)
HUP_DEFAULT = (sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
               "os.execvp(sys.argv[1], sys.argv[1:])")


STARTED: list[Daemon] = []  # every child started, so that one a failed test left running is killed after it


def kill_left_running() -> None:
    """Kill the children a test left running (it failed before stopping them): they went on classifying, taking the
    two cores from the tests after it."""
    while STARTED:
        daemon = STARTED.pop()
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


class Daemon:
    """A ``genrecast run`` child whose stderr is collected line by line, so tests can wait for log lines."""

    def __init__(self, *args: str, env: dict | None = None, stdin=subprocess.DEVNULL, hup: bool = False) -> None:
        """``hup``: SIGHUP at its default in the child, whatever the tests inherited (CI may run under nohup)."""
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen([*(HUP_DEFAULT if hup else ()), *GENRECAST, "run", *args], cwd=ROOT,
                                     env=full_env, stdin=stdin,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        STARTED.append(self)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def wait_log(self, text: str | re.Pattern, timeout: float = WAIT) -> str:
        """Block until a stderr line contains ``text`` (or matches the pattern); returns that line."""
        def find() -> str | None:
            line = next((line for line in self.lines if (text.search(line) if isinstance(text, re.Pattern)
                                                         else text in line)), None)
            assert line is not None or self._pump.is_alive(), failure()  # it exited without saying it
            return line

        def failure() -> str:
            return f"{text!r} never logged; stderr:\n{''.join(self.lines)}"

        return wait_until(self._cond, find, timeout, failure)


    def wait_log_count(self, text: str, count: int, timeout: float = WAIT) -> None:
        """Block until ``count`` stderr lines contain ``text``."""
        def find() -> bool | None:
            if sum(text in line for line in self.lines) >= count:
                return True
            assert self._pump.is_alive(), failure()
            return None

        def failure() -> str:
            return f"{text!r} logged fewer than {count} times; stderr:\n{''.join(self.lines)}"

        wait_until(self._cond, find, timeout, failure)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = WAIT) -> tuple[int, str]:
        """Wait for exit (killing it if it hangs past ``timeout``); returns (exit status, whole stderr)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon still running after {timeout} s; stderr:\n{self.log}") from None
        self._pump.join(timeout)
        return self.proc.returncode, self.log


def run_to_the_end(broker_url: str, model, wav: Path, stream_id: str, *args: str) -> Subscriber:
    """A file read as fast as possible by a daemon that exits 0, and everything it published, the last status
    (``offline``) received."""
    sub = Subscriber(broker_url)
    rc, err = Daemon("--source", f"file:{wav}", "--speed", "0", "--model", str(model), "--broker", broker_url,
                     "--stream-id", stream_id, *args).finish()
    assert rc == 0, err
    sub.wait_for(lambda m: m.topic == f"genrecast/{stream_id}/status" and m.payload["state"] == "offline", "the end")
    sub.close()
    return sub


class NotifyListener:
    """A systemd notify socket read on a thread (an unread datagram socket would block the daemon's sends)."""

    def __init__(self, path) -> None:
        self.fields: list[str] = []
        self.arrived: list[float] = []  # when each field came (monotonic)
        self._cond = threading.Condition()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except OSError:
                return
            with self._cond:
                fields = data.decode().split("\n")
                self.fields += fields
                self.arrived += [time.monotonic()] * len(fields)
                self._cond.notify_all()

    def wait_for(self, predicate, what: str, start: int = 0, after: float = 0.0) -> int:
        """Block until a field from index ``start`` on, arrived after monotonic time ``after``, satisfies
        ``predicate``; returns its index."""
        return wait_until(self._cond, lambda: next((i for i in range(start, len(self.fields))
                                                     if self.arrived[i] > after and predicate(self.fields[i])), None),
                          WAIT, lambda: f"no {what} from the daemon; got {self.fields[-10:]}")

    def close(self) -> None:
        self._sock.close()


def state_runs(predictions: list[dict]) -> list[tuple[str, str | None]]:
    """The decision states the predictions went through, each run of equal states once."""
    states = [(p["state"]["kind"], p["state"]["genre"]) for p in predictions]
    return [state for i, state in enumerate(states) if i == 0 or state != states[i - 1]]


def status_runs(payloads: list[dict]) -> list[str]:
    """The states a run of status payloads went through, each once: the same status is republished every
    ``refresh_seconds`` (a heartbeat), which a test that takes longer (a loaded machine) sees."""
    states = [p["state"] for p in payloads]
    return [state for i, state in enumerate(states) if i == 0 or state != states[i - 1]]


def assert_genre_messages(received: list, expected: list) -> None:
    """Genre messages are retained state: those made before the daemon's connection was up are coalesced to the
    newest (docs/mqtt.md), so what arrives is ``expected`` from some point on, depending on how soon it was up, after
    the start's "not yet known"; the same state is sent again every ``refresh_seconds``, which counts once."""
    if received and (received[0].payload["kind"], received[0].payload["confidence"]) == ("uncertain", 0):
        received = received[1:]  # the start's "not yet known", sent before the stream said online
    states = [(m.payload["kind"], m.payload["genre"]) for m in received]
    changes = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    assert any(changes == expected[k:] for k in range(len(expected))), (changes, expected)


class HandFed:
    """A live source whose chunks a test hands to the stream's intake itself (``intake._put``), its reading thread
    never started: what drops, pace and silence make of audio is then a matter of the test's clock, not timing."""

    live, unavailable = True, None

    def __init__(self, description: str = "stdin", sample_rate: int = 22050) -> None:
        self.description, self.sample_rate = description, sample_rate

    def chunks(self, stop: threading.Event):
        return iter(())

    def close(self) -> None:
        pass


def hand_fed_run(source: str, spec):
    """A stream of model ``spec`` on a :class:`HandFed` source, its pipeline built, publishing nowhere: what its
    decider, tracker and checks make of windows a test hands to ``classified``."""
    import types

    from genrecast.daemon.config import RunSettings
    from genrecast.daemon.service import StreamRun

    settings = RunSettings(source=source)
    model = types.SimpleNamespace(spec=spec, model_id="tiny-test")
    run = StreamRun(settings.stream_settings()[0], HandFed(source), settings, model,
                    types.SimpleNamespace(publish=lambda message: None), daemon="d", instance="i")
    assert run.ready()
    return run
