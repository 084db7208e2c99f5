"""``genrecast`` command line: one subcommand per job, each defined next to the code it drives.

Errors the user can fix (bad audio, bad config, a refused model) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module exposing ``register(subparsers)``; imported lazily so `genrecast --help`
# and light commands start fast and torch is only loaded by the training commands.
SUBCOMMANDS = {
    "run": "daemon.run_cmd",
    "classify": "daemon.classify_cmd",
    "devices": "daemon.devices_cmd",
    "dashboard": "dashboard.cli",
    "train": "training.cli",
    "evaluate": "training.cli",
}


class UserError(Exception):
    """A problem with the user's input: shown as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genrecast", description="Real-time music-genre classifier service.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in dict.fromkeys(SUBCOMMANDS.values()):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # that part of the product is not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from dsp import AudioError, ModelSpecError

    parser = build_parser()
    args = parser.parse_args(argv)
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
