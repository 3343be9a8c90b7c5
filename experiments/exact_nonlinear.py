"""Reference solutions of two classic nonlinear problems (numpy/scipy, float64, no JAX).

* Viscous Burgers on [-1, 1] x [0, 1] with u(x, 0) = -sin(pi x), u(+-1, t) = 0: the Cole-Hopf
  solution, evaluated by Gauss-Hermite quadrature (Basdevant et al. 1986).
* Bratu in 1D, u'' + lam e^u = 0, u(0) = u(1) = 0: the closed form on both branches, and the fold
  lam* where they meet.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import roots_hermite

BURGERS_NU = 0.01 / np.pi

# Gauss-Hermite nodes used by default. With nu = 0.01/pi the integrand in z is bimodal near x = 0
# for t near 1 (its peaks sit near |z| = 1/sqrt(4 nu t) ~ 9, which the nodes must reach). Against
# 2000 nodes on ~630k points of [-1, 1] x [0, 1] (dense near x = 0), the max |error| was 1e-9 for
# 60 nodes, 1e-11 for 70, 1e-13 for 80 and 8e-15 (rounding) from 90 on; 128 leaves a margin. A
# smaller nu sharpens the front and needs its own check.
BURGERS_NODES = 128

# Points x nodes per block: bounds the temporaries (a few arrays of this many float64) to ~100 MB.
_BLOCK = 1 << 21


@cache
def _hermite(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and log-weights; nodes whose weight underflows to 0 carry nothing and are dropped."""
    z, w = roots_hermite(nodes)
    keep = w > 0
    return z[keep], np.log(w[keep])


