"""The Laplace approximation of the posterior at a MAP point.

With Gaussian noise and the prior exp(−R), the posterior of θ is approximately Gaussian around the
minimiser θ* of J, with covariance Σ = (JᵀJ + ∇²R)⁻¹ (the Gauss–Newton Hessian: the data term's
second derivatives are dropped, as they vanish with the residual at the truth). Directions the
data and prior do not see (Σ's null space: dependent parameters, no regularisation) are reported,
not inverted: their variance is infinite.
"""

from __future__ import annotations

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri

from ..field import Field
from .gauss_newton import _linearise
from .parameters import _is_field, as_arrays, split
from .problem import InverseProblem


class Posterior(eqx.Module):
    """A Gaussian posterior N(θ*, Σ) over the unknowns of ``mean`` (a parameter pytree).

    Attributes:
        mean: θ*, the MAP parameters.
        covariance: ``(n, n)`` Σ over the flat unknowns (``nmm.inverse.unknowns`` order).
        hessian: ``(n, n)`` JᵀJ + ∇²R at θ*.
        rank: how many directions the data and the prior determine (n when Σ is proper).
    """

    mean: object
    covariance: jax.Array
    hessian: jax.Array
    rank: jax.Array

    def _rebuild(self, v):
        return split(self.mean)[1](v)

    @property
    def std(self):
        """Marginal standard deviations, as a pytree like ``mean`` (its unknowns)."""
        return self._rebuild(jnp.sqrt(jnp.maximum(jnp.diag(self.covariance), 0.0)))

    def interval(self, level: float = 0.95):
        """``(low, high)`` pytrees: the marginal central credible intervals of level ``level``."""
        if not (0 < level < 1):
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        x = split(self.mean)[0]
        z = ndtri(0.5 + 0.5 * level)
        s = jnp.sqrt(jnp.maximum(jnp.diag(self.covariance), 0.0))
        return self._rebuild(x - z * s), self._rebuild(x + z * s)

    def predictive(self, fn):
        """Mean and standard deviation of ``fn(theta) -> (k,)`` (a derived quantity: a field's
        values at points, a flux) by linearisation: ``(fn(θ*), sqrt(diag(G Σ Gᵀ)))``."""
        x, rebuild = split(self.mean)
        val, G = fn(self.mean), jax.jacrev(lambda v: fn(rebuild(v)))(x)
        G = G.reshape(-1, x.size)
        var = jnp.einsum("ki,ij,kj->k", G, self.covariance, G)
        return val, jnp.sqrt(jnp.maximum(var, 0.0)).reshape(jnp.shape(val))

    def sample(self, key, n: int):
        """``n`` draws from N(θ*, Σ), batched along a leading axis of every unknown leaf."""
        x, rebuild = split(self.mean)
        lam, Q = jnp.linalg.eigh(self.covariance)
        root = Q * jnp.sqrt(jnp.maximum(lam, 0.0))
        z = jax.random.normal(key, (int(n), x.size), x.dtype)
        return jax.vmap(rebuild)(x + z @ root.T)


@eqx.filter_jit
def _posterior(problem, theta):
    x, rebuild = split(theta)
    _, _, J, _, HR = _linearise(problem, rebuild, x)
    H = J.T @ J + HR
    H = 0.5 * (H + H.T)
    lam, Q = jnp.linalg.eigh(H)
    cut = jnp.finfo(H.dtype).eps * H.shape[0] * jnp.maximum(jnp.max(jnp.abs(lam)), 1e-300)
    seen = lam > cut
    inv = jnp.where(seen, 1.0 / jnp.where(seen, lam, 1.0), 0.0)
    return Posterior(theta, (Q * inv) @ Q.T, H, jnp.sum(seen))


def laplace(problem: InverseProblem, theta) -> Posterior:
    """The Laplace (Gauss–Newton) approximation of the posterior at ``theta`` (a MAP point, e.g.
    ``gauss_newton(...).theta``). Warns when some directions are undetermined (rank < n): their
    variance is reported as 0 in Σ (a pseudo-inverse), which is not a credible interval. For
    field parameters, whose dependent coefficient combinations change no value, compare
    ``post.rank`` with the field's independent functions instead (no warning)."""
    if not isinstance(problem, InverseProblem):
        raise TypeError(f"problem must be an nmm.inverse.InverseProblem, got {type(problem).__name__}")
    post = _posterior(problem, as_arrays(theta))
    n = post.hessian.shape[-1]
    rank = post.rank
    fields = any(isinstance(leaf, Field) for leaf in jax.tree_util.tree_leaves(theta, is_leaf=_is_field))
    # a field on a p >= 1 cover carries dependent coefficient combinations (hat × polynomial
    # frames) that change no value: for it rank < n is the normal case, read post.rank
    if not fields and not isinstance(rank, jax.core.Tracer) and np.ndim(rank) == 0 and int(rank) < n:
        warnings.warn(
            f"laplace: the data and the regularisation determine {int(rank)} of {n} parameter "
            "directions; the others have no finite variance (add regularisation or data)",
            RuntimeWarning,
            stacklevel=2,
        )
    return post


@eqx.filter_jit
def _evidence(problem, theta):
    x, rebuild = split(theta)
    f, _, J, _, P = _linearise(problem, rebuild, x)
    # on the range of the prior precision P (a field's dependent combinations have no prior and
    # no data: they drop out of both determinants)
    P = 0.5 * (P + P.T)
    lam, Q = jnp.linalg.eigh(P)
    keep = lam > jnp.finfo(P.dtype).eps * P.shape[0] * jnp.maximum(jnp.max(lam), 1e-300)
    scale = jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, lam, 1.0)), 0.0)
    B = (J @ Q) * scale[None, :]
    mu = jnp.linalg.eigvalsh(B.T @ B)
    logdet = jnp.sum(jnp.log1p(jnp.maximum(mu, 0.0)))
    return -f - 0.5 * logdet


def log_evidence(problem: InverseProblem, theta) -> jax.Array:
    """The Laplace approximation of log p(data | regularisation) at a MAP point ``theta``, up to
    a constant that does not depend on the regularisation weights:
    −J(θ*) − ½ log det(I + P^{-1/2} JᵀJ P^{-1/2}) with P = ∇²R (MacKay 1992). Compare it across
    regularisation weights fitted to the same data and take the largest (empirical Bayes): a
    choice made from the data alone. Needs a quadratic regulariser that is a proper prior on the
    parameters the data see (Tikhonov, H1 with ``beta > 0``)."""
    if not isinstance(problem, InverseProblem):
        raise TypeError(f"problem must be an nmm.inverse.InverseProblem, got {type(problem).__name__}")
    if not problem.regularisation:
        raise ValueError("log_evidence needs a regularisation (the prior whose weight it compares)")
    return _evidence(problem, as_arrays(theta))
