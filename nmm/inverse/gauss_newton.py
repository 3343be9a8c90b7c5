"""Gauss–Newton / Levenberg–Marquardt on J(θ) = ½|r(θ)|² + R(θ), inside one compiled loop.

Each accepted step linearises r at θ: the Jacobian ∂r/∂θ (m × n) comes from n tangent products
(``jax.jacfwd``: one forward solve, then the tangent solves with its factorisation, batched) when
the parameters are few, else from adjoint products (``jax.jacrev``: the transpose solves with the
same factorisation, batched; :func:`jacobian`), the regulariser's gradient and Hessian from
autodiff. The step solves the normal equation

    (JᵀJ + ∇²R + μ D) δ = −(Jᵀr + ∇R),   D = diag(JᵀJ + ∇²R)

(dense, n × n: the parameters of an identification are few next to the unknowns of the forward
problem), and is accepted when J decreases. μ follows Nielsen's rule (Madsen, Nielsen & Tingleff
2004, "Methods for non-linear least squares problems"): μ ← μ·max(⅓, 1 − (2ρ − 1)³) after an
accepted step with gain ratio ρ, μ ← μν, ν ← 2ν after a rejected one. Gauss–Newton is μ₀ = 0: the
damping only appears when a full step fails to decrease J.

Stopping, in this order: non-finite objective at the start (``nonfinite``); the discrepancy
principle |r| ≤ τ√m when asked (``discrepancy``: with known noise, fitting further fits the noise);
a relative decrease or step below ``rtol`` (``converged``); μ beyond any useful size
(``stalled``); ``max_steps`` (``max_steps``). The whole loop is one ``lax.while_loop``: no
recompilation between iterations, and ``jax.vmap`` inverts a batch of data sets at once.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .parameters import as_arrays, split
from .problem import InverseProblem

STATUS = ("converged", "discrepancy", "max_steps", "stalled", "nonfinite")
_CONVERGED, _DISCREPANCY, _MAX_STEPS, _STALLED, _NONFINITE = range(5)
_RUNNING = -1


class InversionResult(eqx.Module):
    """The outcome of an inversion (per data set under ``vmap``).

    Attributes:
        theta: the identified parameters (the pytree of ``theta0``).
        status: a code into ``STATUS``: 0 converged, 1 stopped by the discrepancy principle,
            2 ``max_steps`` reached, 3 stalled (no step decreases the objective), 4 non-finite.
        steps: iterations done.
        objective: ``(max_steps + 1,)`` J(θ_k) (the rest NaN).
        misfit: ``(max_steps + 1,)`` ½|r(θ_k)|² (the rest NaN).
        residual_norm: |r| at the end, whose expected size at the truth is √m.
        data: m, the number of data.
    """

    theta: object
    status: jax.Array
    steps: jax.Array
    objective: jax.Array
    misfit: jax.Array
    residual_norm: jax.Array
    data: int = eqx.field(static=True)

    @property
    def reason(self) -> str:
        """The status in words (unbatched results)."""
        return STATUS[int(self.status)]

    @property
    def ok(self):
        """Converged or stopped by the discrepancy principle."""
        return self.status <= _DISCREPANCY

    @property
    def discrepancy_ratio(self):
        """|r| / √m: ≈ 1 when the data are fitted to their noise level."""
        return self.residual_norm / jnp.sqrt(self.data)


class _Options(NamedTuple):
    max_steps: int
    damping: float
    tau: float
    rtol: float
    discrepancy: bool
    jacobian: str


JACOBIAN_MODES = ("auto", "forward", "adjoint")


def state_size(problem, rebuild, x) -> int:
    """The number of the forward states' unknowns (a shape query: traces, never runs)."""
    return jax.eval_shape(lambda v: split(problem.states(rebuild(v)))[0], x).size


