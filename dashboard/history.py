"""What the dashboard knows about each stream, kept bounded so memory stays flat over days of messages.

The MQTT thread writes with :meth:`History.add`; page callbacks read an immutable :class:`Snapshot`. Both sides
take one lock, held only to update or copy a few references.
"""

from __future__ import annotations

import itertools
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from genrecast.contract import not_yet_known

from .parse import Decision, GenreChange, Message, Prediction, ProcessStatus, Retired, Status

DEFAULT_MAX_WINDOWS = 600  # 10 minutes of windows at the daemon's default 1-s hop
DEFAULT_MAX_STREAMS = 1000  # a fleet's worth (one dashboard for many multi-stream daemons); memory: docs/dashboard.md
DEFAULT_MAX_BYTES = 256 * 2**20  # all timelines together, estimated by window_bytes
WINDOW_BYTES = 700  # a window's fixed cost: the Prediction, its decision, time and numbers
LABEL_BYTES = 32  # and per label: its probability (a float in a tuple)
TAG_BYTES = 200  # and per style tag, besides its name's characters: the pair, the string and the float (not shared)
STALE_AFTER_S = 10.0  # an online stream this quiet is "stalled"; the daemon sends a window per second
FORGOTTEN_IDS = 1024  # evicted stream ids remembered, to fetch their retained state if they speak again


@dataclass(frozen=True)
class StreamView:
    """One stream as last heard; ``last_message_at`` is on the history's clock (monotonic by default)."""

    stream_id: str
    last_message_at: float
    last_message_wall: datetime | None = None  # the same moment in UTC, for the API
    status: Status | None = None
    decision: Decision | None = None
    since: datetime | None = None  # when ``decision`` started, if a genre message told us
    music: bool | None = None  # the genre message's music answer for ``decision`` (uncertain: music with no genre)
    model_id: str | None = None
    latest: Prediction | None = None
    timeline: tuple[Prediction, ...] = ()  # the latest windows, in arrival order
    windows: int = 0  # windows received: the last ``windows - n`` of the timeline arrived after the n-th
    incarnation: str = ""  # which life of this stream in which history ``windows`` counts (restarts at 0 in a new one)
    process_gone: str | None = None  # why the process publishing this stream is offline (its will), else None
    state_tags: tuple[tuple[str, float], ...] = ()  # the genre message's: its state's announced tags

    @property
    def tags(self) -> tuple[tuple[str, float], ...]:
        """The style tags to show: the latest window's, else (a stream that ended before the dashboard started, whose
        retained genre message is all there is) its state's, which showed as none."""
        if self.decision is None:  # a new run not yet judged: the last run's window's tags are not its
            return ()
        return self.latest.tags if self.latest else self.state_tags

    @property
    def offline(self) -> bool:
        """Down by its own retained status, or by its process's (whose last will the stream's own cannot say)."""
        return self.process_gone is not None or (self.status is not None and self.status.state == "offline")

    def liveness(self, now: float, connected: bool) -> str:
        """online / offline from the retained status, offline too when the process publishing it is (its last will
        says so: the stream's own retained status cannot); "stalled" when an online daemon has gone quiet although
        our broker connection is fine (a hung process keeps its connection, so its last will never fires)."""
        if self.offline:
            return "offline"
        state = self.status.state if self.status else "no status"
        if state == "online" and connected and now - self.last_message_at > STALE_AFTER_S:
            return "stalled"
        return state

    def why(self, now: float, connected: bool) -> str:
        """Why it is not online ("" when it is, or nobody said): the stream's own reason first (a source that
        failed to open), then its process's (the process's alone hid it); a stream gone quiet, as such."""
        if self.liveness(now, connected) == "stalled" and self.status and self.status.state == "online":
            return f"says it is online, but sent nothing for over {STALE_AFTER_S:g} s"
        own = self.status.reason if self.status and (self.status.state == "offline" or not self.process_gone) else None
        return "; ".join(why for why in (own, self.process_gone) if why)


