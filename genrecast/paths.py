"""What every reader of a named file or folder says when the path is not one: a model, an audio file, a CA file,
a data folder. One wording, and a folder the service user may not enter (systemd's ``DynamicUser`` with
``ProtectHome``) is named as such rather than escaping as a traceback from ``Path.is_file``."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

EMPTY_PATH = "an empty path (an unset shell variable?)"  # Path("") would be the current folder


class PathProblem(str):
    """Why a path is not what its reader needs: the one-line text, and its ``kind`` for a caller that adds a hint
    ("missing", "folder", "file", "special" for a pipe or a device, "unreadable", "bad name")."""

    kind: str

    def __new__(cls, kind: str, text: str) -> PathProblem:
        problem = super().__new__(cls, text)
        problem.kind = kind
        return problem


def path_problem(path: str | os.PathLike, want: str = "file") -> PathProblem | None:
    """Why ``path`` is not a readable ``want`` ("file", "ONNX file", "data folder", ...: a folder when it ends in
    "folder"), or None. A pipe or a device is no file: every reader here seeks or reads a file's length."""
    folder = want.endswith("folder")
    try:
        mode = os.stat(path).st_mode
        if folder and not stat.S_ISDIR(mode):
            if stat.S_ISREG(mode):
                return PathProblem("file", f"is a file, not {_article(want)} {want}")
            return PathProblem("special", f"is a pipe or a device, not {_article(want)} {want}")
        if not folder and stat.S_ISDIR(mode):
            return PathProblem("folder", f"is a folder, not {_article(want)} {want}")
        if not folder and not stat.S_ISREG(mode):
            return PathProblem("special", "is a pipe or a device, not a file")
        # opened, not os.access: that asks about the real user, and a service may read by a capability instead
        if folder:
            os.scandir(path).close()
        else:
            open(path, "rb").close()
    except (FileNotFoundError, NotADirectoryError):
        return PathProblem("missing", f"no such {want}")
    except OSError as exc:  # a folder on the way that this user may not enter, a loop of links, an I/O error
        return PathProblem("unreadable", f"cannot read ({exc.strerror or exc})")
    except ValueError:  # a NUL in the name, which no file name holds (from a TOML string, say)
        return PathProblem("bad name", f"no such {want} (its name holds a NUL character)")
    return None


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def path_flag(text: str) -> Path:
    """argparse ``type`` of a flag naming a file or folder: an empty one (an unset shell variable) would be the
    current folder, where `evaluate --data ""` walked a whole checkout and `--out ""` would write."""
    if not text:
        raise argparse.ArgumentTypeError(EMPTY_PATH)
    return Path(text)
