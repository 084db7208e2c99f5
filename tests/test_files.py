"""A small file written whole or not at all (genrecast/files.py)."""

import pytest


def test_replace_file_leaves_the_earlier_file_whole_when_a_write_fails(tmp_path, monkeypatch):
    """genrecast.files.replace_file (evaluate --json's report, the dashboard's logged-out sessions): a disk that
    fills up mid-write keeps the earlier file as it was and leaves no partial; a write that succeeds replaces it."""
    import errno

    from genrecast import files

    target = tmp_path / "report.json"
    target.write_text("earlier")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        files.replace_file(target, "later")
    assert target.read_text() == "earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    monkeypatch.undo()
    files.replace_file(target, "later")
    assert target.read_text() == "later" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
