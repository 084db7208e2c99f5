"""A real systemd, Debian 12's 252, booted as PID 1 in a container (systemd-nspawn) for tests of the units.

The root file system is built once by debootstrap (minbase with systemd and dbus, about 250 MB) and cached under
.cache/systemd-root/; every boot runs on a throwaway tmpfs overlay of it (``--volatile=overlay``), so nothing a test
writes stays. One container at a time per machine: a second run waits for the first. Needs root, debootstrap and
systemd-nspawn (scripts/setup.sh installs them), and Debian's mirror the first time."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

from conftest import ROOT, terminate
from daemon_helpers import wait_until

CACHE = ROOT / ".cache" / "systemd-root"
TREE = CACHE / "bookworm"
# apt's mirror here (/etc/apt/sources.list.d/debian.sources)
MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP = ["debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus", "bookworm"]
RECIPE = ".genrecast-recipe"  # in the tree: how it was built, so that a changed recipe builds it again
BUILD_TIMEOUT = 600.0


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first (what an interrupted debootstrap may leave: proc, sys)."""
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Remove a (partial) root tree: unmount what is mounted in it first, and never cross into another file system,
    so a /dev or /proc left mounted there is not emptied."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    if left := _mounts_under(path):
        raise RuntimeError(f"cannot remove {path}: still mounted there: {left}")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True, capture_output=True)


def root_tree() -> Path:
    """The cached root tree, built first when missing or built by another recipe. The build goes to a temporary
    folder renamed into place once complete, so an interrupted build is never taken for a finished one; a lock
    serialises runs that would build at the same time."""
    for tool in ("debootstrap", "systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: run scripts/setup.sh, which installs it")
    if os.geteuid() != 0:
        raise RuntimeError("building and booting a container needs root")
    recipe = " ".join([*DEBOOTSTRAP, MIRROR]) + "\n"
    if (TREE / RECIPE).is_file() and (TREE / RECIPE).read_text() == recipe:
        return TREE
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (TREE / RECIPE).is_file() and (TREE / RECIPE).read_text() == recipe:
            return TREE  # built by a run that held the lock before us
        for stale in CACHE.glob("partial-*"):  # from a build that was killed
            _remove_tree(stale)
        partial = CACHE / f"partial-{uuid.uuid4().hex[:8]}"
        try:
            build = subprocess.run([*DEBOOTSTRAP, str(partial), MIRROR], capture_output=True, text=True,
                                   timeout=BUILD_TIMEOUT)
            if build.returncode != 0:
                raise RuntimeError(f"debootstrap failed ({build.returncode}):\n{build.stdout[-3000:]}"
                                   f"{build.stderr[-3000:]}")
            (partial / RECIPE).write_text(recipe)
            if TREE.exists():  # another recipe's
                old = CACHE / f"partial-old-{uuid.uuid4().hex[:8]}"
                TREE.rename(old)
                _remove_tree(old)
            partial.rename(TREE)
        finally:
            if partial.exists():
                _remove_tree(partial)
    return TREE


# Containers run one at a time on this machine: with --keep-unit each puts its systemd in the same cgroup
# (<ours>/payload), where two would manage each other's units. Held from before the tree is built (or rebuilt).
BOOT_LOCK = Path("/run/lock/genrecast-systemd-container.lock")
WAIT = 120.0  # hang guard for each wait, never a speed assertion
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}


def poll(find, what, timeout: float = WAIT):
    """What ``find()`` returns once it is not None, polled; fails naming ``what()`` after ``timeout``."""
    return wait_until(threading.Condition(), find, timeout, what)


