"""Partition of unity, patch tests, h- and p-convergence, 1D high-order fits, cracks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import manufactured

import nmm


def random_points_in(dom, n, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = dom.bounds
    pts = rng.uniform(lo, hi, size=(4 * n, 2))
    return pts[dom.contains(pts)][:n]


@pytest.mark.parametrize("kind", ["triangles", "grid"])
def test_partition_of_unity(dom2d, kind):
    """Σ_c w_c(x) = 1 at random points of the cut, cracked domain (all constant cover functions 1)."""
    mc = getattr(nmm.MathCover, kind)(dom2d, 0.17, offset=(0.3, 0.2))
    V = nmm.ManifoldSpace(mc, dom2d, degree=0)
    u = nmm.Field(V, jnp.ones(V.n_dofs), jnp.zeros(3))
    pts = random_points_in(dom2d, 5000)
    vals = np.asarray(u(pts))
    assert np.all(np.isfinite(vals))
    assert np.max(np.abs(vals - 1.0)) < 1e-14
    # outside the domain (in the hole) the field is undefined
    assert np.isnan(float(u(jnp.array([0.5, 0.5]))))


def poly(q):
    return lambda x: 1 + 0.5 * x[0] ** q - 2 * x[0] * x[1] ** (q - 1) + 0.3 * x[1] ** q + x[1]


@pytest.mark.parametrize(
    ("kind", "p"),
    [
        (kind, p)
        # fast: one cover kind per degree, both kinds over the degrees (and test_high_order's
        # degree-10 fit and p = 6 Poisson to round-off)
        if (kind, p) not in {("grid", 2), ("triangles", 3), ("grid", 3), ("triangles", 1)}
        else pytest.param(kind, p, marks=pytest.mark.slow)
        for p in (0, 1, 2, 3)
        for kind in ("triangles", "grid")
    ],
)
def test_patch_test(dom2d, kind, p):
    """Hats × P_p reproduce polynomials of degree p + 1 (Σ_i w_i x_i q = x q): fit and Poisson
    recover them on the cracked L-shape with a hole, cover not aligned with the boundary."""
    mc = getattr(nmm.MathCover, kind)(dom2d, 0.23, offset=(0.3, 0.2))
    V = nmm.ManifoldSpace(mc, dom2d, degree=p)
    exact = poly(p + 1)
    for u in (nmm.fit(V, exact), nmm.solve(V, manufactured(exact))):
        err = nmm.errors(u, exact)
        assert err["L2"] < 1e-10 and err["max"] < 1e-10, err


def smooth(x):
    return jnp.sin(2 * x[0] + 0.5) * jnp.cos(1.5 * x[1]) + jnp.exp(0.3 * x[0] * x[1])


def rates(errs, hs):
    return np.diff(np.log(errs)) / np.diff(np.log(hs))


@pytest.mark.parametrize("p", [1, *(pytest.param(p, marks=pytest.mark.slow) for p in (0, 2, 3))])
def test_h_convergence(dom2d, p):
    """L2 rate p + 2 and H1 rate p + 1 (the space reproduces degree p + 1), between the two
    finest covers (the README's table gives the whole sweep from h = 0.4)."""
    hs = [0.2, 0.1] if p < 3 else [0.2, 0.13]
    problem = manufactured(smooth)
    l2, h1 = [], []
    for h in hs:
        V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom2d, h, offset=(0.37, 0.21)), dom2d, degree=p)
        e = nmm.errors(nmm.solve(V, problem), smooth)
        l2.append(e["L2"])
        h1.append(e["H1"])
    r2, r1 = rates(l2, hs)[-1], rates(h1, hs)[-1]
    assert abs(r2 - (p + 2)) < 0.3, (l2, r2)
    assert abs(r1 - (p + 1)) < 0.3, (h1, r1)


@pytest.mark.slow  # fast: tests/test_high_order.py (p = 6 and 9–11 to round-off)
def test_p_convergence_exponential():
    """Analytic solution on a 4 × 4 grid cover: the error falls geometrically with p, and both the
    L2 projection and the Poisson solve reach 1e-10 by p = 6."""
    dom = nmm.Domain.polygon([(-1, -1), (1, -1), (1, 1), (-1, 1)])
    exact = lambda x: jnp.sin(1.3 * x[0] + 0.4) * jnp.exp(0.7 * x[1])  # noqa: E731
    mc = nmm.MathCover.grid(dom, 0.5)
    assert len(mc.cells) == 16
    errs = []
    degrees = (2, 4, 6)
    for p in degrees:
        V = nmm.ManifoldSpace(mc, dom, degree=p)
        errs.append(nmm.errors(nmm.fit(V, exact), exact)["L2"])
    errs = np.array(errs)
    assert np.all(errs[1:] < errs[:-1])
    assert errs[-1] <= 1e-10, errs
    # geometric decay: log-error linear in p with slope below -1.5 (factor > 4 per order)
    slope = np.polyfit(degrees, np.log(errs), 1)[0]
    assert slope < -1.5, errs
    solved = nmm.errors(nmm.solve(V, manufactured(exact)), exact)
    assert solved["L2"] <= 1e-10, solved


