"""A block-sparse operator: the matrices of NMM systems, stored by cover pairs.

Every physical cover carries ``b = components × terms`` unknowns, so a system matrix is a sparse
matrix of dense ``b × b`` blocks, one per pair of covers that share a manifold element. The block
pattern is fixed by the space; the operator carries it as arrays (the block row and column of
every block) and, static, only its sizes, so compiled programs depend on the sizes alone: two
spaces of equal (padded) sizes share them (``nmm.buckets``). Only the block values are
differentiated; an operator passes through ``jit``, ``vmap`` and ``grad`` like any pytree.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.custom_batching import custom_vmap
from jax.experimental import sparse as jsparse


@functools.cache
def _batch_minor_segment_sum(n: int):
    @custom_vmap
    def total(y, ids):
        return jax.ops.segment_sum(y, ids, n)

    @total.def_vmap
    def _rule(axis_size, in_batched, y, ids):
        y_batched, ids_batched = in_batched
        if ids_batched:  # segment ids that differ per member: the plain rule
            y_axis = 0 if y_batched else None
            return jax.vmap(lambda y, i: jax.ops.segment_sum(y, i, n), (y_axis, 0))(y, ids), True
        # one scatter of rows of `axis_size` values (batch last); through `total` again, so that
        # an outer vmap goes last too
        return jnp.moveaxis(total(jnp.moveaxis(y, 0, -1), ids), -1, 0), True

    return total


def segment_sum_nodiff(y, ids, n: int):
    """``jax.ops.segment_sum(y, ids, n)`` whose ``vmap`` puts the batch axis last.

    Under ``vmap`` JAX batches a scatter with the batch axis first, and XLA's CPU scatter then
    slows down by an order of magnitude from ~16 members on (measured on the 2-core machine,
    73 728 values into 10 240 segments: 0.7 ms for 8 members, 11 ms for 16, 79 ms for 64; with
    the batch axis last 8.4 ms for 64). Not differentiable (``custom_vmap`` has no reverse
    mode): for the insides of solvers, which run under the solves' custom derivative rules."""
    if isinstance(y, jax.core.Tracer) or isinstance(ids, jax.core.Tracer):
        return _batch_minor_segment_sum(int(n))(y, ids)
    return jax.ops.segment_sum(y, ids, n)


@dataclass(frozen=True, eq=False)
class BlockPattern:
    """The block pattern of an operator (host side): block CSR ``indptr (n_rows + 1,)`` and
    ``indices (n_blocks,)``, in the order of the operator's ``data``.

    Equal (and hashed alike) when the sizes are: the pattern is static in compiled programs,
    which read the blocks' rows and columns from the operator's arrays at run time (never from
    here), so patterns of equal sizes may share them."""

    indptr: np.ndarray
    indices: np.ndarray

    def _sizes(self) -> tuple[int, int]:
        return self.n_block_rows, self.n_blocks

    def __eq__(self, other) -> bool:
        return isinstance(other, BlockPattern) and self._sizes() == other._sizes()

    def __hash__(self) -> int:
        return hash(self._sizes())

    @property
    def n_block_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def n_blocks(self) -> int:
        return len(self.indices)


class BlockCSR(eqx.Module):
    """A square block-sparse matrix.

    Attributes:
        data: ``(n_blocks, b, b)`` block values (a batch axis may lead under ``vmap``).
        rows, cols: ``(n_blocks,)`` block row and column of each block.
        pattern: the host-side :class:`BlockPattern` (static).
        symmetric: whether the matrix is known to be symmetric (static; solvers may use it).
        transposed: the operator stands for the transpose of ``data`` in ``pattern`` (static).
    """

    data: jax.Array
    rows: jax.Array
    cols: jax.Array
    pattern: BlockPattern = eqx.field(static=True)
    symmetric: bool = eqx.field(static=True, default=False)
    transposed: bool = eqx.field(static=True, default=False)

    @property
    def block_size(self) -> int:
        return self.data.shape[-1]

    @property
    def n_block_rows(self) -> int:
        return self.pattern.n_block_rows

    @property
    def shape(self) -> tuple[int, int]:
        n = self.n_block_rows * self.block_size
        return n, n

    def mv(self, x, *, differentiable: bool = True):
        """``A @ x`` for ``x (n,)``. ``differentiable=False``: a product that batches faster
        under ``vmap`` on CPUs but has no derivative (:func:`segment_sum_nodiff`; the solvers'
        iterations use it)."""
        b = self.block_size
        xb = x.reshape(-1, b)
        total = jax.ops.segment_sum if differentiable else segment_sum_nodiff
        if self.transposed:
            y = jnp.einsum("kji,kj->ki", self.data, xb[self.rows])
            out = total(y, self.cols, self.n_block_rows)
        else:
            y = jnp.einsum("kij,kj->ki", self.data, xb[self.cols])
            out = total(y, self.rows, self.n_block_rows)
        return out.reshape(-1)

    @property
    def T(self) -> BlockCSR:
        """The transpose (same storage, no copy)."""
        if self.symmetric:
            return self
        return BlockCSR(self.data, self.rows, self.cols, self.pattern, False, not self.transposed)

    def diagonal_blocks(self):
        """``(n_block_rows, b, b)``: the diagonal blocks (zero where a row has none)."""
        on_diag = (self.rows == self.cols)[:, None, None]
        d = jax.ops.segment_sum(jnp.where(on_diag, self.data, 0.0), self.rows, self.n_block_rows)
        return jnp.swapaxes(d, 1, 2) if self.transposed else d

    def to_dense(self):
        """The dense ``(n, n)`` matrix (small systems and tests only)."""
        b, nr = self.block_size, self.n_block_rows
        dense = jnp.zeros((nr, b, nr, b), self.data.dtype)
        dense = dense.at[self.rows, :, self.cols, :].add(self.data).reshape(nr * b, nr * b)
        return dense.T if self.transposed else dense

    def to_bcoo(self) -> jsparse.BCOO:
        """The matrix as a ``jax.experimental.sparse.BCOO`` (entries of every block)."""
        b = self.block_size
        i = self.rows[:, None, None] * b + jnp.arange(b)[None, :, None]
        j = self.cols[:, None, None] * b + jnp.arange(b)[None, None, :]
        i, j = jnp.broadcast_arrays(i, j)
        if self.transposed:
            i, j = j, i
        idx = jnp.stack([i.reshape(-1), j.reshape(-1)], axis=-1)
        return jsparse.BCOO((self.data.reshape(-1), idx), shape=self.shape)

    def to_scipy(self) -> sp.csc_matrix:
        """The matrix as a scipy CSC matrix (host side; needs concrete data)."""
        rows, cols = np.asarray(self.rows), np.asarray(self.cols)
        return to_scipy(np.asarray(self.data), rows, cols, self.n_block_rows, self.transposed)


def to_scipy(data, rows, cols, n_block_rows: int, transposed: bool = False) -> sp.csc_matrix:
    """Block values ``data (n_blocks, b, b)`` at block ``rows``, ``cols`` (sorted by row, as an
    operator stores them; repeated blocks are summed) as a scipy CSC matrix."""
    b = data.shape[-1]
    n = n_block_rows * b
    indptr = np.searchsorted(rows, np.arange(n_block_rows + 1))
    a = sp.bsr_matrix((data, cols, indptr), shape=(n, n))
    # the CSR form of A is the CSC form of A^T: transposing costs no copy of the entries
    a = a.tocsr().T.tocsc() if transposed else a.tocsc()
    a.sum_duplicates()  # the padding blocks of a bucketed space repeat one block
    return a