def jacobian(problem, rebuild, x, mode: str = "auto", n_state: int | None = None):
    """``(r, J)``: the whitened residual and its Jacobian ∂r/∂x: by tangent (forward-mode)
    products when the parameters are no more than the adjoint products below would be (and the
    forward map has a forward-mode derivative), else by adjoint products as follows; ``mode``
    ``"forward"`` or ``"adjoint"`` forces one; ``n_state``: :func:`state_size`, when known.

    J = (∂r/∂s)(∂s/∂x) through the forward states' unknowns s (a Field's coefficients): the
    observation part Jo = ∂r/∂s in forward mode (no solve), the solve part by adjoint products
    with cotangents in the row space of Jo — never unit vectors on coefficients, which a
    rank-deficient (stable, high-order) space cannot take as adjoint data. With fewer state
    unknowns than data (a field observed at many points), Jo = QR and J = Q (R ∂s/∂x): one
    adjoint product per state unknown instead of one per datum. Jo = U Σ Wᵀ and the adjoint data
    are the rows σ_j w_jᵀ: directions with σ_j below √ε·σ_max (the space's own dependent
    combinations, which no observation sees) are dropped rather than solved for."""

    def state_vector(v):
        st = problem.states(rebuild(v))
        return split(st)[0], st

    if mode == "auto" and n_state is None:
        n_state = state_size(problem, rebuild, x)
    if mode == "forward" or (mode == "auto" and x.size <= min(n_state, problem.size)):
        # few parameters: one tangent solve per parameter, all in one batched solve with the
        # forward factorisation, instead of an adjoint solve per datum or per state unknown
        # (source identification: 3 against 120; HInv's field: 135 against 2 628)
        def residual(v):
            r = problem.residual_of(problem.states(rebuild(v)))
            return r, r

        try:
            J, r = jax.jacfwd(residual, has_aux=True)(x)
            return r, J
        except TypeError as err:  # a user's forward map with a reverse-only rule (custom_vjp)
            if mode == "forward" or ("forward-mode" not in str(err) and "jvp" not in str(err)):
                raise

    s_vec, pullback, states = jax.vjp(state_vector, x, has_aux=True)
    rebuild_states = split(states)[1]
    r = problem.residual_of(states)
    rows = jax.vmap(lambda c: pullback(c)[0])
    observe = lambda v: problem.residual_of(rebuild_states(v))  # noqa: E731
    if s_vec.size >= r.size:
        # more state unknowns than data (a time history): the rows of Jo by m reverse products
        # (jacfwd would push one tangent per state unknown through the observation operator)
        return r, rows(jax.jacrev(observe)(s_vec))
    Jo = jax.jacfwd(observe)(s_vec)
    U, sv, Wt = jnp.linalg.svd(Jo, full_matrices=False)
    sv = jnp.where(sv > jnp.sqrt(jnp.finfo(sv.dtype).eps) * sv[0], sv, 0.0)
    return r, U @ rows(sv[:, None] * Wt)


def _linearise(problem, rebuild, x, mode: str = "auto", n_state: int | None = None):
    r, J = jacobian(problem, rebuild, x, mode, n_state)

    def reg(v):
        return problem.penalty(rebuild(v))

    if problem.regularisation:
        gR, HR = jax.grad(reg)(x), jax.hessian(reg)(x)
    else:
        gR, HR = jnp.zeros_like(x), jnp.zeros((x.size, x.size), x.dtype)
    f = 0.5 * r @ r + reg(x)
    return f, r, J, gR, HR


def _step(A, g, mu):
    """Solve (A + μ D) δ = −g with D = diag(A); a symmetric eigen-solve that treats the null
    space of an undamped singular A (dependent parameters) as a minimum-norm step."""
    d = jnp.maximum(jnp.diag(A), jnp.finfo(A.dtype).eps * jnp.max(jnp.abs(jnp.diag(A))))
    s = 1.0 / jnp.sqrt(d)
    B = s[:, None] * A * s[None, :] + mu * jnp.eye(A.shape[0], dtype=A.dtype)
    lam, Q = jnp.linalg.eigh(B)
    cut = jnp.finfo(A.dtype).eps * A.shape[0] * jnp.max(jnp.abs(lam))
    inv = jnp.where(lam > cut, 1.0 / jnp.where(lam > cut, lam, 1.0), 0.0)
    y = -(Q @ (inv * (Q.T @ (s * g))))
    return s * y


