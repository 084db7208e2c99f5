"""Audio dropped because processing fell behind (a live source's backlog full): what is dropped, and what the
stream's windows make of the gap. How much a real overloaded process drops is a matter of timing, so the intake is
fed by hand (its reading thread is not started) and the stream is driven take by take, as the loop drives it."""

from __future__ import annotations

import logging
import threading
import types

import numpy as np
import pytest
from daemon_helpers import HandFed
from genrecast.daemon.config import RunSettings
from genrecast.daemon.intake import Intake
from genrecast.daemon.service import StreamRun
from genrecast.daemon.sources import Chunk
from tiny_model import tiny_spec

RATE = 22050  # the tiny model's rate: no resampling, so a window's offsets are sample indices
CHUNK = RATE // 10  # 0.1 s, handed over at 0.1-s steps: chunk i at i / 10 s. Backlogs of 0.95 s, 9.95 s: ten and a
# hundred chunks, clear of the ties that whole seconds would make with the steps in floating point


def feed(intake: Intake, first: int, count: int, at: float | None = None) -> None:
    """Chunks ``first`` .. ``first + count - 1`` of the stream, in real time (or all handed over ``at`` once)."""
    for i in range(first, first + count):
        intake._put(Chunk(np.full(CHUNK, i, np.float32), i / 10 if at is None else at), threading.Event())


def numbers(chunks: list[Chunk]) -> list[int]:
    return [int(c.samples[0]) for c in chunks]


def test_a_full_backlog_drops_its_oldest_chunk_at_a_time_and_take_says_how_much_came_before():
    intake = Intake("s", HandFed(), None, backlog_seconds=0.95, drop_oldest=True)
    feed(intake, 0, 25)  # 2.5 s, none taken, into a backlog of about 1 s: the newest second is kept, whole
    chunks, gap = intake.take(RATE)
    assert numbers(chunks) == list(range(15, 25))
    assert gap == intake.dropped == 15 * CHUNK
    assert intake.take(RATE) == ([], 0)


def test_a_gap_that_opens_between_two_takes_is_reported_once_before_the_next():
    intake = Intake("s", HandFed(), None, backlog_seconds=0.95, drop_oldest=True)
    feed(intake, 0, 10)
    chunks, gap = intake.take(3 * CHUNK)
    assert (numbers(chunks), gap) == ([0, 1, 2], 0)
    feed(intake, 10, 6)  # 3..9 waiting, then 10..15: the oldest three (3, 4, 5) never taken
    chunks, gap = intake.take(2 * CHUNK)
    assert (numbers(chunks), gap) == ([6, 7], 3 * CHUNK)
    chunks, gap = intake.take(2 * CHUNK)
    assert (numbers(chunks), gap) == ([8, 9], 0)


def test_a_burst_larger_than_the_backlog_is_kept_while_none_of_it_has_waited_that_long():
    """The backlog dropped by size: a radio pipe that handed over 20 s at once (network jitter) lost half of them
    with the processor idle, "processing fell behind". Up to four times the backlog is kept."""
    intake = Intake("s", HandFed(), None, backlog_seconds=5.05, drop_oldest=True)
    feed(intake, 0, 200, at=5.0)
    chunks, gap = intake.take(1000 * CHUNK)
    assert (numbers(chunks), gap, intake.dropped) == (list(range(200)), 0, 0)
    feed(intake, 200, 300, at=10.0)  # 30 s at once: over the cap, the newest four backlogs' worth are kept
    chunks, gap = intake.take(1000 * CHUNK)
    assert numbers(chunks) == list(range(500 - len(chunks), 500)) and 200 <= len(chunks) <= 202
    assert gap == intake.dropped == (300 - len(chunks)) * CHUNK


def test_what_waits_for_a_windows_end_across_a_pause_is_not_dropped():
    """Dropped by age alone, the few chunks left waiting for a window's end before a pause shorter than a stall
    were stale once the audio came back: "processing fell behind" with the processor idle."""
    intake = Intake("s", HandFed(), None, backlog_seconds=0.95, drop_oldest=True)
    feed(intake, 0, 3)
    feed(intake, 3, 1, at=8.0)
    chunks, gap = intake.take(10 * CHUNK)
    assert (numbers(chunks), gap) == ([0, 1, 2, 3], 0)


def overloaded_stream(backlog_seconds: float) -> tuple[StreamRun, list[int]]:
    """A stream on a :class:`Pipe`, and the numbers of the chunks its takes were given, in order."""
    settings = RunSettings(backlog_seconds=backlog_seconds)
    model = types.SimpleNamespace(spec=tiny_spec(), model_id="tiny-test")
    run = StreamRun(settings.stream_settings()[0], HandFed(), settings, model, publisher=None, daemon="d",
                    instance="i")
    assert run.ready()
    given: list[int] = []
    take = run.intake.take

    def recorded(*args):
        chunks, gap = take(*args)
        given.extend(numbers(chunks))
        return chunks, gap

    run.intake.take = recorded
    return run, given


