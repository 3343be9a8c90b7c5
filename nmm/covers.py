"""Mathematical covers: patches (node stars) with partition-of-unity weights.

A mathematical cover never follows the domain: it covers a box around it. Its cells carry the PU
weights: barycentric hats on triangles (``"triangle"``), bilinear hats on axis-aligned rectangles
(``"quad"``), linear hats on intervals (``"interval"``). The patch of node i is the union of the cells
around i (its star); its weight is the hat of node i, so the weights sum to one everywhere.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from . import arrays
from .checks import check_size, positive_number, real_array
from .geometry import Domain

KINDS = ("interval", "triangle", "quad")


@dataclass(frozen=True, eq=False)
class MathCover:
    """A mathematical cover.

    Attributes:
        kind: ``"interval" | "triangle" | "quad"``.
        nodes: ``(n_nodes, dim)`` patch nodes.
        cells: ``(n_cells, n_v)`` node indices of each cell, counter-clockwise in 2D.
        h: the size the cover was built with: the lattice spacing ``h`` of :meth:`triangles` and
            :meth:`grid` (the side of the squares), the largest cell edge of :meth:`intervals`
            and :meth:`from_mesh`.
        diameter: the largest cell edge (``h √2`` for :meth:`triangles`, whose squares are cut by
            a diagonal).
        node_scale: ``(n_nodes,)`` half-width of each patch (max-norm distance from the node to its
            star), the length scale of the patch-local coordinates of cover functions.
        cell_data: ``(n_cells, k)`` per-cell numbers that the weight functions need: the inverse
            barycentric map (triangle, 9 numbers), or lower corner and size (quad 4, interval 2).
    """

    kind: str
    nodes: np.ndarray
    cells: np.ndarray
    h: float
    node_scale: np.ndarray
    cell_data: np.ndarray
    diameter: float

    @property
    def dim(self) -> int:
        return self.nodes.shape[1]

    @property
    def n_vertices(self) -> int:
        """Vertices (hence PU weights) per cell."""
        return self.cells.shape[1]

    # ------------------------------------------------------------------ constructors

    @classmethod
    def intervals(
        cls, dom: Domain, n: int | None = None, nodes=None, *, memory_limit_gib: float | None = None
    ) -> MathCover:
        """1D cover: ``n`` uniform cells on the domain's interval, or the given sorted ``nodes``."""
        _check_dim(dom, 1, "intervals")
        a, b = dom.outer
        if nodes is None:
            if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
                raise ValueError(f"n must be a positive integer, got {n!r}")
            _check_cells("MathCover.intervals", int(n), 1, memory_limit_gib)
            x = np.linspace(a, b, int(n) + 1)
        else:
            x = real_array(nodes, "nodes").reshape(-1)
            if x.size < 2 or not np.all(np.isfinite(x)) or np.any(np.diff(x) <= 0):
                raise ValueError(f"nodes must be finite and strictly increasing, got {x.tolist()}")
            if x[0] > a or x[-1] < b:
                raise ValueError(f"nodes span [{x[0]}, {x[-1]}] which does not cover [{a}, {b}]")
        cells = np.stack([np.arange(len(x) - 1), np.arange(1, len(x))], axis=1)
        return cls._build("interval", x[:, None], cells)

    @classmethod
    def triangles(
        cls, dom: Domain, h: float, offset=(0.0, 0.0), *, memory_limit_gib: float | None = None
    ) -> MathCover:
        """Structured triangle cover of the domain's bounding box, squares of side ``h`` cut by
        their rising diagonal. ``offset`` (fractions of h, in [0, 1)) shifts the lattice.
        ``memory_limit_gib``: refuse covers estimated above it (default: 3/4 of the memory)."""
        x, y = _lattice(dom, h, offset, "triangles", 2, memory_limit_gib)
        return cls._triangulate(x, y, float(h))

    @classmethod
    def grid(
        cls, dom: Domain, h: float, offset=(0.0, 0.0), *, memory_limit_gib: float | None = None
    ) -> MathCover:
        """Rectangular grid cover (bilinear weights) of the bounding box, cells of side ``h``."""
        x, y = _lattice(dom, h, offset, "grid", 1, memory_limit_gib)
        nx, ny = len(x), len(y)
        idx = np.arange(nx * ny).reshape(ny, nx)
        cells = np.stack(
            [
                idx[:-1, :-1].ravel(),
                idx[:-1, 1:].ravel(),
                idx[1:, 1:].ravel(),
                idx[1:, :-1].ravel(),
            ],
            axis=1,
        )
        xx, yy = np.meshgrid(x, y)
        return cls._build("quad", np.stack([xx.ravel(), yy.ravel()], 1), cells, float(h))

    @classmethod
    def from_mesh(cls, points, triangles) -> MathCover:
        """Cover from a user triangulation (points ``(n, 2)``, triangles ``(m, 3)`` indices)."""
        pts = real_array(points, "points")
        tri = np.asarray(triangles)
        if pts.ndim != 2 or pts.shape[1] != 2 or not np.all(np.isfinite(pts)):
            raise ValueError(f"points must be a finite (n, 2) array, got shape {pts.shape}")
        if tri.ndim != 2 or tri.shape[1] != 3 or not np.issubdtype(tri.dtype, np.integer):
            raise ValueError(f"triangles must be an integer (m, 3) array, got {tri.shape} {tri.dtype}")
        if tri.min() < 0 or tri.max() >= len(pts):
            raise ValueError(
                f"triangles index points out of range [0, {len(pts)}): min {tri.min()}, max {tri.max()}"
            )
        p = pts[tri]
        area2 = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (
            p[:, 2, 0] - p[:, 0, 0]
        )
        if np.any(np.abs(area2) <= 1e-14 * np.max(np.abs(area2))):
            bad = int(np.argmin(np.abs(area2)))
            raise ValueError(f"triangles[{bad}] = {tri[bad].tolist()} is degenerate (zero area)")
        tri = np.where(area2[:, None] > 0, tri, tri[:, [0, 2, 1]])
        return cls._build("triangle", pts, tri.astype(np.int64))

    @classmethod
    def graded(
        cls,
        dom: Domain,
        h: float,
        h_min: float,
        around,
        growth: float = 1.3,
        *,
        memory_limit_gib: float | None = None,
    ) -> MathCover:
        """A triangle cover of the domain's bounding box whose lines are ``h_min`` apart at the
        points ``around`` ``(k, 2)`` (crack tips, corners) and ``growth`` times farther apart at
        each step away from them, up to ``h`` (a tensor lattice, squares cut by their rising
        diagonal). The cover still ignores the geometry: only its density follows the points."""
        _check_dim(dom, 2, "graded")
        h, h_min = positive_number(h, "h"), positive_number(h_min, "h_min")
        if h_min > h:
            raise ValueError(f"h_min must be at most h, got h_min={h_min!r} > h={h!r}")
        g = positive_number(growth, "growth")
        if not 1.0 < g <= 3.0:
            raise ValueError(f"growth must be in (1, 3], got {growth!r}")
        pts = real_array(around, "around").reshape(-1, 2)
        if len(pts) == 0 or not np.all(np.isfinite(pts)):
            raise ValueError(f"around must be finite points (k, 2), got {around!r}")
        lo, hi = dom.bounds
        axes = [_graded_axis(lo[k], hi[k], pts[:, k], h, h_min, g) for k in range(2)]
        _check_cells("MathCover.graded", (len(axes[0]) - 1) * (len(axes[1]) - 1), 2, memory_limit_gib)
        return cls._triangulate(*axes)

    @classmethod
    def _triangulate(cls, x, y, h=None) -> MathCover:
        """Squares of the tensor lattice ``x × y``, cut by their rising diagonal."""
        nx, ny = len(x), len(y)
        idx = np.arange(nx * ny).reshape(ny, nx)
        n00, n10 = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
        n01, n11 = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
        cells = np.concatenate([np.stack([n00, n10, n11], 1), np.stack([n00, n11, n01], 1)])
        xx, yy = np.meshgrid(x, y)
        return cls._build("triangle", np.stack([xx.ravel(), yy.ravel()], 1), cells, h)

    @classmethod
    def _build(cls, kind: str, nodes: np.ndarray, cells: np.ndarray, h: float | None = None):
        cs = arrays.corners(nodes, cells)  # n_v arrays (n_cells, dim)
        diameter = float(np.max(arrays.longest_edges(cs)))
        scale = np.zeros(len(nodes))
        # (n_cells, n_v): a vertex's largest coordinate distance to the cell's other vertices,
        # max_j |v_i - v_j| per axis, which the box's corners attain (the same numbers as the
        # pairwise differences, without their (n_cells, n_v, n_v, dim) array)
        lo, hi = arrays.boxes(cs)
        spread = np.empty(cells.shape)
        for k, c in enumerate(cs):  # vertex by vertex (see nmm.arrays)
            far = np.maximum(c - lo, hi - c)
            spread[:, k] = functools.reduce(np.maximum, [far[:, d] for d in range(far.shape[1])])
        np.maximum.at(scale, cells.ravel(), spread.ravel())
        if kind == "triangle":
            data = _barycentric_maps(cs).reshape(len(cells), 9)
        else:
            data = np.concatenate([lo, hi - lo], axis=1)
        h = diameter if h is None else h
        return cls(kind, nodes, cells.astype(np.int64), h, scale, data, diameter)


