"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``) without a dependency: datagrams to $NOTIFY_SOCKET.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op, so the daemon runs the same by hand.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time


class Notifier:
    def __init__(self, environ: dict | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + path[1:] if path.startswith("@") else path  # "@name" = abstract namespace
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self._address else None
        # systemd sets WATCHDOG_USEC (and WATCHDOG_PID) when the unit has WatchdogSec=; ping twice per period.
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self._watchdog_every = int(usec) / 2e6 if enabled else None
        self._last_ping = float("-inf")

    @property
    def managed(self) -> bool:
        """Run by a service manager: no one at a terminal reads a one-line error, and a restart is its answer."""
        return self._sock is not None

    def send(self, *fields: str) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(OSError):  # the manager went away; nothing useful to do about it here
            self._sock.sendto("\n".join(fields).encode(), self._address)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        """Call from the processing loop: a stalled loop stops the pings and systemd restarts us."""
        if self._watchdog_every is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self._watchdog_every:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        """Sent once the last messages are delivered or given up: STOPPING=1 starts systemd's stop timeout
        (``TimeoutStopSec=``, 5 s in our units) and makes it ignore `systemctl stop`, so a finished file still
        waiting for a down broker (up to 15 s) was killed mid-wait, and could not be stopped meanwhile."""
        self.send("STOPPING=1")
