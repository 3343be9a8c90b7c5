"""PETSc as a solver object: the assembled system handed to PETSc's Krylov solvers (conjugate
gradients with its algebraic multigrid, GAMG, by default), MPI-parallel when the script runs under
``mpiexec``.

An optional backend (``pip install "nmm[petsc]"``, which builds petsc4py against an installed
PETSc: see the README). Under ``mpiexec -n P python script.py`` every rank runs the script, so
every rank cuts the cover and assembles the whole system (JAX); the solve is the part PETSc
distributes: rank r owns a contiguous range of covers (whole cover blocks of rows: the partition
by covers), sets its rows of the matrix, and PETSc solves in parallel. The solution is gathered
to every rank, so ``nmm.solve`` returns the whole :class:`nmm.Field` on each. Past one machine this
is PETSc's job (mpiexec over hosts); what does not scale here is the replicated assembly.

The matrix is scaled to unit diagonal first (as for the direct solver: high-order cover blocks
span very different magnitudes); rows that are all zero (covers without support, the padding of
a bucketed space) get a unit diagonal and come out zero.

States live on the host (a handle into a small cache of KSP objects); ``solve`` rebuilds an
evicted one from the operator, as the direct solver does. Under ``vmap`` the members are solved
one after another.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from .operator import BlockCSR, to_scipy
from .results import RESULTS

_FAIL_RESIDUAL = 1e-6
_MAX_STATES = 8


def petsc4py_module():
    """``petsc4py.PETSc``, initialised; a clear ``ImportError`` naming the extra when missing."""
    try:
        import petsc4py
    except ImportError as e:
        raise ImportError(
            "nmm.linalg.PETSc needs petsc4py (and an MPI library): install the extra with "
            '`pip install "nmm[petsc]"` against an installed PETSc (PETSC_DIR; see the README, '
            f'"PETSc backend"), or choose another solver ({e})'
        ) from None
    petsc4py.init()
    from petsc4py import PETSc as _PETSc

    return _PETSc


class _States:
    """KSP objects by handle, the least recently used dropped past ``_MAX_STATES``."""

    def __init__(self):
        self._entries: OrderedDict[int, tuple] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def put(self, entry) -> int:
        with self._lock:
            h = next(self._ids)
            self._entries[h] = entry
            while len(self._entries) > _MAX_STATES:
                _, old = self._entries.popitem(last=False)
                _destroy(old)
            return h

    def get(self, h: int):
        with self._lock:
            return self._entries.get(int(h))

    def drop(self, h: int) -> None:
        with self._lock:
            old = self._entries.pop(int(h), None)
        if old is not None:
            _destroy(old)


def _destroy(entry) -> None:
    ksp, mat, *_ = entry
    ksp.destroy()
    mat.destroy()


STATES = _States()


def _scaled(data, rows, cols, n_rows):
    """The matrix scaled to unit diagonal and the scaling; a zero diagonal gets a one (in a
    semi-definite matrix its row is zero: a direction the stable basis drops, a padding cover)."""
    a = to_scipy(data, rows, cols, n_rows).tocsr()
    d = np.abs(a.diagonal())
    s = 1.0 / np.sqrt(np.where(d > 0, d, 1.0))
    a = (sp.diags(s) @ a @ sp.diags(s) + sp.diags((d == 0).astype(float))).tocsr()
    a.sort_indices()
    return a, s


def _build(opts: PETSc, data, rows, cols, n_rows, block: int):
    """Matrix and KSP of one system: each rank sets its own covers' rows."""
    P = petsc4py_module()
    comm = P.COMM_WORLD
    a, s = _scaled(data, rows, cols, n_rows)
    size, rank = comm.getSize(), comm.getRank()
    lo_c, hi_c = (n_rows * rank) // size, (n_rows * (rank + 1)) // size  # the rank's covers
    lo, hi = lo_c * block, hi_c * block
    local = a[lo:hi]
    n = a.shape[0]
    mat = P.Mat().createAIJ(
        size=((hi - lo, n), (hi - lo, n)),
        bsize=block,
        csr=(local.indptr.astype(P.IntType), local.indices.astype(P.IntType), local.data),
        comm=comm,
    )
    mat.assemble()
    ksp = P.KSP().create(comm=comm)
    ksp.setOperators(mat)
    ksp.setType(opts.ksp)
    ksp.getPC().setType(opts.pc)
    ksp.setTolerances(rtol=opts.rtol, atol=0.0, max_it=opts.max_iter)
    ksp.setFromOptions()  # PETSc's own command-line options (-ksp_monitor, ...) still apply
    ksp.setUp()
    return ksp, mat, a, s, (lo, hi)


def _solve_one(entry, b, trans: bool):
    P = petsc4py_module()
    ksp, mat, a, s, (lo, hi) = entry
    rhs = s * b
    bv, xv = mat.createVecRight(), mat.createVecLeft()
    bv.setArray(rhs[lo:hi])
    (ksp.solveTranspose if trans else ksp.solve)(bv, xv)
    scatter, whole = P.Scatter.toAll(xv)  # the solution gathered to every rank
    scatter.scatter(xv, whole, P.InsertMode.INSERT, P.ScatterMode.FORWARD)
    y = whole.getArray().copy()
    its, reason = ksp.getIterationNumber(), ksp.getConvergedReason()
    for v in (bv, xv, whole):
        v.destroy()
    scatter.destroy()
    at = a.T if trans else a
    norm = np.linalg.norm(rhs)
    res = float(np.linalg.norm(at @ y - rhs) / norm) if norm > 0 else 0.0
    x = s * y
    if not (np.all(np.isfinite(x)) and np.isfinite(res)):
        code = RESULTS.nonfinite
    elif res > _FAIL_RESIDUAL:
        code = RESULTS.max_steps_reached if reason == -3 else RESULTS.residual_too_large
    else:
        code = RESULTS.successful
    return x, res, its, code


