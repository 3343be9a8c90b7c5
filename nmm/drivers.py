"""The public seams: ``solve`` (any form, linear or not), ``fit`` (L2 projection / least squares)
and ``assemble`` (the discrete system of a form).

Thin host-side wrappers check input before tracing, then call one jitted function per problem
shape. Data flow through the form's leaves and ``params``: new data of the same shapes reuse the
compiled code.

Differentiation is implicit, in forward and reverse mode: the solution x* of R(x*, θ) = 0 has the
tangent dx = −K⁻¹ (∂R/∂θ) dθ, one solve with the factorisation the forward solve already holds
(refined against the Jacobian at x* after Newton) of the jvp of the pointwise residual in the data
(a ``custom_jvp``; ``jacfwd`` solves every tangent in one batched call). Reverse mode transposes it:
the adjoint θ̄ = −(∂R/∂θ)ᵀ λ with Kᵀλ = x̄, one transpose solve with the same factorisation.
Linear and nonlinear forms take the same path; nothing is unrolled.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np

from .assembly import (
    BoundaryData,
    Quadrature,
    basis_at,
    basis_tables,
    contract_vector,
    masks_at_points,
    operator,
    scatter_vector,
    volume_quadrature,
)
from .assembly import assemble as _assemble
from .buckets import cut_back, pad_boundary_data, solve_view
from .checks import real_array
from .field import Field, SolveInfo
from .forms import boundary as bc
from .forms.base import Form
from .forms.fit import L2Fit
from .gc_pause import gc_paused
from .kernels import bind, data_names
from .linalg.amg import AMG
from .linalg.cholmod import Cholesky
from .linalg.dense import DenseLU
from .linalg.results import RESULTS, check_on_host, settle, warn_if_flagged, worst
from .linalg.solve import as_solver, implicit_solve, linear_solve, raise_if_failed, solve_with
from .linalg.superlu import SuperLU
from .locate import find
from .nonlinear import Newton, newton
from .parallel import in_chunks_under_vmap, one_by_one_under_vmap
from .refine import (
    STABLE_EPS,
    conjugate_gradients,
    converged,
    energy,
    lsq_objective,
    preconditioner,
    python_while,
    stationary,
)
from .space import ManifoldSpace


def _linear_solver(space, solver):
    """The solver of a linear solve: on stable spaces the default SuperLU or DenseLU factors
    with the smaller perturbation ε that they take (:mod:`nmm.refine`)."""
    if space.stable and type(solver) in (SuperLU, Cholesky) and solver == type(solver)():
        return type(solver)(eps=STABLE_EPS)
    if space.stable and solver == DenseLU():
        return DenseLU(eps=STABLE_EPS)
    return solver


# the largest system the default solver solves by dense LU in JAX; measured on the 2-core CPU
# (second solves, p = 7 stable spaces): 324 unknowns 8 ms dense against 20 ms for SuperLU, 900
# unknowns 83 ms against 53 ms; p = 4 with 1 215 unknowns 83 ms against 27 ms
DENSE_MAX_UNKNOWNS = 512


def default_solver(space):
    """The solver of ``solver=None``: :class:`nmm.linalg.DenseLU` for systems of at most
    ``DENSE_MAX_UNKNOWNS`` unknowns (faster there, and pure JAX: no host callback, so the compiled
    solve goes to the persistent cache and a second run of a script does not compile it),
    :class:`nmm.linalg.SuperLU` above, and always in 32-bit mode (``jax_enable_x64`` off): the
    host solver factors in float64, where the dense LU in float32 cannot resolve the near-null
    modes of a partition-of-unity system (p = 1 on 75 unknowns: relative residual 1e-2 after
    refinement, a failed solve)."""
    if space.n_dofs <= DENSE_MAX_UNKNOWNS and jax.config.jax_enable_x64:
        return DenseLU()
    return SuperLU()


def _check_space(space) -> None:
    if not isinstance(space, ManifoldSpace):
        raise TypeError(f"space must be an nmm.ManifoldSpace, got {type(space).__name__}")
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(space)):
        # the boundary masks and null-mode checks read the space on the host: a traced space
        # would otherwise fail deep inside numpy with a TracerArrayConversionError
        raise TypeError(
            "space: its arrays are traced — the space was passed as an argument of a jitted or "
            "vmapped function. A space is host data (cut, masked and checked in numpy): close "
            "over it instead, e.g. jax.jit(lambda th: nmm.solve(V, problem, params=th))"
        )


def _check_form(space: ManifoldSpace, form) -> None:
    if not isinstance(form, Form):
        raise TypeError(f"problem must be an nmm.Poisson or another nmm.Form, got {type(form).__name__}")
    if form.components != space.components:
        raise ValueError(
            f"{type(form).__name__} has {form.components} component(s) but the space has "
            f"{space.components}: build the space with nmm.ManifoldSpace(..., "
            f"components={form.components})"
        )


def boundary_data(space: ManifoldSpace, form: Form, check: bool = True) -> BoundaryData:
    """Where the form's boundary conditions hold (host side), checked against its null modes
    (``check``; a time-dependent problem's mass matrix fixes them)."""
    dmask, nmask = bc.masks(space, form)
    if check:
        bc.check_null_modes(space, form, dmask)
    return BoundaryData(jax.device_put(dmask), jax.device_put(nmask), bool(np.any(dmask > 0)))


# ------------------------------------------------------------------------------ the core


def _codes(R0, K, ok):
    return worst(
        jnp.where(jnp.all(jnp.isfinite(K.data)), 0, RESULTS.nonfinite_matrix),
        jnp.where(jnp.all(jnp.isfinite(R0)), 0, RESULTS.nonfinite_rhs),
        jnp.where(ok, 0, RESULTS.not_elliptic),
    )


def _refined(kern, space, bd, quad, solver, state, K, x, lsq, tables):
    """High-order spaces: ``x`` refined with matrix-free residuals (:mod:`nmm.refine`) that read
    the matrix's basis ``tables``; returns the iterate and the energy of its last correction."""
    q = volume_quadrature(space) if quad is None else quad
    pre = preconditioner(solver)  # a few factored-solve steps: the outer iteration refines

    def residual(c):
        return _assemble(space, kern, bd, c, quad, matrix=False, tables=tables)

    def precondition(b):
        return solve_with(pre.solve, state, b)[0]

    if lsq:
        objective = lambda c: lsq_objective(space, kern, q, c)  # noqa: E731
        return conjugate_gradients(residual, objective, precondition, energy(K), x)
    return stationary(residual, precondition, energy(K), x)


# Under vmap on a CPU, spaces of at least this many quadrature cells are assembled member by
# member. Measured on the 2-core machine, vmap of 64 solves, member by member against batched:
# p = 0, 1 922 cells: 0.10 against 0.13 s; p = 0, 20 480 cells: 1.06 against 1.14–1.27 s; p = 2,
# 3 200 cells: 7.3 against 8.5 s; but p = 8, 32 cells (chunks of 8): 2.1–2.5 against 2.0–2.3 s,
# where the batch widens small element contractions.
ONE_BY_ONE_MIN_CELLS = 512


def _linear_system(space, kern, bd, quad, primal: bool, tables=None):
    """``(R0, K, ok)`` of a linear form (``tables``: the basis tables, when already computed);
    ``primal`` (nothing differentiates it): under ``vmap`` on a CPU the members of a space with
    many cells are assembled one after another (:func:`nmm.parallel.one_by_one_under_vmap`)."""
    if not primal or space.q_points.shape[0] < ONE_BY_ONE_MIN_CELLS:
        return _assemble(space, kern, bd, None, quad, tables=tables)

    def parts(space, kern, bd, quad, tables):
        R0, K, ok = _assemble(space, kern, bd, None, quad, tables=tables)
        return R0, K.data, ok

    R0, data, ok = one_by_one_under_vmap(parts)(space, kern, bd, quad, tables)
    return R0, operator(space, kern, data), ok


class _Condition(eqx.Module):
    """The part of a solver state that a solve without a kept factorisation reports."""

    condition: jax.Array


def _forward(kern, space, bd, quad, solver, opts, x0, keep, lsq=False):
    """The solve: ``(x, info, state, K)``; ``keep``: keep the factorisation for the derivative
    (else it is freed); ``lsq``: the form is a least-squares fit (see :mod:`nmm.refine`);
    ``K``: the assembled matrix of a linear form (``None`` after Newton)."""
    if kern.linear:
        # stable spaces refine outside (nmm.refine): the factored solve needs few steps itself.
        # Not with an iterative solver as M⁻¹: it solves to its own rtol, and on a residual at
        # round-off level (partly in the null space of the frame) it fails to converge and the
        # corrections grow (measured: CG refined by CG goes from 1e-11 to 2e-6 in four steps)
        refine = space.stable and isinstance(solver, SuperLU | DenseLU)
        # the matrix and the refinement's residuals read one set of basis tables (traced once)
        q = volume_quadrature(space) if quad is None else quad
        tables = basis_tables(space, q, kern.has_boundary_terms) if refine else None
        R0, K, ok = _linear_system(space, kern, bd, quad, primal=not keep, tables=tables)
        if not (keep or refine) and hasattr(solver, "factor_and_solve"):
            # nothing reuses the factorisation: factor, solve and free it in one host call, so
            # that a batch holds one factorisation per host thread instead of one per member
            x, code, res, its, cond = solver.factor_and_solve(K, -R0)
            state = _Condition(cond)
        else:
            state = solver.init(K)
            first = preconditioner(solver) if refine else solver
            x, code, res, its = solve_with(first.solve, state, -R0, last=not (keep or refine))
        if refine:
            # the factored solve's refinement may stall on the modes below ε: the outer
            # refinement resolves them, and its own energy rule decides
            xr, e = _refined(kern, space, bd, quad, solver, state, K, x, lsq, tables)
            usable = (code == RESULTS.successful) | (code == RESULTS.refinement_stalled)
            x = jnp.where(usable, xr, x)
            met = converged(e)
            code = jnp.where(usable, jnp.where(met, 0, RESULTS.refinement_stalled), code)
            if not keep:  # the factorisation's last use (a zero right-hand side: no work)
                # its right-hand side 0·x orders it after the refinement: callbacks without a
                # data dependency run in any order (an optimization barrier did not hold them),
                # and a factor freed early is refactored by every later solve (measured: 14
                # factorisations for one fit, 4 for one Poisson solve; now 1)
                x = x + 0.0 * solve_with(solver.solve, state, 0.0 * x, last=True)[0]
        info = SolveInfo(
            worst(_codes(R0, K, ok), code),
            res,
            its,
            getattr(state, "condition", jnp.asarray(-1.0, R0.dtype)),
            jnp.asarray(0, jnp.int32),
            jnp.zeros((0,), R0.dtype),
        )
        return x, _along(info, x), state, K

    def residual(x):
        return _assemble(space, kern, bd, x, quad, matrix=False)

    def tangent(x):
        return _assemble(space, kern, bd, x, quad)

    guess = x0 is not None
    x0 = jnp.zeros((space.n_dofs,)) if x0 is None else x0
    x, state, out = newton(residual, tangent, x0, solver, opts, keep=keep, guess=guess)
    cond = getattr(state, "condition", jnp.asarray(-1.0, x.dtype))
    info = SolveInfo(
        out["result"], out["residual"], out["iterations"], cond, out["steps"], out["history"]
    )
    return x, _along(info, x), state, None


def _along(info, x):
    """``info`` with every leaf depending on the solution ``x`` (its values unchanged): under
    ``vmap`` a leaf is then batched exactly when ``x`` is, in the forward solve and in its
    derivative rule alike. The two must agree, and the forward solve runs its members in chunks
    (:func:`chunk_under_vmap`), whose outputs all come back batched."""
    zero = jnp.sum(x[:0])
    return jax.tree_util.tree_map(lambda a: a + zero.astype(a.dtype), info)


@eqx.filter_custom_jvp
def _implicit(kern, space, bd, quad, solver, opts, x0, throw, lsq):
    return _primal((kern, space, bd, quad, solver, opts, x0, throw, lsq))


@_implicit.def_jvp
def _implicit_jvp(primals, tangents):
    # R(x*, θ) = 0: dx = −K⁻¹ (∂R/∂θ) dθ, one solve with the factorisation the forward solve holds
    # (refined against the Jacobian at x* after Newton). Reverse mode transposes this rule:
    # θ̄ = −(∂R/∂θ)ᵀ λ with Kᵀλ = x̄ (the custom_linear_solve's transpose solve). Only the data
    # (``kern``) are differentiated: the space, the boundary masks and x0 carry no derivative.
    kern, space, bd, quad, solver, opts, x0, throw, lsq = primals
    tk = tangents[0]
    if not jax.tree_util.tree_leaves(tk):
        x, info = _primal(primals)
        return (x, info), (None, _no_tangent(info))
    x, info, state, K = _forward(kern, space, bd, quad, solver, opts, x0, keep=True, lsq=lsq)
    none = _no_tangent(info)

    # dR = (∂R/∂θ) dθ at the solution: the pointwise residual's jvp in the data (linear in dθ)
    def residual(k):
        return _assemble(space, k, bd, x, quad, matrix=False)

    _, dR = eqx.filter_jvp(residual, (kern,), (tk,))
    if dR is None:  # the data that carry a tangent do not reach the residual
        x = x + 0.0 * solve_with(solver.solve, state, 0.0 * x, last=True)[0]  # free the factor
        return (x, info), (None, none)
    if kern.linear:
        ref = None  # the factored matrix itself
    else:  # the last factorisation, refined against the Jacobian at the solution
        _, K, _ = _assemble(space, kern, bd, x, quad)
        ref = K
    dx = implicit_solve(K.mv, -dR, solver, state, throw, after=x, operator=ref, last=True)
    return (x, info), (dx, none)


# Under vmap on a CPU, forward solves run a chunk of members at a time (a derivative batches as
# one program): as many as keep a chunk's matrices near this many values, 4 to 32 members. A batch
# held whole runs at the speed of memory. Measured on the 2-core machine, 64 solves with different
# coefficients (benchmarks/batch_solve.py, SuperLU, figures in the README): p = 0 with 1e4
# unknowns (7e4 values a member) was fastest in chunks of 32, p = 8 with 1 125 unknowns (3.6e5)
# in chunks of 4-8, each ~2x a Python loop where one vmap was 1.3-1.7x.
CHUNK_VALUES_UNDER_VMAP = 4_000_000


def chunk_under_vmap(space) -> int:
    """Members of a ``vmap`` of solves on ``space`` that a CPU solves at a time."""
    values = max(space.block_rows.shape[0] * space.block_size**2, 1)
    return int(np.clip(2 ** np.floor(np.log2(CHUNK_VALUES_UNDER_VMAP / values)), 4, 32))


def _primal(primals):
    space = primals[1]
    return in_chunks_under_vmap(_forward_primal, chunk_under_vmap(space))(*primals)


def _forward_primal(kern, space, bd, quad, solver, opts, x0, throw, lsq):
    x, info, _, _ = _forward(kern, space, bd, quad, solver, opts, x0, keep=False, lsq=lsq)
    return x, info


def _no_tangent(info):
    """The (symbolic zero) tangent of the solve's diagnostics."""
    return jax.tree_util.tree_map(lambda _: None, info)


def _nonfinite_datum(space, kern, bd):
    """Index (in ``kern.data_names``) of the first datum that is not finite where it is used,
    or -1: volume data at the quadrature points, boundary data where their condition holds."""
    ok_v = jax.vmap(jax.vmap(kern.data))(space.q_points)  # (n_s, n_q, n_fields)
    ok = [jnp.all(ok_v | (space.q_weights == 0)[..., None], axis=(0, 1))]
    n_d, n_n = kern.n_dirichlet, kern.n_neumann
    if space.b_elem.shape[0] > 0:
        at_points = jax.vmap(jax.vmap(kern.boundary, in_axes=(0, None)))
        gs, hs, hc, _ = at_points(space.b_points, space.b_normal)
        ok.append(jnp.all(jnp.isfinite(gs) | (masks_at_points(bd.dirichlet) == 0), axis=(0, 1, 3)))
        ok.append(jnp.all(jnp.isfinite(hs) | (masks_at_points(bd.neumann) == 0), axis=(0, 1, 3)))
        crack = space.b_crack[:, None, None]
        ok.append(jnp.all(jnp.isfinite(hc) | ~crack | (not kern.crack_flux))[None])
    else:
        ok.append(jnp.ones((n_d + n_n + 1,), bool))
    bad = ~jnp.concatenate(ok)
    return jnp.where(jnp.any(bad), jnp.argmax(bad), -1)


# result codes that a datum may be at fault for (_diagnose names it)
_SUSPECT = (RESULTS.nonfinite, RESULTS.nonfinite_rhs, RESULTS.nonfinite_matrix, RESULTS.not_elliptic)


def _diagnose(space, kern, bd, code):
    """A non-finite or non-elliptic system is traced back to the datum at fault, when one is."""
    suspect = jnp.isin(code, jnp.array(_SUSPECT))
    idx = jax.lax.cond(
        jnp.any(suspect), lambda: _nonfinite_datum(space, kern, bd), lambda: jnp.asarray(-1)
    )
    return jnp.where(suspect & (idx >= 0), RESULTS.nonfinite_data + idx, code).astype(jnp.int32)


@eqx.filter_jit
def _solve(space, form, params, bd, quad, solver, opts, x0, throw, diagnose=True):
    """The compiled solve: ``(x, info)``, unchecked (``_checked`` raises or warns); without
    ``diagnose`` a datum at fault is not named (an eager caller names it after the call, with
    ``_diagnosed``: the program then traces no diagnosis that it rarely runs)."""
    kern = bind(form, params, space.components, space.dim, space.q_points.dtype)
    if kern.linear:
        solver = _linear_solver(space, solver)
    x, info = _implicit(kern, space, bd, quad, solver, opts, x0, throw, isinstance(form, L2Fit))
    if not diagnose:
        return x, info
    # member by member under vmap: a batched cond evaluates both branches, and the data check
    # then ran for every member of every batch (0.1 s of a 64-member p = 0 batch at 1e4 unknowns);
    # the codes carry no derivative, so the data enter without one
    dyn, static = eqx.partition(kern, eqx.is_array)
    kern_value = eqx.combine(jax.lax.stop_gradient(dyn), static)
    code = one_by_one_under_vmap(_diagnose)(space, kern_value, bd, jax.lax.stop_gradient(info.result))
    info = eqx.tree_at(lambda i: i.result, info, code)
    return x, info


def _checked(x, info, form, bd, throw: bool):
    """The result codes of a solve checked: on the host after an eager call (the compiled
    program then holds no callback of its own, and JAX's persistent cache can keep it: with a
    pure-JAX solver a second run of a script compiles nothing), in the caller's program under
    its ``jit``, ``vmap`` or ``grad``."""
    messages = RESULTS.for_form(
        type(form).__name__, data_names(form), bd.has_dirichlet, type(form).newton_hint
    )
    if isinstance(info.result, jax.core.Tracer):
        if throw:
            return raise_if_failed(x, info.result, messages)
        warn_if_flagged(info.result)
        return x
    check_on_host(info.result, messages, throw)
    return x


# ------------------------------------------------------------------------------ drivers


@gc_paused
def solve(
    space: ManifoldSpace,
    problem: Form,
    params=None,
    solver=None,
    *,
    newton: Newton | None = None,
    x0=None,
    throw: bool = True,
) -> Field:
    """Solve a forward problem (any :class:`nmm.Form`: Poisson, Elasticity, your own) on ``space``.

    Linear forms are one linear solve; nonlinear forms are solved by Newton (detected from the
    form, see :mod:`nmm.kernels`). Differentiable with respect to every array the form holds and
    to ``params`` (implicit adjoint), batchable with ``vmap``.

    Args:
        space: the :class:`ManifoldSpace` (``components`` must match the form's).
        problem: the form with its boundary data.
        params: optional pytree passed to every plain data callable as ``fn(x, params)``.
        solver: ``None`` (default: :func:`default_solver`, dense LU in JAX up to 512 unknowns,
            SuperLU above), ``"direct"`` (SuperLU), ``"cholesky"`` (CHOLMOD: the extra
            ``nmm[cholmod]``), ``"cg"``, ``"amg"``, ``"petsc"``, a
            :class:`SolverOptions` or a solver object (``nmm.linalg.SuperLU()``, ``CG()``,
            ``Cholesky()``, ``AMG()``, ``BiCGStab()``, ``DenseLU()``, ``PETSc()``).
        newton: :class:`nmm.Newton` options for nonlinear forms.
        x0: initial guess ``(n_dofs,)`` for Newton (default zero).
        throw: raise on failure (default); with ``False`` the result code is in
            ``u.info.result`` (per batch member under ``vmap``).

    Returns:
        The solution :class:`Field`; ``u.info`` holds the result code, the residual, refinement
        steps, the condition estimate and the Newton history.
    """
    _check_space(space)
    _check_form(space, problem)
    solver = default_solver(space) if solver is None else as_solver(solver)
    opts = Newton() if newton is None else newton
    if not isinstance(opts, Newton):
        raise TypeError(f"newton must be an nmm.Newton, got {type(newton).__name__}")
    if x0 is not None:
        x0 = jax.lax.stop_gradient(jnp.asarray(x0, dtype=float))  # the solution does not depend on it
        if x0.shape != (space.n_dofs,):
            raise ValueError(f"x0 must have shape ({space.n_dofs},), got {x0.shape}")
    problem.check_data(params)
    bd = boundary_data(space, problem)
    x, info = _bucketed_solve(space, problem, params, bd, solver, opts, x0, bool(throw))
    return settle(Field(space, x, info))


def _constants(space):
    """``(n_covers, block_size, components)``: each cover's coefficients of the constant function
    of every component. The first cover function is the constant (Legendre P0, Fourier 1); a
    stable space's functions are L(ξ) T_c, so there the constant is T_c⁺ e_0."""
    nt, comps = space.n_terms, space.components
    e0 = np.zeros(nt)
    e0[0] = 1.0
    if space.stable:
        local = np.linalg.pinv(np.asarray(space.cover_T)) @ e0  # (n_covers, nt)
    else:
        local = np.broadcast_to(e0, (space.n_covers, nt))
    out = np.zeros((space.n_covers, comps * nt, comps))
    for i in range(comps):
        out[:, i * nt : (i + 1) * nt, i] = local
    return out


def prepared_solver(solver, space, cache=None):
    """``solver`` with its host-side setup for ``space``'s block pattern, for the solvers that
    have one (:class:`nmm.linalg.AMG`: the multigrid hierarchy's structure), made once per space
    (kept in ``cache``, default the space's own)."""
    if not isinstance(solver, AMG) or solver.prepared:
        return solver
    cache = space.host.derived if cache is None else cache
    # (the space and its padded view share the cache: the sizes tell the patterns apart)
    key = ("prepared", solver, space.n_covers, space.block_rows.shape[0])
    if key not in cache:
        # concrete arrays even when first asked for under a jit: the structure outlives it
        with jax.ensure_compile_time_eval():
            cache[key] = solver.prepare_pattern(
                space.block_rows,
                space.block_cols,
                space.n_covers,
                space.block_size,
                _constants(space),
            )
    return cache[key]


def _bucketed_solve(space, form, params, bd, solver, opts, x0, throw):
    """``_solve`` on the space padded to its size buckets (:mod:`nmm.buckets`: spaces of one
    bucket share the compiled program), the solution cut back to the space's unknowns."""
    view = solve_view(space)
    solver = prepared_solver(solver, view, cache=space.host.derived)
    if x0 is not None:
        x0 = jnp.pad(x0, (0, view.n_dofs - space.n_dofs))
    bd = pad_boundary_data(bd, view)
    out = _host_solve(view, form, params, bd, solver, x0)
    if out is None:
        eager = not _traced(view, form, params, x0)
        x, info = _solve(view, form, params, bd, None, solver, opts, x0, throw, diagnose=not eager)
        if eager and np.isin(np.asarray(info.result), _SUSPECT):
            code = _diagnosed(view, form, params, bd, info.result)
            info = eqx.tree_at(lambda i: i.result, info, code)
        out = x, info
    x, info = out
    x = _checked(x, info, form, bd, throw)
    return cut_back(x, space.n_dofs), info


# JAX's trace state outside every transformation (where nmm is imported)
_TOP_LEVEL = jax.extend.core.get_opaque_trace_state()


def _traced(*trees) -> bool:
    """Inside a transformation: a traced argument, or a trace state other than the top level's
    (the caller's ``jit``, ``vmap`` or ``grad`` running, with every input of the solve possibly
    closed over: a form's coefficient ``lambda x: k * x[0]`` with a batched ``k``)."""
    if jax.extend.core.get_opaque_trace_state() != _TOP_LEVEL:
        return True
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


@eqx.filter_jit
def _linear_system_of(space, form, params, bd, tables: bool):
    """A linear form's ``(R0, K, code, basis)`` (``code``: a non-finite or non-elliptic system;
    ``basis``: the basis tables when ``tables``, for later residuals), or ``None`` for a
    nonlinear form."""
    kern = bind(form, params, space.components, space.dim, space.q_points.dtype)
    if not kern.linear:
        return None
    basis = basis_tables(space) if tables else None
    R0, K, ok = _assemble(space, kern, bd, None, None, tables=basis)
    return R0, K, _codes(R0, K, ok), basis


@eqx.filter_jit
def _diagnosed(space, form, params, bd, code):
    kern = bind(form, params, space.components, space.dim, space.q_points.dtype)
    return _diagnose(space, kern, bd, code)


@eqx.filter_jit
def _residual_of(space, form, params, bd, x, tables):
    kern = bind(form, params, space.components, space.dim, space.q_points.dtype)
    return _assemble(space, kern, bd, x, None, matrix=False, tables=tables)


_energy_of = eqx.filter_jit(lambda K, x, dx: energy(K)(x, dx))


def _host_solve(space, form, params, bd, solver, x0):
    """The eager solve of a linear form with the host solver (SuperLU): the assembly and the
    matrix-free residuals are compiled, the factorisation and its solves run here in Python, and
    so does the outer refinement of stable spaces. The compiled programs then hold no host
    callback and JAX's persistent cache keeps them: a second run of a script compiles nothing
    (``_solve`` is one program with the solves as callbacks, which the cache cannot keep).
    ``None`` where it does not apply: under a transformation (tracers: the caller's ``jit``,
    ``vmap`` or ``grad`` needs the one program), another solver, a least-squares fit on a stable
    space (its conjugate gradients stay compiled) or a nonlinear form (Newton)."""
    if not hasattr(solver, "factor_on_host") or (space.stable and isinstance(form, L2Fit)):
        return None
    if _traced(space, form, params, x0):
        return None
    system = _linear_system_of(space, form, params, bd, bool(space.stable))
    if system is None:
        return None
    R0, K, code, basis = system
    solver = _linear_solver(space, solver)
    b = -np.asarray(R0)
    if space.stable:
        x, solved, res, its, cond = _host_refined(space, form, params, bd, solver, K, b, basis)
    else:
        x, solved, res, its, cond = solver.factor_and_solve_on_host(K, K.data, b)
    code = np.asarray(worst(code, solved))
    if np.isin(code, _SUSPECT):  # traced back to the datum at fault (a program of its own)
        code = _diagnosed(space, form, params, bd, code)
    dtype = R0.dtype
    # device_put of numpy values: jnp.asarray of a Python or numpy scalar compiles a small
    # program per process
    info = SolveInfo(
        *jax.device_put(
            (
                np.asarray(code, np.int32),
                np.asarray(res, dtype),
                np.asarray(its, dtype),
                np.asarray(cond, dtype),
                np.asarray(0, np.int32),
                np.zeros((0,), dtype),
            )
        )
    )
    return jax.device_put(np.asarray(x, dtype)), info


def _host_refined(space, form, params, bd, solver, K, b, basis):
    """``_forward``'s stable-space solve, eager: a factored solve, then the outer refinement
    with matrix-free residuals (:func:`nmm.refine.stationary`, its loop in Python)."""
    # factored with the preconditioner's options: a few refinement steps per solve, as the
    # one program's first solve and its preconditioner take
    f = preconditioner(solver).factor_on_host(K)
    x, res, its, code = f.solve(b)
    if code in (RESULTS.successful, RESULTS.refinement_stalled):
        # the iterate stays in numpy, the residual and the energy are compiled programs
        x, e = stationary(
            lambda c: _residual_of(space, form, params, bd, c, basis),
            lambda r: f.solve(r)[0],
            lambda c, d: float(_energy_of(K, c, d)),
            np.asarray(x),
            loop=python_while,
        )
        code = RESULTS.successful if converged(e) else RESULTS.refinement_stalled
    return x, code, res, its, f.condition


def assemble(space: ManifoldSpace, problem: Form, params=None, state=None):
    """The discrete system of ``problem``: ``(K, R)`` with the tangent ``K`` (a
    :class:`nmm.linalg.BlockCSR`) and the residual ``R`` at ``state`` (coefficients; default zero,
    where a linear problem reads K x = −R)."""
    _check_space(space)
    _check_form(space, problem)
    problem.check_data(params)
    bd = boundary_data(space, problem)
    if state is not None:
        state = jnp.asarray(state, dtype=float)
        if state.shape != (space.n_dofs,):
            raise ValueError(f"state must have shape ({space.n_dofs},), got {state.shape}")
    return _assemble_jit(space, problem, params, bd, state)


@eqx.filter_jit
def _assemble_jit(space, form, params, bd, state):
    kern = bind(form, params, space.components, space.dim, space.q_points.dtype)
    R, K, _ = _assemble(space, kern, bd, state)
    return K, R


@gc_paused
def fit(space: ManifoldSpace, target, params=None, solver=None, *, throw: bool = True) -> Field:
    """Best approximation of ``target`` in ``space``.

    Args:
        space: the :class:`ManifoldSpace`.
        target: data of one point (a callable ``f(x)`` / ``f(x, params)``, a field, a module;
            ``(components,)``-valued for vector spaces): the L2 projection on the space's
            quadrature; or a pair ``(points (m, dim), values (m,) / (m, n))``: least squares at
            the samples (rank-deficient when samples are too few; the solve then picks one
            minimiser).
        params: optional pytree passed to a callable target.
        solver: as in :func:`solve`.
    """
    _check_space(space)
    solver = default_solver(space) if solver is None else as_solver(solver)
    if callable(target):
        form = L2Fit(target, components=space.components)
        form.check_data(params)
        bd = boundary_data(space, form)
        x, info = _bucketed_solve(space, form, params, bd, solver, Newton(), None, bool(throw))
        return settle(Field(space, x, info))
    if not (isinstance(target, tuple | list) and len(target) == 2):
        raise TypeError(
            f"target must be a callable or a (points, values) pair, got {type(target).__name__}"
        )
    points, values = (
        v if isinstance(v, jax.Array) else real_array(v, name)
        for v, name in zip(target, ("points", "values"), strict=True)
    )
    for v, name in ((points, "points"), (values, "values")):
        if jnp.iscomplexobj(v):
            raise TypeError(f"{name} must be real numbers, got complex values of dtype {v.dtype}")
    points, values = jnp.asarray(points, dtype=float), jnp.asarray(values, dtype=float)
    if points.shape[0:1] == (0,):
        raise ValueError(
            "points: no samples given (points has shape "
            f"{tuple(points.shape)}); a fit needs at least one sample"
        )
    if space.dim == 1 and points.ndim == 1:
        points = points[:, None]
    if points.ndim != 2 or points.shape[1] != space.dim:
        raise ValueError(f"points must have shape (m, {space.dim}), got {points.shape}")
    vshape = (points.shape[0],) if space.components == 1 else (points.shape[0], space.components)
    if values.shape != vshape:
        raise ValueError(f"values must have shape {vshape} to match points, got {values.shape}")
    if not isinstance(points, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(points))):
        raise ValueError("points contains non-finite values")
    if not isinstance(values, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(values))):
        raise ValueError("values contains non-finite values")
    form = L2Fit(0.0, components=space.components)
    x, info = _fit_samples(space, form, points, values, solver, bool(throw))
    return settle(Field(space, x, info))


