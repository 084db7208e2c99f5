"""Memory under a flood of maximal uploads (run on demand, not in CI): ``genrecast dashboard`` started as its own
process, then 20 clients at once post the largest body a route takes, in two rounds.

Routes: ``POST /api/v1/classify`` (the API's limit, 50 MB by default, as one WAV) and the page's "check a file" (a
Dash callback carrying a 20 MiB WAV, base64 inside JSON: 28 MB). The server admits as many uploads as the classifying
pool has room for (1 worker + 4 waiting = 5 slots); the rest are refused with 503 from their headers (a client still
sending may see the connection reset instead). RSS is sampled every 20 ms. The target: a peak below
base + slots x body limit, and no growth after (the second round ends where the first did, within 10 %).
The last line is
``upload: slots=5 clients=<> api_base_mb=<> api_peak_mb=<> api_after_mb=<> api_after2_mb=<> api_target_mb=<>
page_...=<> ok=<>`` (one line)
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from procstat import rss_mb  # noqa: E402

SLOTS = 5
API_LIMIT = 50_000_000
PAGE_FILE = 20 * 2**20
PAGE_LIMIT = PAGE_FILE * 4 // 3 + 2**20  # dashboard.app.MAX_REQUEST_BYTES


def wav(size: int, seconds_hint: float = 1.0) -> bytes:
    """A stereo 44.1 kHz WAV of exactly ``size`` bytes: tones and noise, so the model has something to say."""
    frames = (size - 44) // 4
    rng = np.random.default_rng(0)
    t = np.arange(frames) / 44100
    mono = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) + 0.05 * rng.standard_normal(frames)
    buf = io.BytesIO()
    sf.write(buf, np.stack([mono, mono], axis=1), 44100, subtype="PCM_16", format="WAV")
    data = buf.getvalue()
    return data + b"\0" * (size - len(data))


def page_body(data: bytes) -> bytes:
    url = "data:audio/wav;base64," + base64.b64encode(data).decode()
    return json.dumps({"output": "file-result.children", "outputs": {"id": "file-result", "property": "children"},
                       "inputs": [{"id": "upload", "property": "contents", "value": url}],
                       "changedPropIds": ["upload.contents"],
                       "state": [{"id": "upload", "property": "filename", "value": "big.wav"}]}).encode()


def post(port: int, path: str, body: bytes, kind: str, client: int = 0) -> str:
    """Send the request; the status, or "reset" when the server closed while we were still sending. Each client
    comes from its own address (named as a proxy on this machine names its visitors): from one, the server would
    fill all slots but one, and the bench would not measure the worst case."""
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {kind}\r\n"
                f"X-Forwarded-For: 198.51.100.{client % 250 + 1}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        try:
            sock.sendall(head)
            view = memoryview(body)
            for at in range(0, len(body), 2**20):
                sock.sendall(view[at:at + 2**20])
        except OSError:
            pass
        try:
            data = sock.recv(64)
        except OSError:
            return "reset"
        return data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "reset"


class Sampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def flood(pid: int, port: int, path: str, body: bytes, kind: str, clients: int) -> tuple[float, float, Counter]:
    sampler = Sampler(pid)
    results: list[str] = []
    threads = [threading.Thread(target=lambda i=i: results.append(post(port, path, body, kind, i)))
               for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    time.sleep(3)  # let the last answers' buffers go
    return sampler.stop(), rss_mb(pid), Counter(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    a = parser.parse_args()
    api_data, page_data = wav(API_LIMIT), wav(PAGE_FILE)
    page = page_body(page_data)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENRECAST_")}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("genrecast")), "dashboard", "--port", str(port),
                             "--broker", "mqtt://127.0.0.1:9"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        # warm up both routes with a small file: the model loaded, numba compiled, Dash's routes imported
        small = wav(2_000_000)
        assert post(port, "/api/v1/classify", small, "audio/wav") == "200"
        assert post(port, "/_dash-update-component", page_body(small), "application/json") == "200"
        time.sleep(2)
        figures = {}
        for route, path, body, kind, limit in (("api", "/api/v1/classify", api_data, "audio/wav", API_LIMIT),
                                               ("page", "/_dash-update-component", page, "application/json",
                                                PAGE_LIMIT)):
            base = rss_mb(proc.pid)
            peak, after, answers = flood(proc.pid, port, path, body, kind, a.clients)
            peak2, after2, answers2 = flood(proc.pid, port, path, body, kind, a.clients)
            target = base + SLOTS * limit / 2**20
            ok = max(peak, peak2) < target and after2 <= after + 0.1 * SLOTS * limit / 2**20
            print(f"{route}: body {len(body) / 1e6:.1f} MB x {a.clients} clients, twice; base {base:.0f} MB, "
                  f"peak {peak:.0f} / {peak2:.0f} MB, after {after:.0f} / {after2:.0f} MB, target < {target:.0f} MB; "
                  f"answers {dict(answers)} / {dict(answers2)}")
            figures[route] = (base, max(peak, peak2), after, after2, target, ok)
    finally:
        proc.terminate()
        proc.wait(30)
    line = " ".join(f"{r}_base_mb={b:.0f} {r}_peak_mb={p:.0f} {r}_after_mb={x:.0f} {r}_after2_mb={y:.0f} "
                    f"{r}_target_mb={t:.0f}" for r, (b, p, x, y, t, _) in figures.items())
    print(f"upload: slots={SLOTS} clients={a.clients} {line} ok={all(f[-1] for f in figures.values())}")


if __name__ == "__main__":
    from bench_cli import run

    run(main)
