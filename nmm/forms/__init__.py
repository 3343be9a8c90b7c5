"""Weak forms: the physics of a PDE at one point (see :mod:`nmm.forms.base`)."""

from .base import Form as Form
from .boundary import Dirichlet as Dirichlet
from .boundary import Neumann as Neumann
from .data import value as value
from .elasticity import Elasticity as Elasticity
from .fit import L2Fit as L2Fit
from .poisson import Poisson as Poisson

__all__ = ["Form", "Dirichlet", "Neumann", "value", "Elasticity", "L2Fit", "Poisson"]
