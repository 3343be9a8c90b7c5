"""Assembly of any form: point kernels vmapped over elements × points, contracted with the basis,
scatter-added into the cover-pair block matrix and the global vector.

Nothing here knows a PDE. At every quadrature point the bound form gives its residual (r0, r1) and
the non-zero blocks of its tangent (autodiff, :mod:`nmm.kernels`); the local vector and matrix are

    R_ic  = Σ_q w [φ_i r0_c + ∇φ_i · r1_c]
    K_icje = Σ_q w [φ_i ∂r0_c(φ_j e_e) + ∇φ_i · ∂r1_c(φ_j e_e)]

for scalar basis functions i, j of the element and components c, e, where ∂r(v) is the
residual's derivative along the basis function (a JVP of the form per basis function: for Poisson
the product k ∇φ_j, so the autodiff kernel does the work of a hand-written one). Boundary pieces
get the Nitsche / penalty / Neumann terms of :mod:`nmm.forms.boundary` (for linear forms in closed
form from the flux tangent, for nonlinear ones by autodiff), contracted with the stacked basis
[φ, ∇φ]. No Python loop runs over elements or points.

The residual convention is R(x) = K x − b for linear forms: a linear solve is K x = −R(0).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .forms import boundary as bc
from .kernels import Kernels
from .linalg.operator import BlockCSR


class Quadrature(eqx.Module):
    """Points where a functional is integrated: ``elems (S,)``, ``points (S, Q, dim)``,
    ``weights (S, Q)``."""

    elems: jax.Array
    points: jax.Array
    weights: jax.Array


class BoundaryData(eqx.Module):
    """Where the boundary conditions hold (host-side masks, as arrays): ``dirichlet (k_d, n_b, n)``
    and ``neumann (k_n, n_b, n)`` weights per piece and component."""

    dirichlet: jax.Array
    neumann: jax.Array
    # read from the host masks before they become arrays (under an outer jit they are tracers)
    has_dirichlet: bool = eqx.field(static=True, default=True)


def volume_quadrature(space) -> Quadrature:
    return Quadrature(space.q_elem, space.q_points, space.q_weights)


@eqx.filter_jit
def basis_at(space, elems, points):
    """Scalar local basis at points: ``elems (S,)``, ``points (S, Q, dim)`` ->
    ``phi (S, Q, L)``, ``dphi (S, Q, L, dim)`` with ``L = vertices × terms``.

    Jitted so that its trace is reused: a solve assembles the same points more than once (the
    matrix, then the matrix-free residuals of the refinement or of Newton), and each assembly
    traced the cover functions anew."""
    per_point = jax.vmap(space.local_basis, in_axes=(None, 0))
    return jax.vmap(per_point)(elems, points)


class BasisTables(eqx.Module):
    """The basis at the volume and boundary quadrature points (:func:`basis_at`'s ``(phi,
    dphi)`` pairs), computed once and passed to later assemblies on the same points: an eager
    solve's matrix-free residuals run as programs of their own, which would otherwise evaluate
    the cover functions again (a p = 2 residual at 1e4 unknowns: 56–64 ms, more than the matrix)."""

    volume: tuple
    boundary: tuple | None
    flux: jax.Array | None  # gradients on the flux elements (``space.extended``)


def basis_tables(space, quad=None, boundary: bool = True) -> BasisTables:
    """The basis at ``quad``'s points (default: the space's quadrature) and, with ``boundary``,
    at the boundary pieces' points: the tables every assembly reads."""
    quad = volume_quadrature(space) if quad is None else quad
    on_pieces = flux = None
    if boundary and space.b_elem.shape[0] > 0:
        on_pieces = basis_at(space, space.b_elem, space.b_points)
        if space.extended:
            flux = basis_at(space, space.b_flux, space.b_points)[1]
    return BasisTables(basis_at(space, quad.elems, quad.points), on_pieces, flux)


def interpolate(space, coeffs, elems, phi, dphi):
    """State at points: ``u (S, Q, n)``, ``du (S, Q, n, dim)``."""
    n, nt = space.components, space.n_terms
    s, q, L = phi.shape
    nv = L // nt
    X = coeffs[space.elem_dofs[elems]].reshape(s, nv, n, nt)
    u = jnp.einsum("sqvt,svct->sqc", phi.reshape(s, q, nv, nt), X)
    du = jnp.einsum("sqvtd,svct->sqcd", dphi.reshape(s, q, nv, nt, -1), X)
    return u, du


def contract_vector(w, phi, dphi, r0, r1):
    """``(S, L, n)`` local vectors from point residuals ``r0 (S, Q, n)``, ``r1 (S, Q, n, dim)``."""
    # the weight multiplies the point data first (w f, w k, ...), as in a hand-written kernel
    wr0 = w[..., None] * r0
    wr1 = w[..., None, None] * r1
    return jnp.einsum("sqi,sqc->sic", phi, wr0) + jnp.einsum("sqid,sqcd->sic", dphi, wr1)


