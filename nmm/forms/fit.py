"""L2 projection as a form: W = ½ (u − f)² (no boundary terms). ``nmm.fit`` solves it."""

from __future__ import annotations

from typing import Any

import equinox as eqx

from .base import Form
from .data import check, value


class L2Fit(Form):
    """Best approximation of ``target`` in L2 (or at samples, with a sample quadrature).

    Attributes:
        target: data (a callable of x, a field, a module, a number); for vector spaces it returns
            ``(components,)``.
        components: unknowns per point (the space's).
    """

    target: Any = 0.0
    components: int = eqx.field(static=True, default=1, kw_only=True)

    data_fields = ("target",)
    elliptic = False  # a mass matrix has no diffusion to check

    def __check_init__(self):
        check(self.target, "target", allow_none=False)

    def energy(self, x, u, du, params):
        d = u - value(self.target, x, params)
        return 0.5 * (d * d).sum()
