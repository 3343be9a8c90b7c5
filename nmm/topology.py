"""Cutting a mathematical cover by the domain and its cracks (host side, numpy + shapely).

Produces the manifold elements (connected pieces of cover cells ∩ domain, split by cracks), the
physical covers (connected pieces of each patch ∩ domain minus cracks), an exact triangulation of
every element for quadrature, and the boundary and crack-face pieces of every element.

Only cells that the boundary or a crack touches (or comes within the geometric tolerance of) go
through shapely; the (many) cells strictly inside the domain are handled with vectorised numpy,
which keeps 1e5-cell covers to a few seconds. Faces too small to integrate on (below 1e-12 h²: the
corner of a 1e-9 sliver) make no element, but their pieces of the boundary go to the nearest
element: the boundary condition holds on the whole boundary.

Physical covers are found as connected components of a graph whose vertices are (node, element)
incidences: two elements of the same patch are joined when they share a piece of a cover edge of
positive length that is not on a crack. A crack that ends inside a patch therefore leaves the patch
in one piece, as in Shi (1991).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely.geometry import LineString, MultiLineString, Polygon
from shapely.ops import polygonize, unary_union

from . import arrays
from .covers import MathCover
from .geometry import Domain

_REL_TOL = 1e-9  # geometric tolerance, relative to the cover size h
_NULL = 1e-14  # boundary pieces shorter than this (relative) are rounding, not geometry


class ElementGeometry:
    """The elements' polygons, built on demand: a whole cell's polygon comes from the cover's
    nodes when asked for (a 1e6-cell cover would spend 1.4 s making polygons that the solve never
    reads), a cut element's is stored. A sequence: ``g[i]``, ``len(g)``, iteration, and
    ``np.asarray(g, dtype=object)`` (all polygons, made in one vectorised call)."""

    def __init__(self, nodes: np.ndarray, cells: np.ndarray, cell_of: np.ndarray, stored: np.ndarray):
        self.nodes, self.cells = nodes, cells
        self.cell_of = cell_of  # (n_elem,) the whole cell an element is, -1 where it is stored
        self.stored = stored  # (n_elem,) object: the polygon of a cut element, None otherwise

    @classmethod
    def of(cls, nodes, cells, whole: np.ndarray, cut: list) -> ElementGeometry:
        """Whole cells ``whole`` first, then the polygons ``cut``."""
        cell_of = np.concatenate([np.asarray(whole, np.int64), -np.ones(len(cut), np.int64)])
        stored = np.empty(len(cell_of), object)
        stored[len(whole) :] = cut
        return cls(nodes, cells, cell_of, stored)

    def __len__(self) -> int:
        return len(self.cell_of)

    def __getitem__(self, i):
        c = self.cell_of[i]
        return self.stored[i] if c < 0 else shapely.polygons(self.nodes[self.cells[c]])

    def __array__(self, dtype=None, copy=None):
        out = self.stored.copy()
        whole = np.nonzero(self.cell_of >= 0)[0]
        if len(whole):
            out[whole] = shapely.polygons(self.nodes[self.cells[self.cell_of[whole]]])
        return out

    def __iter__(self):
        return iter(self.__array__())

    def take(self, ids, more: list = ()) -> ElementGeometry:
        """The elements ``ids``, then the polygons ``more``."""
        ids = np.asarray(ids, np.int64)
        stored = np.empty(len(ids) + len(more), object)
        stored[: len(ids)] = self.stored[ids]
        stored[len(ids) :] = more
        cell_of = np.concatenate([self.cell_of[ids], -np.ones(len(more), np.int64)])
        return ElementGeometry(self.nodes, self.cells, cell_of, stored)


def _near_lines(lo: np.ndarray, hi: np.ndarray, seg: np.ndarray, dist: float) -> np.ndarray:
    """``(n_cells,)`` True for every cell whose box ``[lo, hi]`` may come within ``dist`` of a
    segment of ``seg (k, 2, 2)`` (a superset: the exact test is shapely's, on these cells only).

    Cells are binned by their lower corner on a grid of spacing H (the largest box side); points
    spaced H/8 along every segment mark the bins within two of theirs, which hold every cell
    whose box comes within H/8 + dist of a point, i.e. within dist of the segment."""
    big = float(np.max(hi - lo)) + 8 * dist
    origin = arrays.column_min(lo)
    b = np.floor((lo - origin) / big).astype(np.int64)
    shape = arrays.column_max(b) + 1
    samples = [np.linspace(a, z, int(np.ceil(np.linalg.norm(z - a) / (big / 8))) + 1) for a, z in seg]
    q = np.floor((np.concatenate(samples) - origin) / big).astype(np.int64)
    mark = np.zeros(shape, bool)
    for dx in range(-2, 3):
        for dy in range(-2, 3):
            qq = q + (dx, dy)
            ok = (qq[:, 0] >= 0) & (qq[:, 0] < shape[0]) & (qq[:, 1] >= 0) & (qq[:, 1] < shape[1])
            mark[qq[ok, 0], qq[ok, 1]] = True
    return mark[b[:, 0], b[:, 1]]


def _polygon_areas(v: np.ndarray) -> np.ndarray:
    """Areas of convex cells ``v (n, n_v, 2)`` (shoelace)."""
    # vertex by vertex, summed in the order of ``np.sum(..., axis=1)`` (a sum over the short
    # vertex axis of (n, n_v) arrays took 17 ms at 2e5 cells)
    n_v = v.shape[1]
    terms = [
        v[:, k, 0] * v[:, (k + 1) % n_v, 1] - v[:, (k + 1) % n_v, 0] * v[:, k, 1] for k in range(n_v)
    ]
    return 0.5 * np.abs(functools.reduce(np.add, terms))


@dataclass(frozen=True, eq=False)
class Topology:
    """Manifold elements and physical covers of a cover cut by a domain.

    Attributes:
        elem_cell: ``(n_elem,)`` mathematical cell of each element.
        elem_covers: ``(n_elem, n_v)`` physical cover attached to each vertex of the element's cell.
        elem_cut: ``(n_elem,)`` True where the element is not the whole cell.
        elem_geom: per element a shapely Polygon (2D: an :class:`ElementGeometry`, which makes
            whole cells' polygons on demand) or an ``(x0, x1)`` pair (1D).
        cover_node: ``(n_cover,)`` mathematical node (patch) of each physical cover.
        simplices: ``(n_s, dim + 1, dim)`` exact triangulation (2D) / intervals (1D) of the elements.
        simplex_elem: ``(n_s,)`` element of each simplex.
        bnd: ``(n_b, 2, dim)`` boundary pieces: segments (2D) or points repeated twice (1D).
        bnd_elem: ``(n_b,)`` element that owns each boundary piece.
        bnd_normal: ``(n_b, dim)`` outward unit normal of the element on that piece.
        bnd_crack: ``(n_b,)`` True for crack faces, False for the domain boundary.
        simplex_singular: ``(n_s,)`` > 0 for the fan triangles around an enrichment point (its
            vertex 0; ``nmm.enrich``), the power of ``quadrature.singular_triangle``; or None.
        bnd_singular: ``(n_b,)`` the same for boundary pieces that start at the point; or None.
        mixed_joins, edges, boxes: what ``recut`` takes over from a previous cut (2D).
    """

    elem_cell: np.ndarray
    elem_covers: np.ndarray
    elem_cut: np.ndarray
    elem_geom: ElementGeometry | list
    cover_node: np.ndarray
    simplices: np.ndarray
    simplex_elem: np.ndarray
    bnd: np.ndarray
    bnd_elem: np.ndarray
    bnd_normal: np.ndarray
    bnd_crack: np.ndarray
    simplex_singular: np.ndarray | None = None
    bnd_singular: np.ndarray | None = None
    mixed_joins: np.ndarray | None = None  # 2D: the joins across edges with a cut side (recut)
    edges: tuple | None = None  # 2D: interior cover edges and their two cells (recut)
    boxes: tuple | None = None  # 2D: the cells' bounding boxes (recut)

    @property
    def n_elem(self) -> int:
        return len(self.elem_cell)

    @property
    def n_cover(self) -> int:
        return len(self.cover_node)


def cut(mc: MathCover, dom: Domain) -> Topology:
    """Cut the mathematical cover ``mc`` by the domain ``dom``."""
    if mc.dim != dom.dim:
        raise ValueError(f"cover is {mc.dim}D but domain is {dom.dim}D")
    return _cut_1d(mc, dom) if dom.dim == 1 else _cut_2d(mc, dom)


def _physical_covers(cells: np.ndarray, elem_cell: np.ndarray, joins: list[np.ndarray], clean=None):
    """Connected components of (node, element) incidences.

    Args:
        cells: ``(n_cells, n_v)`` node indices of the cover cells.
        elem_cell: ``(n_elem,)``.
        joins: arrays of rows ``(node, elem_a, elem_b)``: elements a and b are connected within the
            patch of ``node``.
        clean: ``(n_nodes,)``, optional: nodes whose every cell is one whole element. Their
            incidences are one cover (the whole-whole edges through the node join them all), so
            only the other nodes' incidences go into the graph: a band along the boundary and
            the cracks instead of the whole cover (at 1e6 cells 0.8 s -> 0.1 s).

    Returns:
        ``elem_covers (n_elem, n_v)`` and ``cover_node (n_cover,)``, covers numbered by node and,
        at one node, by their first incidence (``e * n_v + k``).
    """
    n_elem, n_v = len(elem_cell), cells.shape[1]
    inc_node = cells[elem_cell].reshape(-1)  # incidence id = e * n_v + k
    n_nodes = int(cells.max()) + 1
    clean = np.zeros(n_nodes, bool) if clean is None else clean
    dirty = np.nonzero(~clean[inc_node])[0]  # incidences in the graph, ascending
    pos = np.full(len(inc_node), -1, np.int64)
    pos[dirty] = np.arange(len(dirty))
    j = np.concatenate(joins) if joins else np.zeros((0, 3), np.int64)
    j = j[~clean[j[:, 0]]]
    # local slot k of `node` in the cells of elem_a and elem_b
    ka = np.argmax(cells[elem_cell[j[:, 1]]] == j[:, :1], axis=1)
    kb = np.argmax(cells[elem_cell[j[:, 2]]] == j[:, :1], axis=1)
    ia, ib = pos[j[:, 1] * n_v + ka], pos[j[:, 2] * n_v + kb]
    graph = coo_matrix((np.ones(len(ia)), (ia, ib)), shape=(len(dirty), len(dirty)))
    _, labels = connected_components(graph, directed=False)
    # components are labelled in the order of their first incidence
    _, first = np.unique(labels, return_index=True)
    comp_node = inc_node[dirty[first]]
    held = np.zeros(n_nodes, bool)
    held[inc_node] = True
    clean_nodes = np.nonzero(clean & held)[0]
    # covers by node, then by first incidence (a clean node has one cover)
    cover_node = np.concatenate([clean_nodes, comp_node])
    order = np.lexsort((np.concatenate([np.zeros(len(clean_nodes), np.int64), first]), cover_node))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    cover_of_node = np.full(n_nodes, -1, np.int64)
    cover_of_node[clean_nodes] = rank[: len(clean_nodes)]
    covers = cover_of_node[inc_node]
    covers[dirty] = rank[len(clean_nodes) + labels]
    return covers.reshape(n_elem, n_v), cover_node[order]


# --------------------------------------------------------------------------------------------- 1D


def _cut_1d(mc: MathCover, dom: Domain) -> Topology:
    a, b = dom.outer
    x = mc.nodes[:, 0]
    cells = mc.cells
    tol = _REL_TOL * mc.diameter
    pieces = []  # (cell, x0, x1)
    for c, (i0, i1) in enumerate(cells):
        lo, hi = max(x[i0], a), min(x[i1], b)
        if hi - lo <= tol:
            continue
        cuts = [lo] + [p for p in dom.cracks if lo + tol < p < hi - tol] + [hi]
        pieces += [(c, cuts[k], cuts[k + 1]) for k in range(len(cuts) - 1)]
    if not pieces:
        raise ValueError("cover does not overlap the domain")
    elem_cell = np.array([p[0] for p in pieces])
    x0 = np.array([p[1] for p in pieces])
    x1 = np.array([p[2] for p in pieces])
    covered = np.sum(x1 - x0)
    if abs(covered - (b - a)) > 1e-9 * (b - a):
        raise ValueError(f"cover does not cover the domain: covers length {covered:g} of {b - a:g}")
    cracks = np.array(dom.cracks)
    # consecutive elements touch at x1[e] == x0[e+1]; joined unless that point is a crack
    touch = np.abs(x1[:-1] - x0[1:]) <= tol
    on_crack = (
        np.any(np.abs(x1[:-1, None] - cracks[None]) <= tol, axis=1)
        if len(cracks)
        else np.zeros(len(touch), bool)
    )
    ea = np.nonzero(touch & ~on_crack)[0]
    eb = ea + 1
    # the shared point belongs to the patch of every node common to both cells
    joins = []
    for k in range(2):
        node = cells[elem_cell[ea], k]
        common = np.any(cells[elem_cell[eb]] == node[:, None], axis=1)
        joins.append(np.stack([node[common], ea[common], eb[common]], axis=1))
    elem_covers, cover_node = _physical_covers(cells, elem_cell, joins)
    # boundary pieces: the domain ends and both faces of each crack point
    bpts, belem, bnorm, bcrack = [], [], [], []
    for e in range(len(x0)):
        for xe, sgn in ((x0[e], -1.0), (x1[e], 1.0)):
            is_end = abs(xe - (a if sgn < 0 else b)) <= tol
            is_crack = len(cracks) > 0 and np.min(np.abs(cracks - xe)) <= tol
            if is_end or is_crack:
                bpts.append(xe)
                belem.append(e)
                bnorm.append(sgn)
                bcrack.append(bool(is_crack and not is_end))
    bpts = np.array(bpts)
    return Topology(
        elem_cell=elem_cell,
        elem_covers=elem_covers,
        elem_cut=(np.abs(x0 - x[cells[elem_cell, 0]]) > tol)
        | (np.abs(x1 - x[cells[elem_cell, 1]]) > tol),
        elem_geom=list(zip(x0, x1, strict=True)),
        cover_node=cover_node,
        simplices=np.stack([x0, x1], axis=1)[:, :, None],
        simplex_elem=np.arange(len(x0)),
        bnd=np.stack([bpts, bpts], axis=1)[:, :, None],
        bnd_elem=np.array(belem, dtype=np.int64),
        bnd_normal=np.array(bnorm)[:, None],
        bnd_crack=np.array(bcrack, dtype=bool),
    )


# --------------------------------------------------------------------------------------------- 2D


def _crack_cutters(dom: Domain, tol: float):
    """The cracks as cutting lines: crack ends that touch the boundary are pushed ``tol`` outward,
    so that noding sees a proper crossing instead of an end point that rounding may leave just
    inside (which polygonize would drop as a dangle, leaving the cell unsplit)."""
    if not dom.cracks:
        return None
    lines = []
    for c in dom.cracks:
        c = np.array(c, dtype=float)
        for end, nxt in ((0, 1), (-1, -2)):
            if dom.shape.boundary.distance(shapely.Point(c[end])) <= tol:
                d = c[end] - c[nxt]
                c[end] = c[end] + tol * d / np.linalg.norm(d)
        lines.append(LineString(c))
    return MultiLineString(lines)


def _split_cell(piece, cell, cutters, tol: float) -> list[Polygon]:
    """Faces of (cell ∩ domain) split by cracks; dangling crack ends do not split.

    The cracks are clipped to the cell grown by ``tol`` (not to the piece itself), so every crack
    that crosses the piece's boundary does so properly and is noded there."""
    if cutters is None:
        return list(shapely.get_parts(piece))
    if piece.intersects(cutters):
        near = cutters.intersection(cell.buffer(tol, join_style="mitre"))
        faces = [
            f
            for f in polygonize(unary_union([piece.boundary, near]))
            if piece.contains(f.representative_point())
        ]
    else:
        faces = list(shapely.get_parts(piece))
    # A crack lying along a cover line (to rounding) must still mark both neighbours' edges as
    # faces, and only where the crack is: insert crack vertices into edges within tol.
    return [shapely.snap(f, cutters, tol) for f in faces]


def _cell_edges(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique cover edges with the (one or two) cells that share them.

    Returns ``edges (n_edge, 2)`` (sorted node pairs) and ``edge_cells (n_edge, 2)`` (-1 if none).
    """
    n_cells, n_v = cells.shape
    pairs = np.stack([cells, np.roll(cells, -1, axis=1)], axis=-1).reshape(-1, 2)
    pairs = np.sort(pairs, axis=1)
    owner = np.repeat(np.arange(n_cells), n_v)
    n_nodes = int(cells.max()) + 1
    keys, inv = np.unique(pairs[:, 0] * n_nodes + pairs[:, 1], return_inverse=True)  # 1-D: fast
    edges = np.stack([keys // n_nodes, keys % n_nodes], axis=1)
    inv = inv.reshape(-1)
    edge_cells = -np.ones((len(edges), 2), np.int64)
    order = np.argsort(inv, kind="stable")
    inv_s, owner_s = inv[order], owner[order]
    first = np.r_[True, inv_s[1:] != inv_s[:-1]]
    edge_cells[inv_s[first], 0] = owner_s[first]
    edge_cells[inv_s[~first], 1] = owner_s[~first]
    return edges, edge_cells


def rings(poly: Polygon) -> list[np.ndarray]:
    """Closed coordinate arrays of a polygon's exterior and holes."""
    return [np.asarray(r.coords) for r in (poly.exterior, *poly.interiors)]


def _overlap(ia, ib, ic) -> float:
    """Length of (∪ia ∩ ∪ib) minus ∪ic, intervals in [0, 1]."""
    total = 0.0
    for a0, a1 in ia:
        for b0, b1 in ib:
            lo, hi = max(a0, b0), min(a1, b1)
            if hi <= lo:
                continue
            length = hi - lo
            for c0, c1 in ic:
                length -= max(0.0, min(hi, c1) - max(lo, c0))
            total += max(length, 0.0)
    return total


def _ring_segments(geoms, ids):
    """The ring segments ``a, b (k, 2)`` of elements ``ids`` and the element of each, in ring
    and point order (exterior first), from one vectorised pass over their coordinates."""
    ids = np.asarray(ids, np.int64)
    if len(ids) == 0:
        return np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, np.int64)
    polys = np.asarray([geoms[e] for e in ids], dtype=object)
    ring_geoms, ring_owner = shapely.get_rings(polys, return_index=True)
    coords, ring = shapely.get_coordinates(ring_geoms, return_index=True)
    same = ring[1:] == ring[:-1]  # consecutive points of one ring
    return coords[:-1][same], coords[1:][same], ids[ring_owner[ring[:-1][same]]]


def _edge_intervals(pa, pb, a, b, tol):
    """Where segments lie on edges, for many (edge, segment) pairs at once: the edge ``pa -> pb``
    and the segment ``a -> b`` of each pair (arrays ``(k, 2)``). Returns the pairs whose segment
    lies on its edge's line (both ends within ``tol``) and their parameter intervals ``lo, hi``
    along the edge (clipped to [0, 1], of positive length)."""
    d = pb - pa
    L2 = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.sqrt(L2)[:, None]

    def offset_and_t(c):
        r = c - pa
        return r[:, 0] * normal[:, 0] + r[:, 1] * normal[:, 1], (
            r[:, 0] * d[:, 0] + r[:, 1] * d[:, 1]
        ) / L2

    (oa, ta), (ob, tb) = offset_and_t(a), offset_and_t(b)
    lo = np.maximum(np.minimum(ta, tb), 0.0)
    hi = np.minimum(np.maximum(ta, tb), 1.0)
    keep = (np.abs(oa) <= tol) & (np.abs(ob) <= tol) & (hi > lo)
    return np.nonzero(keep)[0], lo[keep], hi[keep]


def _grouped(n: int, group, lo, hi) -> list[list[tuple[float, float]]]:
    """Intervals ``(lo, hi)`` gathered into ``n`` lists by ``group`` (order kept)."""
    out = [[] for _ in range(n)]
    for g, a, b in zip(group.tolist(), lo.tolist(), hi.tolist(), strict=True):
        out[g].append((a, b))
    return out


def _mixed_rows(edges, edge_cells, nodes, geoms, elem_cut, order, starts, cell_nelem, chains, tol):
    """Joins ``(k, 3)`` rows (node, a, b) across cover edges with a cut cell on a side: elements a
    and b of the two cells are joined in the patches of both end nodes where their boundaries
    share a piece of the edge of positive length that is not on a crack.

    Where each cut element's boundary and each crack lies on each edge is found for all edges at
    once (numpy over the pairs of an edge and a ring segment of an element on it); only the
    overlap of those few intervals per pair of elements is left to Python."""
    if len(edges) == 0:
        return np.zeros((0, 3), np.int64)
    pa_all, pb_all = nodes[edges[:, 0]], nodes[edges[:, 1]]
    # the (edge, element) pairs of cut elements on either side of each edge
    sides = [edge_cells[:, 0], edge_cells[:, 1]]
    pair_edge = np.concatenate([np.repeat(np.arange(len(edges)), cell_nelem[c]) for c in sides])
    pair_elem = np.concatenate(
        [order[np.repeat(starts[c], cell_nelem[c]) + _ranges(cell_nelem[c])] for c in sides]
    )
    cut_pair = elem_cut[pair_elem]
    pe, pl = pair_edge[cut_pair], pair_elem[cut_pair]
    seg_a, seg_b, seg_elem = _ring_segments(geoms, np.unique(pl))
    # each pair with every segment of its element (segments are grouped by element, in order)
    first = np.searchsorted(seg_elem, pl, side="left")
    count = np.searchsorted(seg_elem, pl, side="right") - first
    pair_of_seg = np.repeat(np.arange(len(pl)), count)
    seg = np.repeat(first, count) + _ranges(count)
    e = pe[pair_of_seg]
    hit, lo, hi = _edge_intervals(pa_all[e], pb_all[e], seg_a[seg], seg_b[seg], tol)
    cut_intervals = _grouped(len(pl), pair_of_seg[hit], lo, hi)
    by_pair = {(int(x), int(y)): iv for x, y, iv in zip(pe, pl, cut_intervals, strict=True)}
    # the cracks' segments on every edge
    crack_a = np.concatenate([c[:-1] for c in chains]) if chains else np.zeros((0, 2))
    crack_b = np.concatenate([c[1:] for c in chains]) if chains else np.zeros((0, 2))
    ce = np.repeat(np.arange(len(edges)), len(crack_a))
    cs = np.tile(np.arange(len(crack_a)), len(edges))
    hit, lo, hi = _edge_intervals(pa_all[ce], pb_all[ce], crack_a[cs], crack_b[cs], tol)
    on_crack = _grouped(len(edges), ce[hit], lo, hi)

    rows = []
    whole = [(0.0, 1.0)]
    for k, ((na, nb), (c1, c2)) in enumerate(zip(edges.tolist(), edge_cells.tolist(), strict=True)):
        e1 = order[starts[c1] : starts[c1] + cell_nelem[c1]].tolist()
        e2 = order[starts[c2] : starts[c2] + cell_nelem[c2]].tolist()
        iv1 = [by_pair[(k, a)] if elem_cut[a] else whole for a in e1]
        iv2 = [by_pair[(k, b)] if elem_cut[b] else whole for b in e2]
        for i, a in enumerate(e1):
            for j, b in enumerate(e2):
                if _overlap(iv1[i], iv2[j], on_crack[k]) > 1e-7:
                    rows += [(na, a, b), (nb, a, b)]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _ranges(counts):
    """``concatenate([arange(c) for c in counts])``."""
    counts = np.asarray(counts, np.int64)
    ends = np.cumsum(counts)
    return np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - counts, counts)


def _cell_boxes(prev, mc):
    """Lower and upper corners ``(n_cells, 2)`` of the cells' bounding boxes (cached)."""
    if prev is not None and prev.boxes is not None:
        return prev.boxes
    return arrays.boxes(arrays.corners(mc.nodes, mc.cells))


def _interior_edges(prev, cells):
    """Cover edges shared by two cells, and those cells (cached on a topology of the cover)."""
    if prev is not None and prev.edges is not None:
        return prev.edges
    edges, edge_cells = _cell_edges(cells)
    interior = edge_cells[:, 1] >= 0
    return edges[interior], edge_cells[interior]


def _cell_elements(elem_cell, n_cells):
    """Elements by cell: ``order`` (elements sorted by cell), ``starts``, ``cell_nelem`` and
    ``cell_first`` (the first element of each cell, -1 for none)."""
    cell_nelem = np.bincount(elem_cell, minlength=n_cells)
    order = np.argsort(elem_cell, kind="stable")
    starts = np.r_[0, np.cumsum(cell_nelem)[:-1]]
    cell_first = np.where(cell_nelem > 0, order[np.minimum(starts, max(len(order) - 1, 0))], -1)
    return order, starts, cell_nelem, cell_first


def _crack_chains(cracks):
    """The cracks (``Domain.crack_lines``) as merged coordinate chains."""
    if cracks is None:
        return []
    return [np.asarray(ls.coords) for ls in shapely.get_parts(shapely.line_merge(cracks))]


def _faces_of_cells(cells_idx, cell_polys, shape, cutters, tol, min_area):
    """Elements of the cells ``cells_idx`` (polygons ``cell_polys``), all treated as cut: their
    faces (oriented), their cells, and the faces too small to integrate on."""
    clipped = shapely.intersection(cell_polys, shape)
    split = np.zeros(len(clipped), bool)  # cells that a crack crosses: faces by polygonize
    if cutters is not None:
        split = shapely.intersects(clipped, cutters)
    # the others in one vectorised pass: their faces are their pieces' parts (snapped to the
    # cracks as _split_cell does)
    parts, owner = shapely.get_parts(clipped[~split], return_index=True)
    owner = np.nonzero(~split)[0][owner]
    if cutters is not None:
        parts = shapely.snap(parts, cutters, 1e-2 * tol)
    faces = list(parts)
    for k in np.nonzero(split)[0]:
        more = _split_cell(clipped[k], cell_polys[k], cutters, 1e-2 * tol)
        faces += more
        owner = np.concatenate([owner, np.full(len(more), k)])
    order = np.argsort(owner, kind="stable")  # cell by cell, each cell's faces in their order
    faces, owner = np.asarray(faces, dtype=object)[order], owner[order]
    if len(faces) == 0:
        return [], np.zeros(0, np.int64), []
    area = shapely.area(faces)
    polygon = shapely.get_type_id(faces) == shapely.GeometryType.POLYGON
    keep, small = area > min_area, (area > 0.0) & (area <= min_area) & polygon
    tiny = list(shapely.orient_polygons(faces[small]))
    geoms = list(shapely.orient_polygons(faces[keep]))
    return geoms, np.asarray(cells_idx, np.int64)[owner[keep]], tiny


def _triangles(geoms, ids):
    """Constrained Delaunay triangles ``(k, 3, 2)`` of the cut elements ``ids`` and their elements."""
    ids = np.asarray(ids, np.int64)
    if len(ids) == 0:
        return np.zeros((0, 3, 2)), np.zeros(0, np.int64)
    # one vectorised pass: each triangle's exterior ring is 4 points, the last the first again
    polys = np.asarray([geoms[e] for e in ids], dtype=object)
    parts, owner = shapely.get_parts(shapely.constrained_delaunay_triangles(polys), return_index=True)
    coords, part = shapely.get_coordinates(shapely.get_exterior_ring(parts), return_index=True)
    first = np.searchsorted(part, np.arange(len(parts)))
    return coords[first[:, None] + np.arange(3)], ids[owner]


def _boundary_pieces(geoms, ids, tiny, dom, tol, diameter, near=None):
    """Boundary pieces of the cut elements ``ids`` that lie on ∂Ω (outer or hole rings) or on a
    crack face: ``(seg, elem, normal, crack)``.

    A face below the area threshold (``tiny``: a corner of a 1e-9 sliver, a whole 1e-12 sliver)
    has no element, but its piece of the boundary must still carry the boundary condition
    (without it a 1e-12 sliver along an edge left that edge free: error 5e-2). Each of its
    boundary segments goes to the nearest of the elements ``near`` (default ``ids``), whose field
    extends over it (as the basis of aggregated elements does, nmm.stable.aggregate); crack faces
    are not moved (the nearest element may lie across the crack)."""
    a, b, own = _ring_segments(geoms, ids)
    seg, seg_elem = [np.stack([a, b], axis=1)], [own]
    n_own = len(own)
    near = np.asarray(ids if near is None else near)
    if tiny and len(near):
        tree = shapely.STRtree(np.asarray(geoms, dtype=object)[near])
        for f in tiny:
            c = np.asarray(f.exterior.coords)
            s_f = np.stack([c[:-1], c[1:]], axis=1)
            seg.append(s_f)
            seg_elem.append(near[tree.nearest(shapely.points(0.5 * (s_f[:, 0] + s_f[:, 1])))])
    seg, seg_elem = np.concatenate(seg), np.concatenate(seg_elem).astype(np.int64)
    mid = shapely.points(0.5 * (seg[:, 0] + seg[:, 1]))
    on_bnd = shapely.distance(dom.shape.boundary, mid) <= tol
    cracks = dom.crack_lines
    on_crk = shapely.distance(cracks, mid) <= tol if cracks is not None else np.zeros(len(seg), bool)
    on_crk[n_own:] = False
    # pieces of a few ulps (a crack tip 1 ulp from a cover node leaves one) carry nothing and
    # would put quadrature points on a singular point: dropped (a 1e-9 sliver's corner, ~1e-9 h,
    # stays)
    keep = (on_bnd | on_crk) & (np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1) > _NULL * diameter)
    seg, seg_elem = seg[keep], seg_elem[keep]
    d = seg[:, 1] - seg[:, 0]
    normal = np.stack([d[:, 1], -d[:, 0]], axis=1) / np.linalg.norm(d, axis=1, keepdims=True)
    return seg, seg_elem, normal, on_crk[keep] & ~on_bnd[keep]


