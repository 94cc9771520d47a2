"""Find the output a user asked for by name, or say plainly that the model lacks it.

``omicslens view --output ERBB2`` on a model without ERBB2 used to show the first output
without a word. A name the model does not predict is now an error that lists the closest
names it does predict (case-insensitive, then by similarity), in the CLI and the dock.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from omicslens.core.errors import OmicsLensError


class UnknownOutputError(OmicsLensError):
    """``name`` is not an output (gene, class, gene set) of ``model``."""

    def __init__(self, name: str, model: str, close: Sequence[str], count: int) -> None:
        self.name = name
        self.model = model
        self.close = list(close)
        hint = f"; closest: {', '.join(self.close)}" if self.close else ""
        super().__init__(f"{model} does not predict {name!r} (it has {count} outputs){hint}")


def match_output(name: str, choices: Sequence[str]) -> str | None:
    """The choice ``name`` means: exact, then case-insensitive, then a gene-set label
    given without its ``[n/m genes]`` suffix. None when nothing matches."""
    if name in choices:
        return name
    folded = name.casefold()
    for choice in choices:
        if choice.casefold() == folded or choice.split(" [")[0].casefold() == folded:
            return choice
    return None


def resolve_output(name: str, choices: Sequence[str], model: str) -> str:
    """:func:`match_output`, or :class:`UnknownOutputError` with up to 5 close names."""
    found = match_output(name, choices)
    if found is not None:
        return found
    by_case = {choice.casefold(): choice for choice in choices}
    close = difflib.get_close_matches(name.casefold(), list(by_case), n=5, cutoff=0.5)
    prefix = [c for c in choices if c.casefold().startswith(name.casefold()[:3])][:5]
    suggestions = list(dict.fromkeys([by_case[c] for c in close] + prefix))[:5]
    raise UnknownOutputError(name, model, suggestions, len(choices))
