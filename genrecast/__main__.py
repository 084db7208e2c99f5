"""``python -m genrecast``: the same command line as the ``genrecast`` script."""

import sys

from genrecast.cli import main

sys.exit(main())
