"""The per-stream history: latest state per stream, bounded in windows and in streams, safe to read while written."""

from __future__ import annotations

import threading
import tracemalloc

from dashboard_payloads import encode, genre, prediction, status
from genrecast.dashboard.history import History, window_bytes
from genrecast.dashboard.parse import Prediction, parse_message


def msg(kind: str, payload: dict):
    return parse_message("genrecast", f"genrecast/{payload['stream_id']}/{kind}", encode(payload))


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_latest_state_per_stream():
    clock = FakeClock()
    h = History(clock=clock)
    h.add(msg("status", status("kitchen")))
    h.add(msg("genre", genre("kitchen", "rock")))
    clock.t = 105.0
    h.add(msg("prediction", prediction("kitchen", "rock", 0.8, t=1.0)))
    h.add(msg("status", status("garage", "offline")))
    snap = h.snapshot()
    assert [v.stream_id for v in snap.streams] == ["garage", "kitchen"]
    kitchen = snap.stream("kitchen")
    assert kitchen.status.state == "online" and kitchen.decision.genre == "rock"
    assert kitchen.since is not None, "a prediction with the same state keeps the genre message's 'since'"
    assert kitchen.last_message_at == 105.0 and kitchen.model_id == "gtzan-cnn-1"
    assert len(kitchen.timeline) == 1 and kitchen.latest.window_start_s == 1.0
    assert snap.stream("garage").status.state == "offline" and snap.stream("garage").decision is None

    h.add(msg("prediction", prediction("kitchen", "jazz", 0.9, t=2.0)))
    kitchen = h.snapshot().stream("kitchen")
    assert kitchen.decision.genre == "jazz" and kitchen.since is None
    assert h.snapshot().version > snap.version


def test_clearing_the_retained_status_forgets_the_stream():
    h = History()
    h.add(msg("status", status("kitchen", "offline")))
    h.add(msg("status", status("garage")))
    h.add(parse_message("genrecast", "genrecast/kitchen/status", b""))
    h.add(parse_message("genrecast", "genrecast/kitchen/genre", b""))  # clearing both topics is fine
    assert [v.stream_id for v in h.snapshot().streams] == ["garage"]


def test_snapshot_is_unaffected_by_later_messages():
    h = History()
    h.add(msg("prediction", prediction("kitchen", t=0.0)))
    snap = h.snapshot()
    h.add(msg("prediction", prediction("kitchen", t=1.0)))
    assert len(snap.stream("kitchen").timeline) == 1


def test_windows_are_bounded_and_memory_stays_flat():
    h = History(max_windows=50)
    p = prediction("kitchen")

    def feed(n: int) -> None:
        for i in range(n):
            p["window_start_s"] = float(i)
            h.add(msg("prediction", p))

    feed(200)  # fill to capacity (and warm caches)
    tracemalloc.start()
    try:
        feed(200)
        full = tracemalloc.get_traced_memory()[0]
        feed(5000)
        later = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    timeline = h.snapshot().stream("kitchen").timeline
    assert len(timeline) == 50 and timeline[-1].window_start_s == 4999.0
    assert later - full < 50_000, f"memory grew by {later - full} bytes over 5000 windows at capacity"


def test_streams_are_bounded_forgetting_the_quietest():
    clock = FakeClock()
    h = History(max_streams=3, clock=clock)
    for i, name in enumerate(["a", "b", "c"]):
        clock.t = float(i)
        h.add(msg("status", status(name)))
    clock.t = 10.0
    h.add(msg("status", status("a")))  # a is fresh again; b is now the quietest
    h.add(msg("status", status("d")))
    assert [v.stream_id for v in h.snapshot().streams] == ["a", "c", "d"]


def test_a_flood_of_made_up_ids_evicts_its_own_kind_first():
    """5000 ids with predictions and no status: the real streams (each with a status) stay."""
    clock = FakeClock()
    h = History(max_streams=8, clock=clock)
    for name in ("kitchen", "den"):
        h.add(msg("status", status(name)))
        h.add(msg("genre", genre(name, "jazz")))
    for i in range(5000):
        clock.t += 0.001
        h.add(msg("prediction", prediction(f"fake{i}")))
    streams = {v.stream_id: v for v in h.snapshot().streams}
    assert len(streams) == 8 and streams["kitchen"].status.state == "online"
    assert streams["den"].decision.genre == "jazz"


def test_a_forgotten_stream_that_speaks_again_asks_for_its_retained_state():
    h = History(max_streams=2)
    assert not h.add(msg("status", status("a")))
    h.add(msg("status", status("b")))
    h.add(msg("status", status("c")))  # all have a status: a, the quietest, goes
    assert [v.stream_id for v in h.snapshot().streams] == ["b", "c"]
    assert h.add(msg("prediction", prediction("a")))  # back, without its status: fetch it again
    assert not h.add(msg("prediction", prediction("never-seen")))  # new, not forgotten: nothing to fetch


