"""Iterative solvers in JAX (jit, vmap, grad native; they run wherever JAX runs, GPUs included).

Both use a block-Jacobi preconditioner: the inverse of each cover's diagonal block (scaled to unit
diagonal and perturbed by ε, since high-order cover blocks are singular on their own). The state
holds the preconditioner, so repeated solves with one matrix build it once.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp

from .operator import BlockCSR
from .results import RESULTS

_FAIL_RESIDUAL = 1e-6  # a residual below this is usable even where rtol was not met


class JacobiState(eqx.Module):
    operator: BlockCSR
    inv_blocks: jax.Array  # (n_block_rows, b, b) inverses of the scaled diagonal blocks
    s: jax.Array  # (n_block_rows, b) unit-diagonal scaling
    condition: jax.Array
    result: jax.Array


def _jacobi(operator: BlockCSR, eps: float) -> JacobiState:
    blocks = operator.diagonal_blocks()
    d = jnp.abs(jnp.diagonal(blocks, axis1=1, axis2=2))
    s = 1.0 / jnp.sqrt(jnp.where(d > 0, d, 1.0))
    scaled = s[:, :, None] * blocks * s[:, None, :]
    inv = jnp.linalg.inv(scaled + eps * jnp.eye(blocks.shape[-1], dtype=blocks.dtype))
    one = jnp.asarray(-1.0, operator.data.dtype)
    return JacobiState(operator, inv, s, one, jnp.asarray(RESULTS.successful, jnp.int32))


def _precond(state: JacobiState, trans: bool):
    b = state.inv_blocks.shape[-1]
    inv = jnp.swapaxes(state.inv_blocks, 1, 2) if trans else state.inv_blocks

    def apply(r):
        rb = r.reshape(-1, b) * state.s
        return (state.s * jnp.einsum("cij,cj->ci", inv, rb)).reshape(-1)

    return apply


def _residual(matvec, x, b):
    bn = jnp.linalg.norm(b)
    return jnp.linalg.norm(matvec(x) - b) / jnp.where(bn > 0, bn, 1.0)


def _code(x, res, steps_exhausted, rtol: float):
    # a looser rtol than the usable residual is the user's choice: met, it is not a failure
    # (2x: the true residual of the returned iterate against the recursive one that stopped)
    limit = max(_FAIL_RESIDUAL, 2.0 * rtol)
    code = jnp.where(res > limit, RESULTS.residual_too_large, RESULTS.successful)
    code = jnp.where(steps_exhausted & (res > limit), RESULTS.max_steps_reached, code)
    return jnp.where(jnp.all(jnp.isfinite(x)) & jnp.isfinite(res), code, RESULTS.nonfinite).astype(
        jnp.int32
    )


def _pcg(matvec, precond, b, rtol: float, max_iter: int):
    """Preconditioned conjugate gradients; returns ``(x, iterations)``."""
    bn = jnp.linalg.norm(b)
    x0 = jnp.zeros_like(b)
    r0 = b
    z0 = precond(r0)

    def cond(c):
        _, r, _, _, _, k = c
        return (jnp.linalg.norm(r) > rtol * bn) & (k < max_iter)

    def body(c):
        x, r, z, p, rz, k = c
        ap = matvec(p)
        alpha = rz / jnp.where(p @ ap != 0, p @ ap, 1.0)
        x = x + alpha * p
        r = r - alpha * ap
        z = precond(r)
        rz_new = r @ z
        p = z + (rz_new / jnp.where(rz != 0, rz, 1.0)) * p
        return x, r, z, p, rz_new, k + 1

    x, _, _, _, _, k = jax.lax.while_loop(cond, body, (x0, r0, z0, z0, r0 @ z0, 0))
    return x, k


def _check(solver) -> None:
    if not (0 < solver.rtol < 1):
        raise ValueError(f"rtol must be in (0, 1), got {solver.rtol!r}")
    if solver.max_iter is not None and (int(solver.max_iter) != solver.max_iter or solver.max_iter < 1):
        raise ValueError(f"max_iter must be a positive integer, got {solver.max_iter!r}")
    if not (0 <= solver.eps < 1):
        raise ValueError(f"eps must be in [0, 1), got {solver.eps!r}")


class CG(eqx.Module):
    """Conjugate gradients with a block-Jacobi preconditioner, for symmetric positive
    (semi-)definite operators.

    Attributes:
        rtol: stop at this relative residual.
        max_iter: iterations at most (default ``20 sqrt(n) + 1000``).
        eps: perturbation of the scaled diagonal blocks before inverting them.
    """

    rtol: float = eqx.field(static=True, default=1e-11)
    max_iter: int | None = eqx.field(static=True, default=None)
    eps: float = eqx.field(static=True, default=1e-12)

    def __check_init__(self):
        _check(self)

    def init(self, operator: BlockCSR, release=None) -> JacobiState:
        if not operator.symmetric:
            raise ValueError(
                "solver: CG needs a symmetric operator and this form is not symmetric; use "
                "nmm.linalg.BiCGStab() or the direct solver"
            )
        return _jacobi(operator, self.eps)

    def solve(self, state: JacobiState, b, operator: BlockCSR | None = None, *, last=False):
        op = state.operator if operator is None else operator
        max_iter = self.max_iter or int(20 * b.shape[-1] ** 0.5) + 1000
        mv = functools.partial(op.mv, differentiable=False)  # (inside the solve's custom rule)
        x, k = _pcg(mv, _precond(state, False), b, self.rtol, max_iter)
        res = _residual(mv, x, b)
        dtype = b.dtype
        return x, _code(x, res, k >= max_iter, self.rtol), res, k.astype(dtype)

    def transpose_solve(self, state: JacobiState, b, operator: BlockCSR | None = None, *, last=False):
        return self.solve(state, b, operator)  # symmetric


class BiCGStab(eqx.Module):
    """BiCGStab (``jax.scipy.sparse.linalg.bicgstab``) with a block-Jacobi preconditioner, for
    non-symmetric operators. Attributes as :class:`CG`; iterations are not reported (-1)."""

    rtol: float = eqx.field(static=True, default=1e-11)
    max_iter: int | None = eqx.field(static=True, default=None)
    eps: float = eqx.field(static=True, default=1e-12)

    def __check_init__(self):
        _check(self)

    def init(self, operator: BlockCSR, release=None) -> JacobiState:
        return _jacobi(operator, self.eps)

    def _run(self, state, b, operator, trans):
        op = state.operator if operator is None else operator
        op = op.T if trans else op
        max_iter = self.max_iter or int(20 * b.shape[-1] ** 0.5) + 1000
        # (the plain product: jax's bicgstab transposes it in its own custom_linear_solve)
        mv = op.mv
        x, _ = jax.scipy.sparse.linalg.bicgstab(
            mv, b, tol=self.rtol, maxiter=max_iter, M=_precond(state, trans)
        )
        res = _residual(mv, x, b)
        return x, _code(x, res, jnp.asarray(False), self.rtol), res, jnp.asarray(-1.0, b.dtype)

    def solve(self, state: JacobiState, b, operator: BlockCSR | None = None, *, last=False):
        return self._run(state, b, operator, False)

    def transpose_solve(self, state: JacobiState, b, operator: BlockCSR | None = None, *, last=False):
        return self._run(state, b, operator, True)
