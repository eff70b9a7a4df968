"""Durations on the command line: ``--since 7d``, ``--ttl 12h``,
``--max-xact-age 5m`` all read the same way."""

from __future__ import annotations

import re

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)?\s*", re.IGNORECASE)
_SECONDS_PER = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_seconds(text: str, *, bare: str | None) -> float | None:
    """Seconds in ``text``: a number with a unit (s, m or min, h, d, w), or a
    bare number in unit ``bare`` (``None``: a unit is required). ``None`` when
    ``text`` is not a duration, for the caller to say what it expected.

    >>> duration_seconds("1.5h", bare=None), duration_seconds("90", bare="m")
    (5400.0, 5400.0)
    >>> duration_seconds("90", bare=None) is None, duration_seconds("soon", bare="s")
    (True, None)
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    unit = (match.group(2) or bare or "").lower()
    if not unit:
        return None
    return float(match.group(1)) * _SECONDS_PER[unit]
