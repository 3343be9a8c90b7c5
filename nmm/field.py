"""Fields: u(x) = Σ_c w_c(x) u_c(x) over the physical covers that hold x; evaluation and errors."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .assembly import basis_at
from .locate import find
from .problems import evaluate
from .quadrature import map_segments, map_triangles
from .space import ManifoldSpace


class Field(eqx.Module):
    """A scalar field on a :class:`ManifoldSpace`.

    Attributes:
        space: the space.
        coeffs: ``(n_dofs,)`` cover-function coefficients.
        stats: ``(3,)`` from the solve: relative residual, iterations, condition estimate (-1 when
            not computed); NaN-free by construction (a failed solve raises instead).

    ``u(x)`` and ``u.grad(x)`` take ``x`` of shape ``(dim,)`` or ``(m, dim)`` (1D also ``(m,)``) and
    work under jit and vmap. Points outside the domain give NaN: the field is not defined there.
    """

    space: ManifoldSpace
    coeffs: jax.Array
    stats: jax.Array

    def _points(self, x):
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
        return _values(self, pts)[0].reshape(lead)

    def grad(self, x):
        """∇u at points: shape ``(..., dim)``."""
        pts, lead = self._points(x)
        return _values(self, pts)[1].reshape(*lead, self.space.dim)

    def in_elements(self, elems, points):
        """Values ``(m,)`` and gradients ``(m, dim)`` at ``points (m, dim)`` known to lie in
        ``elems (m,)`` (no point location; used for plots and on crack faces)."""
        phi, dphi = basis_at(self.space, elems, points[:, None, :])
        c = self.coeffs[self.space.elem_dofs[elems]]  # (m, n_loc)
        return jnp.einsum("mi,mi->m", phi[:, 0], c), jnp.einsum("mid,mi->md", dphi[:, 0], c)


@eqx.filter_jit
def _locate(space, pts):
    return jax.vmap(lambda p: find(space.locator, space.elem_cell_data, p))(pts)


@eqx.filter_jit
def _values(u: Field, pts):
    # jitted as a whole: op-by-op dispatch of the locate + basis code costs seconds per call
    e = _locate(u.space, pts)
    val, grad = u.in_elements(jnp.maximum(e, 0), pts)
    inside = e >= 0
    return jnp.where(inside, val, jnp.nan), jnp.where(inside[:, None], grad, jnp.nan)


def errors(u: Field, exact, exact_grad=None, params=None, degree=None) -> dict[str, float]:
    """Relative errors of ``u`` against an exact solution.

    The integrals use a rule finer than the one the solution was computed with (default: the
    space's quadrature degree + 4), so that a field fitted at the solver's quadrature points cannot
    look better than it is.

    Args:
        u: the field.
        exact: callable ``exact(x)`` of one point ``(dim,)`` (``exact(x, params)`` with params).
        exact_grad: callable returning ``(dim,)``; by default ``jax.grad(exact)``.
        degree: polynomial degree of the error quadrature.

    Returns:
        ``{"L2": ‖u-e‖/‖e‖, "H1": |u-e|_1/|e|_1, "max": max|u-e|/max|e|}``, the max taken over the
        quadrature points (all strictly inside the elements).
    """
    if not isinstance(u, Field):
        raise TypeError(f"u must be an nmm.Field, got {type(u).__name__}")
    if not callable(exact):
        raise TypeError(f"exact must be a callable of x, got {type(exact).__name__}")
    grad_fn = exact_grad if exact_grad is not None else jax.grad(exact)
    degree = u.space.quad_degree + 4 if degree is None else int(degree)
    topo = u.space.host.topology
    rule = map_segments if u.space.dim == 1 else map_triangles
    pts, w = rule(topo.simplices, degree)
    vals = _error_integrals(u, exact, grad_fn, params, jnp.asarray(pts), jnp.asarray(w))
    l2n, l2e, h1n, h1e, mx, mxe = (float(v) for v in vals)
    return {
        "L2": np.sqrt(l2e / l2n) if l2n > 0 else np.sqrt(l2e),
        "H1": np.sqrt(h1e / h1n) if h1n > 0 else np.sqrt(h1e),
        "max": mxe / mx if mx > 0 else mxe,
    }


@eqx.filter_jit
def _error_integrals(u: Field, exact, grad_fn, params, pts, w):
    sp = u.space
    s, q, dim = pts.shape
    elems = jnp.repeat(sp.q_elem, q)
    val, grad = u.in_elements(elems, pts.reshape(-1, dim))
    e = evaluate(exact, pts, params).reshape(-1)
    flat = pts.reshape(-1, dim)
    ge = jax.vmap(grad_fn)(flat) if params is None else jax.vmap(lambda x: grad_fn(x, params))(flat)
    ge = ge.reshape(-1, dim)
    wf = w.reshape(-1)
    return (
        jnp.sum(wf * e**2),
        jnp.sum(wf * (val - e) ** 2),
        jnp.sum(wf * jnp.sum(ge**2, -1)),
        jnp.sum(wf * jnp.sum((grad - ge) ** 2, -1)),
        jnp.max(jnp.abs(e)),
        jnp.max(jnp.abs(val - e)),
    )
