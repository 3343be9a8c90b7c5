"""Dense LU in JAX for small systems: the same regularised method as the host solver (unit-diagonal
scaling, perturbed LU, energy-norm refinement), written in JAX so that it batches under ``vmap``
(one batched LU for many parameter sets) and runs on accelerators."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .operator import BlockCSR
from .results import RESULTS

_FAIL_RESIDUAL = 1e-6


class DenseLUState(eqx.Module):
    operator: BlockCSR
    lu: jax.Array
    piv: jax.Array
    a: jax.Array  # the scaled, unperturbed dense matrix
    s: jax.Array
    condition: jax.Array
    result: jax.Array


class DenseLU(eqx.Module):
    """Dense LU of the unit-diagonal matrix perturbed by ``eps``, with refinement (attributes as
    :class:`SuperLU`). Memory is ``n²``: meant for systems up to a few thousand unknowns."""

    eps: float = eqx.field(static=True, default=1e-12)
    rtol: float = eqx.field(static=True, default=1e-11)
    max_iter: int = eqx.field(static=True, default=20)
    condition: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not (0 <= self.eps < 1):
            raise ValueError(f"eps must be in [0, 1), got {self.eps!r}")
        if not (0 < self.rtol < 1):
            raise ValueError(f"rtol must be in (0, 1), got {self.rtol!r}")
        if int(self.max_iter) != self.max_iter or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")

    def init(self, operator: BlockCSR, release=None) -> DenseLUState:
        a = operator.to_dense()
        d = jnp.abs(jnp.diagonal(a))
        s = 1.0 / jnp.sqrt(jnp.where(d > 0, d, 1.0))
        a = s[:, None] * a * s[None, :]
        n = a.shape[0]
        lu, piv = jsl.lu_factor(a + self.eps * jnp.eye(n, dtype=a.dtype))
        finite = jnp.all(jnp.isfinite(lu))
        cond = jnp.asarray(-1.0, a.dtype)
        if self.condition:
            inv = jsl.lu_solve((lu, piv), jnp.eye(n, dtype=a.dtype))
            cond = jnp.linalg.norm(a, 1) * jnp.linalg.norm(inv, 1)
        result = jnp.where(finite, RESULTS.successful, RESULTS.nonfinite).astype(jnp.int32)
        return DenseLUState(operator, lu, piv, a, s, cond, result)

    def _run(self, state: DenseLUState, b, operator, trans: bool):
        if operator is None:
            a = state.a
        else:
            a = state.s[:, None] * operator.to_dense() * state.s[None, :]
        a = a.T if trans else a
        rhs = state.s * b
        norm = jnp.linalg.norm(rhs)

        def cond(c):
            _, _, it, energy, _ = c
            return (it < self.max_iter) & (energy > self.rtol) & (norm > 0)

        def body(c):
            x, r, it, _, _ = c
            dx = jsl.lu_solve((state.lu, state.piv), r, trans=1 if trans else 0)
            x = x + dx
            ax = a @ x
            r = rhs - ax
            energy = jnp.sqrt(jnp.abs(dx @ (a @ dx)) / jnp.maximum(jnp.abs(x @ ax), 1e-300))
            energy = jnp.where(jnp.isfinite(energy), energy, 0.0)
            return x, r, it + 1, energy, jnp.linalg.norm(r) / jnp.where(norm > 0, norm, 1.0)

        res0 = jnp.where(jnp.isfinite(norm), 0.0, jnp.inf).astype(b.dtype)  # NaN data: reported
        init = (jnp.zeros_like(rhs), rhs, 0, jnp.asarray(jnp.inf, b.dtype), res0)
        x, _, it, energy, res = jax.lax.while_loop(cond, body, init)
        x = state.s * x
        met = (energy <= self.rtol) | (norm == 0)
        code = jnp.where(met, RESULTS.successful, RESULTS.refinement_stalled)
        code = jnp.where(res > _FAIL_RESIDUAL, RESULTS.residual_too_large, code)
        code = jnp.where(jnp.all(jnp.isfinite(x)) & jnp.isfinite(res), code, RESULTS.nonfinite)
        code = jnp.where(state.result != RESULTS.successful, state.result, code).astype(jnp.int32)
        return x, code, res, jnp.asarray(it, b.dtype)

    def solve(self, state: DenseLUState, b, operator: BlockCSR | None = None, *, last=False):
        return self._run(state, b, operator, False)

    def transpose_solve(self, state: DenseLUState, b, operator: BlockCSR | None = None, *, last=False):
        return self._run(state, b, operator, True)
