"""Point location: which manifold element holds a point, jit-compatible.

1D: binary search on the sorted element starts. 2D: a uniform bucket grid (bucket side = cover
size h) lists the candidate elements of each bucket; a whole-cell element holds x when all its PU
weights are >= 0, a cut element when a crossing-number test on its (padded) polygon edges says so,
or when x lies on one of those edges.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import shapely

from .arrays import column_max, column_min
from .covers import cell_weights
from .topology import _cell_boxes, _ranges, _ring_segments

_TOL = 1e-10


class Locator(eqx.Module):
    """Arrays for :func:`find`. 1D uses ``starts``/``ends``; 2D the bucket grid and cut edges."""

    dim: int = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    h: float = eqx.field(static=True)
    starts: jax.Array | None = None
    ends: jax.Array | None = None
    lo: jax.Array | None = None
    n_buckets: tuple = eqx.field(static=True, default=())
    table: jax.Array | None = None
    cut_index: jax.Array | None = None
    cut_edges: jax.Array | None = None


def build(cover, topo) -> Locator:
    """Build the locator of a cut cover (host side)."""
    if cover.dim == 1:
        g = np.array(topo.elem_geom)
        starts, ends = jax.device_put(g[:, 0]), jax.device_put(g[:, 1])
        return Locator(1, cover.kind, cover.diameter, starts=starts, ends=ends)
    n_elem = topo.n_elem
    cut = np.nonzero(topo.elem_cut)[0]
    # a whole element's box is its cell's (the cut keeps the cells' boxes)
    cell_lo, cell_hi = topo.boxes if topo.boxes is not None else _cell_boxes(None, cover)
    box_lo, box_hi = cell_lo[topo.elem_cell], cell_hi[topo.elem_cell]
    if len(cut):
        bounds = shapely.bounds(np.asarray([topo.elem_geom[e] for e in cut], dtype=object))
        box_lo[cut], box_hi[cut] = bounds[:, :2], bounds[:, 2:]
    lo, hi = column_min(box_lo), column_max(box_hi)
    bs = cover.diameter
    nb = np.maximum(1, np.ceil((hi - lo) / bs).astype(int))
    i0 = np.clip(np.floor((box_lo - lo) / bs - _TOL).astype(int), 0, nb - 1)
    i1 = np.clip(np.floor((box_hi - lo) / bs + _TOL).astype(int), 0, nb - 1)
    span = i1 - i0 + 1
    count = span[:, 0] * span[:, 1]
    elem = np.repeat(np.arange(n_elem), count)
    k = np.arange(len(elem)) - np.repeat(np.cumsum(count) - count, count)
    bx = i0[elem, 0] + k % span[elem, 0]
    by = i0[elem, 1] + k // span[elem, 0]
    bucket = by * nb[0] + bx
    order = np.argsort(bucket, kind="stable")
    bucket, elem = bucket[order], elem[order]
    per = np.bincount(bucket, minlength=nb[0] * nb[1])
    width = int(per.max())
    slot = np.arange(len(bucket)) - np.repeat(np.cumsum(per) - per, per)
    table = -np.ones((nb[0] * nb[1], width), np.int64)
    table[bucket, slot] = elem
    cut_index = -np.ones(n_elem, np.int64)
    cut_index[cut] = np.arange(len(cut))
    # the cut elements' ring segments (one vectorised pass), padded per element with NaN
    a, b, owner = _ring_segments(topo.elem_geom, cut)
    row = cut_index[owner]
    count = np.bincount(row, minlength=len(cut))
    cut_edges = np.full((max(len(cut), 1), max(int(count.max(initial=0)), 1), 2, 2), np.nan)
    cut_edges[row, _ranges(count)] = np.stack([a, b], axis=1)
    return Locator(
        2,
        cover.kind,
        cover.diameter,
        lo=jax.device_put(lo),
        n_buckets=(int(nb[0]), int(nb[1])),
        table=jax.device_put(table),
        cut_index=jax.device_put(cut_index),
        cut_edges=jax.device_put(cut_edges),
    )


def _inside_polygon(edges, x, tol):
    """Crossing-number test (edges padded with NaN), counting points on an edge as inside."""
    a, b = edges[:, 0], edges[:, 1]
    valid = ~jnp.isnan(a[:, 0])
    a = jnp.where(valid[:, None], a, 0.0)
    b = jnp.where(valid[:, None], b, 0.0)
    straddle = (a[:, 1] > x[1]) != (b[:, 1] > x[1])
    dy = jnp.where(straddle, b[:, 1] - a[:, 1], 1.0)
    xc = a[:, 0] + (x[1] - a[:, 1]) * (b[:, 0] - a[:, 0]) / dy
    crossings = jnp.sum(valid & straddle & (x[0] < xc))
    d = b - a
    t = jnp.clip(jnp.sum((x - a) * d, -1) / jnp.maximum(jnp.sum(d * d, -1), 1e-300), 0.0, 1.0)
    dist = jnp.linalg.norm(a + t[:, None] * d - x, axis=-1)
    on_edge = jnp.any(valid & (dist <= tol))
    return (crossings % 2 == 1) | on_edge


def find(loc: Locator, elem_cell_data, x):
    """Element index holding point ``x (dim,)``, or -1 outside the domain."""
    if loc.dim == 1:
        e = jnp.clip(jnp.searchsorted(loc.starts, x[0], side="right") - 1, 0, loc.starts.shape[0] - 1)
        tol = _TOL * loc.h
        ok = (x[0] >= loc.starts[e] - tol) & (x[0] <= loc.ends[e] + tol)
        return jnp.where(ok, e, -1)
    nb = jnp.array(loc.n_buckets)
    tol = _TOL * loc.h
    # the box is closed: a point on its upper edge (x = lo + nb·h, e.g. on the domain's right
    # or top side) belongs to the last bucket, which lists the elements touching that edge
    rel = x - loc.lo
    inside_box = jnp.all((rel >= -tol) & (rel <= nb * loc.h + tol))
    ij = jnp.clip(jnp.floor(rel / loc.h).astype(jnp.int32), 0, nb - 1)
    cands = loc.table[ij[1] * nb[0] + ij[0]]

    def holds(e):
        ec = jnp.maximum(e, 0)
        w, _ = cell_weights(loc.kind, elem_cell_data[ec], x)
        ci = loc.cut_index[ec]
        in_cut = _inside_polygon(loc.cut_edges[jnp.maximum(ci, 0)], x, tol)
        return (e >= 0) & jnp.where(ci >= 0, in_cut, jnp.all(w >= -_TOL))

    ok = jax.vmap(holds)(cands) & inside_box
    return jnp.where(jnp.any(ok), cands[jnp.argmax(ok)], -1)
