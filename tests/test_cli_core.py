"""The `genrecast` core: one version, one error type, one dispatcher, reachable as a script and as a module."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest
from conftest import ROOT, free_port, wait_for_port

import genrecast
from genrecast.cli import COMMAND_MODULES, build_parser
from genrecast.errors import UserError


def test_version_is_defined_once_and_shown_by_script_and_module():
    assert metadata.version("genrecast") == genrecast.__version__  # pyproject reads it from genrecast/__init__.py
    proc = subprocess.run([sys.executable, "-m", "genrecast", "--version"], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout.strip()) == (0, f"genrecast {genrecast.__version__}")


def test_every_part_raises_the_one_user_error():
    from genrecast.daemon import config, pipeline
    from genrecast.dashboard import cli as dashboard_cli

    assert config.UserError is dashboard_cli.UserError is pipeline.UserError is UserError


def test_dispatcher_lists_every_command():
    names = set(build_parser().commands)
    assert {"run", "classify", "devices", "dashboard", "evaluate", "train-transfer"} <= names
    assert "train" not in names  # the from-scratch recipe is retired (issue 17)
    assert all(m.startswith("genrecast.") for m in COMMAND_MODULES)


def test_a_user_error_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "genrecast", "classify", str(tmp_path / "missing.flac")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "missing.flac" in proc.stderr


@pytest.mark.parametrize("args, says", [  # an unset shell variable: "" was the current folder, "is a folder"
    (["classify", ""], "genrecast classify: error: an empty path (an unset shell variable?)"),
    (["classify", "--model", "", "x.wav"], "genrecast classify: error: model: an empty path"),
    (["run", "--model", "", "--source", "file:x.wav"], "genrecast run: error: model: an empty path"),
])
def test_an_empty_path_is_named_as_one(args, says):
    proc = subprocess.run([sys.executable, "-m", "genrecast", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stderr.startswith(says), proc.stderr


@pytest.mark.parametrize("args, says", [
    (["run", "--speed", "abc"], "genrecast run: error: argument --speed: invalid float value: 'abc'"),
    (["run", "--stream-i", "x"], "genrecast run: error: unrecognized arguments: --stream-i x"),
    # no command takes a flag's abbreviation: `classify --js` was --json, until a flag added later changes it
    (["classify", "--js", "x.wav"], "genrecast classify: error: unrecognized arguments: --js"),
    (["evaluate", "--da", "x"], "genrecast evaluate: error: the following arguments are required: --data"),
    (["frobnicate"], "genrecast: error: argument COMMAND: invalid choice: 'frobnicate'"),
])
def test_a_bad_flag_is_one_line_naming_the_command_and_its_help(args, says):
    proc = subprocess.run([sys.executable, "-m", "genrecast", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stderr.startswith(says), proc.stderr
    assert proc.stderr.rstrip().endswith(f"(see genrecast{' ' + args[0] if args[0] != 'frobnicate' else ''} --help)")


def test_a_reader_that_leaves_the_pipe_ends_the_command_quietly():
    """`genrecast classify *.wav | head -1`: the reader's end is closed before anything is written, so the first
    write fails for certain; the command stops with the shell's code for a broken pipe, not a traceback."""
    import os
    from pathlib import Path

    clip = Path(genrecast.__file__).resolve().parent.parent / "examples" / "synth-groove.flac"
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "genrecast", "classify", str(clip), str(clip)], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr[-1500:]