@dataclass(frozen=True)
class Snapshot:
    streams: tuple[StreamView, ...]  # sorted by stream id
    version: int  # grows with every message added, so readers can skip redrawing unchanged data

    def stream(self, stream_id: str | None) -> StreamView | None:
        return next((s for s in self.streams if s.stream_id == stream_id), None)


def window_bytes(p: Prediction) -> int:
    """About what one window held in a timeline costs; its labels are shared (see History._shared_labels), its tags
    are its own."""
    return WINDOW_BYTES + LABEL_BYTES * len(p.probabilities) + sum(TAG_BYTES + len(name) for name, _ in p.tags)


class _Stream:
    """Mutable per-stream state, only touched under the history's lock."""

    def __init__(self, stream_id: str, max_windows: int, incarnation: str) -> None:
        # before its first message (which every view has had before it is read): older than any retained one
        self.view = StreamView(stream_id=stream_id, last_message_at=-math.inf, incarnation=incarnation)
        self.timeline: deque[Prediction] = deque()
        self.max_windows = max_windows
        self.bytes = 0  # window_bytes of the timeline

    def append(self, p: Prediction) -> int:
        """Add a window, dropping the oldest beyond max_windows; the change in bytes."""
        self.timeline.append(p)
        change = window_bytes(p)
        if len(self.timeline) > self.max_windows:
            change -= window_bytes(self.timeline.popleft())
        self.bytes += change
        return change

    def drop_oldest(self) -> int:
        gone = window_bytes(self.timeline.popleft())
        self.bytes -= gone
        return gone


