"""Numbers a person types (a CLI option, a field of the page's form): one check, one wording."""

from __future__ import annotations

import math

from melodance.errors import InputError

MAX_TEXT = 40
"""Longest text accepted as a number (anything longer is not a number a person typed)."""


def finite_number(value, name: str, what: str = "number") -> float:
    """``value`` (a number, or a short text of one) as a finite float; InputError naming ``name``.

    ``what``: how the message calls it ("number of seconds"); booleans, containers, texts
    longer than :data:`MAX_TEXT` and inf/nan are refused."""
    shown = repr(value)[:MAX_TEXT]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or len(str(value)) > MAX_TEXT:
        raise InputError(f"{name} must be a {what}, got {shown}")
    try:
        v = float(value)
    except (ValueError, OverflowError):
        raise InputError(f"{name} must be a {what}, got {shown}") from None
    if not math.isfinite(v):
        raise InputError(f"{name} must be a finite {what}, got {v}")
    return v


def seconds(value, name: str, *, positive: bool = False) -> float:
    """A finite number of seconds, >= 0 (``positive``: > 0); InputError naming ``name``."""
    v = finite_number(value, name, "number of seconds")
    if positive and v <= 0:
        raise InputError(f"{name} must be > 0, got {v:g}")
    if v < 0:
        raise InputError(f"{name} must be >= 0, got {v:g}")
    return v
