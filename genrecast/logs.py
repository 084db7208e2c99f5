"""Logging for the long-running commands: one format, and repeated lines rate-limited (the journal gets the first
of a kind, then a count, not one line per chunk or per refused request).

Shared by ``genrecast run`` and ``genrecast dashboard``. Lines are alike when they share logger, level, message
template (the ``%s`` text before its arguments) and the arguments that are text: the numbers are what change from
chunk to chunk ("stream a: 3.2 s behind", "... 3.4 s"), the names say what a line is about (stream a is not
stream b). A call may name its kind itself with ``extra={"repeat_key": ...}``. Only warnings and worse are limited;
info lines are one-off events already.

Under systemd, when stderr is the journal's stream, every line starts with its syslog priority (``<4>`` for a
warning): journald reads it (``SyslogLevelPrefix=``, on by default), so ``journalctl -p warning`` finds warnings and
errors. Without it the journal filed every line at info.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
FORMAT = "%(levelname)s %(name)s: %(message)s"


@dataclass
class _Kind:
    start: float  # when the line shown for this window was logged
    hidden: int = 0  # lines of this kind held back since
    latest: logging.LogRecord | None = None  # the newest one held back, shown in the summary


class RepeatFilter(logging.Filter):
    """A handler filter: the first line of a kind passes; the rest within ``window`` seconds are counted, and when
    the window has passed (checked on every line, by :func:`say_due`, and at exit) one summary names the latest
    and how many."""

    def __init__(self, handler: logging.Handler, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.handler, self.window, self.clock = handler, window, clock
        self._kinds: dict[tuple, _Kind] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "repeat_summary", False):
            return True
        now = self.clock()
        self._summarize(now)
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg), getattr(record, "repeat_key", None) or _names(record))
        with self._lock:
            kind = self._kinds.get(key)
            if kind is None:
                self._kinds[key] = _Kind(now)
                return True
            kind.hidden += 1
            kind.latest = record
            return False

    def flush(self, about: str | None = None) -> None:
        """Say what is still held back (at exit), or only of the lines that name ``about`` (a stream)."""
        self._summarize(None, about)

    def summarize_due(self) -> None:
        """Say the summaries whose window has passed, though no line has come since to check them."""
        self._summarize(self.clock())

    def _summarize(self, now: float | None, about: str | None = None) -> None:
        """Close the windows that have passed (all when ``now`` is None, of the lines whose first name is ``about``
        when given: "stream %s: ..."): one summary line each that hid lines."""
        with self._lock:
            done = [k for k, kind in self._kinds.items() if (now is None or now - kind.start >= self.window)
                    and (about is None or isinstance(k[3], tuple) and k[3][:1] == (about,))]
            closed = [self._kinds.pop(k) for k in done]
        end = self.clock() if now is None else now
        for kind in closed:
            if kind.hidden:
                summary = logging.makeLogRecord(kind.latest.__dict__)
                summary.msg = f"{kind.latest.getMessage()} ({kind.hidden} more like this in the last " \
                              f"{end - kind.start:.0f} s)"
                summary.args, summary.repeat_summary = None, True
                self.handler.handle(summary)


def say_held_back(about: str | None = None) -> None:
    """Say now what the rate limit still holds back, before a command's last line: at exit it came after it, so the
    journal's last line of a stopped service was a stale retry warning instead of why it stopped. ``about``: only
    the lines that name it (a stream whose trouble is over), leaving the others' counts running."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RepeatFilter):
                f.flush(about)


def say_due() -> None:
    """The summaries whose window has passed, said now: checked only as lines came, one could wait for hours in a
    quiet log (a process's drop warning summarized after its stream's final total, 68 s late)."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RepeatFilter):
                f.summarize_due()


def _names(record: logging.LogRecord) -> tuple:
    args = record.args if isinstance(record.args, tuple) else ()
    return tuple(a for a in args if isinstance(a, str))


def to_journal() -> bool:
    """Whether stderr is systemd's journal stream: ``JOURNAL_STREAM`` names its device and inode, so a child whose
    stderr was redirected elsewhere (a pipe, a file) is not taken for it."""
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # no stderr at all
        return False
    return os.environ.get("JOURNAL_STREAM") == f"{st.st_dev}:{st.st_ino}"


# syslog priorities by logging level, highest first; anything lower is debug (7)
PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def _priority(levelno: int) -> str:
    return f"<{next((p for level, p in PRIORITIES if levelno >= level), 7)}>"


def priority_prefix(levelno: int) -> str:
    """``<N>``, the syslog priority of a logging level, for a line written to the journal; else nothing."""
    return _priority(levelno) if to_journal() else ""


def _crash_to_journal(kind, value, tb) -> None:
    """An uncaught exception's traceback, every line at critical: Python's own hook writes it plain, which the
    journal filed at info, so `journalctl -p err` showed nothing of a crash."""
    text = "".join(traceback.format_exception(kind, value, tb)).rstrip("\n")
    sys.stderr.write("".join(f"{_priority(logging.CRITICAL)}{line}\n" for line in text.split("\n")))


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        """Every line: journald files each line of a traceback apart, at info unless it carries a prefix too."""
        prefix = _priority(record.levelno)
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def configure_logging(level: int | str, window: float = WINDOW_SECONDS) -> None:
    """Log to stderr (the journal under systemd, with each line's priority), each root handler behind a
    :class:`RepeatFilter`."""
    logging.basicConfig(stream=sys.stderr, level=level, format=FORMAT)
    journal = to_journal()
    if journal:
        sys.excepthook = _crash_to_journal
    for handler in logging.getLogger().handlers:
        if journal:
            handler.setFormatter(_JournalFormatter(FORMAT))
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            repeat = RepeatFilter(handler, window)
            handler.addFilter(repeat)
            atexit.register(repeat.flush)  # registered after logging's own: runs before its shutdown
