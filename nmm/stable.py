"""Stable cover functions for high orders: each physical cover's polynomials in its support's own
frame, orthonormalised on it; and Nitsche fluxes taken away from covers that keep a sliver.

Why (measured; the README's "Singular systems" tells the whole story). The cover functions of a
cover cut by the domain were Legendre polynomials of the whole patch box, restricted to the part
of it in the domain: on a half patch (the end of an interval), a corner or a sliver they are
nearly dependent on their own (local Gram condition 5e16 for degree 11 on half its box, 1e273 on
a 1e-9 sliver), on top of the dependence of hats × polynomials across covers. That local part
alone kept 1D fits on one or two intervals at 1e-12 / 1.2e-10 (2e-15 with this module) and p = 6
Poisson with a hole at 4e-9 (2.5e-11). The cross-cover part (a continuum of near-null modes, not
a per-cover matter) is :mod:`nmm.refine`'s.

What. Polynomials of total degree <= p are invariant under affine maps, so each physical cover may
use its own coordinates without changing the space (hats × P_p still reproduce degree p + 1):

* ``support_boxes`` / ``frames``: the support's own box: its principal axes (where they give a
  clearly smaller box, e.g. a slanted sliver), its centre and its half-widths, so that the support
  fills [-1, 1]^dim;
* ``transforms``: in those coordinates the Gram matrix of the cover's functions weighted by its
  hat squared (its diagonal block of the mass matrix) is well conditioned but not the identity;
  T_c = V Λ^{-1/2} (eigenvectors, scaled) makes it the identity. A direction whose eigenvalue is
  below ``TAU`` of the largest vanishes on the support to round-off: it is dropped (a zero
  column; the solvers keep zero rows at zero).

The basis is transformed at every point (``ManifoldSpace.local_basis``), so matrices are
assembled in the stable basis (transforming an assembled matrix would amplify its rounding by the
transform's condition). It depends on the geometry only: computed once per space on the host;
gradients of solves are unaffected.

Thin covers (supports thinner than ``THIN`` × h: a sliver of the domain, a corner cut off by a
hole) are handled apart, for every degree (below):

* ``boundary_donors``: a thin cover's hat has a normal derivative ~ 1/h on the boundary but
  energy ~ its width, so Nitsche's form is indefinite there whatever the basis: boundary pieces
  next to it take their flux from a neighbouring element;
* ``aggregate``: below ``AGGREGATE`` × h the thin cover's own functions come out wrong on the
  sliver (the flux alone does not help): its elements take a neighbour's basis instead, and the
  cover is gone.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import basis as _basis
from .arrays import unique
from .covers import cell_weights

_CHUNK = 2048  # simplices per compiled batch of local_grams
THIN = 1e-2  # covers thinner than this fraction of the cell size are thin (see below)
AGGREGATE = 3e-6  # thin covers thinner than this fraction are aggregated (see ``aggregate``)
TAU = 1e-14  # relative eigenvalue below which a local direction is dropped (see above)


def support_boxes(simplices, simplex_elem, elem_covers, n_cover, q_points, q_weights, q_elem):
    """The box of every physical cover's support: ``center (n_cover, dim)``, axes ``rot
    (n_cover, dim, dim)`` (columns) and half-widths ``half (n_cover, dim)`` (covers without
    simplices here get half-widths inf).

    Args:
        simplices: ``(n_s, dim + 1, dim)`` the exact triangulation of the elements.
        simplex_elem: ``(n_s,)`` their elements; ``elem_covers (n_elem, n_v)``.
        q_points, q_weights, q_elem: the volume rule on the simplices (for the principal axes).
    """
    dim = simplices.shape[-1]
    cov = elem_covers[q_elem]  # (S, n_v): every cover of the simplex's element holds it
    m0 = np.bincount(cov.ravel(), np.repeat(q_weights.sum(1), cov.shape[1]), n_cover)
    m1 = np.zeros((n_cover, dim))
    np.add.at(m1, cov.ravel(), np.repeat(np.einsum("sq,sqd->sd", q_weights, q_points), cov.shape[1], 0))
    mean = m1 / np.where(m0 > 0, m0, 1.0)[:, None]
    # second moments about the mean, in a second pass (a sliver's width would cancel otherwise)
    d = q_points[:, None] - mean[cov][:, :, None]  # (S, n_v, Q, dim)
    m2 = np.zeros((n_cover, dim, dim))
    np.add.at(m2, cov.ravel(), np.einsum("sq,svqi,svqj->svij", q_weights, d, d).reshape(-1, dim, dim))
    # principal axes (columns), of the covers that hold simplices here (the others keep the
    # identity: most covers when only the cut elements' boxes are asked for)
    held = np.nonzero(m0 > 0)[0]
    rot = np.broadcast_to(np.eye(dim), m2.shape).copy()
    rot[held] = np.linalg.eigh(m2[held])[1]
    eye = np.broadcast_to(np.eye(dim), rot.shape)
    vert_covers = elem_covers[simplex_elem]  # (n_s, n_v)

    def box(q):  # per cover: lower and upper bounds of the support in the frame (mean, q)
        lo = np.full((n_cover, dim), np.inf)
        hi = np.full((n_cover, dim), -np.inf)
        for k in range(vert_covers.shape[1]):  # a few vertices per cell
            c = vert_covers[:, k]
            y = np.einsum("svi,sij->svj", simplices - mean[c][:, None], q[c])
            np.minimum.at(lo, c, y.min(1))
            np.maximum.at(hi, c, y.max(1))
        return lo, hi

    empty = (m0 == 0)[:, None]  # covers without simplices here: an infinite box
    lo_a, hi_a = (np.where(empty, 0.0, b) for b in box(eye))
    lo_p, hi_p = (np.where(empty, 0.0, b) for b in box(rot))
    # the principal box only where it is clearly smaller: symmetric patches have no preferred
    # axes, and the axis-aligned frame is then the patch box of the plain basis
    use = np.prod(hi_p - lo_p, 1) < 0.5 * np.prod(hi_a - lo_a, 1)
    q = np.where(use[:, None, None], rot, eye)
    lo = np.where(use[:, None], lo_p, lo_a)
    hi = np.where(use[:, None], hi_p, hi_a)
    half = np.where(empty, np.inf, 0.5 * (hi - lo))
    center = mean + np.einsum("cij,cj->ci", q, 0.5 * (hi + lo))
    return center, q, half


def frames(center, rot, half):
    """The cover functions' coordinates ξ = axes @ (x − center): the support's box, rotated to its
    principal axes and scaled by its half-width along each, so that the support fills
    [-1, 1]^dim (one scale for all axes would make the directions across a thin support nearly
    dependent: polynomials of degree 9 across a support 1/20 of the patch wide carry 1e-24 of
    its norm and would be lost)."""
    return center, np.swapaxes(rot, 1, 2) / half[:, :, None]


def local_grams(
    kind,
    degree,
    basis,
    cell_data,
    elem_covers,
    center,
    axes,
    q_points,
    q_weights,
    q_elem,
    extra=None,
    slots=None,
):
    """``(n_cover, nt, nt)``: Σ_q w w_c² ψ ψᵀ over each cover's support, ψ the cover functions in
    the cover's frame (its diagonal block of the mass matrix). Host arrays in, host array out;
    simplices go through in chunks of fixed size (one compilation, bounded memory); ``extra``:
    ``x -> (M,)`` functions every cover carries after its polynomials (``nmm.enrich``);
    ``slots``: ``x -> (w (G,), psi (G, nt))`` the weights and functions of the covers in the last
    G columns of ``elem_covers`` (cut-off enrichments, ``nmm.space``)."""
    dim = center.shape[1]
    n_cover = max(center.shape[0], int(elem_covers.max(initial=-1)) + 1)  # with cut-off covers
    nt = _basis.n_terms(dim, degree, basis)
    if extra is not None:
        nt += int(np.asarray(jax.eval_shape(extra, jnp.zeros(dim)).shape[0]))
    # chunks of a power-of-two size (padded with zero weights): one compiled program serves every
    # space of the same kind and degree whose simplex count falls in the same bucket
    n_q = len(q_elem)
    chunk = min(_CHUNK, 1 << max(0, int(np.ceil(np.log2(max(n_q, 1))))))
    center, axes = np.asarray(center), np.asarray(axes)
    grams = np.zeros((n_cover, nt, nt))
    for start in range(0, n_q, chunk):
        idx = np.arange(start, start + chunk) % n_q
        wts = np.where((np.arange(start, start + chunk) < n_q)[:, None], q_weights[idx], 0.0)
        e = q_elem[idx]
        # each simplex's covers' frames, gathered here: the program's shapes do not depend on
        # the number of covers (a cut-off cover has no frame: its column is never read)
        own = np.minimum(elem_covers[e], len(center) - 1)
        out = _gram_blocks(
            cell_data[e],
            q_points[idx],
            wts,
            center[own],
            axes[own],
            kind=kind,
            degree=degree,
            basis=basis,
            extra=extra,
            slots=slots,
        )
        np.add.at(grams, elem_covers[e].ravel(), np.asarray(out).reshape(-1, nt, nt))
    return grams


@functools.partial(jax.jit, static_argnames=("kind", "degree", "basis", "extra", "slots"))
def _gram_blocks(data, pts, wts, center, axes, *, kind, degree, basis, extra, slots):
    """Per simplex and cover, Σ_q w w_c² ψ ψᵀ (``local_grams``'s kernel; ``center (s, v, dim)``
    and ``axes (s, v, dim, dim)`` are the frames of each simplex's covers)."""

    def at(d, cen, ax, x):
        w, _ = cell_weights(kind, d, x)
        n = w.shape[0]  # the cell's own covers (then the cut-off covers, if any)
        xi = jnp.einsum("vij,vj->vi", ax[:n], x[None] - cen[:n])
        psi, _ = jax.vmap(lambda z: _basis.cover_functions(z, degree, basis))(xi)
        if extra is not None:
            f = extra(x)
            psi = jnp.concatenate([psi, jnp.broadcast_to(f, (psi.shape[0], f.shape[0]))], axis=1)
        if slots is not None:
            sw, spsi = slots(x)
            w, psi = jnp.concatenate([w, sw]), jnp.concatenate([psi, spsi])
        return w, psi

    w, psi = jax.vmap(jax.vmap(at, in_axes=(None, None, None, 0)))(data, center, axes, pts)
    return jnp.einsum("sq,sqv,sqva,sqvb->svab", wts, w * w, psi, psi)


def transforms(grams, tau: float = TAU, drop=None):
    """``(n_cover, nt, nt)`` T_c with T_cᵀ G_c T_c = (∫ w_c²) I on the kept directions (zero
    columns for the dropped ones), and the number of kept directions per cover; ``drop (n_cover,
    nt)``: functions left out beforehand (enrichment on covers away from its point)."""
    d = np.sqrt(np.maximum(np.einsum("cii->ci", grams), 1e-300))
    g = grams / d[:, :, None] / d[:, None, :]  # unit diagonal first: eigh is then relative
    if drop is not None:  # decoupled, with eigenvalue -1: below any threshold, so dropped
        off = drop[:, :, None] | drop[:, None, :]
        g = np.where(off, 0.0, g) - np.einsum("ci,ij->cij", drop, np.eye(g.shape[-1]))
    lam, vec = np.linalg.eigh(0.5 * (g + np.swapaxes(g, 1, 2)))
    keep = lam > tau * lam[:, -1:]
    scale = np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)
    # sized like the constant cover function (T_cᵀ G_c T_c = ∫ w_c² I, not I): matrix entries keep
    # the magnitudes of the plain basis, instead of growing as a cover's support shrinks
    size = np.sqrt(grams[:, 0, 0])[:, None, None]
    return size * vec * scale[:, None, :] / d[:, :, None], keep.sum(1)


