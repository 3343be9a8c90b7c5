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

Vector fields (``components = n``) give values ``(n_pts, n)`` and gradients ``(n_pts, n, dim)``;
plots show their magnitude or one component. Derived quantities (stress, von Mises, ...) come from a
form's ``derived(x, u, du, params)`` at one point, vmapped over the sampled points.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
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


_RESERVED = ("u", "grad_u", "element", "cell")  # names written by write_vtu itself


def _check_derived(u: Field, derived, params) -> dict[str, tuple[int, ...]]:
    """Validate ``derived`` (a form) against ``u`` and return ``{name: shape}`` of its quantities
    at one point; ``{}`` when ``derived`` is None. Only the one-point function is traced
    (abstractly, ``jax.eval_shape``): nothing is compiled or evaluated."""
    if derived is None:
        if params is not None:
            raise ValueError(
                "params is given but derived is None: params are passed to derived(x, u, du, params)"
            )
        return {}
    if isinstance(derived, type) or not callable(getattr(derived, "derived", None)):
        raise TypeError(
            "derived must be a form with a derived(x, u, du, params) method (an instance, e.g. "
            f"nmm.Elasticity(E=..., nu=...)), got {derived!r}"
        )
    name = type(derived).__name__
    n = u.space.components
    comps = getattr(derived, "components", None)
    if isinstance(comps, int) and comps != n:
        raise ValueError(
            f"derived={name} is a form for {comps}-component fields, but u has {n} "
            f"component{'s' if n > 1 else ''}"
        )
    dtype = u.coeffs.dtype
    vs, dim = u.value_shape, u.space.dim
    out = jax.eval_shape(
        lambda x, v, g: derived.derived(x, v, g, params),
        jax.ShapeDtypeStruct((dim,), dtype),
        jax.ShapeDtypeStruct(vs, dtype),
        jax.ShapeDtypeStruct((*vs, dim), dtype),
    )
    if not isinstance(out, Mapping):
        raise TypeError(
            f"derived={name}: derived(x, u, du, params) must return a dict of named quantities, "
            f"got {type(out).__name__}"
        )
    if not out:
        raise ValueError(f"derived={name} defines no derived quantities (derived() returns {{}})")
    shapes = {}
    for key, val in out.items():
        if not isinstance(key, str) or key in _RESERVED:
            raise ValueError(
                f"derived={name}: quantity name {key!r} must be a str other than {_RESERVED}"
            )
        if not isinstance(val, jax.ShapeDtypeStruct):
            raise TypeError(f"derived={name}: quantity {key!r} is not an array, got {val!r}")
        shapes[key] = tuple(val.shape)
    return shapes


@eqx.filter_jit
def _point_data(u: Field, form, params, elems, points):
    """Values, gradients and (``form`` not None) the form's derived quantities at points known to
    lie in ``elems``; the derived quantities are the one-point function vmapped over points."""
    val, grad = u.in_elements(elems, points)
    if form is None:
        return val, grad, {}
    out = jax.vmap(lambda x, v, g: form.derived(x, v, g, params))(points, val, grad)
    return val, grad, dict(out)


def _evaluate(u: Field, elems: np.ndarray, points: np.ndarray, derived=None, params=None):
    """Values ``(m, *value_shape)``, gradients ``(m, *value_shape, dim)`` and derived quantities
    ``{name: (m, *shape)}`` in known elements, in fixed-size chunks (one compilation per field
    shape; the last chunk is padded)."""
    m = len(points)
    dtype = u.coeffs.dtype
    if m == 0:  # shapes from one point: Field.in_elements cannot reshape an empty gather
        one = eqx.filter_eval_shape(
            _point_data, u, derived, params, np.zeros(1, np.int64), np.zeros((1, u.space.dim))
        )
        return jax.tree_util.tree_map(lambda a: np.zeros((0, *a.shape[1:]), a.dtype), one)
    if m <= _CHUNK:
        out = _point_data(u, derived, params, elems, np.asarray(points, dtype=dtype))
        return jax.tree_util.tree_map(np.asarray, out)
    parts = []
    for start in range(0, m, _CHUNK):
        e = elems[start : start + _CHUNK]
        p = points[start : start + _CHUNK]
        keep = len(e)
        if keep < _CHUNK:
            e = np.concatenate([e, np.full(_CHUNK - keep, e[0])])
            p = np.concatenate([p, np.repeat(p[:1], _CHUNK - keep, axis=0)])
        out = _point_data(u, derived, params, e, np.asarray(p, dtype=dtype))
        parts.append(jax.tree_util.tree_map(lambda a, k=keep: np.asarray(a)[:k], out))
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *parts)