@eqx.filter_jit
def _fit_samples(space, form, points, values, solver, throw):
    elems = jax.vmap(lambda p: find(space.locator, space.elem_cell_data, p))(points)
    elems = eqx.error_if(elems, jnp.any(elems < 0), "points: some sample points lie outside the domain")
    quad = Quadrature(elems, points[:, None, :], jnp.ones((points.shape[0], 1), points.dtype))
    kern = bind(form, None, space.components, space.dim, points.dtype)
    bd = BoundaryData(jnp.zeros((0, 0, space.components)), jnp.zeros((0, 0, space.components)))
    _, K, _ = _assemble(space, kern, bd, None, quad, boundary=False)
    # the right-hand side Σ_i φ(x_i) y_i (K depends on the points only)
    phi, dphi = basis_at(space, elems, quad.points)
    y = values.reshape(points.shape[0], 1, space.components)
    r1 = jnp.zeros((*y.shape, space.dim), y.dtype)
    b = scatter_vector(space, elems, contract_vector(quad.weights, phi, dphi, y, r1))
    code = jnp.where(jnp.all(jnp.isfinite(b)), 0, RESULTS.nonfinite_rhs)
    sol = linear_solve(K, b, solver, throw=False)
    code = worst(code, sol.result)
    if throw:
        x = raise_if_failed(sol.value, code)
    else:
        x = sol.value  # linear_solve has warned
    zero = jnp.asarray(0, jnp.int32)
    return x, SolveInfo(code, sol.residual, sol.iterations, sol.condition, zero, jnp.zeros((0,)))


__all__ = ["solve", "fit", "assemble", "boundary_data"]
