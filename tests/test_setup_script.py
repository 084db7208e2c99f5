"""scripts/setup.sh's plans (``--plan`` prints what it would install and does nothing; the same variables drive
the real run). A production host gets the service only; ``make setup`` keeps everything the tests need."""

from __future__ import annotations

import subprocess
import tomllib

from conftest import ROOT

TEST_ONLY_APT = {"chromium", "chromium-driver", "pulseaudio", "pulseaudio-utils", "mosquitto", "sox", "debootstrap",
                 "systemd-container"}


def plan(*flags: str, env: dict | None = None) -> dict[str, str]:
    out = subprocess.run(["bash", "scripts/setup.sh", *flags, "--plan"], cwd=ROOT, capture_output=True, text=True,
                         check=True, env=env).stdout
    return dict(line.split(": ", 1) for line in out.splitlines())


def test_the_service_set_up_installs_no_torch_no_test_tools_no_browser():
    service = plan("--service")
    apt = set(service["apt"].split())
    assert {"portaudio19-dev", "libsndfile1"} <= apt and not apt & (TEST_ONLY_APT | {"mosquitto-clients"}), apt
    assert service["pip"] == "-e ." and "fetch" not in service  # no extras, no musicnn weights
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in base if d.split(">")[0].split("=")[0] in ("torch", "onnx", "pytest", "selenium")], base
    assert "mosquitto-clients" in plan("--service", "--with-mqtt-clients")["apt"].split()


def test_the_full_set_up_is_unchanged():
    full = plan()
    assert set(full["apt"].split()) >= TEST_ONLY_APT and full["pip"] == "-e .[train,test]" and "fetch" in full
    assert "mosquitto-clients" not in full["apt"].split() and "torch" not in full


def test_mqtt_clients_and_torchs_cpu_index_are_there_to_ask_for():
    """Before, --with-mqtt-clients was ignored by the full set-up, and nothing offered torch's CPU build on a
    machine where PyPI's (CUDA, gigabytes) is what `torch==<pin>` finds."""
    import os

    assert "mosquitto-clients" in plan("--with-mqtt-clients")["apt"].split()
    pin = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
               ["train"] if d.startswith("torch=="))
    asked = plan(env={**os.environ, "TORCH_INDEX_URL": "https://download.pytorch.org/whl/cpu"})
    assert asked["torch"] == f"{pin.removeprefix('torch==')} from https://download.pytorch.org/whl/cpu"


def test_make_setup_service_runs_the_service_plan_and_a_bad_flag_is_one_line():
    # under `make test` this runs inside make: no "Entering directory" lines, whatever the outer make passes down
    dry = subprocess.run(["make", "-n", "--no-print-directory", "setup-service"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert dry.stdout.strip() == "bash scripts/setup.sh --service"
    bad = subprocess.run(["bash", "scripts/setup.sh", "--servce"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--servce" in bad.stderr