def _segments(lines) -> np.ndarray:
    """``(k, 2, 2)``: the straight segments of a (multi)line string or a polygon's boundary."""
    if lines is None:
        return np.zeros((0, 2, 2))
    coords = [np.asarray(g.coords) for g in shapely.get_parts(lines)]
    return np.concatenate([np.stack([c[:-1], c[1:]], 1) for c in coords])


def _cut_2d(mc: MathCover, dom: Domain) -> Topology:
    cells, nodes = mc.cells, mc.nodes
    n_cells, n_v = cells.shape
    tol = _REL_TOL * mc.diameter
    shape = dom.shape
    shapely.prepare(shape)
    cracks = dom.crack_lines
    # numpy first: cells whose boxes stay clear of the boundary and the cracks are wholly inside
    # or wholly outside (one point decides); only the rest become shapely polygons
    lo, hi = _cell_boxes(None, mc)
    bnd_seg, crack_seg = _segments(shape.boundary), _segments(cracks)
    near = np.nonzero(_near_lines(lo, hi, np.concatenate([bnd_seg, crack_seg]), tol))[0]
    far = np.ones(n_cells, bool)
    far[near] = False
    centre = arrays.centroids(arrays.corners(nodes, cells[far]))
    inside = np.zeros(n_cells, bool)
    inside[far] = shapely.contains_xy(shape, centre[:, 0], centre[:, 1])

    near_polys = shapely.polygons(nodes[cells[near]])
    near_in = shapely.contains_properly(shape, near_polys)
    tree = shapely.STRtree(near_polys)
    # cells within the tolerance of the boundary count as cut, so that their edges there carry
    # the boundary condition (a domain edge 1e-12 past a cover line is that line to the cover;
    # as a whole cell it had no boundary pieces and the edge was left free). Queried segment by
    # segment: one boundary geometry's envelope is the whole domain
    near_in[tree.query(shapely.linestrings(bnd_seg), predicate="dwithin", distance=tol)[1]] = False
    if cracks is not None:
        # cells within a rounding tolerance of a crack count as touched: a crack along a cover
        # line is on the boundary of the cells on both sides
        hit = tree.query(shapely.linestrings(crack_seg), predicate="dwithin", distance=1e-2 * tol)
        near_in[hit[1]] = False
    inside[near] = near_in
    whole = np.nonzero(inside)[0]
    rest = np.nonzero(~near_in)[0]  # positions in ``near``
    rest = rest[shapely.intersects(shape, near_polys[rest])]
    cand = near[rest]

    # elements: whole cells first, then pieces of cut cells (tiny faces: see _boundary_pieces)
    min_area = 1e-12 * mc.diameter**2
    cutters = _crack_cutters(dom, 1e3 * tol)
    cut_geoms, cut_cell, tiny = _faces_of_cells(cand, near_polys[rest], shape, cutters, tol, min_area)
    geoms = ElementGeometry.of(nodes, cells, whole, cut_geoms)
    elem_cell = np.concatenate([whole, cut_cell]).astype(np.int64)
    n_whole = len(whole)
    elem_cut = np.arange(len(elem_cell)) >= n_whole
    if len(elem_cell) == 0:
        raise ValueError("cover does not overlap the domain")
    covered = (
        _polygon_areas(nodes[cells[whole]]).sum()
        + shapely.area(np.asarray(cut_geoms, dtype=object)).sum()
    )
    if abs(covered - shape.area) > 1e-9 * shape.area:
        raise ValueError(
            f"cover does not cover the domain: covers area {covered:.6g} of {shape.area:.6g}"
        )

    # ---- physical covers: join elements across shared cover edges. A node whose every cell is
    # whole has one cover; the others (a band along the boundary and the cracks) need the joins,
    # across the edges of the cells that hold such a node
    order, starts, cell_nelem, cell_first = _cell_elements(elem_cell, n_cells)
    is_whole = np.zeros(n_cells, bool)
    is_whole[whole] = True
    n_nodes = len(nodes)
    clean = np.bincount(cells[whole].ravel(), minlength=n_nodes) == np.bincount(
        cells.ravel(), minlength=n_nodes
    )
    band = np.nonzero((cell_nelem > 0) & ~clean[cells].all(axis=1))[0]
    edges, edge_cells = _cell_edges(cells[band])
    edges, edge_cells = edges[edge_cells[:, 1] >= 0], band[edge_cells[edge_cells[:, 1] >= 0]]
    both_whole = is_whole[edge_cells[:, 0]] & is_whole[edge_cells[:, 1]]
    ea = cell_first[edge_cells[both_whole, 0]]
    eb = cell_first[edge_cells[both_whole, 1]]
    joins = [np.stack([edges[both_whole, k], ea, eb], axis=1) for k in range(2)]
    # the rest: at least one side cut, both sides present
    mixed = ~both_whole & (cell_nelem[edge_cells[:, 0]] > 0) & (cell_nelem[edge_cells[:, 1]] > 0)
    crack_chains = _crack_chains(cracks)
    rows = _mixed_rows(
        edges[mixed],
        edge_cells[mixed],
        nodes,
        geoms,
        elem_cut,
        order,
        starts,
        cell_nelem,
        crack_chains,
        tol,
    )
    joins.append(rows)
    elem_covers, cover_node = _physical_covers(cells, elem_cell, joins, clean)

    # ---- triangulation for quadrature: whole cells directly, cut elements by constrained Delaunay
    if n_v == 3:
        whole_tris = nodes[cells[whole]]
    else:
        q = nodes[cells[whole]]
        whole_tris = np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])
    whole_tri_elem = np.arange(n_whole) if n_v == 3 else np.tile(np.arange(n_whole), 2)
    cut_tris, cut_tri_elem = _triangles(geoms, range(n_whole, len(geoms)))
    simplices = np.concatenate([whole_tris, cut_tris])
    simplex_elem = np.concatenate([whole_tri_elem, cut_tri_elem])

    # ---- boundary pieces of cut elements
    seg, seg_elem, normal, crk = _boundary_pieces(
        geoms, np.arange(n_whole, len(geoms)), tiny, dom, tol, mc.diameter, near=np.arange(len(geoms))
    )
    return Topology(
        elem_cell=elem_cell,
        elem_covers=elem_covers,
        elem_cut=elem_cut,
        elem_geom=geoms,
        cover_node=cover_node,
        simplices=simplices,
        simplex_elem=simplex_elem,
        bnd=seg,
        bnd_elem=seg_elem,
        bnd_normal=normal,
        bnd_crack=crk,
        mixed_joins=rows,
        edges=None,  # only the band's were found: recut finds them all (once) when it needs them
        boxes=(lo, hi),
    )


