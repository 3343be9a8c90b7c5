"""Block-sparse linear algebra and solvers that work under jit, vmap and grad.

Matrices are stored by cover pairs: ``data (n_blocks, nt, nt)`` with block rows/cols from the space.

Singular and near-singular systems are the normal case in high-order NMM: hat weights times
polynomial cover functions are linearly dependent, and covers that hold only a sliver of the domain
give near-zero pivots. Both are handled the way Strouboulis, Babuška & Copps (2000) proposed for
GFEM: scale the matrix to unit diagonal, factor it with a small diagonal perturbation ε, and recover
the accuracy lost to ε by iterative refinement against the unperturbed matrix. The systems here are
consistent (the right-hand side is orthogonal to the null space), so the field converges even where
the coefficients are not unique.

* ``"direct"``: SuperLU (scipy) through ``jax.pure_callback``; the gradient is the adjoint rule
  (one more solve with the same symmetric matrix), never an unrolled iteration; under ``vmap`` the
  matrix is factored once when only the right-hand side is batched.
* ``"cg"``: conjugate gradients in JAX with a block-Jacobi preconditioner, for large systems and
  accelerators; differentiable through JAX's implicit linear-solve rule.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

SOLVERS = ("direct", "cg")
_DROP = 1e-14  # relative to the unit diagonal


class SolverOptions(eqx.Module):
    """Linear-solver settings.

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
    condition: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if self.method not in SOLVERS:
            raise ValueError(f"method must be one of {SOLVERS}, got {self.method!r}")
        if not (0 <= self.eps < 1):
            raise ValueError(f"eps must be in [0, 1), got {self.eps!r}")
        if not (0 < self.rtol < 1):
            raise ValueError(f"rtol must be in (0, 1), got {self.rtol!r}")
        if self.max_iter is not None and (int(self.max_iter) != self.max_iter or self.max_iter < 1):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")


def block_matvec(data, rows, cols, n_rows: int, x):
    """y = A x for the block matrix (``data (nb, nt, nt)``, block ``rows``/``cols``)."""
    nt = data.shape[-1]
    xb = x.reshape(-1, nt)
    y = jax.ops.segment_sum(jnp.einsum("bij,bj->bi", data, xb[cols]), rows, n_rows)
    return y.reshape(-1)


