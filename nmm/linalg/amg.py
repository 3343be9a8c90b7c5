"""Conjugate gradients preconditioned by smoothed-aggregation algebraic multigrid, in JAX.

The multigrid hierarchy has two parts. Its *structure* (which covers form an aggregate, and the
index lists of the Galerkin products ``P^T A P``) depends on the block pattern alone: it is built
once on the host (aggregation by ``pyamg``) and travels as integer arrays, padded to size
buckets so that spaces of one bucket share compiled programs. Its *values* (smoothed
prolongators, coarse operators, smoothers, the coarsest LU) are computed in JAX from the
operator's values by ``init``: they follow the matrix under ``jit``, batch under ``vmap`` (one
structure for every member of a parameter sweep) and run on accelerators.

The method is smoothed aggregation (Vaněk, Mandel & Brezina 1996) on the cover graph, at block
level: an aggregate of covers becomes one coarse cover with the same ``b`` unknowns (the
tentative prolongator is the identity on each block, which holds the constants, the near-null
space of the scalar and vector Laplacians by component), the prolongator is smoothed by one
damped block-Jacobi step, ``P = (I - ω D⁻¹A) T`` with ``ω = 4 / (3 ρ(D⁻¹A))``, and the coarse
operator is ``P^T A P``. One symmetric V-cycle (one damped block-Jacobi sweep before and after
the coarse correction; the coarsest level solved by a perturbed dense LU) preconditions CG.
The aggregation sees the pattern only (every coupling counts as strong), which suits isotropic
problems with moderate coefficient contrast; strongly anisotropic or high-contrast problems
converge more slowly (the iteration count is reported).
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import scipy.sparse as sp

from ..arrays import unique
from .iterative import _check, _code, _pcg, _residual
from .operator import BlockCSR, segment_sum_nodiff
from .results import RESULTS

_POWER_STEPS = 15  # power iterations for ρ(D⁻¹A); the estimate is raised by 10 % (it is from below)


def _bucket(n: int) -> int:
    from ..buckets import bucket  # (nmm.buckets imports this package)

    return bucket(n)


def _ranges(starts, counts):
    """Concatenated ``arange(s, s + c)`` for every start and count (vectorised)."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + np.arange(total) - offsets


def _grown(a, n: int):
    """``a`` with zero rows appended up to ``n`` rows."""
    return np.concatenate([a, np.zeros((n - a.shape[0], *a.shape[1:]), a.dtype)])


def _padded(a, n: int, fill: int) -> jax.Array:
    out = np.full(n, fill, np.int32)
    out[: len(a)] = a
    return jax.device_put(out)


class Level(eqx.Module):
    """The structure of one coarsening step (integer arrays; the sizes are static).

    ``A`` is the level's operator (blocks at ``rows, cols``), ``P`` the prolongator from the
    ``n_coarse`` aggregates, ``AP`` the product ``A P``. Padded entries point past the end of
    their target (``segment_sum`` drops them) and gather entry 0.
    """

    tentative: jax.Array  # (n_nodes, b, m): each node's tentative prolongator block (the
    #   identity, or the coefficients of the constants in a p-coarsening)
    agg_diag: jax.Array  # (n_nodes,) the P block (i, agg(i)), or n_p for a node in no aggregate
    a2p: jax.Array  # (n_blocks,) the P block (i, agg(j)) of A's block (i, j), or n_p
    p_rows: jax.Array  # (n_p,)
    p_cols: jax.Array
    ap_a: jax.Array  # AP = A P: pairs of an A block and a P block, summed into an AP block
    ap_p: jax.Array
    ap_t: jax.Array
    c_p: jax.Array  # P^T (AP): pairs of a P block and an AP block, summed into a coarse block
    c_ap: jax.Array
    c_t: jax.Array
    c_rows: jax.Array  # the coarse operator's block pattern
    c_cols: jax.Array
    n_coarse: int = eqx.field(static=True)
    n_p: int = eqx.field(static=True)
    n_ap: int = eqx.field(static=True)


