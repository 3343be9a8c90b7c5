"""Looking at fields: matplotlib plots and VTU files for ParaView.

Both are drawn on the integration triangulation of the manifold elements (``topology.simplices``),
each triangle refined uniformly and evaluated with its own element's basis (``Field.in_elements``,
no point location). Vertices are duplicated per triangle on purpose: a field that jumps across a
crack keeps both face values, so the jump shows in the plot and survives in the file.

Why matplotlib and meshio: drawing Gouraud-shaded triangulations and colour bars, and writing a
correct VTK XML file (binary, compressed, the cell-type and byte-order details ParaView expects),
are solved problems; both libraries are widely used, well kept and tested against their consumers,
and a hand-written writer or renderer would only add bugs. Only ``matplotlib.figure.Figure`` with
the Agg canvas is used: no pyplot, no global backend switch, no rcParams changes, nothing that
needs a display.
"""

from __future__ import annotations

import os
from pathlib import Path

import equinox as eqx
import numpy as np

from .field import Field
from .topology import rings

_CHUNK = 1 << 15  # points per evaluation call: bounds memory for fine meshes / high degrees


# ---------------------------------------------------------------------------------- sampling


def _check_field(u) -> None:
    if not isinstance(u, Field):
        raise TypeError(f"u must be an nmm.Field, got {type(u).__name__}")


def _check_refine(refine, name: str = "refine") -> int:
    if isinstance(refine, bool) or not isinstance(refine, int | np.integer) or refine < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {refine!r}")
    if refine > 6:
        raise ValueError(f"{name}={refine} would split every triangle into 4**{refine} pieces")
    return int(refine)


