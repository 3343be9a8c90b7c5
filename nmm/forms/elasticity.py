"""Linear elasticity in 2D (plane strain, plane stress) as one energy density.

W(x, u, ∇u) = ½ σ(ε):ε − b·u, ε = sym ∇u, σ = λ tr(ε) I + 2 μ ε, with μ = E / (2(1 + ν)) and
λ = E ν / ((1 + ν)(1 − 2ν)) (plane strain) or λ* = E ν / (1 − ν²) (plane stress).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .base import Form
from .data import check, is_concrete_number, value

PLANES = ("strain", "stress")


class Elasticity(Form):
    """Small-strain linear elasticity, displacement u = (u_x, u_y).

    Attributes:
        E: Young's modulus > 0; nu: Poisson's ratio in (-1, 0.5) (numbers, callables of x, fields
            or modules: data as in :class:`Poisson`).
        body_force: b(x) ``(2,)`` per unit volume, or None.
        plane: ``"strain"`` (default) or ``"stress"``.
        dirichlet: displacement: data returning ``(2,)``, an ``nmm.Dirichlet`` (``components=(0,)``
            for a roller) or a list of them. neumann: traction t(x, n) ``(2,)`` on the rest of
            the outer boundary (per component). Crack faces are traction free unless
            ``crack_neumann`` is given.
    """

    E: Any = 1.0
    nu: Any = 0.3
    body_force: Any = None
    plane: str = eqx.field(static=True, default="strain")

    components = 2
    data_fields = ("E", "nu", "body_force")

    def __check_init__(self):
        check(self.E, "E", allow_none=False)
        check(self.nu, "nu", allow_none=False)
        check(self.body_force, "body_force")
        if self.plane not in PLANES:
            raise ValueError(f"plane must be one of {PLANES}, got {self.plane!r}")
        if is_concrete_number(self.E) and self.E <= 0:
            raise ValueError(f"E must be positive, got {self.E!r}")
        if is_concrete_number(self.nu) and not -1 < self.nu < 0.5:
            raise ValueError(f"nu must be in (-1, 0.5), got {self.nu!r}")

    def lame(self, x, params):
        """(λ, μ) at x (λ* of plane stress for ``plane="stress"``)."""
        E, nu = value(self.E, x, params), value(self.nu, x, params)
        mu = E / (2 * (1 + nu))
        if self.plane == "strain":
            lam = E * nu / ((1 + nu) * (1 - 2 * nu))
        else:
            lam = E * nu / (1 - nu**2)
        return lam, mu

    def stress(self, x, du, params):
        """Cauchy stress ``(2, 2)`` from the displacement gradient ``du (2, 2)``."""
        lam, mu = self.lame(x, params)
        eps = 0.5 * (du + du.T)
        return lam * jnp.trace(eps) * jnp.eye(2, dtype=du.dtype) + 2 * mu * eps

    def energy(self, x, u, du, params):
        eps = 0.5 * (du + du.T)
        w = 0.5 * jnp.sum(self.stress(x, du, params) * eps)
        if self.body_force is not None:
            w = w - value(self.body_force, x, params) @ u
        return w

    def admissible(self, x, params):
        E, nu = value(self.E, x, params), value(self.nu, x, params)
        return (E > 0) & (nu > -1) & (nu < 0.5)

    def null_modes(self, dim: int):
        return (
            [
                lambda p: np.stack([np.ones(len(p)), np.zeros(len(p))], 1),
                lambda p: np.stack([np.zeros(len(p)), np.ones(len(p))], 1),
                lambda p: np.stack([-p[:, 1], p[:, 0]], 1),
            ],
            "of the displacement: rigid motions (the translations and the rotation) stay free "
            "and the solve would be singular; constrain both components on some part of the "
            "boundary, or enough components on enough parts (nmm.Dirichlet(value, on=mask, "
            "components=...))",
        )

    def derived(self, x, u, du, params) -> dict:
        s = self.stress(x, du, params)
        sxx, syy, sxy = s[0, 0], s[1, 1], s[0, 1]
        if self.plane == "strain":
            nu = value(self.nu, x, params)
            szz = nu * (sxx + syy)
        else:
            szz = jnp.zeros_like(sxx)
        vm = jnp.sqrt(0.5 * ((sxx - syy) ** 2 + (syy - szz) ** 2 + (szz - sxx) ** 2) + 3 * sxy**2)
        return {"stress": jnp.stack([sxx, syy, sxy]), "von_mises": vm}
