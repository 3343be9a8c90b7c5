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
