"""Numbers from untrusted JSON: a finite int or float, never a bool, NaN or infinity.

JSON parsers here accept ``NaN`` and ``Infinity`` and Python counts ``True`` as an
int, so ``isinstance(value, float)`` alone lets through what no bound can compare.
"""

from __future__ import annotations

import math


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number; None otherwise (absent, text, bool, NaN, ±inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int of more digits than any float holds, which JSON allows
        return None
    return number if math.isfinite(number) else None