def to_scipy(data: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> sp.csc_matrix:
    """The block matrix as a scipy CSC matrix."""
    nt = data.shape[-1]
    n = (len(indptr) - 1) * nt
    return sp.bsr_matrix((data, indices, indptr), shape=(n, n)).tocsc()


# ------------------------------------------------------------------ direct (host) solve


class _Factored:
    """Unit-diagonal scaling + perturbed LU of one matrix, with iterative refinement."""

    def __init__(self, a: sp.csc_matrix, opts: SolverOptions, nt: int):
        d = a.diagonal()
        d = np.where(d > 0, d, 1.0)  # a cover with no support in the data keeps its zero row
        self.s = 1.0 / np.sqrt(d)
        scale = sp.diags(self.s)
        self.a = (scale @ a @ scale).tocsc()
        n = a.shape[0]
        # For scalar blocks (p = 0) the factored copy drops entries at round-off level (couplings
        # across the hypotenuse of right triangles cancel to 1e-17): kept, they add ~40% fill and
        # slow SuperLU 8x at 1e6 unknowns. Refinement runs against the unmodified matrix. Not done
        # for p >= 1, where the near-singular systems converge slower under a modified factor.
        factored = self.a + opts.eps * sp.identity(n, format="csc")
        if nt == 1:
            factored.data[np.abs(factored.data) < _DROP] = 0.0
            factored.eliminate_zeros()
        self.lu = spla.splu(
            factored.tocsc(),
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )
        self.opts = opts
        self.cond = -1.0
        if opts.condition:
            inv = spla.LinearOperator(
                (n, n),
                matvec=self.lu.solve,
                rmatvec=lambda v: self.lu.solve(v, trans="T"),
                dtype=float,
            )
            self.cond = float(spla.onenormest(self.a) * spla.onenormest(inv))

    def solve(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Stop on the energy of the correction, not on the residual: a mode with eigenvalue λ
        # leaves a field error ~ residual / sqrt(λ), so a tiny residual can hide a visible error.
        rhs = self.s * b
        norm = np.linalg.norm(rhs)
        x = np.zeros_like(rhs)
        r, it, res = rhs, 0, 0.0
        while norm > 0 and it < (self.opts.max_iter or 20):
            dx = self.lu.solve(r)
            x = x + dx
            ax = self.a @ x
            r = rhs - ax
            it += 1
            res = np.linalg.norm(r) / norm
            energy = np.sqrt(abs(dx @ (self.a @ dx)) / max(abs(x @ ax), 1e-300))
            # near-singular high-order systems converge slowly (modes with λ ~ eps shrink by
            # λ/(λ+eps) per step) but steadily; max_iter bounds the work
            if energy <= self.opts.rtol:
                break
        return self.s * x, np.array([res, it, self.cond])


def _host_direct(indptr, indices, opts, data, b):
    """Batched host solve: ``data (Bd, nb, nt, nt)``, ``b (Bb, n)`` with Bd, Bb in {1, B}."""
    data, b = np.asarray(data, dtype=float), np.asarray(b, dtype=float)
    batch = max(data.shape[0], b.shape[0])
    xs, stats = np.empty((batch, b.shape[1])), np.empty((batch, 3))
    fac = None
    for k in range(batch):
        if fac is None or data.shape[0] > 1:
            fac = _Factored(
                to_scipy(data[min(k, data.shape[0] - 1)], indptr, indices), opts, data.shape[-1]
            )
        xs[k], stats[k] = fac.solve(b[min(k, b.shape[0] - 1)])
    return xs, stats


def _direct_callback(space_host, opts, data, b):
    shapes = (
        jax.ShapeDtypeStruct(b.shape, b.dtype),
        jax.ShapeDtypeStruct((*b.shape[:-1], 3), b.dtype),
    )

    def host(d, rhs):
        lead = rhs.shape[:-1]
        d2 = np.asarray(d).reshape(-1, *d.shape[-3:])
        r2 = np.asarray(rhs).reshape(-1, rhs.shape[-1])
        x, st = _host_direct(space_host.block_indptr, space_host.block_indices, opts, d2, r2)
        bsz = max(d2.shape[0], r2.shape[0])
        full = np.broadcast_shapes(d.shape[:-3], lead) if bsz > 1 else lead
        return x.reshape(*full, -1).astype(rhs.dtype), st.reshape(*full, 3).astype(rhs.dtype)

    return jax.pure_callback(host, shapes, data, b, vmap_method="expand_dims")


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _direct(static, rows, cols, data, b):
    space_host, opts, _ = static
    return _direct_callback(space_host, opts, data, b)


def _direct_fwd(static, rows, cols, data, b):
    x, stats = _direct(static, rows, cols, data, b)
    return (x, stats), (rows, cols, data, x)


def _direct_bwd(static, res, cot):
    # Adjoint rule: A is symmetric, so λ = A⁻¹ ∂L/∂x; ∂L/∂b = λ and ∂L/∂A_ij = -λ_i x_j.
    space_host, opts, nt = static
    rows, cols, data, x = res
    gx, _ = cot
    lam, _ = _direct_callback(space_host, opts, data, gx)
    lb, xb = lam.reshape(-1, nt), x.reshape(-1, nt)
    gdata = -jnp.einsum("bi,bj->bij", lb[rows], xb[cols])
    return None, None, gdata, lam


_direct.defvjp(_direct_fwd, _direct_bwd)


def solve_dense(a, b, opts: SolverOptions | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Host-side solve of one small dense symmetric positive semi-definite system with the same
    regularised machinery as the sparse direct solver (unit-diagonal scaling, perturbed LU,
    energy-norm refinement). Used for the output layer of networks (``nmm_nn.cover_solve``),
    whose features are as linearly dependent as high-order cover functions.

    Returns ``x`` and ``stats`` as :func:`solve_blocks`.
    """
    opts = SolverOptions() if opts is None else opts
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or b.shape != (a.shape[0],):
        raise ValueError(f"a must be square (n, n) and b (n,), got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("a and b must be finite")
    return _Factored(sp.csc_matrix(a), opts, a.shape[0]).solve(b)


def solve_blocks(space, data, b, opts: SolverOptions):
    """Solve A x = b for the space's block matrix ``data (n_blocks, nt, nt)``.

    Returns ``x (n_dofs,)`` and ``stats (3,)`` = [relative residual of the unit-diagonal system,
    iterations, condition estimate (-1 when not computed)].
    """
    if opts.method == "direct":
        static = (space.host, opts, space.n_terms)
        x, stats = _direct(static, space.block_rows, space.block_cols, data, b)
        return x, jax.lax.stop_gradient(stats)
    return _cg(space, data, b, opts)


# ------------------------------------------------------------------ CG (JAX)


def _cg(space, data, b, opts: SolverOptions):
    rows, cols, n_rows = space.block_rows, space.block_cols, space.n_covers
    nt = space.n_terms
    diag_blocks = jax.ops.segment_sum(jnp.where((rows == cols)[:, None, None], data, 0.0), rows, n_rows)
    d = jnp.diagonal(diag_blocks, axis1=1, axis2=2)
    s = 1.0 / jnp.sqrt(jnp.where(d > 0, d, 1.0))
    scaled = s[:, :, None] * diag_blocks * s[:, None, :]
    inv_blocks = jnp.linalg.inv(scaled + opts.eps * jnp.eye(nt))

    def matvec(x):
        return block_matvec(data, rows, cols, n_rows, x)

    def precond(r):
        rb = r.reshape(-1, nt) * s
        return (s * jnp.einsum("cij,cj->ci", inv_blocks, rb)).reshape(-1)

    maxiter = opts.max_iter or int(20 * np.sqrt(b.shape[0])) + 1000
    x, _ = jax.scipy.sparse.linalg.cg(matvec, b, tol=opts.rtol, maxiter=maxiter, M=precond)
    bn = jnp.linalg.norm(b)
    res = jnp.linalg.norm(matvec(x) - b) / jnp.where(bn > 0, bn, 1.0)
    stats = jnp.stack([res, jnp.asarray(-1.0, b.dtype), jnp.asarray(-1.0, b.dtype)])
    return x, jax.lax.stop_gradient(stats)
