"""The systemd unit, checked by systemd itself, and the example instance configuration."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_helpers import ROOT
from genrecast.daemon.config import load_settings

UNIT = ROOT / "systemd" / "genrecast@.service"
MULTI_UNIT = ROOT / "systemd" / "genrecast-streams.service"


def unit_settings(unit: Path = UNIT) -> dict[str, list[str]]:
    """``Key=value`` lines of the unit (a key may repeat, as Environment= does)."""
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize(("source", "name"), [(UNIT, "genrecast@kitchen.service"),
                                              (MULTI_UNIT, "genrecast-streams.service")])
def test_systemd_analyze_verify_accepts_the_unit(tmp_path, source, name):
    # Verify an instance of the unit with ExecStart pointing at this checkout's genrecast (systemd checks
    # that the binary exists). systemd-analyze exits 0 even for unknown keys: any line naming the unit fails.
    genrecast = Path(sys.executable).parent / "genrecast"
    unit = tmp_path / name
    unit.write_text(source.read_text().replace("/opt/genrecast/.venv/bin/genrecast", str(genrecast)))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if name.split(".")[0] in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_unit_is_notify_hardened_and_watchdogged():
    s = unit_settings()
    expect = {
        "Type": "notify", "DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
        "PrivateTmp": "yes", "SupplementaryGroups": "audio", "Restart": "on-failure", "CacheDirectory": "genrecast",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }
    assert {k: s[k][-1] for k in expect} == expect
    assert int(s["WatchdogSec"][-1]) > 0 and s["WatchdogSignal"] == ["SIGTERM"]  # no core dump per give-up
    # a bad config (exit 2) must not restart forever; other repeated failures give up too
    assert s["RestartPreventExitStatus"] == ["2"] and int(s["StartLimitBurst"][-1]) > 0
    # The root-only config reaches the dynamic user as a credential (it could not read /etc/genrecast itself).
    assert s["LoadCredential"] == ["config:/etc/genrecast/%i.toml"]
    assert "GENRECAST_CONFIG_SOURCE=/etc/genrecast/%i.toml" in s["Environment"]  # what its errors name
    assert s["ExecStart"] == ["/opt/genrecast/.venv/bin/genrecast run --config ${CREDENTIALS_DIRECTORY}/config"]
    assert "NUMBA_CACHE_DIR=/var/cache/genrecast/numba" in s["Environment"]
    assert s["RestrictRealtime"] == ["yes"]


RETRY_TIMER = ROOT / "systemd" / "genrecast-retry@.timer"
RETRY_SERVICE = ROOT / "systemd" / "genrecast-retry@.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_retry_units(tmp_path):
    """As OnFailure= names them for genrecast@kitchen.service: instance genrecast@kitchen."""
    names = []
    for source in (RETRY_TIMER, RETRY_SERVICE):
        names.append(source.name.replace("@.", "@genrecast@kitchen."))
        (tmp_path / names[-1]).write_text(source.read_text())
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], cwd=tmp_path, capture_output=True,
                            text=True)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "genrecast-retry" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_a_unit_that_gave_up_restarting_is_tried_again_later_but_not_a_bad_setting():
    """Before, 5 failures in 10 minutes (a microphone wedged for a few minutes, say: the watchdog restarts the
    service until the limit) left the service stopped until someone noticed. systemd 252 runs a unit's OnFailure=
    with Restart= only when its restarts ran out, or when it exits 2 (RestartPreventExitStatus=); from 254 on
    after every failure. Either way it starts a 10-minute timer, whose service starts the unit again only if it is
    still failed, and not on exit status 2. It tested Result=start-limit-hit, which systemd never sets when a
    restart runs into the limit (it keeps exit-code, watchdog...), so the retry was skipped every time. Here the
    units' text; tests/test_systemd_real.py runs them under a real systemd 252 booted in a container."""
    for unit in ("genrecast@.service", "genrecast-streams.service", "genrecast-dashboard.service"):
        s = unit_settings(ROOT / "systemd" / unit)
        assert s["OnFailure"] == ["genrecast-retry@%N.timer"], unit
        assert s["RestartPreventExitStatus"] == ["2"] and int(s["StartLimitBurst"][0]) > 0, unit
        # the retry comes after a whole start-limit interval: the five starts it counted are over by then
        assert int(s["StartLimitIntervalSec"][0]) <= 600, unit
    timer, service = unit_settings(RETRY_TIMER), unit_settings(RETRY_SERVICE)
    assert timer["OnActiveSec"] == ["10min"] and timer["RemainAfterElapse"] == ["no"]  # startable again
    assert timer["PartOf"] == ["%i.service"]  # stopping the unit by hand cancels a pending retry
    condition = service["ExecCondition"][-1]
    assert 'test "$$(systemctl show -P ActiveState %i.service)" = failed' in condition  # not running or restarting
    assert "$$(systemctl show -P Result %i.service):$$(systemctl show -P ExecMainStatus %i.service)\" != exit-code:2" \
        in condition  # a bad setting is not retried
    assert "start-limit-hit" not in condition  # never the Result of a restart that ran into the limit
    assert service["ExecStart"][-1] == "/bin/systemctl start --no-block %i.service"


