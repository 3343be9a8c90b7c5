"""nmm_nn Task functionals against closed forms computed here, not by the code under test.

On the unit square with an aligned 4 × 4 grid cover (p = 1: the Task's rules are exact for
polynomials of degree 6 inside and along the edges), polynomial fields make every functional a
polynomial integral: this file computes them with numpy Gauss–Legendre rules from the formulas of
the README (the ½ of the fit, the Ritz energy with its Nitsche or penalty terms and β = β0 (p + w)²
k / h, the PINN residual with ½ λ on both boundary terms) and compares the Task's numbers to them.
A functional that loses its ½, a boundary weight that is ignored (on either kind of boundary), a
penalty or a Nitsche term off by a factor: each changes a number here by O(1).
"""

import jax.numpy as jnp
import numpy as np
import pytest

import nmm
from nmm_nn import Task

H = 0.25
BETA = (1 + 2) ** 2 / H  # β / β0 on every boundary piece: (p + w)² / h, w = 2 for grid covers
GX, GW = np.polynomial.legendre.leggauss(8)
GX, GW = 0.5 * (GX + 1), 0.5 * GW  # on [0, 1], exact to degree 15


def _area(fn):
    """∫_[0,1]² fn(x, y) (vectorised numpy), exact for polynomials of degree <= 15."""
    x, y = np.meshgrid(GX, GX, indexing="ij")
    return float(np.sum(np.outer(GW, GW) * fn(x, y)))


def _line(fn):
    """∫_0^1 fn(t) dt."""
    return float(np.sum(GW * fn(GX)))


@pytest.fixture(scope="module")
def space():
    square = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.grid(square, H), square, degree=1)
    assert np.allclose(V.boundary_beta(1.0), BETA)  # the penalty of the README, checked once
    return V


# u = 1 + y + x² + xy (degree 2), as a callable of one point and in numpy
def U(x):
    return 1 + x[1] + x[0] ** 2 + x[0] * x[1]


def u_np(x, y):
    return 1 + y + x**2 + x * y


def ux_np(x, y):
    return 2 * x + y


def uy_np(x, y):
    return 1 + x


def test_fit_functional_is_half_the_squared_misfit(space):
    """½ ∫ (u − g)² for a callable u and for an NMM field with known coefficients (constant 0.7:
    the constant term of every cover, the hats summing to one), ½ Σ (u(x_i) − y_i)² at samples.
    Measured agreement <= 4e-16 relative; bound 1e-14."""
    g = lambda x: x[0] * x[1] - 0.5  # noqa: E731
    task = Task.fit(g, space)
    ref = 0.5 * _area(lambda x, y: (u_np(x, y) - (x * y - 0.5)) ** 2)
    np.testing.assert_allclose(float(task.loss(U)), ref, rtol=1e-14)

    # the plain cover functions, where coefficient 0 of a cover is its constant term (the default
    # p >= 1 basis is orthonormalised per cover, nmm.stable)
    square = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    plain = nmm.ManifoldSpace(nmm.MathCover.grid(square, H), square, degree=1, stable=False)
    coeffs = jnp.zeros(plain.n_dofs).at[:: plain.n_terms].set(0.7)
    const = nmm.Field(plain, coeffs)
    ref_const = 0.5 * _area(lambda x, y: (0.7 - (x * y - 0.5)) ** 2)
    np.testing.assert_allclose(float(Task.fit(g, plain).field_loss(const)), ref_const, rtol=1e-14)

    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (50, 2))
    vals = rng.standard_normal(50)
    samples = Task.fit((pts, vals), space)
    ref_s = 0.5 * np.sum((u_np(pts[:, 0], pts[:, 1]) - vals) ** 2)
    np.testing.assert_allclose(float(samples.loss(U)), ref_s, rtol=1e-14)


@pytest.mark.parametrize("bc", ["nitsche", "penalty"])
def test_ritz_functional_against_closed_form(space, bc):
    """J(u) = ∫ ½ k|∇u|² − f u + ∫_D [½ β k (u − g)² − k ∂u/∂n (u − g)] − ∫_N h u (the penalty
    method drops the ∂u/∂n term; β0 = 100 for Nitsche, 1e8 for the penalty): k = 2, f = 1 + x,
    g = 0 on x = 0, h = y elsewhere. Measured agreement 4e-16 (Nitsche) and 2e-16 (penalty)
    relative; bound 1e-14."""
    k = 2.0
    prob = nmm.Poisson(
        k=k,
        f=lambda x: 1 + x[0],
        dirichlet=0.0,
        dirichlet_on=lambda p: p[:, 0] < 1e-9,
        neumann=lambda x, n: x[1],
        bc=bc,
    )
    task = Task.pde(prob, space)
    beta = (100.0 if bc == "nitsche" else 1e8) * BETA
    volume = _area(lambda x, y: 0.5 * k * (ux_np(x, y) ** 2 + uy_np(x, y) ** 2) - (1 + x) * u_np(x, y))
    # x = 0, n = (-1, 0): u = 1 + y, ∂u/∂n = -y
    dirichlet = _line(lambda y: 0.5 * beta * k * (1 + y) ** 2)
    if bc == "nitsche":
        dirichlet -= _line(lambda y: k * (-y) * (1 + y))
    # h = y: x = 1 (u = 2 + 2y), y = 1 (h = 1, u = 2 + x + x²), y = 0 (h = 0)
    neumann = -_line(lambda y: y * (2 + 2 * y)) - _line(lambda x: 2 + x + x**2)
    ref = volume + dirichlet + neumann
    np.testing.assert_allclose(float(task.loss(U)), ref, rtol=1e-14)


def test_pinn_functional_and_boundary_weight(space):
    """PINN: ½ ∫ (−∇·(k∇u) − f)² + ½ λ [∫_D (u − g)² + ∫_N (k ∂u/∂n − h)²] with k = 1 + x/2,
    f = 1, g = 0 on x = 0, h = y elsewhere; the residual by hand: −(2x + y/2 + 3). Both boundary
    terms are nonzero, so λ must scale each: the losses at λ = 1 and 3 equal the closed forms and
    differ by exactly 2 × the boundary term. Measured agreement 0 (exact); bound 1e-14."""
    prob = nmm.Poisson(
        k=lambda x: 1 + 0.5 * x[0],
        f=1.0,
        dirichlet=0.0,
        dirichlet_on=lambda p: p[:, 0] < 1e-9,
        neumann=lambda x, n: x[1],
    )
    interior = 0.5 * _area(lambda x, y: (2 * x + 0.5 * y + 3) ** 2)
    dirichlet = _line(lambda y: (1 + y) ** 2)  # u(0, y) − 0
    kq = lambda x: (1 + 0.5 * x) * (1 + x)  # noqa: E731  k ∂u/∂y on y = 0, 1 (up to the sign of n)
    neumann = (
        _line(lambda y: (1.5 * (2 + y) - y) ** 2)  # x = 1: k ∂u/∂x − y
        + _line(lambda x: kq(x) ** 2)  # y = 0: n = (0, −1), h = 0
        + _line(lambda x: (kq(x) - 1) ** 2)  # y = 1: h = 1
    )
    boundary = 0.5 * (dirichlet + neumann)
    losses = {}
    for lam in (1.0, 3.0):
        task = Task.pde(prob, space, functional="pinn", boundary_weight=lam)
        losses[lam] = float(task.loss(U))
        np.testing.assert_allclose(losses[lam], interior + lam * boundary, rtol=1e-14)
    np.testing.assert_allclose(losses[3.0] - losses[1.0], 2 * boundary, rtol=1e-14)
