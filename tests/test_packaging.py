"""The release artefacts: an sdist builds, a wheel built from it installs into a fresh venv and works elsewhere.

Honest and offline: the wheel is built from the sdist (so the sdist is complete), installed by pip *with*
dependency resolution into a venv that cannot see the checkout or this venv's packages. The dependencies come
from a directory holding exactly the distributions ``Requires-Dist`` pulls in (linked from this venv, nothing
else, torch and the test tools left out), so pip has to find every declared requirement satisfied there, and
the commands have to run with nothing more. Only downloading the same distributions from the registry is left
out, which is slow and the registry's business.
"""

from __future__ import annotations

import email.parser
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from conftest import ROOT
from daemon_helpers import Subscriber
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

WAIT = 300  # building and installing; a hang guard, not a speed assertion
PACKAGES = {"genrecast"}  # daemon/, dsp/, training/ and dashboard/ install as genrecast.daemon and so on


def run(*args, cwd: Path, env: dict | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def source_tree(dest: Path) -> Path:
    """The files a release is built from: tracked and untracked-but-not-ignored, links kept as links."""
    if not (ROOT / ".git").exists():
        pytest.fail("the packaging test builds from a git checkout")
    names = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).split("\0")
    for name in filter(None, names):
        src, dst = ROOT / name, dest / name
        if not src.exists() and not src.is_symlink():  # deleted but not yet committed
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)
    return dest


def runtime_closure(requires: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``requires`` (no extras) pulls in, transitively, by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in requires]
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in found:
            continue
        dist = metadata.distribution(req.name)
        assert dist.version in req.specifier or not req.specifier, f"{req}: this venv has {dist.version}"
        found[name] = dist
        todo += [Requirement(r) for r in dist.requires or []]
    return found


def link_distributions(dists: dict[str, metadata.Distribution], dest: Path) -> None:
    """A site directory of links to each distribution's top-level files, as its RECORD lists them."""
    dest.mkdir()
    for name, dist in dists.items():
        assert dist.files is not None, f"{name} has no RECORD"
        site = Path(dist.locate_file(""))
        for top in {f.parts[0] for f in dist.files if f.parts[0] != ".."}:
            if not (dest / top).exists():
                (dest / top).symlink_to(site / top)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, wheel path, dependency closure) for a wheel built from the sdist and installed by pip."""
    work = tmp_path_factory.mktemp("release")
    tree = source_tree(work / "tree")
    sdist_name = run(sys.executable, "-c", "from setuptools import build_meta as b; print(b.build_sdist('dist'))",
                     cwd=tree).strip().splitlines()[-1]
    with tarfile.open(tree / "dist" / sdist_name) as tar:
        tar.extractall(work / "sdist", filter="data")
    (unpacked,) = (work / "sdist").iterdir()
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", work / "wheels",
        unpacked, cwd=work)
    (wheel,) = (work / "wheels").glob("genrecast-*.whl")

    with zipfile.ZipFile(wheel) as zf:
        meta = email.parser.Parser().parsestr(zf.read(next(n for n in zf.namelist() if n.endswith("/METADATA")))
                                              .decode())
    closure = runtime_closure(meta.get_all("Requires-Dist"))
    link_distributions(closure, work / "deps")

    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)  # no system site-packages either
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=work).strip())
    (site / "genrecast-test-deps.pth").write_text(f"import site; site.addsitedir({str(work / 'deps')!r})\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index", "--find-links",
        work / "wheels", "genrecast", cwd=work)
    return python, wheel, closure


def clean_env() -> dict:
    """No PYTHONPATH (which points into the checkout when tests run from one), no developer settings."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("GENRECAST_")}


def test_the_wheel_carries_the_model_schemas_and_assets(installed):
    _, wheel, closure = installed
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    tops = {n.split("/")[0] for n in names}
    assert tops == PACKAGES | {next(t for t in tops if t.endswith(".dist-info"))}, "nothing else at the top level"
    assert {"genrecast/daemon/models/genrecast-gtzan.onnx", "genrecast/daemon/models/genrecast-gtzan-fast.onnx",
            "genrecast/__init__.py", "genrecast/cli.py"} <= names
    assert {f"genrecast/daemon/schemas/{k}.schema.json" for k in ("status", "prediction", "genre")} <= names
    assets = {f"genrecast/dashboard/assets/{p.name}" for p in (ROOT / "dashboard" / "assets").iterdir()}
    assert assets and assets <= names
    assert not {"torch", "onnx", "pyroomacoustics", "pytest"} & set(closure), "the service must not need the extras"
    licence = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read(licence).decode().startswith("MIT License")  # what the metadata's "MIT" refers to


def test_installed_classify_and_run_work_outside_the_checkout(installed, broker, tmp_path):
    python, _, _ = installed
    genrecast = python.parent / "genrecast"
    clip = shutil.copy(ROOT / "examples" / "synth-groove.flac", tmp_path / "clip.flac")
    env = clean_env()

    where = run(python, "-c", "import genrecast.daemon, genrecast.dashboard.app; print(genrecast.daemon.__file__)",
                cwd=tmp_path, env=env)
    assert Path(where).is_relative_to(python.parent.parent), where
    for name in ("daemon", "dsp", "training", "dashboard"):  # no generic top-level names (python-daemon's `daemon`)
        proc = subprocess.run([python, "-c", f"import {name}"], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode != 0 and "No module named" in proc.stderr, name
    version = run(python, "-m", "genrecast", "--version", cwd=tmp_path, env=env).strip()
    assert version == f"genrecast {metadata.version('genrecast')}" == run(genrecast, "--version", cwd=tmp_path,
                                                                               env=env).strip()

    answer = json.loads(run(genrecast, "classify", "--json", "clip.flac", cwd=tmp_path, env=env))
    assert answer["file"] == "clip.flac" and answer["model_id"].startswith("genrecast-gtzan")
    assert answer["windows"] > 0 and answer["genre"] in answer["probabilities"]
    fast = json.loads(run(genrecast, "classify", "--json", "--model", "genrecast-gtzan-fast.onnx", "clip.flac",
                          cwd=tmp_path, env=env))  # the shipped fast variant, by name, with no models/ folder here
    assert fast["model_id"].startswith("genrecast-gtzan-fast") and fast["windows"] == answer["windows"]

    sub = Subscriber(broker.url)
    try:
        run(genrecast, "run", "--source", f"file:{clip}", "--speed", "0", "--stream-id", "wheel",
            "--broker", broker.url, cwd=tmp_path, env=env)
        final = sub.wait_for(lambda m: m.topic == "genrecast/wheel/status" and m.payload["state"] == "offline",
                             "the installed daemon's final status")
    finally:
        sub.close()
    assert final.payload["reason"] == "end of stream"
    assert [m.payload["model_id"] for m in sub.of("wheel/prediction")][:1] == [answer["model_id"]]


def test_training_without_its_extras_says_what_to_install_in_one_line(installed, tmp_path):
    python, _, _ = installed  # the wheel as the daemon's hosts install it: no torch, no augmentation libraries
    proc = subprocess.run([python.parent / "genrecast", "train-transfer", "--data", tmp_path, "--nonmusic", tmp_path],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    # genrecast is not on PyPI: the wheel's own path, or the checkout (it said pip install 'genrecast[train]')
    assert "is not installed" in proc.stderr and "'genrecast-VERSION-py3-none-any.whl[train]'" in proc.stderr