@eqx.filter_jit
def _run(problem: InverseProblem, theta0, opts: _Options):
    x0, rebuild = split(theta0)
    m = problem.size
    nan = jnp.full((opts.max_steps + 1,), jnp.nan, x0.dtype)

    def objective(x):
        r = problem.residual(rebuild(x))
        return 0.5 * r @ r + problem.penalty(rebuild(x)), r

    # the states' size once (a trace of the forward map), for both linearisations' choice
    n_state = state_size(problem, rebuild, x0) if opts.jacobian == "auto" else None
    f0, r0, J0, g0, H0 = _linearise(problem, rebuild, x0, opts.jacobian, n_state)
    status0 = jnp.where(jnp.isfinite(f0), _RUNNING, _NONFINITE)
    if opts.discrepancy:
        status0 = jnp.where((status0 == _RUNNING) & (r0 @ r0 <= opts.tau**2 * m), _DISCREPANCY, status0)
    init = dict(
        x=x0, f=f0, r=r0, J=J0, gR=g0, HR=H0, mu=jnp.asarray(opts.damping, x0.dtype),
        nu=jnp.asarray(2.0, x0.dtype), k=jnp.asarray(0), status=status0,
        fs=nan.at[0].set(f0), ms=nan.at[0].set(0.5 * r0 @ r0),
    )  # fmt: skip

    def cond(s):
        return s["status"] == _RUNNING

    def body(s):
        A = s["J"].T @ s["J"] + s["HR"]
        g = s["J"].T @ s["r"] + s["gR"]
        dx = _step(A, g, s["mu"])
        f_try, _ = objective(s["x"] + dx)
        predicted = -(g @ dx + 0.5 * dx @ (A @ dx))
        rho = (s["f"] - f_try) / jnp.where(predicted > 0, predicted, jnp.inf)
        accept = jnp.isfinite(f_try) & (f_try < s["f"])
        x_new = jnp.where(accept, s["x"] + dx, s["x"])
        # relinearise only after an accepted step (the costly part: the solves of the Jacobian)
        f, r, J, gR, HR = jax.lax.cond(
            accept,
            lambda: _linearise(problem, rebuild, x_new, opts.jacobian, n_state),
            lambda: (s["f"], s["r"], s["J"], s["gR"], s["HR"]),
        )
        scale = jnp.max(jnp.abs(jnp.diag(A)))
        mu_acc = s["mu"] * jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
        mu_rej = jnp.maximum(s["mu"] * s["nu"], 1e-6)  # μ is relative to diag(A)
        mu = jnp.where(accept, mu_acc, mu_rej)
        nu = jnp.where(accept, 2.0, 2.0 * s["nu"])
        k = s["k"] + 1
        small = (s["f"] - f) <= opts.rtol * jnp.abs(s["f"])
        small |= jnp.linalg.norm(dx) <= opts.rtol * (jnp.linalg.norm(s["x"]) + opts.rtol)
        status = jnp.asarray(_RUNNING)
        status = jnp.where(k >= opts.max_steps, _MAX_STEPS, status)
        status = jnp.where(~accept & (mu > 1e16), _STALLED, status)
        status = jnp.where(accept & small, _CONVERGED, status)
        # nothing left to gain: the model's predicted decrease (the Gauss–Newton decrement) is
        # at the objective's round-off, where a rejected step is noise, not a stall
        status = jnp.where(predicted <= opts.rtol * jnp.abs(s["f"]), _CONVERGED, status)
        if opts.discrepancy:
            status = jnp.where(accept & (r @ r <= opts.tau**2 * m), _DISCREPANCY, status)
        del scale
        return dict(
            x=x_new, f=f, r=r, J=J, gR=gR, HR=HR, mu=mu, nu=nu, k=k, status=status,
            fs=s["fs"].at[k].set(f), ms=s["ms"].at[k].set(0.5 * r @ r),
        )  # fmt: skip

    s = jax.lax.while_loop(cond, body, init)
    return InversionResult(
        rebuild(s["x"]), s["status"], s["k"], s["fs"], s["ms"], jnp.linalg.norm(s["r"]), m
    )