# ----------------------------------------------------------------------------- local re-cut (2D)


def _local_covers(prev, cells, elem_cell, old_ids, hot, joins):
    """``elem_covers``, ``cover_node`` of a re-cut: the incidences at nodes that are not ``hot``
    keep their covers of ``prev`` (elements ``old_ids`` are the first ones, in order); those at
    hot nodes are the connected components of ``joins`` (rows node, a, b) at hot nodes. Covers
    are numbered by node, as ``_physical_covers`` does."""
    n_elem, n_v = len(elem_cell), cells.shape[1]
    inc_node = cells[elem_cell]  # (n_elem, n_v)
    covers = np.full((n_elem, n_v), -1, np.int64)
    n_keep = len(old_ids)
    covers[:n_keep] = prev.elem_covers[old_ids]
    redo = hot[inc_node]
    covers[redo] = -1
    inc = np.nonzero(redo.reshape(-1))[0]  # incidence ids e * n_v + k, sorted
    j = np.concatenate(joins)
    j = j[hot[j[:, 0]]]
    ka = np.argmax(inc_node[j[:, 1]] == j[:, :1], axis=1)
    kb = np.argmax(inc_node[j[:, 2]] == j[:, :1], axis=1)
    ia = np.searchsorted(inc, j[:, 1] * n_v + ka)
    ib = np.searchsorted(inc, j[:, 2] * n_v + kb)
    graph = coo_matrix((np.ones(len(ia)), (ia, ib)), shape=(len(inc), len(inc)))
    n_comp, labels = connected_components(graph, directed=False)
    # old covers still in use keep their nodes; the new ones come after them
    base = prev.n_cover
    covers.reshape(-1)[inc] = base + labels
    node_of = np.concatenate([prev.cover_node, np.zeros(n_comp, np.int64)])
    node_of[base + labels] = inc_node.reshape(-1)[inc]
    in_use = np.zeros(base + n_comp, bool)
    in_use[covers.reshape(-1)] = True
    used = np.nonzero(in_use)[0]
    order = used[np.argsort(node_of[used], kind="stable")]
    rank = np.full(base + n_comp, -1, np.int64)
    rank[order] = np.arange(len(order))
    return rank[covers], node_of[order]


