"""Exact ReLU networks of degree-0 NMM fields (continuous piecewise-linear on the cover).

* 1D (interval cover, nodes x_0 < ... < x_n): ``u(x) = u_0 + Σ_{i<n} (s_i - s_{i-1}) relu(x - x_i)``
  with ``s_i`` the slope on cell i (``s_{-1} = 0``): one hidden layer of n neurons; exact for
  ``x >= x_0``, i.e. on the whole cover.
* 2D (structured triangle cover of squares of side h cut by their rising diagonal): the hat of a
  node on this three-direction mesh is ``relu(1 - ½(|ξ| + |η| + |ξ - η|))`` in the node's scaled
  coordinates (ξ, η) = (x - x_i, y - y_j)/h, because ``max(|ξ|, |η|, |ξ - η|)`` equals that half
  sum. The first hidden layer computes ``relu(±ξ)`` per lattice column, ``relu(±η)`` per row and
  ``relu(±(ξ - η))`` per diagonal; the second holds one hat per node: two hidden layers, as
  He, Li, Xu & Zheng (2020) show linear finite elements need in 2D. Every hat is local (at most
  seven are non-zero at a point), so round-off stays at the level of the field's values.

A field whose physical covers split a patch (a crack, or a hole that cuts a node's star in two) is
not one continuous piecewise-linear function on the cover (across a crack it jumps): such fields
get an error.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import nmm

from .mlp import MLP


def to_mlp(field: nmm.Field) -> MLP:
    """The ReLU :class:`MLP` equal to a degree-0 field on its domain (to round-off)."""
    if not isinstance(field, nmm.Field):
        raise TypeError(f"field must be an nmm.Field, got {type(field).__name__}")
    space = field.space
    if space.degree != 0:
        raise ValueError(f"field must be of degree 0 (piecewise linear), got degree {space.degree}")
    if space.enrich or space.components != 1:
        raise ValueError(
            "field must be a scalar field without enrichment (its singular functions are not "
            f"piecewise linear), got components={space.components}, enrich={len(space.enrich)}"
        )
    values, covered = _nodal_values(field)
    cover = space.cover
    if cover.kind == "interval":
        return _mlp_1d(cover.nodes[:, 0], values)
    if cover.kind == "triangle":
        return _mlp_2d(cover, values, covered)
    raise ValueError(
        f"field: to_mlp needs an interval or a structured triangle cover, got a {cover.kind!r} cover "
        "(bilinear weights are not piecewise linear)"
    )


def _nodal_values(field: nmm.Field) -> tuple[np.ndarray, np.ndarray]:
    space = field.space
    topo = space.host.topology
    nodes = topo.cover_node
    counts = np.bincount(nodes, minlength=len(space.cover.nodes))
    if np.any(counts > 1):
        node = int(np.argmax(counts))
        raise ValueError(
            f"field: patch {node} has {counts[node]} physical covers (a crack or a hole splits it), so "
            "the field is not one piecewise-linear function on the whole cover (across a crack it "
            "jumps, and a ReLU network is continuous)"
        )
    # degree 0: one coefficient per cover; the constant cover function is 1 (Legendre and Fourier)
    values = np.zeros(len(space.cover.nodes))
    values[nodes] = np.asarray(field.coeffs)
    covered = counts > 0
    # the covers of a sliver's patches are aggregated (nmm.stable.aggregate): the sliver's elements
    # extend a neighbour's linear field, whose value at the lost node keeps the network equal to
    # the field on the sliver
    real_nodes = space.cover.cells[topo.elem_cell]  # (n_elem, n_v)
    lost = ~covered[real_nodes]
    for e, k in zip(*np.nonzero(lost), strict=True):
        x = jnp.asarray(space.cover.nodes[real_nodes[e, k]], dtype=float)
        phi, _ = space.local_basis(int(e), x)
        values[real_nodes[e, k]] = float(phi @ field.coeffs[space.elem_dofs[e]])
    return values, covered | np.isin(np.arange(len(values)), real_nodes[lost])


def _mlp_1d(x: np.ndarray, values: np.ndarray) -> MLP:
    slopes = np.diff(values) / np.diff(x)
    jumps = np.diff(slopes, prepend=0.0)
    w1 = np.ones((len(x) - 1, 1))
    b1 = -x[:-1]
    return MLP.from_arrays([w1, jumps[None, :]], [b1, np.array([values[0]])], "relu")


def _mlp_2d(cover, values: np.ndarray, covered: np.ndarray) -> MLP:
    xs, ys = np.unique(cover.nodes[:, 0]), np.unique(cover.nodes[:, 1])
    h = xs[1] - xs[0] if len(xs) > 1 else np.nan
    structured = (
        len(xs) * len(ys) == len(cover.nodes)
        and np.allclose(np.diff(xs), h, rtol=1e-9)
        and np.allclose(np.diff(ys), h, rtol=1e-9)
    )
    if structured:
        i = np.rint((cover.nodes[:, 0] - xs[0]) / h).astype(int)
        j = np.rint((cover.nodes[:, 1] - ys[0]) / h).astype(int)
        ij = np.stack([i, j], 1)[cover.cells]  # (n_cells, 3, 2) lattice coordinates
        rel = ij - ij.min(axis=1, keepdims=True)
        codes = np.sort(3 * rel[..., 0] + rel[..., 1], axis=1)
        # lower triangle {(0,0), (1,0), (1,1)} or upper {(0,0), (0,1), (1,1)} of each square
        structured = bool(np.all((codes == [0, 3, 4]).all(1) | (codes == [0, 1, 4]).all(1)))
    if not structured:
        raise ValueError(
            "field: to_mlp needs a structured triangle cover (nmm.MathCover.triangles: squares cut "
            "by their rising diagonal); this triangulation is not one"
        )
    keep = np.flatnonzero(covered)  # a patch outside the domain has no say on it
    ii, jj = i[keep], j[keep]
    x0, y0 = xs[0], ys[0]
    # first layer: relu(±ξ_c) per column c, relu(±η_r) per row r, relu(±(ξ - η)_d) per diagonal d
    cols, rows, diags = np.unique(ii), np.unique(jj), np.unique(ii - jj)
    lines = [
        ((1.0, 0.0), x0 + h * cols),
        ((0.0, 1.0), y0 + h * rows),
        ((1.0, -1.0), x0 - y0 + h * diags),
    ]
    w1, b1 = [], []
    for direction, offsets in lines:
        d = np.asarray(direction) / h
        for sign in (1.0, -1.0):
            w1.append(np.tile(sign * d, (len(offsets), 1)))
            b1.append(-sign * offsets / h)
    w1, b1 = np.concatenate(w1), np.concatenate(b1)
    # second layer: hat_k = relu(1 - ½ Σ_{three lines of node k} (relu(+t) + relu(-t)))
    sizes = [len(cols), len(rows), len(diags)]
    start = np.cumsum([0] + [2 * s for s in sizes])
    w2 = np.zeros((len(keep), len(w1)))
    for part, (ids, uniq) in enumerate(((ii, cols), (jj, rows), (ii - jj, diags))):
        pos = np.searchsorted(uniq, ids)
        w2[np.arange(len(keep)), start[part] + pos] = -0.5
        w2[np.arange(len(keep)), start[part] + sizes[part] + pos] = -0.5
    b2 = np.ones(len(keep))
    w3 = values[keep][None, :]
    return MLP.from_arrays([w1, w2, w3], [b1, b2, jnp.zeros(1)], "relu")
