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


def _write(fifo, data: bytes) -> threading.Thread:
    """A writer, as a decoder is: it opens the pipe (waiting for its reader), writes, and closes it."""
    def run():
        with open(fifo, "wb") as f, contextlib.suppress(BrokenPipeError):  # a reader that refused the audio
            f.write(data)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


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
                    "--broker", broker.url)
    writers = [_write(one, _pcm(tmp_path / "a.wav", 3, 5)), _write(two, _pcm(tmp_path / "b.wav", 5, 20))]
    sub.wait_for(lambda m: m.topic == "genrecast/a/genre" and m.payload.get("genre") == "disco", "a: disco")
    sub.wait_for(lambda m: m.topic == "genrecast/b/genre" and m.payload.get("genre") == "jazz", "b: jazz")
    writers[0].join()
    # its writer closed it: stalled at once, with the reason, while the other stream goes on
    sub.wait_for(lambda m: m.topic == "genrecast/a/status" and m.payload["state"] == "stalled", "a stalled")
    seen = len(sub.messages)
    assert _statuses(sub, "a")[-1]["reason"] == NO_WRITER
    daemon.wait_log(f"stream a: pipe:{one}: its writer closed it; waiting for the next: stalled until it is back")
    assert _statuses(sub, "b")[-1]["state"] == "online"
    # the next writer: a WAV file this time (sox -t wav -), in the pipe's format, its header skipped
    wav = write_tones(tmp_path / "again.wav", [6] * 5)
    writers.append(_write(one, wav.read_bytes()))
    sub.wait_for(lambda m: m.topic == "genrecast/a/status" and m.payload["state"] == "online"
                 and any(m is later for later in sub.messages[seen:]), "a online again")
    sub.wait_for(lambda m: m.topic == "genrecast/a/genre" and m.payload.get("genre") == "metal", "a: metal")
    sub.wait_for(lambda m: m.topic == "genrecast/a/prediction" and m.payload["window_start_s"] >= 6.5
                 and not m.payload.get("provisional"), "a: the second writer's third window")
    daemon.wait_log("a WAV file's header, skipped")
    daemon.signal(signal.SIGTERM)
    rc, err = daemon.finish()
    assert rc == 0, err
    sub.close()
    check_all(sub.messages)
    a_windows = [m.payload for m in sub.of("a/prediction") if not m.payload.get("provisional")]
    # the second writer's audio comes after the first's 5 s, and no window spans the two
    assert {p["top"]["genre"] for p in a_windows if p["window_end_s"] <= 5.0} == {"disco"}
    assert {p["top"]["genre"] for p in a_windows if p["window_start_s"] >= 5.0} == {"metal"}
    assert all(p["window_end_s"] <= 5.0 or p["window_start_s"] >= 5.0 for p in a_windows)
    assert "error" not in err.lower()


def test_a_pipe_read_as_the_wrong_format_or_sent_a_compressed_file_is_named(broker, model, tmp_path):
    """The same checks as stdin's, naming the pipe: a WAV of another format, refused naming both."""
    fifo = tmp_path / "radio.pcm"
    os.mkfifo(fifo)
    daemon = Daemon("--source", f"pipe:{fifo}", "--model", str(model), "--broker", broker.url)
    wav = write_tones(tmp_path / "stereo.wav", [3] * 3, rate=44100, channels=2)
    _write(fifo, wav.read_bytes()).join()
    rc, err = daemon.finish()
    assert rc == 2, err
    assert err.strip().splitlines()[-1] == (
        f"genrecast run: error: pipe:{fifo}: a WAV file of s16le/44100/2, but the pipe is read as raw s16le/22050/1: "
        "give --format, --rate and --channels to match, or --source file:PATH")


@pytest.mark.parametrize("make, problem", [
    (lambda p: None, "no such pipe (make it with: mkfifo {path})"),
    (lambda p: p.write_bytes(b"\0" * 100), "is a file: use --source file:PATH"),
    (lambda p: p.mkdir(), "is not a named pipe (mkfifo makes one)"),
], ids=["missing", "file", "folder"])
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
    daemon.signal(signal.SIGTERM)
    rc, err = daemon.finish()
    assert rc == 0, err
    sub.close()