class PETScState(eqx.Module):
    handle: jax.Array
    operator: BlockCSR
    condition: jax.Array
    result: jax.Array


class PETSc(eqx.Module):
    """Krylov solver of PETSc (petsc4py), MPI-parallel under ``mpiexec``.

    Attributes:
        ksp: PETSc KSP type (``"cg"`` by default; ``"gmres"`` for non-symmetric systems).
        pc: PETSc preconditioner type (``"gamg"``: algebraic multigrid; ``"hypre"``, ``"jacobi"``,
            ``"lu"`` where PETSc has them).
        rtol: relative residual of the unit-diagonal system at which the iteration stops.
        max_iter: iterations at most.
    """

    ksp: str = eqx.field(static=True, default="cg")
    pc: str = eqx.field(static=True, default="gamg")
    rtol: float = eqx.field(static=True, default=1e-10)
    max_iter: int = eqx.field(static=True, default=10_000)

    def __check_init__(self):
        petsc4py_module()  # missing package: the clear ImportError before anything is traced
        if not (0 < self.rtol < 1):
            raise ValueError(f"rtol must be in (0, 1), got {self.rtol!r}")
        if int(self.max_iter) != self.max_iter or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")

    def init(self, operator: BlockCSR) -> PETScState:
        n_rows, block = operator.n_block_rows, operator.block_size
        if operator.transposed:
            raise ValueError("operator: PETSc takes the stored matrix, not a transposed view")

        def host(data, rows, cols):
            rows, cols = (np.asarray(v).reshape(-1) for v in (rows, cols))
            data = np.asarray(data, float)
            if not np.all(np.isfinite(data)):
                return np.int32(-1), np.int32(RESULTS.nonfinite)
            entry = _build(self, data, rows, cols, n_rows, block)
            return np.int32(STATES.put(entry)), np.int32(RESULTS.successful)

        shapes = (jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((), jnp.int32))
        data = jax.lax.stop_gradient(operator.data)
        handle, result = jax.pure_callback(
            host, shapes, data, operator.rows, operator.cols, vmap_method="sequential"
        )
        return PETScState(handle, operator, jnp.asarray(-1.0, data.dtype), result)

    def _solve(self, state: PETScState, b, operator, trans: bool, last: bool):
        op = state.operator
        n_rows, block = op.n_block_rows, op.block_size
        # a nearby matrix (a Newton Jacobian at the solution, for the adjoint): a Krylov solve
        # has no factor to refine with, so that matrix gets a solver of its own
        ref = None if operator is None else operator.data
        symmetric = op.symmetric
        shapes = (
            jax.ShapeDtypeStruct(b.shape, b.dtype),
            jax.ShapeDtypeStruct((), b.dtype),
            jax.ShapeDtypeStruct((), b.dtype),
            jax.ShapeDtypeStruct((), jnp.int32),
        )

        def host(handle, data, rows, cols, rhs, *other):
            rows, cols = (np.asarray(v).reshape(-1) for v in (rows, cols))
            h = int(handle)
            entry = STATES.get(h) if h >= 0 and not other else None
            if entry is None:  # evicted, never built, or another matrix: build it
                data = np.asarray(other[0] if other else data, float)
                entry = _build(self, data, rows, cols, n_rows, block)
                h = STATES.put(entry)
            # a symmetric matrix is its transpose: PETSc's transpose solves of multigrid
            # preconditioners are less robust (measured: GAMG's failed in parallel)
            x, res, its, code = _solve_one(entry, np.asarray(rhs, float), trans and not symmetric)
            if last or other:
                STATES.drop(h)
            dt = rhs.dtype
            return x.astype(dt), np.asarray(res, dt), np.asarray(its, dt), np.int32(code)

        stop = jax.lax.stop_gradient
        extra = () if ref is None else (stop(ref),)
        x, res, its, code = jax.pure_callback(
            host,
            shapes,
            state.handle,
            stop(op.data),
            op.rows,
            op.cols,
            stop(b),
            *extra,
            vmap_method="sequential",
        )
        code = jnp.where(state.result != RESULTS.successful, state.result, code)
        return x, code, res, its

    def solve(self, state: PETScState, b, operator: BlockCSR | None = None, *, last=False):
        """Solve ``A x = b`` (with ``operator``: that matrix instead, solved on its own);
        ``last``: the state is not used again. Returns ``(x, result, residual, iterations)``."""
        return self._solve(state, b, operator, False, last)

    def transpose_solve(self, state: PETScState, b, operator: BlockCSR | None = None, *, last=False):
        """Solve ``A^T x = b`` (PETSc's transpose solve with the same preconditioner)."""
        return self._solve(state, b, operator, True, last)
