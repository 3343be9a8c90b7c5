"""Pseudo-arclength continuation (Keller 1977) of F(x, λ) = 0 through turning points.

``family(λ)`` returns the form at the parameter λ (a traced scalar: ``lambda lam:
nmm.Bratu(lam=lam, dirichlet=0.0)``); F is its assembled residual. From a solution (x₀, λ₀)
with unit tangent (ẋ, λ̇) the predictor steps a distance ds along the tangent and the corrector
solves

    F(x, λ) = 0,   w ẋ·(x − x₀) + λ̇ (λ − λ₀) = ds

by Newton with the bordered Jacobian [[K, F_λ], [w ẋᵀ, λ̇]], eliminated with two solves of one
factorisation of K (Keller's bordering: K is singular only at the fold itself, which no
corrector lands on; the combination Δx = b − Δλ a cancels the large null-vector parts of a and
b near it). ``w = 1/n`` weighs the coefficients as a mean square, so that λ is not swamped.

A fold is where λ̇ changes sign along the branch; it is located by the secant method on λ̇ as a
function of the arclength from the last point before it (each value a corrector solve), to
|λ̇| <= 1e-10: λ* is then exact to O(λ̇²), far below the discretisation error.

The outer loop (step-size control, folds, stopping) runs on the host; predictor–corrector steps
are jitted (one compilation per space and family).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .assembly import assemble as _assemble
from .drivers import _check_form, _check_space, boundary_data, prepared_solver
from .drivers import solve as _solve
from .field import Field
from .kernels import bind
from .linalg.results import RESULTS, worst
from .linalg.solve import as_solver, init_state, solve_with
from .nonlinear import Newton


class ContinuationError(RuntimeError):
    """The branch could not be followed (the step size fell below ``ds_min``)."""


@dataclass
class Branch:
    """A solution branch.

    Attributes:
        space: the space.
        lam: ``(n,)`` the parameter at the branch's points, in order along the branch.
        coeffs: ``(n, n_dofs)`` the solutions there.
        arclength: ``(n,)`` the (weighted) arclength from the start.
        folds: the turning points found: ``(λ*, coeffs*)`` each.
        newton_steps: ``(n,)`` corrector iterations per point.
    """

    space: object
    family: object
    lam: np.ndarray
    coeffs: np.ndarray
    arclength: np.ndarray
    folds: list = field(default_factory=list)
    newton_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    def field(self, i: int) -> Field:
        return Field(self.space, jnp.asarray(self.coeffs[i]))

    @property
    def fold_lams(self) -> list[float]:
        return [f[0] for f in self.folds]

    def solutions_at(self, lam: float, newton: Newton | None = None) -> list[Field]:
        """Every solution on the branch at the parameter ``lam``: one per crossing of ``lam``,
        each refined by Newton at exactly ``lam`` from the nearer branch point."""
        lam = float(lam)
        out = []
        for i in range(len(self.lam) - 1):
            a, b = self.lam[i], self.lam[i + 1]
            if (a - lam) * (b - lam) <= 0 and a != b:
                near = i if abs(a - lam) <= abs(b - lam) else i + 1
                u = _solve(
                    self.space, self.family(lam), newton=newton, x0=jnp.asarray(self.coeffs[near])
                )
                out.append(u)
        return out


# ------------------------------------------------------------------------------ jitted kernels


def _residual(space, family, bd, x, lam):
    kern = bind(family(lam), None, space.components, space.dim, space.q_points.dtype)
    return _assemble(space, kern, bd, x, matrix=False)


def _bordered(space, family, bd, x, lam, solver, release=None):
    """``F``, the factorisation of K at (x, λ) and ``a = K⁻¹ F_λ``."""
    kern = bind(family(lam), None, space.components, space.dim, space.q_points.dtype)
    F, K, ok = _assemble(space, kern, bd, x)
    F_lam = jax.jvp(lambda l_: _residual(space, family, bd, x, l_), (lam,), (jnp.ones_like(lam),))[1]
    state = init_state(solver, K, release=release)
    a, code, *_ = solve_with(solver.solve, state, F_lam)
    return F, state, a, code


@eqx.filter_jit
def _tangent(space, family, bd, x, lam, w, solver):
    """Unit tangent (ẋ, λ̇) ∝ (−K⁻¹F_λ, 1) in the weighted norm."""
    _, state, a, code = _bordered(space, family, bd, x, lam, solver)
    solve_with(solver.solve, state, 0.0 * a, last=True)  # free the factor (after a: 0·a)
    tx, tl = -a, jnp.ones_like(lam)
    nrm = jnp.sqrt(w * tx @ tx + tl * tl)
    return tx / nrm, tl / nrm, code


@eqx.filter_jit
def _correct(space, family, bd, x0, lam0, tx, tl, ds, w, solver, opts):
    """Newton on the bordered system from the predictor (x₀ + ds ẋ, λ₀ + ds λ̇)."""
    xp, lp = x0 + ds * tx, lam0 + ds * tl

    def arc(x, lam):
        return w * tx @ (x - x0) + tl * (lam - lam0) - ds

    def norm(F, N):
        return jnp.sqrt(F @ F + N * N)

    F0 = _residual(space, family, bd, xp, lp)
    r0 = norm(F0, arc(xp, lp))
    tol = opts.rtol * jnp.maximum(r0, 1.0) + opts.atol

    def cond(c):
        k, _, _, r, code, _ = c
        return (k < opts.max_steps) & (r > tol) & (code == RESULTS.successful)

    def body(c):
        k, x, lam, _, _, state = c
        F, state, a, c1 = _bordered(space, family, bd, x, lam, solver, release=state)
        b, c2, *_ = solve_with(solver.solve, state, -F)
        N = arc(x, lam)
        dlam = (-N - w * tx @ b) / (tl - w * tx @ a)
        dx = b - dlam * a
        x, lam = x + dx, lam + dlam
        r = norm(_residual(space, family, bd, x, lam), arc(x, lam))
        bad = ~jnp.isfinite(r)
        code = worst(
            jnp.where(RESULTS.failed(c1) | RESULTS.failed(c2), RESULTS.residual_too_large, 0),
            jnp.where(bad, RESULTS.nonfinite, 0),
        )
        # the bordered solves near the fold may miss the linear residual test; the nonlinear
        # residual judges the step
        code = jnp.where(bad, code, RESULTS.successful)
        return k + 1, x, lam, r, code.astype(jnp.int32), state

    shapes = jax.eval_shape(
        lambda: _bordered(space, family, bd, xp, lp, solver)[1]
    )  # a placeholder state of the right structure
    state0 = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    init = (0, xp, lp, r0, jnp.asarray(0, jnp.int32), state0)
    k, x, lam, r, code, state = jax.lax.while_loop(cond, body, init)
    solve_with(solver.solve, state, 0.0 * x, last=True)
    code = worst(code, jnp.where(r <= tol, 0, RESULTS.max_steps_reached))
    return x, lam, code, k


# ------------------------------------------------------------------------------ driver


def continuation(
    space,
    family,
    lam_start: float,
    lam_range: tuple[float, float],
    *,
    x0=None,
    ds: float = 0.1,
    ds_min: float = 1e-6,
    ds_max: float = 0.5,
    max_points: int = 500,
    newton: Newton | None = None,
    solver=None,
) -> Branch:
    """Follow the solution branch of ``family(λ)`` from ``lam_start`` (increasing λ first)
    until λ leaves ``lam_range`` or ``max_points`` points are taken, through turning points.

    Args:
        space: the space.
        family: ``λ -> form`` (e.g. ``lambda lam: nmm.Bratu(lam=lam, dirichlet=0.0)``); must
            accept a traced scalar. A module-level function or one kept in a variable: a new
            lambda per call is a new compilation.
        lam_start: the first λ; its solution is found by Newton from ``x0`` (default zero).
        lam_range: ``(lo, hi)``: stop once λ leaves it.
        ds, ds_min, ds_max: the initial, smallest and largest arclength step (weighted norm:
            coefficients as a mean square, λ as is). A failed corrector halves ds; an easy one
            (<= 3 Newton steps) grows it by 1.5.
        max_points: branch points at most.
        newton: Newton options of the correctors (``rtol`` relative to max(1, |F(predictor)|),
            ``max_steps``).

    Returns:
        A :class:`Branch` (``branch.folds``: the turning points; ``branch.solutions_at(λ)``).

    Raises:
        ContinuationError: the corrector failed down to ``ds_min`` (a fold or a bifurcation the
            method cannot pass at this resolution), naming where.
    """
    _check_space(space)
    if not callable(family):
        raise TypeError(f"family must be a callable lam -> form, got {type(family).__name__}")
    first = family(float(lam_start))
    _check_form(space, first)
    lo, hi = (float(v) for v in lam_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"lam_range must be finite (lo, hi) with lo < hi, got {lam_range!r}")
    if not lo <= float(lam_start) <= hi:
        raise ValueError(f"lam_start={lam_start!r} must lie in lam_range={lam_range!r}")
    for name, v in (("ds", ds), ("ds_min", ds_min), ("ds_max", ds_max)):
        if not (isinstance(v, int | float) and np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, got {v!r}")
    if not ds_min <= ds <= ds_max:
        raise ValueError(f"need ds_min <= ds <= ds_max, got {ds_min!r}, {ds!r}, {ds_max!r}")
    opts = Newton(rtol=1e-12, max_steps=8) if newton is None else newton
    solver = prepared_solver(as_solver(solver), space)
    bd = boundary_data(space, first)
    w = jnp.asarray(1.0 / space.n_dofs)

    u = _solve(space, first, x0=x0)  # default options: the corrector's are for short steps
    x, lam = u.coeffs, jnp.asarray(float(lam_start))
    tx, tl, _ = _tangent(space, family, bd, x, lam, w, solver)
    if float(tl) < 0:  # start towards increasing λ
        tx, tl = -tx, -tl
    lams, xs, arcs, steps = [float(lam)], [np.asarray(x)], [0.0], [int(u.info.newton_steps)]
    folds = []
    s = 0.0
    while len(lams) < max_points and lo <= lams[-1] <= hi:
        x1, l1, code, k = _correct(space, family, bd, x, lam, tx, tl, jnp.asarray(ds), w, solver, opts)
        if int(code) != 0:
            ds *= 0.5
            if ds < ds_min:
                raise ContinuationError(
                    f"continuation: the corrector failed with ds below ds_min={ds_min} at "
                    f"lam={lams[-1]:.10g} (point {len(lams)}): the branch turns or bifurcates "
                    "more sharply than this resolution follows; refine the space, lower ds_min "
                    "or raise newton.max_steps"
                )
            continue
        t1x, t1l, _ = _tangent(space, family, bd, x1, l1, w, solver)
        if float(w * t1x @ tx + t1l * tl) < 0:  # keep the direction of travel
            t1x, t1l = -t1x, -t1l
        if float(t1l) * float(tl) < 0:  # λ̇ changed sign: a turning point in (0, ds)
            folds.append(
                _fold(space, family, bd, x, lam, tx, tl, ds, float(tl), float(t1l), w, solver, opts)
            )
        s += ds
        x, lam, tx, tl = x1, l1, t1x, t1l
        lams.append(float(lam))
        xs.append(np.asarray(x))
        arcs.append(s)
        steps.append(int(k))
        if int(k) <= 3:
            ds = min(1.5 * ds, ds_max)
    return Branch(space, family, np.array(lams), np.stack(xs), np.array(arcs), folds, np.array(steps))


def _fold(space, family, bd, x, lam, tx, tl, ds, tl0, tl1, w, solver, opts, tol=1e-10):
    """λ̇ = 0 between arclength 0 (λ̇ = tl0) and ds (tl1) from (x, λ): secant / regula falsi
    steps on σ -> λ̇(σ), each value a corrector solve and its tangent."""
    a, fa, b, fb = 0.0, tl0, ds, tl1
    best = None
    for _ in range(60):
        # Illinois-type regula falsi: robust (the root stays bracketed) and superlinear
        sig = b - fb * (b - a) / (fb - fa)
        xs, ls, code, _ = _correct(space, family, bd, x, lam, tx, tl, jnp.asarray(sig), w, solver, opts)
        if int(code) != 0:
            raise ContinuationError(
                f"continuation: the corrector failed while locating the turning point near "
                f"lam={float(lam):.10g}"
            )
        sx, sl, _ = _tangent(space, family, bd, xs, ls, w, solver)
        if float(w * sx @ tx + sl * tl) < 0:
            sx, sl = -sx, -sl
        f = float(sl)
        best = (float(ls), np.asarray(xs))
        if abs(f) <= tol:
            break
        if f * fb < 0:
            a, fa = b, fb
        else:
            fa *= 0.5
        b, fb = sig, f
    return best


__all__ = ["continuation", "Branch", "ContinuationError"]
