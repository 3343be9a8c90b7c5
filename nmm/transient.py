"""Time integration of M u' + R(u, t) = 0 (and M u'' + R(u, t) = 0) on any space, inside
``lax.scan``.

R is the weak residual of any :class:`nmm.Form` (its boundary terms included) and M the mass
matrix of the space. The form's data are called with the time as ``params``: ``f(x, t)``,
``dirichlet=lambda x, t: ...``.

One step of every method solves G(x) = (a/Δt) M x + θ R(x, t₁) − b = 0 for the new state x,
with b from earlier states:

* backward Euler ``"be"`` (a = 1, θ = 1), order 1, L-stable;
* Crank–Nicolson ``"cn"`` (a = 1, θ = ½, b carries −½ R(xₙ, tₙ)), order 2, A-stable, not
  L-stable, so its first step is Rannacher's: two backward Euler half steps (the same matrix, up
  to a factor 2), which damp the stiff modes of the initial state that would otherwise ring and
  cost the order;
* BDF2 ``"bdf2"`` (a = 3/2, θ = 1, b = M(2xₙ − ½xₙ₋₁)/Δt), order 2, L-stable, started by one
  backward Euler step;
* Newmark average acceleration ``"newmark"`` (β = ¼, γ = ½) for M ü + R(u, t) = 0: order 2,
  unconditionally stable, energy conserving for linear R.

When the form is linear and its tangent does not depend on t (read off the form's jaxpr), the
matrix (a/Δt) M + θ K is factored once, before the loop, and every step is one solve with that
factorisation (counted by ``nmm.linalg.factorisations``). Otherwise each step is a Newton solve
(:class:`nmm.Newton` options), started from the previous state.

Gradients: a fixed-matrix history is differentiated through the scan by reverse mode, each step's
solve by its adjoint (a transpose solve with the same factorisation), with the step body
checkpointed (``jax.checkpoint``): memory is one state per step, not the solver's internals.
Forward mode (``jax.jvp``, ``jax.jacfwd``) runs each step's tangent solve with the same
factorisation alongside the step.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .assembly import assemble as _assemble
from .assembly import basis_at
from .drivers import _check_form, _check_space, boundary_data, prepared_solver
from .field import Field
from .forms.analysis import zero_outputs
from .forms.base import Form
from .forms.fit import L2Fit
from .kernels import bind
from .linalg.operator import BlockCSR
from .linalg.results import RESULTS, settle, worst
from .linalg.solve import as_solver, implicit_solve, linear_solve, raise_if_failed
from .nonlinear import Newton, newton

FIRST_ORDER = ("be", "cn", "bdf2")
METHODS = (*FIRST_ORDER, "newmark")


class History(eqx.Module):
    """A computed time history.

    Attributes:
        space: the space.
        times: ``(n_saved,)`` the saved times (the initial time first).
        coeffs: ``(n_saved, n_dofs)`` the states at those times.
        velocities: ``(n_saved, n_dofs)`` du/dt (``"newmark"`` only; else ``None``).
        newton_steps: ``(steps,)`` Newton iterations per step (0 where a step was one solve).
        result: the worst result code over the steps (0: all succeeded).
        fixed_matrix: whether the step matrix was factored once.
    """

    space: object
    times: jax.Array
    coeffs: jax.Array
    velocities: jax.Array | None
    newton_steps: jax.Array
    result: jax.Array
    fixed_matrix: bool = eqx.field(static=True)

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def field(self, i: int = -1) -> Field:
        """The state saved at index ``i`` as a :class:`Field` (default the last)."""
        return Field(self.space, self.coeffs[i])

    @property
    def final(self) -> Field:
        return self.field(-1)

    def at(self, x, t):
        """Values at space-time points ``x (m, dim)``, ``t (m,)`` (1D also ``x (m,)``), linear
        in t between the saved states (exact at saved times; second order in the saving
        interval, like the integrators). Jit-, vmap- and grad-able; NaN outside the domain or
        outside [first, last saved time]."""
        pts, _ = self.final._points(x)
        t = jnp.asarray(t, dtype=pts.dtype).reshape(-1)
        if t.shape[0] != pts.shape[0]:
            raise ValueError(f"t must have one time per point ({pts.shape[0]}), got shape {t.shape}")
        if self.times.shape[-1] < 2:
            raise ValueError("History.at needs at least two saved states")
        return _history_at(self, pts, t)


@eqx.filter_jit
def _history_at(hist: History, pts, t):
    sp, times = hist.space, hist.times
    i = jnp.clip(jnp.searchsorted(times, t, side="right") - 1, 0, times.shape[0] - 2)
    w = (t - times[i]) / (times[i + 1] - times[i])
    elems = hist.final.elements(pts)
    e = jnp.maximum(elems, 0)
    phi, _ = basis_at(sp, e, pts[:, None, :])
    n, nt = sp.components, sp.n_terms
    m = pts.shape[0]
    dofs = sp.elem_dofs[e]

    def value(c):  # (m, L) coefficients at each point's element
        c = c.reshape(m, -1, n, nt)
        return jnp.einsum("mvt,mvct->mc", phi[:, 0].reshape(m, -1, nt), c)

    v = (1 - w)[:, None] * value(hist.coeffs[i[:, None], dofs]) + w[:, None] * value(
        hist.coeffs[i[:, None] + 1, dofs]
    )
    ok = (elems >= 0) & (t >= times[0] - 1e-12) & (t <= times[-1] + 1e-12)
    v = jnp.where(ok[:, None], v, jnp.nan)
    return v[:, 0] if n == 1 else v


# ------------------------------------------------------------------------------ checks


def check_t_span(t_span) -> tuple[float, float]:
    """``(t0, t1)`` as floats, finite with t1 > t0, or a clear error naming ``t_span``."""
    try:
        t0, t1 = (float(v) for v in t_span)
    except (TypeError, ValueError) as err:
        raise TypeError(f"t_span must be a pair (t0, t1) of numbers, got {t_span!r}") from err
    if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
        raise ValueError(f"t_span must be finite with t1 > t0, got {t_span!r}")
    return t0, t1


def _check_step(dt, name: str) -> float:
    """A step size: a positive finite number, or a clear error naming ``name``."""
    if isinstance(dt, bool) or not isinstance(dt, int | float | np.floating | np.integer):
        raise TypeError(f"{name} must be a number, got {type(dt).__name__}")
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"{name} must be a positive finite number, got {dt!r}")
    return float(dt)


def _check_time(t_span, dt):
    t0, t1 = check_t_span(t_span)
    _check_step(dt, "dt")
    steps = round((t1 - t0) / dt)
    if steps < 1 or abs(steps * dt - (t1 - t0)) > 1e-9 * (t1 - t0):
        raise ValueError(
            f"dt={dt!r} must divide the interval t_span={t_span!r} (length {t1 - t0!r}) into a "
            "whole number of steps"
        )
    return t0, float(dt), int(steps)


def _initial(space, u0, name: str):
    """Coefficients of the initial state: a field on ``space``, coefficients, or data (projected
    in L2)."""
    if u0 is None:
        return jnp.zeros((space.n_dofs,))
    if isinstance(u0, Field):
        # the same space, also after a pytree round trip (jit, an inversion's rebuild), which
        # makes a new space object around the same host-side geometry
        if u0.space is not space and u0.space.host is not space.host:
            raise ValueError(f"{name}: the field lives on another space; project it with nmm.fit")
        return jnp.asarray(u0.coeffs, float)
    if callable(u0):
        from .drivers import fit

        return fit(space, u0).coeffs
    x = jnp.asarray(u0, float)
    if x.shape != (space.n_dofs,):
        raise ValueError(
            f"{name} must be a callable of x, an nmm.Field or coefficients of shape "
            f"({space.n_dofs},), got shape {x.shape}"
        )
    return x


def fixed_tangent(form: Form, space) -> bool:
    """Whether the form is linear with a tangent that does not depend on the time (its data's
    ``params``): read off the jaxpr of ∂(tangent)/∂t at one point, no numbers compared."""
    kern = bind(form, jnp.zeros(()), space.components, space.dim, space.q_points.dtype)
    if not kern.linear:
        return False
    n, dim = space.components, space.dim
    xe, ue, due = jnp.zeros((dim,)), jnp.zeros((n,)), jnp.zeros((n, dim))

    def tangent(t):
        k = bind(form, t, n, dim, xe.dtype)
        flux_t = jax.jacfwd(lambda u, du: k.volume(xe, u, du), argnums=(0, 1))(ue, due)
        s = k.boundary(xe, xe)[3]  # the penalty scale enters the boundary matrix
        return flux_t, s

    dt = jax.make_jaxpr(lambda t: jax.jacfwd(tangent)(t))(jnp.zeros(()))
    return all(zero_outputs(dt))


# ------------------------------------------------------------------------------ kernels


def _combine(a, A: BlockCSR, b, B: BlockCSR) -> BlockCSR:
    """a A + b B for two matrices of one space (the same block pattern)."""
    return BlockCSR(a * A.data + b * B.data, A.rows, A.cols, A.pattern, A.symmetric and B.symmetric)


def _mass(space):
    kern = bind(L2Fit(0.0, components=space.components), None, space.components, space.dim)
    _, M, _ = _assemble(space, kern, None, None, boundary=False)
    return M


@eqx.filter_jit
def _run(space, form, bd, x0, v0, t0, dt, n_saves, every, method, fixed, solver, opts, throw):
    n, dim = space.components, space.dim
    M = _mass(space)

    def kern_at(t):
        return bind(form, t, n, dim, space.q_points.dtype)

    def R(x, t):
        return _assemble(space, kern_at(t), bd, x, matrix=False)

    def RK(x, t):
        return _assemble(space, kern_at(t), bd, x)

    if method == "newmark":
        return _newmark(space, M, R, RK, x0, v0, t0, dt, n_saves, every, fixed, solver, opts, throw)

    # every step solves (α/Δt) M y + c R(y, t₁) = b: (α, c) of the regular steps and of the
    # start (BDF2's backward Euler step; Crank–Nicolson's two backward Euler half steps)
    main = {"be": (1.0, 1.0), "cn": (1.0, 0.5), "bdf2": (1.5, 1.0)}[method]
    start = {"be": main, "cn": (2.0, 1.0), "bdf2": (1.0, 1.0)}[method]
    systems = []  # (α / c, A, factorisation, c of A): one per distinct matrix
    if fixed:
        _, K, _ = RK(jnp.zeros_like(x0), t0)
        for alpha, c in (main, start):
            # a system proportional to one already factored reuses it (Crank–Nicolson's half
            # steps: 2M/Δt + K is twice M/Δt + K/2)
            if not any(math.isclose(alpha / c, r) for r, *_ in systems):
                A = _combine(alpha / dt, M, c, K)
                systems.append((alpha / c, A, solver.init(A), c))

    def implicit(alpha, c_k, b, t1, guess):
        """Solve (α/Δt) M y + c_k R(y, t₁) = b: ``(y, result, Newton steps)``."""
        c_m = alpha / dt
        if fixed:
            _, A, st, ck = next(v for v in systems if math.isclose(alpha / c_k, v[0]))
            rhs = (b - c_k * R(jnp.zeros_like(b), t1)) * (ck / c_k)
            sol = linear_solve(A, rhs, solver, state=st, throw=False)
            return sol.value, sol.result, jnp.asarray(0, jnp.int32)

        # the solution does not depend on the guess (stop_gradient: no tangent to carry)
        guess = jax.lax.stop_gradient(guess)
        return _root((form, b, c_m, c_k, t1), space, bd, M, guess, solver, opts)

    def regular(x, xm, t):
        if method == "be":
            b = M.mv(x) / dt
        elif method == "cn":
            b = M.mv(x) / dt - 0.5 * R(x, t)
        else:
            b = M.mv(2.0 * x - 0.5 * xm) / dt
        return implicit(*main, b, t + dt, x)

    def first(x, xm, t):
        if method != "cn":
            return implicit(*start, M.mv(x) / dt, t + dt, x)
        # Rannacher's start: two backward Euler half steps damp the stiff modes of the initial
        # state that Crank–Nicolson alone would carry undamped (and lose its order to)
        y, c1, s1 = implicit(*start, 2 * M.mv(x) / dt, t + dt / 2, x)
        y, c2, s2 = implicit(*start, 2 * M.mv(y) / dt, t + dt, y)
        return y, worst(c1, c2), s1 + s2

    def step(carry, k):
        x, xm, t, code, _ = carry
        if method == "be":
            y0, c0, s0 = regular(x, xm, t)
        else:
            y0, c0, s0 = jax.lax.cond(k == 0, first, regular, x, xm, t)
        failed = RESULTS.failed(c0)
        y = jnp.where(failed, x, y0)  # a failed step keeps the last good state: never a NaN
        return (y, x, t + dt, worst(code, c0), s0), s0

    step = jax.checkpoint(step)

    def save(carry, k0):
        carry, steps = jax.lax.scan(step, carry, k0 + jnp.arange(every))
        return carry, (carry[0], carry[2], steps)

    zero = jnp.asarray(0, jnp.int32)
    init = (x0, x0, t0, zero, zero)
    (x, _, _, code, _), (xs, ts, steps) = jax.lax.scan(save, init, jnp.arange(n_saves) * every)
    xs = jnp.concatenate([x0[None], xs])
    ts = jnp.concatenate([t0[None], ts])
    if throw:
        xs = raise_if_failed(xs, code, _messages())
    return xs, None, ts, steps.reshape(-1), code


def _step_system(space, bd, M, diff):
    """``G(y) = c_m M y + c_k R(y, t₁) − b`` and its tangent, for ``diff = (form, b, c_m, c_k,
    t₁)``."""
    form, b, c_m, c_k, t1 = diff
    kern = bind(form, t1, space.components, space.dim, space.q_points.dtype)

    def G(y):
        return c_m * M.mv(y) + c_k * _assemble(space, kern, bd, y, matrix=False) - b

    def tangent(y):
        r, K, ok = _assemble(space, kern, bd, y)
        return c_m * M.mv(y) + c_k * r - b, _combine(c_m, M, c_k, K), ok

    return G, tangent


@eqx.filter_custom_jvp
def _root(diff, space, bd, M, guess, solver, opts):
    """One nonlinear step by Newton: ``(y, result, steps)``. Differentiated implicitly, in
    forward and reverse mode: the tangent of G(y*, θ) = 0 is one solve with its tangent at y*
    (reverse mode: its transpose), never the unrolled iterations (a while loop, which reverse mode
    cannot run through)."""
    return _root_primal((diff, space, bd, M, guess, solver, opts))


@_root.def_jvp
def _root_jvp(primals, tangents):
    # dy = −A⁻¹ (∂G/∂θ) dθ with A the tangent at y*, factored afresh (Newton's last factorisation
    # is of an earlier iterate, or none when the guess already solves); reverse mode transposes
    # it into θ̄ = −(∂G/∂θ)ᵀ λ, Aᵀλ = ȳ
    diff, space, bd, M, guess, solver, opts = primals
    y, code, steps = _root_primal(primals)
    t_diff = tangents[0]
    _, dG = eqx.filter_jvp(lambda d: _step_system(space, bd, M, d)[0](y), (diff,), (t_diff,))
    if dG is None:
        return (y, code, steps), (None, None, None)
    _, A, _ = _step_system(space, bd, M, diff)[1](y)
    dy = implicit_solve(A.mv, -dG, solver, solver.init(A), True, after=y, last=True)
    return (y, code, steps), (dy, None, None)


def _root_primal(primals):
    diff, space, bd, M, guess, solver, opts = primals
    G, tangent = _step_system(space, bd, M, diff)
    y, _, out = newton(G, tangent, guess, solver, opts, keep=False)
    return y, out["result"], out["steps"]


def _newmark(space, M, R, RK, x0, v0, t0, dt, n_saves, every, fixed, solver, opts, throw):
    """Newmark average acceleration for M ü + R(u, t) = 0."""
    beta, gamma = 0.25, 0.5
    a0 = linear_solve(M, -R(x0, t0), solver, throw=False)
    if fixed:
        _, K, _ = RK(jnp.zeros_like(x0), t0)
        A = _combine(1.0, M, beta * dt * dt, K)
        state = solver.init(A)

    def step(carry, _):
        u, v, a, t, code = carry
        t1 = t + dt
        pred = u + dt * v + (0.5 - beta) * dt * dt * a  # u₁ = pred + β Δt² a₁
        if fixed:
            sol = linear_solve(A, -R(pred, t1), solver, state=state, throw=False)
            a1, c1, s1 = sol.value, sol.result, jnp.asarray(0, jnp.int32)
        else:

            def G(y):
                return M.mv(y) + R(pred + beta * dt * dt * y, t1)

            def tangent(y):
                r, K, ok = RK(pred + beta * dt * dt * y, t1)
                return M.mv(y) + r, _combine(1.0, M, beta * dt * dt, K), ok

            a1, _, out = newton(G, tangent, a, solver, opts, keep=False)
            c1, s1 = out["result"], out["steps"]
        failed = RESULTS.failed(c1)
        u1 = pred + beta * dt * dt * a1
        v1 = v + dt * ((1 - gamma) * a + gamma * a1)
        keep = lambda new, old: jnp.where(failed, old, new)  # noqa: E731
        return (keep(u1, u), keep(v1, v), keep(a1, a), t1, worst(code, c1)), s1

    step = jax.checkpoint(step)

    def save(carry, _):
        carry, steps = jax.lax.scan(step, carry, None, length=every)
        return carry, (carry[0], carry[1], carry[3], steps)

    code0 = a0.result.astype(jnp.int32)
    init = (x0, v0, a0.value, t0, code0)
    (_, _, _, _, code), (us, vs, ts, steps) = jax.lax.scan(save, init, None, length=n_saves)
    us = jnp.concatenate([x0[None], us])
    vs = jnp.concatenate([v0[None], vs])
    ts = jnp.concatenate([t0[None], ts])
    if throw:
        us = raise_if_failed(us, code, _messages())
    return us, vs, ts, steps.reshape(-1), code


def _messages():
    return tuple(m and f"time step failed: {m} (the last good state is kept)" for m in RESULTS.messages)


# ------------------------------------------------------------------------------ driver


def integrate(
    space,
    form: Form,
    u0,
    t_span,
    dt,
    *,
    method: str = "bdf2",
    v0=None,
    save_every: int = 1,
    solver=None,
    newton: Newton | None = None,
    throw: bool = True,
) -> History:
    """Integrate M u' + R(u, t) = 0 (``method="newmark"``: M u'' + R(u, t) = 0) over ``t_span``.

    Args:
        space: the :class:`ManifoldSpace`.
        form: the spatial operator: any :class:`nmm.Form` (``Poisson`` for the heat and wave
            equations, ``AllenCahn``, ``Burgers``, ...); its data are called as ``fn(x, t)``.
        u0: the initial state: a callable of x (projected in L2), an :class:`nmm.Field` on
            ``space`` or coefficients.
        t_span: ``(t0, t1)``.
        dt: the step, > 0, dividing ``t1 − t0`` into a whole number of steps.
        method: ``"be"``, ``"cn"``, ``"bdf2"`` or ``"newmark"``.
        v0: the initial velocity for ``"newmark"`` (same kinds as ``u0``; default zero).
        save_every: keep every this many steps (the initial state is always kept).
        solver: the linear solver (as in :func:`nmm.solve`).
        newton: :class:`nmm.Newton` options for steps that are nonlinear solves.
        throw: raise when a step fails (default); with ``False`` the worst result code is in
            ``History.result`` and the history holds the last good state from the failed step on.

    Returns:
        A :class:`History`.
    """
    _check_space(space)
    _check_form(space, form)
    t0, dt, steps = _check_time(t_span, dt)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(save_every, bool) or int(save_every) != save_every or save_every < 1:
        raise ValueError(f"save_every must be a positive integer, got {save_every!r}")
    if steps % int(save_every):
        raise ValueError(f"save_every={save_every} must divide the number of steps ({steps})")
    if v0 is not None and method != "newmark":
        raise ValueError(f"v0 is the initial velocity of method='newmark', not of {method!r}")
    opts = Newton() if newton is None else newton
    if not isinstance(opts, Newton):
        raise TypeError(f"newton must be an nmm.Newton, got {type(newton).__name__}")
    solver = prepared_solver(as_solver(solver), space)
    form.check_data(jnp.asarray(t0))
    bd = boundary_data(space, form, check=False)  # M u' fixes what R leaves free
    x0 = _initial(space, u0, "u0")
    v = _initial(space, v0, "v0") if method == "newmark" else None
    fixed = fixed_tangent(form, space)
    every = int(save_every)
    xs, vs, ts, nsteps, code = _run(
        space,
        form,
        bd,
        x0,
        v,
        jnp.asarray(t0, float),
        jnp.asarray(dt, float),  # traced: a new step size reuses the compiled program
        steps // every,
        every,
        method,
        fixed,
        solver,
        opts,
        bool(throw),
    )
    return settle(History(space, ts, xs, vs, nsteps, code, fixed))


# ------------------------------------------------------------------------------ adaptive steps


@eqx.filter_jit
def _pair(space, form, bd, M, x, t, dt, solver, opts):
    """One Crank–Nicolson and one backward Euler step from (x, t): the CN state, the error
    estimate |y_CN − y_BE|_M (the M-norm: the frame's null coefficients do not count), the
    worst result code and the Newton steps. ``M``: the mass matrix, assembled once."""
    kern = bind(form, t, space.components, space.dim, space.q_points.dtype)
    Rx = _assemble(space, kern, bd, x, matrix=False)
    Mx = M.mv(x)
    t1 = t + dt
    y_cn, c1, s1 = _root((form, Mx / dt - 0.5 * Rx, 1 / dt, 0.5, t1), space, bd, M, x, solver, opts)
    y_be, c2, s2 = _root((form, Mx / dt, 1 / dt, 1.0, t1), space, bd, M, x, solver, opts)
    d = y_cn - y_be
    err = jnp.sqrt(jnp.abs(d @ M.mv(d)))
    size = jnp.sqrt(jnp.abs(y_cn @ M.mv(y_cn)))
    return y_cn, err, size, worst(c1, c2), s1 + s2


def integrate_adaptive(
    space,
    form: Form,
    u0,
    t_span,
    dt0,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-8,
    dt_min: float | None = None,
    max_steps: int = 100_000,
    solver=None,
    newton: Newton | None = None,
) -> History:
    """Integrate M u' + R(u, t) = 0 with an adaptive step (host-driven loop of jitted steps;
    for nonlinear forms, where the matrix changes anyway).

    Each step takes Crank–Nicolson (kept) and backward Euler from the same state; their
    difference in the M-norm estimates backward Euler's local error, O(Δt²), so the kept
    second-order state is conservatively controlled. A step is accepted when the estimate is at
    most ``atol + rtol |u|_M``; the next step is Δt · clip(0.9 (tol/err)^{1/2}, 0.2, 2), and never
    past t1. Every accepted state is kept (``History.times`` are the accepted times). A step size
    below ``dt_min`` (default 1e-12 of the interval) or a failed Newton at every retry raises.

    Not differentiated (a host loop); use :func:`integrate` for gradients through a history.
    """
    _check_space(space)
    _check_form(space, form)
    t0, t1 = check_t_span(t_span)
    dt0 = _check_step(dt0, "dt0")
    for name, v in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a number >= 0, got {v!r}")
    if rtol == 0 and atol == 0:
        raise ValueError("rtol and atol are both zero: no step would be accepted")
    dt_min = 1e-12 * (t1 - t0) if dt_min is None else float(dt_min)
    opts = Newton() if newton is None else newton
    solver = prepared_solver(as_solver(solver), space)
    form.check_data(jnp.asarray(t0))
    bd = boundary_data(space, form, check=False)
    x = _initial(space, u0, "u0")
    M = eqx.filter_jit(_mass)(space)
    t, dt = t0, min(dt0, t1 - t0)
    xs, ts, steps = [x], [t0], []
    while t < t1 - 1e-14 * (t1 - t0):
        if len(steps) >= max_steps:
            raise RuntimeError(f"integrate_adaptive: max_steps={max_steps} reached at t={t:.6g}")
        dt = min(dt, t1 - t)
        y, err, size, c, s = _pair(space, form, bd, M, x, jnp.asarray(t), jnp.asarray(dt), solver, opts)
        tol, err, c = atol + rtol * float(size), float(err), int(c)
        failed = RESULTS.failed(c) or not math.isfinite(err)
        if failed or err > tol:
            dt *= 0.2 if failed else max(0.2, 0.9 * math.sqrt(tol / err))
            if dt < dt_min:
                raise RuntimeError(
                    f"integrate_adaptive: the step fell below dt_min={dt_min:.3g} at t={t:.6g} "
                    f"(last result: {RESULTS.message(c) or 'error estimate above tolerance'})"
                )
            continue
        t += dt
        x = y
        xs.append(x)
        ts.append(t)
        steps.append(int(s))
        dt *= min(2.0, max(0.2, 0.9 * math.sqrt(tol / max(err, 1e-300))))
    return settle(
        History(
            space,
            jnp.asarray(ts),
            jnp.stack(xs),
            None,
            jnp.asarray(steps, jnp.int32),
            jnp.asarray(RESULTS.successful, jnp.int32),  # a failure raises above
            False,
        )
    )


__all__ = ["integrate", "integrate_adaptive", "History", "METHODS", "fixed_tangent", "check_t_span"]
