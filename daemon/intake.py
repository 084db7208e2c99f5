"""One stream's source, read on its own thread into a bounded backlog, so no source can hold up the others.

The processing loop takes audio from every stream's :class:`Intake` each tick. A live source that holds more than
``backlog_seconds`` of audio that has also waited that long loses its oldest (counted, for the stream's status)
instead of growing memory or delaying other streams. Both, not size alone: a pipe that hands over 20 s at once (a
radio stream's network jitter) keeps them while the loop catches up, up to :data:`BURST` times the backlog; nor age
alone: the last few chunks left waiting for a window's end, before a pause, are not stale. A file read as fast as
possible waits for room instead, since nothing is lost by waiting. A source that dies ends its intake with the
reason, and a source asked to reopen (a stalled microphone) is replaced by a fresh one on the same thread while the
old one, perhaps stuck inside PortAudio, is abandoned to its stop event. An intake may also start
with no source at all (a microphone not plugged in yet): its thread opens one with backoff, and only then are its
rate and description known.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable

from genrecast.dsp import AudioError

from genrecast.logs import say_held_back

from .sources import Chunk, Source

log = logging.getLogger("genrecast.source")

REOPEN_BACKOFF = (0.5, 30.0)  # first and longest wait between failed (re)opens
# Most samples one stream's backlog holds (float32: 64 MiB), whatever backlog_seconds says: 3,600 s at 384 kHz
# would be 5.5 GB. 760 s at 22,050 Hz, 350 s at 48 kHz.
MAX_BACKLOG_SAMPLES = 2**24
BURST = 4  # a live backlog holds at most this many times its backlog_seconds, whatever the age (a burst: 40 s)

Opener = Callable[[int | None], Source]  # a fresh source at this rate (None: its own)


class Intake:
    def __init__(self, stream_id: str, source: Source | str, opener: Opener | None, backlog_seconds: float,
                 drop_oldest: bool, wake: threading.Event | None = None, description: str = "") -> None:
        """``source`` is already open, or why it could not be (then ``opener`` is retried with backoff, and
        ``description`` stands for it until it opens); ``opener`` makes a fresh one on :meth:`reopen`, at the rate
        given (None: any). ``wake`` is set once :attr:`wake_at` samples are waiting (or the source ends), so the
        loop classifies a window as soon as its last sample is in, instead of at its next tick."""
        self.stream_id = stream_id
        self._opener, self._backlog_seconds = opener, backlog_seconds
        self._drop_oldest = drop_oldest
        self._closed = threading.Event()
        self._source_stop = threading.Event()  # the current source's stop: set to close or replace it
        self._cond = threading.Condition()
        self._backlog: deque[Chunk] = deque()
        self._held = 0  # samples in the backlog
        self.received = 0  # samples the source has handed over
        self.dropped = 0  # of those, dropped because they waited too long (processing fell behind)
        self._gap = 0  # of those, dropped since the last take: just before the oldest chunk waiting
        self.last_audio = time.monotonic()  # when the source last handed over any samples
        self.sample_rate: int | None = None  # known once a source is open
        self.description, self._limit = description, 1
        self._asked = description  # the source as configured (``description`` becomes the device's own name)
        self._max_age = backlog_seconds  # live: audio that has waited longer is dropped
        self.open_error: str | None = None  # why no source could be opened yet (None once one is)
        self._source: Source | None = None  # the one being read (a reopen replaces it)
        self._reopen_error: str | None = None  # why the last try to reopen the source failed
        if isinstance(source, str):
            self.open_error = source
        else:
            self._opened(source)
        self.end_reason: str | None = None  # set once the source is finished: "end of stream" or "error: ..."
        self._reopen = False
        self._wake = wake
        self.wake_at = 1  # samples waiting that are worth waking the loop for; the loop sets it to a window's need
        self._thread = threading.Thread(target=self._run, name=f"source-{stream_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop reading (the thread ends at the source's next check of its stop event)."""
        self._closed.set()
        self._source_stop.set()
        with self._cond:
            self._cond.notify_all()

    def _opened(self, source: Source) -> None:
        """The first source is open: its rate sizes the backlog, and its silence counts from now."""
        with self._cond:
            self._source, self.description = source, source.description
            wanted = round(self._backlog_seconds * source.sample_rate)
            if wanted > MAX_BACKLOG_SAMPLES and self._limit != MAX_BACKLOG_SAMPLES:
                log.warning("stream %s: backlog_seconds %g at %d Hz would hold %.1f GB; holding %.0f s (%d MiB)",
                            self.stream_id, self._backlog_seconds, source.sample_rate, wanted * 4 / 1e9,
                            MAX_BACKLOG_SAMPLES / source.sample_rate, MAX_BACKLOG_SAMPLES * 4 // 2**20)
            self._limit = max(1, min(wanted, MAX_BACKLOG_SAMPLES))
            self.last_audio = time.monotonic()
            self.open_error = None
            self.sample_rate = source.sample_rate  # last: the loop builds the stream's pipeline once it sees it

    def hold_at_least(self, samples: int, why: str) -> None:
        """Raise the backlog's limit to ``samples`` (said in the log), from the stream that knows what it needs."""
        with self._cond:
            if self._limit < samples <= MAX_BACKLOG_SAMPLES:
                log.info("stream %s: backlog_seconds %g is under %s: holding %.2f s", self.stream_id,
                         self._backlog_seconds, why, samples / self.sample_rate)
                self._limit, self._max_age = samples, samples / self.sample_rate

    @property
    def opened(self) -> bool:
        return self.sample_rate is not None

    @property
    def waiting_for_device(self) -> bool:
        """Its device cannot be opened just now: missing since the start, or gone and being reopened (by us, or by
        a microphone itself). No restart of the process can bring a device back, so this is waiting, not stuck.

        Read by the loop for every stream on every tick, so without the backlog's lock: each flag is one attribute
        that its thread sets whole, and an answer a tick old is good enough."""
        return self.open_error is not None or self.device_problem is not None

    @property
    def device_problem(self) -> str | None:
        """Why the device of a source that was open is gone just now (the microphone reopening itself, or our reopen,
        failing); None while it is there. The stream is stalled at once, with this as its reason."""
        source = self._source
        return self._reopen_error or (source.unavailable if source is not None else None)

    @property
    def finished(self) -> bool:
        """The source ended and everything it gave has been taken."""
        with self._cond:
            return self.end_reason is not None and not self._backlog

    @property
    def held(self) -> int:
        """Samples waiting."""
        return self._held

    @property
    def limit(self) -> int:
        """``backlog_seconds`` of audio, in samples: what a recording read as fast as possible waits on (a live
        stream drops by age instead)."""
        return self._limit

    def take(self, max_samples: int, after_gap: int | None = None) -> tuple[list[Chunk], int]:
        """The oldest chunks, whole, up to about ``max_samples`` (at least one when any is waiting), and the samples
        dropped just before them (the backlog was full: 0 if none), a gap that no window may span. After a gap, up
        to ``after_gap`` samples instead: a stream behind for good drops again before each take, so what follows a
        gap must be enough for a whole window."""
        out, n = [], 0
        with self._cond:
            gap = self._gap
            if gap and after_gap is not None:
                max_samples = max(max_samples, after_gap)
            while self._backlog and (not out or n + self._backlog[0].samples.shape[0] <= max_samples):
                chunk = self._backlog.popleft()
                self._held -= chunk.samples.shape[0]
                n += chunk.samples.shape[0]
                out.append(chunk)
            if out:
                self._gap = 0
                self._cond.notify_all()
        return out, gap

    def reopen(self) -> None:
        """Drop the current source (perhaps stuck in a driver call) and open a new one on the reading thread."""
        with self._cond:
            self._reopen = True
        self._source_stop.set()

    def _put(self, chunk: Chunk, source_stop: threading.Event) -> None:
        n = chunk.samples.shape[0]
        with self._cond:
            self.last_audio = time.monotonic()
            self.received += n
            if not self._drop_oldest:  # a recording: wait for room
                while self._held and self._held + n > self._limit and not source_stop.is_set():
                    self._cond.wait(0.2)
                if source_stop.is_set():  # closing: the rest of a recording is not read, which is not a drop
                    return
            else:  # live: over the backlog and waited as long, or over a burst's cap (a pipe faster than real
                # time), a chunk at a time: the newest are kept
                stale, burst_cap = chunk.handed_at - self._max_age, min(BURST * self._limit, MAX_BACKLOG_SAMPLES)
                while self._backlog and (self._held + n > self._limit and self._backlog[0].handed_at < stale
                                         or self._held + n > burst_cap):
                    old = self._backlog.popleft()
                    self._held -= old.samples.shape[0]
                    self.dropped += old.samples.shape[0]
                    self._gap += old.samples.shape[0]
            self._backlog.append(chunk)
            self._held += n
            if self._wake is not None and self._held >= self.wake_at:
                self._wake.set()

    def _end(self, reason: str) -> None:
        with self._cond:
            self.end_reason = reason
        if self._wake is not None:
            self._wake.set()

    def _read(self, source: Source, source_stop: threading.Event) -> str | None:
        """Read ``source`` until it ends (its end reason), or until closed or replaced (None)."""
        try:
            for chunk in source.chunks(source_stop):
                if chunk.samples.shape[0]:
                    self._put(chunk, source_stop)
            return None if source_stop.is_set() else "end of stream"
        except (AudioError, OSError) as exc:  # a corrupt chunk, a device error the source did not handle
            return f"error: {exc}"
        except Exception as exc:  # a bug in one source must end that stream only, and say why
            log.exception("stream %s: source failed", self.stream_id)
            return f"error: {type(exc).__name__}: {exc}"
        finally:
            source_stop.set()  # tells a source's own threads (the microphone's reader) to end

    def _say_retry(self, verb: str, why: object, backoff: float) -> None:
        """One template for every retry, so that the log's rate limit takes them for one kind (the start's first
        two tries were two lines in its first second)."""
        log.warning("stream %s: cannot %s %s (%s); retrying in %.1f s", self.stream_id, verb, self.description,
                    self._cause(str(why)), backoff)

    def _cause(self, why: str) -> str:
        """The source's error without what the retry line says already: it read "cannot open mic:kitchen
        (mic:kitchen: cannot open ([Errno -9999] ...))"."""
        why = why.removeprefix(f"{self.description}: ").removeprefix(f"{self._asked}: ")  # a reopen names it as asked
        # the microphone's own form names the device as asked ("mic:default", the name before the first open)
        said = re.fullmatch(r"(?:mic:.*?: )?cannot open \((.*)\)", why, flags=re.DOTALL)
        return said.group(1) if said else why

    def _run(self) -> None:
        source: Source | None = self._source
        backoff = REOPEN_BACKOFF[0]
        if source is None:  # the first open failed just now: wait before the next try
            self._say_retry("open", self.open_error, backoff)
            self._closed.wait(backoff)
            backoff = min(backoff * 2, REOPEN_BACKOFF[1])
        while not self._closed.is_set():
            if source is None:
                first = not self.opened
                try:
                    source = self._opener(self.sample_rate)
                except (AudioError, OSError) as exc:
                    self._reopen_error = None if first else str(exc) or type(exc).__name__
                    if first:
                        self.open_error = str(exc)  # the stream's status says it
                    self._say_retry("open" if first else "reopen", exc, backoff)
                    self._closed.wait(backoff)
                    backoff = min(backoff * 2, REOPEN_BACKOFF[1])
                    continue
                if first:
                    self._opened(source)
                else:
                    with self._cond:
                        self._source, self._reopen_error = source, None
                # A reopen after a silence says nothing yet (tried again every stall period while the device stays
                # silent, it was a line every 10 s): the stream says "audio again" once there is. One after failed
                # tries does: the journal's last word was the failure.
                if backoff > REOPEN_BACKOFF[0]:  # the failed tries' count first: said later, it read as current
                    say_held_back(about=self.stream_id)
                log.log(logging.INFO if first or backoff > REOPEN_BACKOFF[0] else logging.DEBUG, "stream %s: %s %s",
                        self.stream_id, source.description, "opened" if first else "reopened")
                backoff = REOPEN_BACKOFF[0]
            with self._cond:
                source_stop = self._source_stop = threading.Event()
                if self._closed.is_set():
                    return
            reason = self._read(source, source_stop)
            if reason is not None:
                self._end(reason)
                return
            with self._cond:
                replacing, self._reopen = self._reopen, False
            if not replacing:
                return  # closed
            source = None
