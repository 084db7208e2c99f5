"""What C libraries print on fd 2 themselves, kept out of a service's log (see :func:`divert_c_stderr`): the
microphone's PortAudio, and the decoders behind libsndfile, share it."""

from __future__ import annotations

import atexit
import faulthandler
import logging
import os
import sys
import threading


def _writes_to_fd2(handler: logging.Handler) -> bool:
    try:
        return isinstance(handler, logging.StreamHandler) and handler.stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


_divert_lock = threading.Lock()
_diverted = threading.Event()  # set once fd 2 is diverted, for good


def divert_c_stderr() -> None:
    """Keep what C libraries print out of the log: PortAudio, ALSA and JACK write to fd 2 themselves (dozens of probe
    warnings while PortAudio starts, assertion lines when a device vanishes mid-read), and so does the MP3 decoder
    libsndfile uses (``[src/libmpg123/layer3.c:...] error: part2_3_length ...`` for a file that decodes well),
    bypassing logging.

    Once per process, in the service (`run`, `dashboard`) and wherever PortAudio is used (`devices`): fd 2 becomes a
    pipe whose lines are logged at debug level as ``genrecast.clib`` (seen with ``--log-level debug``, never raw),
    while Python's own stderr (``sys.stderr``, the log handlers writing to fd 2, tracebacks, and a crash's
    ``faulthandler`` dump where that is on) moves to a copy of the real one. What a C library prints just before it
    kills the process (an abort's message) dies in the pipe with it: `classify` and `evaluate`, run at a terminal,
    are not diverted, so their user sees that. It lasts for the process's life: reads run all the time on capture
    threads, and fd 2 is process-wide, so diverting it per call would race. A second thread that asks while the first
    is diverting waits for it: returning early let its PortAudio start print to the real stderr (two microphones
    opening at once, under load). Started with fd 2 closed, there is nothing to keep lines from; the command line
    has put fd 2 on /dev/null already (``genrecast.cli``), so that no file opened later takes its number.
    """
    if _diverted.is_set():
        return
    with _divert_lock:
        if _diverted.is_set():
            return
        if sys.stderr is None:  # started with fd 2 closed: nothing to keep lines from (genrecast.cli holds fd 2)
            _diverted.set()
            return
        sys.stderr.flush()
        real = open(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")  # noqa: SIM115
        for handler in logging.getLogger().handlers:
            if _writes_to_fd2(handler):
                handler.setStream(real)
        sys.stderr = real
        if faulthandler.is_enabled():  # PYTHONFAULTHANDLER, -X faulthandler: a crash's dump to the real stderr
            faulthandler.enable(real)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        reader = threading.Thread(target=_log_c_lines, args=(read,), name="c-stderr", daemon=True)
        reader.start()
        atexit.register(_undivert, reader)
        _diverted.set()


def _undivert(reader: threading.Thread) -> None:
    """At exit: fd 2 to /dev/null, which ends the pipe, so the lines still in it are logged first. Not back to the real
    stderr: a capture or retry thread still inside PortAudio while the interpreter shuts down would print there."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    reader.join(1.0)


def _log_c_lines(fd: int) -> None:
    c_log = logging.getLogger("genrecast.clib")
    with open(fd, errors="replace") as lines:
        for line in lines:
            if line.strip():
                c_log.debug("%s", line.rstrip())
