"""ManifoldSpace: physical covers × cover functions, as fixed-shape arrays ready for JAX.

Everything geometric is computed once here on the host (``topology.cut``); the result is an
``equinox.Module`` whose array fields are JAX arrays, so a space passes through ``jit``/``vmap``
like any pytree, and changing data on it never re-cuts the geometry or recompiles.

Unknowns: cover c carries ``components × n_terms`` cover-function coefficients, numbered
``(c * components + i) * n_terms + t`` for component i and term t. On element e the scalar local
basis is ``w_k(x) ψ_t((x - x_c) / s_c)`` for the cell's vertices k (cover ``c = elem_covers[e, k]``)
and the terms t, flattened as ``k * n_terms + t``; the element's unknowns ``elem_dofs[e]`` are
ordered (vertex, component, term).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import shapely

from . import arrays as _arrays
from . import basis as _basis
from . import enrich as _enrich
from . import stable as _stable
from .checks import check_size
from .covers import MathCover, cell_weights
from .gc_pause import gc_paused
from .geometry import Domain
from .linalg.operator import BlockPattern
from .locate import Locator, build
from .quadrature import map_boundary, map_segments, map_simplices
from .topology import Topology, cut


def _boxes(topo, qp, qw, sel=None):
    """``nmm.stable.support_boxes`` of the covers, from the simplices ``sel`` (default all)."""
    sel = np.arange(len(topo.simplex_elem)) if sel is None else sel
    return _stable.support_boxes(
        topo.simplices[sel],
        topo.simplex_elem[sel],
        topo.elem_covers,
        topo.n_cover,
        qp[sel],
        qw[sel],
        topo.simplex_elem[sel],
    )


def _thin_and_donors(topo, qp, qw, h, boxes):
    """Thin covers and the treatment of their elements (``nmm.stable``): elements holding a cover
    thinner than ``AGGREGATE`` × h take a whole neighbour's basis (``aggregate``); boundary pieces
    of elements that still hold a thin cover take their flux from a neighbour
    (``boundary_donors``).

    Args:
        boxes: the covers' support boxes, or ``None`` to find those that may be thin (covers
            without whole elements, from the simplices of cut elements only: cheap at p = 0).

    Returns:
        ``(topology, basis_cell, kept, donors)``: the topology with the aggregated covers gone,
        the cell whose basis each element uses, the old numbers of the covers kept, and the flux
        element of each boundary piece.
    """
    if not topo.elem_cut.any():
        return topo, topo.elem_cell, np.arange(topo.n_cover), topo.bnd_elem
    if boxes is None:
        boxes = _boxes(topo, qp, qw, np.nonzero(topo.elem_cut[topo.simplex_elem])[0])
    thin = _stable.thin_covers(boxes[2], h, topo.elem_covers, topo.elem_cut)
    if not thin.any():
        return topo, topo.elem_cell, np.arange(topo.n_cover), topo.bnd_elem
    area = np.bincount(topo.simplex_elem, qw.sum(1), topo.n_elem)
    centroid = np.zeros((topo.n_elem, qp.shape[-1]))
    np.add.at(centroid, topo.simplex_elem, np.einsum("sq,sqd->sd", qw, qp))
    centroid /= area[:, None]
    sliver = thin & (2.0 * np.min(boxes[2], axis=1) < _stable.AGGREGATE * h)
    topo, basis_cell, kept = _stable.aggregate(topo, thin, sliver, centroid, area)
    thin = thin[kept]
    donors = _stable.boundary_donors(topo.elem_covers, topo.bnd_elem, thin, centroid, area)
    return topo, basis_cell, kept, donors


def _chunks(enrich, nt):
    """The cut-off covers: ``(k, a, b)`` for functions a … b − 1 of ``enrich[k]`` (an enrichment
    with a radius), at most ``nt`` per cover, so that every cover keeps ``nt`` terms."""
    return tuple(
        (k, a, min(a + nt, e.n_functions))
        for k, e in enumerate(enrich)
        if e.radius is not None
        for a in range(0, e.n_functions, nt)
    )


def _cutoff_slots(enrich, chunks, nt, x):
    """The cut-off covers' weights χ ``(G,)`` and gradients ``(G, dim)``, and their functions
    ``(G, nt)`` / gradients ``(G, nt, dim)`` (zero after a chunk's last function) at ``x``."""
    used = sorted({k for k, _, _ in chunks})
    vals = {k: enrich[k].values_and_grads(x) for k in used}
    cuts = {k: enrich[k].cutoff_and_grad(x) for k in used}
    w, dw, psi, dpsi = [], [], [], []
    for k, a, b in chunks:
        f, df = vals[k]
        pad = nt - (b - a)
        psi.append(jnp.pad(f[a:b], (0, pad)))
        dpsi.append(jnp.pad(df[a:b], ((0, pad), (0, 0))))
        w.append(cuts[k][0])
        dw.append(cuts[k][1])
    return jnp.stack(w), jnp.stack(dw), jnp.stack(psi), jnp.stack(dpsi)


def _check_branch_rays(enrich, domain, tol):
    """A cut-off enrichment's functions jump along its branch ray (θ = branch) as far as its
    radius: the ray must run along a crack or outside the body there, or the space would hold a
    crack that is not in the body (measured: a silent 1e-1 error)."""
    if not any(e.radius for e in enrich):
        return
    cracks = shapely.unary_union([shapely.LineString(np.asarray(c, float)) for c in domain.cracks])
    allowed = cracks.buffer(tol) if not cracks.is_empty else cracks
    for k, e in enumerate(enrich):
        if e.radius is None:
            continue
        d = np.array([np.cos(e.angle + e.branch), np.sin(e.angle + e.branch)])
        ray = shapely.LineString([e.point, e.point + e.radius * d])
        body = ray.intersection(domain.shape)
        loose = body.difference(allowed) if not allowed.is_empty else body
        if loose.length > 10 * tol:
            reach = shapely.Point(e.point).distance(loose)
            raise ValueError(
                f"enrich[{k}]: radius={e.radius:g} reaches past the crack behind the point "
                f"{e.point.tolist()}: its functions jump along the ray θ = branch, which enters "
                f"uncracked material {reach:.6g} from the point; take radius <= {reach:.6g}"
            )


def _enrichments(enrich, dim, stable):
    """``enrich`` checked: a tuple of :class:`nmm.enrich.Enrichment` (one may be given alone)."""
    if isinstance(enrich, _enrich.Enrichment):
        enrich = (enrich,)
    try:
        enrich = tuple(enrich)
    except TypeError:
        raise TypeError(
            f"enrich must be a sequence of nmm.Enrichment, got {type(enrich).__name__}"
        ) from None
    for k, e in enumerate(enrich):
        if not isinstance(e, _enrich.Enrichment):
            raise TypeError(f"enrich[{k}] must be an nmm.Enrichment, got {type(e).__name__}")
    if enrich and dim != 2:
        raise ValueError(f"enrich: enrichment needs a 2D space, got a {dim}D cover")
    if enrich and stable is False:
        raise ValueError("enrich needs the stable basis (nmm.stable), got stable=False")
    return enrich


_FAN_ANGLE = np.pi / 12  # the widest angle of a fan triangle at the enrichment point
_FAN_RATIO = 1.5  # the largest ratio of the distances of a fan triangle's far vertices


def _even_distances(p, a, b):
    """The segment a -> b cut (by halving) into pieces whose far ends lie at distances from ``p``
    within a factor ``_FAN_RATIO``: 1 / |x - p| along a piece from 3e-3 to 0.25 away is nearly
    singular for the rule's t-direction."""
    da, db = np.linalg.norm(a - p), np.linalg.norm(b - p)
    if max(da, db) <= _FAN_RATIO * min(da, db):
        return [(a, b)]
    m = 0.5 * (a + b)
    return _even_distances(p, a, m) + _even_distances(p, m, b)


def _fan(poly, point, ray, tol):
    """Triangles ``(k, 3, 2)`` filling ``poly`` from ``point`` (vertex 0 of each), none crossing
    the ray from the point in direction ``ray`` (where the enrichment jumps); raises if the
    polygon is not star-shaped from the point."""
    if len(poly.interiors):
        raise ValueError("a hole inside a cover cell that holds an enrichment point: refine the cover")
    ring = np.asarray(poly.exterior.coords)  # counter-clockwise (topology orients elements)
    p = np.asarray(point)
    out = []
    for a, b in zip(ring[:-1], ring[1:], strict=True):
        cross = (a[0] - p[0]) * (b[1] - p[1]) - (a[1] - p[1]) * (b[0] - p[0])
        if abs(cross) <= tol * np.linalg.norm(b - a):  # an edge through the point
            continue
        if cross < 0:
            raise ValueError(
                f"the element around the enrichment point {p.tolist()} is not star-shaped from it "
                "(a cut near the point): refine the cover or move the point"
            )
        # the ray crosses a -> b where a + s (b - a) = p + l ray, 0 < s < 1, l > 0
        m = np.array([[b[0] - a[0], -ray[0]], [b[1] - a[1], -ray[1]]])
        pieces = [(a, b)]
        if abs(np.linalg.det(m)) > 1e-14:
            s_, l_ = np.linalg.solve(m, p - a)
            if 1e-12 < s_ < 1 - 1e-12 and l_ > 0:
                c = a + s_ * (b - a)
                pieces = [(a, c), (c, b)]
        for a_, b_ in pieces:
            # equal angles at the point, none wider than _FAN_ANGLE: the rule's t-direction
            # integrates 1 / |x - p| along the far edge, smooth only over a narrow angle
            ta, tb = np.arctan2(*(a_ - p)[::-1]), np.arctan2(*(b_ - p)[::-1])
            span = np.mod(tb - ta, 2 * np.pi)
            k = max(1, int(np.ceil(span / _FAN_ANGLE)))
            cuts = [a_]
            for i in range(1, k):
                d = np.array([np.cos(ta + span * i / k), np.sin(ta + span * i / k)])
                mm = np.array([[b_[0] - a_[0], -d[0]], [b_[1] - a_[1], -d[1]]])
                cuts.append(a_ + np.linalg.solve(mm, p - a_)[0] * (b_ - a_))
            cuts.append(b_)
            for q0, q1 in zip(cuts[:-1], cuts[1:], strict=True):
                out += [np.stack([p, c0, c1]) for c0, c1 in _even_distances(p, q0, q1)]
    return np.asarray(out)


_GRADE = 2.0  # simplices near an enrichment point are split until this many diameters away
_MAX_LEVELS = 40


def _segment_distance(p, a, b):
    """Distance from ``p (2,)`` to the segments ``a -> b`` ``(k, 2)``."""
    d = b - a
    t = np.clip(np.einsum("kd,kd->k", p - a, d) / np.maximum(np.einsum("kd,kd->k", d, d), 1e-300), 0, 1)
    return np.linalg.norm(a + t[:, None] * d - p, axis=1)


def _distance_and_diameter(tris, p):
    """Distance from ``p`` to each triangle's edges and each triangle's longest edge."""
    edges = [(tris[:, i], tris[:, (i + 1) % 3]) for i in range(3)]
    dist = np.min([_segment_distance(p, a, b) for a, b in edges], axis=0)
    return dist, np.max([np.linalg.norm(b - a, axis=1) for a, b in edges], axis=0)


def _graded(tris, p):
    """``tris (k, 3, 2)`` (not holding ``p``) bisected at their longest edge, again and again,
    where they are closer to ``p`` than ``_GRADE`` × their diameter: the singularity at ``p`` is
    then far, for each simplex's Gauss rule, from every simplex (the rule's error falls
    geometrically with that distance; without this a tip 0.02 h from a neighbouring element cost
    five digits). Bisection, not 4-splitting: a sliver along a crack 1e-7 h from its tip would
    split into ~2^k pieces across at level k (1.9e7 triangles measured); bisecting its long edge
    keeps O(1) new pieces near the point per level."""
    done, todo = [], tris
    for _ in range(3 * _MAX_LEVELS):
        if len(todo) == 0:
            break
        dist, diam = _distance_and_diameter(todo, p)
        near = dist < _GRADE * diam
        done.append(todo[~near])
        t = todo[near]
        # rotate each triangle so that its longest edge is 0 -> 1, then halve that edge
        lengths = np.stack([np.linalg.norm(t[:, (i + 1) % 3] - t[:, i], axis=1) for i in range(3)], 1)
        k = np.argmax(lengths, axis=1)
        idx = (k[:, None] + np.arange(3)[None, :]) % 3
        t = np.take_along_axis(t, idx[:, :, None], axis=1)
        m = 0.5 * (t[:, 0] + t[:, 1])
        todo = np.concatenate([np.stack([t[:, 0], m, t[:, 2]], 1), np.stack([m, t[:, 1], t[:, 2]], 1)])
    return np.concatenate(done + [todo])


def _enriched_topology(topo, enrich, chunks, tol):
    """The topology with the elements that hold an enrichment point triangulated by a fan from
    it (``simplex_singular``) and its boundary pieces graded (with the piece of ``topo`` each
    comes from), which covers each per-cover enrichment's functions go on
    (``(n_cover, M)``, M: their functions), and the cut-off covers' slots ``(n_elem, G)``: for
    each of ``chunks`` (``_chunks``) its own cover, numbered after the physical ones, on the
    elements within its enrichment's radius, elsewhere the element's first cover (its weight χ
    is zero there: no new matrix blocks)."""
    pts = shapely.points(np.stack([e.point for e in enrich]))
    geoms = np.asarray(topo.elem_geom, dtype=object)
    dist = np.stack([shapely.distance(geoms, pt) for pt in pts])  # (n_enrich, n_elem)
    enriched = [np.zeros((topo.n_cover, 0), bool)]
    for e, d in zip(enrich, dist, strict=True):
        if e.radius is None:  # cut-off enrichments live on their own covers (``_chunks``)
            covers = np.zeros(topo.n_cover, bool)
            covers[topo.elem_covers[d <= tol].ravel()] = True
            enriched.append(np.repeat(covers[:, None], e.n_functions, axis=1))
    holds = dist <= tol
    slots = [
        np.where(dist[k] <= enrich[k].radius, topo.n_cover + j, topo.elem_covers[:, 0])
        for j, (k, _, _) in enumerate(chunks)
    ]
    if (holds.sum(0) > 1).any():
        raise ValueError("enrich: two enrichment points in one element: refine the cover")
    tip_elems = np.nonzero(holds.any(0))[0]
    keep = ~np.isin(topo.simplex_elem, tip_elems)
    simp, elem = [topo.simplices[keep]], [topo.simplex_elem[keep]]
    for e in enrich:  # graded simplices around each point
        reg, reg_elem = simp[0], elem[0]
        dist, diam = _distance_and_diameter(reg, e.point)
        close = np.nonzero(dist < _GRADE * diam)[0]
        fine = [_graded(reg[k : k + 1], e.point) for k in close]
        far = np.ones(len(reg), bool)
        far[close] = False
        simp[0] = np.concatenate([reg[far], *fine])
        elem[0] = np.concatenate(
            [reg_elem[far], *(np.full(len(f), reg_elem[k]) for f, k in zip(fine, close, strict=True))]
        )
    powers = []
    for el in tip_elems:
        e = enrich[int(np.argmax(holds[:, el]))]
        ray = np.array([np.cos(e.angle + e.branch), np.sin(e.angle + e.branch)])
        tris = _fan(topo.elem_geom[el], e.point, ray, tol)
        simp.append(tris)
        elem.append(np.full(len(tris), el))
        powers.append(np.full(len(tris), e.power, np.int64))
    singular = np.concatenate([np.zeros(len(simp[0]), np.int64)] + powers)
    bnd, origin = _enriched_boundary(topo, enrich, tol)
    new = dataclasses.replace(
        topo,
        simplices=np.concatenate(simp),
        simplex_elem=np.concatenate(elem),
        simplex_singular=singular,
        **bnd,
    )
    slots = np.stack(slots, axis=1) if slots else np.zeros((topo.n_elem, 0), np.int64)
    return new, np.concatenate(enriched, axis=1), slots, origin


def _enriched_boundary(topo, enrich, tol):
    """Boundary pieces near an enrichment point: a piece that ends at it starts there (its rule
    is ``singular_interval``), the others are halved until they lie ``_GRADE`` lengths away."""
    seg, e_, n_, c_ = topo.bnd, topo.bnd_elem, topo.bnd_normal, topo.bnd_crack
    flag = np.zeros(len(seg), np.int64)
    origin = np.arange(len(seg))  # the piece of ``topo`` each piece comes from
    for e in enrich:
        length = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1)
        near = _segment_distance(e.point, seg[:, 0], seg[:, 1]) < np.maximum(_GRADE * length, 2 * tol)
        out = tuple([v[~near]] for v in (seg, e_, n_, c_, flag, origin))
        for k in np.nonzero(near)[0]:
            a, b = seg[k]
            da, db = np.linalg.norm(a - e.point), np.linalg.norm(b - e.point)
            if min(da, db) <= tol:  # starts (or ends) at the point: the singular rule from it
                pieces, q = [(a, b) if da <= db else (b, a)], [e.power]
            else:
                pieces = _halved(a, b, e.point)
                q = [flag[k]] * len(pieces)
            for (pa, pb), qq in zip(pieces, q, strict=True):
                vals = (np.stack([pa, pb]), e_[k], n_[k], c_[k], qq, origin[k])
                for lst, v in zip(out, vals, strict=True):
                    lst.append(np.asarray(v)[None])
        seg, e_, n_, c_, flag, origin = (np.concatenate(v) for v in out)
    fields = {"bnd": seg, "bnd_elem": e_, "bnd_normal": n_, "bnd_crack": c_, "bnd_singular": flag}
    return fields, origin


