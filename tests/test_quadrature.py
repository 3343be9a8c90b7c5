"""Exact integration: Gauss rules on the manifold elements against Shi's simplex integration."""

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

import nmm
from nmm.quadrature import gauss_interval, gauss_triangle, map_triangles
from nmm.simplex import polygon_monomial
from nmm.topology import rings


def random_nonconvex_polygon(rng, n=9):
    """A random star-shaped (generally non-convex) polygon."""
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(0.3, 1.0, n)
    return np.c_[rad * np.cos(ang), rad * np.sin(ang)] + rng.uniform(-0.2, 0.2, 2)


@pytest.mark.parametrize("degree", [0, 1, 2, 5, 10, 20, 30])
def test_triangle_rule_exact_on_reference(degree):
    pts, w = gauss_triangle(degree)
    for i in range(degree + 1):
        j = degree - i
        exact = polygon_monomial([np.array([[0, 0], [1, 0], [0, 1]])], i, j)
        got = np.sum(w * pts[:, 0] ** i * pts[:, 1] ** j)
        assert abs(got - exact) <= 1e-13 * abs(exact)
    assert np.all(w > 0) and np.all(pts > 0) and np.all(pts.sum(1) < 1)


def test_interval_rule_exact():
    for degree in range(0, 25):
        x, w = gauss_interval(degree)
        assert abs(np.sum(w * x**degree) - 1.0 / (degree + 1)) < 1e-14


@pytest.mark.parametrize("seed", range(5))
def test_exact_integration_on_random_nonconvex_polygons(seed):
    """Constrained-Delaunay triangles + Gauss rules reproduce the simplex-integration values of
    every monomial up to the rule's degree, on non-convex polygons with a hole."""
    rng = np.random.default_rng(seed)
    outer = random_nonconvex_polygon(rng) * 3
    poly = Polygon(outer, [0.15 * random_nonconvex_polygon(rng)[::-1]])
    poly = shapely.geometry.polygon.orient(poly.buffer(0) if not poly.is_valid else poly, 1.0)
    assert poly.is_valid
    assert not poly.equals(poly.convex_hull)
    tris = np.stack(
        [
            np.asarray(t.exterior.coords)[:3]
            for t in shapely.get_parts(shapely.constrained_delaunay_triangles(poly))
        ]
    )
    degree = 8
    pts, w = map_triangles(tris, degree)
    for i in range(degree + 1):
        for j in range(degree + 1 - i):
            exact = polygon_monomial(rings(poly), i, j)
            got = np.sum(w * pts[..., 0] ** i * pts[..., 1] ** j)
            scale = polygon_monomial(rings(poly), 0, 0) * np.max(np.abs(outer)) ** (i + j)
            assert abs(got - exact) <= 1e-12 * scale, (i, j, got, exact)


def test_space_quadrature_exact_on_cut_elements(dom2d):
    """The space's quadrature integrates polynomials exactly over the whole cut domain."""
    mc = nmm.MathCover.triangles(dom2d, 0.23, offset=(0.3, 0.2))
    V = nmm.ManifoldSpace(mc, dom2d, degree=2)
    pts, w = np.asarray(V.q_points), np.asarray(V.q_weights)
    shape_rings = rings(shapely.geometry.polygon.orient(dom2d.shape, 1.0))
    assert V.quad_degree == 6  # 2 (p + 1): exact for mass-matrix integrands
    for i, j in [(0, 0), (1, 0), (2, 3), (3, 3), (6, 0), (1, 5)]:
        exact = polygon_monomial(shape_rings, i, j)
        got = np.sum(w * pts[..., 0] ** i * pts[..., 1] ** j)
        assert abs(got - exact) <= 1e-12 * abs(exact)


def test_bad_degree():
    with pytest.raises(ValueError, match="degree must be >= 0, got -1"):
        gauss_triangle(-1)


@pytest.mark.parametrize("p", [0, 1, 2, 3, 6])
def test_number_of_cover_functions(p):
    """Total degree p in 2D: (p + 1)(p + 2) / 2 polynomials; Fourier: total frequency <= p,
    1 + 2p(p + 1) terms (5 at p = 1, 13 at p = 2). A larger set (tensor degree, higher
    frequencies) would still reproduce every function the accuracy tests check (found by
    mutation testing)."""
    from nmm.basis import n_terms, term_indices

    assert n_terms(1, p, "polynomial") == p + 1
    assert n_terms(2, p, "polynomial") == (p + 1) * (p + 2) // 2
    assert n_terms(1, p, "fourier") == 2 * p + 1
    assert n_terms(2, p, "fourier") == 1 + 2 * p * (p + 1)
    idx = term_indices(2, p, "polynomial")
    assert np.all(idx.sum(1) <= p) and len({tuple(r) for r in idx}) == len(idx)