def _check_options(max_steps, damping, tau, rtol, jacobian="auto"):
    if jacobian not in JACOBIAN_MODES:
        raise ValueError(f"jacobian must be one of {JACOBIAN_MODES}, got {jacobian!r}")
    if isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if not (np.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping must be >= 0 (0: Gauss–Newton), got {damping!r}")
    if not (np.isfinite(tau) and tau >= 1):
        raise ValueError(f"tau must be >= 1 (the discrepancy principle's safety factor), got {tau!r}")
    if not (0 < rtol < 1):
        raise ValueError(f"rtol must be in (0, 1), got {rtol!r}")


def gauss_newton(
    problem: InverseProblem,
    theta0,
    *,
    max_steps: int = 20,
    damping: float = 0.0,
    discrepancy: bool = False,
    tau: float = 1.1,
    rtol: float = 1e-9,
    jacobian: str = "auto",
    throw: bool = True,
) -> InversionResult:
    """Minimise ``problem``'s objective from ``theta0`` by Gauss–Newton (``damping=0``, default)
    or Levenberg–Marquardt (``damping`` > 0: the initial μ, relative to diag(JᵀJ + ∇²R)).

    Args:
        problem: the :class:`InverseProblem`.
        theta0: the initial parameters (any pytree: numbers, arrays, Fields, networks).
        max_steps: iteration limit.
        discrepancy: stop as soon as |r| ≤ τ√m (Morozov's discrepancy principle; the noise
            levels of the observations must be the true ones).
        tau: the discrepancy principle's safety factor.
        rtol: converged when an accepted step decreases J by less than ``rtol·J`` or is
            shorter than ``rtol·|θ|``.
        jacobian: how ∂r/∂θ is built: ``"auto"`` (tangent solves when the parameters are no
            more than the adjoint solves would be, else adjoint solves), ``"forward"``,
            ``"adjoint"``.
        throw: raise when the objective is not finite at ``theta0`` (with the observations
            at fault named); stalls and the iteration limit are warned about, never hidden.

    Returns:
        An :class:`InversionResult` (batched under ``vmap``).
    """
    if not isinstance(problem, InverseProblem):
        raise TypeError(f"problem must be an nmm.inverse.InverseProblem, got {type(problem).__name__}")
    _check_options(max_steps, damping, tau, rtol, jacobian)
    theta0 = as_arrays(theta0)
    if split(theta0)[0].size == 0:
        raise ValueError(
            "theta0 has no unknowns (no floating-point arrays, Field coefficients or weights)"
        )
    opts = _Options(int(max_steps), float(damping), float(tau), float(rtol), bool(discrepancy), jacobian)
    out = _run(problem, theta0, opts)
    report(problem, theta0, out, throw)
    return out


def report(problem, theta0, out, throw: bool) -> None:
    """Host-side: a clear error for a non-finite start, warnings for stalls (eager runs only)."""
    status = out.status
    if isinstance(status, jax.core.Tracer) or np.ndim(status) != 0:
        return
    status = int(status)
    if status == _NONFINITE and throw:
        raise ValueError(diagnose(problem, theta0))
    if status in (_MAX_STEPS, _STALLED):
        what = (
            "reached max_steps" if status == _MAX_STEPS else "stalled (no step decreases the objective)"
        )
        final = float(out.objective[int(out.steps)])
        warnings.warn(
            f"inversion {what} after {int(out.steps)} steps: objective {final:.6g}, "
            f"|r|/√m = {float(out.discrepancy_ratio):.4g}",
            RuntimeWarning,
            stacklevel=3,
        )


def diagnose(problem: InverseProblem, theta) -> str:
    """Why the objective is not finite at ``theta``: the observations with non-finite
    predictions (points outside the forward field's domain), or the regularisation."""
    states = problem.states(theta)
    for i, (o, s) in enumerate(zip(problem.observations, states, strict=True)):
        pred = np.asarray(o.predict(s))
        bad = ~np.isfinite(pred)
        if bad.any():
            first = int(np.argmax(bad))
            where = ""
            if o.points is not None:
                per = max(pred.size // o.points.shape[0], 1)
                where = f" at x = {np.asarray(o.points)[first // per].tolist()}"
            return (
                f"observations[{i}]: {int(bad.sum())} of {pred.size} predictions are not finite "
                f"(first: datum {first}{where}); point observations outside the domain give NaN"
            )
    pen = float(problem.penalty(theta))
    if not np.isfinite(pen):
        return f"regularisation: not finite at theta0 ({pen})"
    return "the objective is not finite at theta0"
