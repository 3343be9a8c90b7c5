"""Host sparse direct solver: SuperLU (scipy) behind ``jax.pure_callback``, with a factor cache.

Singular and near-singular systems are the normal case in high-order NMM: hat weights times
polynomial cover functions are linearly dependent, and covers that hold only a sliver of the domain
give near-zero pivots. Both are handled the way Strouboulis, Babuška & Copps (2000) proposed for
GFEM: scale the matrix to unit diagonal, factor it with a small diagonal perturbation ε, and recover
the accuracy lost to ε by iterative refinement against the unperturbed matrix. The systems are
consistent, so the field converges even where the coefficients are not unique.

Keeping the factorisation: a factorisation lives on the host, so the solver *state* that JAX
carries is a handle (an integer) into a bounded cache of factorisations, together with the
operator itself. ``solve`` and ``transpose_solve`` look the handle up; a handle the cache has
dropped is refactored from the operator, so results never depend on the cache, only the time
does. The adjoint of a solve and repeated solves with one matrix (many right-hand sides, frozen
Newton Jacobians, time steps) therefore factor once.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..arrays import unique_inverse
from .operator import BlockCSR
from .ordering import nested_dissection
from .results import RESULTS

_ORDERINGS = ("nested_dissection", "mmd")
_DROP = 1e-14  # entries of the unit-diagonal p = 0 matrix below this are round-off (see _factor)
_FAIL_RESIDUAL = 1e-6


# ------------------------------------------------------------------------------ factor cache


@dataclass
class _Factor:
    lu: object  # scipy SuperLU object
    s: np.ndarray  # unit-diagonal scaling
    a: sp.csc_matrix  # the scaled, unperturbed matrix (refinement runs against it)
    cond: float
    nbytes: int


class _FactorCache:
    """Least-recently-used factorisations, bounded in number and bytes. A cache, not state: a
    missing entry is recomputed from the operator, so evictions only cost time."""

    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[int, _Factor] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.factored = 0  # factorisations computed (cached or not): a diagnostic

    def count_one(self) -> None:
        with self._lock:
            self.factored += 1

    def put(self, f: _Factor) -> int:
        return self.put_many([f])[0]

    def put_many(self, factors: list[_Factor]) -> list[int]:
        """Store a batch's factors and evict the least recently used *older* ones over the
        bounds: a batch larger than the bounds stays whole until its solves have used it (an
        evicted member would be factored twice)."""
        with self._lock:
            handles = []
            for f in factors:
                h = next(self._ids)
                self._entries[h] = f
                handles.append(h)
            keep = len(factors)
            total = sum(e.nbytes for e in self._entries.values())
            while len(self._entries) > max(keep, 1) and (
                len(self._entries) > self.max_entries or total > self.max_bytes
            ):
                _, old = self._entries.popitem(last=False)
                total -= old.nbytes
            return handles

    def drop(self, handles) -> None:
        with self._lock:
            for h in np.unique(np.asarray(handles)).tolist():
                self._entries.pop(int(h), None)

    def get(self, h: int) -> _Factor | None:
        with self._lock:
            f = self._entries.get(int(h))
            if f is not None:
                self._entries.move_to_end(int(h))
            return f

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


FACTORS = _FactorCache(
    max_entries=int(os.environ.get("NMM_FACTOR_CACHE_ENTRIES", "16")),
    max_bytes=int(float(os.environ.get("NMM_FACTOR_CACHE_MB", "2048")) * 2**20),
)


def factorisations() -> int:
    """How many sparse factorisations this process has computed (a diagnostic counter: the
    difference across a call counts that call's factorisations)."""
    return FACTORS.factored


def clear_factor_cache() -> None:
    """Drop every cached factorisation (states that refer to them refactor on their next use)."""
    FACTORS.clear()


# ------------------------------------------------------------------------------ host kernels


class _Layout:
    """The CSC layout of a sparsity pattern, made once per pattern and kept: where each stored
    entry goes (entries at one place are summed: a bucketed space's padding repeats one block),
    with every diagonal entry present. A batch member's matrix is then one ``bincount`` and a few
    array products instead of scipy's BSR -> CSC, sparse sum with the perturbation and
    ``eliminate_zeros``, all GIL-held (measured at 1e4 unknowns, BLAS on one thread: a
    factorisation 13.2 ms against 12.0 ms for ``splu`` alone; ``to_scipy`` alone took 0.69 ms)."""

    def __init__(self, i: np.ndarray, j: np.ndarray, n: int, block: int = 1):
        """Entries at ``(i, j)``; ``block``: the size of the blocks that the unknowns come in
        (a fill-reducing order keeps each block's unknowns together)."""
        diag = np.arange(n)
        keys, slot = unique_inverse(np.concatenate([j * n + i, diag * n + diag]))
        self.n, self.block = n, block
        self._reordering = None  # (kept entries, _Reordering): the last one made
        self.slot = slot[: len(i)]  # the CSC place of each entry
        self.diag = slot[len(i) :]  # the place of each diagonal entry
        self.indices = (keys % n).astype(np.int32)
        self.col = keys // n
        self.indptr = np.searchsorted(self.col, np.arange(n + 1)).astype(np.int32)

    @classmethod
    def of_blocks(cls, rows, cols, n_block_rows: int, b: int) -> _Layout:
        """Blocks ``(n_blocks, b, b)`` at block ``rows``, ``cols``, entry ``[k, r, c]`` at
        ``(rows[k] b + r, cols[k] b + c)``."""
        r = np.arange(b)
        i = rows[:, None, None] * b + r[None, :, None]
        j = cols[:, None, None] * b + r[None, None, :]
        i, j = np.broadcast_arrays(i, j)
        return cls(i.reshape(-1), j.reshape(-1), n_block_rows * b, b)

    def csc(self, values, indices=None, indptr=None) -> sp.csc_matrix:
        indices = self.indices if indices is None else indices
        indptr = self.indptr if indptr is None else indptr
        return sp.csc_matrix((values, indices, indptr), shape=(self.n, self.n))

    def scaled(self, entries, s=None):
        """``(s, values)``: the unit-diagonal scaling (``s``: given) and the values of ``S A S``."""
        v = np.bincount(self.slot, weights=np.ravel(entries), minlength=len(self.indices))
        if s is None:
            d = np.abs(v[self.diag])
            s = 1.0 / np.sqrt(np.where(d > 0, d, 1.0))  # a cover with no data keeps its zero row
        v *= s[self.indices] * s[self.col]
        return s, v

    def factor(self, entries, symmetric: bool, opts: SuperLU) -> _Factor:
        s, v = self.scaled(entries)
        factored = v.copy()
        factored[self.diag] += opts.eps
        indices, indptr, keep = self.indices, self.indptr, None
        if opts.drop_roundoff:
            # For scalar blocks (p = 0) the factored copy drops entries at round-off level
            # (couplings across the hypotenuse of right triangles cancel to 1e-17): kept, they
            # add ~40% fill and slow SuperLU 8x at 1e6 unknowns. Refinement runs against the
            # unmodified matrix.
            keep = np.abs(factored) >= _DROP
            if keep.all():
                keep = None
            else:
                factored, indices = factored[keep], indices[keep]
                indptr = np.concatenate([[0], np.cumsum(keep)])[indptr].astype(np.int32)
        perm = None
        if opts.presorts(symmetric):
            r = self.reordering(keep, indices, indptr)
            factored, indices, indptr, perm = factored[r.entries], r.indices, r.indptr, r.perm
        return _lu(self.csc(v), self.csc(factored, indices, indptr), s, symmetric, opts, perm)

    def reordering(self, keep: np.ndarray | None, indices, indptr) -> _Reordering:
        """The nested-dissection order of the entries ``keep`` (``None``: all; ``indices``,
        ``indptr``: their CSC structure) and where they go in it; made once and kept while the
        kept entries stay the same (a check of ~1 ms).

        The graph is that of the matrix factored, after the round-off entries are dropped (at p
        = 0 the dropped couplings across hypotenuses, kept in the graph, gave an order with 50 %
        more fill); for blocks of several unknowns it is the graph of the blocks."""
        made = self._reordering
        if made is not None and _same_entries(made[0], keep):
            return made[1]
        b, n = self.block, self.n
        counts = np.diff(indptr)
        cols = np.repeat(np.arange(n), counts)
        if b > 1:  # one entry per block: its first
            first = (indices % b == 0) & (cols % b == 0)
            order = nested_dissection(cols[first] // b, indices[first] // b, n // b)
            perm = (order[:, None] * b + np.arange(b)).reshape(-1)
        else:  # the columns are sorted: given as the rows of the (symmetric) graph
            perm = nested_dissection(cols, indices, n)
        new = np.empty_like(perm)
        new[perm] = np.arange(n)
        # new column k is old column perm[k]; scipy sorts the rows within columns (in C), with
        # each entry's old place riding along as its value
        new_counts = counts[perm]
        new_indptr = np.concatenate([[0], np.cumsum(new_counts)])
        shift = np.repeat(np.asarray(indptr[:-1])[perm] - new_indptr[:-1], new_counts)
        entries = np.arange(len(indices)) + shift
        m = sp.csc_matrix((entries.astype(np.float64), new[indices[entries]], new_indptr), shape=(n, n))
        m.sort_indices()
        r = _Reordering(perm, m.data.astype(np.int64), m.indices, m.indptr)
        self._reordering = (keep, r)
        return r


def _same_entries(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return a is b or (a is not None and b is not None and np.array_equal(a, b))


@dataclass(frozen=True)
class _Reordering:
    """A symmetric renumbering of a layout's (kept) entries: ``perm[new] = old``; ``entries``:
    the kept entries in the CSC order of the renumbered matrix, with its ``indices`` and
    ``indptr``."""

    perm: np.ndarray
    entries: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray


class _Renumbered:
    """The factorisation of ``A[perm][:, perm]`` as a factorisation of ``A``: ``solve`` and
    ``nnz``, like scipy's SuperLU object."""

    def __init__(self, lu, perm: np.ndarray):
        self.lu, self.perm, self.nnz = lu, perm, lu.nnz

    def solve(self, b, trans: str = "N"):
        y = self.lu.solve(np.ascontiguousarray(b[self.perm]), trans=trans)
        x = np.empty_like(y)
        x[self.perm] = y
        return x


def _factor(a: sp.spmatrix, symmetric: bool, opts: SuperLU) -> _Factor:
    """Factor a scipy matrix (see :class:`_Layout` for the batch path's own layouts)."""
    a = sp.coo_matrix(a)
    return _Layout(a.row.astype(np.int64), a.col.astype(np.int64), a.shape[0]).factor(
        a.data, symmetric, opts
    )


def _lu(a, factored, s, symmetric: bool, opts: SuperLU, perm=None) -> _Factor:
    """SuperLU of the perturbed, scaled ``factored``; ``a``: the scaled matrix refinement runs
    against; ``perm``: ``factored`` is ``a``'s perturbed copy renumbered by it."""
    n = a.shape[0]
    FACTORS.count_one()
    lu = opts.factorize(factored, symmetric, presorted=perm is not None)
    if perm is not None:
        lu = _Renumbered(lu, perm)
    cond = -1.0
    if opts.condition:
        inv = spla.LinearOperator(
            (n, n), matvec=lu.solve, rmatvec=lambda v: lu.solve(v, trans="T"), dtype=float
        )
        cond = float(spla.onenormest(a) * spla.onenormest(inv))
    # supernodal L + U (values and indices) and the scaled matrix kept for refinement; lu.nnz,
    # not lu.L / lu.U, which would build copies of the factors
    nbytes = lu.nnz * 20 + a.nnz * 16
    return _Factor(lu, s, a, cond, nbytes)


def _refine(f: _Factor, a: sp.csc_matrix, b: np.ndarray, trans: bool, opts: SuperLU):
    """Iterative refinement of the scaled system ``a x = s b`` (``a`` already scaled by ``f.s``).

    Stops on the energy of the correction, not on the residual: a mode with eigenvalue λ leaves a
    field error ~ residual / sqrt(λ), so a tiny residual can hide a visible error."""
    if trans:
        a = a.T
    rhs = f.s * b
    norm = np.linalg.norm(rhs)
    x = np.zeros_like(rhs)
    if not np.isfinite(norm):  # reported as non-finite by _code, never solved as zero
        return x, np.inf, 0, True
    r, it, res, met = rhs, 0, 0.0, norm == 0
    while norm > 0 and it < opts.max_iter:
        dx = f.lu.solve(r, trans="T" if trans else "N")
        x = x + dx
        ax = a @ x
        r = rhs - ax
        it += 1
        res = np.linalg.norm(r) / norm
        energy = np.sqrt(abs(dx @ (a @ dx)) / max(abs(x @ ax), 1e-300))
        # near-singular high-order systems converge slowly (modes with λ ~ eps shrink by
        # λ/(λ+eps) per step) but steadily; max_iter bounds the work
        met = energy <= opts.rtol
        if met or not np.isfinite(res):
            break
    return f.s * x, res, it, met


def _code(x, res, met: bool = True) -> int:
    """The result of a refined solve; ``met``: the refinement's energy rule held."""
    if not np.all(np.isfinite(x)) or not np.isfinite(res):
        return RESULTS.nonfinite
    if res > _FAIL_RESIDUAL:
        return RESULTS.residual_too_large
    return RESULTS.successful if met else RESULTS.refinement_stalled


def _batch(arrays_and_trailing):
    """Iterate over the broadcast leading (batch) axes of callback arguments: yields the flat
    member index and, per argument, the index of the member's slice."""
    leads = [a.shape[: a.ndim - t] for a, t in arrays_and_trailing]
    full = np.broadcast_shapes(*leads)
    for k, idx in enumerate(np.ndindex(*full)):
        yield k, [tuple(i if s > 1 else 0 for i, s in zip(idx, lead, strict=True)) for lead in leads]


def _full_shape(arrays_and_trailing):
    return np.broadcast_shapes(*[a.shape[: a.ndim - t] for a, t in arrays_and_trailing])


@dataclass(frozen=True)
class _Pattern:
    """The block pattern as the host reads it at run time (from the operator's arrays)."""

    rows: np.ndarray
    cols: np.ndarray
    n_block_rows: int
    # this callback's layouts by block size: the content key below (0.3 ms to hash at 1e4
    # unknowns) is looked up once per callback, not once per batch member
    layouts: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, rows, cols, n_block_rows: int) -> _Pattern:
        # unbatched operands of a vmapped callback arrive with leading axes of size 1
        rows, cols = (np.asarray(v).reshape(-1, np.shape(v)[-1])[0] for v in (rows, cols))
        return cls(rows, cols, n_block_rows)

    def layout(self, b: int) -> _Layout:
        if b not in self.layouts:
            self.layouts[b] = _cached_layout(self, b)
        return self.layouts[b]


def _cached_layout(pattern: _Pattern, b: int) -> _Layout:
    # keyed by the pattern's contents: a callback receives new arrays every time
    key = (pattern.n_block_rows, b, pattern.rows.tobytes(), pattern.cols.tobytes())
    with _LAYOUT_LOCK:
        layout = _LAYOUTS.get(key)
        if layout is not None:
            _LAYOUTS.move_to_end(key)
            return layout
    layout = _Layout.of_blocks(pattern.rows, pattern.cols, pattern.n_block_rows, b)
    with _LAYOUT_LOCK:
        _LAYOUTS[key] = layout
        while len(_LAYOUTS) > 4:
            _LAYOUTS.popitem(last=False)
    return layout


_LAYOUTS: OrderedDict = OrderedDict()  # the last few patterns' layouts (a cache, not state)
_LAYOUT_LOCK = threading.Lock()


def _try_factor(data, pattern: _Pattern, transposed, symmetric, opts):
    if not np.all(np.isfinite(data)):
        return None, RESULTS.nonfinite
    try:
        return pattern.layout(data.shape[-1]).factor(data, symmetric, opts), RESULTS.successful
    except RuntimeError:  # "Factor is exactly singular"
        return None, RESULTS.singular


def host_threads() -> int:
    """Threads that factor and solve the members of a batch at once (``NMM_HOST_THREADS``,
    default: the CPU count). SuperLU releases the GIL while it factors (measured: two threads
    use 1.4 CPU-seconds a wall-second), so a ``vmap`` of solves with different matrices runs
    its factorisations side by side instead of one after another."""
    raw = os.environ.get("NMM_HOST_THREADS", "")
    try:
        n = int(raw) if raw else (os.cpu_count() or 1)
    except ValueError:
        raise ValueError(f"NMM_HOST_THREADS must be a positive integer, got {raw!r}") from None
    if n < 1:
        raise ValueError(f"NMM_HOST_THREADS must be a positive integer, got {raw!r}")
    return n


@functools.lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    # one pool per thread count, made on first use and kept: threads are cheap to keep and
    # costly to start on every callback
    return ThreadPoolExecutor(threads, thread_name_prefix="nmm-superlu")


@functools.lru_cache(maxsize=1)
def _blas():
    # found once: inspecting the loaded libraries costs about a millisecond
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _map(fn, items):
    """``[fn(i) for i in items]``, on the host pool when there is more than one item.

    BLAS (the OpenBLAS that SuperLU calls for its small dense blocks) is held to one thread
    meanwhile. Its threads slow SuperLU down even alone (2 cores, 64 factorisations of 1e4
    unknowns one after another: 1.52–1.89 s with OpenBLAS's 2 threads, 1.21–1.35 s with one),
    and on top of ours they oversubscribe the cores (64 factor-and-solves on two threads: 1.56 s,
    slower than 1.26 s on one; 0.82 s on two with BLAS on one thread)."""
    items = list(items)
    threads = min(host_threads(), len(items))
    with _blas().limit(limits=1, user_api="blas"):
        if threads <= 1:
            return [fn(i) for i in items]
        return list(_pool(threads).map(fn, items))


def _host_init(pattern, transposed, symmetric, opts, data, release=None):
    if release is not None:  # the state this one replaces (a Newton step): free its factor
        FACTORS.drop(release)
    data = np.asarray(data, dtype=float)
    args = [(data, 3)]
    full = _full_shape(args)
    handles, conds, codes = (np.empty(full, np.int32), np.empty(full), np.empty(full, np.int32))
    members = [di for _, (di,) in _batch(args)]
    factors = _map(lambda di: _try_factor(data[di], pattern, transposed, symmetric, opts), members)
    stored = iter(FACTORS.put_many([f for f, _ in factors if f is not None]))
    for di, (f, code) in zip(members, factors, strict=True):
        handles[di] = next(stored) if f is not None else -1
        conds[di] = f.cond if f is not None else -1.0
        codes[di] = code
    return handles, conds, codes


def _solve_member(pattern, transposed, symmetric, opts, trans, same, f, data, ref, b):
    """One batch member's refined solve: ``(x, residual, iterations, code)``; ``f`` is its
    cached factor or ``None`` (evicted: refactored here)."""
    if f is None:
        f, code = _try_factor(data, pattern, transposed, symmetric, opts)
        if f is None:
            return None, 0.0, 0, code
    if same or np.array_equal(ref, data):
        a = f.a
    else:
        layout = pattern.layout(ref.shape[-1])
        a = layout.csc(layout.scaled(ref, f.s)[1])
    x, r, it, met = _refine(f, a, b, trans, opts)
    if a is not f.a and (not np.isfinite(r) or r > 1e-9):
        # the factor of a nearby matrix did not converge as a preconditioner: factor this one
        g, code = _try_factor(ref, pattern, transposed, symmetric, opts)
        if g is None:
            return None, 0.0, 0, code
        x, r, it, met = _refine(g, g.a, b, trans, opts)
    return x, r, it, _code(x, r, met)


def _host_solve(pattern, transposed, symmetric, opts, trans, handles, data, ref, b, last=False):
    """Solve with the factor of ``data`` (refactored if the cache dropped it), refining against
    ``ref`` (the same matrix, or a nearby one such as a Newton Jacobian at the solution); with
    ``last``, free the factor afterwards. Batch members run on the host threads."""
    handles = np.asarray(handles)
    data, ref, b = (np.asarray(v, dtype=float) for v in (data, ref, b))
    args = [(handles, 0), (data, 3), (ref, 3), (b, 1)]
    full = _full_shape(args)
    # the stored matrix is A; a transposed operator stands for A^T, whose solve is A's transpose
    # solve
    trans = trans != transposed
    same = ref is data
    members = list(_batch(args))

    def one(member):
        _, (hi, di, ri, bi) = member
        f = FACTORS.get(handles[hi]) if handles[hi] >= 0 else None
        return _solve_member(
            pattern, transposed, symmetric, opts, trans, same, f, data[di], ref[ri], b[bi]
        )

    xs, res, its, codes, _ = _gathered(members, _map(one, members), full, b.shape[-1])
    if last:
        FACTORS.drop(handles)
    return xs, res, its, codes


def _host_factor_solve(pattern, transposed, symmetric, opts, data, b):
    """Factor every batch member's matrix, solve it and free the factorisation at once: the
    forward solve that keeps no state. Each host thread holds one factorisation at a time, so a
    batch needs the memory of a few factors, not of all of them, and a member's solve does not
    wait for the other members' factorisations."""
    data, b = (np.asarray(v, dtype=float) for v in (data, b))
    args = [(data, 3), (b, 1)]
    full = _full_shape(args)
    members = list(_batch(args))

    def one(member):
        _, (di, bi) = member
        f, code = _try_factor(data[di], pattern, transposed, symmetric, opts)
        if f is None:
            return None, 0.0, 0, code, -1.0
        # the stored matrix is A; a transposed operator stands for A^T: A's transpose solve
        x, r, it, met = _refine(f, f.a, b[bi], transposed, opts)
        return x, r, it, _code(x, r, met), f.cond

    return _gathered(members, _map(one, members), full, b.shape[-1])


class HostFactor:
    """A factorisation that an eager solve holds in Python (no cache handle, freed with the
    object): :meth:`SuperLU.factor_on_host`."""

    def __init__(self, opts: SuperLU, operator: BlockCSR):
        self.opts = opts
        self.data = np.asarray(operator.data, dtype=float)
        self.pattern = _Pattern.of(
            np.asarray(operator.rows), np.asarray(operator.cols), operator.n_block_rows
        )
        self.transposed, self.symmetric = operator.transposed, operator.symmetric
        self.factor, self.code = _try_factor(
            self.data, self.pattern, self.transposed, self.symmetric, opts
        )
        self.condition = self.factor.cond if self.factor is not None else -1.0

    def solve(self, b):
        """``(x, residual, iterations, code)`` of ``A x = b``, refined as the solver's options
        say; ``x`` is zero where factoring failed."""
        b = np.asarray(b, dtype=float)
        if self.factor is None:
            return np.zeros_like(b), 0.0, 0, self.code
        # the stored matrix is A; a transposed operator stands for A^T: A's transpose solve
        t = self.transposed
        x, r, it, code = _solve_member(
            self.pattern, t, self.symmetric, self.opts, t, True, self.factor, self.data, self.data, b
        )
        return (np.zeros_like(b) if x is None else x), r, it, code


def _gathered(members, results, full, n: int):
    """Batch members' ``(x or None, residual, iterations, code[, condition])`` in arrays of the
    batch's shape ``full``: ``(xs, residuals, iterations, codes, conditions)`` (condition -1
    where not reported; x, residual and iterations zero where the member failed)."""
    xs = np.zeros((*full, n))
    res, its, conds = np.zeros(full), np.zeros(full), np.full(full, -1.0)
    codes = np.zeros(full, np.int32)
    for (k, _), (x, r, it, code, *cond) in zip(members, results, strict=True):
        out = np.unravel_index(k, full) if full else ()
        codes[out] = code
        if cond:
            conds[out] = cond[0]
        if x is not None:
            xs[out], res[out], its[out] = x, r, it
    return xs, res, its, codes, conds


def _outputs(full, dtype, x, res, its, code):
    """A refined solve's host results in the shapes and dtypes its callback declares."""
    return (
        x.reshape(*full, -1).astype(dtype),
        res.reshape(full).astype(dtype),
        its.reshape(full).astype(dtype),
        code.reshape(full),
    )


# ------------------------------------------------------------------------------ the solver


class SuperLUState(eqx.Module):
    """A factorisation held by the host cache: ``handle`` (-1 if factoring failed), the operator it
    factors (to refactor after an eviction), its condition estimate and the factoring result."""

    handle: jax.Array
    operator: BlockCSR
    condition: jax.Array
    result: jax.Array


class SuperLU(eqx.Module):
    """Sparse direct solver on the host (SuperLU), with unit-diagonal scaling, a diagonal
    perturbation and iterative refinement.

    Attributes:
        eps: diagonal perturbation of the unit-diagonal matrix before factoring.
        rtol: refinement stops when the energy norm of a correction falls below ``rtol`` times
            that of the solution.
        max_iter: refinement steps at most.
        condition: estimate the 1-norm condition number of the factored matrix at ``init``
            (a few extra solves).
        drop_roundoff: drop entries below 1e-14 of the unit diagonal from the factored copy
            (``None``: only for scalar blocks, where they are round-off of cancelling couplings).
        ordering: the elimination order of symmetric matrices: ``"nested_dissection"`` (nmm's
            own, of the cover graph, :mod:`nmm.linalg.ordering`; made once per pattern and
            kept) or ``"mmd"`` (SuperLU's minimum degree on ``A + Aᵀ``). Non-symmetric matrices
            are factored with partial pivoting in SuperLU's COLAMD order.
    """

    eps: float = eqx.field(static=True, default=1e-12)
    rtol: float = eqx.field(static=True, default=1e-11)
    max_iter: int = eqx.field(static=True, default=20)
    condition: bool = eqx.field(static=True, default=False)
    drop_roundoff: bool | None = eqx.field(static=True, default=None)
    ordering: str = eqx.field(static=True, default="nested_dissection")

    def __check_init__(self):
        if self.ordering not in _ORDERINGS:
            raise ValueError(f"ordering must be one of {_ORDERINGS}, got {self.ordering!r}")
        if not (0 <= self.eps < 1):
            raise ValueError(f"eps must be in [0, 1), got {self.eps!r}")
        if not (0 < self.rtol < 1):
            raise ValueError(f"rtol must be in (0, 1), got {self.rtol!r}")
        if int(self.max_iter) != self.max_iter or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")

    def _opts(self, block_size: int, ordering: str | None = None) -> SuperLU:
        drop = self.drop_roundoff if self.drop_roundoff is not None else block_size == 1
        order = self.ordering if ordering is None else ordering
        return type(self)(self.eps, self.rtol, int(self.max_iter), self.condition, drop, order)

    def presorts(self, symmetric: bool) -> bool:
        """Whether a matrix reaches :meth:`factorize` renumbered by nmm's nested dissection."""
        return symmetric and self.ordering == "nested_dissection"

    def factorize(self, a: sp.csc_matrix, symmetric: bool, presorted: bool = False):
        """The factorisation of the scaled, perturbed ``a`` (host): an object with
        ``solve(b, trans="N" | "T")`` and ``nnz``; ``presorted``: ``a`` is in a fill-reducing
        order already (:meth:`presorts`). Raises ``RuntimeError`` where ``a`` is exactly
        singular."""
        if symmetric:
            # SuperLU's minimum degree depends on the order it is given: it must never see a
            # presorted matrix (measured: 29.6 s and 15× the fill on a p = 0, 1e5 system)
            order = "NATURAL" if presorted else "MMD_AT_PLUS_A"
            return spla.splu(a, permc_spec=order, diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        # partial pivoting: a non-symmetric matrix may need it
        return spla.splu(a, permc_spec="COLAMD")

    def init(self, operator: BlockCSR, release: SuperLUState | None = None) -> SuperLUState:
        """Factor ``operator``; ``release``: a state this one replaces, whose factor is freed."""
        opts = self._opts(operator.block_size)
        lead = operator.data.shape[:-3]
        shapes = (
            jax.ShapeDtypeStruct(lead, jnp.int32),  # int32: valid without jax_enable_x64
            jax.ShapeDtypeStruct(lead, operator.data.dtype),
            jax.ShapeDtypeStruct(lead, jnp.int32),
        )

        n_rows = operator.n_block_rows

        def host(data, rows, cols, *old):
            h, c, code = _host_init(
                _Pattern.of(rows, cols, n_rows),
                operator.transposed,
                operator.symmetric,
                opts,
                data,
                np.asarray(old[0]) if old else None,
            )
            return h.reshape(data.shape[:-3]), c.reshape(data.shape[:-3]).astype(data.dtype), code

        old = () if release is None else (release.handle,)
        handle, cond, result = jax.pure_callback(
            host,
            shapes,
            jax.lax.stop_gradient(operator.data),
            operator.rows,
            operator.cols,
            *old,
            vmap_method="expand_dims",
        )
        return SuperLUState(handle, operator, cond, result)

    def factor_and_solve(self, operator: BlockCSR, b):
        """Factor ``operator``, solve ``A x = b`` and free the factorisation, in one host call:
        the solve that keeps no state (a forward solve with no derivative asked for). Under
        ``vmap`` every member is factored and solved on the host threads as soon as a thread is
        free. Returns ``(x, result, residual, iterations, condition)``, as ``init`` followed by
        ``solve(..., last=True)`` would."""
        lead = jnp.broadcast_shapes(operator.data.shape[:-3], b.shape[:-1])
        shapes = (
            jax.ShapeDtypeStruct((*lead, b.shape[-1]), b.dtype),
            jax.ShapeDtypeStruct(lead, jnp.int32),
            jax.ShapeDtypeStruct(lead, b.dtype),
            jax.ShapeDtypeStruct(lead, b.dtype),
            jax.ShapeDtypeStruct(lead, b.dtype),
        )
        host = functools.partial(self.factor_and_solve_on_host, operator)
        stop = jax.lax.stop_gradient
        return jax.pure_callback(
            host,
            shapes,
            stop(operator.data),
            stop(b),
            operator.rows,
            operator.cols,
            vmap_method="expand_dims",
        )

    def factor_and_solve_on_host(self, operator: BlockCSR, data, b, rows=None, cols=None):
        """:meth:`factor_and_solve` outside a JAX program, on numpy arrays (``data``, ``rows``,
        ``cols``: the operator's, by default): an eager solve calls it directly, so that its
        compiled parts hold no callback and JAX's persistent cache keeps them."""
        opts = self._opts(operator.block_size)
        data, b = np.asarray(data), np.asarray(b)
        rows = np.asarray(operator.rows if rows is None else rows)
        cols = np.asarray(operator.cols if cols is None else cols)
        full = np.broadcast_shapes(data.shape[:-3], b.shape[:-1])
        pattern = _Pattern.of(rows, cols, operator.n_block_rows)
        x, r, it, code, cond = _host_factor_solve(
            pattern, operator.transposed, operator.symmetric, opts, data, b
        )
        x, r, it, code = _outputs(full, b.dtype, x, r, it, code)
        return x, code, r, it, cond.reshape(full).astype(b.dtype)

    def factor_on_host(self, operator: BlockCSR) -> HostFactor:
        """Factor a concrete (unbatched) ``operator`` outside any JAX program: the eager solves
        that refine outside (stable spaces) hold it in Python."""
        return HostFactor(self._opts(operator.block_size), operator)

    def _solve(self, state: SuperLUState, b, operator, trans: bool, last: bool):
        op = state.operator
        if operator is not None and operator.transposed != op.transposed:
            raise ValueError(
                "operator: refine against a matrix stored like the factored one (both A or "
                f"both A.T), got transposed={operator.transposed} for a state of "
                f"transposed={op.transposed}"
            )
        opts = self._opts(op.block_size)
        ref = op.data if operator is None else operator.data
        lead = jnp.broadcast_shapes(state.handle.shape, op.data.shape[:-3], ref.shape[:-3], b.shape[:-1])
        shapes = (
            jax.ShapeDtypeStruct((*lead, b.shape[-1]), b.dtype),
            jax.ShapeDtypeStruct(lead, b.dtype),
            jax.ShapeDtypeStruct(lead, b.dtype),
            jax.ShapeDtypeStruct(lead, jnp.int32),
        )
        same = operator is None
        n_rows = op.n_block_rows

        def host(handle, data, ref_data, rhs, rows, cols):
            full = np.broadcast_shapes(
                handle.shape, data.shape[:-3], ref_data.shape[:-3], rhs.shape[:-1]
            )
            x, r, it, code = _host_solve(
                _Pattern.of(rows, cols, n_rows),
                op.transposed,
                op.symmetric,
                opts,
                trans,
                handle,
                data,
                data if same else ref_data,
                rhs,
                last,
            )
            return _outputs(full, rhs.dtype, x, r, it, code)

        stop = jax.lax.stop_gradient
        x, res, its, code = jax.pure_callback(
            host,
            shapes,
            state.handle,
            stop(op.data),
            stop(ref),
            stop(b),
            op.rows,
            op.cols,
            vmap_method="expand_dims",
        )
        code = jnp.where(state.result != RESULTS.successful, state.result, code)
        return x, code, res, its

    def solve(self, state: SuperLUState, b, operator: BlockCSR | None = None, *, last=False):
        """Solve ``A x = b`` with the factorisation in ``state``; with ``operator``, refine against
        that (nearby) matrix instead; ``last``: the state is not used again (its factor is
        freed). Returns ``(x, result, residual, iterations)``."""
        return self._solve(state, b, operator, trans=False, last=last)

    def transpose_solve(self, state: SuperLUState, b, operator: BlockCSR | None = None, *, last=False):
        """Solve ``A^T x = b`` with the same factorisation."""
        return self._solve(state, b, operator, trans=True, last=last)
