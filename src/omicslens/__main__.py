"""``python -m omicslens``: the same as the ``omicslens`` command."""

from omicslens.cli.entry import console

console()
