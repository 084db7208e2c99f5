"""The retry units under a real systemd: Debian 12's 252 booted as PID 1 in a container (tests/systemd_container.py),
with genrecast@kitchen.service installed from systemd/ as scripts/install_units.sh installs it and a stub in place of
the daemon, which logs its arguments and exits with the code the test writes. The retry units were checked only by
their text (test_daemon_systemd.py), which cannot tell what systemd does with them: on a real 252 their previous
ExecCondition, which tested Result=start-limit-hit, never passed, so a unit that gave up was never tried again."""

from __future__ import annotations

import pytest
from conftest import ROOT
from systemd_container import Container

# a hang guard: the first test's minute may also wait for another run's container (up to 600 s), build the root
# tree once (up to 600 s) and boot it (up to 240 s)
pytestmark = pytest.mark.timeout(1800)

UNIT = "genrecast@kitchen.service"
TIMER = "genrecast-retry@genrecast@kitchen.timer"
RETRY = "genrecast-retry@genrecast@kitchen.service"
FAKE_EXIT = "/etc/genrecast-fake-exit"
STUB = f"""#!/bin/sh
# stands in for genrecast: says how it was started, and exits as {FAKE_EXIT} says
echo "stub genrecast: $*"
exit "$(cat {FAKE_EXIT})"
"""
# the one change to the units: the retry 15 s after a give-up instead of 10 minutes
QUICK_RETRY = "[Timer]\nOnActiveSec=\nOnActiveSec=15s\nAccuracySec=1s\n"
STUB_LINE = f"stub genrecast: run --config /run/credentials/{UNIT}/config"  # with the config as a credential
BURST = 5  # StartLimitBurst=


@pytest.fixture(scope="module")
def systemd(tmp_path_factory):
    """One booted container for the module, with the units, their configs and the stub installed. No skip: what
    keeps it from being built or booted fails the tests (CI runs as root, with Debian's mirror at hand)."""
    box = Container(tmp_path_factory.mktemp("nspawn") / "console.log")
    try:
        box.start()
        # as scripts/install_units.sh installs them for a checkout in /opt/genrecast
        for unit in [*ROOT.glob("systemd/*.service"), *ROOT.glob("systemd/*.timer")]:
            box.put(f"/etc/systemd/system/{unit.name}", unit.read_text())
        for example in ROOT.glob("systemd/*.toml.example"):  # loaded as credentials: they must exist
            box.put(f"/etc/genrecast/{example.name.removesuffix('.example')}", example.read_text(), "0640")
        box.put("/etc/systemd/system/genrecast-retry@.timer.d/quick.conf", QUICK_RETRY)
        box.put("/opt/genrecast/.venv/bin/genrecast", STUB, "0755")
        box.put(FAKE_EXIT, "1\n")
        box.run("systemctl", "daemon-reload")
        yield box
    finally:
        box.stop()


@pytest.fixture
def box(systemd):
    """Each test starts with the unit stopped and not failed, nothing pending, the stub exiting 1."""
    systemd.run("systemctl", "stop", UNIT, TIMER, RETRY)
    systemd.run("systemctl", "reset-failed")
    systemd.put(FAKE_EXIT, "1\n")
    return systemd


def count(lines: list[str], text: str) -> int:
    return sum(text in line for line in lines)


def test_a_unit_that_gave_up_restarting_is_started_again_and_rearms_the_retry(box):
    """Exit 1 every time: five starts 5 s apart, then the give-up starts the timer, whose service starts the unit
    again, its restarts counted anew; the next give-up starts the timer again. With the condition the retry had
    before (Result=start-limit-hit), the second round never came."""
    mark = box.cursor()
    box.run("systemctl", "start", "--no-block", UNIT)
    first = box.wait_for(mark, f"{UNIT}: Start request repeated too quickly",
                         f"{UNIT}: Triggering OnFailure= dependencies", f"Started {TIMER}")
    gave_up = box.show(UNIT, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
    # the fifth restart is the one refused
    assert gave_up == {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "1",
                       "NRestarts": str(BURST)}, gave_up
    assert count(first, STUB_LINE) == BURST, "\n".join(first)
    assert box.show(TIMER, "ActiveState")["ActiveState"] == "active"

    # the retry comes 15 s later: the unit runs again, five times, and gives up again
    second = box.wait_for(mark, f"Starting {RETRY}", f"Starting {UNIT}", f"{UNIT}: Scheduled restart job, restart "
                          "counter is at 1.", f"{UNIT}: Start request repeated too quickly", f"Started {TIMER}",
                          skip=len(first))[len(first):]
    assert count(second, STUB_LINE) == BURST, "\n".join(second)
    assert box.show(RETRY, "Result")["Result"] == "success"
    assert box.show(UNIT, "ActiveState", "Result", "ExecMainStatus", "NRestarts") == gave_up
    assert box.show(TIMER, "ActiveState", "SubState") == {"ActiveState": "active", "SubState": "waiting"}


def test_a_bad_setting_is_neither_restarted_nor_retried(box):
    """Exit 2 (RestartPreventExitStatus=): no restart; the failure starts the timer, which fires, and the retry's
    condition skips its service, so the unit stays failed."""
    box.put(FAKE_EXIT, "2\n")
    mark = box.cursor()
    box.run("systemctl", "start", "--no-block", UNIT)
    lines = box.wait_for(mark, f"{UNIT}: Main process exited, code=exited, status=2/INVALIDARGUMENT",
                         f"{UNIT}: Triggering OnFailure= dependencies", f"Started {TIMER}", f"Starting {RETRY}",
                         f"{RETRY}: Skipped due to 'exec-condition'")
    assert box.show(RETRY, "Result")["Result"] == "exec-condition"
    assert box.show(UNIT, "ActiveState", "Result", "ExecMainStatus", "NRestarts") == {
        "ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "2", "NRestarts": "0"}
    assert count(lines, STUB_LINE) == 1 and count(lines, f"Starting {UNIT}") == 1, "\n".join(lines)
    assert box.show(TIMER, "ActiveState")["ActiveState"] == "inactive"


def test_stopping_the_unit_cancels_a_pending_retry(box):
    """A stop by hand while a retry is pending stops its timer too (PartOf=): the unit stays failed, so after a
    give-up the retry's condition would pass and start it again. Exit 2 arms the same timer at once, rather than
    after five restarts (25 s). That no retry ran is known once a timer armed after the stop, 16 s later, fired."""
    box.put(FAKE_EXIT, "2\n")
    mark = box.cursor()
    box.run("systemctl", "start", "--no-block", UNIT)
    box.wait_for(mark, f"Started {TIMER}")
    box.run("systemctl", "stop", UNIT)
    box.wait_for(mark, f"Stopped {TIMER}")
    assert box.show(TIMER, "ActiveState")["ActiveState"] == "inactive"
    assert box.show(UNIT, "ActiveState")["ActiveState"] == "failed"
    sentinel = "genrecast-test-sentinel"
    box.run("systemd-run", f"--unit={sentinel}", "--on-active=16s", "--timer-property=AccuracySec=1s", "/bin/true")
    lines = box.wait_for(mark, f"{sentinel}.service: Deactivated successfully")
    assert count(lines, f"Starting {RETRY}") == 0 and count(lines, f"Starting {UNIT}") == 1, "\n".join(lines)
    assert box.show(TIMER, "ActiveState")["ActiveState"] == "inactive"