def _barycentric_maps(cs):
    """Rows ``(a_i, b_i, c_i)`` of the barycentric coordinates λ_i(x) = a_i x + b_i y + c_i of
    triangles with vertices ``cs`` (three ``(n, 2)`` arrays, :func:`nmm.arrays.corners`):
    ``(n, 3, 3)``, the inverse of [[x_0 x_1 x_2], [y_0 y_1 y_2], [1 1 1]] in closed form
    (cofactors over the determinant, twice the signed area), which ``np.linalg.inv`` computed
    matrix by matrix in 0.07 s for 2e5 cells; vertex by vertex (see nmm.arrays)."""
    x = [c[:, 0] for c in cs]
    y = [c[:, 1] for c in cs]
    det = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
    out = np.empty((len(det), 3, 3))
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        out[:, i, 0] = (y[j] - y[k]) / det
        out[:, i, 1] = (x[k] - x[j]) / det
        out[:, i, 2] = (x[j] * y[k] - x[k] * y[j]) / det
    return out


def cell_weights(kind: str, cell_data, x):
    """PU weights (n_v,) and gradients (n_v, dim) of one cell at one point; see MathCover."""
    if kind == "triangle":
        b = cell_data.reshape(3, 3)
        return b[:, :2] @ x + b[:, 2], b[:, :2]
    dim = x.shape[0]
    lo, size = cell_data[:dim], cell_data[dim:]
    s = (x - lo) / size
    if kind == "interval":
        w = jnp.stack([1.0 - s[0], s[0]])
        return w, jnp.stack([-1.0 / size, 1.0 / size])
    sx, sy = s[0], s[1]
    w = jnp.stack([(1 - sx) * (1 - sy), sx * (1 - sy), sx * sy, (1 - sx) * sy])
    dwx = jnp.stack([-(1 - sy), 1 - sy, sy, -sy]) / size[0]
    dwy = jnp.stack([-(1 - sx), -sx, sx, 1 - sx]) / size[1]
    return w, jnp.stack([dwx, dwy], axis=-1)


