"""``python -m llmflow``: the command line (see :mod:`llmflow.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
