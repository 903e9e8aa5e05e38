"""``python -m gamedyn …``: the ``gamedyn`` command (:mod:`gamedyn.cli`)."""

from .cli import entry

if __name__ == "__main__":
    entry()
