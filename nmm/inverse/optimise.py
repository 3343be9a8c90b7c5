"""First-order and quasi-Newton inversion with optax: Adam, L-BFGS or any transformation.

Each step costs one forward solve and one adjoint solve (``jax.value_and_grad`` of the
objective; L-BFGS's line search adds evaluations). The loop is one ``lax.while_loop`` inside one
compiled program, so nothing recompiles between iterations and ``jax.vmap`` runs a batch of
inversions (data sets, initial guesses) at once. Use it where the Jacobian of Gauss–Newton is too
large (many parameters and many data: an MLP coefficient), or to compare optimisers.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .gauss_newton import (
    _CONVERGED,
    _DISCREPANCY,
    _MAX_STEPS,
    _NONFINITE,
    _RUNNING,
    InversionResult,
    _check_options,
    report,
)
from .parameters import as_arrays, split
from .problem import InverseProblem

OPTIMIZERS = ("adam", "lbfgs")


class _Options(NamedTuple):
    steps: int
    tau: float
    rtol: float
    discrepancy: bool
    lbfgs: bool


def _transformation(optimizer, learning_rate):
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer, False
    return _named(optimizer, float(learning_rate))


@functools.lru_cache(maxsize=32)
def _named(optimizer, learning_rate):
    # cached: optax builds new closures on every call, and new closures would recompile the loop
    if optimizer == "adam":
        return optax.adam(learning_rate), False
    if optimizer == "lbfgs":
        return optax.lbfgs(), True
    raise ValueError(
        f"optimizer must be one of {OPTIMIZERS} or an optax.GradientTransformation, got {optimizer!r}"
    )


@eqx.filter_jit
def _run(problem: InverseProblem, theta0, tx, opts: _Options):
    x0, rebuild = split(theta0)
    m = problem.size
    nan = jnp.full((opts.steps + 1,), jnp.nan, x0.dtype)

    def objective(x):
        return problem.objective(rebuild(x))

    def objective_and_misfit(x):  # one forward solve for both
        theta = rebuild(x)
        r = problem.residual(theta)
        r2 = r @ r
        return 0.5 * r2 + problem.penalty(theta), r2

    value_and_grad = (
        optax.value_and_grad_from_state(objective) if opts.lbfgs else jax.value_and_grad(objective)
    )
    state0 = tx.init(x0)
    f0, r2 = objective_and_misfit(x0)
    status0 = jnp.where(jnp.isfinite(f0), _RUNNING, _NONFINITE)
    init = (x0, state0, jnp.asarray(0), status0, nan.at[0].set(f0), nan.at[0].set(0.5 * r2), r2)

    def cond(s):
        return s[3] == _RUNNING

    def body(s):
        x, st, k, _, fs, ms, _ = s
        if opts.lbfgs:
            f, g = value_and_grad(x, state=st)
            upd, st = tx.update(g, st, x, value=f, grad=g, value_fn=objective)
        else:
            f, g = value_and_grad(x)
            upd, st = tx.update(g, st, x)
        x_new = optax.apply_updates(x, upd)
        f_new, r2 = objective_and_misfit(x_new)
        k = k + 1
        status = jnp.where(k >= opts.steps, _MAX_STEPS, _RUNNING)
        status = jnp.where(jnp.isfinite(f_new), status, _NONFINITE)
        if opts.lbfgs:  # a quasi-Newton method's decrease is a convergence test; Adam's is not
            status = jnp.where(jnp.abs(f - f_new) <= opts.rtol * jnp.abs(f), _CONVERGED, status)
        if opts.discrepancy:
            status = jnp.where(r2 <= opts.tau**2 * m, _DISCREPANCY, status)
        return x_new, st, k, status, fs.at[k].set(f_new), ms.at[k].set(0.5 * r2), r2

    x, _, k, status, fs, ms, r2 = jax.lax.while_loop(cond, body, init)
    return InversionResult(rebuild(x), status, k, fs, ms, jnp.sqrt(r2), m)


def minimise(
    problem: InverseProblem,
    theta0,
    *,
    optimizer="lbfgs",
    steps: int = 200,
    learning_rate: float = 1e-2,
    discrepancy: bool = False,
    tau: float = 1.1,
    rtol: float = 1e-12,
    throw: bool = True,
) -> InversionResult:
    """Minimise ``problem``'s objective from ``theta0`` with optax.

    Args:
        problem: the :class:`InverseProblem`.
        theta0: the initial parameters (numbers, arrays, Fields, networks).
        optimizer: ``"lbfgs"`` (default; optax's L-BFGS with its zoom line search), ``"adam"``
            or any ``optax.GradientTransformation`` (one taking the loss, like L-BFGS, should be
            given as ``"lbfgs"``).
        steps: iteration limit.
        learning_rate: Adam's step size.
        discrepancy, tau: stop when |r| ≤ τ√m.
        rtol: L-BFGS stops when a step decreases J by less than ``rtol·J``.
        throw: raise when the objective is not finite at ``theta0``.

    Returns:
        An :class:`InversionResult`; ``max_steps`` and a non-finite objective are reported.
    """
    if not isinstance(problem, InverseProblem):
        raise TypeError(f"problem must be an nmm.inverse.InverseProblem, got {type(problem).__name__}")
    _check_options(steps, 0.0, tau, rtol)
    tx, lbfgs = _transformation(optimizer, learning_rate)
    theta0 = as_arrays(theta0)
    if split(theta0)[0].size == 0:
        raise ValueError(
            "theta0 has no unknowns (no floating-point arrays, Field coefficients or weights)"
        )
    opts = _Options(int(steps), float(tau), float(rtol), bool(discrepancy), lbfgs)
    out = _run(problem, theta0, tx, opts)
    report(problem, theta0, out, throw)
    return out
