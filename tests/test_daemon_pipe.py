"""``--source pipe:PATH``: raw PCM from named pipes, several in one process, each outliving its writer (a real
daemon, real FIFOs and a real Mosquitto)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import numpy as np
import pytest
import soundfile as sf
from daemon_helpers import Daemon, Subscriber, check_all, genrecast, write_tones
from genrecast.daemon.sources import NO_WRITER, default_stream_id


def _pcm(path, label: int, seconds: float) -> bytes:
    """``seconds`` of the tone the tiny model calls ``label``, as raw s16le mono at 22,050 Hz."""
    wav = write_tones(path, [label] * round(seconds))
    return sf.read(str(wav), dtype="int16")[0].tobytes()


def _write(fifo, data: bytes, close: threading.Event | None = None) -> threading.Thread:
    """A writer, as a decoder is: it opens the pipe (waiting for its reader), writes, and closes it (once ``close``
    is set, if given)."""
    def run():
        with open(fifo, "wb") as f, contextlib.suppress(BrokenPipeError):  # a reader that refused the audio
            f.write(data)
            f.flush()
            if close is not None:
                close.wait(60)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _stopped(daemon: Daemon, sub: Subscriber) -> str:
    """SIGTERM, a clean exit, and the subscriber closed: the daemon's whole stderr."""
    daemon.signal(signal.SIGTERM)
    rc, err = daemon.finish()
    assert rc == 0, err
    sub.close()
    return err


def _statuses(sub: Subscriber, stream: str) -> list[dict]:
    return [m.payload for m in sub.of(f"genrecast/{stream}/status")]


def test_two_pipes_in_one_process_each_outliving_its_writer(broker, model, tmp_path):
    """N radio streams needed N processes, stdin being one: each with its own model in memory. A named pipe's writer
    restarting (a decoder that reconnects) stalls its stream with the reason, and the next writer's audio goes on,
    a WAV header it sends skipped like the first's."""
    one, two = tmp_path / "radio-one.pcm", tmp_path / "radio-two.pcm"
    os.mkfifo(one)
    os.mkfifo(two)
    sub = Subscriber(broker.url)
    daemon = Daemon("--stream", f"a=pipe:{one}", "--stream", f"b=pipe:{two}", "--model", str(model),
                    "--broker", broker.url, "--stall", "60")  # b's silence after its burst is no stall here
    b_open = threading.Event()  # b's writer stays until a's stall is checked: b's own end must not race it
    writers = [_write(one, _pcm(tmp_path / "a.wav", 3, 5)), _write(two, _pcm(tmp_path / "b.wav", 5, 20), b_open)]
    sub.wait_for(lambda m: m.topic == "genrecast/a/genre" and m.payload.get("genre") == "disco", "a: disco")
    sub.wait_for(lambda m: m.topic == "genrecast/b/genre" and m.payload.get("genre") == "jazz", "b: jazz")
    writers[0].join()
    # its writer closed it: stalled at once, with the reason, while the other stream goes on
    sub.wait_for(lambda m: m.topic == "genrecast/a/status" and m.payload["state"] == "stalled", "a stalled")
    seen = len(sub.messages)
    assert _statuses(sub, "a")[-1]["reason"] == NO_WRITER
    daemon.wait_log(f"stream a: pipe:{one} stalled: its writer closed it; waiting for the next")
    assert _statuses(sub, "b")[-1]["state"] == "online"
    b_open.set()
    # the next writer: a WAV file this time (sox -t wav -), in the pipe's format, its header skipped
    wav = write_tones(tmp_path / "again.wav", [6] * 5)
    writers.append(_write(one, wav.read_bytes()))
    sub.wait_for(lambda m: m.topic == "genrecast/a/status" and m.payload["state"] == "online"
                 and any(m is later for later in sub.messages[seen:]), "a online again")
    sub.wait_for(lambda m: m.topic == "genrecast/a/genre" and m.payload.get("genre") == "metal", "a: metal")
    sub.wait_for(lambda m: m.topic == "genrecast/a/prediction" and m.payload["window_start_s"] >= 6.5
                 and not m.payload.get("provisional"), "a: the second writer's third window")
    daemon.wait_log("a WAV file's header, skipped")
    err = _stopped(daemon, sub)
    check_all(sub.messages)
    a_windows = [m.payload for m in sub.of("a/prediction") if not m.payload.get("provisional")]
    # the second writer's audio comes after the first's 5 s, and no window spans the two
    assert {p["top"]["genre"] for p in a_windows if p["window_end_s"] <= 5.0} == {"disco"}
    assert {p["top"]["genre"] for p in a_windows if p["window_start_s"] >= 5.0} == {"metal"}
    assert all(p["window_end_s"] <= 5.0 or p["window_start_s"] >= 5.0 for p in a_windows)
    assert "error" not in err.lower()


