"""Size buckets: a space's arrays padded to a few standard sizes, so that spaces of nearly equal
size share compiled programs.

A compiled program depends on the shapes of its arrays and on the static fields of its
arguments. A new cover, a refined one or a moved hole gives new element, simplex, boundary-piece,
block and cover counts, and without buckets every such space compiles ``nmm.solve`` anew (0.5–2 s
on a CPU, against a run time that is often a few milliseconds). ``solve_view`` pads each count up
to the next size with four significant bits (8, 9, …, 15 times a power of two: at most 12.5 %
more), and replaces what is static and particular to a space (its host data, its point locator)
by what depends on those sizes alone. Spaces whose counts round to the same sizes then run one
compiled program.

Padding changes no result: padded simplices and boundary pieces copy a real one with zero
weights, padded elements copy element 0, padded covers belong to no element (their rows are
zero: the solvers' unit-diagonal scaling leaves them alone and their unknowns come out zero),
and padded blocks repeat the last cover's diagonal block with zero values. The solution is cut
back to the space's own unknowns.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .assembly import BoundaryData
from .linalg.operator import BlockPattern

_BITS = 4  # significant bits kept: padding adds at most 2^-(_BITS - 1) = 12.5 %


def bucket(n: int) -> int:
    """The smallest size ``>= n`` of the form ``m · 2^k`` with ``m < 2^_BITS`` (0 stays 0)."""
    n = int(n)
    if n <= 2**_BITS:
        return n
    shift = n.bit_length() - _BITS
    return -(-n >> shift) << shift


@dataclass(frozen=True)
class SolveHost:
    """The static host data of a padded space: only the padded block pattern's sizes (its
    equality), so that spaces of one bucket compare equal."""

    pattern: BlockPattern


def _pad(a, n: int, fill=None):
    """``a`` grown along axis 0 to ``n`` rows: copies of row 0, or ``fill`` (empty arrays, such
    as the flux blocks of spaces without extended fluxes, stay empty). A grown array is numpy
    (``_padded`` puts them on the device in one call); an unchanged one is ``a`` itself."""
    extra = n - a.shape[0]
    if extra <= 0 or a.shape[0] == 0:
        return a
    a = np.asarray(a)
    if fill is None:
        rows = np.broadcast_to(a[:1], (extra, *a.shape[1:]))
    else:
        rows = np.full((extra, *a.shape[1:]), fill, a.dtype)
    return np.concatenate([a, rows])


def _padded(space):
    n_e, n_s, n_b = space.elem_dofs.shape[0], space.q_elem.shape[0], space.b_elem.shape[0]
    n_blocks, n_cov = space.block_rows.shape[0], space.n_covers
    e, s, b = bucket(n_e), bucket(n_s), bucket(n_b)
    nb, nc = bucket(n_blocks), bucket(n_cov)
    last = nc - 1  # the padding blocks: the last cover's diagonal block, with zero values
    rows = np.concatenate([np.asarray(space.block_rows), np.full(nb - n_blocks, last)])
    cols = np.concatenate([np.asarray(space.block_cols), np.full(nb - n_blocks, last)])
    pattern = BlockPattern(np.searchsorted(rows, np.arange(nc + 1)), cols)
    per_element = ("elem_cell_data", "elem_dofs", "elem_center", "elem_scale", "elem_h")
    per_element += ("elem_blocks",)
    fields = {name: _pad(getattr(space, name), e) for name in per_element}
    fields["elem_covers"] = _pad(space.elem_covers, e)
    if space.stable:  # (plain spaces hold empty frames and transforms)
        fields["elem_axes"] = _pad(space.elem_axes, e)
        fields["cover_T"] = _pad(space.cover_T, nc, fill=0.0)
    fields["q_points"] = _pad(space.q_points, s)
    fields["q_weights"] = _pad(space.q_weights, s, fill=0.0)
    fields["q_elem"] = _pad(space.q_elem, s)
    if n_b:
        for name in ("b_points", "b_elem", "b_normal", "b_crack", "b_flux", "b_blocks"):
            fields[name] = _pad(getattr(space, name), b)
        fields["b_weights"] = _pad(space.b_weights, b, fill=0.0)
    fields["block_rows"], fields["block_cols"] = rows, cols
    # one transfer for every grown array (a device_put each cost ~0.03 ms, 20 of them a solve)
    grown = [k for k, v in fields.items() if isinstance(v, np.ndarray)]
    fields.update(zip(grown, jax.device_put([fields[k] for k in grown]), strict=True))
    names = tuple(fields)
    view = eqx.tree_at(lambda v: [getattr(v, k) for k in names], space, [fields[k] for k in names])
    view = eqx.tree_at(lambda v: v.locator, view, None, is_leaf=lambda x: x is None)
    # the static fields particular to the space: the cover count (padded), the host data
    object.__setattr__(view, "n_covers", nc)
    object.__setattr__(view, "n_unknowns", nc * space.block_size)
    object.__setattr__(view, "host", SolveHost(pattern))
    return view


def solve_view(space):
    """``space`` padded to its size buckets, for the jitted solve (computed once per space)."""
    cache = space.host.derived
    if "solve_view" not in cache:
        # concrete arrays even when first asked for under a jit or vmap: the view outlives it
        with jax.ensure_compile_time_eval():
            cache["solve_view"] = _padded(space)
    return cache["solve_view"]


def pad_boundary_data(bd: BoundaryData, view) -> BoundaryData:
    """The boundary condition masks ``(k, n_b, n)`` padded to the view's boundary pieces (zero:
    no condition holds on a padding piece)."""
    n_b = view.b_elem.shape[0]

    def grow(m):
        extra = n_b - m.shape[1]
        if extra <= 0:
            return m
        zeros = np.zeros((m.shape[0], extra, m.shape[2]), m.dtype)
        if isinstance(m, jax.core.Tracer):  # made an array under an outer jit
            return jnp.concatenate([m, zeros], axis=1)
        # on the host: a JAX concatenation would compile a program for every new size
        return jax.device_put(np.concatenate([np.asarray(m), zeros], axis=1))

    return BoundaryData(grow(bd.dirichlet), grow(bd.neumann), bd.has_dirichlet)


def cut_back(x, n: int):
    """``x[..., :n]``: a padded solution cut back to a space's ``n`` unknowns. Concrete arrays on
    the CPU are cut on the host: a JAX slice compiles a program for every new ``n``, which
    would undo what the buckets save."""
    if not isinstance(x, jax.core.Tracer) and {d.platform for d in x.devices()} == {"cpu"}:
        return jax.device_put(np.asarray(x)[..., :n])
    return jax.lax.slice_in_dim(x, 0, n, axis=-1)


__all__ = ["bucket", "solve_view", "pad_boundary_data", "cut_back"]
