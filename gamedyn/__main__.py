"""``python -m gamedyn …``: the ``gamedyn`` command (:mod:`gamedyn.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