def _level(rows, cols, n: int, n_pad: int, blocks_pad: int, tentative, agg=None):
    """One coarsening step of the block pattern ``(rows, cols)`` on ``n`` nodes (the operator's
    arrays hold ``n_pad`` nodes and ``blocks_pad`` blocks): the level, the coarse pattern
    (unpadded rows, cols) and the aggregate count. ``agg``: the aggregate of every node
    (default: pyamg's standard aggregation of the pattern's graph)."""
    if agg is None:
        from pyamg.aggregation import standard_aggregation

        graph = sp.csr_array((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        graph.sum_duplicates()
        agg_op, _ = standard_aggregation(graph)
        agg_op = sp.csr_array(agg_op)
        agg = np.full(n, -1, np.int64)
        agg[np.repeat(np.arange(n), np.diff(agg_op.indptr))] = agg_op.indices
    n_agg = int(agg.max()) + 1 if len(agg) else 0

    # P's pattern: (i, agg(j)) for every block (i, j) of A whose column is aggregated
    keep = agg[cols] >= 0
    keys = rows * n_agg + agg[cols]
    diag_keys = np.arange(n) * n_agg + agg
    p_keys = unique(np.concatenate([keys[keep], diag_keys[agg >= 0]]))
    n_p = len(p_keys)
    p_rows, p_cols = p_keys // n_agg, p_keys % n_agg
    a2p = np.where(keep, np.searchsorted(p_keys, keys), -1)
    agg_diag = np.where(agg >= 0, np.searchsorted(p_keys, diag_keys), -1)

    # AP: every A block (i, j) with every P block of row j, into the AP block (i, J)
    p_ptr = np.searchsorted(p_rows, np.arange(n + 1))
    counts = p_ptr[cols + 1] - p_ptr[cols]
    ap_a = np.repeat(np.arange(len(rows)), counts)
    ap_p = _ranges(p_ptr[cols], counts)
    ap_keys_all = rows[ap_a] * n_agg + p_cols[ap_p]
    ap_keys, ap_t = np.unique(ap_keys_all, return_inverse=True)
    ap_rows, ap_cols = ap_keys // n_agg, ap_keys % n_agg

    # P^T (AP): every P block (i, I) with every AP block of row i, into the coarse block (I, J)
    ap_ptr = np.searchsorted(ap_rows, np.arange(n + 1))
    counts = ap_ptr[p_rows + 1] - ap_ptr[p_rows]
    c_p = np.repeat(np.arange(n_p), counts)
    c_ap = _ranges(ap_ptr[p_rows], counts)
    c_keys, c_t = np.unique(p_cols[c_p] * n_agg + ap_cols[c_ap], return_inverse=True)
    c_rows, c_cols = c_keys // n_agg, c_keys % n_agg

    # padded to size buckets: spaces of one bucket get equal structures' shapes
    nc, np_, nap = _bucket(n_agg), _bucket(n_p), _bucket(len(ap_keys))
    n_pairs, n_cpairs, ncb = _bucket(len(ap_a)), _bucket(len(c_p)), _bucket(len(c_keys))
    level = Level(
        tentative=jax.device_put(_grown(np.asarray(tentative, float), n_pad)),
        agg_diag=_padded(np.where(agg_diag >= 0, agg_diag, np_), n_pad, np_),
        a2p=_padded(np.where(a2p >= 0, a2p, np_), blocks_pad, np_),
        p_rows=_padded(p_rows, np_, 0),
        p_cols=_padded(p_cols, np_, 0),
        ap_a=_padded(ap_a, n_pairs, 0),
        ap_p=_padded(ap_p, n_pairs, 0),
        ap_t=_padded(ap_t, n_pairs, nap),
        c_p=_padded(c_p, n_cpairs, 0),
        c_ap=_padded(c_ap, n_cpairs, 0),
        c_t=_padded(c_t, n_cpairs, ncb),
        c_rows=_padded(c_rows, ncb, 0),
        c_cols=_padded(c_cols, ncb, 0),
        n_coarse=nc,
        n_p=np_,
        n_ap=nap,
    )
    return level, c_rows, c_cols, n_agg


def hierarchy(
    rows, cols, n_block_rows: int, block_size: int, max_coarse: int, max_levels: int, constants=None
):
    """The levels of the block pattern ``(rows, cols)`` on ``n_block_rows`` covers, coarsened
    until at most ``max_coarse`` unknowns (or ``max_levels`` levels, or no more progress).
    ``constants (n_block_rows, block_size, m)``: each cover's coefficients of the constants (one
    column per component); when ``m`` is less than the block, the first level keeps only them
    (p-coarsening: high-order cover functions to the partition of unity), and the levels below
    aggregate covers."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    n, levels = int(n_block_rows), []
    n_pad, blocks_pad = n, len(rows)
    b = block_size
    m = b if constants is None else np.shape(constants)[-1]
    if m < b and n * b > max_coarse and max_levels > 1:
        c = np.asarray(constants, float)[:n]
        c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-300)
        # smoothed like the others, although P^T A P then couples 3-rings of covers: the
        # unsmoothed T (A's own pattern) took more iterations (p = 2, 1e4 unknowns: 1 886
        # against 1 372)
        level, rows, cols, _ = _level(rows, cols, n, n_pad, blocks_pad, c, np.arange(n))
        levels.append(level)
        n_pad, blocks_pad, b = level.n_coarse, len(level.c_rows), m
    while n * b > max_coarse and len(levels) < max_levels - 1:
        eye = np.broadcast_to(np.eye(b), (n, b, b))
        level, c_rows, c_cols, n_agg = _level(rows, cols, n, n_pad, blocks_pad, eye)
        if n_agg == 0 or n_agg > 0.85 * n:  # coarsening stalled: the coarsest level is this one
            break
        levels.append(level)
        rows, cols, n = c_rows, c_cols, n_agg
        n_pad, blocks_pad = level.n_coarse, len(level.c_rows)
    return tuple(levels)


# ----------------------------------------------------------------------------- numeric part


class Smoother(eqx.Module):
    """Damped block Jacobi: ``x ← x + ω D⁻¹ (b - A x)``, ``D⁻¹`` the inverses of the diagonal
    blocks (scaled to unit diagonal and perturbed by ε: high-order cover blocks are singular on
    their own)."""

    inv: jax.Array  # (n, b, b) D_i⁻¹
    omega: jax.Array

    def apply(self, r):
        b = self.inv.shape[-1]
        return self.omega * jnp.einsum("cij,cj->ci", self.inv, r.reshape(-1, b)).reshape(-1)


def _block_inverse(data, rows, cols, n: int, eps: float):
    on_diag = (rows == cols)[:, None, None]
    blocks = segment_sum_nodiff(jnp.where(on_diag, data, 0.0), rows, n)
    d = jnp.abs(jnp.diagonal(blocks, axis1=1, axis2=2))
    s = 1.0 / jnp.sqrt(jnp.where(d > 0, d, 1.0))
    scaled = s[:, :, None] * blocks * s[:, None, :]
    eye = jnp.eye(blocks.shape[-1], dtype=data.dtype)
    # a zero diagonal (a padded cover, a dropped direction): 1 there, its residual is zero
    inv = jnp.linalg.inv(scaled + eps * eye + eye * (d == 0)[:, :, None])
    return s[:, :, None] * inv * s[:, None, :]


def _mv(data, rows, cols, n: int, x):
    b = data.shape[-1]
    xb = x.reshape(-1, b)
    return segment_sum_nodiff(jnp.einsum("kij,kj->ki", data, xb[cols]), rows, n).reshape(-1)


def _spectral_radius(inv, data, rows, cols, n: int):
    """``ρ(D⁻¹A)`` by power iteration (raised by 10 %: the iteration approaches it from below)."""
    b = data.shape[-1]
    v = jax.random.uniform(jax.random.key(0), (n * b,), data.dtype, 0.5, 1.5)

    def step(_, c):
        v, _ = c
        w = jnp.einsum("cij,cj->ci", inv, _mv(data, rows, cols, n, v).reshape(-1, b)).reshape(-1)
        norm = jnp.linalg.norm(w)
        return w / jnp.where(norm > 0, norm, 1.0), norm

    v = v / jnp.linalg.norm(v)
    _, rho = jax.lax.fori_loop(0, _POWER_STEPS, step, (v, jnp.asarray(0.0, data.dtype)))
    return 1.1 * jnp.where(jnp.isfinite(rho) & (rho > 0), rho, 1.0)


class LevelValues(eqx.Module):
    data: jax.Array  # the level's operator blocks
    rows: jax.Array
    cols: jax.Array
    smoother: Smoother
    p: jax.Array  # (n_p, b, m) the smoothed prolongator's blocks


class AMGState(eqx.Module):
    operator: BlockCSR
    structure: tuple  # Level per coarsening step
    levels: tuple  # LevelValues per coarsening step
    coarse_lu: jax.Array
    coarse_piv: jax.Array
    coarse_s: jax.Array
    condition: jax.Array
    result: jax.Array


class AMG(eqx.Module):
    """Conjugate gradients preconditioned by one smoothed-aggregation AMG V-cycle, for
    symmetric positive (semi-)definite operators; all in JAX (jit, vmap, grad, accelerators).

    ``nmm.solve`` builds the hierarchy's structure on the host for the space (``prepare``); a
    direct ``linear_solve`` builds it from a concrete operator. Attributes:
        rtol: stop at this relative residual.
        max_iter: iterations at most (default ``20 sqrt(n) + 1000``).
        eps: perturbation of the unit-diagonal blocks before inverting them (smoothers and the
            coarsest LU).
        max_coarse: the coarsest level has at most this many unknowns (solved by dense LU).
        max_levels: levels at most (the finest included).
        sweeps: damped block-Jacobi sweeps before and after each coarse correction.
        levels: the prepared structure (``None`` until ``prepare``).
    """

    rtol: float = eqx.field(static=True, default=1e-11)
    max_iter: int | None = eqx.field(static=True, default=None)
    eps: float = eqx.field(static=True, default=1e-12)
    max_coarse: int = eqx.field(static=True, default=1000)
    max_levels: int = eqx.field(static=True, default=10)
    sweeps: int = eqx.field(static=True, default=1)
    levels: tuple | None = None
    sizes: tuple | None = eqx.field(static=True, default=None)  # (covers, blocks) prepared for

    def __check_init__(self):
        _check(self)
        for name in ("max_coarse", "max_levels", "sweeps"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")

    @property
    def prepared(self) -> bool:
        return self.levels is not None

    def prepare(self, operator: BlockCSR, constants=None) -> AMG:
        """This solver with its hierarchy built on the host for ``operator``'s block pattern (a
        concrete :class:`BlockCSR`). ``constants (n_block_rows, b, m)``: each cover's
        coefficients of the constant functions, one column per component (``nmm.solve`` passes
        them: high-order systems are first coarsened to them); default: the whole block is
        aggregated."""
        if isinstance(operator.rows, jax.core.Tracer):
            raise ValueError(
                "solver: AMG builds its hierarchy on the host and the operator's pattern is "
                "traced here; call solver = AMG().prepare(K) outside jit/vmap (nmm.solve does it "
                "for you)"
            )
        # (symmetric operators only, see init: a transposed one is stored as itself)
        rows, cols = np.asarray(operator.rows), np.asarray(operator.cols)
        return self.prepare_pattern(rows, cols, operator.n_block_rows, operator.block_size, constants)

    def prepare_pattern(self, rows, cols, n_block_rows: int, block_size: int, constants=None):
        """As :meth:`prepare`, from a block pattern: the block ``rows``, ``cols`` (host arrays)
        of a matrix of ``n_block_rows`` block rows of ``block_size``."""
        levels = hierarchy(
            np.asarray(rows),
            np.asarray(cols),
            int(n_block_rows),
            int(block_size),
            self.max_coarse,
            self.max_levels,
            constants,
        )
        sizes = (int(n_block_rows), len(np.asarray(rows)))
        return dataclasses.replace(self, levels=levels, sizes=sizes)

    def init(self, operator: BlockCSR, release=None) -> AMGState:
        if not operator.symmetric:
            raise ValueError(
                "solver: AMG (CG) needs a symmetric operator and this form is not symmetric; "
                "use nmm.linalg.BiCGStab() or the direct solver"
            )
        solver = self if self.prepared else self.prepare(operator)
        # a structure made for another pattern would fail deep inside JAX (or, with no levels,
        # factor a large operator densely)
        made = solver.sizes
        if made != (operator.n_block_rows, operator.rows.shape[-1]):
            raise ValueError(
                f"solver: this AMG was prepared for {made[0]} covers and {made[1]} blocks, the "
                f"operator has {operator.n_block_rows} and {operator.rows.shape[-1]}; prepare "
                "it for this operator (AMG().prepare(K)), or pass AMG() unprepared to nmm.solve"
            )
        # the state is a preconditioner, never differentiated (its kernels have no derivative)
        data = jax.lax.stop_gradient(operator.data)
        rows, cols, n = operator.rows, operator.cols, operator.n_block_rows
        b = operator.block_size
        values = []
        for level in solver.levels:
            inv = _block_inverse(data, rows, cols, n, self.eps)
            omega = (4.0 / 3.0) / _spectral_radius(inv, data, rows, cols, n)
            # P = (I - ω D⁻¹ A) T: the A blocks summed into their aggregates' columns
            da = jnp.einsum("kij,kjl->kil", inv[rows], data)
            e = level.tentative.astype(data.dtype)
            p = segment_sum_nodiff(-omega * (da @ e[cols]), level.a2p, level.n_p)
            p = p + segment_sum_nodiff(e, level.agg_diag, level.n_p)
            values.append(LevelValues(data, rows, cols, Smoother(inv, omega), p))
            ap = jnp.einsum("kij,kjl->kil", data[level.ap_a], p[level.ap_p])
            ap = segment_sum_nodiff(ap, level.ap_t, level.n_ap)
            coarse = jnp.einsum("kji,kjl->kil", p[level.c_p], ap[level.c_ap])
            data = segment_sum_nodiff(coarse, level.c_t, len(level.c_rows))
            rows, cols, n, b = level.c_rows, level.c_cols, level.n_coarse, e.shape[-1]
        # the coarsest level: dense LU of the unit-diagonal matrix perturbed by ε
        nb = n * b
        dense = jnp.zeros((n, b, n, b), data.dtype).at[rows, :, cols, :].add(data).reshape(nb, nb)
        d = jnp.abs(jnp.diagonal(dense))
        s = 1.0 / jnp.sqrt(jnp.where(d > 0, d, 1.0))
        eye = jnp.eye(nb, dtype=data.dtype)
        lu, piv = jsl.lu_factor(s[:, None] * dense * s[None, :] + self.eps * eye)
        finite = jnp.all(jnp.isfinite(lu)) & jnp.all(
            jnp.asarray([jnp.all(jnp.isfinite(v.p)) for v in values] + [True])
        )
        result = jnp.where(finite, RESULTS.successful, RESULTS.nonfinite).astype(jnp.int32)
        one = jnp.asarray(-1.0, data.dtype)
        return AMGState(operator, solver.levels, tuple(values), lu, piv, s, one, result)

    def _vcycle(self, state: AMGState, r):
        def cycle(k, r):
            if k == len(state.levels):
                return state.coarse_s * jsl.lu_solve(
                    (state.coarse_lu, state.coarse_piv), state.coarse_s * r
                )
            lv = state.levels[k]
            b = lv.data.shape[-1]
            n = r.shape[0] // b
            level = state.structure[k]

            def smooth(x):
                for _ in range(self.sweeps):
                    x = x + lv.smoother.apply(r - _mv(lv.data, lv.rows, lv.cols, n, x))
                return x

            x = smooth(jnp.zeros_like(r))
            res = (r - _mv(lv.data, lv.rows, lv.cols, n, x)).reshape(-1, b)
            # restriction P^T res, prolongation P xc (P's blocks at p_rows, p_cols)
            rc = jnp.einsum("kji,kj->ki", lv.p, res[level.p_rows])
            rc = segment_sum_nodiff(rc, level.p_cols, level.n_coarse).reshape(-1)
            xc = cycle(k + 1, rc).reshape(-1, lv.p.shape[-1])
            x = x + segment_sum_nodiff(
                jnp.einsum("kij,kj->ki", lv.p, xc[level.p_cols]), level.p_rows, n
            ).reshape(-1)
            return smooth(x)

        return cycle(0, r)

    def solve(self, state: AMGState, b, operator: BlockCSR | None = None, *, last=False):
        op = state.operator if operator is None else operator
        max_iter = self.max_iter or int(20 * b.shape[-1] ** 0.5) + 1000
        mv = functools.partial(op.mv, differentiable=False)
        x, k = _pcg(mv, lambda r: self._vcycle(state, r), b, self.rtol, max_iter)
        res = _residual(mv, x, b)
        code = _code(x, res, k >= max_iter, self.rtol)
        code = jnp.where(state.result != RESULTS.successful, state.result, code).astype(jnp.int32)
        return x, code, res, k.astype(b.dtype)

    def transpose_solve(self, state: AMGState, b, operator: BlockCSR | None = None, *, last=False):
        return self.solve(state, b, operator)  # symmetric
