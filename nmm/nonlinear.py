"""Newton's method for nonlinear forms, inside jit: autodiff Jacobian, backtracking line search,
residual history, result codes instead of exceptions (so it batches under vmap).

The converged solution is differentiated implicitly by the caller (one adjoint solve with the
Jacobian at the solution, reusing the last factorisation), never by unrolling these iterations.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .linalg.results import RESULTS, worst
from .linalg.solve import init_state, solve_with


class Newton(eqx.Module):
    """Newton options.

    Attributes:
        rtol, atol: converged when |R(x_k)| <= rtol |R(x_0)| + atol, or when a full step changes x
            by at most ``xtol`` |x| (the update is at round-off), or, from a given initial guess,
            when |R(x_k)| is at the round-off floor of the residual, 100 ε |R(0)| (a good guess
            has a small |R(x_0)|: rtol times it may lie below that floor).
        xtol: see above.
        max_steps: Newton iterations at most.
        line_search: backtrack (halving) until |R| decreases by a factor 1 - 1e-4 α.
        max_backtracks: halvings at most per step.
        refactor_every: factor the Jacobian every this many steps (1: Newton; k > 1 reuses a
            factorisation for k steps; 0: only once, at the initial guess — the chord method).
    """

    rtol: float = eqx.field(static=True, default=1e-10)
    atol: float = eqx.field(static=True, default=0.0)
    xtol: float = eqx.field(static=True, default=1e-12)
    max_steps: int = eqx.field(static=True, default=30)
    line_search: bool = eqx.field(static=True, default=True)
    max_backtracks: int = eqx.field(static=True, default=12)
    refactor_every: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        for name in ("rtol", "atol", "xtol"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and v >= 0):
                raise ValueError(f"newton.{name} must be a number >= 0, got {v!r}")
        if int(self.max_steps) != self.max_steps or self.max_steps < 1:
            raise ValueError(f"newton.max_steps must be a positive integer, got {self.max_steps!r}")
        if int(self.refactor_every) != self.refactor_every or self.refactor_every < 0:
            raise ValueError(
                f"newton.refactor_every must be an integer >= 0, got {self.refactor_every!r}"
            )


def newton(residual, tangent, x0, solver, opts: Newton, keep: bool = True, guess: bool = False):
    """Solve R(x) = 0.

    Args:
        residual: ``x -> R (n,)``.
        tangent: ``x -> (R, K: BlockCSR, ok: bool)``.
        x0: initial guess.
        solver: a linear solver object.
        keep: keep the last factorisation (for the adjoint); otherwise every factorisation is
            freed after its last use.
        guess: ``x0`` is a given initial guess (the round-off floor is read from |R(0)|).

    Returns:
        ``x, state`` (the last factorisation), and a dict with ``result``, ``residual`` and
        ``iterations`` of the last linear solve, ``steps`` and ``history`` (|R(x_k)|).
    """
    R0 = residual(x0)
    # the loop factors at its first step, so the program holds one tangent assembly: the state
    # it carries starts as a placeholder of the right structure (handle 0 is never a factor)
    shapes = jax.eval_shape(lambda y: solver.init(tangent(y)[1]), x0)
    state0 = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
    r0 = jnp.linalg.norm(R0)
    tol = opts.rtol * r0 + opts.atol
    if guess:  # the residual's sums carry round-off of the size of its terms, ~ ε |R(0)|
        floor = 100 * jnp.finfo(x0.dtype).eps * jnp.linalg.norm(residual(jnp.zeros_like(x0)))
        tol = jnp.maximum(tol, floor)
    dtype = x0.dtype
    hist0 = jnp.zeros((opts.max_steps + 1,), dtype).at[0].set(r0)
    finite0 = jnp.all(jnp.isfinite(R0))
    code0 = jnp.where(finite0, RESULTS.successful, RESULTS.nonfinite_rhs).astype(jnp.int32)
    zero = jnp.asarray(0.0, dtype)
    max_evals = opts.max_backtracks + 1 if opts.line_search else 1

    def cond(c):
        # at least one step, even from a converged guess: the adjoint needs a factorisation
        k, _, _, rn, _, _, code, done, _, _, _ = c
        return (k == 0) | ((~done) & (k < opts.max_steps) & (code == RESULTS.successful))

    def body(c):
        k, x, R, rn, state, hist, code, _, ok, _, _ = c
        every = opts.refactor_every
        refactor = (k == 0) | ((k % every == 0) if every >= 1 else False)

        def new_state(_):
            _, K, ok_ = tangent(x)
            return init_state(solver, K, release=state), ok_

        state, ok = jax.lax.cond(refactor, new_state, lambda _: (state, ok), None)
        # with a factorisation per step, each is used once: free it unless the adjoint needs it
        last = (not keep) and opts.refactor_every == 1
        dx, lcode, lres, lits = solve_with(solver.solve, state, -R, last=last)
        dx = jnp.where(jnp.isfinite(dx), dx, 0.0)

        def decreased(a, rn_new):
            return jnp.isfinite(rn_new) & (rn_new <= (1 - 1e-4 * a) * rn)

        # backtracking line search, written as one loop (full step first, then halvings) so
        # that the program holds one residual assembly
        def ls_cond(s):
            a, _, _, rn_new, evals = s
            return (evals == 0) | ((~decreased(a, rn_new)) & (evals < max_evals))

        def ls_body(s):
            a, _, _, _, evals = s
            a = jnp.where(evals == 0, 1.0, 0.5 * a).astype(dtype)
            xa = x + a * dx
            Ra = residual(xa)
            return a, xa, Ra, jnp.linalg.norm(Ra), evals + 1

        start = (jnp.asarray(1.0, dtype), x, R, jnp.asarray(jnp.inf, dtype), 0)
        alpha, x1, R1, r1, _ = jax.lax.while_loop(ls_cond, ls_body, start)
        if opts.line_search:
            failed = ~decreased(alpha, r1) & (rn > tol)
        else:
            failed = ~jnp.isfinite(r1)
        step_small = (alpha == 1.0) & (
            jnp.linalg.norm(dx) <= opts.xtol * jnp.maximum(jnp.linalg.norm(x1), 1e-300)
        )
        done = (r1 <= tol) | step_small
        code = worst(
            # an inner solve whose refinement stalled is still a good Newton direction; one
            # whose residual is poor relative to a right-hand side at round-off (the last step
            # of a converged iteration) is judged by the nonlinear residual it reached
            jnp.where(RESULTS.failed(lcode) & ~done, lcode, RESULTS.successful),
            jnp.where(failed & ~done, RESULTS.line_search_failed, RESULTS.successful),
        )
        # a failed step keeps the last good iterate: never a NaN
        stay = failed & ~done
        x_new = jnp.where(stay, x, x1)
        R_new = jnp.where(stay, R, R1)
        r_new = jnp.where(stay, rn, r1)
        hist = hist.at[k + 1].set(r_new)
        return k + 1, x_new, R_new, r_new, state, hist, code, done, ok, lres, lits

    init = (0, x0, R0, r0, state0, hist0, code0, r0 <= tol, jnp.asarray(True), zero, zero)
    k, x, R, rn, state, hist, code, done, ok, lres, lits = jax.lax.while_loop(cond, body, init)
    code = worst(
        code,
        jnp.where(done, RESULTS.successful, RESULTS.max_steps_reached),
        jnp.where(ok, RESULTS.successful, RESULTS.not_elliptic),
    )
    return (
        x,
        state,
        {
            "result": code,
            "residual": lres,
            "iterations": lits,
            "steps": jnp.asarray(k, jnp.int32),
            "history": hist,
        },
    )
