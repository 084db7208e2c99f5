"""Audio dropped because processing fell behind (a live source's backlog full): what is dropped, and what the
stream's windows make of the gap. How much a real overloaded process drops is a matter of timing, so the intake is
fed by a stand-in source and the stream pushed by hand."""

from __future__ import annotations

import threading
import types

import numpy as np
from genrecast.daemon.intake import Intake
from genrecast.daemon.pipeline import Pipeline
from genrecast.daemon.service import NOT_YET_KNOWN, StreamRun
from genrecast.daemon.sources import Chunk
from tiny_model import tiny_spec

RATE = 1000


class Burst:
    """A live source that hands over ``n`` chunks of 0.1 s at once, numbered by their samples, then ends."""

    description, live, sample_rate, unavailable = "stdin", True, RATE, None

    def __init__(self, n: int = 40) -> None:
        self.n = n

    def chunks(self, stop: threading.Event):
        for i in range(self.n):
            yield Chunk(np.arange(i * 100, (i + 1) * 100, dtype=np.float32), 0.0)

    def close(self) -> None:
        pass


def test_a_full_backlog_drops_its_oldest_half_at_once_and_take_says_how_much_came_before():
    """Dropped a chunk at a time, every take of an overloaded stream followed a drop, and a stream that starts its
    windows afresh after each would never have had a whole one."""
    intake = Intake("s", Burst(), None, backlog_seconds=1.0, drop_oldest=True)
    intake.start()
    intake._thread.join(30)
    assert intake.end_reason == "end of stream"
    first, gap = intake.take(10 * RATE)
    assert gap == intake.dropped > 0  # all of it lay before these
    kept = np.concatenate([c.samples for c in first])
    assert np.array_equal(kept, np.arange(4000 - kept.size, 4000))  # the newest, whole and in order
    assert intake.dropped == 4000 - kept.size and kept.size <= RATE
    assert intake.take(RATE) == ([], 0)
    # one chunk over a full backlog (1 s): it drops down to half at once (6 chunks, to make room for the 11th),
    # not the one chunk that would make room
    one_over = Intake("s", Burst(11), None, backlog_seconds=1.0, drop_oldest=True)
    one_over.start()
    one_over._thread.join(30)
    assert one_over.dropped == 600 and one_over.take(10 * RATE)[1] == 600


def test_windows_after_a_drop_count_the_dropped_audio_and_do_not_span_it():
    """They counted only the audio kept: the first window after a drop of 19 s said 0-3 s, half of it from before
    the drop."""
    spec = tiny_spec()
    run = object.__new__(StreamRun)  # what push() reads: the rest needs a broker and a source
    run.model, run.cfg = types.SimpleNamespace(spec=spec), types.SimpleNamespace(hop_seconds=1.0)
    run.intake = types.SimpleNamespace(sample_rate=22050)
    restarts = []
    run.decider = types.SimpleNamespace(restart=lambda: restarts.append(True))
    run.consumed, run.windows_before_gap, run.resuming, run.live = 0, 0, False, True
    run.tracker = types.SimpleNamespace(state=object())  # a genre announced already
    run.pipeline = Pipeline(spec, 1.0, 22050)
    second = np.zeros(22050, np.float32)
    before = [w for w, _ in run.push([Chunk(second, 0.0) for _ in range(5)])]
    assert [round(w.start_s) for w in before] == [0, 1, 2]
    after = [w for w, _ in run.push([Chunk(second, 0.0) for _ in range(5)], dropped=19 * 22050)]
    assert restarts == [True]
    # whole windows only: a stream that is behind has no time for provisional ones
    assert [(round(w.start_s, 1), round(w.end_s, 1)) for w in after] == [(24.0, 27.0), (25.0, 28.0), (26.0, 29.0)]
    assert run.windows_classified == 6
    # a stream that has said nothing yet (a drop at its very first take) still answers early
    run.tracker.state, run.consumed, run.pipeline = NOT_YET_KNOWN, 0, Pipeline(spec, 1.0, 22050)
    early = [w for w, _ in run.push([Chunk(second, 0.0) for _ in range(3)], dropped=5 * 22050)]
    assert early[0].provisional and round(early[0].start_s, 1) == 5.0