def test_a_writer_that_sends_the_wrong_format_is_named_and_the_next_is_heard(broker, model, tmp_path):
    """The same checks as stdin's, naming the pipe; but one bad writer no longer ends a stream that outlives its
    writers (a review): its bytes are ignored until it closes the pipe, and the next writer is heard."""
    fifo = tmp_path / "radio.pcm"
    os.mkfifo(fifo)
    sub = Subscriber(broker.url)
    daemon = Daemon("--source", f"pipe:{fifo}", "--model", str(model), "--broker", broker.url)
    wav = write_tones(tmp_path / "stereo.wav", [3] * 3, rate=44100, channels=2)
    _write(fifo, wav.read_bytes()).join()
    refused = (f"pipe:{fifo}: a WAV file of s16le/44100/2, but the pipe is read as raw s16le/22050/1: give --format, "
               "--rate and --channels to match, or --source file:PATH")
    daemon.wait_log(f"{refused}; its writer's bytes are ignored until it closes the pipe")
    sub.wait_for(lambda m: m.topic == "genrecast/radio/status" and m.payload["state"] == "stalled", "stalled")
    assert _statuses(sub, "radio")[-1]["reason"] == refused.removeprefix(f"pipe:{fifo}: ") + \
        "; waiting for the next writer"
    _write(fifo, _pcm(tmp_path / "good.wav", 6, 5))
    sub.wait_for(lambda m: m.topic == "genrecast/radio/genre" and m.payload.get("genre") == "metal", "metal")
    _stopped(daemon, sub)


def test_a_pipe_missing_or_made_anew_is_waited_for(broker, model, tmp_path):
    """/run is emptied at every boot: a pipe its maker has not made yet is waited for, stalled with the reason (it
    exited 2, and systemd does not restart that). One removed and made again while the stream waits for a writer is
    opened afresh: the new one's writer waited in its open() for good, the reader holding the old one."""
    fifo = tmp_path / "radio.pcm"
    sub = Subscriber(broker.url)
    daemon = Daemon("--source", f"pipe:{fifo}", "--model", str(model), "--broker", broker.url)
    missing = f"no such pipe (make it with: mkfifo {fifo}); waiting for it"
    daemon.wait_log(f"pipe:{fifo}: {missing}")
    first = sub.wait_for(lambda m: m.topic == "genrecast/radio/status", "the first status")
    assert (first.payload["state"], first.payload["reason"]) == ("stalled", missing)  # not online first, nor "None"
    os.mkfifo(fifo)
    _write(fifo, _pcm(tmp_path / "a.wav", 3, 5)).join()
    sub.wait_for(lambda m: m.topic == "genrecast/radio/genre" and m.payload.get("genre") == "disco", "disco")
    sub.wait_for(lambda m: m.topic == "genrecast/radio/status" and m.payload.get("reason") == NO_WRITER, "no writer")
    os.remove(fifo)
    os.mkfifo(fifo)
    _write(fifo, _pcm(tmp_path / "b.wav", 6, 5))
    sub.wait_for(lambda m: m.topic == "genrecast/radio/genre" and m.payload.get("genre") == "metal", "metal")
    _stopped(daemon, sub)