def test_concurrent_writer_and_readers():
    h = History(max_windows=20)
    errors: list[BaseException] = []
    done = threading.Event()
    m = msg("prediction", prediction("kitchen"))

    def read() -> None:
        try:
            while not done.is_set():
                for v in h.snapshot().streams:
                    assert len(v.timeline) <= 20
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for r in readers:
        r.start()
    for _ in range(5000):
        h.add(m)
    done.set()
    for r in readers:
        r.join()
    assert not errors
    assert h.snapshot().version == 5000


def test_a_stream_is_offline_while_the_process_publishing_it_is():
    h = History(clock=lambda: 0.0)

    def add(topic: str, payload: dict) -> None:
        h.add(parse_message("genrecast", topic, encode(payload)))

    def process(state: str, **extra) -> dict:
        return {"version": 1, "daemon": "rack", "state": state, "time": status("x")["time"], "instance": "i", **extra}

    add("genrecast/a/status", status("a", daemon="rack"))
    add("genrecast/b/status", status("b", daemon="other"))
    assert [v.liveness(1.0, True) for v in h.snapshot().streams] == ["online", "online"]
    add("genrecast/_daemon/rack/status", process("offline", reason="connection lost"))  # the will
    assert [v.liveness(1.0, True) for v in h.snapshot().streams] == ["offline", "online"]
    assert h.snapshot().stream("a").process_gone == "its process rack is offline (connection lost)"
    add("genrecast/c/status", status("c", daemon="rack"))  # a retained status arriving after the will
    assert h.snapshot().stream("c").liveness(1.0, True) == "offline"
    add("genrecast/_daemon/rack/status", process("online"))  # restarted
    assert [v.liveness(1.0, True) for v in h.snapshot().streams] == ["online", "online", "online"]
    add("genrecast/_daemon/rack/status", process("offline", reason="stopped"))
    h.add(parse_message("genrecast", "genrecast/_daemon/rack/status", b""))  # forgotten (ha-cleanup)
    assert h.snapshot().stream("a").process_gone is None


def long_labelled(stream_id: str, t: float) -> Prediction:
    """A window of 64 labels of 200 characters, parsed from JSON as the feed does (new strings every message)."""
    p = prediction(stream_id)
    p["probabilities"] = {f"{i:02d}" + "x" * 198: 1 / 64 for i in range(64)}
    p["top"]["genre"], p["state"]["genre"] = "00" + "x" * 198, "00" + "x" * 198
    p["window_start_s"], p["window_end_s"] = t, t + 3
    return msg("prediction", p)


def test_long_labels_share_one_copy_and_timelines_keep_to_a_byte_budget():
    """20 streams of 200 such windows took 68 MB when each window kept its own labels."""
    h = History()
    tracemalloc.start()
    try:
        for t in range(200):
            for s in range(20):
                h.add(long_labelled(f"s{s}", float(t)))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 20 * 2**20, f"{held / 2**20:.0f} MB held"
    budget = 200_000
    small = History(max_bytes=budget)
    for t in range(100):
        for s in range(10):
            small.add(long_labelled(f"s{s}", float(t)))
    lengths = [len(v.timeline) for v in small.snapshot().streams]
    per_window = window_bytes(small.snapshot().streams[0].timeline[0])
    assert sum(lengths) * per_window <= budget and max(lengths) - min(lengths) <= 1  # shared fairly
    assert all(v.timeline[-1].window_start_s == 99.0 for v in small.snapshot().streams)  # the newest kept


def test_style_tags_count_in_the_byte_budget():
    """A window's tags are its own (at most 5 names of up to 200 characters): the budget's estimate covers them."""
    def window(stream_id: str, t: float, tags: dict | None) -> Prediction:
        p = prediction(stream_id, music=0.9, tags=tags)
        p["window_start_s"], p["window_end_s"] = t, t + 3
        return msg("prediction", p)

    def held_per_window(tags: dict | None) -> float:
        h = History()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for t in range(300):
                for s in range(4):
                    h.add(window(f"s{s}", float(t), tags))
            return (tracemalloc.get_traced_memory()[0] - before) / 1200
        finally:
            tracemalloc.stop()

    longest = {f"{i}" + "t" * 199: 0.5 for i in range(5)}
    estimated = window_bytes(window("s", 0.0, longest)) - window_bytes(window("s", 0.0, None))
    assert held_per_window(longest) - held_per_window(None) <= estimated, estimated


def test_a_message_older_than_the_monotonic_clock_keeps_its_age():
    """A new stream started at 0.0 on the clock, so a retained message ten minutes old read 100 s old on a
    dashboard started 100 s after boot (the monotonic clock counts from boot)."""
    h = History(clock=lambda: 100.0)
    h.add(parse_message("genrecast", "genrecast/a/status", encode(status("a"))), 600.0)
    assert 100.0 - h.snapshot().stream("a").last_message_at == 600.0