def test_each_unit_has_its_own_numba_cache():
    """A dynamic user is named after its unit, so genrecast@* and genrecast-streams run as two users: with one
    CacheDirectory each start took it from the other (UMask=0077), which then compiled anew on every start."""
    caches = {}
    for unit in ("genrecast@.service", "genrecast-streams.service", "genrecast-dashboard.service"):
        s = unit_settings(ROOT / "systemd" / unit)
        cache = s["CacheDirectory"][-1]
        assert any(f"NUMBA_CACHE_DIR=/var/cache/{cache}/numba" in e for e in s["Environment"]), unit
        caches[unit] = cache
    assert len(set(caches.values())) == 3, caches


def test_example_instance_config_loads():
    settings = load_settings(ROOT / "systemd" / "kitchen.toml.example", environ={})
    assert settings.stream_id == "kitchen" and settings.ha_discovery and settings.broker.url.startswith("mqtt://")


def test_example_config_names_every_setting():
    """docs/daemon.md promises every key is in the example: set (or shown commented out) with a word about it."""
    from dataclasses import fields

    from genrecast.daemon.config import TABLES, TOP_LEVEL

    text = (ROOT / "systemd" / "kitchen.toml.example").read_text()
    keys = {line.lstrip("# ").partition("=")[0].strip() for line in text.splitlines() if "=" in line}
    tables = {line.lstrip("# ").split()[0] for line in text.splitlines() if line.lstrip("# ").startswith("[")}
    wanted = [name for name in TOP_LEVEL if name not in TABLES]
    wanted += [f.name for table in TABLES.values() for f in fields(table)]
    missing = [name for name in wanted if name not in keys] + [f"[{t}]" for t in TABLES if f"[{t}]" not in tables]
    assert not missing, f"not in kitchen.toml.example: {missing}"


def test_the_examples_commented_streams_line_loads_once_uncommented(tmp_path):
    """It read ``# streams = {}``, which the loader refuses (no [streams.<id>] table in it)."""
    (line,) = [x for x in (ROOT / "systemd" / "kitchen.toml.example").read_text().splitlines()
               if x.startswith("# streams = ")]
    (tmp_path / "streams.toml").write_text(line.removeprefix("# ") + "\n")
    assert [x.stream_id for x in load_settings(tmp_path / "streams.toml", environ={}).stream_settings()] == [
        "kitchen", "radio"]


def test_the_multi_stream_unit_differs_from_the_template_only_in_its_config_and_cache():
    one, many = unit_settings(UNIT), unit_settings(MULTI_UNIT)
    assert many["LoadCredential"] == ["config:/etc/genrecast/streams.toml"]
    assert "GENRECAST_CONFIG_SOURCE=/etc/genrecast/streams.toml" in many["Environment"]
    own = ("LoadCredential", "Description", "CacheDirectory")
    cache = [e for e in many["Environment"] if e.startswith(("NUMBA_CACHE_DIR", "GENRECAST_CONFIG_SOURCE"))]
    assert {k: v for k, v in many.items() if k not in own} | {"Environment": cache} == {
        k: v for k, v in one.items() if k not in own} | {"Environment": cache}
    assert [e for e in many["Environment"] if e not in cache] == [
        e for e in one["Environment"] if not e.startswith(("NUMBA_CACHE_DIR", "GENRECAST_CONFIG_SOURCE"))]


def test_example_streams_config_loads():
    settings = load_settings(ROOT / "systemd" / "streams.toml.example", environ={})
    streams = {s.stream_id: s for s in settings.stream_settings()}
    assert list(streams) == ["kitchen", "hall", "archive"] and settings.daemon_name() == "studio-rack"
    assert streams["hall"].min_confidence == 0.5 and streams["kitchen"].min_confidence == 0.4
    assert streams["archive"].loop and streams["archive"].hop_seconds == 3