class History:
    """Latest status, decision and a bounded window timeline per stream, for at most ``max_streams`` streams.

    Timelines hold at most ``max_windows`` windows each and ``max_bytes`` together: a count alone let 50 streams of
    64 labels of 200 characters take 580 MB. Windows repeat their labels, so one copy of each label tuple is kept
    and shared. Over the byte budget, the stream being added to drops its oldest window if it holds at least its
    share, else the stream holding most does.

    When a new stream would exceed ``max_streams``, one is forgotten, so a publisher inventing stream ids cannot
    grow memory without bound: first the streams with no status (every daemon sends one, a flood of made-up ids
    rarely does), the one heard from least recently among them. A forgotten stream that speaks again is reported
    by :meth:`add`, so the feed can fetch its retained status and genre again.
    """

    def __init__(
        self,
        max_windows: int = DEFAULT_MAX_WINDOWS,
        max_streams: int = DEFAULT_MAX_STREAMS,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if max_windows < 1 or max_streams < 1 or max_bytes < 1:
            raise ValueError("max_windows, max_streams and max_bytes must be at least 1")
        self.max_windows = max_windows
        self.max_streams = max_streams
        self.max_bytes = max_bytes
        self._bytes = 0  # window_bytes of every timeline
        self._labels: dict[tuple[str, ...], tuple[str, ...]] = {}  # one copy of each label tuple, bounded
        self.clock = clock  # public: readers compare last_message_at with it
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._forgotten: OrderedDict[str, None] = OrderedDict()  # evicted ids, newest last, bounded
        self._gone: dict[str, str] = {}  # process name -> why it is offline, for processes whose status says so
        self._version = 0
        self._token = secrets.token_hex(4)  # tells this history's stream incarnations from a restarted server's
        self._born = itertools.count()

    def add(self, message: Message, age: float = 0.0) -> bool:
        """Take one message, sent ``age`` seconds ago; True when it brought back a forgotten stream without its
        retained state."""
        with self._lock:
            self._version += 1
            if isinstance(message, ProcessStatus):
                self._process(message)
                return
            if isinstance(message, Retired):
                gone = self._streams.pop(message.stream_id, None)
                self._bytes -= gone.bytes if gone else 0
                return False
            stream = self._streams.get(message.stream_id)
            came_back = False
            if stream is None:
                if len(self._streams) >= self.max_streams:
                    self._evict()
                if message.stream_id in self._forgotten:
                    del self._forgotten[message.stream_id]
                    came_back = not isinstance(message, Status)
                stream = self._streams[message.stream_id] = _Stream(message.stream_id, self.max_windows,
                                                                    f"{self._token}-{next(self._born)}")
            view = stream.view
            at = self.clock() - age
            # its wall time with it, once: wall time now less the age, worked out at each poll, moved by microseconds
            # (a client saw a new message at every poll), and a clock read once at the start misses NTP's later step
            changes: dict = {"last_message_at": at, "last_message_wall": datetime.now(UTC) - timedelta(seconds=age)} \
                if at >= view.last_message_at else {}
            match message:
                case Status():
                    changes["status"] = message
                    changes["process_gone"] = self._gone.get(message.daemon) if message.daemon else None
                    if message.model_id:
                        changes["model_id"] = message.model_id
                case Prediction():
                    message = replace(message, labels=self._shared_labels(message.labels))
                    self._bytes += stream.append(message)
                    self._trim(stream)
                    changes.update(latest=message, decision=message.decision, model_id=message.model_id,
                                   windows=view.windows + 1)
                    if not message.decision.same_state(view.decision):
                        changes["since"] = changes["music"] = None  # the new state's genre message follows
                case GenreChange() if not_yet_known(message.decision.kind, message.decision.confidence):
                    # the start's "not yet known" is no decision: the card said "uncertain · 0%" for a stream
                    # that had never been judged, even once it had gone offline ("no answer"). It ends a previous
                    # run's decision (one a genre message gave: since is set), not this run's first windows' unsure
                    # state, which the refreshes of the first dwell would otherwise blank every 10 s
                    if view.since is not None:
                        changes.update(decision=None, since=None)
                    changes.update(model_id=message.model_id, music=message.music, state_tags=())
                case GenreChange():
                    changes.update(decision=message.decision, since=message.since, model_id=message.model_id,
                                   music=message.music, state_tags=message.tags)
            stream.view = replace(view, **changes)
            return came_back

    def _shared_labels(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        shared = self._labels.get(labels)
        if shared is None:
            if len(self._labels) >= 4 * self.max_streams:  # made-up label sets must not grow it without bound
                self._labels.clear()
            shared = self._labels[labels] = labels
        return shared

    def _trim(self, stream: _Stream) -> None:
        """Drop oldest windows until the timelines fit ``max_bytes`` (each stream keeps its newest window)."""
        while self._bytes > self.max_bytes:
            fair = self._bytes / len(self._streams)
            victim = stream if stream.bytes >= fair else max(self._streams.values(), key=lambda s: s.bytes)
            if len(victim.timeline) <= 1:
                return
            self._bytes -= victim.drop_oldest()

    def _evict(self) -> None:
        victim = min(self._streams.values(), key=lambda s: (s.view.status is not None, s.view.last_message_at))
        self._bytes -= victim.bytes
        del self._streams[victim.view.stream_id]
        self._forgotten[victim.view.stream_id] = None
        while len(self._forgotten) > FORGOTTEN_IDS:
            self._forgotten.popitem(last=False)

    def _process(self, message: ProcessStatus) -> None:
        """A process went offline (or came back): every stream it publishes follows; bounded like the streams."""
        if message.online or message.retired:
            self._gone.pop(message.name, None)
        elif message.name in self._gone or len(self._gone) < self.max_streams:
            self._gone[message.name] = f"its process {message.name} is offline ({message.reason or 'no reason'})"
        gone = self._gone.get(message.name)
        for stream in self._streams.values():
            if stream.view.status and stream.view.status.daemon == message.name:
                stream.view = replace(stream.view, process_gone=gone)

    def snapshot(self, timelines: bool = True) -> Snapshot:
        """Every stream; without ``timelines`` (the overview) no window history is copied, which at hundreds of
        streams is most of the cost."""
        with self._lock:
            if timelines:
                views = [replace(s.view, timeline=tuple(s.timeline)) for s in self._streams.values()]
            else:
                views = [s.view for s in self._streams.values()]
            version = self._version
        return Snapshot(streams=tuple(sorted(views, key=lambda v: v.stream_id)), version=version)

    def stream(self, stream_id: str | None) -> StreamView | None:
        """One stream with its timeline (the detail view: no other stream's timeline is copied)."""
        with self._lock:
            s = self._streams.get(stream_id) if stream_id is not None else None
            return replace(s.view, timeline=tuple(s.timeline)) if s else None