def _burgers_moments(x, t, nu, nodes, derivative):
    x, t = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(t, dtype=float))
    if np.any(t < 0):
        raise ValueError(f"Burgers reference: t must be >= 0, got min t = {t.min()}")
    z, logw = _hermite(nodes)
    xf, tf = x.ravel(), t.ravel()
    u = np.empty_like(xf)
    ux = np.empty_like(xf) if derivative else None
    step = max(1, _BLOCK // len(z))
    for s in range(0, len(xf), step):
        xs, ts = xf[s : s + step, None], tf[s : s + step, None]
        y = np.pi * (xs - np.sqrt(4.0 * nu * ts) * z)
        # log-sum-exp: -cos/(2 pi nu) reaches +-50 for the default nu, so subtract the largest
        # exponent of each point before exponentiating (its factor cancels in the ratio)
        e = logw - np.cos(y) / (2.0 * np.pi * nu)
        p = np.exp(e - e.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        sin = np.sin(y)
        mean = (p * sin).sum(axis=1)
        u[s : s + step] = -mean
        if derivative:
            var = (p * (sin - mean[:, None]) ** 2).sum(axis=1)
            ux[s : s + step] = -np.pi * (p * np.cos(y)).sum(axis=1) - var / (2.0 * nu)
    # at t = 0 the initial condition exactly (the quadrature would return it up to rounding)
    at0 = tf == 0
    u[at0] = -np.sin(np.pi * xf[at0])
    if derivative:
        ux[at0] = -np.pi * np.cos(np.pi * xf[at0])
    return u.reshape(x.shape), (ux.reshape(x.shape) if derivative else None)


def burgers_cole_hopf(x, t, nu=BURGERS_NU, nodes=BURGERS_NODES):
    """u(x, t) of u_t + u u_x = nu u_xx, u(x, 0) = -sin(pi x), u(+-1, t) = 0 (x, t broadcast).

    Cole-Hopf (e.g. Basdevant et al., Computers & Fluids 14 (1986) 23-41):

        u(x, t) = -I[sin(pi (x - eta)) g(x - eta)] / I[g(x - eta)],
        I[f] = int f(eta) exp(-eta^2 / (4 nu t)) d eta,   g(y) = exp(-cos(pi y) / (2 pi nu)),

    with eta = sqrt(4 nu t) z, both integrals are Gauss-Hermite sums over ``nodes`` nodes.
    """
    return _burgers_moments(x, t, nu, nodes, derivative=False)[0]


def burgers_cole_hopf_x(x, t, nu=BURGERS_NU, nodes=BURGERS_NODES):
    """u_x(x, t) of :func:`burgers_cole_hopf`, by differentiating under the integrals.

    With <f> the average of f(x - eta) under the weight g(x - eta) exp(-eta^2 / (4 nu t)) and
    s = sin(pi (x - eta)) (so u = -<s>, and d/dx log g = s / (2 nu)):

        u_x = -pi <cos(pi (x - eta))> - (<s^2> - <s>^2) / (2 nu),

    the variance taken about the mean (no cancellation between two O(1) averages).
    """
    return _burgers_moments(x, t, nu, nodes, derivative=True)[1]


# -- Bratu 1D ------------------------------------------------------------------------------------
#
# u(x) = -2 ln[cosh((x - 1/2) theta / 2) / cosh(theta / 4)] solves u'' + lam e^u = 0, u(0) = u(1) = 0
# iff theta = sqrt(2 lam) cosh(theta / 4), i.e. lam(theta) = theta^2 / (2 cosh^2(theta / 4)).
# lam(theta) rises from 0, peaks at lam* and decays to 0: two thetas below lam*, one at it.

# Fold of the 2D Bratu problem Delta u + lam e^u = 0 on the unit square, u = 0 on its boundary.
# Bolstad & Keller (SIAM J. Sci. Stat. Comput. 7 (1986) 1081-1104) give 6.80812442259 (sixth-order
# scheme, extrapolated); 6.808124423 is that value rounded, as quoted in the later 2D Bratu literature
# (e.g. Mohsen, Comput. Math. Appl. 67 (2014) 26-33). Tests check the NMM against it to ~1e-6 only.
BRATU_2D_CRITICAL = 6.808124423


def _logcosh(a):
    """log cosh a, accurate for small a (u ~ lam on the lower branch as lam -> 0) and without
    overflow for large a (cosh overflows for |a| > 710; the upper branch gets there)."""
    a = np.abs(a)
    small = np.log1p(2.0 * np.sinh(0.5 * np.minimum(a, 20.0)) ** 2)  # cosh a = 1 + 2 sinh^2(a/2)
    large = a + np.log1p(np.exp(-2.0 * a)) - math.log(2.0)  # cosh a = e^a (1 + e^{-2a}) / 2
    return np.where(a < 20.0, small, large)


def _bratu_lam(theta: float) -> float:
    """lam(theta) = theta^2 / (2 cosh^2(theta / 4)), written with e^{-theta/2} so it never overflows."""
    q = math.exp(-0.5 * theta)
    return 2.0 * theta * theta * q / (1.0 + q) ** 2


@cache
def bratu1d_critical() -> tuple[float, float]:
    """(lam*, theta*) of the 1D Bratu problem: the fold lam* = 3.513830719125...

    d lam / d theta = 0 gives (theta/4) tanh(theta/4) = 1, solved by brentq (xtol 1e-15); then
    lam* = lam(theta*) = 8 (y^2 - 1) with y = theta*/4 the fixed point of coth (e.g. Buckmire,
    "On exact and numerical solutions of the one-dimensional planar Bratu problem"). lam is
    stationary at theta*, so the error in theta* enters lam* only squared.
    """
    theta = brentq(lambda th: 0.25 * th * math.tanh(0.25 * th) - 1.0, 1.0, 10.0, xtol=1e-15)
    return _bratu_lam(theta), theta


def bratu1d_theta(lam: float) -> tuple[float, float]:
    """(theta_lower, theta_upper): both roots of theta = sqrt(2 lam) cosh(theta / 4).

    Equal (theta*) at lam = lam* (to within its rounding); ValueError for lam <= 0 or lam > lam*.
    """
    lam_c, theta_c = bratu1d_critical()
    if not lam > 0:
        raise ValueError(f"Bratu 1D: lam must be > 0, got lam = {lam!r}")
    if lam > lam_c * (1 + 1e-14):
        raise ValueError(f"Bratu 1D: no solution for lam = {lam!r} > lam* = {lam_c!r}")
    f = lambda th: _bratu_lam(th) - lam  # noqa: E731
    if f(theta_c) <= 0:  # at the fold to rounding: one (double) root
        return theta_c, theta_c
    # On the lower branch 1 <= cosh(theta/4) <= cosh(theta*/4), so theta_lower lies in
    # [s, s cosh(theta*/4)] with s = sqrt(2 lam): a tight bracket, and a tolerance relative to s,
    # keep tiny lam fast and accurate (theta_lower ~ s, u ~ lam).
    # (When cosh(s/4) rounds to 1, f(s) may round to >= 0: theta_lower is s to rounding.)
    s = math.sqrt(2.0 * lam)
    hi = min(theta_c, s * math.cosh(0.25 * theta_c))
    lower = s if f(s) >= 0 else brentq(f, s, hi, xtol=1e-15 * s)
    hi = 2.0 * theta_c
    while f(hi) > 0:  # lam(theta) ~ 2 theta^2 e^{-theta/2}: a few doublings bracket any lam > 0
        hi *= 2.0
    upper = brentq(f, theta_c, hi, xtol=1e-15)
    return lower, upper


def _bratu_branch_theta(lam: float, branch: str) -> float:
    if branch not in ("lower", "upper"):
        raise ValueError(f"Bratu 1D: branch must be 'lower' or 'upper', got {branch!r}")
    lower, upper = bratu1d_theta(lam)
    return lower if branch == "lower" else upper


def bratu1d(x, lam: float, branch: str = "lower"):
    """u(x) of u'' + lam e^u = 0, u(0) = u(1) = 0 on the given branch (closed form):

        u(x) = -2 ln[cosh((x - 1/2) theta / 2) / cosh(theta / 4)],  theta = sqrt(2 lam) cosh(theta / 4)

    (e.g. Boyd, Appl. Math. Comput. 142 (2003) 189-200; Buckmire). theta from :func:`bratu1d_theta`.
    """
    theta = _bratu_branch_theta(lam, branch)
    x = np.asarray(x, dtype=float)
    return 2.0 * (_logcosh(0.25 * theta) - _logcosh(0.5 * theta * (x - 0.5)))


def bratu1d_max(lam: float, branch: str = "lower") -> float:
    """max u = u(1/2) = 2 ln cosh(theta / 4): the ordinate of the usual branch diagram."""
    return float(2.0 * _logcosh(0.25 * _bratu_branch_theta(lam, branch)))
