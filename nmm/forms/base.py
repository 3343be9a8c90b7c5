"""The weak form of a PDE, written at ONE point.

A form is a small frozen ``eqx.Module``. Its physics is one of

* ``energy(x, u, du, params)``: an energy density W (variational problems: Poisson, elasticity,
  hyperelasticity); the engine derives the residual (∂W/∂u, ∂W/∂∇u) and the tangent by autodiff;
* ``residual(x, u, du, params) -> (r0, r1)``: the weak residual density ∫ r0·v + r1:∇v, for
  non-variational or non-symmetric problems (convection–diffusion).

``u`` is a scalar and ``du`` a ``(dim,)`` vector for scalar forms (``components = 1``), ``u (n,)``
and ``du (n, dim)`` for vector forms. Everything else — local vectors and matrices, Jacobians,
Nitsche terms, the functional networks are trained on — is derived from these by the engine: a new
PDE is a new form of a few lines, with no kernel of its own.

Every form also carries its boundary data (keyword-only fields, the same for all forms):
``dirichlet`` (data, an :class:`~nmm.Dirichlet` or a list of them), ``dirichlet_on``,
``neumann`` (flux/traction data ``h(x, n)``, a :class:`~nmm.Neumann` or a list), ``crack_neumann``
(flux on crack faces; free faces by default), ``bc = "nitsche" | "penalty"`` and ``penalty`` (β0).
Data are pytree leaves (see :mod:`nmm.forms.data`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .boundary import BCS, Dirichlet, Neumann
from .data import check, check_signature


def _check_bc_data(value, name: str, cls) -> None:
    if isinstance(value, cls) or value is None:
        return
    if isinstance(value, list | tuple) and value and all(isinstance(c, cls) for c in value):
        return
    check(value, name)


def gershgorin_bound(d):
    """Gershgorin's bound on the largest eigenvalue of the symmetric part of a flux tangent
    ``d = ∂σ/∂∇u`` (``(n dim, n dim)``): the penalty scale s of the boundary terms. Exact for
    isotropic diffusion (k) and isotropic elasticity (2(λ + μ)), never below the eigenvalue."""
    d = 0.5 * (d + d.T)
    return jnp.max(jnp.diagonal(d) + jnp.sum(jnp.abs(d), axis=1) - jnp.abs(jnp.diagonal(d)))


class Form(eqx.Module):
    """Abstract weak form (see the module docstring). Subclass it and define ``energy`` or
    ``residual``.

    Class attributes a subclass may set:
        components: unknowns per point (1: scalar field; ``dim`` for elasticity).
        data_fields: names of fields holding point data ``fn(x)`` / ``fn(x, params)`` (their
            signatures are checked before a solve; boundary data are always checked).
        linear: ``True``/``False``, or ``None`` (default) to detect it from the form's jaxpr.
        symmetric: whether the tangent is symmetric; ``None``: True for energy forms.
        elliptic: check the tangent's diagonal at every quadrature point (positive diffusion
            along every component and direction) and report a non-elliptic form instead of
            solving it; set ``False`` for forms without diffusion or with a sign change by
            design.
        newton_hint: what to tell a user whose Newton solve of this form failed (e.g. that
            solutions end at a turning point).
    """

    dirichlet: Any = eqx.field(default=None, kw_only=True)
    neumann: Any = eqx.field(default=None, kw_only=True)
    crack_neumann: Any = eqx.field(default=None, kw_only=True)
    dirichlet_on: Callable | None = eqx.field(default=None, static=True, kw_only=True)
    bc: str = eqx.field(default="nitsche", static=True, kw_only=True)
    penalty: float | None = eqx.field(default=None, static=True, kw_only=True)

    components: ClassVar[int] = 1
    data_fields: ClassVar[tuple[str, ...]] = ()
    linear: ClassVar[bool | None] = None
    symmetric: ClassVar[bool | None] = None
    elliptic: ClassVar[bool] = True
    newton_hint: ClassVar[str] = ""

    def __check_init__(self):
        _check_bc_data(self.dirichlet, "dirichlet", Dirichlet)
        _check_bc_data(self.neumann, "neumann", Neumann)
        if self.crack_neumann is not None and not callable(self.crack_neumann):
            raise TypeError(
                f"crack_neumann must be a callable h(x, n), got {type(self.crack_neumann).__name__}"
            )
        if self.dirichlet_on is not None and not callable(self.dirichlet_on):
            raise TypeError("dirichlet_on must be a callable mask(points) -> bool array")
        if self.bc not in BCS:
            raise ValueError(f"bc must be one of {BCS}, got {self.bc!r}")
        if self.penalty is not None and not (
            isinstance(self.penalty, int | float) and np.isfinite(self.penalty) and self.penalty > 0
        ):
            raise ValueError(f"penalty must be a positive finite number, got {self.penalty!r}")

    # ------------------------------------------------------------------ the physics (override)

    def energy(self, x, u, du, params):
        """Energy density W at one point (a scalar)."""
        raise NotImplementedError(
            f"{type(self).__name__} defines neither energy(x, u, du, params) nor "
            "residual(x, u, du, params)"
        )

    def residual(self, x, u, du, params):
        """Weak residual density ``(r0, r1)`` at one point: ∂W/∂u and ∂W/∂∇u for energy forms."""
        return jax.grad(self.energy, argnums=(1, 2))(x, u, du, params)

    def admissible(self, x, params):
        """Extra well-posedness condition of the coefficients at ``x`` (a bool); the engine
        already checks the tangent's diagonal."""
        return jnp.asarray(True)

    def penalty_scale(self, x, params):
        """The stiffness s in the boundary penalty β s; ``None``: a bound on the largest
        eigenvalue of the flux tangent ∂σ/∂∇u at u = 0 (Gershgorin; k for Poisson)."""
        return None

    def null_modes(self, dim: int):
        """Fields the form's energy does not see (a constant for pure diffusion, rigid motions for
        elasticity), which Dirichlet conditions must fix: ``(list of numpy functions
        points (m, dim) -> (m, components), description)`` or ``None``."""
        return None

    def derived(self, x, u, du, params) -> dict:
        """Named derived quantities at one point (stress, von Mises, ...) for output."""
        return {}

    # ------------------------------------------------------------------ engine-facing

    def check_data(self, params) -> None:
        """Check, before tracing, that every callable datum accepts what it will be given."""
        from .boundary import dirichlet_conditions, neumann_conditions

        name = type(self).__name__
        for field in type(self).data_fields:
            check_signature(getattr(self, field), f"{name}.{field}", params)
        for i, d in enumerate(dirichlet_conditions(self)):
            check_signature(d.value, f"{name}.dirichlet" + (f"[{i}]" if i else ""), params)
        for i, c in enumerate(neumann_conditions(self)):
            check_signature(c.value, f"{name}.neumann" + (f"[{i}]" if i else ""), params, True)
        check_signature(self.crack_neumann, f"{name}.crack_neumann", params, True)

    @property
    def is_variational(self) -> bool:
        return type(self).energy is not Form.energy

    @property
    def is_symmetric(self) -> bool:
        s = type(self).symmetric
        if s is None:
            return self.is_variational and type(self).residual is Form.residual
        return bool(s)

    @property
    def beta0(self) -> float:
        if self.penalty is not None:
            return float(self.penalty)
        return 100.0 if self.bc == "nitsche" else 1e8
