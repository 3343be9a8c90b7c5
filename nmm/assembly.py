"""Assembly kernels (pure JAX): element integrals vmapped over integration simplices × points, then
scatter-added into the cover-pair block matrix and the load vector.

Nothing here loops over elements in Python; the only Python loops are over static sizes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .problems import Poisson, evaluate


def basis_at(space, elems, points):
    """Local basis at points: ``elems (S,)``, ``points (S, Q, dim)`` ->
    ``phi (S, Q, n_loc)``, ``dphi (S, Q, n_loc, dim)``."""
    per_point = jax.vmap(space.local_basis, in_axes=(None, 0))
    return jax.vmap(per_point)(elems, points)


def scatter_matrix(space, elems, local):
    """Add local matrices ``(S, n_loc, n_loc)`` of elements ``elems (S,)`` into block data
    ``(n_blocks, nt, nt)``."""
    nt = space.n_terms
    nv = space.n_local // nt
    s = local.shape[0]
    blocks = local.reshape(s, nv, nt, nv, nt).transpose(0, 1, 3, 2, 4).reshape(-1, nt, nt)
    idx = space.elem_blocks[elems].reshape(-1)
    return jax.ops.segment_sum(blocks, idx, num_segments=space.block_rows.shape[0])


def scatter_vector(space, elems, local):
    """Add local vectors ``(S, n_loc)`` into a global vector ``(n_dofs,)``."""
    idx = space.elem_dofs[elems].reshape(-1)
    return jax.ops.segment_sum(local.reshape(-1), idx, num_segments=space.n_dofs)


def mass_system(space, values, elems, points, weights):
    """Least-squares system of Σ_q w_q (u(x_q) - values_q)²: ``(block data, rhs)``.

    With the space's quadrature this is the L2 projection; with unit weights at sample points it
    is the discrete least-squares fit.
    """
    phi, _ = basis_at(space, elems, points)
    local = jnp.einsum("sq,sqi,sqj->sij", weights, phi, phi)
    rhs = jnp.einsum("sq,sqi->si", weights * values, phi)
    return scatter_matrix(space, elems, local), scatter_vector(space, elems, rhs)


def poisson_system(space, problem: Poisson, params, dirichlet_mask, neumann_mask):
    """Block data and rhs of the Poisson problem, Nitsche or penalty boundary terms included.

    Args:
        dirichlet_mask, neumann_mask: ``(n_b,)`` float masks over the space's boundary pieces
            (Neumann data on crack faces comes from ``problem.crack_neumann`` and ``space.b_crack``).
    """
    # volume terms
    elems, pts, w = space.q_elem, space.q_points, space.q_weights
    phi, dphi = basis_at(space, elems, pts)
    kq = evaluate(problem.k, pts, params)
    cq = evaluate(problem.c, pts, params)
    fq = evaluate(problem.f, pts, params)
    local = jnp.einsum("sq,sqid,sqjd->sij", w * kq, dphi, dphi)
    local = local + jnp.einsum("sq,sqi,sqj->sij", w * cq, phi, phi)
    data = scatter_matrix(space, elems, local)
    rhs = scatter_vector(space, elems, jnp.einsum("sq,sqi->si", w * fq, phi))
    if space.b_elem.shape[0] == 0:
        return data, rhs

    # boundary terms
    be, bp, normal = space.b_elem, space.b_points, space.b_normal
    phib, dphib = basis_at(space, be, bp)
    if problem.dirichlet is not None:
        wd = space.b_weights * dirichlet_mask[:, None]
        kb = evaluate(problem.k, bp, params)
        g = evaluate(problem.dirichlet, bp, params)
        wdeg = 2 if space.kind == "quad" else 1
        beta = problem.beta0 * (space.degree + wdeg) ** 2 / space.elem_h[be]
        pen = wd * kb * beta[:, None]
        bl = jnp.einsum("sq,sqi,sqj->sij", pen, phib, phib)
        br = jnp.einsum("sq,sqi->si", pen * g, phib)
        if problem.bc == "nitsche":
            dn = jnp.einsum("sqid,sd->sqi", dphib, normal)
            cross = jnp.einsum("sq,sqi,sqj->sij", wd * kb, dn, phib)
            bl = bl - cross - jnp.swapaxes(cross, 1, 2)
            br = br - jnp.einsum("sq,sqi->si", wd * kb * g, dn)
        data = data + scatter_matrix(space, be, bl)
        rhs = rhs + scatter_vector(space, be, br)
    nq = jnp.broadcast_to(normal[:, None, :], bp.shape)
    for flux, mask in (
        (problem.neumann, neumann_mask),
        (problem.crack_neumann, space.b_crack.astype(bp.dtype)),
    ):
        if flux is not None:
            wn = space.b_weights * mask[:, None]
            hq = evaluate(flux, bp, params, nq)
            rhs = rhs + scatter_vector(space, be, jnp.einsum("sq,sqi->si", wn * hq, phib))
    return data, rhs