def _halved(a, b, p):
    """The segment a -> b halved where it is closer to ``p`` than ``_GRADE`` × its length."""
    if len(a) == 1 or _segment_distance(p, a[None], b[None])[0] >= _GRADE * np.linalg.norm(b - a):
        return [(a, b)]
    m = 0.5 * (a + b)
    return _halved(a, m, p) + _halved(m, b, p)


@dataclass(frozen=True, eq=False)
class HostData:
    """Host-side (numpy/shapely) facts about a space; hashed by identity so it can be static."""

    cover: MathCover
    domain: Domain
    topology: Topology
    pattern: BlockPattern  # block CSR structure of the cover-pair matrix
    # what is derived from the space once and kept (``nmm.buckets.solve_view``)
    derived: dict = dataclasses.field(default_factory=dict, repr=False)


def _check_size(cover: MathCover, degree: int, nt: int, nc: int, quad_degree: int, limit_gib) -> None:
    """Estimate the memory of assembling a solve on this cover before building anything: the
    local matrices, the basis (values and gradients) and the tangent's pushforward at every
    quadrature point, and the block matrix with its factor (upper bounds: every cell counted)."""
    n_cells, n_v, dim = cover.cells.shape[0], cover.n_vertices, cover.dim
    q1 = max(1, (quad_degree + 2) // 2)
    q = q1 if dim == 1 else (q1 * q1 * (2 if cover.kind == "quad" else 1))
    loc = n_v * nt * nc  # local functions per cell
    unknowns = cover.nodes.shape[0] * nt * nc
    # the sparse factor: nested-dissection fill ~ 4 n log2 n blocks in 2D (George), never more
    # than a dense matrix; and ~12 KB per cover node for everything else (topology, quadrature,
    # index arrays: 13 GiB measured at 1e6 unknowns, p = 0, on the development machine)
    nodes = cover.nodes.shape[0]
    fill = min(4.0 * unknowns * np.log2(max(nodes, 2)) * nt * nc, float(unknowns) ** 2)
    words = n_cells * loc * loc + 3 * n_cells * q * loc * (1 + dim) * nc + fill + 1500 * nodes
    detail = f"{unknowns:.3g} unknowns, {loc} local functions on each of {n_cells} cells"
    check_size(
        f"ManifoldSpace(degree={degree})", 8 * words / 2**30, detail, limit_gib, "memory_limit_gib"
    )


class ManifoldSpace(eqx.Module):
    """The NMM approximation space on a domain.

    Args:
        cover: a :class:`MathCover`.
        domain: the :class:`Domain` that cuts it.
        degree: cover-function order p >= 0.
        basis: ``"polynomial"`` (Legendre, total degree <= p) or ``"fourier"``.
        quad_degree: polynomial degree integrated exactly on every element; by default 2 (p + w),
            the degree of a mass-matrix integrand (w = 1 for hat weights on triangles and
            intervals, 2 for bilinear weights); for Fourier cover functions p is replaced by
            4p + 4, so that every cell holds more points than local functions.
        components: unknowns per point: 1 for a scalar field (values ``(m,)``), n for a vector
            field (values ``(m, n)``; elasticity: ``components=2``).
        memory_limit_gib: the memory of a solve is estimated before anything is built (unknowns,
            local matrices, basis values at the quadrature points); above 2 GiB it warns
            (:class:`nmm.LargeProblemWarning`), above this limit (default: 3/4 of the machine's
            memory) it refuses with a ``MemoryError`` that says how to proceed.
        stable: stable cover functions (:mod:`nmm.stable`: each cover's polynomials in its
            support's own frame, orthonormalised on it; the same space); default: p >= 1 with
            polynomial cover functions (p = 0 has nothing to stabilise and keeps the plain path).
        enrich: :class:`nmm.Enrichment` s (singular functions at points: crack tips, corners).
        topology: the cut of ``cover`` by ``domain`` if already at hand (``nmm.topology.cut`` or
            ``recut``: a growing crack re-cuts only the cells along its new segment).

    Array fields (JAX): per element ``elem_cell_data`` (the weights of the element's cell, or of a
    neighbour's cell on a sliver's elements: ``nmm.stable.aggregate``), ``elem_dofs (n_elem, n_loc)``,
    ``elem_center (n_elem, n_v, dim)``, ``elem_scale (n_elem, n_v)``, ``elem_h (n_elem,)``,
    ``elem_blocks (n_elem, n_v, n_v)`` (index of each cover pair in the block matrix); volume
    quadrature ``q_points (n_s, n_q, dim)``, ``q_weights (n_s, n_q)``, ``q_elem (n_s,)``; boundary
    quadrature ``b_points (n_b, n_qb, dim)``, ``b_weights``, ``b_elem``, ``b_normal (n_b, dim)``,
    ``b_crack (n_b,)``, ``b_flux (n_b,)`` (the element whose gradients enter the piece's
    Nitsche terms: its own, or a neighbour's where the element holds a thin cover, see
    ``nmm.stable.boundary_donors``) and ``b_blocks (n_b, 2, n_v, n_v)`` (blocks of the element ×
    flux-element cover pairs, both ways); block rows/cols ``block_rows, block_cols (n_blocks,)``;
    stable spaces: ``elem_axes (n_elem, n_v, dim, dim)`` (each vertex cover's frame; its origin in
    ``elem_center``), ``elem_covers (n_elem, n_v)``, ``cover_T (n_cover, nt, nt)``.
    """

    dim: int = eqx.field(static=True)
    degree: int = eqx.field(static=True)
    basis: str = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    n_terms: int = eqx.field(static=True)
    components: int = eqx.field(static=True)
    n_covers: int = eqx.field(static=True)
    n_unknowns: int = eqx.field(static=True)
    quad_degree: int = eqx.field(static=True)
    stable: bool = eqx.field(static=True)
    enrich: tuple = eqx.field(static=True)
    chunks: tuple = eqx.field(static=True)
    extended: bool = eqx.field(static=True)
    host: HostData = eqx.field(static=True)

    elem_cell_data: jax.Array
    elem_dofs: jax.Array
    elem_center: jax.Array
    elem_scale: jax.Array
    elem_h: jax.Array
    elem_blocks: jax.Array
    elem_axes: jax.Array
    elem_covers: jax.Array
    cover_T: jax.Array
    q_points: jax.Array
    q_weights: jax.Array
    q_elem: jax.Array
    b_points: jax.Array
    b_weights: jax.Array
    b_elem: jax.Array
    b_normal: jax.Array
    b_crack: jax.Array
    b_flux: jax.Array
    b_blocks: jax.Array
    block_rows: jax.Array
    block_cols: jax.Array
    locator: Locator

    @gc_paused
    def __init__(
        self,
        cover: MathCover,
        domain: Domain,
        degree: int = 1,
        basis: str = "polynomial",
        quad_degree: int | None = None,
        components: int = 1,
        *,
        memory_limit_gib: float | None = None,
        stable: bool | None = None,
        enrich=(),
        topology: Topology | None = None,
    ):
        if not isinstance(cover, MathCover):
            raise TypeError(f"cover must be an nmm.MathCover, got {type(cover).__name__}")
        if not isinstance(domain, Domain):
            raise TypeError(f"domain must be an nmm.Domain, got {type(domain).__name__}")
        if isinstance(degree, bool) or not isinstance(degree, int | np.integer) or degree < 0:
            raise ValueError(f"degree must be an integer >= 0, got {degree!r}")
        if (
            isinstance(components, bool)
            or not isinstance(components, int | np.integer)
            or components < 1
        ):
            raise ValueError(f"components must be an integer >= 1, got {components!r}")
        if basis not in _basis.BASES:
            raise ValueError(f"basis must be one of {_basis.BASES}, got {basis!r}")
        enrich = _enrichments(enrich, cover.dim, stable)
        wdeg = 2 if cover.kind == "quad" else 1
        if quad_degree is None:
            # Fourier terms are not polynomials: the rule must hold more points per cell than
            # there are local functions, or the projection only matches at the points
            order = int(degree) if basis == "polynomial" else 4 * int(degree) + 4
            quad_degree = 2 * (order + wdeg)
            if enrich:  # r^½ × polynomials near the point: twice the degree, and the singular
                # rule of the elements that hold it is exact for half its degree only
                quad_degree = 2 * quad_degree + 2
        if int(quad_degree) != quad_degree or quad_degree < 0:
            raise ValueError(f"quad_degree must be an integer >= 0, got {quad_degree!r}")
        nt_poly = _basis.n_terms(cover.dim, int(degree), basis)
        # per-cover enrichment functions join every cover's terms; cut-off ones get covers of
        # their own (``_chunks``), so the physical covers carry no columns of them
        nt = nt_poly + sum(e.n_functions for e in enrich if e.radius is None)
        chunks = _chunks(enrich, nt)
        _check_size(cover, int(degree), nt, int(components), int(quad_degree), memory_limit_gib)
        if topology is None:
            topo = cut(cover, domain)
        elif (
            not isinstance(topology, Topology)
            or topology.simplex_singular is not None
            or len(topology.elem_cell) == 0
            or int(topology.elem_cell.max()) >= len(cover.cells)
        ):
            raise ValueError(
                "topology must be nmm.topology.cut(cover, domain) (or recut) of this cover, got "
                f"{type(topology).__name__}"
            )
        else:
            topo = topology
        qp, qw = map_simplices(topo.simplices, int(quad_degree))
        if cover.dim == 1:  # elements are intervals; boundary "integrals" are point values
            bp, bw = topo.bnd[:, :1], np.ones((len(topo.bnd), 1))
        else:
            bp, bw = map_segments(topo.bnd, int(quad_degree))

        # stable cover functions (nmm.stable): p >= 1 polynomial covers only; p = 0 has nothing
        # to stabilise and keeps the plain (faster) path
        self.stable = (degree >= 1 and basis == "polynomial") if stable is None else bool(stable)
        self.stable = self.stable or bool(enrich)  # enrichment lives in the transformed basis
        self.enrich = enrich
        self.chunks = chunks
        boxes = _boxes(topo, qp, qw) if self.stable else None
        topo, basis_cell, kept, donors = _thin_and_donors(topo, qp, qw, cover.h, boxes)
        boxes = None if boxes is None else tuple(b[kept] for b in boxes)
        self.extended = bool(np.any(donors != topo.bnd_elem))

        enriched = np.zeros((topo.n_cover, nt - nt_poly), bool)
        slots = np.zeros((topo.n_elem, 0), np.int64)
        if enrich:
            _check_branch_rays(enrich, domain, 1e-9 * cover.diameter)
            topo, enriched, slots, origin = _enriched_topology(
                topo, enrich, chunks, 1e-9 * cover.diameter
            )
            donors = donors[origin]  # pieces split near a point keep their flux element
            qp, qw = map_simplices(topo.simplices, int(quad_degree), topo.simplex_singular)
            bp, bw = map_boundary(topo.bnd, int(quad_degree), topo.bnd_singular)
        q_elem = topo.simplex_elem

        self.dim, self.degree, self.basis, self.kind = cover.dim, int(degree), basis, cover.kind
        # physical covers, then one cover per cut-off enrichment (its shared coefficients)
        ec = np.concatenate([topo.elem_covers, slots], axis=1).astype(np.int64)
        n_cov = topo.n_cover + slots.shape[1]
        self.n_terms, self.n_covers, self.quad_degree = nt, n_cov, int(quad_degree)
        self.components = nc = int(components)

        cells = cover.cells[basis_cell]
        dofs = (ec[:, :, None, None] * nc + np.arange(nc)[:, None]) * nt + np.arange(nt)
        elem_h = _arrays.longest_edges(_arrays.corners(cover.nodes, cells))

        # block structure: unique (cover_i, cover_j) pairs over all elements (and, for extended
        # fluxes, over boundary pieces' element × flux element), in CSR order
        def pairs(a, b):
            return np.repeat(a, b.shape[1], axis=1) * n_cov + np.tile(b, (1, a.shape[1]))

        n_v = ec.shape[1]
        elem_keys = pairs(ec, ec)
        if self.extended:
            ef = pairs(ec[topo.bnd_elem], ec[donors])
            fe = pairs(ec[donors], ec[topo.bnd_elem])
        else:
            ef = fe = np.zeros((0, n_v * n_v), np.int64)
        # the distinct keys and each key's place among them, by one stable argsort
        keys, place = _arrays.unique_inverse(np.concatenate([elem_keys.ravel(), ef.ravel(), fe.ravel()]))
        rows, cols = keys // n_cov, keys % n_cov
        indptr = np.searchsorted(rows, np.arange(n_cov + 1))
        ends = np.cumsum([elem_keys.size, ef.size, fe.size])
        elem_blocks, ef_blocks, fe_blocks = (p.reshape(-1, n_v, n_v) for p in np.split(place, ends[:-1]))

        self.host = HostData(cover, domain, topo, BlockPattern(indptr, cols))
        arrays = {
            "elem_cell_data": cover.cell_data[basis_cell],
            "elem_dofs": dofs.reshape(len(cells), n_v * nc * nt),
            "elem_center": cover.nodes[cells],
            "elem_scale": cover.node_scale[cells],
            "elem_h": elem_h,
            "elem_blocks": elem_blocks,
            "q_points": qp,
            "q_weights": qw,
            "q_elem": q_elem,
            "b_points": bp,
            "b_weights": bw,
            "b_elem": topo.bnd_elem,
            "b_flux": donors,
            # blocks of (element cover, flux-element cover) pairs of each boundary piece
            "b_blocks": np.stack([ef_blocks, fe_blocks], axis=1),
            "b_normal": topo.bnd_normal,
            "b_crack": topo.bnd_crack,
            "block_rows": rows,
            "block_cols": cols,
            "elem_covers": ec,
        }
        # one transfer for all (a device_put each cost ~0.03 ms; jnp.asarray compiles per shape)
        for name, value in zip(arrays, jax.device_put(list(arrays.values())), strict=True):
            setattr(self, name, value)
        self.locator = build(cover, topo)

        if self.stable:
            center, axes = _stable.frames(*boxes)
            drop = np.concatenate([np.zeros((topo.n_cover, nt_poly), bool), ~enriched], axis=1)
            # the cut-off covers: their chunk of functions, nothing after it
            pad = np.arange(nt)[None, :] >= np.array([b - a for _, a, b in chunks], int)[:, None]
            drop = np.concatenate([drop, pad.reshape(len(chunks), nt)])
            per_cover = [e for e in enrich if e.radius is None]
            grams = _stable.local_grams(
                cover.kind,
                self.degree,
                basis,
                cover.cell_data[basis_cell],
                ec,
                center,
                axes,
                qp,
                qw,
                q_elem,
                extra=(lambda x: _enrich.stack_values(per_cover, x)[0]) if per_cover else None,
                slots=(lambda x: _cutoff_slots(enrich, chunks, nt, x)[::2]) if chunks else None,
            )
            T, kept_dirs = _stable.transforms(grams, drop=drop if enrich else None)
            self.n_unknowns = int(kept_dirs.sum()) * nc
            self.elem_center = jax.device_put(center[topo.elem_covers])
            self.elem_axes = jax.device_put(axes[topo.elem_covers])
            self.cover_T = jax.device_put(T)
        else:
            self.n_unknowns = n_cov * nc * nt
            # device_put: jnp.zeros compiles a small program per shape and process (0.06 s)
            self.elem_axes = jax.device_put(np.zeros((0, n_v, cover.dim, cover.dim)))
            self.cover_T = jax.device_put(np.zeros((0, nt, nt)))

    # ------------------------------------------------------------------ sizes

    @property
    def n_dofs(self) -> int:
        """Number of unknowns: physical covers × components × cover-function terms."""
        return self.n_covers * self.components * self.n_terms

    # n_unknowns (a field): the unknowns that are not held at zero, n_dofs less the directions the
    # stable basis drops (nearly dependent ones, enrichment columns of covers that do not carry
    # them, the padding of cut-off covers): what a solve really determines

    @property
    def block_size(self) -> int:
        """Unknowns per physical cover (the size of a cover-pair block)."""
        return self.components * self.n_terms

    @property
    def n_elements(self) -> int:
        return self.host.topology.n_elem

    @property
    def n_local(self) -> int:
        """Scalar basis functions per element: cell vertices × terms."""
        return self.elem_dofs.shape[1] // self.components

    @property
    def domain(self) -> Domain:
        return self.host.domain

    @property
    def cover(self) -> MathCover:
        return self.host.cover

    def __repr__(self) -> str:
        return (
            f"ManifoldSpace(dim={self.dim}, kind={self.kind!r}, degree={self.degree}, "
            f"basis={self.basis!r}, components={self.components}, covers={self.n_covers}, "
            f"elements={self.n_elements}, "
            f"dofs={self.n_dofs})"
        )

    def boundary_beta(self, beta0: float):
        """Penalty β = β0 (p + w)² / h of each boundary piece (w: the weights' degree, h: the
        size of the piece's cell), ``(n_b,)``."""
        wdeg = 2 if self.kind == "quad" else 1
        return beta0 * (self.degree + wdeg) ** 2 / self.elem_h[self.b_elem]

    # ------------------------------------------------------------------ basis (one point)

    def local_basis(self, elem, x):
        """Local basis values ``(n_loc,)`` and gradients ``(n_loc, dim)`` at point ``x`` of element
        ``elem`` (both traced scalars / arrays; vmap for many points)."""
        w, dw = cell_weights(self.kind, self.elem_cell_data[elem], x)
        if self.stable:
            return self._stable_basis(elem, x, w, dw)
        if self.degree == 0:  # constant cover functions: the basis is the partition of unity
            # (the same values as below, w · 1 and ∇w · 1 + w · 0, without tracing the cover
            # functions: 120 equations of a p = 0 solve's program, traced on every first call)
            return w, dw
        center, scale = self.elem_center[elem], self.elem_scale[elem]
        xi = (x[None, :] - center) / scale[:, None]
        psi, dpsi = jax.vmap(lambda z: _basis.cover_functions(z, self.degree, self.basis))(xi)
        dpsi = dpsi / scale[:, None, None]
        phi = w[:, None] * psi
        dphi = dw[:, None, :] * psi[..., None] + w[:, None, None] * dpsi
        return phi.reshape(-1), dphi.reshape(-1, self.dim)

    def _stable_basis(self, elem, x, w, dw):
        """Cover functions in each cover's frame, orthonormalised (``nmm.stable``)."""
        center, axes = self.elem_center[elem], self.elem_axes[elem]
        xi = jnp.einsum("vij,vj->vi", axes, x[None, :] - center)
        psi, dpsi = jax.vmap(lambda z: _basis.cover_functions(z, self.degree, self.basis))(xi)
        dpsi = jnp.einsum("vtj,vjd->vtd", dpsi, axes)
        per_cover = [e for e in self.enrich if e.radius is None]
        if per_cover:  # the same functions for every cover; T keeps them on enriched covers
            f, df = _enrich.stack_values(per_cover, x)
            n_v = psi.shape[0]
            psi = jnp.concatenate([psi, jnp.broadcast_to(f, (n_v, f.shape[0]))], axis=1)
            dpsi = jnp.concatenate([dpsi, jnp.broadcast_to(df, (n_v, *df.shape))], axis=1)
        if self.chunks:  # the cut-off covers: weight χ, their chunk of the functions
            cw, cdw, cpsi, cdpsi = _cutoff_slots(self.enrich, self.chunks, self.n_terms, x)
            w, dw = jnp.concatenate([w, cw]), jnp.concatenate([dw, cdw])
            psi, dpsi = jnp.concatenate([psi, cpsi]), jnp.concatenate([dpsi, cdpsi])
        T = self.cover_T[self.elem_covers[elem]]
        psi = jnp.einsum("vt,vts->vs", psi, T)
        dpsi = jnp.einsum("vtd,vts->vsd", dpsi, T)
        phi = w[:, None] * psi
        dphi = dw[:, None, :] * psi[..., None] + w[:, None, None] * dpsi
        return phi.reshape(-1), dphi.reshape(-1, self.dim)
