"""Small input checks shared by the public functions (each raises an error that says what is wrong)."""

from __future__ import annotations

import math


def finite_float(value, name: str = "beta") -> float:
    """``float(value)``, or ``ValueError`` unless it is a finite number (couplings such as beta)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value
