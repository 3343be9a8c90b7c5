"""Differentiable linear solves with solver objects, and the solver choices users name.

``linear_solve(operator, b, solver)`` returns a :class:`Solution`, differentiable with respect to
the operator's values and to ``b`` in forward and reverse mode: the tangent is one solve that
reuses the forward factorisation (a ``custom_linear_solve``, :func:`implicit_solve`), and reverse
mode transposes it into the adjoint rule (one transpose solve with the same factorisation); never
an unrolled iteration. ``throw=False`` returns the result code per batch member instead of
raising.
"""

from __future__ import annotations

import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from .amg import AMG
from .dense import DenseLU
from .iterative import CG, BiCGStab
from .operator import BlockCSR, BlockPattern
from .results import RESULTS, settle, warn_if_flagged
from .superlu import SuperLU, _factor, _refine

SOLVERS = ("direct", "cg")
SOLVER_TYPES = (SuperLU, CG, BiCGStab, DenseLU, AMG)


class SolverOptions(eqx.Module):
    """Linear-solver settings by name (kept for scripts written before the solver objects;
    ``as_solver`` turns them into :class:`SuperLU` or :class:`CG`).

    Attributes:
        method: ``"direct"`` (SuperLU + refinement) or ``"cg"``.
        eps: diagonal perturbation of the unit-diagonal matrix before factoring.
        rtol: refinement stops when the energy norm of a correction falls below rtol times that of
            the solution; CG stops at this relative residual.
        max_iter: refinement steps (direct, default 20) or CG iterations (default 20 n_dofs^(1/2)
            + 1000).
        condition: also estimate the 1-norm condition number of the factored matrix (direct only;
            costs a few extra solves).
    """

    method: str = eqx.field(static=True, default="direct")
    eps: float = eqx.field(static=True, default=1e-12)
    rtol: float = eqx.field(static=True, default=1e-11)
    max_iter: int | None = eqx.field(static=True, default=None)
    condition: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if self.method not in SOLVERS:
            raise ValueError(f"method must be one of {SOLVERS}, got {self.method!r}")
        if not (0 <= self.eps < 1):
            raise ValueError(f"eps must be in [0, 1), got {self.eps!r}")
        if not (0 < self.rtol < 1):
            raise ValueError(f"rtol must be in (0, 1), got {self.rtol!r}")
        if self.max_iter is not None and (int(self.max_iter) != self.max_iter or self.max_iter < 1):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")


def as_solver(solver):
    """A solver object from what users pass: ``None`` (SuperLU), ``"direct"``, ``"cg"``, a
    :class:`SolverOptions` or a solver object."""
    if solver is None or solver == "direct":
        return SuperLU()
    if isinstance(solver, str):
        if solver == "cg":
            return CG()
        if solver == "amg":
            return AMG()
        if solver == "petsc":  # optional: a clear ImportError naming the extra when missing
            from .petsc import PETSc

            return PETSc()
        if solver == "cholesky":  # optional (cvxopt): the same
            from .cholmod import Cholesky

            return Cholesky()
        raise ValueError(
            f"solver must be one of {(*SOLVERS, 'amg', 'petsc', 'cholesky')} or a solver object, "
            f"got {solver!r}"
        )
    if isinstance(solver, SolverOptions):
        if solver.method == "direct":
            return SuperLU(solver.eps, solver.rtol, solver.max_iter or 20, solver.condition)
        return CG(solver.rtol, solver.max_iter, solver.eps)
    if isinstance(solver, SOLVER_TYPES) or (hasattr(solver, "init") and hasattr(solver, "solve")):
        return solver
    raise TypeError(
        "solver must be 'direct', 'cg', 'amg', 'petsc', 'cholesky', nmm.SolverOptions or a solver "
        f"object (nmm.linalg.SuperLU, Cholesky, CG, AMG, BiCGStab, DenseLU, PETSc), got {solver!r}"
    )


