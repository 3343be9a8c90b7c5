"""nmm — the Numerical Manifold Method (Shi, 1991) as a JAX engine.

Importing nmm switches JAX to 64-bit floats (``jax_enable_x64``): the solves, exactness and
convergence checks of a PU method need double precision. Set ``NMM_KEEP_X64=0`` in the environment
to leave the JAX setting alone.

Importing nmm also switches on JAX's persistent compilation cache in ``~/.cache/nmm/jax``
(:mod:`nmm.compile_cache`; ``NMM_COMPILATION_CACHE=0`` opts out, a path moves it).
"""

import os

import jax

if os.environ.get("NMM_KEEP_X64", "1") != "0":
    jax.config.update("jax_enable_x64", True)

from . import compile_cache as compile_cache  # noqa: E402

compile_cache.configure()

from . import inverse as inverse  # noqa: E402
from . import io as io  # noqa: E402
from . import linalg as linalg  # noqa: E402
from .checks import LargeProblemWarning as LargeProblemWarning  # noqa: E402
from .continuation import Branch as Branch  # noqa: E402
from .continuation import ContinuationError as ContinuationError  # noqa: E402
from .continuation import continuation as continuation  # noqa: E402
from .covers import MathCover as MathCover  # noqa: E402
from .drivers import assemble as assemble  # noqa: E402
from .drivers import fit as fit  # noqa: E402
from .drivers import solve as solve  # noqa: E402
from .enrich import Enrichment as Enrichment  # noqa: E402
from .field import Field as Field  # noqa: E402
from .field import SolveInfo as SolveInfo  # noqa: E402
from .field import errors as errors  # noqa: E402
from .forms import AllenCahn as AllenCahn  # noqa: E402
from .forms import Bratu as Bratu  # noqa: E402
from .forms import Burgers as Burgers  # noqa: E402
from .forms import Dirichlet as Dirichlet  # noqa: E402
from .forms import Elasticity as Elasticity  # noqa: E402
from .forms import Form as Form  # noqa: E402
from .forms import NeoHookean as NeoHookean  # noqa: E402
from .forms import Neumann as Neumann  # noqa: E402
from .forms import NonlinearDiffusion as NonlinearDiffusion  # noqa: E402
from .forms import PLaplacian as PLaplacian  # noqa: E402
from .forms import Poisson as Poisson  # noqa: E402
from .forms import PowerReaction as PowerReaction  # noqa: E402
from .forms import manufactured_source as manufactured_source  # noqa: E402
from .forms import value as value  # noqa: E402
from .fracture import StressIntensity as StressIntensity  # noqa: E402
from .fracture import stress_intensity as stress_intensity  # noqa: E402
from .geometry import Domain as Domain  # noqa: E402
from .growth import GrowthHistory as GrowthHistory  # noqa: E402
from .growth import grow as grow  # noqa: E402
from .linalg import RESULTS as RESULTS  # noqa: E402
from .linalg import RefinementWarning as RefinementWarning  # noqa: E402
from .linalg import SolveError as SolveError  # noqa: E402
from .linalg import SolverOptions as SolverOptions  # noqa: E402
from .nonlinear import Newton as Newton  # noqa: E402
from .space import ManifoldSpace as ManifoldSpace  # noqa: E402
from .transient import History as History  # noqa: E402
from .transient import integrate as integrate  # noqa: E402
from .transient import integrate_adaptive as integrate_adaptive  # noqa: E402

__all__ = [
    "Domain",
    "MathCover",
    "ManifoldSpace",
    "Enrichment",
    "stress_intensity",
    "StressIntensity",
    "grow",
    "GrowthHistory",
    "Form",
    "Poisson",
    "Elasticity",
    "NeoHookean",
    "Bratu",
    "Burgers",
    "NonlinearDiffusion",
    "PLaplacian",
    "PowerReaction",
    "AllenCahn",
    "manufactured_source",
    "Dirichlet",
    "Neumann",
    "value",
    "Newton",
    "SolverOptions",
    "RESULTS",
    "RefinementWarning",
    "SolveError",
    "LargeProblemWarning",
    "Field",
    "SolveInfo",
    "fit",
    "solve",
    "integrate",
    "integrate_adaptive",
    "History",
    "continuation",
    "Branch",
    "ContinuationError",
    "assemble",
    "errors",
    "io",
    "inverse",
    "linalg",
]
