"""Writing a small file whole or not at all: what the dashboard's logged-out sessions and ``evaluate --json``'s
report both need, so that a full disk or a power cut mid-write leaves the earlier file as it was."""

from __future__ import annotations

import os
from pathlib import Path


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` (a hidden ``.NAME.partial``), flush it to disk, then rename it over ``path``.
    Without the flush a power cut after the rename can leave an empty file; the partial never outlives a failure."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