class Solution(eqx.Module):
    """Result of a linear solve.

    Attributes:
        value: the solution.
        result: integer code (:class:`RESULTS`; 0 = success), per batch member under ``vmap``.
        residual: relative residual ``|A x - b| / |b|`` (of the unit-diagonal system for the direct
            solvers).
        iterations: refinement steps (direct) or iterations (iterative; -1 when not reported).
        condition: condition estimate of the factored matrix (-1 when not computed).
        state: the solver state (holds the factorisation: pass it to ``solver.solve`` or to
            ``linear_solve(..., state=)`` to solve again without refactoring).
    """

    value: jax.Array
    result: jax.Array
    residual: jax.Array
    iterations: jax.Array
    condition: jax.Array
    state: object

    @property
    def stats(self):
        """``[residual, iterations, condition]`` (the layout of ``Field.stats``)."""
        return jnp.stack([self.residual, self.iterations, self.condition], axis=-1)


def _accepts(method, name: str) -> bool:
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def init_state(solver, operator, release=None):
    """``solver.init(operator)``, telling solvers that keep host resources which state the new
    one replaces (user solvers without a ``release`` argument are called plainly)."""
    if release is not None and _accepts(solver.init, "release"):
        return solver.init(operator, release=release)
    return solver.init(operator)


def solve_with(method, state, b, operator=None, last: bool = False):
    """``solver.solve`` / ``transpose_solve`` with the optional ``operator`` and ``last``
    (the state's last use: a solver may free its factorisation)."""
    kwargs = {"last": True} if last and _accepts(method, "last") else {}
    if operator is not None:
        return method(state, b, operator, **kwargs)
    return method(state, b, **kwargs)


def checked_adjoint(lam, result, throw: bool, what: str = "gradient: the adjoint (transpose) solve"):
    """The adjoint of a gradient (or the tangent of a forward derivative, ``what``), never
    silently wrong: an error (``throw``) or NaN where the solve failed."""
    result = jax.lax.stop_gradient(result)
    if throw:
        messages = tuple(m and f"{what} failed: {m}" for m in RESULTS.messages)
        return eqx.branched_error_if(lam, RESULTS.failed(result), result, messages)
    return jnp.where(RESULTS.failed(result), jnp.nan, lam)


def raise_if_failed(x, result, messages=None):
    """``x`` with a runtime error attached that fires where ``result`` is a failure (warning
    codes such as a stalled refinement only warn); ``messages``: indexed by code (default
    ``RESULTS.messages``)."""
    # the code is an integer output of a custom rule: under grad it carries a (zero) tangent
    # that branched_error_if's batching primitive cannot take, hence the stop_gradient
    result = jax.lax.stop_gradient(result)
    warn_if_flagged(result)
    messages = RESULTS.messages if messages is None else messages
    return eqx.branched_error_if(x, RESULTS.failed(result), result, messages)


TANGENT = "derivative: the tangent (forward-mode) solve"


def implicit_solve(matvec, rhs, solver, state, throw, *, after=None, operator=None, last=False):
    """``A⁻¹ rhs`` for the tangent of an implicit solution (forward mode), with the state's
    factorisation: a ``jax.lax.custom_linear_solve`` whose solve is ``solver.solve(state, ·)`` and
    whose transpose is ``solver.transpose_solve(state, ·)``. Linear in ``rhs``, so reverse mode
    transposes it into the adjoint solve (one transpose solve reusing the factorisation); under
    ``vmap`` (``jacfwd``, ``jacrev``) one batched call solves every right-hand side.

    ``matvec``: ``v ↦ A v`` (traced only: its transpose and derivative in the operator).
    ``operator``: refine against this (nearby) matrix (a Newton Jacobian at the solution).
    ``last``: the state's last use, its factor is freed (each call of the tangent map frees it:
    a second call, e.g. of a ``jax.linearize``'d map, refactors). ``after``: an array (the primal
    solution) the host solve is ordered after: host callbacks without a data dependency run in any
    order, and a factor freed before the primal solve would be refactored.
    """

    def ordered(b):
        return b if after is None else b + 0.0 * after

    def solve(_, b):
        x, code, *_ = solve_with(solver.solve, state, ordered(b), operator, last=last)
        return checked_adjoint(x, code, throw, TANGENT)

    def transpose_solve(_, b):
        lam, code, *_ = solve_with(solver.transpose_solve, state, ordered(b), operator, last=last)
        return checked_adjoint(lam, code, throw)

    return jax.lax.custom_linear_solve(matvec, rhs, solve, transpose_solve)


