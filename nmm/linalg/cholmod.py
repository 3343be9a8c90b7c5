"""Sparse Cholesky on the host: CHOLMOD (SuiteSparse, supernodal, through cvxopt), behind the
same scaling, perturbation, refinement and factor cache as :class:`nmm.linalg.SuperLU`.

A symmetric positive definite system (Poisson, elasticity, an L2 fit) needs half the work of an
LU factorisation, and CHOLMOD's supernodal kernels run on BLAS-3 blocks: at 1e5 unknowns (p = 0
Poisson) it factored in 0.11 s where SuperLU took 0.39 s (2-core development machine). A system
that is not symmetric, or whose factorisation meets a non-positive pivot (an indefinite form, or
a singular one that ε does not lift above round-off), is factored by SuperLU instead: the
solver always returns the same refined solution, only the time differs.

cvxopt holds Python's GIL while CHOLMOD factors (measured: two threads factor no faster than one),
so the members of a ``vmap`` are factored one after another; SuperLU's run side by side on the
host threads. cvxopt is GPL-licensed and optional: ``pip install nmm[cholmod]``.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp

from . import superlu as _superlu
from .superlu import SuperLU

# CHOLMOD's factor size is not exposed by cvxopt: the factor cache bounds its bytes by this
# multiple of the factored lower triangle's entries (measured fill of 2D p = 0 and p = 2 systems
# under AMD: 4-9)
_FILL_ESTIMATE = 10


@functools.lru_cache(maxsize=1)
def _cholmod():
    """``cvxopt.cholmod`` and ``cvxopt``; a clear ``ImportError`` naming the extra when missing."""
    try:
        import cvxopt
        from cvxopt import cholmod
    except ImportError as e:
        raise ImportError(
            "nmm.linalg.Cholesky needs cvxopt (CHOLMOD): install the extra with "
            "`pip install nmm[cholmod]` (or `pip install cvxopt`)"
        ) from e
    # cvxopt brings its own OpenBLAS: the host threads' one-thread BLAS limit must see it
    _superlu._blas.cache_clear()
    return cholmod, cvxopt


class _CholmodFactor:
    """A CHOLMOD factorisation with SuperLU's interface (``solve``, ``nnz``)."""

    def __init__(self, a: sp.csc_matrix):
        cholmod, cvxopt = _cholmod()
        low = sp.tril(a, format="coo")
        n = a.shape[0]
        m = cvxopt.spmatrix(low.data, low.row.astype(np.int64), low.col.astype(np.int64), (n, n))
        self._factor = cholmod.symbolic(m, uplo="L")
        cholmod.numeric(m, self._factor)  # ArithmeticError: not positive definite
        self.nnz = _FILL_ESTIMATE * low.nnz

    def solve(self, b, trans: str = "N"):
        cholmod, cvxopt = _cholmod()
        # the matrix is symmetric: its transpose solve is its solve
        b = np.asarray(b, dtype=float)
        x = cvxopt.matrix(b.reshape(b.shape[0], -1))  # (n,) or (n, k): one column each
        cholmod.solve(self._factor, x)
        return np.asarray(x).reshape(b.shape)


class Cholesky(SuperLU):
    """Sparse direct solver on the host by Cholesky factorisation (CHOLMOD through cvxopt: the
    extra ``nmm[cholmod]``), with :class:`SuperLU`'s unit-diagonal scaling, diagonal
    perturbation, iterative refinement, factor cache and options. A system that is not symmetric
    or not positive definite is factored by SuperLU instead. ``solver="cholesky"`` in
    ``nmm.solve``.

    Attributes: as :class:`SuperLU`; ``ordering`` does not apply (CHOLMOD orders the matrix
    itself, by AMD, and the LU fallback uses SuperLU's minimum degree).
    """

    def __check_init__(self):
        super().__check_init__()
        _cholmod()  # the missing package named at construction, not inside a solve

    def presorts(self, symmetric: bool) -> bool:
        return False  # CHOLMOD orders the matrix itself (AMD); SuperLU's fallback uses "mmd"

    def factorize(self, a: sp.csc_matrix, symmetric: bool, presorted: bool = False):
        if symmetric:
            try:
                return _CholmodFactor(a)
            except ArithmeticError:  # a non-positive pivot: LU takes it
                pass
        return super().factorize(a, symmetric, presorted)