def _reference_triangles(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform subdivision of the reference triangle into n² triangles.

    Returns reference coordinates ``(n_pts, 2)`` (the points (i/n, j/n) with i + j <= n) and
    counter-clockwise triangles ``(n², 3)`` indexing them.
    """
    ij = [(i, j) for j in range(n + 1) for i in range(n + 1 - j)]
    index = {p: k for k, p in enumerate(ij)}
    tris = []
    for j in range(n):
        for i in range(n - j):
            tris.append((index[i, j], index[i + 1, j], index[i, j + 1]))
            if i + j < n - 1:
                tris.append((index[i + 1, j], index[i + 1, j + 1], index[i, j + 1]))
    return np.array(ij, dtype=float) / n, np.array(tris, dtype=np.int64)


def _sample(u: Field, refine: int):
    """Points, connectivity and per-cell element ids of the refined integration simplices.

    Returns ``points (n_pts, dim)``, ``cells (n_cells, dim + 1)``, ``point_elem (n_pts,)`` and
    ``cell_elem (n_cells,)``; every simplex owns its points (nothing is shared across simplices).
    """
    topo = u.space.host.topology
    simp = np.asarray(topo.simplices, dtype=float)  # (n_s, dim + 1, dim)
    selem = np.asarray(topo.simplex_elem, dtype=np.int64)
    n_s = len(simp)
    if u.space.dim == 1:
        n = 2**refine
        t = np.linspace(0.0, 1.0, n + 1)
        x0, x1 = simp[:, 0, 0], simp[:, 1, 0]
        pts = (x0[:, None] + t[None, :] * (x1 - x0)[:, None]).reshape(-1, 1)
        local = np.stack([np.arange(n), np.arange(1, n + 1)], axis=1)
        n_loc = n + 1
    else:
        ref, local = _reference_triangles(2**refine)
        v0, v1, v2 = simp[:, 0], simp[:, 1], simp[:, 2]
        e1, e2 = v1 - v0, v2 - v0
        pts = v0[:, None] + ref[None, :, :1] * e1[:, None] + ref[None, :, 1:] * e2[:, None]
        pts = pts.reshape(-1, 2)
        # counter-clockwise cells whatever the orientation of the integration triangle
        cw = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] < 0
        n_loc = len(ref)
    cells = (np.arange(n_s)[:, None, None] * n_loc + local[None]).copy()
    if u.space.dim == 2:
        cells[cw] = cells[cw][:, :, ::-1]
    cells = cells.reshape(-1, local.shape[1])
    point_elem = np.repeat(selem, n_loc)
    cell_elem = np.repeat(selem, len(local))
    return pts, cells, point_elem, cell_elem


@eqx.filter_jit
def _in_elements(u: Field, elems, points):
    return u.in_elements(elems, points)


def _evaluate(u: Field, elems: np.ndarray, points: np.ndarray):
    """Values ``(m,)`` and gradients ``(m, dim)`` in known elements, in fixed-size chunks (one
    compilation per field shape; the last chunk is padded)."""
    m = len(points)
    if m == 0:
        return np.zeros(0), np.zeros((0, u.space.dim))
    dtype = u.coeffs.dtype
    if m <= _CHUNK:
        val, grad = _in_elements(u, elems, np.asarray(points, dtype=dtype))
        return np.asarray(val), np.asarray(grad)
    vals, grads = [], []
    for start in range(0, m, _CHUNK):
        e = elems[start : start + _CHUNK]
        p = points[start : start + _CHUNK]
        pad = _CHUNK - len(e)
        if pad:
            e = np.concatenate([e, np.full(pad, e[0])])
            p = np.concatenate([p, np.repeat(p[:1], pad, axis=0)])
        val, grad = _in_elements(u, e, np.asarray(p, dtype=dtype))
        vals.append(np.asarray(val)[: _CHUNK - pad])
        grads.append(np.asarray(grad)[: _CHUNK - pad])
    return np.concatenate(vals), np.concatenate(grads)


def sample(u: Field, refine: int = 1) -> dict[str, np.ndarray]:
    """The field on the refined integration simplices, vertices duplicated per simplex.

    Returns a dict with ``points (n, dim)``, ``cells (n_cells, dim + 1)``, ``values (n,)``,
    ``grads (n, dim)``, ``point_element (n,)``, ``element (n_cells,)`` (manifold element of each
    cell) and ``cell (n_cells,)`` (mathematical cover cell of each cell).
    """
    _check_field(u)
    refine = _check_refine(refine)
    pts, cells, point_elem, cell_elem = _sample(u, refine)
    vals, grads = _evaluate(u, point_elem, pts)
    elem_cell = np.asarray(u.space.host.topology.elem_cell, dtype=np.int64)
    return {
        "points": pts,
        "cells": cells,
        "values": vals,
        "grads": grads,
        "point_element": point_elem,
        "element": cell_elem,
        "cell": elem_cell[cell_elem],
    }


# ---------------------------------------------------------------------------------- plots


def _new_axes():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    return fig.add_subplot()


def _closed(ring: np.ndarray) -> np.ndarray:
    return np.vstack([ring, ring[:1]])


def plot(
    u: Field,
    ax=None,
    refine: int = 2,
    cmap: str = "viridis",
    show_elements: bool = True,
    title: str | None = None,
):
    """Plot a field and return the matplotlib ``Axes``.

    2D: every integration triangle is split into ``4**refine`` triangles, evaluated in its own
    manifold element and drawn with Gouraud shading (so jumps across cracks stay sharp); thin lines
    outline the manifold elements (``show_elements``), thick lines the domain boundary, red lines
    the cracks; a colour bar and equal aspect. 1D: one line per element (breaks at cracks), element
    ends as faint ticks, cracks as dashed red lines.

    Args:
        u: the field.
        ax: an Axes to draw into; by default a new Agg figure (no pyplot, nothing shown). Save it
            with ``ax.figure.savefig(path)``.
        refine: uniform refinement level of each integration simplex (1D: 2**refine pieces).
        cmap: a matplotlib colour map name (2D).
        show_elements: draw the manifold element outlines.
        title: optional axes title.
    """
    _check_field(u)
    refine = _check_refine(refine)
    if ax is None:
        ax = _new_axes()
    sp = u.space
    dom = sp.domain
    if sp.dim == 1:
        _plot_1d(u, ax, refine, show_elements)
    else:
        _plot_2d(u, ax, refine, cmap, show_elements, dom)
    if title is not None:
        ax.set_title(title)
    return ax


def _plot_1d(u: Field, ax, refine: int, show_elements: bool) -> None:
    from matplotlib.collections import LineCollection

    topo = u.space.host.topology
    simp = np.asarray(topo.simplices)[:, :, 0]
    selem = np.asarray(topo.simplex_elem, dtype=np.int64)
    n = 8 * 2**refine + 1
    t = np.linspace(0.0, 1.0, n)
    x = simp[:, :1] + t[None, :] * (simp[:, 1:] - simp[:, :1])  # (n_s, n)
    vals, _ = _evaluate(u, np.repeat(selem, n), x.reshape(-1, 1))
    lines = np.stack([x, vals.reshape(x.shape)], axis=-1)
    ax.add_collection(LineCollection(lines, colors="C0", linewidths=1.8, label="u"))
    a, b = u.space.domain.outer
    if show_elements:  # element ends as ticks along the bottom of the axes
        ends = np.unique(simp.reshape(-1))
        ax.vlines(ends, 0.0, 0.04, transform=ax.get_xaxis_transform(), colors="0.4", lw=0.8)
    for c in u.space.domain.cracks:
        ax.axvline(c, color="tab:red", ls="--", lw=1.0)
    ax.set_xlim(a - 0.02 * (b - a), b + 0.02 * (b - a))
    ax.autoscale_view(scalex=False)
    ax.set_xlabel("x")
    ax.set_ylabel("u")


def _plot_2d(u: Field, ax, refine: int, cmap: str, show_elements: bool, dom) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.tri import Triangulation

    s = sample(u, refine)
    pts, vals = s["points"], s["values"]
    tri = Triangulation(pts[:, 0], pts[:, 1], s["cells"])
    img = ax.tripcolor(tri, vals, shading="gouraud", cmap=cmap, rasterized=True)
    if show_elements:
        outlines = [r for g in u.space.host.topology.elem_geom for r in rings(g)]
        ax.add_collection(LineCollection(outlines, colors="k", linewidths=0.25, alpha=0.35))
    boundary = [_closed(np.asarray(dom.outer))] + [_closed(np.asarray(h)) for h in dom.holes]
    ax.add_collection(LineCollection(boundary, colors="k", linewidths=1.2))
    cracks = dom.crack_lines
    if cracks is not None:
        lines = [np.asarray(g.coords) for g in cracks.geoms]
        ax.add_collection(LineCollection(lines, colors="tab:red", linewidths=1.0))
    ax.figure.colorbar(img, ax=ax, shrink=0.9, label="u")
    lo, hi = dom.bounds
    pad = 0.02 * float(np.max(hi - lo))
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")


# ---------------------------------------------------------------------------------- VTU


def _check_path(path) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if p.suffix.lower() != ".vtu":
        raise ValueError(f"path {str(path)!r} must end in .vtu (the VTK unstructured-grid format)")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"path {str(path)!r}: directory {str(parent)!r} does not exist")
    if p.is_dir():
        raise ValueError(f"path {str(path)!r} is a directory")
    return p


def write_vtu(u: Field, path, refine: int = 1) -> Path:
    """Write a field to a VTK unstructured-grid file (``.vtu``) that ParaView opens.

    Cells are the integration triangles (1D: line cells) refined ``refine`` times (4**refine
    triangles, 2**refine segments each), with their points duplicated per integration simplex so
    that jumps across cracks are kept. Point data: ``"u"`` and ``"grad_u"`` (3 components, zero
    padded, as ParaView expects vectors). Cell data: ``"element"`` (manifold element id) and
    ``"cell"`` (mathematical cover cell id). Points are written in 3D (zero padded).

    Returns:
        The path written, as a ``pathlib.Path``.

    Raises:
        ValueError: ``path`` does not end in ``.vtu``, its directory does not exist, or it is a
            directory.
    """
    import meshio

    _check_field(u)
    p = _check_path(path)
    s = sample(u, _check_refine(refine))
    dim = u.space.dim
    pts = np.zeros((len(s["points"]), 3))
    pts[:, :dim] = s["points"]
    grad = np.zeros((len(s["points"]), 3))
    grad[:, :dim] = s["grads"]
    mesh = meshio.Mesh(
        pts,
        [("line" if dim == 1 else "triangle", s["cells"])],
        point_data={"u": np.asarray(s["values"], dtype=float), "grad_u": grad},
        cell_data={"element": [s["element"]], "cell": [s["cell"]]},
    )
    try:
        meshio.write(p, mesh, file_format="vtu")
    except OSError as exc:
        raise ValueError(f"path {str(path)!r} cannot be written: {exc}") from exc
    return p
