"""Hard Dirichlet constraints for networks: ``u(x) = g̃(x) + d(x) N(x)`` meets the data exactly.

On a rectangle with Dirichlet data ``g`` on all four sides, ``g̃`` is the Coons patch of ``g``
(transfinite interpolation: it uses the data on the sides only, never inside) and ``d`` the
bubble ``16 s(1 − s) t(1 − t)`` of the rectangle's unit coordinates (s, t), zero on the sides.
A network with this output transform (``MLP(..., output_transform=rectangle_ansatz(...))``)
trained on a Task's functional has no boundary terms left (u = g on every boundary point), so
Nitsche's terms (bounded below only through an inverse inequality, which a network lacks) and the
stiffness of their β or of a large penalty are both gone: the standard way of the deep energy method
(Samaniego et al. 2020; Sukumar & Srivastava 2022 for general geometries).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def rectangle_ansatz(g, lo, hi):
    """``(x, y) -> g̃(x) + d(x) y`` for Dirichlet data ``g(x) -> (n,)`` on the whole boundary of
    the rectangle ``[lo, hi]`` (two corners ``(2,)``)."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    if lo.shape != (2,) or hi.shape != (2,) or not np.all(hi > lo):
        raise ValueError(f"lo and hi must be corners (2,) with hi > lo, got {lo!r}, {hi!r}")
    if not callable(g):
        raise TypeError(f"g must be a callable of one point, got {type(g).__name__}")

    def transform(x, y):
        s, t = (x - lo) / (hi - lo)
        at = lambda a, b: jnp.asarray(g(jnp.stack([a, b])))  # noqa: E731
        xs, ys = x[0], x[1]
        sides = (1 - t) * at(xs, lo[1]) + t * at(xs, hi[1]) + (1 - s) * at(lo[0], ys) + s * at(hi[0], ys)
        corners = (
            (1 - s) * (1 - t) * at(lo[0], lo[1])
            + s * (1 - t) * at(hi[0], lo[1])
            + (1 - s) * t * at(lo[0], hi[1])
            + s * t * at(hi[0], hi[1])
        )
        return jnp.reshape(sides - corners, jnp.shape(y)) + 16 * s * (1 - s) * t * (1 - t) * y

    transform.__qualname__ = "rectangle_ansatz"
    return transform
