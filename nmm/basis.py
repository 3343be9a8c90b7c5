"""Cover functions: the local approximations carried by each physical cover.

Cover functions are written in patch-local scaled coordinates ξ = (x - x_c) / s_c in [-1, 1]^dim,
where x_c is the patch's node and s_c its half-width, so that their conditioning does not depend on
where the patch sits or how small it is. Two families:

* ``"polynomial"``: normalised Legendre polynomials √(2a+1) P_a(ξ), tensor products of total
  degree <= p in 2D; orthogonal on the patch box, unlike raw monomials, so high orders stay usable.
* ``"fourier"``: 1, cos(k ω ξ), sin(k ω ξ) for k = 1..p with ω = π/2 (period 4 on a patch of width
  2, so the family does not force periodicity across the patch); tensor products of total frequency
  <= p in 2D.

Everything here is a pure function of one point; callers vmap it.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

BASES = ("polynomial", "fourier")
_OMEGA = np.pi / 2


@functools.cache
def term_indices(dim: int, degree: int, basis: str) -> np.ndarray:
    """Index pairs of the 1D factors of each cover function, ``(n_terms, dim)``.

    1D factor ``a`` has order ``a`` for Legendre, frequency ``(a + 1) // 2`` for Fourier; terms are
    those of total order <= ``degree``, sorted by total order.
    """
    n1 = degree + 1 if basis == "polynomial" else 2 * degree + 1
    order = np.arange(n1) if basis == "polynomial" else (np.arange(n1) + 1) // 2
    if dim == 1:
        return np.arange(n1)[:, None]
    pairs = [(a, b) for a in range(n1) for b in range(n1) if order[a] + order[b] <= degree]
    pairs.sort(key=lambda ab: (order[ab[0]] + order[ab[1]], ab[0]))
    return np.array(pairs, dtype=np.int64)


def n_terms(dim: int, degree: int, basis: str) -> int:
    """Number of cover-function terms per physical cover."""
    return len(term_indices(dim, degree, basis))


def _legendre_1d(t, degree: int):
    """Normalised Legendre values and derivatives at scalar t: two arrays of shape (degree + 1,)."""
    vals = [jnp.ones_like(t), t]
    ders = [jnp.zeros_like(t), jnp.ones_like(t)]
    for n in range(1, degree):
        vals.append(((2 * n + 1) * t * vals[n] - n * vals[n - 1]) / (n + 1))
        ders.append(ders[n - 1] + (2 * n + 1) * vals[n])
    vals, ders = jnp.stack(vals[: degree + 1]), jnp.stack(ders[: degree + 1])
    scale = jnp.sqrt(2.0 * jnp.arange(degree + 1) + 1.0)
    return scale * vals, scale * ders


def _fourier_1d(t, degree: int):
    """Fourier values and derivatives at scalar t: arrays of shape (2 * degree + 1,)."""
    k = jnp.arange(1, degree + 1) * _OMEGA
    c, s = jnp.cos(k * t), jnp.sin(k * t)
    vals = jnp.concatenate([jnp.ones((1,), t.dtype), jnp.stack([c, s], -1).ravel()])
    ders = jnp.concatenate([jnp.zeros((1,), t.dtype), jnp.stack([-k * s, k * c], -1).ravel()])
    return vals, ders


def cover_functions(xi, degree: int, basis: str):
    """Cover functions and their ξ-gradients at one local point.

    Args:
        xi: ``(dim,)`` patch-local coordinates.
        degree: order p (static).
        basis: ``"polynomial"`` or ``"fourier"`` (static).

    Returns:
        ``values (n_terms,)`` and ``grads (n_terms, dim)`` (derivatives with respect to ξ).
    """
    dim = xi.shape[0]
    one_d = _legendre_1d if basis == "polynomial" else _fourier_1d
    idx = term_indices(dim, degree, basis)
    if dim == 1:
        v, d = one_d(xi[0], degree)
        return v[idx[:, 0]], d[idx[:, 0]][:, None]
    vx, dx = one_d(xi[0], degree)
    vy, dy = one_d(xi[1], degree)
    a, b = idx[:, 0], idx[:, 1]
    values = vx[a] * vy[b]
    grads = jnp.stack([dx[a] * vy[b], vx[a] * dy[b]], axis=-1)
    return values, grads
