"""Block-sparse operators and linear solvers that work under jit, vmap and grad.

* :class:`BlockCSR`: a block-sparse matrix (blocks of ``components × terms`` per cover pair) with
  ``mv``, ``T``, ``to_scipy``, ``to_bcoo``, ``to_dense``.
* Solver objects with ``init(operator) -> state`` (the factorisation or preconditioner),
  ``solve(state, b)`` and ``transpose_solve(state, b)``: :class:`SuperLU` (host, direct, the
  default), :class:`Cholesky` (optional: CHOLMOD through cvxopt, SuperLU's refinement around
  it), :class:`CG` and :class:`BiCGStab` (JAX, block-Jacobi), :class:`AMG` (JAX, CG with a
  smoothed-aggregation multigrid V-cycle), :class:`DenseLU` (JAX, small systems, batched),
  :class:`PETSc` (optional: PETSc's Krylov solvers and multigrid, MPI-parallel). An
  accelerator sparse direct backend is one more class with these methods.
* :func:`linear_solve`: differentiable in forward and reverse mode (a tangent or adjoint solve
  reusing the state), returns a
  :class:`Solution` with a result code; ``throw=False`` reports failures per batch member.
"""

from .amg import AMG as AMG
from .cholmod import Cholesky as Cholesky
from .dense import DenseLU as DenseLU
from .iterative import CG as CG
from .iterative import BiCGStab as BiCGStab
from .operator import BlockCSR as BlockCSR
from .operator import BlockPattern as BlockPattern
from .petsc import PETSc as PETSc
from .results import RESULTS as RESULTS
from .results import RefinementWarning as RefinementWarning
from .results import SolveError as SolveError
from .solve import Solution as Solution
from .solve import SolverOptions as SolverOptions
from .solve import as_solver as as_solver
from .solve import linear_solve as linear_solve
from .solve import raise_if_failed as raise_if_failed
from .solve import solve_dense as solve_dense
from .superlu import SuperLU as SuperLU
from .superlu import clear_factor_cache as clear_factor_cache
from .superlu import factorisations as factorisations

__all__ = [
    "BlockCSR",
    "BlockPattern",
    "RESULTS",
    "RefinementWarning",
    "SolveError",
    "Solution",
    "SolverOptions",
    "SuperLU",
    "Cholesky",
    "CG",
    "AMG",
    "BiCGStab",
    "DenseLU",
    "PETSc",
    "as_solver",
    "linear_solve",
    "raise_if_failed",
    "solve_dense",
    "clear_factor_cache",
    "factorisations",
]
