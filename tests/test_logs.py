"""The shared limit on repeated log lines (genrecast.logrepeat), with a real handler and a hand-moved clock."""

from __future__ import annotations

import io
import logging
import re
import threading

from genrecast.logs import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def logger_with_filter(name: str) -> tuple[logging.Logger, io.StringIO, Clock, RepeatFilter]:
    out, clock = io.StringIO(), Clock()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    repeat = RepeatFilter(handler, window=60.0, clock=clock)
    handler.addFilter(repeat)
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, out, clock, repeat


def test_a_warning_per_chunk_gives_its_first_line_then_one_count_per_window():
    log, out, clock, _ = logger_with_filter("test.repeat.chunks")
    for i in range(136):
        log.warning("stream %s: chunk %d is late by %.1f s", "a", i, 0.5)
        clock.now += 0.1
    log.warning("the broker refused the login")  # another kind: not held back
    log.warning("stream %s: chunk %d is late by %.1f s", "b", 7, 0.5)  # another stream: not held back either
    log.warning("refused a request from %s", "10.0.0.1", extra={"repeat_key": "refused"})
    log.warning("refused a request from %s", "10.0.0.2", extra={"repeat_key": "refused"})  # one kind by its key
    assert out.getvalue().splitlines() == ["WARNING stream a: chunk 0 is late by 0.5 s",
                                           "WARNING the broker refused the login",
                                           "WARNING stream b: chunk 7 is late by 0.5 s",
                                           "WARNING refused a request from 10.0.0.1"]
    clock.now += 60
    log.info("an info line closes the passed windows too")
    log.warning("stream %s: chunk %d is late by %.1f s", "a", 136, 0.5)
    assert out.getvalue().splitlines()[4:] == [
        "WARNING stream a: chunk 135 is late by 0.5 s (135 more like this in the last 74 s)",
        "WARNING refused a request from 10.0.0.2 (1 more like this in the last 60 s)",
        "INFO an info line closes the passed windows too",
        "WARNING stream a: chunk 136 is late by 0.5 s"]


def test_info_lines_pass_and_what_is_held_back_is_said_at_flush():
    log, out, clock, repeat = logger_with_filter("test.repeat.flush")
    for _ in range(3):
        log.info("connected")
        log.error("auth failed from %s", "10.0.0.9")
    clock.now += 5
    repeat.flush()
    assert out.getvalue().splitlines() == ["INFO connected", "ERROR auth failed from 10.0.0.9", "INFO connected",
                                           "INFO connected", "ERROR auth failed from 10.0.0.9 (2 more like this in "
                                           "the last 5 s)"]



HELD_BACK = """
import logging
from genrecast.logs import configure_logging, say_held_back
configure_logging("INFO")
log = logging.getLogger("genrecast.run")
for _ in range(3):
    log.warning("microphone %s unavailable; retrying", "mic:usb")
say_held_back()
log.info("stopped")
"""


def test_what_is_held_back_is_said_before_a_commands_last_line():
    """``run`` says it before its last line (how it ended): at exit it came after it, so a stopped service's last
    line in the journal was a stale retry warning."""
    import subprocess
    import sys

    err = subprocess.run([sys.executable, "-c", HELD_BACK], capture_output=True, text=True, timeout=60).stderr
    first, summary, last = err.splitlines()
    assert first == "WARNING genrecast.run: microphone mic:usb unavailable; retrying" and last == \
        "INFO genrecast.run: stopped", err
    assert re.fullmatch(r"WARNING genrecast.run: microphone mic:usb unavailable; retrying \(2 more like this in the "
                        r"last \d+ s\)", summary), err


JOURNAL = """
import logging, os, sys
st = os.fstat(2)
if sys.argv[1] == "journal":
    os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"  # as systemd sets it for a unit's stderr
elif sys.argv[1] == "elsewhere":
    os.environ["JOURNAL_STREAM"] = "1:2"  # inherited, but stderr was redirected since
from genrecast.logs import configure_logging
configure_logging("DEBUG")
log = logging.getLogger("genrecast.run")
log.debug("d"); log.info("i"); log.warning("w"); log.error("e"); log.critical("c")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("x")  # a traceback: each of its lines an error too
raise SystemError("crash")  # uncaught: Python's hook, which wrote it plain
"""