def sample(u: Field, refine: int = 1, derived=None, params=None) -> dict:
    """The field on the refined integration simplices, vertices duplicated per simplex.

    Args:
        u: the field (scalar or vector).
        refine: uniform refinement level of each integration simplex (4**refine triangles,
            2**refine segments).
        derived: a form (e.g. ``nmm.Elasticity``) whose ``derived(x, u, du, params)`` is evaluated
            at every point; ``None`` (default): none.
        params: passed to ``derived`` (only with ``derived``).

    Returns:
        A dict with ``points (n, dim)``, ``cells (n_cells, dim + 1)``, ``values (n,)`` (vector
        fields ``(n, components)``), ``grads (n, dim)`` (``(n, components, dim)``),
        ``point_element (n,)``, ``element (n_cells,)`` (manifold element of each cell), ``cell
        (n_cells,)`` (mathematical cover cell of each cell) and ``derived``: ``{name: (n,
        *shape)}`` (empty without ``derived``).
    """
    _check_field(u)
    refine = _check_refine(refine)
    _check_derived(u, derived, params)
    pts, cells, point_elem, cell_elem = _sample(u, refine)
    vals, grads, extra = _evaluate(u, point_elem, pts, derived, params)
    elem_cell = np.asarray(u.space.host.topology.elem_cell, dtype=np.int64)
    return {
        "points": pts,
        "cells": cells,
        "values": vals,
        "grads": grads,
        "point_element": point_elem,
        "element": cell_elem,
        "cell": elem_cell[cell_elem],
        "derived": extra,
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


class _Scalar(NamedTuple):
    """What a plot shows: the field (``quantity`` None) or a derived quantity, reduced to a
    scalar by ``component`` (None: already scalar; an index; ``"magnitude"``)."""

    quantity: str | None
    component: int | str | None
    label: str

    def of(self, values: np.ndarray, extra: dict) -> np.ndarray:
        a = values if self.quantity is None else extra[self.quantity]
        if self.component is None:
            return a
        if self.component == "magnitude":
            return np.sqrt(np.sum(a.reshape(len(a), -1) ** 2, axis=1))
        return a[:, self.component]


def _check_component(component, n: int, what: str):
    """``component`` for a quantity with ``n`` components: None, ``"magnitude"`` or an index."""
    if component is None or (isinstance(component, str) and component == "magnitude"):
        return component
    if isinstance(component, int | np.integer) and not isinstance(component, bool):
        if 0 <= component < n:
            return int(component)
        raise ValueError(
            f"component={component!r} does not exist: {what} has {n} component"
            f"{'s' if n > 1 else ''} (0 .. {n - 1})"
        )
    err = ValueError if isinstance(component, str) else TypeError
    raise err(f"component must be None, 'magnitude' or an integer index, got {component!r}")


def _selection(u: Field, component, derived, quantity, params) -> _Scalar:
    shapes = _check_derived(u, derived, params)
    if derived is None:
        if quantity is not None:
            raise ValueError(
                f"quantity={quantity!r} needs derived=form (the form whose derived() gives it)"
            )
        n = u.space.components
        c = _check_component(component, n, "u")
        if c == "magnitude" or (c is None and n > 1):
            return _Scalar(None, "magnitude", "|u|")
        if n == 1:  # component None or 0 of a scalar field: the field itself
            return _Scalar(None, None, "u")
        return _Scalar(None, c, f"u[{c}]")
    if not isinstance(quantity, str) or quantity not in shapes:
        raise ValueError(
            f"quantity must be one of {sorted(shapes)} (the quantities of derived="
            f"{type(derived).__name__}), got {quantity!r}"
        )
    shape = shapes[quantity]
    if shape == ():
        if component is not None:
            raise ValueError(f"component={component!r}: {quantity!r} is a scalar quantity")
        return _Scalar(quantity, None, quantity)
    if len(shape) != 1:
        raise ValueError(f"quantity={quantity!r} has shape {shape}: only scalars and vectors plot")
    c = _check_component(component, shape[0], repr(quantity))
    if c is None:
        raise ValueError(
            f"component must be given for quantity={quantity!r} of shape {shape}: an index in "
            f"0 .. {shape[0] - 1} or 'magnitude'"
        )
    return _Scalar(quantity, c, f"|{quantity}|" if c == "magnitude" else f"{quantity}[{c}]")


def plot(
    u: Field,
    ax=None,
    refine: int = 2,
    cmap: str = "viridis",
    show_elements: bool = True,
    title: str | None = None,
    component: int | str | None = None,
    derived=None,
    quantity: str | None = None,
    params=None,
):
    """Plot a field (or a derived quantity) and return the matplotlib ``Axes``.

    2D: every integration triangle is split into ``4**refine`` triangles, evaluated in its own
    manifold element and drawn with Gouraud shading (so jumps across cracks stay sharp); thin lines
    outline the manifold elements (``show_elements``), thick lines the domain boundary, red lines
    the cracks; a colour bar labelled with what is shown (``u``, ``|u|``, ``u[1]``, ``von_mises``,
    ``stress[2]``) and equal aspect. 1D: one line per element (breaks at cracks), element ends as
    faint ticks, cracks as dashed red lines.

    Args:
        u: the field.
        ax: an Axes to draw into; by default a new Agg figure (no pyplot, nothing shown). Save it
            with ``ax.figure.savefig(path)``.
        refine: uniform refinement level of each integration simplex (1D: 2**refine pieces).
        cmap: a matplotlib colour map name (2D).
        show_elements: draw the manifold element outlines.
        title: optional axes title.
        component: for a vector field (or a vector ``quantity``), which scalar to show: an index,
            or ``"magnitude"`` (the Euclidean norm). ``None`` (default): the field itself if
            scalar, ``|u|`` for a vector field; a vector ``quantity`` needs it given.
        derived: a form with ``derived(x, u, du, params)`` (e.g. ``nmm.Elasticity``): plot its
            ``quantity`` instead of the field.
        quantity: the name of a derived quantity (``"von_mises"``; needs ``derived``).
        params: passed to ``derived``.

    Raises:
        TypeError / ValueError: before anything is evaluated, for a bad ``refine``,
            ``component``, ``derived`` or ``quantity``.
    """
    _check_field(u)
    refine = _check_refine(refine)
    what = _selection(u, component, derived, quantity, params)
    if ax is None:
        ax = _new_axes()
    sp = u.space
    dom = sp.domain
    if sp.dim == 1:
        _plot_1d(u, ax, refine, show_elements, what, derived, params)
    else:
        _plot_2d(u, ax, refine, cmap, show_elements, dom, what, derived, params)
    if title is not None:
        ax.set_title(title)
    return ax


def _plot_1d(u: Field, ax, refine: int, show_elements: bool, what: _Scalar, derived, params):
    from matplotlib.collections import LineCollection

    topo = u.space.host.topology
    simp = np.asarray(topo.simplices)[:, :, 0]
    selem = np.asarray(topo.simplex_elem, dtype=np.int64)
    n = 8 * 2**refine + 1
    t = np.linspace(0.0, 1.0, n)
    x = simp[:, :1] + t[None, :] * (simp[:, 1:] - simp[:, :1])  # (n_s, n)
    vals, _, extra = _evaluate(u, np.repeat(selem, n), x.reshape(-1, 1), derived, params)
    y = what.of(vals, extra).reshape(x.shape)
    lines = np.stack([x, y], axis=-1)
    ax.add_collection(LineCollection(lines, colors="C0", linewidths=1.8, label=what.label))
    a, b = u.space.domain.outer
    if show_elements:  # element ends as ticks along the bottom of the axes
        ends = np.unique(simp.reshape(-1))
        ax.vlines(ends, 0.0, 0.04, transform=ax.get_xaxis_transform(), colors="0.4", lw=0.8)
    for c in u.space.domain.cracks:
        ax.axvline(c, color="tab:red", ls="--", lw=1.0)
    ax.set_xlim(a - 0.02 * (b - a), b + 0.02 * (b - a))
    ax.autoscale_view(scalex=False)
    ax.set_xlabel("x")
    ax.set_ylabel(what.label)


def _plot_2d(
    u: Field, ax, refine: int, cmap: str, show_elements: bool, dom, what: _Scalar, derived, params
):
    from matplotlib.collections import LineCollection
    from matplotlib.tri import Triangulation

    s = sample(u, refine, derived, params)
    pts, vals = s["points"], what.of(s["values"], s["derived"])
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
    ax.figure.colorbar(img, ax=ax, shrink=0.9, label=what.label)
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


def _vtk_array(a: np.ndarray) -> np.ndarray:
    """Point data ``(n_pts, *shape)`` laid out as ParaView reads it: scalars as they are, vectors
    of up to 3 components zero padded to 3 (shown as vectors), ``(a, b)`` tensors with a, b <= 3
    zero padded to 3 × 3 and stored row-major as 9 components (shown as tensors); anything else
    flattened per point."""
    a = np.asarray(a, dtype=float)
    shape = a.shape[1:]
    if len(shape) == 0:
        return a
    if len(shape) <= 2 and max(shape) <= 3:
        out = np.zeros((len(a), *(3,) * len(shape)))
        out[(slice(None), *(slice(0, k) for k in shape))] = a
        return out.reshape(len(a), -1)
    return a.reshape(len(a), -1)


def write_vtu(u: Field, path, refine: int = 1, derived=None, params=None) -> Path:
    """Write a field to a VTK unstructured-grid file (``.vtu``) that ParaView opens.

    Cells are the integration triangles (1D: line cells) refined ``refine`` times (4**refine
    triangles, 2**refine segments each), with their points duplicated per integration simplex so
    that jumps across cracks are kept. Points are written in 3D (zero padded). Point data:

    * ``"u"``: scalar fields as a scalar; vector fields (up to 3 components) as a 3-component
      vector, zero padded (a 2D displacement (u_x, u_y, 0): ParaView's "Warp By Vector" works).
    * ``"grad_u"``: ∇u, 3 components zero padded (scalar fields); for vector fields the tensor
      ∂u_i/∂x_j padded to 3 × 3 and stored row-major (9 components, ParaView's tensor layout).
    * with ``derived``: every quantity of ``derived.derived(x, u, du, params)`` under its name;
      scalars as scalars (``"von_mises"``), vectors of 3 or more components as they are (the
      elasticity ``"stress"`` is ``[s_xx, s_yy, s_xy]``, 3 components), shorter vectors and
      small tensors padded as above.

    Cell data: ``"element"`` (manifold element id) and ``"cell"`` (mathematical cover cell id).

    Args:
        u: the field (scalar or vector).
        path: file name ending in ``.vtu``.
        refine: uniform refinement level of each integration simplex.
        derived: a form with ``derived(x, u, du, params)`` (e.g. ``nmm.Elasticity``) whose
            quantities are written as point data; ``None`` (default): none.
        params: passed to ``derived``.

    Returns:
        The path written, as a ``pathlib.Path``.

    Raises:
        ValueError: ``path`` does not end in ``.vtu``, its directory does not exist, or it is a
            directory; ``refine`` is not an integer in 0 .. 6; ``derived`` does not match the field
            or defines no quantities.
        TypeError: ``u`` is not a field; ``derived`` has no ``derived`` method.
    """
    import meshio

    _check_field(u)
    p = _check_path(path)
    s = sample(u, _check_refine(refine), derived, params)
    dim = u.space.dim
    pts = np.zeros((len(s["points"]), 3))
    pts[:, :dim] = s["points"]
    point_data = {"u": _vtk_array(s["values"]), "grad_u": _vtk_array(s["grads"])}
    point_data.update({k: _vtk_array(v) for k, v in s["derived"].items()})
    mesh = meshio.Mesh(
        pts,
        [("line" if dim == 1 else "triangle", s["cells"])],
        point_data=point_data,
        cell_data={"element": [s["element"]], "cell": [s["cell"]]},
    )
    try:
        meshio.write(p, mesh, file_format="vtu")
    except OSError as exc:
        raise ValueError(f"path {str(path)!r} cannot be written: {exc}") from exc
    return p
