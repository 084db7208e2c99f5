"""What every benchmark does with bad input (a model, a data folder or a fold that is not there): one line naming
the problem and exit 2, as genrecast's own commands do, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def run(main: Callable[[], object]) -> None:
    """Run ``main`` and exit with its status, or 2 with one line for bad input."""
    sys.exit(_status(main))


def _status(main: Callable[[], object]) -> int:
    from genrecast.dsp import AudioError, ModelSpecError
    from genrecast.training.split import SplitError

    from genrecast.errors import UserError, one_line

    try:
        return int(main() or 0)
    except (UserError, AudioError, ModelSpecError, SplitError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"{Path(sys.argv[0]).name}: error: {one_line(exc)}", file=sys.stderr)
        return 2
