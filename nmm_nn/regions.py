"""Exact linear regions of piecewise-linear networks on an nmm Domain: the network's "elements".

A relu or hat network is affine on every cell of a partition of its input space. Seen from the
Numerical Manifold Method, those cells play the role of manifold elements: :func:`covers` computes
them exactly, with their activation patterns and affine maps, so that a network and a
:class:`nmm.ManifoldSpace` can be compared element for element (:meth:`NetworkCovers.compare`).

Method (host-side numpy + shapely, it is geometry preprocessing): start from the domain's bounding
box, one convex cell (an interval in 1D) on which the network input is the identity map. For each
hidden layer, the pre-activations are affine on every current cell; each (neuron, kink value) pair
gives a line (a point in 1D) that splits a cell where it genuinely crosses it. After the split,
every piece has one activation pattern, so the layer's output is again affine on it. Cells stay
convex, so the splitting is plain half-plane clipping; shapely only intersects cells with the
(possibly non-convex, holed) domain and takes connected components. Cracks of the domain are ignored:
the network is continuous across them.

Region-count bounds (:func:`shallow_bound`, :func:`deep_bound_1d`, :func:`region_bound`) and an exact
deep network with exponentially many regions (:func:`tent_map`) complete the module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely.geometry import Polygon

from nmm.geometry import Domain

from .mlp import KINKS, MLP, PIECEWISE_LINEAR

# each activation as an affine function act(z) = slope * z + offset on every interval between kinks
_AFFINE = {
    "relu": (np.array([0.0, 1.0]), np.array([0.0, 0.0])),
    "hat": (np.array([0.0, 1.0, -1.0, 0.0]), np.array([0.0, 1.0, 1.0, 0.0])),
}


@dataclass(frozen=True, eq=False)
class NetworkCovers:
    """The exact linear regions of a piecewise-linear network on a domain (R regions).

    Attributes:
        dim: input dimension (1 or 2).
        n_regions: connected regions of constant activation pattern (the network's elements).
        n_patterns: distinct activation patterns (fewer than regions only on non-convex domains).
        n_pieces: maximal connected unions of regions on which the output is one affine function.
        layer_regions: region count after each hidden layer.
        regions: 1D ``(R, 2)`` sorted intervals; 2D a list of shapely Polygons.
        sizes: ``(R,)`` lengths or areas.
        points: ``(R, dim)`` one point inside each region.
        patterns: ``(R, sum(widths))`` int8 codes, per neuron the interval of its pre-activation
            between kinks (relu: 0 below 0, 1 above; hat: 0..3 for z < -1, -1 < z < 0, ...).
        slopes, intercepts: the output on region r is ``slopes[r] @ x + intercepts[r]``; shapes
            ``(R, dim)`` and ``(R,)`` for a scalar net, ``(R, out, dim)`` and ``(R, out)`` otherwise.
        piece_of: ``(R,)`` index of the affine piece that holds each region.
        kinks: per hidden layer, where its neurons bend (neuron ids count within the layer). 1D:
            a pair (points, neuron ids) of arrays; 2D: a list of (neuron id, shapely (Multi)LineString
            clipped to the domain).
        n_params: trainable parameters of the network.
    """

    dim: int
    n_regions: int
    n_patterns: int
    n_pieces: int
    layer_regions: tuple[int, ...]
    regions: object
    sizes: np.ndarray
    points: np.ndarray
    patterns: np.ndarray
    slopes: np.ndarray
    intercepts: np.ndarray
    piece_of: np.ndarray
    kinks: tuple
    n_params: int

    def compare(self, space) -> dict:
        """The network's counts beside those of an :class:`nmm.ManifoldSpace` on the same domain."""
        for name in ("dim", "n_elements", "n_covers", "n_dofs"):
            if not hasattr(space, name):
                raise TypeError(f"space must be an nmm.ManifoldSpace, got {type(space).__name__}")
        if space.dim != self.dim:
            raise ValueError(f"space has dimension {space.dim} but the network regions have {self.dim}")
        return {
            "regions": self.n_regions,
            "patterns": self.n_patterns,
            "pieces": self.n_pieces,
            "params": self.n_params,
            "elements": int(space.n_elements),
            "covers": int(space.n_covers),
            "dofs": int(space.n_dofs),
        }


def _check_pl(net) -> None:
    if not isinstance(net, MLP):
        raise TypeError(f"net must be an nmm_nn.MLP, got {type(net).__name__}")
    if net.activation not in PIECEWISE_LINEAR:
        raise ValueError(
            f"net has activation {net.activation!r}: linear regions are only defined for "
            f"piecewise-linear networks (activation in {PIECEWISE_LINEAR})"
        )
    if net.fourier is not None:
        raise ValueError(
            "net has Fourier input features (sin/cos): linear regions are only defined for "
            "piecewise-linear networks"
        )
    if net.output_transform is not None:
        raise ValueError(
            "net has an output transform: linear regions are only defined for piecewise-linear "
            "networks without one"
        )
    if net.features is not None:
        raise ValueError(
            "net has input features (a function of x fed to the first layer): linear regions "
            "are only defined for piecewise-linear networks of x alone"
        )


def covers(net: MLP, domain: Domain, *, max_regions: int = 100_000, tol: float = 1e-10) -> NetworkCovers:
    """The exact linear regions of a relu or hat network on ``domain``.

    Args:
        net: an :class:`~nmm_nn.mlp.MLP` with activation ``"relu"`` or ``"hat"``, no Fourier features.
        domain: an :class:`nmm.Domain` with ``domain.dim == net.in_size``.
        max_regions: stop with ``ValueError`` as soon as more regions than this are found.
        tol: relative tolerance: a kink line passing within ``tol * diameter`` of a cell's vertex
            (or a pre-activation within ``tol`` times its own magnitude of the kink value) does not
            split the cell, and output maps within ``tol`` of each other are one piece.

    Raises:
        ValueError: a non piecewise-linear network, a dimension mismatch, too many regions.
    """
    _check_pl(net)
    if not isinstance(domain, Domain):
        raise TypeError(f"domain must be an nmm.Domain, got {type(domain).__name__}")
    if domain.dim != net.in_size:
        raise ValueError(f"domain has dimension {domain.dim} but net.in_size is {net.in_size}")
    _check_int(max_regions, "max_regions", 1)
    if not (isinstance(tol, float | int) and 0 < tol < 1e-2):
        raise ValueError(f"tol must be a number in (0, 0.01), got {tol!r}")
    dim, tol = domain.dim, float(tol)
    Ws = [np.asarray(w, dtype=float) for w in net.weights]
    bs = [np.asarray(b, dtype=float) for b in net.biases]
    kinks = np.asarray(KINKS[net.activation])
    alpha, beta = _AFFINE[net.activation]
    lo, hi = domain.bounds
    diam = float(np.linalg.norm(hi - lo))
    if dim == 1:
        box, shape = np.array([[lo[0]], [hi[0]]]), None
    else:
        box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
        shape = domain.shape
        shapely.prepare(shape)
    area_tol = tol * diam**2  # components thinner than this are clipping round-off

    def clip(V):
        """(None, 1) for a cell inside the domain, else (its parts in the domain, how many)."""
        if shape is None:
            return None, 1
        poly = Polygon(V)
        if shape.covers(poly):
            return None, 1
        parts = shapely.get_parts(shape.intersection(poly))
        parts = [p for p in parts if p.geom_type == "Polygon" and p.area > area_tol]
        return parts, len(parts)

    geom, n = clip(box)
    # a cell: vertices, input affine map of the current layer (A, c), codes per layer, domain parts
    cells = [(box, np.eye(dim), np.zeros(dim), [], geom, n)]
    layer_regions, layer_kinks = [], []
    for W, b in zip(Ws[:-1], bs[:-1], strict=True):
        new, count, chords = [], 0, []
        for V, A, c, codes, geom, _ in cells:
            pieces, G, T = _refine(V, A, c, W, b, kinks, tol, diam, chords)
            for P, code in pieces:
                # a piece of a cell inside the domain is inside; an unsplit cell keeps its parts
                if geom is None:
                    g, n = None, 1
                elif len(pieces) == 1:
                    g, n = geom, len(geom)
                else:
                    g, n = clip(P)
                if n == 0:
                    continue
                count += n
                if count > max_regions:
                    raise ValueError(
                        f"more than max_regions={max_regions} regions: reached {count} in hidden "
                        f"layer {len(layer_regions) + 1} of {len(Ws) - 1}"
                    )
                new.append(
                    (P, alpha[code][:, None] * G, alpha[code] * T + beta[code], [*codes, code], g, n)
                )
        cells = new
        layer_regions.append(count)
        layer_kinks.append(_collect_kinks(chords, dim, shape))

    # final affine maps through the output layer, one row per connected region
    cell_of, regions = [], []
    for i, (V, *_, geom, _n) in enumerate(cells):
        parts = [V[:, 0]] if dim == 1 else ([Polygon(V)] if geom is None else geom)
        regions += parts
        cell_of += [i] * len(parts)
    cell_of = np.asarray(cell_of, dtype=int)
    Wo, bo = Ws[-1], bs[-1]
    slopes = np.stack([Wo @ cells[i][1] for i in cell_of])  # (R, out, dim)
    intercepts = np.stack([Wo @ cells[i][2] + bo for i in cell_of])
    patterns = np.stack([np.concatenate(cells[i][3]) for i in cell_of]).astype(np.int8)
    if dim == 1:
        regions = np.stack(regions)
        order = np.argsort(regions[:, 0])
        regions, cell_of = regions[order], cell_of[order]
        slopes, intercepts, patterns = slopes[order], intercepts[order], patterns[order]
        sizes, points = regions[:, 1] - regions[:, 0], regions.mean(axis=1, keepdims=True)
    else:
        sizes = shapely.area(regions)
        points = shapely.get_coordinates(shapely.point_on_surface(regions))
    piece_of = _pieces(regions, slopes, intercepts, (lo + hi) / 2, diam, tol)
    if net.out_size == "scalar":
        slopes, intercepts = slopes[:, 0], intercepts[:, 0]
    return NetworkCovers(
        dim=dim,
        n_regions=len(cell_of),
        n_patterns=len(np.unique(patterns, axis=0)),
        n_pieces=int(piece_of.max()) + 1,
        layer_regions=tuple(layer_regions),
        regions=regions,
        sizes=np.asarray(sizes),
        points=points,
        patterns=patterns,
        slopes=slopes,
        intercepts=intercepts,
        piece_of=piece_of,
        kinks=tuple(layer_kinks),
        n_params=net.n_params,
    )


def _refine(V, A, c, W, b, kinks, tol, diam, chords):
    """Split one convex cell (vertices V, layer input ``A x + c``) by the kink lines of layer W, b.

    Returns the pieces as (vertices, per-neuron code) and the pre-activation map ``G x + T``;
    appends (neuron, chord) for every line that crosses the cell to ``chords``.
    """
    G, T = W @ A, W @ c + b  # pre-activations z = G x + T on the cell
    n, nk = len(T), len(kinks)
    # z sums terms of size |W||h| + |b|: a crossing smaller than tol times that is round-off
    noise = np.abs(W) @ np.abs(V @ A.T + c).max(axis=0) + np.abs(b)
    tz = np.repeat(tol * (diam * np.linalg.norm(G, axis=1) + noise), nk)
    D = ((V @ G.T + T)[:, :, None] - kinks).reshape(len(V), n * nk)  # signed, per (neuron, kink)
    crossing = np.flatnonzero((D.max(axis=0) > tz) & (D.min(axis=0) < -tz))
    # a line that does not cross: the cell lies on the side of its farthest vertex
    side = np.where(D[np.abs(D).argmax(axis=0), np.arange(n * nk)] > 0, 1, -1).astype(np.int8)
    if len(crossing):
        chords += zip(
            crossing // nk, _chords(V, D[:, crossing], tz[crossing], G[crossing // nk]), strict=True
        )
    pieces = [(V, side)]
    for line in crossing:
        g, t, tzl = G[line // nk], T[line // nk] - kinks[line % nk], tz[line]
        out = []
        for P, s in pieces:
            d = P @ g + t
            if d.max() > tzl and d.min() < -tzl:
                for Q, sign in zip(_split(P, d, tzl), (-1, 1), strict=True):
                    s2 = s.copy()
                    s2[line] = sign
                    out.append((Q, s2))
            else:
                s[line] = 1 if d[np.abs(d).argmax()] > 0 else -1  # s belongs to this piece only
                out.append((P, s))
        pieces = out
    # code = number of kink values below the pre-activation (kinks are sorted)
    return [(P, (s.reshape(n, nk) > 0).sum(axis=1)) for P, s in pieces], G, T


def _split(V, d, tz):
    """The (negative, positive) parts of a convex cell cut by the line where the affine d is 0."""
    if V.shape[1] == 1:  # an interval [a, b]
        x = V[0, 0] + (V[1, 0] - V[0, 0]) * d[0] / (d[0] - d[1])
        left, right = np.array([[V[0, 0]], [x]]), np.array([[x], [V[1, 0]]])
        return (left, right) if d[0] < 0 else (right, left)
    dn, Vn = np.roll(d, -1), np.roll(V, -1, axis=0)
    cross = ((d > tz) & (dn < -tz)) | ((d < -tz) & (dn > tz))
    P = V + (d / np.where(cross, d - dn, 1.0))[:, None] * (Vn - V)
    # walk the boundary: vertex i, then the crossing point on edge (i, i+1) if there is one;
    # both parts share the points on the line, so neighbours have identical vertices there
    seq = np.stack([V, P], axis=1).reshape(-1, 2)
    sd = np.stack([d, np.zeros_like(d)], axis=1).reshape(-1)
    keep = np.stack([np.ones_like(cross), cross], axis=1).reshape(-1)
    seq, sd = seq[keep], sd[keep]
    return seq[sd <= tz], seq[sd >= -tz]


def _chords(V, D, tz, G):
    """End points ``(m, 2, dim)`` of the m lines (signed values D ``(k, m)``) across a convex cell."""
    Dn, Vn = np.roll(D, -1, axis=0), np.roll(V, -1, axis=0)
    on = np.abs(D) <= tz
    cross = ((D > tz) & (Dn < -tz)) | ((D < -tz) & (Dn > tz))
    t = np.where(cross, D / np.where(cross, D - Dn, 1.0), 0.0)  # 0: a vertex on the line
    P = V[:, None, :] + t[..., None] * (Vn - V)[:, None, :]  # (k, m, dim)
    u = np.ones((len(G), 1)) if V.shape[1] == 1 else np.stack([-G[:, 1], G[:, 0]], axis=1)
    proj = np.einsum("kmd,md->km", P, u)
    valid = on | cross
    first = np.where(valid, proj, np.inf).argmin(axis=0)
    last = np.where(valid, proj, -np.inf).argmax(axis=0)
    m = np.arange(D.shape[1])
    return np.stack([P[first, m], P[last, m]], axis=1)


def _collect_kinks(chords, dim, shape):
    """One layer's kinks: 1D (points, neuron ids) sorted; 2D [(neuron, lines in the domain)]."""
    ids = np.array([j for j, _ in chords], dtype=int)
    if dim == 1:
        pts = np.array([seg[0, 0] for _, seg in chords], dtype=float)
        order = np.argsort(pts, kind="stable")
        return pts[order], ids[order]
    lines = shapely.linestrings(np.stack([seg for _, seg in chords])) if chords else []
    out = []
    for j in np.unique(ids):
        clipped = shapely.get_parts(shape.intersection(shapely.multilinestrings(lines[ids == j])))
        parts = [p for p in clipped if p.geom_type == "LineString" and p.length > 0]
        if parts:
            out.append((int(j), shapely.line_merge(shapely.multilinestrings(parts))))
    return out


def _pieces(regions, slopes, intercepts, center, diam, tol) -> np.ndarray:
    """Piece index per region: connected components of 'adjacent and the same output map'."""
    R = len(slopes)
    # compare maps by their gradient over the domain and their value at its centre
    value = intercepts + slopes @ center
    scale = np.max(np.linalg.norm(slopes, axis=2) * diam + np.abs(value)) + np.finfo(float).tiny

    def same(i, j):
        err = np.linalg.norm(slopes[i] - slopes[j], axis=2) * diam + np.abs(value[i] - value[j])
        return err.max(axis=1) <= tol * scale

    if isinstance(regions, np.ndarray):  # 1D: sorted intervals, neighbours share an end point
        i = np.arange(R - 1)
        i = i[same(i, i + 1)]
        j = i + 1
    else:
        # cells next to each other may differ by round-off along a shared edge: look within eps
        eps = 1e-9 * diam
        i, j = shapely.STRtree(regions).query(regions, predicate="dwithin", distance=eps)
        i, j = i[i < j], j[i < j]
        keep = same(i, j)
        i, j = i[keep], j[keep]
        arr = np.asarray(regions, dtype=object)
        edge = shapely.intersection(shapely.boundary(arr[i]), shapely.buffer(arr[j], eps))
        keep = shapely.length(edge) > 1e3 * eps  # an edge of positive length, not a corner
        i, j = i[keep], j[keep]
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(R, R))
    return connected_components(graph, directed=False)[1]


# ---------------------------------------------------------------------- bounds


def _check_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def shallow_bound(n_hyperplanes: int, in_dim: int) -> int:
    """Most regions n hyperplanes cut R^d into: sum_{j<=d} C(n, j) (Zaslavsky; general position)."""
    _check_int(n_hyperplanes, "n_hyperplanes", 0)
    _check_int(in_dim, "in_dim", 1)
    return sum(math.comb(int(n_hyperplanes), j) for j in range(int(in_dim) + 1))


def deep_bound_1d(widths: Sequence[int], kinks_per_neuron: int = 1) -> int:
    """Most linear regions of a deep network on a line: prod_l (k n_l + 1) (Serra et al. 2018)."""
    _check_int(kinks_per_neuron, "kinks_per_neuron", 1)
    widths = list(widths) if not isinstance(widths, int | np.integer) else None
    if not widths:
        raise ValueError("widths must be a non-empty sequence of positive integers")
    for w in widths:
        _check_int(w, "widths", 1)
    return math.prod(int(kinks_per_neuron) * int(w) + 1 for w in widths)


def region_bound(net: MLP, in_dim: int | None = None) -> int:
    """An upper bound on the activation patterns of ``net`` (and on its regions in a convex domain).

    Every region of layer l - 1 is convex and cut by the k n_l kink hyperplanes of layer l into at
    most ``shallow_bound(k n_l, d)`` pieces, hence the product over layers. Equals
    :func:`deep_bound_1d` for d = 1. ``in_dim`` defaults to ``net.in_size``.
    """
    _check_pl(net)
    d = net.in_size if in_dim is None else in_dim
    _check_int(d, "in_dim", 1)
    k = len(KINKS[net.activation])
    return math.prod(shallow_bound(k * w, d) for w in net.widths)


def tent_map(depth: int) -> MLP:
    """A relu network of ``depth`` hidden layers of width 2 whose map on [0, 1] is the sawtooth with
    2^depth linear pieces: each layer computes relu(z), relu(z - 1/2) and the tent 2 h0 - 4 h1
    (Telgarsky 2016)."""
    _check_int(depth, "depth", 1)
    tent, shift = np.array([[2.0, -4.0]]), np.array([0.0, -0.5])
    weights = [np.ones((2, 1))] + [np.repeat(tent, 2, axis=0)] * (depth - 1) + [tent]
    biases = [shift] * depth + [np.zeros(1)]
    return MLP.from_arrays(weights, biases, "relu")
