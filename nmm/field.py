"""Fields: u(x) = Σ_c w_c(x) u_c(x) over the physical covers that hold x; evaluation and errors."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .assembly import basis_at
from .checks import real_array
from .forms.data import value
from .linalg.results import RESULTS
from .locate import find
from .quadrature import map_simplices
from .space import ManifoldSpace


class SolveInfo(eqx.Module):
    """How a field was computed (per batch member under ``vmap``).

    Attributes:
        result: result code (``nmm.linalg.RESULTS``; 0 = success).
        residual: relative residual of the last linear solve.
        iterations: refinement steps / iterations of the last linear solve.
        condition: condition estimate of the factored matrix (-1 when not computed).
        newton_steps: Newton iterations (0 for linear forms).
        history: ``(max_steps + 1,)`` Newton residual norms |R(x_k)| (k = 0 .. newton_steps; the
            rest is zero); empty for linear forms.
    """

    result: jax.Array
    residual: jax.Array
    iterations: jax.Array
    condition: jax.Array
    newton_steps: jax.Array
    history: jax.Array

    @classmethod
    def from_stats(cls, stats) -> SolveInfo:
        s = jnp.asarray(stats, dtype=float)
        if s.shape[-1:] != (3,):
            raise ValueError(f"stats must have shape (3,), got {s.shape}")
        zero = jnp.zeros(s.shape[:-1], jnp.int32)
        return cls(zero, s[..., 0], s[..., 1], s[..., 2], zero, jnp.zeros((*s.shape[:-1], 0)))

    @property
    def stats(self):
        return jnp.stack([self.residual, self.iterations, self.condition], axis=-1)

    @property
    def ok(self):
        """Success, or success with a warning (e.g. a refinement that stalled)."""
        return ~RESULTS.failed(self.result)

    def newton_history(self) -> np.ndarray:
        """The Newton residual norms of an unbatched solve, ``|R(x_0)|, …, |R(x_k)|``."""
        return np.asarray(self.history)[: int(self.newton_steps) + 1]


class Field(eqx.Module):
    """A scalar or vector field on a :class:`ManifoldSpace`.

    Attributes:
        space: the space.
        coeffs: ``(n_dofs,)`` cover-function coefficients.
        info: a :class:`SolveInfo` (``Field(space, coeffs, stats)`` also takes the old
            ``[residual, iterations, condition]`` array).

    ``u(x)`` and ``u.grad(x)`` take ``x`` of shape ``(dim,)`` or ``(m, dim)`` (1D also ``(m,)``)
    and work under jit and vmap; values are ``(m,)`` for scalar fields and ``(m, n)`` for
    ``n``-component fields, gradients ``(m, dim)`` / ``(m, n, dim)``. Points outside the domain
    give NaN: the field is not defined there.
    """

    space: ManifoldSpace
    coeffs: jax.Array
    info: SolveInfo

    def __init__(self, space, coeffs, info=None):
        if not isinstance(space, ManifoldSpace):
            raise TypeError(f"space must be an nmm.ManifoldSpace, got {type(space).__name__}")
        self.space = space
        self.coeffs = jnp.asarray(coeffs)
        if self.coeffs.ndim == 0 or self.coeffs.shape[-1] != space.n_dofs:
            raise ValueError(
                f"coeffs must have shape ({space.n_dofs},) (the space's n_dofs), got "
                f"{tuple(self.coeffs.shape)}"
            )
        if info is None:
            info = jnp.array([0.0, 0.0, -1.0])
        self.info = info if isinstance(info, SolveInfo) else SolveInfo.from_stats(info)

    @property
    def stats(self):
        """``[relative residual, refinement steps, condition estimate]`` of the solve."""
        return self.info.stats

    @property
    def value_shape(self) -> tuple[int, ...]:
        return () if self.space.components == 1 else (self.space.components,)

    def _points(self, x):
        if isinstance(x, list | tuple | np.ndarray | str | int | float | complex):
            x = real_array(x, "x")  # a clear error for strings and complex points
        x = jnp.asarray(x, dtype=self.coeffs.dtype)
        dim = self.space.dim
        if dim == 1 and x.ndim <= 1:  # 1D: a scalar or a vector of points
            return x.reshape(-1, 1), x.shape
        if x.ndim == 0 or x.shape[-1] != dim:
            raise ValueError(f"x must have shape (..., {dim}), got {x.shape}")
        return x.reshape(-1, dim), x.shape[:-1]

    def elements(self, x):
        """Element index of each point (``-1`` outside the domain)."""
        pts, lead = self._points(x)
        return _locate(self.space, pts).reshape(lead)

    def __call__(self, x):
        pts, lead = self._points(x)
        return _values(self, pts)[0].reshape(*lead, *self.value_shape)

    def grad(self, x):
        """∇u at points: shape ``(..., dim)`` (scalar) or ``(..., n, dim)`` (vector)."""
        pts, lead = self._points(x)
        return _values(self, pts)[1].reshape(*lead, *self.value_shape, self.space.dim)

    def in_elements(self, elems, points):
        """Values and gradients at ``points (m, dim)`` known to lie in ``elems (m,)`` (no point
        location; used for plots and on crack faces): ``(m,)``/``(m, dim)`` for scalar fields,
        ``(m, n)``/``(m, n, dim)`` for vector fields."""
        phi, dphi = basis_at(self.space, elems, points[:, None, :])
        n, nt = self.space.components, self.space.n_terms
        m = phi.shape[0]
        nv = self.space.elem_dofs.shape[1] // (n * nt)
        c = self.coeffs[self.space.elem_dofs[elems]].reshape(m, nv, n, nt)
        phi = phi[:, 0].reshape(m, nv, nt)
        dphi = dphi[:, 0].reshape(m, nv, nt, self.space.dim)
        val = jnp.einsum("mvt,mvct->mc", phi, c)
        grad = jnp.einsum("mvtd,mvct->mcd", dphi, c)
        if n == 1:
            return val[:, 0], grad[:, 0]
        return val, grad


@eqx.filter_jit
def _locate(space, pts):
    return jax.vmap(lambda p: find(space.locator, space.elem_cell_data, p))(pts)


@eqx.filter_jit
def _values(u: Field, pts):
    # jitted as a whole: op-by-op dispatch of the locate + basis code costs seconds per call
    e = _locate(u.space, pts)
    val, grad = u.in_elements(jnp.maximum(e, 0), pts)
    inside = e >= 0
    mask = lambda a: jnp.where(inside.reshape(-1, *([1] * (a.ndim - 1))), a, jnp.nan)  # noqa: E731
    return mask(val), mask(grad)


def errors(u: Field, exact, exact_grad=None, params=None, degree=None) -> dict[str, float]:
    """Relative errors of ``u`` against an exact solution.

    The integrals use a rule finer than the one the solution was computed with (default: the
    space's quadrature degree + 4), so that a field fitted at the solver's quadrature points cannot
    look better than it is. For vector fields the norms sum over components.

    Args:
        u: the field.
        exact: callable ``exact(x)`` of one point ``(dim,)`` (``exact(x, params)`` with params),
            returning a scalar (or ``(n,)`` for an n-component field).
        exact_grad: callable returning ``(dim,)`` (``(n, dim)``); by default autodiff of ``exact``.
        degree: polynomial degree of the error quadrature.

    Returns:
        ``{"L2": ‖u-e‖/‖e‖, "H1": |u-e|_1/|e|_1, "max": max|u-e|/max|e|}``, the max taken over the
        quadrature points (all strictly inside the elements).
    """
    if not isinstance(u, Field):
        raise TypeError(f"u must be an nmm.Field, got {type(u).__name__}")
    if not callable(exact):
        raise TypeError(f"exact must be a callable of x, got {type(exact).__name__}")
    degree = u.space.quad_degree + 4 if degree is None else int(degree)
    topo = u.space.host.topology
    pts, w = map_simplices(topo.simplices, degree, topo.simplex_singular)
    vals, bad = _error_integrals(u, exact, exact_grad, params, jnp.asarray(pts), jnp.asarray(w))
    for name, (count, where) in zip(("exact", "exact_grad", "u"), np.asarray(bad), strict=True):
        if count > 0:
            what = "the gradient of exact" if name == "exact_grad" and exact_grad is None else name
            raise ValueError(
                f"errors: {what} is not finite at {int(count)} of {len(w.reshape(-1))} quadrature "
                f"points (first at x = {np.asarray(pts).reshape(-1, u.space.dim)[int(where)].tolist()})"
            )
    l2n, l2e, h1n, h1e, mx, mxe = (float(v) for v in vals)
    return {
        "L2": np.sqrt(l2e / l2n) if l2n > 0 else np.sqrt(l2e),
        "H1": np.sqrt(h1e / h1n) if h1n > 0 else np.sqrt(h1e),
        "max": mxe / mx if mx > 0 else mxe,
    }


@eqx.filter_jit
def _error_integrals(u: Field, exact, exact_grad, params, pts, w):
    sp = u.space
    s, q, dim = pts.shape
    n = sp.components
    elems = jnp.repeat(sp.q_elem, q)
    flat = pts.reshape(-1, dim)
    val, grad = u.in_elements(elems, flat)
    val, grad = val.reshape(-1, n), grad.reshape(-1, n, dim)

    def ex(x):
        return jnp.reshape(value(exact, x, params), (n,))

    e = jax.vmap(ex)(flat)
    if exact_grad is None:
        ge = jax.vmap(jax.jacfwd(ex))(flat)
    else:
        ge = jax.vmap(lambda x: jnp.reshape(value(exact_grad, x, params), (n, dim)))(flat)
    wf = w.reshape(-1, 1)
    pointwise = jnp.sqrt(jnp.sum((val - e) ** 2, -1))

    def nonfinite(a):  # how many points, and the first
        bad = ~jnp.all(jnp.isfinite(a.reshape(a.shape[0], -1)), axis=1)
        return jnp.stack([jnp.sum(bad), jnp.argmax(bad)])

    bad = jnp.stack([nonfinite(e), nonfinite(ge), nonfinite(jnp.concatenate([val, grad[..., 0]], 1))])
    return (
        jnp.sum(wf * e**2),
        jnp.sum(wf * (val - e) ** 2),
        jnp.sum(wf[..., None] * ge**2),
        jnp.sum(wf[..., None] * (grad - ge) ** 2),
        jnp.max(jnp.sqrt(jnp.sum(e**2, -1))),
        jnp.max(pointwise),
    ), bad
