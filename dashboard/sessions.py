"""Sessions that logged out, refused until they would have expired anyway.

The session cookie is signed (dashboard/auth.py), so checking one needs no store; ending one before its time does.
Logging out records the session's id here, so that a copy of the cookie (left in another browser's profile, taken
from a shared computer) no longer opens the page. They are kept in ``ended-sessions.json`` under systemd's
``$STATE_DIRECTORY`` (the dashboard unit's ``StateDirectory=``), so that a restart does not let them in again; a
dashboard started by hand without one keeps them for as long as it runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from genrecast.files import replace_file

log = logging.getLogger(__name__)

FILE = "ended-sessions.json"
MAX_ENDED = 10_000  # ids kept at most (each logout needs the token); past it the soonest to expire goes first


class EndedSessions:
    """Session ids logged out, each with the wall-clock time its cookie would have expired."""

    def __init__(self, folder: Path | None = None, clock=time.time) -> None:
        self.path = folder / FILE if folder else None
        self._clock = clock
        self._lock = threading.Lock()
        self._until = self._read()

    def __contains__(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._until

    def end(self, session_id: str, until: float) -> None:
        """Refuse ``session_id`` from now on; forget it once ``until`` (its expiry) has passed."""
        with self._lock:
            now = self._clock()
            self._until = {sid: t for sid, t in self._until.items() if t > now}
            self._until[session_id] = until
            for sid in sorted(self._until, key=self._until.get)[:max(0, len(self._until) - MAX_ENDED)]:
                del self._until[sid]
            self._write()

    def _read(self) -> dict[str, float]:
        if self.path is None:
            return {}
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            now = self._clock()
            return {str(sid): float(t) for sid, t in stored.items() if float(t) > now}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("%s: unreadable (%s): sessions logged out before this start would be let in again; "
                        "a new logout rewrites it", self.path, exc)
            return {}

    def _write(self) -> None:
        if self.path is None:
            return
        try:
            replace_file(self.path, json.dumps(self._until))  # a power cut leaves the last list whole
        except OSError as exc:
            log.warning("cannot keep logged-out sessions in %s (%s): they are refused until the dashboard "
                        "restarts, then let in again", self.path, exc.strerror or exc)
