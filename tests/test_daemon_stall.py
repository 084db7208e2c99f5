"""A stream's stall and recovery, tick by tick (StreamRun.check), with a stand-in for its intake: what a device
that goes and comes back on its own looks like is a matter of timing that real PortAudio cannot be made to give on
demand (tests/test_daemon_mic.py runs the same paths through a real sound server)."""

from __future__ import annotations

import types

from genrecast.daemon.decision import State
from genrecast.daemon.service import StreamRun, _Tracker


class Intake:
    description = "mic:usb"
    dropped = held = 0

    def __init__(self) -> None:
        self.last_audio, self.device_problem, self.reopens = 0.0, None, 0

    def reopen(self) -> None:
        self.reopens += 1

    def close(self) -> None:
        pass


def stream() -> tuple[StreamRun, list[tuple[str, str | None]]]:
    run = object.__new__(StreamRun)  # only what check() reads: the rest needs a model, a broker and a source
    run.pipeline, run.intake, run.live, run.reopenable = object(), Intake(), True, True
    run.state, run.reason, run.id, run.stall_seconds = "online", None, "k", 10.0
    run.stalled_since = run.last_reopen = run.quiet_from = 0.0
    run.cfg, run.dropped_reported, run.drop_status_at = types.SimpleNamespace(source="mic:usb"), 0, 0.0
    run.cut_off, run.pace, run.live_pipe = 0, None, False
    run.decider = types.SimpleNamespace(forget=lambda: State("silence", None, 1.0))
    run.model, run.tracker = types.SimpleNamespace(spec=types.SimpleNamespace(has_tags=False)), _Tracker()
    published: list[tuple[str, str | None]] = []
    run.publish_status = lambda: published.append((run.state, run.reason))
    run.current = State("uncertain", None, 0.0)
    run.publish_genre = lambda: published.append(("genre", run.current.kind))
    return run, published


def test_a_device_gone_stalls_at_once_and_its_own_return_is_not_reopened_again():
    run, published = stream()
    run.intake.last_audio, run.intake.device_problem = 99.5, "mic:usb: no such input device"
    run.check(100.0)
    # at once, not after 10 s; silence first (no audio: the state before it ends there)
    assert published == [("genre", "silence"), ("stalled", "mic:usb: no such input device; retrying")]
    run.check(130.0)  # still gone: the microphone keeps reopening itself; no reopen of ours beside it
    run.intake.device_problem = None  # it reopened itself; its first chunk is on its way
    for t in (130.05, 130.1, 135.0):
        run.check(t)
    assert run.intake.reopens == 0 and run.state == "stalled"  # (it replaced the source that had just come back)
    run.intake.last_audio = 135.02
    run.check(135.05)
    # the genre first (not renewed while stalled: Home Assistant may have expired it), then the status
    assert published[-2:] == [("genre", "silence"), ("online", None)] and run.intake.reopens == 0


def test_a_device_back_but_silent_is_then_a_stall_for_no_audio_and_reopened():
    run, published = stream()
    run.intake.last_audio, run.intake.device_problem = 99.5, "mic:usb: no such input device"
    run.check(100.0)
    run.intake.device_problem = None
    run.check(100.5)
    assert run.intake.reopens == 0 and published[-1][1].endswith("; retrying")
    run.check(110.6)  # silent for stall_seconds since it was last seen gone: the reason says so, and it is reopened
    assert published[-1] == ("stalled", "no audio for 10 s") and run.intake.reopens == 1


def test_a_silent_source_still_stalls_after_stall_seconds_and_is_reopened_every_period():
    run, published = stream()
    run.intake.last_audio = 100.0
    run.check(109.0)
    assert published == []
    run.check(110.5)
    assert published == [("genre", "silence"), ("stalled", "no audio for 10 s")] and run.intake.reopens == 1
    run.check(115.0)
    run.check(120.6)
    assert run.intake.reopens == 2 and len(published) == 2


def test_a_source_that_ends_in_the_tick_its_audio_came_back_still_leaves_its_last_genre():
    """A pipe paused past stall_seconds, then a last burst and its end: the stream ended from "stalled", and its
    final answer was not sent again (it is, for a stream that ends online)."""
    run, published = stream()
    run.windows_before_gap, run.pipeline = 4, types.SimpleNamespace(windows_out=2)
    run.intake.last_audio = 100.0
    run.check(110.5)
    run.intake.last_audio = 115.0  # the burst, classified; its end found in the same tick, before check()
    run.end("end of stream")
    assert published[-2:] == [("genre", "silence"), ("offline", "end of stream")]
    quiet, quiet_published = stream()  # stalled to its end with no audio since: nothing new to leave
    quiet.windows_before_gap, quiet.pipeline = 4, types.SimpleNamespace(windows_out=0)
    quiet.check(110.5)
    quiet.end("end of stream")
    assert quiet_published[-2:] == [("stalled", "no audio for 10 s"), ("offline", "end of stream")]


def test_systemds_status_does_not_count_a_stalled_stream_as_running():
    """A kitchen microphone review: one stalled stream read "1 stream(s) running, 1 stalled"."""
    from genrecast.daemon.service import _summary

    def run(state: str, missing_at: float = -1.0) -> types.SimpleNamespace:
        return types.SimpleNamespace(state=state, device_missing_at=missing_at)

    assert _summary([run("stalled")], now=5.0) == "0 stream(s) running, 1 stalled"
    streams = [run("online"), run("online"), run("stalled"), run("stalled", missing_at=5.0)]
    assert _summary(streams, now=5.0, failed=1, ended=2) == \
        "2 stream(s) running, 1 stalled, 1 waiting for their device, 1 failed, 2 ended"


def test_a_late_chunk_from_a_device_still_gone_does_not_bring_the_stream_back():
    """A stalled stream takes any audio (its first starts afresh), but a chunk the reader handed over just before
    the device went is no sign it is back: only a whole window waiting holds off a device known gone (a review)."""
    run, published = stream()
    run.pipeline = types.SimpleNamespace(samples_to_next_window=lambda: 22050)
    run.resuming = False
    run.intake.last_audio, run.intake.device_problem = 99.5, "mic:usb: no such input device"
    run.check(100.0)
    run.resuming = True  # what check() sets when it stalls the stream
    run.intake.held, run.intake.last_audio = 1102, 100.5  # 50 ms that landed late; the device is still gone
    run.check(101.0)
    assert published == [("genre", "silence"), ("stalled", "mic:usb: no such input device; retrying")]
    run.intake.held = 3 * 22050  # a writer's burst, then its end: a whole window waits, so it is heard first
    run.check(102.0)
    assert published[-2:] == [("genre", "silence"), ("online", None)]