def test_a_pipe_read_as_a_recording_ends_with_its_writer(broker, model, tmp_path):
    """``--speed 0``: a recording, waited for and never dropped, ended by its writer's end like stdin (it waited for
    another writer, online, and mixed the two writers' audio in its windows)."""
    fifo = tmp_path / "take.pcm"
    os.mkfifo(fifo)
    sub = Subscriber(broker.url)
    daemon = Daemon("--source", f"pipe:{fifo}", "--speed", "0", "--model", str(model), "--broker", broker.url)
    _write(fifo, _pcm(tmp_path / "a.wav", 3, 6))
    rc, err = daemon.finish()
    assert rc == 0, err
    sub.wait_for(lambda m: m.topic == "genrecast/take/status" and m.payload["state"] == "offline", "offline")
    sub.close()
    windows = [m.payload for m in sub.of("take/prediction")]
    assert len(windows) == 4 and {p["top"]["genre"] for p in windows} == {"disco"}  # 6 s: 0-3 ... 3-6


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.write_bytes(b"\0" * 100),
     "is a file, not a named pipe (a decoder that found no pipe writes one: remove it and mkfifo {path}; a recording "
     "is read with --source file:PATH)"),
    (lambda p: p.mkdir(), "is not a named pipe (mkfifo makes one)"),
], ids=["file", "folder"])
def test_a_pipe_that_is_not_one_is_refused_in_one_line(broker, model, tmp_path, make, problem):
    path = tmp_path / "radio.pcm"
    make(path)
    proc = genrecast("run", "--source", f"pipe:{path}", "--model", str(model), "--broker", broker.url)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.strip().splitlines()[-1] == f"genrecast run: error: pipe:{path}: {problem.format(path=path)}"


def test_a_pipe_read_by_two_streams_is_refused(tmp_path):
    """Two readers of one pipe would take turns at its bytes, each stream hearing half of the audio."""
    fifo = tmp_path / "radio.pcm"
    os.mkfifo(fifo)
    proc = genrecast("run", "--stream", f"a=pipe:{fifo}", "--stream", f"b=pipe:{tmp_path}/../{tmp_path.name}/radio.pcm",
                     "--broker", "mqtt://127.0.0.1:1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.strip().splitlines()[-1] == f"genrecast run: error: streams: pipe:{fifo} is read by 2 streams; a pipe " \
        "feeds one"


def test_a_pipes_stream_id_is_its_name():
    assert default_stream_id("pipe:/run/genrecast/Radio One.pcm") == "radio-one"


def test_pipe_flags_are_not_called_unused(broker, model, tmp_path):
    """--rate, --format and --channels are a pipe's too: before, they were stdin's alone."""
    fifo = tmp_path / "radio.pcm"
    os.mkfifo(fifo)
    daemon = Daemon("--source", f"pipe:{fifo}", "--rate", "44100", "--channels", "2", "--format", "s16le",
                    "--model", str(model), "--broker", broker.url)
    data = np.zeros((44100, 2), np.int16).tobytes()
    _write(fifo, data)
    daemon.wait_log(f"stream radio: pipe:{fifo} at 44100 Hz")
    daemon.signal(signal.SIGTERM)
    rc, err = daemon.finish()
    assert rc == 0, err
    assert "not used" not in err


def test_two_channels_that_cancel_are_heard_and_named(broker, model, tmp_path):
    """A balanced output into a stereo input (one channel's polarity inverted): averaged, the music was `silence`."""
    fifo = tmp_path / "line-in.pcm"
    os.mkfifo(fifo)
    sub = Subscriber(broker.url)
    daemon = Daemon("--source", f"pipe:{fifo}", "--channels", "2", "--model", str(model), "--broker", broker.url)
    tone = sf.read(str(write_tones(tmp_path / "t.wav", [3] * 6)), dtype="int16")[0]
    _write(fifo, np.stack([tone, -tone], axis=1).tobytes())
    sub.wait_for(lambda m: m.topic == "genrecast/line-in/genre" and m.payload.get("genre") == "disco", "disco")
    daemon.wait_log(f"pipe:{fifo}: its 2 channels cancel each other")
    _stopped(daemon, sub)
