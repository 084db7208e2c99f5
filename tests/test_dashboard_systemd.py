"""The dashboard's systemd unit, checked by systemd itself and against the daemon's hardening, and its installer."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from genrecast.dashboard.cli import dashboard_settings
from test_daemon_systemd import UNIT as DAEMON_UNIT
from test_daemon_systemd import unit_settings

UNIT = ROOT / "systemd" / "genrecast-dashboard.service"
# The daemon's hardening that applies to a process without sound devices, line for line.
SHARED = ("DynamicUser", "ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges", "DevicePolicy",
          "RestrictAddressFamilies", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
          "ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc", "RestrictNamespaces",
          "RestrictSUIDSGID", "LockPersonality", "SystemCallArchitectures", "SystemCallFilter",
          "CapabilityBoundingSet", "UMask", "Restart", "RestartSec", "RestartPreventExitStatus",
          "StartLimitIntervalSec", "StartLimitBurst")


def verify(unit: Path) -> None:
    """systemd-analyze exits 0 even for unknown keys: any line naming the unit fails."""
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if unit.stem in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    unit = tmp_path / UNIT.name  # ExecStart pointed at this checkout's genrecast: systemd checks that it exists
    unit.write_text(UNIT.read_text().replace("/opt/genrecast/.venv/bin/genrecast",
                                             str(Path(sys.executable).parent / "genrecast")))
    verify(unit)


def test_the_unit_is_hardened_like_the_daemons_restarts_and_takes_the_token_as_a_credential():
    ours, daemon = unit_settings(UNIT), unit_settings(DAEMON_UNIT)
    assert {k: ours.get(k) for k in SHARED} == {k: daemon[k] for k in SHARED}
    assert ours["Restart"] == ["on-failure"] and ours["PrivateDevices"] == ["yes"] and "DeviceAllow" not in ours
    # the root-only config holding [api] token reaches the dynamic user as a credential, never in the unit itself
    assert ours["LoadCredential"] == ["config:/etc/genrecast/dashboard.toml"]
    assert "GENRECAST_CONFIG_SOURCE=/etc/genrecast/dashboard.toml" in ours["Environment"]  # what its errors name
    command = "/opt/genrecast/.venv/bin/genrecast dashboard --config ${CREDENTIALS_DIRECTORY}/config"
    assert ours["ExecStart"] == [command]
    assert ours["StateDirectory"] == ["genrecast-dashboard"]  # where logged-out sessions outlive a restart
    assert not any("TOKEN" in line for line in ours.get("Environment", []))


def test_the_example_config_is_what_the_dashboard_reads(tmp_path):
    example = ROOT / "systemd" / "dashboard.toml.example"
    settings = dashboard_settings(str(example), environ={})
    assert settings.prefix == "genrecast" and settings.broker.url == "mqtt://127.0.0.1:1883"
    assert settings.api.token is None and not settings.api.allow_open  # no token shipped: loopback only
    with_token = tmp_path / "dashboard.toml"
    with_token.write_text(example.read_text().replace('# token = "..."', 'token = "' + "t" * 24 + '"'))
    assert dashboard_settings(str(with_token), environ={}).api.token == "t" * 24


def test_make_setup_service_installs_the_units_for_this_checkout(tmp_path):
    """scripts/install_units.sh, which `make setup-service` runs: every unit, with this checkout's path, verified by
    systemd; the dashboard's config root-only and never overwritten."""
    units, config = tmp_path / "units", tmp_path / "etc"
    env = {**os.environ, "UNIT_DIR": str(units), "CONFIG_DIR": str(config)}
    assert "units: genrecast-dashboard.service" in subprocess.run(
        ["bash", "scripts/setup.sh", "--service", "--plan"], cwd=ROOT, capture_output=True, text=True, env=env,
        check=True).stdout
    done = subprocess.run(["bash", "scripts/install_units.sh"], cwd=ROOT, env=env, check=True, capture_output=True,
                          text=True)
    # a checkout or interpreter the units' ProtectHome= hides is named (this machine's venv comes from pyenv's)
    cfg = (ROOT / ".venv" / "pyvenv.cfg").read_text() if (ROOT / ".venv" / "pyvenv.cfg").exists() else ""
    python_home = next((line.split(" = ", 1)[1] for line in cfg.splitlines() if line.startswith("home = ")), "")
    hidden = [p for p in (str(ROOT), python_home) if p and p.startswith(("/home/", "/root/", "/run/user/"))]
    assert [line.split()[2] for line in done.stderr.splitlines() if "warning:" in line] == hidden, done.stderr
    installed = sorted(p.name for p in units.iterdir())
    assert installed == sorted(p.name for p in (ROOT / "systemd").iterdir() if p.suffix in (".service", ".timer"))
    assert "genrecast-retry@.timer" in installed  # what each unit's OnFailure= starts once it gave up restarting
    dashboard = (units / UNIT.name).read_text()
    assert f"{ROOT}/.venv/bin/genrecast dashboard" in dashboard
    assert stat.S_IMODE((units / UNIT.name).stat().st_mode) == 0o644
    assert stat.S_IMODE((config / "dashboard.toml").stat().st_mode) == 0o640
    (config / "dashboard.toml").write_text("# edited\n")
    subprocess.run(["bash", "scripts/install_units.sh"], cwd=ROOT, env=env, check=True, capture_output=True)
    assert (config / "dashboard.toml").read_text() == "# edited\n"
    if shutil.which("systemd-analyze") and ROOT.joinpath(".venv/bin/genrecast").exists():
        verify(units / UNIT.name)
