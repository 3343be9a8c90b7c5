"""Quadrature rules (host side, numpy): Gauss on [0, 1] and collapsed Gauss rules on triangles.

Every rule here is exact for polynomials up to a requested total degree and has strictly interior
points with positive weights, so non-polynomial data (sources, coefficients) is only ever evaluated
inside the element being integrated.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import roots_jacobi, roots_legendre


@functools.cache
def gauss_interval(degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre rule on [0, 1], exact for polynomials of degree <= ``degree``.

    Returns ``(points (n,), weights (n,))`` with ``n = ceil((degree + 1) / 2)``.
    """
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree!r}")
    n = max(1, (degree + 2) // 2)
    x, w = roots_legendre(n)
    return 0.5 * (x + 1.0), 0.5 * w


@functools.cache
def gauss_triangle(degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Collapsed (Duffy/Stroud) Gauss rule on the reference triangle {s, t >= 0, s + t <= 1}.

    The square [0, 1]^2 is mapped onto the triangle by (a, b) -> (a, b (1 - a)); the Jacobian (1 - a)
    is absorbed into a Gauss–Jacobi rule with weight (1 - a)^1 in ``a``, so ``n = ceil((degree + 1)/2)``
    points per direction integrate every polynomial of total degree <= ``degree`` exactly
    (Stroud 1971, conical product rules).

    Returns ``(points (n*n, 2), weights (n*n,))``; the weights sum to 1/2, the reference area.
    """
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree!r}")
    n = max(1, (degree + 2) // 2)
    xa, wa = roots_jacobi(n, 1.0, 0.0)  # weight (1 - x)^1 on [-1, 1]
    a = 0.5 * (xa + 1.0)
    wa = wa / 4.0  # (1 - x) dx on [-1, 1] -> 2 (1 - a) * 2 da on [0, 1]
    b, wb = gauss_interval(2 * n - 1)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    pts = np.stack([aa.ravel(), (bb * (1.0 - aa)).ravel()], axis=-1)
    wts = np.outer(wa, wb).ravel()
    return pts, wts


def map_triangles(tri: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature points and weights on physical triangles.

    Args:
        tri: ``(n_tri, 3, 2)`` vertex coordinates (either orientation).
        degree: total polynomial degree integrated exactly.

    Returns:
        ``points (n_tri, n_q, 2)`` and ``weights (n_tri, n_q)`` (weights include |det J|).
    """
    ref, w = gauss_triangle(degree)
    e1 = tri[:, 1] - tri[:, 0]
    e2 = tri[:, 2] - tri[:, 0]
    det = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    pts = tri[:, None, 0] + ref[None, :, :1] * e1[:, None] + ref[None, :, 1:] * e2[:, None]
    return pts, det[:, None] * w[None, :]


def map_segments(seg: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss points on segments in any dimension.

    Args:
        seg: ``(n_seg, 2, dim)`` end points.
        degree: polynomial degree integrated exactly along each segment.

    Returns:
        ``points (n_seg, n_q, dim)`` and ``weights (n_seg, n_q)`` (weights include the length).
    """
    t, w = gauss_interval(degree)
    d = seg[:, 1] - seg[:, 0]
    length = np.linalg.norm(d, axis=-1)
    pts = seg[:, None, 0] + t[None, :, None] * d[:, None]
    return pts, length[:, None] * w[None, :]


@functools.cache
def singular_triangle(n: int, power: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """An n × n rule on the reference triangle for integrands singular at its vertex (0, 0) like
    r^(2λ - 2) (the energy of r^λ functions) and r^λ (their values).

    Polar-like coordinates about the vertex, x = ρ ((1 − t), t) with ρ = s^q (q = ``power``,
    Jacobian ρ · q s^(q-1)): r^(2λ-2) ρ dρ ~ s^(2λq - 1) and r^λ ρ dρ ~ s^((λ + 2) q - 1) are
    polynomials in s when λq is an integer (q = 2 for a crack's r^½, 3 for an L-shape's r^⅔), so
    Gauss–Legendre in s and t integrates them as it integrates smooth functions (the "almost
    polar" rules of XFEM codes, with a power substitution). The t-direction sees 1 / |x - p| along
    the far edge: smooth only on narrow triangles (``nmm.space`` cuts fans to 15°). A polynomial
    of total degree d in x has degree q(d + 2) - 1 in s: exact for q(d + 2) <= 2n.

    Returns ``(points (n*n, 2), weights (n*n,))``; the weights sum to 1/2.
    """
    if n < 1 or power < 1:
        raise ValueError(f"n and power must be >= 1, got {n!r}, {power!r}")
    s, ws = gauss_interval(2 * n - 1)
    t, wt = gauss_interval(2 * n - 1)
    ss, tt = np.meshgrid(s, t, indexing="ij")
    rho = ss**power
    pts = np.stack([(rho * (1.0 - tt)).ravel(), (rho * tt).ravel()], axis=-1)
    # dx dy = ρ dρ dt (the map (ρ, t) -> ρ((1 - t), t) has Jacobian ρ), dρ = q s^(q-1) ds
    wts = (np.outer(ws, wt) * rho * power * ss ** (power - 1)).ravel()
    return pts, wts


@functools.cache
def singular_interval(n: int, power: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """An n-point rule on [0, 1] for integrands singular at 0 like r^(λ - 1): t = s^q."""
    s, ws = gauss_interval(2 * n - 1)
    return s**power, ws * power * s ** (power - 1)


def map_triangles_with(tri: np.ndarray, ref: np.ndarray, w: np.ndarray):
    """``map_triangles`` with a given reference rule (vertex 0 of each triangle at (0, 0))."""
    e1 = tri[:, 1] - tri[:, 0]
    e2 = tri[:, 2] - tri[:, 0]
    det = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    pts = tri[:, None, 0] + ref[None, :, :1] * e1[:, None] + ref[None, :, 1:] * e2[:, None]
    return pts, det[:, None] * w[None, :]


def map_simplices(simplices: np.ndarray, degree: int, singular=None):
    """The rule of a topology's simplices: Gauss on segments (1D), collapsed Gauss on triangles,
    and ``singular_triangle`` (same number of points) with power ``singular[k]`` on those where it
    is > 0 (vertex 0 at an enrichment point, ``nmm.enrich``)."""
    if simplices.shape[-1] == 1:
        return map_segments(simplices, degree)
    pts, w = map_triangles(simplices, degree)
    for q in np.unique(singular[singular > 0]) if singular is not None else ():
        sel = singular == q
        ref, wr = singular_triangle((degree + 2) // 2, int(q))
        pts[sel], w[sel] = map_triangles_with(simplices[sel], ref, wr)
    return pts, w


def map_boundary(seg: np.ndarray, degree: int, singular=None):
    """``map_segments`` with ``singular_interval`` (power ``singular[k]``) on the segments that
    start at an enrichment point."""
    pts, w = map_segments(seg, degree)
    for q in np.unique(singular[singular > 0]) if singular is not None else ():
        sel = singular == q
        t, wt = singular_interval((degree + 2) // 2, int(q))
        d = seg[sel, 1] - seg[sel, 0]
        pts[sel] = seg[sel, None, 0] + t[None, :, None] * d[:, None]
        w[sel] = np.linalg.norm(d, axis=-1)[:, None] * wt[None, :]
    return pts, w