def recut(prev: Topology, mc: MathCover, dom: Domain, region) -> Topology:
    """The topology of ``dom`` from ``prev``, the same cover cut by a domain that differs from
    ``dom`` only inside ``region`` (a shapely geometry: the new segment of a growing crack).

    Only the cells within the geometric tolerance of ``region`` are cut again (their faces, their
    triangles, their boundary pieces, and the joins across their edges); every other element is
    taken over from ``prev``, and the physical covers are the connected components of the joins
    again (numpy and scipy on index arrays: no geometry). The result equals ``cut(mc, dom)`` up to
    the numbering of elements and covers (tests/test_growth.py)."""
    if mc.dim != 2 or dom.dim != 2:
        raise ValueError("recut is for 2D covers and domains")
    if prev.mixed_joins is None or prev.simplex_singular is not None:
        raise ValueError("recut needs the topology of nmm.topology.cut (not an enriched space's)")
    cells, nodes = mc.cells, mc.nodes
    n_cells = len(cells)
    tol = _REL_TOL * mc.diameter
    # the cells that touch the region: bounding boxes (numpy) first, then shapely on those few
    lo, hi = _cell_boxes(prev, mc)
    bx = np.asarray(region.bounds) + np.array([-2, -2, 2, 2]) * tol
    near = np.nonzero(
        (hi[:, 0] >= bx[0]) & (lo[:, 0] <= bx[2]) & (hi[:, 1] >= bx[1]) & (lo[:, 1] <= bx[3])
    )[0]
    near_polys = shapely.polygons(nodes[cells[near]])
    hit = near[shapely.dwithin(near_polys, region, 2 * tol)]
    changed = np.zeros(n_cells, bool)
    changed[hit] = True

    # elements: those of unchanged cells as they were, then the changed cells' new faces
    keep = ~changed[prev.elem_cell]
    old_ids = np.nonzero(keep)[0]
    renum = np.full(prev.n_elem, -1, np.int64)
    renum[old_ids] = np.arange(len(old_ids))
    cutters = _crack_cutters(dom, 1e3 * tol)
    min_area = 1e-12 * mc.diameter**2
    hit_polys = near_polys[np.isin(near, hit)]
    new_geoms, new_cell, tiny = _faces_of_cells(hit, hit_polys, dom.shape, cutters, tol, min_area)
    n_keep = len(old_ids)
    geoms = prev.elem_geom.take(old_ids, new_geoms)
    elem_cell = np.concatenate([prev.elem_cell[old_ids], new_cell])
    elem_cut = np.concatenate([prev.elem_cut[old_ids], np.ones(len(new_cell), bool)])
    new_ids = np.arange(n_keep, n_keep + len(new_cell))

    # triangles and boundary pieces: the kept ones, and those of the new faces
    s_keep = keep[prev.simplex_elem]
    new_tris, new_tri_elem = _triangles(geoms, new_ids)
    b_keep = keep[prev.bnd_elem]
    seg, seg_elem, normal, crk = _boundary_pieces(geoms, new_ids, tiny, dom, tol, mc.diameter)

    # physical covers. A node whose patch holds no changed cell keeps its covers (the same
    # elements, the same joins); the patches of the changed cells' nodes are joined again:
    # across whole-whole edges by index arithmetic, across edges with a cut side by the kept
    # rows and, next to a changed cell, by fresh ones
    edges, edge_cells = _interior_edges(prev, cells)
    order, starts, cell_nelem, cell_first = _cell_elements(elem_cell, n_cells)
    is_whole = np.zeros(n_cells, bool)
    is_whole[elem_cell[~elem_cut]] = True
    hot = np.zeros(len(nodes), bool)  # nodes whose covers are found again
    hot[cells[changed]] = True
    at_hot = hot[edges[:, 0]] | hot[edges[:, 1]]
    both_whole = is_whole[edge_cells[:, 0]] & is_whole[edge_cells[:, 1]]
    sel = at_hot & both_whole
    ea, eb = cell_first[edge_cells[sel, 0]], cell_first[edge_cells[sel, 1]]
    joins = [np.stack([edges[sel, k], ea, eb], axis=1) for k in range(2)]
    rows = prev.mixed_joins
    rows = rows[keep[rows[:, 1]] & keep[rows[:, 2]]]
    rows = np.stack([rows[:, 0], renum[rows[:, 1]], renum[rows[:, 2]]], axis=1)
    joins.append(rows)
    touch = (changed[edge_cells[:, 0]] | changed[edge_cells[:, 1]]) & ~both_whole
    touch &= (cell_nelem[edge_cells[:, 0]] > 0) & (cell_nelem[edge_cells[:, 1]] > 0)
    chains = _crack_chains(dom.crack_lines)
    fresh = _mixed_rows(
        edges[touch], edge_cells[touch], nodes, geoms, elem_cut, order, starts, cell_nelem, chains, tol
    )
    joins.append(fresh)
    mixed = np.concatenate([rows, fresh])
    elem_covers, cover_node = _local_covers(prev, cells, elem_cell, old_ids, hot, joins)
    return Topology(
        elem_cell=elem_cell,
        elem_covers=elem_covers,
        elem_cut=elem_cut,
        elem_geom=geoms,
        cover_node=cover_node,
        simplices=np.concatenate([prev.simplices[s_keep], new_tris]),
        simplex_elem=np.concatenate([renum[prev.simplex_elem[s_keep]], new_tri_elem]),
        bnd=np.concatenate([prev.bnd[b_keep], seg]),
        bnd_elem=np.concatenate([renum[prev.bnd_elem[b_keep]], seg_elem]),
        bnd_normal=np.concatenate([prev.bnd_normal[b_keep], normal]),
        bnd_crack=np.concatenate([prev.bnd_crack[b_keep], crk]),
        mixed_joins=mixed,
        edges=(edges, edge_cells),
        boxes=(lo, hi),
    )
