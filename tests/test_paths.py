"""One wording for a path that is not what a reader needs, and no traceback for a folder this user cannot enter."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import genrecast.paths
from genrecast.paths import path_problem


def test_each_kind_of_wrong_path_is_named(tmp_path):
    (tmp_path / "a.onnx").write_bytes(b"x")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert path_problem(tmp_path / "a.onnx") is None and path_problem(tmp_path, "data folder") is None
    assert path_problem(tmp_path / "gone.onnx") == "no such file"
    assert path_problem(tmp_path / "a.onnx" / "b.onnx") == "no such file"  # a file on the way, not a folder
    assert path_problem(tmp_path / "gone", "data folder") == "no such data folder"
    assert path_problem(tmp_path) == "is a folder, not a file"
    assert path_problem(tmp_path / "a.onnx", "data folder") == "is a file, not a data folder"
    assert path_problem(tmp_path / "a.onnx", "ONNX file") is None
    assert path_problem(tmp_path, "ONNX file") == "is a folder, not an ONNX file"
    assert path_problem(tmp_path / "fifo") == "is a pipe or a device, not a file"
    assert path_problem(tmp_path / "loop").startswith("cannot read (Too many levels of symbolic links")


def test_a_folder_this_user_may_not_enter_is_named_not_raised():
    """As systemd's DynamicUser meets a model under /home with ProtectHome: Path.is_file raised PermissionError.
    Run as an unprivileged user (root may enter anything), by the system's Python: only the standard library.
    In a folder of /tmp that user may enter (pytest's own are private), checked by a file it can read."""
    with tempfile.TemporaryDirectory(dir="/tmp") as top:
        os.chmod(top, 0o755)
        _as_another_user(Path(top))


def _as_another_user(top: Path):
    closed, private, shared = top / "closed", top / "private.onnx", top / "shared.onnx"
    closed.mkdir()
    (closed / "m.onnx").write_bytes(b"x")
    private.write_bytes(b"x")
    shared.write_bytes(b"x")
    closed.chmod(0o000)
    private.chmod(0o600)
    shared.chmod(0o644)
    paths = [str(closed / "m.onnx"), str(closed), str(private), str(shared)]
    wants = ["file", "data folder", "file", "file"]
    if os.geteuid() == 0:
        python = shutil.which("python3", path="/usr/bin:/bin")
        assert python, "the system's python3, to run the check as user nobody"
        module = Path(genrecast.paths.__file__).read_text()
        code = (f"{module}\nimport json, sys\n"
                f"print(json.dumps([path_problem(p, w) for p, w in zip({paths!r}, {wants!r}, strict=True)]))")
        found = json.loads(subprocess.run([python, "-c", code], user=65534, capture_output=True, text=True,
                                          check=True).stdout)
    else:
        found = [path_problem(p, w) for p, w in zip(paths, wants, strict=True)]
    closed.chmod(0o755)
    assert found == ["cannot read (Permission denied)"] * 3 + [None]