@pytest.mark.parametrize("backlog_seconds", [9.95, 1.0])
def test_a_stream_behind_for_good_still_completes_windows_none_of_them_across_a_drop(backlog_seconds):
    """Offsets counted only the audio kept (the first window after a drop of 19 s said 0-3 s, half of it from
    before the drop), and a window joined the two sides of a drop. Here 1.5 s arrives while the stream works on
    each second it took. A backlog under a window is held to one window and a take, or no
    take after a drop could complete one. A chunk arrives every 0.1 s, as the clock runs."""
    run, given = overloaded_stream(backlog_seconds)
    windows, sent, arriving = [], 0, 15
    for _ in range(100):
        feed(run.intake, sent, arriving)
        sent, before = sent + arriving, len(given)
        windows += [w for w, _ in run.take()]
        arriving = (len(given) - before) * 3 // 2  # while the stream worked on what it took, 1.5 times that came
    assert run.intake.dropped > 20 * RATE, "the stream did not fall behind"
    assert given == sorted(given) and len(given) < sent
    full = [w for w in windows if not w.provisional]
    assert len(full) >= 20, len(full)
    for w in full:  # every chunk a window covers is one the stream was given: the offsets count what was dropped
        covered = range(round(w.start_s * RATE) // CHUNK, (round(w.end_s * RATE) - 1) // CHUNK + 1)
        assert set(covered) <= set(given), (w.start_s, w.end_s)
    assert run.windows_classified == len(full)
    # Every sample sent is in a window, counted as dropped, or still to come: the status counted only the chunks
    # its backlog dropped, not the audio since the last whole window that each drop cut off, a third of the stream.
    covered, reach = 0, 0
    for w in sorted(full, key=lambda w: w.start_s):
        start, end = round(w.start_s * RATE), round(w.end_s * RATE)
        covered, reach = covered + max(0, end - max(start, reach)), max(reach, end)
    waiting = run.intake.held + run.consumed - reach
    assert abs(sent * CHUNK - covered - run.dropped - waiting) <= len(full), (sent * CHUNK, covered, run.dropped)
    assert run.dropped > run.intake.dropped


@pytest.mark.parametrize(("dropped_chunks", "smoothing_restarted"), [(10, False), (50, True)])
def test_a_drop_longer_than_a_window_starts_the_smoothing_afresh(dropped_chunks, smoothing_restarted):
    """After 18 s dropped, the windows of a country intro before the gap confirmed the classical after it as
    country, two windows on. A short drop is the same music, and the smoothing carries on."""
    run, _ = overloaded_stream(backlog_seconds=9.95)
    restarts = []
    restart = run.decider.restart
    run.decider.restart = lambda: (restarts.append(True), restart())
    feed(run.intake, 0, 10)
    run.take()
    feed(run.intake, 10, 100 + dropped_chunks)  # in real time, untaken: all but the last 10 s go
    run.take()
    assert run.intake.dropped == dropped_chunks * CHUNK
    assert bool(restarts) is smoothing_restarted


def test_streams_behind_together_are_said_in_one_line(caplog):
    """Said per stream, an overloaded process of 80 streams logged 395 lines in 95 s for one cause."""
    from genrecast.daemon.service import _say_drops

    def stream(name: str, dropped: int, source: str = "mic:usb", state: str = "online") -> types.SimpleNamespace:
        return types.SimpleNamespace(id=name, dropped=dropped, dropped_seconds=dropped / RATE,
                                     cfg=types.SimpleNamespace(source=source), state=state,
                                     live_pipe=source == "stdin")

    said: dict[str, int] = {}
    # an ended stream's total is its last line: it was followed by a "dropped so far" from this line's tick
    runs = [stream(n, RATE) for n in "abcde"] + [stream("f", 0), stream("g", RATE, state="offline")]
    with caplog.at_level(logging.WARNING, logger="genrecast.run"):
        _say_drops(runs, said)
        _say_drops(runs, said)  # nothing more dropped: nothing said
        runs[5] = stream("f", 2 * RATE, source="stdin")
        _say_drops(runs, said)
    assert [r.getMessage() for r in caplog.records] == [
        "processing fell behind: 5 of 6 streams dropped audio (a, b, c and 2 more); 5.0 s of theirs dropped so far",
        "stream f: processing fell behind; 2.0 s of its audio dropped so far (a pipe is read live: for a "
        "recording, --speed 0 waits instead)"]
