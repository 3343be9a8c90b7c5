"""Boundary conditions of any form: where they hold (host side) and their terms at one point.

Dirichlet data are imposed weakly, because the cover does not follow the boundary: by Nitsche's
method (consistent; default) or by a penalty (the classic NMM). Both use only what the form
defines at a point — its flux σ = ∂W/∂∇u (or the ∇v-part of its residual) — so they hold for every
form, scalar or vector, linear or not. Per boundary point, with Dirichlet weight m_c ∈ {0, 1} per
component, penalty β s (β = β0 (p + w)² / h, s the form's stiffness scale) and outward normal n:

    energy:   Σ_c m_c [½ β s (u_c − g_c)² − (σ(u) n)_c (u_c − g_c)] − Σ_c h_c u_c
    residual: Σ_c m_c [β s (u_c − g_c) v_c − (σ(u) n)_c v_c − (Dσ(u)[v] n)_c (u_c − g_c)] − Σ_c h_c v_c

The residual is the derivative of the energy (so variational forms stay symmetric) and, at the
exact solution, cancels the boundary term of integration by parts (consistency). The penalty
method keeps only the β terms. ``h`` is the sum of the Neumann / traction data that apply there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .data import check

BCS = ("nitsche", "penalty")


class Dirichlet(eqx.Module):
    """A Dirichlet condition u_c = g_c on part of the boundary.

    Attributes:
        value: g: a number, an array ``(components,)``, a callable ``g(x)`` (``g(x, params)``), a
            field or a module; for vector forms it returns ``(components,)`` (all components, even
            those not constrained here).
        on: ``None`` (all of ∂Ω; crack faces never) or a numpy-vectorised mask
            ``on(points (m, dim)) -> bool (m,)``, evaluated at the midpoints of boundary pieces.
        components: ``None`` (all) or the indices of the constrained components (a roller:
            ``components=(0,)``).
    """

    value: Any
    on: Callable | None = eqx.field(static=True, default=None)
    components: tuple[int, ...] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check(self.value, "Dirichlet value", allow_none=False)
        if self.on is not None and not callable(self.on):
            raise TypeError(
                f"Dirichlet on must be a callable mask(points) -> bool array, got {self.on!r}"
            )
        if self.components is not None and not (
            isinstance(self.components, tuple) and all(isinstance(c, int) for c in self.components)
        ):
            raise TypeError(f"Dirichlet components must be a tuple of ints, got {self.components!r}")


class Neumann(eqx.Module):
    """Neumann / traction data h(x, n) on part of the boundary: the outward flux σ n there.

    Attributes:
        value: ``h(x, n)`` (``h(x, n, params)``) returning a scalar or ``(components,)``, or a
            constant.
        on: ``None`` (every part of ∂Ω that is not Dirichlet, per component) or a mask as in
            :class:`Dirichlet` (still only where the component is not Dirichlet).
    """

    value: Any
    on: Callable | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check(self.value, "Neumann value", allow_none=False)
        if self.on is not None and not callable(self.on):
            raise TypeError(f"Neumann on must be a callable mask(points) -> bool array, got {self.on!r}")


def dirichlet_conditions(form) -> list[Dirichlet]:
    """The form's Dirichlet conditions as a list (``dirichlet`` may be data, one condition or a
    list; plain data holds on ``dirichlet_on``, all components)."""
    d = form.dirichlet
    if d is None:
        return []
    objects = isinstance(d, Dirichlet) or (
        isinstance(d, list | tuple) and all(isinstance(c, Dirichlet) for c in d)
    )
    if objects and form.dirichlet_on is not None:
        raise ValueError(
            "dirichlet_on applies to plain Dirichlet data; with nmm.Dirichlet conditions give "
            "each its own on=mask"
        )
    if isinstance(d, Dirichlet):
        return [d]
    if objects:
        return list(d)
    return [Dirichlet(d, on=form.dirichlet_on)]


def neumann_conditions(form) -> list[Neumann]:
    d = form.neumann
    if d is None:
        return []
    if isinstance(d, Neumann):
        return [d]
    if isinstance(d, list | tuple) and all(isinstance(c, Neumann) for c in d):
        return list(d)
    return [Neumann(d)]


def _mask(fn, mid: np.ndarray, name: str) -> np.ndarray:
    sel = np.asarray(fn(mid), dtype=bool).reshape(-1)
    if sel.shape != (len(mid),):
        raise ValueError(
            f"{name} must return one bool per point, got shape {sel.shape} for {len(mid)} points"
        )
    return sel


def masks(space, form) -> tuple[np.ndarray, np.ndarray]:
    """Host-side masks over the space's boundary pieces, per component.

    Returns ``dirichlet (k_d, n_b, n)`` (disjoint: a piece and component belong to the first
    condition that selects it) and ``neumann (k_n, n_b, n)``.
    """
    topo = space.host.topology
    n = space.components
    outer = ~topo.bnd_crack
    mid = topo.bnd.mean(axis=1)
    taken = np.zeros((len(outer), n), bool)
    dmasks = []
    for i, cond in enumerate(dirichlet_conditions(form)):
        sel = outer if cond.on is None else outer & _mask(cond.on, mid, f"dirichlet[{i}].on")
        comps = np.zeros(n, bool)
        idx = range(n) if cond.components is None else cond.components
        for c in idx:
            if not 0 <= c < n:
                raise ValueError(
                    f"dirichlet[{i}].components: component {c} does not exist; the form has {n} "
                    "components"
                )
            comps[c] = True
        m = sel[:, None] & comps[None, :] & ~taken
        taken |= m
        dmasks.append(m)
    nmasks = []
    for i, cond in enumerate(neumann_conditions(form)):
        sel = outer if cond.on is None else outer & _mask(cond.on, mid, f"neumann[{i}].on")
        nmasks.append(sel[:, None] & ~taken)
    nb = len(outer)
    dm = np.stack(dmasks) if dmasks else np.zeros((0, nb, n), bool)
    nm = np.stack(nmasks) if nmasks else np.zeros((0, nb, n), bool)
    return dm.astype(float), nm.astype(float)


def check_null_modes(space, form, dmask: np.ndarray) -> None:
    """Refuse a problem whose Dirichlet conditions leave part of the form's null space free
    (a constant for pure-Neumann Poisson, rigid motions for elasticity): the solve would be
    singular. Host side, before any tracing."""
    modes = form.null_modes(space.dim)
    if modes is None:
        return
    fns, what = modes
    # every quadrature point of the constrained pieces (a straight clamped edge that is a single
    # piece still fixes the rotation: its midpoint alone would not)
    pts = np.asarray(space.b_points)  # (n_b, Q, dim)
    constrained = dmask.sum(axis=0) > 0  # (n_b, n)
    rows = []
    for c in range(space.components):
        sel = pts[constrained[:, c]].reshape(-1, space.dim)
        if len(sel):
            rows.append(np.stack([np.asarray(fn(sel))[:, c] for fn in fns], axis=1))
    m = np.concatenate(rows) if rows else np.zeros((0, len(fns)))
    rank = np.linalg.matrix_rank(m, tol=1e-9 * max(1.0, np.abs(m).max(initial=0.0))) if len(m) else 0
    if rank < len(fns):
        where = (
            "no Dirichlet boundary"
            if not np.any(constrained)
            else "the Dirichlet conditions do not fix the null space"
        )
        raise ValueError(f"{type(form).__name__}: {where} {what}")


# ------------------------------------------------------------------------------ point terms


def combine(dmask, gs, nmask, hs, crack, hc, s):
    """The data that hold at boundary points, from every condition's data and masks.

    Args (``...`` = the points' axes): ``dmask, gs (..., k_d, n)``, ``nmask, hs (..., k_n, n)``,
    ``crack (...)``, ``hc (..., n)``, ``s (...)``.

    Returns ``g, m, h (..., n)`` and ``s``. Data are taken only where their condition holds
    (``where``, not a product with the mask), so a datum that is NaN or infinite off its part of
    the boundary — ``log(x)`` on a part where x > 0 — does not poison the others."""
    g = jnp.sum(jnp.where(dmask > 0, gs, 0.0), axis=-2)
    m = jnp.sum(dmask, axis=-2)
    h = jnp.sum(jnp.where(nmask > 0, hs, 0.0), axis=-2)
    h = h + jnp.where(crack[..., None] > 0, hc, 0.0)
    s = jnp.where(jnp.any(m > 0, axis=-1), s, 0.0)
    return g, m, h, s


def weak(flux, z, normal, g, m, h, beta_s, nitsche: bool):
    """The boundary residual at one point: the coefficients ``(n, 1 + dim)`` of the test values
    (v, ∇v) in the residual of the module docstring.

    Args:
        flux: ``z -> σ (n, dim)``.
        z: state values ``(n, 1 + dim)`` (value, gradient).
        g, m, h: Dirichlet value, Dirichlet weight and Neumann data, ``(n,)`` each.
        beta_s: the penalty β s (scalar).
    """
    u = z[:, 0]
    jump = m * (u - g)
    r0 = beta_s * jump - h
    if not nitsche:
        return jnp.zeros_like(z).at[:, 0].set(r0)
    sig, pullback = jax.vjp(flux, z)
    # (Dσ(u)[v] n)·jump = Dσ(u)[v] : (jump ⊗ n): its coefficients are a pullback of jump ⊗ n
    (adj,) = pullback(-jump[:, None] * normal[None, :])
    return adj.at[:, 0].add(r0 - m * (sig @ normal))


def weak_linear(sig, S, z, normal, g, m, h, beta_s, nitsche: bool):
    """:func:`weak` and its tangent for a flux that is affine in the state, from the flux
    ``sig (n, dim)`` at ``z`` and its constant derivative ``S = ∂σ/∂z (n, dim, n, 1 + dim)``.

    The same numbers as autodiff of :func:`weak` (tested), without differentiating a pullback:
    with ``A[c, 0, e, b] = m_c n·S[c, :, e, b]`` (the ``(σ n)_c v_c`` term), the tangent is
    ``β s m`` on the values minus ``A`` minus its transpose (the ``Dσ[v] n · jump`` term)."""
    n, k = z.shape
    u = z[:, 0]
    jump = m * (u - g)
    r = jnp.zeros_like(z).at[:, 0].set(beta_s * jump - h)
    T = jnp.zeros((n, k, n, k), z.dtype)
    T = T.at[:, 0, :, 0].set(jnp.diag(beta_s * m))
    if nitsche:
        Sn = jnp.einsum("cdeb,d->ceb", S, normal)  # (σ(z) n) derivative: (n, n, 1 + dim)
        r = r.at[:, 0].add(-m * (sig @ normal)) - jnp.einsum("c,ceb->eb", jump, Sn)
        A = jnp.zeros((n, k, n, k), z.dtype).at[:, 0].set(m[:, None, None] * Sn)
        T = T - A - jnp.transpose(A, (2, 3, 0, 1))
    return r, T


def energy(flux, z, normal, g, m, h, beta_s, nitsche: bool):
    """The boundary energy at one point (the functional whose derivative is :func:`weak`)."""
    u = z[:, 0]
    jump = m * (u - g)
    out = 0.5 * jnp.sum(beta_s * jump * (u - g)) - jnp.sum(h * u)
    if nitsche:
        out = out - jnp.sum((flux(z) @ normal) * jump)
    return out
