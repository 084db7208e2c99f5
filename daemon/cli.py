"""``genrecast`` command line: one subcommand per job, each defined next to the code it drives.

Errors the user can fix (bad audio, bad config, a refused model) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules exposing ``register(subparsers)``. They import their heavy dependencies (onnxruntime, dash,
# torch) inside the handlers, so `genrecast --help` is quick and the daemon never loads torch.
COMMAND_MODULES = (
    "daemon.run_cmd",  # run
    "daemon.classify_cmd",  # classify
    "daemon.devices_cmd",  # devices
    "dashboard.cli",  # dashboard
    "training.cli",  # train, evaluate
    "training.transfer_cli",  # train-transfer
)


class UserError(Exception):
    """A problem with the user's input: shown as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genrecast", description="Real-time music-genre classifier service.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dsp import AudioError, ModelSpecError  # after parsing: `--help` need not load numba

    try:
        return int(args.func(args) or 0)
    except (UserError, AudioError, ModelSpecError) as exc:
        print(f"genrecast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Run the importable module's main: as __main__ this file's UserError would be a second, uncaught class.
    from daemon.cli import main as package_main

    sys.exit(package_main())
