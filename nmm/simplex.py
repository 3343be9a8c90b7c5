"""Shi's simplex integration: exact integrals of monomials over polygons, without triangulating.

Each oriented edge (v_k, v_{k+1}) of a polygon forms, with the origin, a signed triangle; the signed
triangles of a closed boundary add up to the polygon, non-convex ones and ones with holes included
(Shi 1991). Over one triangle with vertices p_0, p_1, p_2 the barycentric monomial formula
    ∫_S λ_0^{a_0} λ_1^{a_1} λ_2^{a_2} = 2 |S| a_0! a_1! a_2! / (2 + a_0 + a_1 + a_2)!
integrates x^i y^j after expanding x = Σ λ_k x_k, y = Σ λ_k y_k multinomially. This module is the
independent reference that the project's Gauss rules are checked against.
"""

from __future__ import annotations

from math import factorial

import numpy as np


def _multinomial_expansion(coords: tuple[float, float, float], power: int) -> dict:
    """(Σ_k c_k λ_k)^power as {(a0, a1, a2): coefficient}."""
    out: dict[tuple[int, int, int], float] = {}
    for a0 in range(power + 1):
        for a1 in range(power - a0 + 1):
            a2 = power - a0 - a1
            m = factorial(power) // (factorial(a0) * factorial(a1) * factorial(a2))
            out[(a0, a1, a2)] = m * coords[0] ** a0 * coords[1] ** a1 * coords[2] ** a2
    return out


def triangle_monomial(p0, p1, p2, i: int, j: int) -> float:
    """Signed ∫ x^i y^j over the triangle (p0, p1, p2) (positive when counter-clockwise)."""
    signed_area = 0.5 * ((p1[0] - p0[0]) * (p2[1] - p0[1]) - (p1[1] - p0[1]) * (p2[0] - p0[0]))
    ex = _multinomial_expansion((p0[0], p1[0], p2[0]), i)
    ey = _multinomial_expansion((p0[1], p1[1], p2[1]), j)
    total = 0.0
    n = i + j
    for ax, cx in ex.items():
        for ay, cy in ey.items():
            a = (ax[0] + ay[0], ax[1] + ay[1], ax[2] + ay[2])
            total += cx * cy * factorial(a[0]) * factorial(a[1]) * factorial(a[2]) / factorial(2 + n)
    return 2.0 * signed_area * total


def polygon_monomial(rings: list[np.ndarray], i: int, j: int) -> float:
    """∫ x^i y^j over a polygon given by its rings.

    Args:
        rings: list of ``(n, 2)`` vertex arrays (not closed); the exterior counter-clockwise and
            holes clockwise, so that the signed triangles add up to the polygon.
        i, j: exponents of x and y.
    """
    origin = (0.0, 0.0)
    total = 0.0
    for ring in rings:
        r = np.asarray(ring, dtype=float)
        for k in range(len(r)):
            total += triangle_monomial(origin, r[k], r[(k + 1) % len(r)], i, j)
    return total
