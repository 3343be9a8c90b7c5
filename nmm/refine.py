"""Accurate linear solves on high-order spaces: refinement with matrix-free residuals.

Why. Hats × polynomials are a *frame*, not a basis: besides the exact null space (hats × P_p are
dependent) the Gram and stiffness matrices have a continuum of tiny eigenvalues (a polynomial
carried by one cover is nearly reproduced by its neighbours: Σ_i w_i (x − x_i) r(x) = 0 for any
r, and is small whenever r is nearly of degree < p on every patch). The solution needs components
along those near-null modes, and the assembled matrix cannot deliver them: its entries carry
rounding u·Σ|terms| (sums over quadrature points of products of basis functions that cancel), and
a mode with eigenvalue λ turns that into a field error ~ u/√λ. Measured: refinement against the
assembled matrix, or an exact eigen-solve of it, stops at 1e-11–1e-8.

What. The residual R(x) computed by the assembly's own pointwise path (the field and its flux at
the quadrature points, then tested) has rounding proportional to the *field*, not to the sum of
the cancelling contributions (a pointwise perturbation of u_h, whose Galerkin projection is of the
same size). Iterating x ← x − M⁻¹ R(x) with M the factorisation of the assembled matrix (a good
preconditioner: it is wrong only by rounding and by the perturbation ε) therefore converges to the
accurate solution on every mode M resolves: one step takes a p = 6 Poisson solve from 2.5e-11 to
1.4e-14.

Least-squares fits (``nmm.fit``) also need the modes below ε (long chains of covers: eight
intervals at p = 11 leave 1e-9 after stationary steps). Their residual is the L2 misfit u_h − f
tested at the points, accurate down to round-off of u_h, and their objective ½ Σ w |u_h − f|² is
computable to full relative accuracy; so they run preconditioned conjugate gradients (flexible,
Polak–Ribière, since the preconditioner refines inside) on the matrix-free operator, keeping the
iterate with the smallest objective. Other forms keep the stationary iteration: their residual
noise (a flux, a Nitsche penalty) sits above the sub-ε modes, where conjugate gradients would
chase it (measured: a p = 6 Poisson solve diverges from 1e-13 after two CG steps).

The perturbation. With stable cover functions (``nmm.stable``) the assembled matrix's rounding
moves its eigenvalues by ~1e-16, so the default solver factors A + εI with ε = 1e-14 instead of
1e-12: the factorisation then resolves the modes in [1e-14, 1e-12] too (Poisson, p = 6, 100
covers: stationary refinement reaches 3.6e-13 with ε = 1e-14 and stalls at 3e-9 with 1e-12).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .assembly import basis_at, interpolate
from .linalg.dense import DenseLU
from .linalg.superlu import SuperLU

STABLE_EPS = 1e-14  # the default solver's perturbation on stable spaces (see above)
RTOL = 1e-8  # energy of the last outer correction, relative (the residual's round-off moves
# the solution by ~1e-11 in energy: a tighter rule would flag converged solves)
STEPS = 3  # stationary steps at most for linear forms
STEP_TOL = 1e-11  # ... stopping at a correction of this relative energy (round-off: ~1e-12)
LSQ_ITER = 30  # conjugate-gradient steps at most for least-squares fits
LSQ_PATIENCE = 8  # ... stopping after this many steps without a smaller objective
LSQ_GATE = 1e-8  # ... run only where the relative L2 misfit is below this
PRE_ITER = 3  # refinement steps of the factored solve when it preconditions


def preconditioner(solver):
    """The solver applying M⁻¹ in the outer steps: the factored solves with a few refinement
    steps (the outer iteration refines; 20 inner steps would cost 20 triangular solves each)."""
    if isinstance(solver, SuperLU | DenseLU) and solver.max_iter > PRE_ITER:
        return dataclasses.replace(solver, max_iter=PRE_ITER)
    return solver


def lsq_objective(space, kern, quad, coeffs):
    """½ Σ_q w |r0|² with r0 = u_h − f: the objective of an L2 fit (no boundary terms)."""
    phi, dphi = basis_at(space, quad.elems, quad.points)
    u, du = interpolate(space, coeffs, quad.elems, phi, dphi)
    r0, _ = jax.vmap(jax.vmap(kern.volume))(quad.points, u, du)
    return 0.5 * jnp.sum(quad.weights[..., None] * r0 * r0)


def python_while(cond, body, init):
    """``jax.lax.while_loop`` run in Python: the loop of an eager solve whose steps call the host
    (a compiled loop would hold the call as a callback, which JAX's persistent cache cannot keep)."""
    while bool(cond(init)):
        init = body(init)
    return init


def stationary(residual, precondition, energy, x, steps: int = STEPS, tol: float = STEP_TOL, loop=None):
    """x ← x − M⁻¹ R(x) (``precondition(b)`` applies M⁻¹) until the relative energy of a
    correction, ``energy(x, dx)``, is below ``tol`` (round-off level: one step, measured) or after
    ``steps`` steps. Returns the iterate and the energy of its last correction (what
    :func:`converged` judges). ``loop``: the while loop (``jax.lax.while_loop`` by default,
    :func:`python_while` in an eager solve)."""

    def cond(c):
        k, _, _, e = c
        return (k < steps) & (e > tol)

    def step(c):
        k, x, _, _ = c
        dx = precondition(residual(x))
        x = x - dx
        return k + 1, x, dx, energy(x, dx)

    # numpy for an eager loop's host iterate: a jnp operation on concrete values compiles a small
    # program per process
    xp = np if isinstance(x, np.ndarray) else jnp
    inf = xp.asarray(np.inf, x.dtype)
    loop = jax.lax.while_loop if loop is None else loop
    _, x, _, e = loop(cond, step, (0, x, xp.zeros_like(x), inf))
    return x, e


def energy(K):
    """``(x, dx) ->`` sqrt(dxᵀK dx / xᵀK x), the host solver's measure of a correction."""
    return lambda x, dx: jnp.sqrt(jnp.abs(dx @ K.mv(dx)) / jnp.maximum(jnp.abs(x @ K.mv(x)), 1e-300))


def converged(e, rtol: float = RTOL):
    """The outer iteration's rule: the energy ``e`` of its last correction (:func:`energy`, as
    :func:`stationary` returns it) below ``rtol``; for the compiled and the eager solve alike."""
    return e <= rtol


def conjugate_gradients(
    residual, objective, precondition, energy, x, max_iter=LSQ_ITER, patience=LSQ_PATIENCE
):
    """Flexible preconditioned CG on R(x) = 0 for a symmetric positive semi-definite linear R, the
    operator applied matrix-free (a JVP of the residual) and the residual recomputed at every
    iterate; keeps the iterate with the smallest ``objective`` (CG minimises it, so a larger one
    means round-off took over), then takes one stationary step (its correction's energy is
    returned)."""
    zero = jnp.zeros_like(x)

    def apply(p):  # the linear part of R, matrix-free (no rounding from R(0))
        return jax.jvp(residual, (zero,), (p,))[1]

    def cond(c):
        *_, best_f, f0, k, stall = c
        flat = (k == 1) & (best_f > 0.99 * f0)  # the first step gained nothing: nothing to gain
        return (k < max_iter) & (stall < patience) & (best_f > 0) & ~flat

    def body(c):
        x, r, z, p, rz, best_x, best_f, f0, k, stall = c
        ap = apply(p)
        pap = p @ ap
        ok = (pap > 0) & (rz > 0)
        x = x + jnp.where(ok, rz / jnp.where(ok, pap, 1.0), 0.0) * p
        r_new = -residual(x)
        z_new = precondition(r_new)
        rz_new = r_new @ z_new
        beta = jnp.maximum(0.0, z_new @ (r_new - r) / jnp.where(rz > 0, rz, 1.0))
        f = objective(x)
        better = jnp.isfinite(f) & (f < best_f)
        stall = jnp.where(better, 0, jnp.where(ok, stall + 1, patience))
        best_x, best_f = jnp.where(better, x, best_x), jnp.where(better, f, best_f)
        return x, r_new, z_new, z_new + beta * p, rz_new, best_x, best_f, f0, k + 1, stall

    def run(x, f):
        r = -residual(x)
        z = precondition(r)
        out = jax.lax.while_loop(cond, body, (x, r, z, z, r @ z, x, f, f, 0, 0))
        return out[5]

    # only near-exact fits have anything to gain: where the misfit is above LSQ_GATE of the
    # target, the approximation error hides the floor and the iteration is skipped
    f = objective(x)
    x = jax.lax.cond(f <= LSQ_GATE**2 * objective(zero), run, lambda x, f: x, x, f)
    return stationary(residual, precondition, energy, x, 1)
