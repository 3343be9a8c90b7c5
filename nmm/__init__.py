"""nmm — the Numerical Manifold Method (Shi, 1991) as a JAX engine.

Importing nmm switches JAX to 64-bit floats (``jax_enable_x64``): the solves, exactness and
convergence checks of a PU method need double precision. Set ``NMM_KEEP_X64=0`` in the environment
to leave the JAX setting alone.
"""

import os

import jax

if os.environ.get("NMM_KEEP_X64", "1") != "0":
    jax.config.update("jax_enable_x64", True)

from .covers import MathCover as MathCover  # noqa: E402
from .field import Field as Field  # noqa: E402
from .field import errors as errors  # noqa: E402
from .geometry import Domain as Domain  # noqa: E402
from .linalg import SolverOptions as SolverOptions  # noqa: E402
from .problems import Poisson as Poisson  # noqa: E402
from .solve import fit as fit  # noqa: E402
from .solve import solve as solve  # noqa: E402
from .space import ManifoldSpace as ManifoldSpace  # noqa: E402

__all__ = [
    "Domain",
    "MathCover",
    "ManifoldSpace",
    "Poisson",
    "SolverOptions",
    "Field",
    "fit",
    "solve",
    "errors",
]