@eqx.filter_custom_jvp
def _solve(operator, b, solver, state, throw):
    x, code, res, its = solver.solve(state, b)
    return x, code, res, its


@_solve.def_jvp
def _solve_jvp(primals, tangents):
    # A x = b: dx = A⁻¹ (db − dA x), one solve with the state's factorisation (custom_linear_solve:
    # reverse mode transposes it into the adjoint rule, dL/db = λ, dL/dA = −λ xᵀ on the blocks)
    operator, b, solver, state, throw = primals
    t_op, t_b = tangents[0], tangents[1]
    x, code, res, its = solver.solve(state, b)
    rhs = t_b
    t_data = None if t_op is None else t_op.data
    if t_data is not None:
        dax = eqx.tree_at(lambda o: o.data, operator, t_data).mv(x)
        rhs = -dax if rhs is None else rhs - dax
    dx = None if rhs is None else implicit_solve(operator.mv, rhs, solver, state, throw)
    return (x, code, res, its), (dx, None, None, None)


def linear_solve(operator: BlockCSR, b, solver=None, *, state=None, throw: bool = True) -> Solution:
    """Solve ``A x = b``.

    Args:
        operator: a :class:`BlockCSR`.
        b: right-hand side ``(n,)``.
        solver: a solver object (``SuperLU()`` by default, ``CG()``, ``BiCGStab()``,
            ``DenseLU()``), or ``"direct"``/``"cg"``/``SolverOptions``.
        state: a state from ``solver.init(operator)`` (or a previous ``Solution.state``) to reuse
            its factorisation.
        throw: raise on failure (default); with ``False`` the failure is reported in
            ``Solution.result`` (per batch member under ``vmap``).

    Differentiable with respect to ``operator.data`` and ``b`` in forward and reverse mode (one
    tangent or adjoint solve reusing the state's factorisation).
    """
    if not isinstance(operator, BlockCSR):
        raise TypeError(f"operator must be an nmm.linalg.BlockCSR, got {type(operator).__name__}")
    b = jnp.asarray(b)
    if b.shape != (operator.shape[0],):
        raise ValueError(f"b must have shape ({operator.shape[0]},), got {b.shape}")
    solver = as_solver(solver)
    if state is None:
        state = solver.init(operator)
    # the derivative with respect to the operator is the custom rule's (through ``operator``);
    # the state is only the factorisation it reuses
    state = jax.tree_util.tree_map(lambda a: jax.lax.stop_gradient(a) if eqx.is_array(a) else a, state)
    x, code, res, its = _solve(operator, b, solver, state, bool(throw))
    cond = jax.lax.stop_gradient(getattr(state, "condition", jnp.asarray(-1.0, b.dtype)))
    code, res, its = (jax.lax.stop_gradient(v) for v in (code, res, its))
    if throw:
        x = raise_if_failed(x, code)
    else:
        warn_if_flagged(code)
    return settle(Solution(x, code, res, its, cond, state))


def solve_dense(a, b, opts=None) -> tuple[np.ndarray, np.ndarray]:
    """Host-side solve of one small dense symmetric positive semi-definite system with the same
    regularised machinery as the sparse direct solver (unit-diagonal scaling, perturbed LU,
    energy-norm refinement). Used for the output layer of networks (``nmm_nn.cover_solve``),
    whose features are as linearly dependent as high-order cover functions.

    Returns ``x`` and ``stats = [relative residual, refinement steps, condition estimate]``.
    """
    solver = as_solver(opts if opts is not None else SolverOptions())
    if not isinstance(solver, SuperLU):
        raise ValueError("solve_dense: only the direct method applies")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or b.shape != (a.shape[0],):
        raise ValueError(f"a must be square (n, n) and b (n,), got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("a and b must be finite")
    # a dense matrix has no fill to save: nested dissection would only cost its own time
    # (measured 2.5x slower at n = 1500) and a fresh order per call
    opts = solver._opts(a.shape[0], ordering="mmd")
    f = _factor(sp.csc_matrix(a), True, opts)
    x, res, it, _ = _refine(f, f.a, b, False, opts)
    return x, np.array([res, it, f.cond])


__all__ = [
    "BlockCSR",
    "BlockPattern",
    "RESULTS",
    "Solution",
    "SolverOptions",
    "as_solver",
    "linear_solve",
    "solve_dense",
]