def scatter_vector(space, elems, local):
    """Add local vectors ``(S, L, n)`` into a global vector ``(n_dofs,)``."""
    s = local.shape[0]
    nt, n = space.n_terms, space.components
    loc = local.reshape(s, -1, nt, n).transpose(0, 1, 3, 2).reshape(-1)
    return jax.ops.segment_sum(loc, space.elem_dofs[elems].reshape(-1), num_segments=space.n_dofs)


def scatter_matrix(space, elems, local, blocks=None):
    """Add local matrices ``(S, L, n, L, n)`` into block data ``(n_blocks, b, b)``; ``blocks (S,
    n_v, n_v)``: the block of each pair of vertex covers (default: those of ``elems``)."""
    s = local.shape[0]
    nt, n = space.n_terms, space.components
    nv = local.shape[1] // nt
    b = n * nt
    blocks_ = local.reshape(s, nv, nt, n, nv, nt, n).transpose(0, 1, 4, 3, 2, 6, 5).reshape(-1, b, b)
    idx = (space.elem_blocks[elems] if blocks is None else blocks).reshape(-1)
    return jax.ops.segment_sum(blocks_, idx, num_segments=space.block_rows.shape[0])


def _state(space, coeffs, elems, phi, dphi):
    if coeffs is None:
        s, q, _ = phi.shape
        n, dim = space.components, space.dim
        return jnp.zeros((s, q, n), phi.dtype), jnp.zeros((s, q, n, dim), phi.dtype)
    return interpolate(space, coeffs, elems, phi, dphi)


def _volume(space, kern: Kernels, quad: Quadrature, coeffs, matrix: bool, tables: BasisTables):
    phi, dphi = tables.volume
    u, du = _state(space, coeffs, quad.elems, phi, dphi)
    per_point = jax.vmap(jax.vmap(kern.volume))
    r0, r1 = per_point(quad.points, u, du)
    w = quad.weights
    vec = scatter_vector(space, quad.elems, contract_vector(w, phi, dphi, r0, r1))
    if not matrix:
        return vec, None, jnp.asarray(True)
    t0, t1 = jax.vmap(jax.vmap(kern.pushforward))(quad.points, u, du, phi, dphi)
    local = None
    if t0 is not None and kern.n == 1:  # φ_i · (residual r0 along basis function j)
        local = jnp.einsum("sq,sqi,sqj->sij", w, phi, t0[..., 0, 0])[:, :, None, :, None]
    elif t0 is not None:
        local = jnp.einsum("sq,sqi,sqjec->sicje", w, phi, t0)
    if t1 is not None:  # ∇φ_i · (residual r1 along basis function j)
        t = jnp.einsum("sq,sqid,sqjecd->sicje", w, dphi, t1)
        local = t if local is None else local + t
    ok = jnp.all(jax.vmap(jax.vmap(kern.admissible))(quad.points) | (w == 0))
    if kern.elliptic:
        # a necessary condition of (strong) ellipticity, read off the tangent: positive
        # diffusion along every component and direction (the sign of a reaction term is the
        # form's to judge: Helmholtz and Bratu have negative ones)
        dg = jax.vmap(jax.vmap(kern.diagonal))(quad.points, u, du)
        if "gg" in kern.blocks:
            ok &= jnp.all((dg > 0) | (w == 0)[..., None, None])
    return vec, scatter_matrix(space, quad.elems, local), ok


def masks_at_points(mask):
    """Per-piece condition masks ``(k, n_b, n)`` aligned with the boundary points: ``(n_b, 1, k, n)``."""
    return jnp.moveaxis(mask, 0, 1)[:, None]


def _boundary_residuals(space, kern: Kernels, bd: BoundaryData, coeffs, matrix: bool, tables):
    """Boundary residuals ``r (n_b, Q, n, 1 + dim)`` (coefficients of v and ∇v) at the boundary
    quadrature points, their tangents ``T`` (with ``matrix``), and the basis there: values of the
    pieces' elements, gradients of their flux elements (the same elements unless
    ``space.extended``: see ``nmm.stable.boundary_donors``)."""
    elems, pts, normal = space.b_elem, space.b_points, space.b_normal
    phi, dphi = tables.boundary
    u, du = _state(space, coeffs, elems, phi, dphi)
    if space.extended:
        dphi = tables.flux
        du = _state(space, coeffs, space.b_flux, phi, dphi)[1]
    gs, hs, hc, s = jax.vmap(jax.vmap(kern.boundary, in_axes=(0, None)))(pts, normal)
    # the conditions that hold on each piece (masks are per piece: align them with the points)
    crack = jnp.broadcast_to(space.b_crack[:, None], s.shape)
    g, m, h, s = bc.combine(
        masks_at_points(bd.dirichlet), gs, masks_at_points(bd.neumann), hs, crack, hc, s
    )
    m = m[:, 0]  # (n_b, n): one weight per piece
    beta_s = space.boundary_beta(kern.beta0)[:, None] * s  # (n_b, Q)

    def rho(x, nrm, z, g_, m_, h_, bs):
        return bc.weak(lambda zz: kern.flux(x, zz), z, nrm, g_, m_, h_, bs, kern.nitsche)

    def point(x, nrm, a, b, g_, m_, h_, bs):
        z = jnp.concatenate([a[:, None], b], axis=1)
        if matrix and kern.linear:  # an affine flux: its tangent is all we differentiate
            flux = lambda zz: kern.flux(x, zz)  # noqa: E731
            return bc.weak_linear(flux(z), jax.jacfwd(flux)(z), z, nrm, g_, m_, h_, bs, kern.nitsche)
        r = rho(x, nrm, z, g_, m_, h_, bs)
        if not matrix:
            return r, None
        return r, jax.jacfwd(lambda zz: rho(x, nrm, zz, g_, m_, h_, bs))(z)

    per_piece = jax.vmap(point, in_axes=(0, None, 0, 0, 0, None, 0, 0))
    r, T = jax.vmap(per_piece)(pts, normal, u, du, g, m, h, beta_s)
    return r, T, phi, dphi


