"""A live pipe whose declared rate or channels are wrong is named: raw PCM has no header to say so, and 44.1 kHz
read as 22.05 was classified wrongly for as long as it ran, without a word (a radio operator review). Driven tick
by tick with the clock given, as the loop drives it: two minutes of real time is the point."""

from __future__ import annotations

import logging
import threading
import types

import numpy as np
import pytest
from daemon_helpers import HandFed
from genrecast.daemon.config import RunSettings
from genrecast.daemon.pace import SPAN_SECONDS, PaceCheck
from genrecast.daemon.service import StreamRun
from genrecast.daemon.sources import Chunk
from tiny_model import tiny_spec

RATE = 22050


@pytest.mark.parametrize(("pace", "named"), [(1.0, False), (1.3, False), (2.0, True), (0.5, True)])
def test_a_pace_far_from_real_time_is_named_once_after_the_span(pace, named):
    check = PaceCheck(RATE)
    received = 10 * RATE  # a decoder's prebuffer, at once: left out
    assert check.check(0.0, received, 0.0) is None
    for t in range(1, int(SPAN_SECONDS) + 30):
        received += round(pace * RATE)
        said = check.check(float(t), received, float(t))
        if t < SPAN_SECONDS or not named:
            assert said is None
        elif t == SPAN_SECONDS:
            assert said == pytest.approx(pace)
        else:
            assert said is None  # once


def test_a_pause_starts_the_span_afresh():
    """With a stall of 60 s, a 40-s outage in two minutes read as a pace of 0.67, blamed on the declaration; a
    stall is a pause too."""
    check = PaceCheck(RATE)
    received = 0
    for t in range(0, 300):
        if not 30 <= t < 90:  # no audio from 30 to 90 s: half the first two minutes
            received += RATE
            last = float(t)
        assert check.check(float(t), received, last) is None
    assert check.done  # measured, from 94 s on, at one second a second


def test_a_stdin_stream_at_twice_real_time_says_so_naming_rate_and_channels(caplog):
    settings = RunSettings(source="stdin")
    model = types.SimpleNamespace(spec=tiny_spec(), model_id="tiny-test")
    run = StreamRun(settings.stream_settings()[0], HandFed("stdin:s16le/22050/1"), settings, model, publisher=None,
                    daemon="d", instance="i")
    assert run.ready()
    run.publish_status = lambda: None
    second = np.zeros(RATE, np.float32)
    with caplog.at_level(logging.WARNING, logger="genrecast.run"):
        for t in range(int(SPAN_SECONDS) + 2):
            for _ in range(2):  # two seconds of audio each second: stereo read as mono
                run.intake._put(Chunk(second, float(t)), threading.Event())
            run.intake.last_audio = float(t)  # the clock the check is given
            run.take()
            run.check(float(t))
    (line,) = [r.getMessage() for r in caplog.records if "a second" in r.getMessage()]
    assert line.startswith("stream stdin: stdin:s16le/22050/1 delivers 2.00 s of audio a second"), line
    assert line.endswith("--rate, --channels or --format is wrong (stereo read as mono, 44.1 kHz read as 22.05, or "
                         "s32le read as s16le, gives 2)")


def test_a_pipe_stream_measures_each_writer_after_a_stall_afresh():
    """A radio review: a decoder restarted with other flags (stereo into a mono pipe) was never named, the first
    writer's span having settled the pipe's pace for good."""
    settings = RunSettings(source="pipe:/run/radio.pcm")
    model = types.SimpleNamespace(spec=tiny_spec(), model_id="tiny-test")
    run = StreamRun(settings.stream_settings()[0], HandFed("pipe:/run/radio.pcm"), settings, model, publisher=None,
                    daemon="d", instance="i")
    assert run.ready() and run.pace is not None
    run.publish_status = run.publish_genre = lambda: None
    run.pace.done = True  # the first writer was measured
    run.state, run.stalled_since = "stalled", 10.0  # its writer closed the pipe
    run.intake.last_audio = 20.0  # the next writer's audio
    run.check(20.0)
    assert run.state == "online" and not run.pace.done