def test_under_systemd_each_line_carries_its_priority_for_the_journal(tmp_path):
    """Before, the journal filed every line at info: `journalctl -p warning` showed nothing, even a refused login.
    Only when stderr is the journal's own stream; a terminal or a redirected stderr keeps plain lines."""
    import subprocess
    import sys

    def lines(where: str) -> list[str]:
        err = tmp_path / f"{where}.log"
        with err.open("w") as f:
            assert subprocess.run([sys.executable, "-c", JOURNAL, where], stderr=f, timeout=60).returncode == 1
        return err.read_text().splitlines()

    journal = lines("journal")
    assert journal[:6] == ["<7>DEBUG genrecast.run: d", "<6>INFO genrecast.run: i", "<4>WARNING genrecast.run: w",
                           "<3>ERROR genrecast.run: e", "<2>CRITICAL genrecast.run: c", "<3>ERROR genrecast.run: x"]
    crash = journal.index("<2>Traceback (most recent call last):", 6)
    assert crash > 7 and all(line.startswith("<3>") for line in journal[5:crash])  # the logged traceback's lines
    assert journal[-1] == "<2>SystemError: crash" and all(line.startswith("<2>") for line in journal[crash:])
    plain = lines("elsewhere")
    assert plain == lines("terminal") and plain[:6] == ["DEBUG genrecast.run: d", "INFO genrecast.run: i",
                                                        "WARNING genrecast.run: w", "ERROR genrecast.run: e",
                                                        "CRITICAL genrecast.run: c", "ERROR genrecast.run: x"]
    assert not any(line.startswith("<") for line in plain)


