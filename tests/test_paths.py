"""One wording for a path that is not what a reader needs, and no traceback for a folder this user cannot enter."""

import json
import os
import tempfile
from pathlib import Path

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
    assert path_problem("/dev/null", "data folder") == "is a pipe or a device, not a data folder"
    assert path_problem(tmp_path / "a.onnx", "ONNX file") is None
    assert path_problem(tmp_path, "ONNX file") == "is a folder, not an ONNX file"
    assert path_problem(tmp_path / "fifo") == "is a pipe or a device, not a file"
    assert path_problem(tmp_path / "loop").startswith("cannot read (Too many levels of symbolic links")
    # a TOML string may hold one; os.stat raises ValueError, where Path.is_file had answered False
    assert path_problem("m\0.onnx", "ONNX file") == "no such ONNX file (its name holds a NUL character)"


def test_a_folder_this_user_may_not_enter_is_named_not_raised():
    """As systemd's DynamicUser meets a model under /home with ProtectHome: Path.is_file raised PermissionError.
    Checked by a child process as user nobody when run as root (root may enter anything). In a folder of /tmp that
    user may enter (pytest's own are private), and a file it can read answers None."""
    with tempfile.TemporaryDirectory(dir="/tmp") as top:
        os.chmod(top, 0o755)
        closed, private, shared = Path(top) / "closed", Path(top) / "private.onnx", Path(top) / "shared.onnx"
        closed.mkdir()
        (closed / "m.onnx").write_bytes(b"x")
        for path, mode in ((private, 0o600), (shared, 0o644)):
            path.write_bytes(b"x")
            path.chmod(mode)
        closed.chmod(0o000)
        asked = [(closed / "m.onnx", "file"), (closed, "data folder"), (private, "file"), (shared, "file")]
        found = _as_nobody(lambda: [path_problem(p, w) for p, w in asked]) if os.geteuid() == 0 else \
            [path_problem(p, w) for p, w in asked]
        closed.chmod(0o755)
    assert found == ["cannot read (Permission denied)"] * 3 + [None]


def _as_nobody(ask):
    """``ask()`` in a forked child that has become user nobody (65534), its answer sent back as JSON."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, json.dumps(ask()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child as user nobody failed"
    return json.loads(answer)


def test_a_problem_carries_its_kind_for_callers_that_add_a_hint(tmp_path):
    (tmp_path / "a.onnx").write_bytes(b"x")
    os.mkfifo(tmp_path / "fifo")
    kinds = {"gone.onnx": "missing", ".": "folder", "fifo": "special"}
    assert {name: path_problem(tmp_path / name).kind for name in kinds} == kinds
    assert path_problem(tmp_path / "a.onnx", "data folder").kind == "file"
    assert path_problem("m\0.onnx").kind == "bad name"  # no "the package ships ..." hint for that
