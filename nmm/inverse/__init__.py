"""Inverse problems: identify parameters (numbers, arrays, fields, networks) from noisy data.

``problem = InverseProblem(forward, Observations.at_points(points, data, noise), H1(1e-4))``,
then :func:`gauss_newton` (or :func:`minimise` with optax) and :func:`laplace` for the posterior.
"""

from .gauss_newton import STATUS as STATUS
from .gauss_newton import InversionResult as InversionResult
from .gauss_newton import gauss_newton as gauss_newton
from .laplace import Posterior as Posterior
from .laplace import laplace as laplace
from .laplace import log_evidence as log_evidence
from .observations import Observations as Observations
from .observations import synthetic as synthetic
from .optimise import minimise as minimise
from .parameters import count as count
from .parameters import unknowns as unknowns
from .problem import InverseProblem as InverseProblem
from .regularisation import H1 as H1
from .regularisation import Tikhonov as Tikhonov
from .regularisation import TotalVariation as TotalVariation
from .select import Choice as Choice
from .select import choose_regularisation as choose_regularisation

__all__ = [
    "Observations",
    "synthetic",
    "InverseProblem",
    "Tikhonov",
    "H1",
    "TotalVariation",
    "gauss_newton",
    "minimise",
    "laplace",
    "choose_regularisation",
    "Choice",
    "log_evidence",
    "Posterior",
    "InversionResult",
    "STATUS",
    "count",
    "unknowns",
]
