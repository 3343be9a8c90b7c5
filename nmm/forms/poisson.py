"""Poisson / diffusion–reaction: -∇·(k ∇u) + c u = f, as one energy density."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from .base import Form, gershgorin_bound
from .boundary import Neumann
from .data import check, is_concrete_number, value


class Poisson(Form):
    """-∇·(k ∇u) + c u = f in Ω, u = g on Γ_D (weakly), k ∂u/∂n = h on Γ_N.

    W(x, u, ∇u) = ½ ∇u·k∇u + ½ c u² − f u.

    Attributes:
        k: conductivity > 0: a number, a ``(dim, dim)`` symmetric positive definite array
            (anisotropic), a callable ``k(x)`` / ``k(x, params)`` (scalar or ``(dim, dim)``), an
            ``nmm.Field`` or an equinox module (an MLP).
        c: reaction >= 0 (same kinds, scalar).
        f: source (same kinds, scalar).
        dirichlet, dirichlet_on, neumann, crack_neumann, bc, penalty: see :class:`Form`.
            ``neumann=h(x, n)`` is the outward flux k ∂u/∂n on the boundary that is not
            Dirichlet; crack faces are free (zero flux) unless ``crack_neumann`` is given, so u
            may jump across a crack. Penalty β0 (p + w)² k / h with β0 = 100 for Nitsche, 1e8 for
            the penalty method.
    """

    k: Any = 1.0
    c: Any = 0.0
    f: Any = 0.0

    data_fields = ("k", "c", "f")

    def __check_init__(self):
        for name in ("k", "c", "f"):
            check(getattr(self, name), name, allow_none=False)
        if (
            self.neumann is not None
            and not callable(self.neumann)
            and not isinstance(self.neumann, Neumann | list | tuple)
        ):
            raise TypeError(f"neumann must be a callable h(x, n), got {type(self.neumann).__name__}")
        if is_concrete_number(self.k) and self.k <= 0:
            raise ValueError(f"k must be positive, got {self.k!r}")
        if is_concrete_number(self.c) and self.c < 0:
            raise ValueError(f"c must be non-negative, got {self.c!r}")
        if isinstance(self.k, np.ndarray | list | tuple) and np.ndim(self.k) == 2:
            k = np.asarray(self.k, dtype=float)
            if k.shape[0] != k.shape[1] or not np.allclose(k, k.T):
                raise ValueError(f"k as an array must be a symmetric (dim, dim) matrix, got {k!r}")
            if np.any(np.linalg.eigvalsh(k) <= 0):
                raise ValueError(f"k as a matrix must be positive definite, got {k!r}")

    def _data(self, x, params):
        return tuple(value(d, x, params) for d in (self.k, self.c, self.f))

    def energy(self, x, u, du, params):
        k, c, f = self._data(x, params)
        flux = k * du if k.ndim == 0 else k @ du
        return 0.5 * du @ flux + 0.5 * c * u * u - f * u

    def residual(self, x, u, du, params):
        # ∂W/∂u and ∂W/∂∇u in closed form: what autodiff of ``energy`` gives, without its
        # backward pass in every use of the kernel (the p = 0 Poisson system's program: 714 ->
        # 519 equations to trace on a first call). A subclass with an energy of its own gets
        # that energy's gradient.
        if type(self).energy is not Poisson.energy:
            return super().residual(x, u, du, params)
        k, c, f = self._data(x, params)
        flux = k * du if k.ndim == 0 else 0.5 * (k + k.T) @ du
        return c * u - f, flux

    def penalty_scale(self, x, params):
        # the engine's bound on the tangent ∂σ/∂∇u, written down (k I or sym(k), in the point's
        # precision, as the default's jacfwd along ∇u gives it) instead of a jacfwd of the
        # residual in the boundary kernel, traced on every first call
        if type(self).energy is not Poisson.energy or type(self).residual is not Poisson.residual:
            return super().penalty_scale(x, params)
        k = self._data(x, params)[0]  # the k the residual uses (a subclass may derive it)
        d = k * jnp.eye(x.shape[0]) if k.ndim == 0 else 0.5 * (k + k.T)
        return gershgorin_bound(d.astype(jnp.result_type(k, x)))

    @property
    def is_symmetric(self) -> bool:
        # Poisson's residual is its energy's gradient (a subclass that overrides the residual
        # is judged as any form is)
        if type(self).symmetric is None and type(self).residual is Poisson.residual:
            return True
        return super().is_symmetric

    def admissible(self, x, params):
        k = value(self.k, x, params)
        ok = value(self.c, x, params) >= 0
        if k.ndim == 2:  # the diagonal is checked by the engine; a matrix also needs det > 0
            ok &= jnp.linalg.det(0.5 * (k + k.T)) > 0
        return ok

    def null_modes(self, dim: int):
        if not (is_concrete_number(self.c) and self.c == 0):
            return None
        return (
            [lambda p: np.ones((len(p), 1))],
            "and c = 0 (no Dirichlet data, or dirichlet_on selects no boundary piece): the "
            "solution is only defined up to a constant; give dirichlet=... on some part of the "
            "boundary, or c > 0",
        )