def _check_dim(dom: Domain, dim: int, name: str) -> None:
    if not isinstance(dom, Domain):
        raise TypeError(f"dom must be an nmm.Domain, got {type(dom).__name__}")
    if dom.dim != dim:
        raise ValueError(f"MathCover.{name} needs a {dim}D domain, got a {dom.dim}D domain")


def _check_cells(what: str, n_cells: int, cells_per_box: int, limit_gib) -> None:
    # nodes, cells, cell data and the cut topology: ~1 KiB per cell measured order of magnitude
    check_size(
        what,
        n_cells * cells_per_box * 1024 / 2**30,
        f"{n_cells * cells_per_box:.3g} cells",
        limit_gib,
        "memory_limit_gib",
    )


def _graded_axis(lo, hi, centres, h, h_min, growth):
    """Lattice lines from below ``lo`` to above ``hi``: spacing h_min at the ``centres``, growing
    geometrically by ``growth`` with the distance from the nearest, at most ``h``."""

    def spacing(x):
        d = np.min(np.abs(centres - x))
        # geometric growth: the k-th line from a centre lies ~ h_min (g^k - 1)/(g - 1) away
        return min(h, h_min + (growth - 1.0) * d)

    # march both ways from next to a centre (not through it: a tip on a cover line is a special
    # case, not the default)
    ref = float(np.clip(np.min(centres), lo, hi)) + 0.37 * h_min
    right, left = [ref], [ref]
    while right[-1] < hi:
        right.append(right[-1] + spacing(right[-1]))
    while left[-1] > lo:
        left.append(left[-1] - spacing(left[-1]))
    return np.concatenate([left[::-1], right[1:]])


def _lattice(dom: Domain, h, offset, name: str, cells_per_box: int, limit_gib):
    _check_dim(dom, 2, name)
    h = positive_number(h, "h")
    lo, hi = dom.bounds
    extent = hi - lo
    if h > extent.max():
        raise ValueError(f"h={h!r} is larger than the domain (bounding box {extent.tolist()})")
    off = real_array(offset, "offset")
    if off.shape != (2,) or not np.all(np.isfinite(off)) or np.any(off < 0) or np.any(off >= 1):
        raise ValueError(f"offset must be two fractions in [0, 1), got {offset!r}")
    start = lo - off * h
    n = np.maximum(1, np.ceil((hi - start) / h - 1e-9)).astype(int)
    _check_cells(f"MathCover.{name}(h={h!r})", int(n[0]) * int(n[1]), cells_per_box, limit_gib)
    axes = [start[k] + h * np.arange(n[k] + 1) for k in range(2)]
    return axes[0], axes[1]
