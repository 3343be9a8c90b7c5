"""Compressible neo-Hookean hyperelasticity, plane strain, large deformation.

W(F) = ½ μ (tr C − 2) − μ ln J + ½ λ (ln J)² − b·u, F = I + ∇u, C = FᵀF, J = det F
(the plane-strain reduction of the 3D model: F₃₃ = 1). It linearises to :class:`Elasticity` with
the same λ, μ at u = 0. A deformation with J <= 0 has no energy (NaN): Newton's line search
rejects such steps.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from .base import Form
from .data import value
from .elasticity import Elasticity


class NeoHookean(Form):
    """Compressible neo-Hookean solid, plane strain; unknown the displacement u = (u_x, u_y).

    Attributes:
        E, nu: Young's modulus and Poisson's ratio of the linearisation (data as in
            :class:`Elasticity`); μ = E / (2(1 + ν)), λ = Eν / ((1 + ν)(1 − 2ν)).
        body_force: b(x) ``(2,)`` in the reference configuration, or None.
        dirichlet, neumann, ...: as in :class:`Elasticity`; a Neumann traction is a dead load
            (per unit reference length).

    Newton from u = 0 with non-zero Dirichlet data and Nitsche's method may fail: the Nitsche
    terms' second derivative times (0 − g) makes the first tangent indefinite, its step inverts
    elements (J <= 0) and the line search stalls (measured on a unit square, homogeneous strain
    0.1). Start from the linear :class:`Elasticity` solution with the same data
    (``nmm.solve(V, neo, x0=nmm.solve(V, lin).coeffs)``: 1–3 steps) or use ``bc="penalty"``.
    """

    E: Any = 1.0
    nu: Any = 0.3
    body_force: Any = None

    components = 2
    data_fields = ("E", "nu", "body_force")
    plane: ClassVar[str] = "strain"  # for Elasticity's checks and Lamé constants

    # the data, their checks and the Lamé constants are Elasticity's (plane strain)
    def __check_init__(self):
        Elasticity.__check_init__(self)

    lame = Elasticity.lame
    admissible = Elasticity.admissible

    def strain_energy(self, x, du, params):
        lam, mu = self.lame(x, params)
        F = jnp.eye(2, dtype=du.dtype) + du
        J = jnp.linalg.det(F)
        lnJ = jnp.log(J)  # NaN for J <= 0: no admissible state there
        return 0.5 * mu * (jnp.sum(F * F) - 2.0) - mu * lnJ + 0.5 * lam * lnJ**2

    def energy(self, x, u, du, params):
        w = self.strain_energy(x, du, params)
        if self.body_force is not None:
            w = w - value(self.body_force, x, params) @ u
        return w

    def null_modes(self, dim: int):
        return Elasticity.null_modes(self, dim)

    def stress(self, x, du, params):
        """First Piola–Kirchhoff stress P = ∂W/∂F ``(2, 2)``."""
        return jax.grad(self.strain_energy, argnums=1)(x, du, params)

    def derived(self, x, u, du, params) -> dict:
        P = self.stress(x, du, params)
        F = jnp.eye(2, dtype=du.dtype) + du
        J = jnp.linalg.det(F)
        sigma = P @ F.T / J  # Cauchy stress
        return {
            "stress": jnp.stack([sigma[0, 0], sigma[1, 1], sigma[0, 1]]),
            "pk1": P.reshape(-1),
            "J": J,
        }
