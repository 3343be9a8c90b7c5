"""Scalar nonlinear forms: Bratu, nonlinear diffusion, the p-Laplacian, polynomial reactions
u^m and steady Allen–Cahn. Each is its energy density (or, where the PDE has none, its weak
residual) at one point; Newton, the tangent and the boundary terms come from the engine.

Data (``f``, ``lam``, ...) are as in :class:`nmm.Poisson`: numbers, callables of ``x`` /
``(x, params)``, fields or modules. A manufactured source for any of them is
:func:`nmm.forms.manufactured.source`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .base import Form
from .data import check, is_concrete_number, value


def _no_constant(self, dim):
    # the diffusion alone does not fix a constant; the reaction of these forms may, but only
    # where it is strictly monotone, which the engine cannot read off: Dirichlet data required
    return (
        [lambda p: np.ones((len(p), 1))],
        "(no Dirichlet data, or dirichlet_on selects no boundary piece): a nonlinear "
        "diffusion problem needs u fixed on some part of the boundary here",
    )


class Bratu(Form):
    """The Bratu (Gelfand) problem −Δu = λ eᵘ (+ f), u = g on Γ_D.

    W = ½|∇u|² − λ eᵘ − f u. Solutions exist only for λ up to a critical λ* (3.5138… on the
    unit interval, 6.8081… on the unit square, with u = 0 on the boundary), two of them below
    it: follow the branch through the fold with :func:`nmm.continuation`.

    Attributes:
        lam: λ >= 0 (a number, an array — a traced scalar under continuation — or data of x).
        f: an extra source (default 0).
    """

    lam: Any = 1.0
    f: Any = 0.0

    data_fields = ("lam", "f")
    newton_hint = (
        "Bratu has solutions only up to a turning point λ* (3.51383 on the unit interval, "
        "6.80812 on the unit square, with u = 0 on the boundary): above it there is none, and "
        "near it Newton from zero may miss the one there is; follow the branch through the fold "
        "with nmm.continuation(space, lambda lam: nmm.Bratu(lam=lam, ...), ...)"
    )

    def __check_init__(self):
        check(self.lam, "lam", allow_none=False)
        check(self.f, "f", allow_none=False)
        if is_concrete_number(self.lam) and self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam!r}")

    def energy(self, x, u, du, params):
        lam, f = value(self.lam, x, params), value(self.f, x, params)
        return 0.5 * du @ du - lam * jnp.exp(u) - f * u

    null_modes = _no_constant


class NonlinearDiffusion(Form):
    """Quasilinear diffusion −∇·(k(u) ∇u) = f with k(u) = 1 + u² by default.

    Not variational (the weak residual is given, r1 = k(u)∇u); the tangent is not symmetric.

    Attributes:
        f: the source.
        conductivity: ``k(u)``, a callable of the scalar u (static; it must stay positive on the
            solution: the engine's ellipticity check reads it at every quadrature point).
    """

    f: Any = 0.0
    conductivity: Callable | None = eqx.field(static=True, default=None)

    data_fields = ("f",)
    symmetric = False

    def __check_init__(self):
        check(self.f, "f", allow_none=False)
        if self.conductivity is not None and not callable(self.conductivity):
            raise TypeError(
                f"conductivity must be a callable k(u), got {type(self.conductivity).__name__}"
            )

    def k(self, u):
        return 1.0 + u * u if self.conductivity is None else self.conductivity(u)

    def residual(self, x, u, du, params):
        return -value(self.f, x, params), self.k(u) * du

    null_modes = _no_constant


class PLaplacian(Form):
    """The p-Laplacian −∇·(|∇u|^{p−2} ∇u) = f, p > 1.

    W = (ε² + |∇u|²)^{p/2} / p − f u; ε = 0 (default) is the p-Laplacian itself. For p > 2 it is
    degenerate where ∇u = 0 (its tangent vanishes there), so Newton cannot start from u = 0:
    start it from the Poisson solution (``x0=``) or from a solve with ε > 0. The ellipticity
    check is off for the same reason.

    Attributes:
        p: the exponent > 1 (static).
        f: the source.
        eps: regularisation ε >= 0.
        stiffness: the scale s of the Nitsche / penalty term β s / h on Dirichlet boundaries.
            The default bound of the other forms (the flux tangent at u = 0) is zero here for
            p > 2 and ε = 0, which would leave the Dirichlet data unenforced; give about the
            largest |∇u|^{p−2} (p − 1) the solution will have.
    """

    p: float = eqx.field(static=True, default=4.0)
    f: Any = 0.0
    eps: float = eqx.field(static=True, default=0.0)
    stiffness: float = eqx.field(static=True, default=1.0)

    data_fields = ("f",)
    elliptic = False  # degenerate where ∇u = 0 by design

    def __check_init__(self):
        check(self.f, "f", allow_none=False)
        if not (is_concrete_number(self.p) and self.p > 1):
            raise ValueError(f"p must be a number > 1, got {self.p!r}")
        if not (is_concrete_number(self.eps) and self.eps >= 0):
            raise ValueError(f"eps must be a number >= 0, got {self.eps!r}")
        if not (is_concrete_number(self.stiffness) and self.stiffness > 0):
            raise ValueError(f"stiffness must be a number > 0, got {self.stiffness!r}")

    def penalty_scale(self, x, params):
        return jnp.asarray(self.stiffness, x.dtype)

    def energy(self, x, u, du, params):
        s = self.eps**2 + du @ du
        # s^(p/2) with a zero-safe gradient at s = 0 (p > 2: the flux vanishes there)
        safe = jnp.where(s > 0, s, 1.0)
        w = jnp.where(s > 0, safe ** (0.5 * self.p), 0.0) / self.p
        return w - value(self.f, x, params) * u

    null_modes = _no_constant


class PowerReaction(Form):
    """−∇·(k∇u) + c u^m = f: a polynomial reaction of order m (the family that makes
    "high-order nonlinearity" a number).

    W = ½ k|∇u|² + c u^{m+1}/(m+1) − f u (convex for odd m and c >= 0).

    Attributes:
        m: the order, an integer >= 1 (static).
        k, c, f: data.
    """

    m: int = eqx.field(static=True, default=3)
    k: Any = 1.0
    c: Any = 1.0
    f: Any = 0.0

    data_fields = ("k", "c", "f")

    def __check_init__(self):
        for name in ("k", "c", "f"):
            check(getattr(self, name), name, allow_none=False)
        if isinstance(self.m, bool) or int(self.m) != self.m or self.m < 1:
            raise ValueError(f"m must be an integer >= 1, got {self.m!r}")
        if is_concrete_number(self.k) and self.k <= 0:
            raise ValueError(f"k must be positive, got {self.k!r}")

    def energy(self, x, u, du, params):
        k, c, f = (value(getattr(self, n), x, params) for n in ("k", "c", "f"))
        m = int(self.m)
        return 0.5 * k * du @ du + c * u ** (m + 1) / (m + 1) - f * u

    def null_modes(self, dim: int):
        # a reaction c > 0 fixes the constant, but its tangent c m u^{m-1} vanishes at u = 0 for
        # m > 1, so pure Neumann problems are only well-posed from a nonzero guess: allowed
        # for a positive number c, left to the user's judgement
        if is_concrete_number(self.c) and self.c > 0:
            return None
        return _no_constant(self, dim)


class AllenCahn(Form):
    """Steady Allen–Cahn −ε²Δu + u³ − u = f.

    W = ½ ε²|∇u|² + ¼ (u² − 1)² − f u: a double well, so several solutions (±1 phases and the
    interfaces between them); Newton finds the one its initial guess leads to.

    Attributes:
        eps: the interface width ε > 0.
        f: the source.
    """

    eps: Any = 0.1
    f: Any = 0.0

    data_fields = ("eps", "f")

    def __check_init__(self):
        check(self.eps, "eps", allow_none=False)
        check(self.f, "f", allow_none=False)
        if is_concrete_number(self.eps) and self.eps <= 0:
            raise ValueError(f"eps must be positive, got {self.eps!r}")

    def energy(self, x, u, du, params):
        eps, f = value(self.eps, x, params), value(self.f, x, params)
        return 0.5 * eps**2 * du @ du + 0.25 * (u * u - 1.0) ** 2 - f * u


class Burgers(Form):
    """The spatial part of viscous Burgers u_t + u (b·∇u) = ν Δu + f: weak residual
    r0 = u b·∇u − f, r1 = ν ∇u (for :func:`nmm.integrate`; b = (1, …, 1) by default, so in 1D
    u_t + u u_x = ν u_xx).

    Attributes:
        nu: the viscosity ν > 0.
        f: a source (default 0).
        direction: b, a ``(dim,)`` sequence (static), or None.
    """

    nu: Any = 0.01 / np.pi
    f: Any = 0.0
    direction: tuple | None = eqx.field(static=True, default=None)

    data_fields = ("nu", "f")
    symmetric = False

    def __check_init__(self):
        check(self.nu, "nu", allow_none=False)
        check(self.f, "f", allow_none=False)
        if is_concrete_number(self.nu) and self.nu <= 0:
            raise ValueError(f"nu must be positive, got {self.nu!r}")

    def residual(self, x, u, du, params):
        b = jnp.ones_like(du) if self.direction is None else jnp.asarray(self.direction, du.dtype)
        return u * (b @ du) - value(self.f, x, params), value(self.nu, x, params) * du
