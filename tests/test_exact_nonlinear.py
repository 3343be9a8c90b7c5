"""The nonlinear reference solutions: Cole-Hopf Burgers and the 1D Bratu closed form."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from experiments.exact_nonlinear import (
    BURGERS_NU,
    bratu1d,
    bratu1d_critical,
    bratu1d_max,
    bratu1d_theta,
    burgers_cole_hopf,
    burgers_cole_hopf_x,
)

# -- Burgers ---------------------------------------------------------------------------------------


def _quad_reference(x, t, nu=BURGERS_NU):
    """Cole-Hopf by adaptive quadrature on the eta integrals themselves (no Hermite nodes).

    The exponent -eta^2/(4 nu t) - cos(pi (x - eta))/(2 pi nu) is shifted by its maximum (it
    reaches +-50) and its local maxima are given to quad as break points (two near x = 0)."""
    s = math.sqrt(4 * nu * t)
    L = 12 * s  # beyond, the weight is below e^-144 * e^100 of its peak
    phi = lambda eta: -(eta**2) / s**2 - np.cos(np.pi * (x - eta)) / (2 * np.pi * nu)  # noqa: E731
    eta = np.linspace(-L, L, 20001)
    p = phi(eta)
    top = p.max()
    inner = p[1:-1]
    peaks = eta[1:-1][(inner >= p[:-2]) & (inner >= p[2:]) & (inner > top - 40)]
    kw = dict(points=peaks, limit=2000, epsabs=1e-13, epsrel=1e-13)
    den = quad(lambda e: np.exp(phi(e) - top), -L, L, **kw)[0]
    num = quad(lambda e: np.sin(np.pi * (x - e)) * np.exp(phi(e) - top), -L, L, **kw)[0]
    return -num / den


@pytest.mark.parametrize("t", [1e-3, 0.1, 1 / np.pi, 0.5, 1.0])
def test_cole_hopf_matches_adaptive_quadrature(t):
    xs = [0.0, 1e-3, -1e-3, 0.01, -0.01, 0.5, -0.5, 1.0, -1.0]
    ref = np.array([_quad_reference(x, t) for x in xs])
    np.testing.assert_allclose(burgers_cole_hopf(np.array(xs), t), ref, rtol=0, atol=1e-10)


def test_default_nodes_converged():
    # the front at x = 0 is ~nu wide and the integrand in z is bimodal there for t near 1: sample it
    x = np.unique(np.r_[np.linspace(-1, 1, 201), np.linspace(-0.02, 0.02, 81)])
    t = np.r_[np.linspace(0, 1, 21), 1 / np.pi, 0.999]
    X, T = np.meshgrid(x, t, indexing="ij")
    np.testing.assert_allclose(burgers_cole_hopf(X, T), burgers_cole_hopf(X, T, nodes=1000), atol=1e-10)


def test_initial_and_boundary_values():
    x = np.linspace(-1, 1, 101)
    np.testing.assert_array_equal(burgers_cole_hopf(x, 0.0), -np.sin(np.pi * x))
    # continuous at t = 0: u - u0 = O(t) with |u_t| <= pi/2 + O(nu)
    np.testing.assert_allclose(burgers_cole_hopf(x, 1e-12), -np.sin(np.pi * x), rtol=0, atol=1e-11)
    t = np.linspace(0, 1, 51)
    np.testing.assert_allclose(burgers_cole_hopf(np.array([[-1.0], [1.0]]), t), 0.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("x, t", [(0.5, 0.5), (0.7, 0.9), (0.2, 0.05)])
def test_burgers_pde_residual_at_smooth_points(x, t):
    # central differences, h = 1e-3: truncation O(h^2) ~ 1e-6 here (measured 1e-7 to 4e-6), far
    # below the viscous term nu u_xx it checks (~1e-3 to 3e-2 at these points)
    h, nu = 1e-3, BURGERS_NU
    u = burgers_cole_hopf
    u0 = u(x, t)
    ut = (u(x, t + h) - u(x, t - h)) / (2 * h)
    ux = (u(x + h, t) - u(x - h, t)) / (2 * h)
    uxx = (u(x + h, t) - 2 * u0 + u(x - h, t)) / h**2
    assert abs(ut + u0 * ux - nu * uxx) < 1e-5
    assert abs(burgers_cole_hopf_x(x, t) - ux) < 1e-5


def test_steepest_slope_matches_basdevant():
    # Basdevant et al. (1986): max |u_x| = 152.00516 at x = 0, t = 1.6037/pi (a maximum in t, so
    # the 4 digits of t do not matter)
    assert burgers_cole_hopf_x(0.0, 1.6037 / np.pi) == pytest.approx(-152.00516, abs=1e-5)


def test_negative_time_rejected():
    with pytest.raises(ValueError, match="t must be >= 0"):
        burgers_cole_hopf(0.0, -0.1)


# -- Bratu 1D --------------------------------------------------------------------------------------


def test_bratu_critical():
    lam_c, theta_c = bratu1d_critical()
    assert lam_c == pytest.approx(3.513830719125, abs=1e-11)
    # the fold: lam* = 8 (y^2 - 1), y = theta*/4 the fixed point of coth
    y = theta_c / 4
    assert y * math.tanh(y) == pytest.approx(1.0, abs=1e-15)
    assert lam_c == pytest.approx(8 * (y * y - 1), abs=1e-13)


@pytest.mark.parametrize("lam", [1e-4, 0.5, 1.0, 3.0, 3.5])
@pytest.mark.parametrize("branch", ["lower", "upper"])
def test_bratu_solves_the_equation(lam, branch):
    theta = dict(zip(("lower", "upper"), bratu1d_theta(lam), strict=True))[branch]
    assert theta == pytest.approx(math.sqrt(2 * lam) * math.cosh(theta / 4), rel=1e-14)
    h = 1e-3
    x = np.linspace(0, 1, round(1 / h) + 1)
    u = bratu1d(x, lam, branch)
    assert abs(u[0]) < 1e-14 and abs(u[-1]) < 1e-14
    assert bratu1d_max(lam, branch) == pytest.approx(u[len(x) // 2], rel=1e-14)
    # second differences: u'' = -2 a^2 sech^2(a (x - 1/2)), a = theta/2, so the truncation error
    # is h^2/12 |u''''| <= h^2/12 * 4 a^4 at x = 1/2 to leading order (the residual measured equals
    # it within 0.1%: the closed form is exact well below the FD error; rounding is ~1e-14)
    upp = (u[2:] - 2 * u[1:-1] + u[:-2]) / h**2
    residual = upp + lam * np.exp(u[1:-1])
    assert np.abs(residual).max() < 1.01 * h**2 / 3 * (theta / 2) ** 4 + 1e-12


def test_bratu_branches_meet_at_the_fold():
    lam_c, theta_c = bratu1d_critical()
    assert bratu1d_theta(lam_c) == (theta_c, theta_c)
    assert bratu1d_max(lam_c, "lower") == bratu1d_max(lam_c, "upper")
    # just below: two roots, O(sqrt(lam* - lam)) apart
    lo, hi = bratu1d_theta(lam_c * (1 - 1e-10))
    assert lo < theta_c < hi and hi - lo < 1e-3
    assert bratu1d_max(0.5, "lower") < bratu1d_max(0.5, "upper")


@pytest.mark.parametrize("lam", [3.52, 10.0])
def test_bratu_no_solution_above_fold(lam):
    with pytest.raises(ValueError, match=rf"lam = {lam}.*lam\* = 3\.5138307191"):
        bratu1d(0.5, lam)


@pytest.mark.parametrize("lam", [0.0, -1.0])
def test_bratu_rejects_nonpositive_lambda(lam):
    with pytest.raises(ValueError, match=rf"lam must be > 0, got lam = {lam}"):
        bratu1d_theta(lam)