def test_an_error_naming_a_file_with_a_newline_stays_one_line(tmp_path):
    """A reader takes one stderr line for one error, and one stdout line for one result; a file name may hold a
    newline (shown escaped, as `\\n`)."""
    import shutil
    from pathlib import Path

    clip = shutil.copy(Path(genrecast.__file__).resolve().parent.parent / "examples" / "synth-groove.flac",
                       tmp_path / "a\nb\tc.flac")  # a tab would split the result's columns
    proc = subprocess.run([sys.executable, "-m", "genrecast", "classify", clip], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.count("\n") == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"{tmp_path}/a\\nb\\tc.flac\t") and proc.stdout.count("\t") == 2, proc.stdout
    proc = subprocess.run([sys.executable, "-m", "genrecast", "classify", str(tmp_path / "two\nlines.wav")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{tmp_path}/two\\nlines.wav: no such file" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "genrecast", "run", "--config", str(tmp_path / "a\nb.toml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "a\\nb.toml" in proc.stderr, proc.stderr


def test_a_stdin_source_with_stdin_closed_is_one_line_exit_2():
    """Python sets sys.stdin to None for a process started with fd 0 closed: an AttributeError traceback once."""
    import os

    proc = subprocess.run([sys.executable, "-m", "genrecast", "run", "--source", "stdin", "--broker",
                           "mqtt://127.0.0.1:1"], capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: os.close(0))
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert proc.stderr.endswith("genrecast run: error: stdin: not open (the command was started with its standard "
                                "input closed)\n"), proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr


def test_output_to_a_full_disk_is_one_line_not_a_traceback():
    """`genrecast classify *.wav > results.txt` on a full disk (/dev/full: every write fails with ENOSPC)."""
    from pathlib import Path

    clip = Path(genrecast.__file__).resolve().parent.parent / "examples" / "synth-groove.flac"
    for json_flag in ([], ["--json"]):
        with open("/dev/full", "w") as full:
            proc = subprocess.run([sys.executable, "-m", "genrecast", "classify", *json_flag, str(clip)], stdout=full,
                                  stderr=subprocess.PIPE, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr[-1500:]
        assert proc.stderr == "genrecast classify: error: cannot write (No space left on device)\n", proc.stderr



def test_output_to_a_closed_stdout_is_one_line_not_results_dropped_in_silence(broker, tmp_path):
    """Started with stdout closed (``>&-``), print() wrote every result to nowhere, then the final flush was an
    AttributeError traceback. A command whose stdout is its result says so at once (not after minutes of work);
    one that prints nothing that matters still runs (`run` and `dashboard`, below)."""
    import os
    from pathlib import Path

    clip = Path(genrecast.__file__).resolve().parent.parent / "examples" / "synth-groove.flac"
    (tmp_path / "rock").mkdir()
    (tmp_path / "rock" / "a.flac").write_bytes(clip.read_bytes())
    # evaluate: before its work, which would have said first that there is no such folder (rc 2)
    for command, args in (("classify", [str(clip)]), ("classify", ["--json", str(clip)]),
                          ("evaluate", ["--data", str(tmp_path / "none"), "--json", str(tmp_path / "eval.json")])):
        proc = subprocess.run([sys.executable, "-m", "genrecast", command, *args], stderr=subprocess.PIPE, text=True,
                              timeout=120, preexec_fn=lambda: os.close(1))
        assert (proc.returncode, proc.stderr) == (1, f"genrecast {command}: error: cannot write (stdout is closed)\n")
    proc = subprocess.run([sys.executable, "-m", "genrecast", "run", "--source", f"file:{clip}", "--speed", "0",
                           "--broker", broker.url], stderr=subprocess.PIPE, text=True, timeout=120,
                          preexec_fn=lambda: os.close(1))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    # a service whose start line goes nowhere: it serves all the same
    port = free_port()
    dashboard = subprocess.Popen([sys.executable, "-m", "genrecast", "dashboard", "--broker", broker.url, "--port",
                                  str(port)], stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1))
    try:
        wait_for_port(port, timeout=120)  # a hang guard, never a speed assertion
        assert dashboard.poll() is None
    finally:
        dashboard.terminate()
        _, err = dashboard.communicate(timeout=120)
    assert "cannot write" not in err and "Traceback" not in err, err[-1500:]

def test_a_service_started_with_stderr_closed_runs(broker, tmp_path):
    """Python sets sys.stderr to None for a process started with fd 2 closed (``2>&-``): keeping C libraries' lines out
    of the journal flushed it first, an AttributeError that ended the service in silence."""
    import os
    from pathlib import Path

    clip = Path(genrecast.__file__).resolve().parent.parent / "examples" / "synth-groove.flac"
    proc = subprocess.run([sys.executable, "-m", "genrecast", "run", "--source", f"file:{clip}", "--speed", "0",
                           "--broker", broker.url, "--stream-id", "quiet"], stdout=subprocess.PIPE, text=True,
                          timeout=120, preexec_fn=lambda: os.close(2))
    assert proc.returncode == 0
    # and a command's error lines stay out of its results (print to a closed stderr went to stdout)
    proc = subprocess.run([sys.executable, "-m", "genrecast", "classify", str(clip), str(tmp_path / "no.wav")],
                          stdout=subprocess.PIPE, text=True, timeout=120, preexec_fn=lambda: os.close(2))
    assert proc.returncode == 2 and proc.stdout.startswith(f"{clip}\t") and proc.stdout.count("\n") == 1, proc.stdout

@pytest.mark.parametrize(("script", "args", "wanted"), [
    ("room_bench.py", ["--model", "nosuch.onnx"], "room_bench.py: error: model nosuch.onnx: no such file"),
    ("room_bench.py", ["--fold", "9"], "room_bench.py: error: fold must be in 1..5"),
    ("room_bench.py", ["--ood", "nosuch"], "room_bench.py: error: --ood nosuch: no such data folder"),
    ("model_bench.py", ["--model", "nosuch.onnx"], "model_bench.py: error: model nosuch.onnx: no such file"),
    ("music_flips.py", ["--nonmusic", "nosuch"], "music_flips.py: error: --nonmusic nosuch: no such data folder"),
    ("music_flips.py", ["--model", "nosuch.onnx"], "music_flips.py: error: model nosuch.onnx: no such file"),
])
def test_a_benchmark_given_bad_input_says_so_in_one_line(script, args, wanted):
    """Every benchmark answered a missing model or a fold that is not there with a traceback."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and wanted in proc.stderr, proc.stderr[-2000:]
