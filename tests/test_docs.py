"""What the docs promise that a reader would copy: the model id in examples, and where the command lives."""

from __future__ import annotations

import re

from daemon_helpers import ROOT
from genrecast.daemon.model import DEFAULT_MODEL, load_model

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "README.md"]


def test_model_ids_in_the_docs_are_the_shipped_models():
    shipped = load_model(str(DEFAULT_MODEL)).model_id
    shown = {(doc.name, m) for doc in DOCS for m in re.findall(r'"(genrecast-[a-z]+-[0-9][\w.]*)"', doc.read_text())}
    assert shown, "the docs' example payloads should name a model id"
    assert {m for _, m in shown} == {shipped}, f"docs name {sorted(shown)}; the shipped model is {shipped}"


def test_readme_says_where_the_command_is():
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/genrecast" in readme and ". .venv/bin/activate" in readme


def test_the_keys_a_stream_table_may_override_are_all_listed():
    """The daemon's docs and the example streams file list every per-stream key, so none is found by accident."""
    from genrecast.daemon.config import PER_STREAM

    daemon_md = " ".join((ROOT / "docs" / "daemon.md").read_text().split())
    listed = daemon_md.split("a table may override", 1)[1].split("for its stream", 1)[0]
    example = (ROOT / "systemd" / "streams.toml.example").read_text().split("may override", 1)[1].split("alone", 1)[0]
    for key in PER_STREAM:
        assert f"`{key}`" in listed, f"docs/daemon.md does not list {key}"
        assert key in re.findall(r"\w+", example), f"streams.toml.example does not list {key}"