def test_a_commands_last_error_line_is_an_error_in_the_journal(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "bad.toml").write_text("hop = 1\n")
    err = tmp_path / "err.log"
    with err.open("w") as f:
        st = os.fstat(f.fileno())
        proc = subprocess.run([sys.executable, "-m", "genrecast", "run", "--config", str(tmp_path / "bad.toml")],
                              stderr=f, timeout=120, env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert proc.returncode == 2
    assert err.read_text().startswith("<3>genrecast run: error: unknown setting 'hop'"), err.read_text()


def test_a_source_that_will_not_open_is_one_line_then_counts_from_its_first_try_on():
    """The start's first failed open and the retries after it were two kinds of line, so the journal said the same
    thing twice in its first second."""
    from genrecast.daemon import intake
    from genrecast.dsp import AudioError

    log = logging.getLogger("genrecast.source")
    saved = log.handlers[:], log.propagate, log.level
    _, out, _, repeat = logger_with_filter("genrecast.source")
    tries, fourth = [], threading.Event()

    def opener(rate):
        tries.append(rate)
        if len(tries) >= 4:
            fourth.set()
        raise AudioError(["mic:late: no audio input devices found",  # the source's own forms
                          "mic:late: cannot open (no audio input devices found)",
                          "mic:default: cannot open (no audio input devices found)"][len(tries) % 3])

    source = intake.Intake("late", "mic:late: no audio input devices found", opener, 10.0, True,
                           description="mic:late")
    try:
        intake.REOPEN_BACKOFF, backoff = (0.001, 0.002), intake.REOPEN_BACKOFF
        source.start()
        assert fourth.wait(30)
        source.close()
        source._thread.join(30)
    finally:
        intake.REOPEN_BACKOFF = backoff
        log.handlers[:], log.propagate = saved[0], saved[1]
        log.setLevel(saved[2])
    repeat.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    # the cause without the words the line says already (it read "mic:late (mic:late: ...")
    assert lines[0].startswith("WARNING stream late: cannot open mic:late (no audio input devices found)")
    assert re.search(r"\((\d+) more like this", lines[1]).group(1) == str(len(tries)), lines  # one a try


def test_a_summary_whose_window_has_passed_is_said_without_waiting_for_another_line():
    """Checked only as lines came, a drop warning's summary waited 68 s, until after its stream's final total."""
    log, out, clock, repeat = logger_with_filter("test.repeat.due")
    for _ in range(3):
        log.warning("stream %s: %.1f s dropped so far", "a", 1.0)
        clock.now += 1
    repeat.summarize_due()
    assert out.getvalue().count("\n") == 1  # the window is still open
    clock.now += 60
    repeat.summarize_due()
    said = "WARNING stream a: 1.0 s dropped so far (2 more like this in the last 63 s)"
    assert out.getvalue().splitlines()[-1] == said


def test_the_failed_tries_count_is_said_before_the_source_opens_not_after():
    """A kitchen microphone review: the count of failed opens came 45 s after the microphone had opened, and read
    under `journalctl -p warning` as a problem of now."""
    from genrecast.daemon import intake
    from genrecast.dsp import AudioError

    class Opened:
        description, live, sample_rate, unavailable = "mic:late", True, 22050, None

        def chunks(self, stop):
            stop.wait(30)
            return iter(())

        def close(self) -> None:
            pass

    class Said(logging.StreamHandler):
        opened = threading.Event()

        def emit(self, record: logging.LogRecord) -> None:
            super().emit(record)
            if record.getMessage().endswith("mic:late opened"):
                self.opened.set()

    out, clock = io.StringIO(), Clock()
    handler = Said(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RepeatFilter(handler, window=60.0, clock=clock))
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    tries = []

    def opener(rate):
        tries.append(rate)
        if len(tries) < 4:
            raise AudioError("mic:late: no audio input devices found")
        return Opened()

    source = intake.Intake("late", "mic:late: no audio input devices found", opener, 10.0, True,
                           description="mic:late")
    try:
        intake.REOPEN_BACKOFF, backoff = (0.001, 0.002), intake.REOPEN_BACKOFF
        source.start()
        assert handler.opened.wait(30)
    finally:
        intake.REOPEN_BACKOFF = backoff
        source.close()
        source._thread.join(30)
        root.removeHandler(handler)
        root.setLevel(saved)
    lines = [line for line in out.getvalue().splitlines() if "stream late" in line]
    assert lines[0].startswith("WARNING stream late: cannot open mic:late")
    assert "(3 more like this" in lines[1] and lines[2] == "INFO stream late: mic:late opened", lines


def test_a_flush_about_one_stream_leaves_the_others_counts_running():
    """A review: the microphone's flush when it opened said every held-back count, the broker's too, and restarted
    their windows."""
    log, out, clock, repeat = logger_with_filter("test.repeat.about")
    for _ in range(3):
        log.warning("stream %s: cannot open %s", "kitchen", "mic:usb")
        log.warning("cannot reach broker %s", "mqtt://x")
    repeat.flush(about="kitchen")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].endswith("(2 more like this in the last 0 s)") and "kitchen" in lines[-1]
    repeat.flush()
    assert out.getvalue().splitlines()[-1].startswith("WARNING cannot reach broker mqtt://x (2 more")


def test_a_flush_about_a_stream_matches_its_id_only_where_lines_name_it_first():
    """A review: a stream named "open" flushed every stream's open-retry counts ("cannot %s": "open"), and a kind
    named by a string repeat_key matched by substring."""
    log, out, clock, repeat = logger_with_filter("test.repeat.first")
    for _ in range(2):
        log.warning("stream %s: cannot %s %s", "kitchen", "open", "mic:usb")
        log.warning("login refused", extra={"repeat_key": "refused login"})
    repeat.flush(about="open")
    repeat.flush(about="e")
    assert len(out.getvalue().splitlines()) == 2  # the two first lines only: nothing flushed


def test_a_reopen_failure_names_its_cause_once_whatever_name_the_device_was_asked_by():
    """A review: after the first open the line names the device's own name, and the cause the name as asked:
    "cannot reopen mic:USB Audio (hw:2,0) (mic:usb: no such input device (...))"."""
    from daemon_helpers import HandFed
    from genrecast.daemon.intake import Intake

    source = Intake("kitchen", HandFed("mic:USB Audio (hw:2,0)"), None, 10.0, True, description="mic:usb")
    assert source.description == "mic:USB Audio (hw:2,0)"
    assert source._cause("mic:usb: no such input device (inputs: 0:a)") == "no such input device (inputs: 0:a)"
    assert source._cause("mic:usb: cannot open ([Errno -9996] Invalid input device)") == \
        "[Errno -9996] Invalid input device"