def _boundary(space, kern: Kernels, bd: BoundaryData, coeffs, matrix: bool, tables):
    if space.b_elem.shape[0] == 0:
        return None, None
    elems, wts = space.b_elem, space.b_weights
    r, T, phi, dphi = _boundary_residuals(space, kern, bd, coeffs, matrix, tables)
    if space.extended:
        return _boundary_extended(space, wts, r, T, phi, dphi, matrix)
    vec = scatter_vector(space, elems, contract_vector(wts, phi, dphi, r[..., 0], r[..., 1:]))
    if not matrix:
        return vec, None
    # one contraction with the stacked basis G = [φ, ∇φ] (fewer ops to compile than four blocks)
    G = jnp.concatenate([phi[..., None], dphi], axis=-1)
    local = jnp.einsum("sqia,sqcaeb,sqjb->sicje", G, wts[..., None, None, None, None] * T, G)
    return vec, scatter_matrix(space, elems, local)


def _boundary_extended(space, wts, r, T, phi, dphi, matrix):
    """``_boundary`` with values on the pieces' elements and gradients on their flux elements:
    four blocks (element and flux-element covers as test and trial)."""
    e, f = space.b_elem, space.b_flux
    zero0, zero1 = jnp.zeros_like(r[..., 0]), jnp.zeros_like(r[..., 1:])
    vec = scatter_vector(space, e, contract_vector(wts, phi, dphi, r[..., 0], zero1))
    vec = vec + scatter_vector(space, f, contract_vector(wts, phi, dphi, zero0, r[..., 1:]))
    if not matrix:
        return vec, None
    G = (phi[..., None], dphi)  # the value part on e, the gradient part on f
    wT = wts[..., None, None, None, None] * T
    part = lambda a, i, j: jnp.einsum(  # noqa: E731
        "sqia,sqcaeb,sqjb->sicje", G[i], wT[..., a[0], :, :][..., a[1]], G[j]
    )
    v, g = slice(0, 1), slice(1, None)
    data = scatter_matrix(space, e, part((v, v), 0, 0))
    data = data + scatter_matrix(space, f, part((g, g), 1, 1))
    data = data + scatter_matrix(space, e, part((v, g), 0, 1), space.b_blocks[:, 0])
    data = data + scatter_matrix(space, e, part((g, v), 1, 0), space.b_blocks[:, 1])
    return vec, data


def assemble(
    space,
    kern: Kernels,
    bd: BoundaryData,
    coeffs=None,
    quad=None,
    matrix=True,
    boundary=True,
    tables: BasisTables | None = None,
):
    """Residual ``R(coeffs) (n_dofs,)`` and, with ``matrix``, the tangent as a :class:`BlockCSR`
    and an admissibility flag (``coeffs=None``: at zero, the linear system K x = −R(0)).

    Args:
        quad: volume quadrature (default: the space's; samples for least-squares fits).
        boundary: include the boundary terms.
        tables: the basis at ``quad``'s and the boundary's points (:func:`basis_tables`; computed
            here by default).
    """
    quad = volume_quadrature(space) if quad is None else quad
    boundary = boundary and kern.has_boundary_terms
    tables = basis_tables(space, quad, boundary) if tables is None else tables
    vec, data, ok = _volume(space, kern, quad, coeffs, matrix, tables)
    if boundary:
        bvec, bdata = _boundary(space, kern, bd, coeffs, matrix, tables)
        if bvec is not None:
            vec = vec + bvec
            data = data + bdata if matrix else None
    if not matrix:
        return vec
    return vec, operator(space, kern, data), ok


def operator(space, kern: Kernels, data) -> BlockCSR:
    """The tangent with block values ``data`` on the space's block pattern."""
    return BlockCSR(
        data, space.block_rows, space.block_cols, space.host.pattern, symmetric=kern.symmetric
    )