# ------------------------------------------------------------------------------ thin covers


def thin_covers(half, h: float, elem_covers, elem_cut):
    """Covers whose support is thinner than ``THIN`` × the cell size ``h`` (a sliver of the
    domain, a corner cut off by a hole): only cut elements, and thin across."""
    n_cover = len(half)
    whole = np.zeros(n_cover, bool)
    whole[elem_covers[~elem_cut].ravel()] = True
    return ~whole & (2.0 * np.min(half, axis=1) < THIN * h)


def boundary_donors(elem_covers, bnd_elem, thin, centroid, area):
    """``(n_b,)``: the element whose field gives the flux on each boundary piece.

    Why. Nitsche's terms hold the normal derivative of every function on the piece's element. A
    thin cover's hat falls from 1 to 0 across the cell, so on a sliver of width δ its normal
    derivative is ~ 1/h while its energy is ~ δ: no penalty of the usual size (~ 1/h) controls
    it, the form is indefinite (measured: eigenvalues -5e3 of the unit-diagonal matrix at a 1e-9
    sliver) and a penalty ~ 1/δ ruins the conditioning. The flux is taken instead from the
    polynomial of a nearby element without thin covers, extended to the piece (the same
    polynomial there for every field the space reproduces, so the form stays consistent), as in
    ghost-penalty / aggregated cut methods; values stay those of the piece's own element.
    Pieces of elements without thin covers keep their element."""
    donors = np.asarray(bnd_elem).copy()
    bad = thin[elem_covers].any(axis=1)
    if not bad[bnd_elem].any():
        return donors
    order = np.argsort(elem_covers.ravel(), kind="stable")
    starts = np.searchsorted(elem_covers.ravel()[order], np.arange(len(thin) + 1))
    n_v = elem_covers.shape[1]
    for e in np.unique(bnd_elem[bad[bnd_elem]]):
        near = [order[starts[c] : starts[c + 1]] // n_v for c in elem_covers[e] if not thin[c]]
        cand = np.unique(np.concatenate(near)) if near else np.zeros(0, np.int64)
        cand = cand[~bad[cand]]  # sharing a physical cover: never across a crack
        if len(cand) == 0:
            continue
        # the nearest of the larger candidates (a whole cell rather than another cut corner)
        big = cand[area[cand] >= 0.25 * area[cand].max()]
        donors[bnd_elem == e] = big[np.argmin(np.linalg.norm(centroid[big] - centroid[e], axis=1))]
    return donors


def aggregate(topo, thin, sliver, centroid, area):
    """Elements holding a ``sliver`` cover take the cell of a neighbour without ``thin`` covers
    (its basis, extended over the element); the sliver covers are then on no element and are
    dropped.

    Returns ``(topology, basis_cell, kept)``: the topology with ``elem_covers`` / ``cover_node``
    renumbered, the cell whose weights and covers each element uses (``elem_cell`` but for the
    aggregated elements), and the old numbers of the covers kept.

    Why (measured, p = 6 on [0, 1 + δ]², ``benchmarks/high_order.py``). Next to a thin cover the
    flux from a neighbour (``boundary_donors``) keeps the form definite, but the thin cover's
    own functions still carry the field across the sliver, and below δ ~ 1e-6 h they came out
    wrong on it: H1 error 850x the sliver-free one at δ = 1e-7 (grid), 90x at 3e-7 (triangles).
    Extending a neighbour's polynomial over the sliver instead, as in aggregated cut finite
    elements (Badia, Verdugo & Martín 2018), keeps the sliver-free accuracy there (1.0x). It is
    conforming on grid covers (bilinear weights vanish on the whole line of the edges opposite
    them, so neighbouring extensions agree along cell lines) but not on triangle covers, where
    two sliver elements extended from different neighbours jump by ~ δ × their gradient
    difference: 1.4x at δ = 1e-6, 1e4x at 1e-4 (p = 6). Hence the threshold ``AGGREGATE``: below
    it aggregation, above it the donor fluxes (1.0x from 1e-6 up)."""
    basis_cell = topo.elem_cell.copy()
    moving = np.nonzero(sliver[topo.elem_covers].any(axis=1))[0]
    donor = boundary_donors(topo.elem_covers, moving, thin, centroid, area)
    moved = moving[donor != moving]
    if len(moved) == 0:
        return topo, basis_cell, np.arange(topo.n_cover)
    src = donor[donor != moving]
    basis_cell[moved] = topo.elem_cell[src]
    ec = topo.elem_covers.copy()
    ec[moved] = ec[src]
    kept = unique(ec)
    renum = np.full(topo.n_cover, -1)
    renum[kept] = np.arange(len(kept))
    new = dataclasses.replace(topo, elem_covers=renum[ec], cover_node=topo.cover_node[kept])
    return new, basis_cell, kept
