"""Command line: ``python -m course_utils train|evaluate ...`` (see ``--help``)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
