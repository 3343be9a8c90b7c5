"""Host-side argument checks shared by the constructors: clear errors that name the argument and
the value, before numpy or JAX see it; and size estimates that warn before long work.

numpy converts a surprising amount silently (``float("0.1")``, complex to real with a warning,
``np.asarray("ab")`` to a string array): the public constructors pass user numbers through here.
"""

from __future__ import annotations

import os
import warnings

import numpy as np


class LargeProblemWarning(UserWarning):
    """A cover or space that will take a lot of memory or time (estimated before building)."""


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _numeric_text(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def real_array(value, name: str) -> np.ndarray:
    """``value`` as a float64 array; strings, complex numbers, booleans and objects are refused."""
    if isinstance(value, str | bytes):
        raise TypeError(f"{name} must be numbers, got the string {_short(value)}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged nesting
        raise TypeError(f"{name} must be an array of numbers, got {_short(value)} ({err})") from None
    if arr.dtype.kind in "USO":
        flat = arr.ravel()
        if arr.dtype.kind == "O":
            bad = next((v for v in flat if not isinstance(v, int | float | np.number)), None)
            if bad is None:
                return arr.astype(float)
        else:  # numpy turned every entry into a string: show the one that is not a number
            bad = next((v for v in flat if not _numeric_text(v)), flat[0] if flat.size else value)
        raise TypeError(f"{name} must be numbers, got {_short(bad)}")
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real numbers, got complex values {_short(value)}")
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must be numbers, got booleans {_short(value)}")
    return arr.astype(float)


def positive_number(value, name: str) -> float:
    """A finite number > 0 (not a string, a bool or a complex number)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a positive number, got {_short(value)}")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number, got {_short(value)}")
    return v


def physical_gib() -> float:
    """Physical memory of this machine in GiB (64 where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 64.0


WARN_GIB = 2.0  # estimates above this warn


def check_size(what: str, gib: float, detail: str, limit_gib: float | None, limit_arg: str) -> None:
    """Refuse work estimated above ``limit_gib`` (default: 3/4 of physical memory) and warn above
    ``WARN_GIB``; ``detail`` says what the estimate counts."""
    limit = 0.75 * physical_gib() if limit_gib is None else float(limit_gib)
    if gib > limit:
        raise MemoryError(
            f"{what} would need about {gib:.3g} GiB ({detail}), above the limit of {limit:.3g} GiB; "
            f"use a coarser cover or a lower degree, or raise the limit with {limit_arg}=..."
        )
    if gib > WARN_GIB:
        warnings.warn(
            f"{what} will need about {gib:.3g} GiB ({detail}); expect a long run",
            LargeProblemWarning,
            stacklevel=3,
        )
