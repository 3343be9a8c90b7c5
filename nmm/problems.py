"""Problem descriptions: what to solve, not how.

Data are constants or callables of ONE point ``x`` (shape ``(dim,)``) returning a scalar, written
with ``jax.numpy``; the engine vmaps them over quadrature points. When ``nmm.solve`` is given
``params``, every callable is called as ``fn(x, params)`` (Neumann data as ``h(x, n, params)``), which
is how sources and coefficients are batched, differentiated and changed without recompiling.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

BCS = ("nitsche", "penalty")


def _check_data(value, name: str, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if callable(value):
        return
    if isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return
    raise TypeError(f"{name} must be a number or a callable of x, got {type(value).__name__}")


class Poisson(eqx.Module):
    """-∇·(k ∇u) + c u = f in Ω, u = g on Γ_D (weakly), k ∂u/∂n = h on Γ_N.

    Attributes:
        k, c, f: numbers or callables ``fn(x)`` / ``fn(x, params)``; k > 0, c >= 0.
        dirichlet: g, a callable (or number), or None for no Dirichlet boundary.
        neumann: h(x, n) (or h(x, n, params)), the outward flux k ∂u/∂n, on the boundary that is
            not Dirichlet; None means zero flux there.
        crack_neumann: h(x, n) on crack faces (each face with its own outward normal); None means
            traction-free faces (zero flux), the usual crack.
        dirichlet_on: None (all of ∂Ω, cracks excluded) or a numpy-vectorised callable
            ``mask(points (m, dim)) -> bool (m,)`` evaluated at boundary-piece midpoints.
        bc: ``"nitsche"`` (consistent, default) or ``"penalty"`` (classic NMM).
        penalty: β0; the boundary penalty is β0 (p + w)² k / h with p the cover-function order,
            w the weight degree and h the cell size. Defaults: 100 for Nitsche (large enough for
            covers cut to slivers at high p), 1e8 for penalty.

    Crack faces are free (zero flux) boundaries unless crack_neumann is given: u may jump across
    a crack.
    """

    k: object = eqx.field(static=True, default=1.0)
    c: object = eqx.field(static=True, default=0.0)
    f: object = eqx.field(static=True, default=0.0)
    dirichlet: object = eqx.field(static=True, default=None)
    neumann: object = eqx.field(static=True, default=None)
    crack_neumann: object = eqx.field(static=True, default=None)
    dirichlet_on: Callable | None = eqx.field(static=True, default=None)
    bc: str = eqx.field(static=True, default="nitsche")
    penalty: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        for name in ("k", "c", "f"):
            _check_data(getattr(self, name), name, allow_none=False)
        _check_data(self.dirichlet, "dirichlet", allow_none=True)
        for name in ("neumann", "crack_neumann"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be a callable h(x, n), got {type(value).__name__}")
        if self.dirichlet_on is not None and not callable(self.dirichlet_on):
            raise TypeError("dirichlet_on must be a callable mask(points) -> bool array")
        if self.bc not in BCS:
            raise ValueError(f"bc must be one of {BCS}, got {self.bc!r}")
        if self.penalty is not None and not (np.isfinite(self.penalty) and self.penalty > 0):
            raise ValueError(f"penalty must be a positive finite number, got {self.penalty!r}")
        if isinstance(self.k, int | float) and self.k <= 0:
            raise ValueError(f"k must be positive, got {self.k!r}")
        if isinstance(self.c, int | float) and self.c < 0:
            raise ValueError(f"c must be non-negative, got {self.c!r}")

    @property
    def beta0(self) -> float:
        if self.penalty is not None:
            return float(self.penalty)
        return 100.0 if self.bc == "nitsche" else 1e8


def evaluate(fn, points, params, *extra):
    """Evaluate data ``fn`` at ``points (..., dim)``: a constant, ``fn(x, *extra)`` or
    ``fn(x, *extra, params)``. Returns an array of shape ``points.shape[:-1]``."""
    lead = points.shape[:-1]
    if fn is None:
        return jnp.zeros(lead, points.dtype)
    if not callable(fn):
        return jnp.full(lead, fn, points.dtype)
    flat = points.reshape(-1, points.shape[-1])
    flat_extra = [e.reshape(-1, e.shape[-1]) for e in extra]
    if params is None:
        out = jax.vmap(lambda x, *ex: jnp.asarray(fn(x, *ex)))(flat, *flat_extra)
    else:
        out = jax.vmap(lambda x, *ex: jnp.asarray(fn(x, *ex, params)))(flat, *flat_extra)
    if out.shape != (flat.shape[0],):
        raise ValueError(
            f"data callable {getattr(fn, '__name__', fn)!r} must return a scalar per point, "
            f"got shape {out.shape[1:]}"
        )
    return out.reshape(lead).astype(points.dtype)
