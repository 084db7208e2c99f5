"""``genrecast`` command line: one subcommand per job, each defined next to the code it drives.

Errors the user can fix (bad audio, bad config, a refused model) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from genrecast import __version__
from genrecast.errors import UserError, one_line
from genrecast.logs import priority_prefix

# Modules exposing ``register(subparsers)``. They import their heavy dependencies (onnxruntime, dash,
# torch) inside the handlers, so `genrecast --help` is quick and the daemon never loads torch.
COMMAND_MODULES = (
    "genrecast.daemon.run_cmd",  # run
    "genrecast.daemon.classify_cmd",  # classify
    "genrecast.daemon.devices_cmd",  # devices
    "genrecast.daemon.ha_cleanup_cmd",  # ha-cleanup
    "genrecast.dashboard.cli",  # dashboard
    "genrecast.training.transfer_cli",  # train-transfer
    "genrecast.training.evaluate_cmd",  # evaluate
)


OUTPUT_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # what writing to a redirected stdout meets
# Commands whose stdout is what they are for: started with it closed, they fail rather than print into nothing
RESULT_COMMANDS = ("classify", "evaluate", "devices", "ha-cleanup")


class OneLineParser(argparse.ArgumentParser):
    """A bad flag is one line too, like every other error: the problem and where the help is, not the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="genrecast", description="Real-time music-genre classifier service.")
    parser.add_argument("--version", action="version", version=f"genrecast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")  # its parsers: OneLineParser too
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    # No abbreviations, in any command: `classify --js` was --json (a flag added later would change what it means), and
    # `run --stream` would be ambiguous with, and `--stream-i` taken for, `--stream-id`.
    for command in sub.choices.values():
        command.allow_abbrev = False
    parser.commands = sub.choices  # name -> its parser
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser, so the message names `genrecast run`, not `genrecast`
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    from genrecast.dsp import AudioError, ModelSpecError  # after parsing: `--help` need not load numba

    if sys.stderr is None:  # started with fd 2 closed (2>&-): print(file=None) writes to stdout, into the results
        sys.stderr = open(_hold(2), "w", closefd=False)  # noqa: SIM115
    if sys.stdout is None and _stdout_closed(args.command):
        _error(args.command, "cannot write (stdout is closed)")  # before minutes of work whose result goes nowhere
        return 1
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, where a full disk is caught, not at exit (a pipe or a file is block-buffered)
        return code
    except (UserError, AudioError, ModelSpecError) as exc:
        _error(args.command, one_line(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `genrecast classify *.wav | head`: the reader has gone, which is no error of ours
        _drop_stdout()
        return 141  # 128 + SIGPIPE, as a shell reports a command a pipe's reader left
    except OSError as exc:
        if exc.errno not in OUTPUT_FULL or exc.filename is not None:
            raise
        # `genrecast classify *.wav > results.txt` on a full disk: say so in one line, not a traceback
        _drop_stdout()
        _error(args.command, f"cannot write ({exc.strerror})")
        return 1


def _hold(fd: int) -> int:
    """A descriptor the command was started without, put on /dev/null before anything opens a file: a file opened
    later would take its number, and get what C libraries print there."""
    null = os.open(os.devnull, os.O_WRONLY)
    if null != fd:
        os.dup2(null, fd)
        os.close(null)
    return fd


def _stdout_closed(command: str) -> bool:
    """Started with stdout closed (``>&-``), where print() writes to None: every result was dropped in silence, then
    the final flush was a traceback. fd 1 is held on /dev/null (:func:`_hold`). True for a command of
    :data:`RESULT_COMMANDS`, which then fails at once; any other (a service's start line: `run`, `dashboard`) runs,
    its lines discarded as before."""
    _hold(1)
    if command in RESULT_COMMANDS:
        return True
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    return False


def _error(command: str, text: str) -> None:
    """A command's last line: under systemd it carries the journal's error priority."""
    print(f"{priority_prefix(logging.ERROR)}genrecast {command}: error: {text}", file=sys.stderr)


def _drop_stdout() -> None:
    """Point stdout at /dev/null once writing to it has failed, so exit's flush cannot raise again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