def test_degree10_polynomial_1d():
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal(11))
    f = lambda x: jnp.polyval(a, x[0])  # noqa: E731
    dom = nmm.Domain.interval(-1, 1)
    V = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, n=1), dom, degree=10)
    u = nmm.fit(V, f)
    xs = jnp.linspace(-1, 1, 2001)
    ref = jnp.polyval(a, xs)
    assert float(jnp.max(jnp.abs(u(xs) - ref)) / jnp.max(jnp.abs(ref))) < 1e-12
    # and from scattered samples
    pts = jnp.asarray(rng.uniform(-1, 1, 300))
    us = nmm.fit(V, (pts, jnp.polyval(a, pts)))
    assert float(jnp.max(jnp.abs(us(xs) - ref)) / jnp.max(jnp.abs(ref))) < 1e-10


def test_jump_across_1d_crack():
    dom = nmm.Domain.interval(0, 1, cracks=[0.37])
    V = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, n=5), dom, degree=1)
    f = lambda x: jnp.where(x[0] < 0.37, 1 + x[0] ** 2, -2 * x[0])  # noqa: E731
    u = nmm.fit(V, f)
    assert nmm.errors(u, f)["max"] < 1e-10
    assert abs(float(u(0.3699999)) - float(u(0.3700001)) - (1 + 0.37**2 + 0.74)) < 1e-5


KINK = [(-0.1, 0.3), (0.45, 0.55), (1.1, 0.4)]


def above(x):
    return x[1] > jnp.interp(x[0], jnp.array([c[0] for c in KINK]), jnp.array([c[1] for c in KINK]))


def jump_target(x):
    upper = 1 + x[0] - 2 * x[1] ** 2 + x[0] * x[1]
    lower = -0.5 + 0.3 * x[0] ** 2 + x[1]
    return jnp.where(above(x), upper, lower)


@pytest.mark.parametrize("kind", ["triangles", pytest.param("grid", marks=pytest.mark.slow)])
def test_piecewise_quadratic_jump_across_kinked_through_crack(kind):
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)], cracks=[KINK])
    V = nmm.ManifoldSpace(getattr(nmm.MathCover, kind)(dom, 0.13, offset=(0.3, 0.6)), dom, degree=1)
    u = nmm.fit(V, jump_target)
    err = nmm.errors(u, jump_target, exact_grad=jax.grad(jump_target))
    assert err["L2"] < 1e-10 and err["max"] < 1e-10, err
    # the jump is there at a point on the crack, from both sides
    x0 = jnp.array([[0.7, 0.55 - 0.15 * 0.25 / 0.65 + 1e-7], [0.7, 0.55 - 0.15 * 0.25 / 0.65 - 1e-7]])
    v = u(x0)
    assert abs(float(v[0] - v[1]) - float(jump_target(x0[0]) - jump_target(x0[1]))) < 1e-5


def test_fourier_cover_functions_reproduce_their_frequencies():
    """On patches of half-width 1/2, Fourier terms of order 2 hold sin/cos(π x) and (2π x): the PU
    reproduces such targets to round-off, which polynomial covers of the same order cannot."""
    f1 = lambda x: jnp.sin(jnp.pi * x[0]) + 0.3 * jnp.cos(2 * jnp.pi * x[0])  # noqa: E731
    dom1 = nmm.Domain.interval(0, 2)
    mc1 = nmm.MathCover.intervals(dom1, n=4)
    fourier = nmm.errors(nmm.fit(nmm.ManifoldSpace(mc1, dom1, degree=2, basis="fourier"), f1), f1)
    poly2 = nmm.errors(nmm.fit(nmm.ManifoldSpace(mc1, dom1, degree=2), f1), f1)
    assert fourier["max"] < 1e-10 and poly2["max"] > 1e-4, (fourier, poly2)
    dom2 = nmm.Domain.polygon(
        [(0, 0), (2, 0), (2, 1.5), (0, 1.5)], holes=[[(0.5, 0.5), (1.0, 0.6), (0.7, 1.0)]]
    )
    f2 = lambda x: jnp.sin(jnp.pi * x[0]) * jnp.cos(jnp.pi * x[1]) + 0.3 * jnp.cos(2 * jnp.pi * x[1])  # noqa: E731
    mc2 = nmm.MathCover.grid(dom2, 0.5, offset=(0.2, 0.3))
    fourier = nmm.errors(nmm.fit(nmm.ManifoldSpace(mc2, dom2, degree=2, basis="fourier"), f2), f2)
    assert fourier["L2"] < 1e-8, fourier


def test_user_triangulation_cover(dom2d):
    """A cover from an unstructured Delaunay mesh of a box around the domain passes the patch test."""
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(3)
    lo, hi = dom2d.bounds - 0.05, dom2d.bounds + 0.05
    box = np.array(
        [[lo[0][0], lo[0][1]], [hi[1][0], lo[0][1]], [hi[1][0], hi[1][1]], [lo[0][0], hi[1][1]]]
    )
    points = np.vstack([box, rng.uniform(box[0], box[2], size=(150, 2))])
    mc = nmm.MathCover.from_mesh(points, Delaunay(points).simplices)
    V = nmm.ManifoldSpace(mc, dom2d, degree=1)
    exact = poly(2)
    for u in (nmm.fit(V, exact), nmm.solve(V, manufactured(exact))):
        err = nmm.errors(u, exact)
        assert err["L2"] < 1e-10 and err["max"] < 1e-10, err
    pts = random_points_in(dom2d, 500)
    np.testing.assert_allclose(np.asarray(nmm.fit(V, exact)(pts)), [exact(p) for p in pts], rtol=1e-9)
