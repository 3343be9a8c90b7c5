"""Regularisation: prior knowledge that makes an ill-posed identification well posed.

Each regulariser is a small module ``R(theta) -> number`` (added to the misfit ½|r|²) acting on
the part of the parameters that ``of(theta)`` selects (default: all of them):

* :class:`Tikhonov` — ½ α |θ − θ₀|² on the unknowns (numbers, arrays, coefficients, weights);
* :class:`H1` — ½ α ∫ |∇(q − q₀)|² + ½ β ∫ (q − q₀)² for a field parameter q (an
  :class:`nmm.Field` on its own cover), integrated exactly on the field's space;
* :class:`TotalVariation` — α ∫ √(|∇q|² + ε²), which keeps jumps (ε smooths the kink at 0).

In the Bayesian reading, ½|r|² + R is the negative log-posterior of a Gaussian likelihood and
the prior exp(−R); the Laplace approximation (:func:`nmm.inverse.laplace`) uses the Hessian of R.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ..field import Field
from ..forms.data import value
from .parameters import split


def _identity(theta):
    return theta


def _check_alpha(alpha, name="alpha"):
    if isinstance(alpha, int | float) and not (alpha >= 0):
        raise ValueError(f"{name} must be >= 0, got {alpha!r}")


class Tikhonov(eqx.Module):
    """½ α |θ − mean|² over the unknowns of ``of(theta)`` (``mean``: the same pytree, or None
    for zero)."""

    alpha: Any
    mean: Any = None
    of: Callable = eqx.field(static=True, default=_identity)

    def __check_init__(self):
        _check_alpha(self.alpha)

    def __call__(self, theta):
        x = split(self.of(theta))[0]
        x0 = 0.0 if self.mean is None else split(self.mean)[0]
        if self.mean is not None and x0.shape != x.shape:
            raise ValueError(
                f"Tikhonov: mean has {x0.size} unknowns but the parameters it regularises have "
                f"{x.size}: give a mean of the same structure as of(theta)"
            )
        return 0.5 * self.alpha * jnp.sum((x - x0) ** 2)


def _field_at_quadrature(q: Field):
    sp = q.space
    n_s, n_q, dim = sp.q_points.shape
    pts = sp.q_points.reshape(-1, dim)
    val, grad = q.in_elements(jnp.repeat(sp.q_elem, n_q), pts)
    return pts, val.reshape(n_s * n_q, -1), grad.reshape(n_s * n_q, -1, dim), sp.q_weights.reshape(-1)


def _mean_at(mean, pts, like: Field):
    """Values and gradients of the prior mean (None, a number, a callable of x, or a Field)."""
    n = like.space.components
    if mean is None:
        return 0.0, 0.0
    if isinstance(mean, Field):
        return mean(pts).reshape(len(pts), n), mean.grad(pts).reshape(len(pts), n, -1)

    def one(x):
        return jnp.reshape(value(mean, x), (n,))

    return jax.vmap(one)(pts), jax.vmap(jax.jacfwd(one))(pts)


def _selected_field(q, who):
    if not isinstance(q, Field):
        raise TypeError(f"{who} regularises an nmm.Field parameter; of(theta) gave a {type(q).__name__}")
    return q


class H1(eqx.Module):
    """½ α ∫ |∇(q − mean)|² + ½ β ∫ (q − mean)² of a field parameter q = ``of(theta)``."""

    alpha: Any
    beta: Any = 0.0
    mean: Any = None
    of: Callable = eqx.field(static=True, default=_identity)

    def __check_init__(self):
        _check_alpha(self.alpha)
        _check_alpha(self.beta, "beta")

    def __call__(self, theta):
        q = _selected_field(self.of(theta), "H1")
        pts, val, grad, w = _field_at_quadrature(q)
        m0, g0 = _mean_at(self.mean, pts, q)
        dv, dg = val - m0, grad - g0
        return 0.5 * self.alpha * jnp.sum(w * jnp.sum(dg**2, (1, 2))) + 0.5 * self.beta * jnp.sum(
            w * jnp.sum(dv**2, 1)
        )


class TotalVariation(eqx.Module):
    """α ∫ √(|∇q|² + ε²) of a field parameter q = ``of(theta)`` (ε > 0 keeps it smooth)."""

    alpha: Any
    eps: float = 1e-3
    of: Callable = eqx.field(static=True, default=_identity)

    def __check_init__(self):
        _check_alpha(self.alpha)
        if not (isinstance(self.eps, int | float) and self.eps > 0):
            raise ValueError(f"eps must be a positive number, got {self.eps!r}")

    def __call__(self, theta):
        q = _selected_field(self.of(theta), "TotalVariation")
        _, _, grad, w = _field_at_quadrature(q)
        return self.alpha * jnp.sum(w * jnp.sqrt(jnp.sum(grad**2, (1, 2)) + self.eps**2))
