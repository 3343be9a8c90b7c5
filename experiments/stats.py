"""Effect sizes over seeds: a mean with its 95 % confidence interval, stated the same way by every
Deep Manifold experiment.

The interval is Student's t interval of the mean over independent seeds (the seeds are the
replications; n - 1 degrees of freedom). Ratios and errors that span decades are averaged in log10
(``log=True``): the interval is then that of the geometric mean, back-transformed.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats


def mean_ci(values, level: float = 0.95, log: bool = False) -> dict:
    """``{"mean", "lo", "hi", "n"}`` of ``values`` (one per seed); one value: lo = hi = mean.

    Non-finite values are an error: a seed that diverged must be reported, not averaged away.
    """
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("mean_ci needs at least one value")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"mean_ci got non-finite values {v.tolist()}")
    if log:
        if np.any(v <= 0):
            raise ValueError(f"mean_ci(log=True) needs positive values, got {v.tolist()}")
        v = np.log10(v)
    m = float(np.mean(v))
    half = 0.0
    if v.size > 1:
        half = float(
            scipy.stats.t.ppf(0.5 + level / 2, v.size - 1) * np.std(v, ddof=1) / math.sqrt(v.size)
        )
    lo, hi = m - half, m + half
    if log:
        m, lo, hi = 10**m, 10**lo, 10**hi
    return {"mean": m, "lo": lo, "hi": hi, "n": int(v.size)}


def fmt_ci(ci: dict, fmt: str = ".3g") -> str:
    """``"0.12 [0.09, 0.15] (n = 5)"``; one seed: ``"0.12 (n = 1, no interval)"``."""
    if ci["n"] == 1:
        return f"{ci['mean']:{fmt}} (n = 1, no interval)"
    return f"{ci['mean']:{fmt}} [{ci['lo']:{fmt}}, {ci['hi']:{fmt}}] (n = {ci['n']})"


def geometric_mean(a, axis=0, floor: float = 1e-300) -> np.ndarray:
    """Geometric mean along ``axis`` of values floored at ``floor`` (an error can be exactly 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(np.mean(np.log(np.maximum(np.asarray(a, float), floor)), axis=axis))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a fraction k/n (a t interval of 0/1 values is meaningless)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
