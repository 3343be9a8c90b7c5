"""Drivers: ``solve`` (forward problems) and ``fit`` (L2 projection / least squares).

Thin host-side wrappers that check input before tracing, then call one jitted function per
problem shape. Data flow through ``params`` (a pytree of arrays): a new ``params`` of the same
shapes reuses the compiled code.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .assembly import mass_system, poisson_system
from .field import Field
from .linalg import SolverOptions, solve_blocks
from .locate import find
from .problems import Poisson, evaluate
from .space import ManifoldSpace

_RESIDUAL_FAIL = 1e-6


def _check_space(space) -> None:
    if not isinstance(space, ManifoldSpace):
        raise TypeError(f"space must be an nmm.ManifoldSpace, got {type(space).__name__}")


def _check_solver(solver) -> SolverOptions:
    if solver is None:
        return SolverOptions()
    if isinstance(solver, str):
        return SolverOptions(method=solver)
    if not isinstance(solver, SolverOptions):
        raise TypeError(f"solver must be 'direct', 'cg' or SolverOptions, got {solver!r}")
    return solver


def _finite(x, what: str):
    return eqx.error_if(x, ~jnp.all(jnp.isfinite(x)), f"{what} contains non-finite values")


def _linear_solve(space, data, rhs, opts):
    data = _finite(data, "system matrix (check k, c and the boundary data)")
    rhs = _finite(rhs, "right-hand side (check f and the boundary data)")
    x, stats = solve_blocks(space, data, rhs, opts)
    bad = ~jnp.all(jnp.isfinite(x)) | ~(stats[0] <= _RESIDUAL_FAIL)
    x = eqx.error_if(x, bad, "linear solve failed: non-finite solution or relative residual above 1e-6")
    return x, stats


def boundary_masks(space: ManifoldSpace, problem: Poisson) -> tuple[np.ndarray, np.ndarray]:
    """Dirichlet and Neumann masks over the space's boundary pieces (host side, static geometry)."""
    topo = space.host.topology
    outer = ~topo.bnd_crack
    if problem.dirichlet is None:
        dirichlet = np.zeros(len(outer), bool)
    elif problem.dirichlet_on is None:
        dirichlet = outer.copy()
    else:
        mid = topo.bnd.mean(axis=1)
        sel = np.asarray(problem.dirichlet_on(mid), dtype=bool).reshape(-1)
        if sel.shape != outer.shape:
            raise ValueError(
                f"dirichlet_on must return one bool per point, got shape {sel.shape} "
                f"for {len(mid)} points"
            )
        dirichlet = outer & sel
    neumann = outer & ~dirichlet
    return dirichlet.astype(float), neumann.astype(float)


@eqx.filter_jit
def _poisson(space, problem, params, dmask, nmask, opts):
    data, rhs = poisson_system(space, problem, params, dmask, nmask)
    return _linear_solve(space, data, rhs, opts)


def solve(space: ManifoldSpace, problem: Poisson, params=None, solver=None) -> Field:
    """Solve a forward problem on ``space``.

    Args:
        space: the :class:`ManifoldSpace`.
        problem: an :class:`nmm.Poisson`.
        params: optional pytree of arrays passed to every data callable (see ``nmm.problems``);
            differentiate or vmap the solve with respect to it.
        solver: ``"direct"`` (default), ``"cg"`` or a :class:`SolverOptions`.

    Returns:
        The solution :class:`Field`.
    """
    _check_space(space)
    if not isinstance(problem, Poisson):
        raise TypeError(f"problem must be an nmm.Poisson, got {type(problem).__name__}")
    opts = _check_solver(solver)
    dmask, nmask = boundary_masks(space, problem)
    if problem.dirichlet is None and not callable(problem.c) and problem.c == 0:
        raise ValueError(
            "problem has no Dirichlet boundary and c = 0: the solution is only defined up to a "
            "constant; give dirichlet=... or c > 0"
        )
    x, stats = _poisson(space, problem, params, jnp.asarray(dmask), jnp.asarray(nmask), opts)
    return Field(space, x, stats)


@eqx.filter_jit
def _fit_callable(space, fn, params, opts):
    values = evaluate(fn, space.q_points, params)
    data, rhs = mass_system(space, values, space.q_elem, space.q_points, space.q_weights)
    return _linear_solve(space, data, rhs, opts)


@eqx.filter_jit
def _fit_samples(space, points, values, opts):
    elems = jax.vmap(lambda p: find(space.locator, space.elem_cell_data, p))(points)
    elems = eqx.error_if(elems, jnp.any(elems < 0), "points: some sample points lie outside the domain")
    data, rhs = mass_system(
        space, values[:, None], elems, points[:, None, :], jnp.ones((points.shape[0], 1))
    )
    return _linear_solve(space, data, rhs, opts)


def fit(space: ManifoldSpace, target, params=None, solver=None) -> Field:
    """Best approximation of ``target`` in ``space``.

    Args:
        space: the :class:`ManifoldSpace`.
        target: a callable ``f(x)`` (or ``f(x, params)``) of one point: L2 projection on the
            space's quadrature; or a pair ``(points (m, dim), values (m,))``: least squares at the
            samples (rank-deficient when samples are too few; the solve then picks one minimiser).
        params: optional pytree passed to a callable target.
        solver: as in :func:`solve`.
    """
    _check_space(space)
    opts = _check_solver(solver)
    if callable(target):
        x, stats = _fit_callable(space, target, params, opts)
        return Field(space, x, stats)
    if not (isinstance(target, tuple | list) and len(target) == 2):
        raise TypeError(
            f"target must be a callable or a (points, values) pair, got {type(target).__name__}"
        )
    points = jnp.asarray(target[0], dtype=float)
    values = jnp.asarray(target[1], dtype=float)
    if space.dim == 1 and points.ndim == 1:
        points = points[:, None]
    if points.ndim != 2 or points.shape[1] != space.dim:
        raise ValueError(f"points must have shape (m, {space.dim}), got {points.shape}")
    if values.shape != (points.shape[0],):
        raise ValueError(
            f"values must have shape ({points.shape[0]},) to match points, got {values.shape}"
        )
    if not isinstance(points, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(points))):
        raise ValueError("points contains non-finite values")
    if not isinstance(values, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(values))):
        raise ValueError("values contains non-finite values")
    x, stats = _fit_samples(space, points, values, opts)
    return Field(space, x, stats)
