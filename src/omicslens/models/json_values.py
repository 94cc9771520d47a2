"""Small helpers for JSON values: type tests and how to quote a value in an error message.

Split out of :mod:`omicslens.models.config` (where the config validator uses them) because
they know nothing about model configs: they only tell JSON numbers from booleans, mark a
missing key, and describe what the user wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    """``-3``, ``'224' (a string)``, ``true (a boolean)``: what the user wrote and its type."""
    text = json.dumps(value) if _json_safe(value) else repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, bool):
        return f"{text} (a boolean)"
    if isinstance(value, str):
        return f"{text} (a string)"
    if value is None:
        return "null"
    if isinstance(value, list):
        return f"{text} (a list of {len(value)})"
    if isinstance(value, Mapping):
        return f"{text} (an object)"
    return text


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