class Container:
    """One boot of the cached tree on a tmpfs overlay: ``start()`` returns once its systemd is up (building the tree
    first if needed); ``run()`` runs a command inside (nsenter into every namespace of its PID 1); ``stop()`` powers
    it off."""

    def __init__(self, console: Path) -> None:
        self.console = console  # nspawn's output: its errors, and nothing else with --console=passive
        self.name = f"genrecast-test-{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None  # the container's PID 1, as this machine numbers it
        self._lock = None

    def console_tail(self) -> str:
        return self.console.read_text(errors="replace")[-3000:] if self.console.exists() else ""

    def _take_lock(self) -> None:
        self._lock = open(BOOT_LOCK, "a+")  # noqa: SIM115 (held until stop())

        def taken():
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            self._lock.truncate(0)
            self._lock.write(f"{os.getpid()}\n")
            self._lock.flush()
            return True

        poll(taken, lambda: f"another run's container still holds {BOOT_LOCK} (pid {BOOT_LOCK.read_text()})",
             timeout=600)

    def _init_pid(self) -> int | None:
        assert self.proc.poll() is None, f"systemd-nspawn exited ({self.proc.returncode}):\n{self.console_tail()}"
        nspawn = Path(f"/proc/{self.proc.pid}")
        for task in nspawn.glob("task/*/children"):
            for child in task.read_text().split():
                try:
                    status = Path(f"/proc/{child}/status").read_text()
                except FileNotFoundError:  # a helper that exited meanwhile
                    continue
                nspid = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))
                if len(nspid) > 1 and nspid[-1] == "1":  # PID 1 in its own namespace
                    return int(child)
        return None

    def _booted(self) -> str | None:
        assert self.proc.poll() is None, f"systemd-nspawn exited ({self.proc.returncode}):\n{self.console_tail()}"
        try:
            state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=30).stdout.strip()
        except subprocess.TimeoutExpired:
            return None
        return state if state in ("running", "degraded") else None

    def start(self) -> None:
        self._take_lock()
        tree = root_tree()
        with self.console.open("wb") as out:
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "--directory", str(tree), "--volatile=overlay", "--boot", "--console=passive",
                 f"--machine={self.name}", "--register=no", "--keep-unit"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.pid = poll(self._init_pid, lambda: f"no container PID 1 under systemd-nspawn:\n{self.console_tail()}")
        poll(self._booted, lambda: f"the container's systemd did not finish booting:\n{self.journal_tail()}")

    def run(self, *cmd: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run(["nsenter", "--target", str(self.pid), "--all", *cmd], input=input,
                                capture_output=True, text=True, env=ENV, timeout=timeout)
        assert not check or result.returncode == 0, (
            f"{' '.join(cmd)} in the container exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def put(self, path: str, text: str, mode: str = "0644") -> None:
        self.run("sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"', "put", path, mode,
                 input=text)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show``'s value of each property of ``unit``."""
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def cursor(self) -> str:
        """Where the journal is now: ``journal(cursor)`` is what came after."""
        out = self.run("journalctl", "--quiet", "--lines=1", "--show-cursor", "--output=cat").stdout
        return out.rsplit("-- cursor: ", 1)[1].strip()

    def journal(self, after: str) -> list[str]:
        return self.run("journalctl", "--quiet", "--no-hostname", "--output=short-monotonic",
                        f"--after-cursor={after}").stdout.splitlines()

    def journal_tail(self, after: str | None = None, lines: int = 40) -> str:
        """The journal's last lines (after the cursor ``after``), for a failure's message."""
        if self.proc is None or self.proc.poll() is not None:
            return f"(the container is gone: systemd-nspawn exited {self.proc.returncode})\n{self.console_tail()}"
        try:
            if after:
                return "\n".join(self.journal(after)[-lines:]) or "(none since the test began)"
            return self.run("journalctl", "--quiet", "--no-hostname", f"--lines={lines}", check=False).stdout
        except (AssertionError, subprocess.TimeoutExpired) as e:
            return f"(no journal: {e})"

    def wait_for(self, after: str, *patterns: str, skip: int = 0, timeout: float = WAIT) -> list[str]:
        """The journal after ``after`` up to its first line with the last of ``patterns``, once it holds a line with
        each of them in this order, from line ``skip`` on; each pattern is given ``timeout`` from the one before."""
        at = skip - 1
        for n, pattern in enumerate(patterns):
            def find(pattern=pattern, start=at + 1):
                lines = self.journal(after)
                return next((i for i in range(start, len(lines)) if pattern in lines[i]), None)

            def failure(n=n, pattern=pattern):
                seen = "".join(f"\n  seen: {p}" for p in patterns[:n])
                return (f"no journal line with {pattern!r} after {timeout:.0f} s{seen}\n"
                        f"last journal lines:\n{self.journal_tail(after)}")

            at = poll(find, failure, timeout)
        return self.journal(after)[:at + 1]

    def stop(self) -> None:
        """Power off, and kill what is left; gives the machine back to the next run."""
        try:
            if self.proc and self.proc.poll() is None and self.pid:
                try:
                    self.run("systemctl", "poweroff", check=False, timeout=30)
                    self.proc.wait(60)
                except subprocess.TimeoutExpired:
                    pass
            terminate(self.proc, 10)  # SIGTERM: nspawn asks the container to power off; then SIGKILL
        finally:
            if self._lock:
                self._lock.close()
