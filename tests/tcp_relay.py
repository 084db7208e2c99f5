"""A TCP relay on loopback that a test can cut and restore: one client's network outage, the broker staying up.

Cut, it closes every relayed connection (the broker sees the client's socket close and publishes its last will)
and stops listening (the client's reconnects are refused); restored, it listens on the same port again, and
notes when the next connection came.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from conftest import free_port


class TcpRelay:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.accepted: list[float] = []  # monotonic times connections came
        self._cond = threading.Condition()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it (Linux)
            self._listener.close()
            self._listener = None
        with self._cond:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def wait_connection(self, after: float, timeout: float) -> float:
        """When the first connection after monotonic time ``after`` came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(t > after for t in self.accepted):
                left = deadline - time.monotonic()
                assert left > 0, f"no connection through the relay within {timeout} s"
                self._cond.wait(left)
            return next(t for t in self.accepted if t > after)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._cond:
                self.accepted.append(time.monotonic())
                self._conns += [client, upstream]
                self._cond.notify_all()
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
