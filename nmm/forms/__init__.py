"""Weak forms: the physics of a PDE at one point (see :mod:`nmm.forms.base`)."""

from .base import Form as Form
from .boundary import Dirichlet as Dirichlet
from .boundary import Neumann as Neumann
from .data import value as value
from .elasticity import Elasticity as Elasticity
from .fit import L2Fit as L2Fit
from .hyperelastic import NeoHookean as NeoHookean
from .manufactured import source as manufactured_source
from .nonlinear import AllenCahn as AllenCahn
from .nonlinear import Bratu as Bratu
from .nonlinear import Burgers as Burgers
from .nonlinear import NonlinearDiffusion as NonlinearDiffusion
from .nonlinear import PLaplacian as PLaplacian
from .nonlinear import PowerReaction as PowerReaction
from .poisson import Poisson as Poisson

__all__ = [
    "Form",
    "Dirichlet",
    "Neumann",
    "value",
    "Elasticity",
    "L2Fit",
    "Poisson",
    "NeoHookean",
    "Bratu",
    "Burgers",
    "NonlinearDiffusion",
    "PLaplacian",
    "PowerReaction",
    "AllenCahn",
    "manufactured_source",
]
