"""Small numpy helpers for the host-side set-up of large patterns."""

from __future__ import annotations

import functools

import numpy as np


def unique(a) -> np.ndarray:
    """The sorted distinct values of ``a`` (flattened), as ``np.unique(a)``, by one sort.

    numpy 2.4's ``np.unique`` without ``return_*`` arguments takes a hash-based path that was
    10-20x slower on this project's keys: 1.8e6 int64 cover-pair keys of a 1e5-cell cover,
    1.1-2.0 s against 0.11-0.12 s for the sort (2-core development machine), half of building a
    p = 0 space at 1e5 unknowns."""
    # stable: timsort finds the runs of element-ordered keys (0.015 s against 0.10 s for the
    # default sort on the keys above; about equal on shuffled keys)
    s = np.sort(np.asarray(a).reshape(-1), kind="stable")
    if s.size == 0:
        return s
    keep = np.empty(s.size, bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def unique_inverse(a) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(a, return_inverse=True)`` of a 1-D array by one stable argsort (0.014 s against
    0.050 s on the 8e5 CSC keys of a 1e5-unknown p = 0 matrix, 2-core development machine)."""
    a = np.asarray(a).reshape(-1)
    order = np.argsort(a, kind="stable")
    s = a[order]
    keep = np.empty(s.size, bool)
    keep[:1] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    place = np.cumsum(keep)
    place -= 1  # in place: fresh memory is slow to touch in a new process (page faults)
    inverse = np.empty(s.size, np.int64)
    inverse[order] = place
    return s[keep], inverse


def column_min(a: np.ndarray) -> np.ndarray:
    """``a.min(axis=0)`` of a tall, narrow array ``(n, k)``, column by column: numpy reduces a
    few strided columns row by row, 37x slower (2e5 × 2: 5.1 ms against 0.14 ms)."""
    return np.array([a[:, k].min() for k in range(a.shape[1])])


def column_max(a: np.ndarray) -> np.ndarray:
    """``a.max(axis=0)`` of a tall, narrow array, column by column (see :func:`column_min`)."""
    return np.array([a[:, k].max() for k in range(a.shape[1])])


# Per-cell quantities over the vertices: elementwise operations over the n_v arrays
# (n_cells, dim) of ``corners`` replace reductions over the short vertex axis of an
# (n_cells, n_v, dim) array, which numpy runs slowly (at 2e5 cells: a box's min(axis=1) 35 ms, a
# centroid's mean(axis=1) 22 ms, the longest edge 19 ms); the sums run in the same order, so the
# numbers are the same.


def corners(nodes: np.ndarray, cells: np.ndarray) -> list[np.ndarray]:
    """The cells' vertices, one array ``(n_cells, dim)`` per vertex of a cell."""
    return [nodes[cells[:, k]] for k in range(cells.shape[1])]


def boxes(cs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners ``(n_cells, dim)`` of the cells' bounding boxes."""
    return functools.reduce(np.minimum, cs), functools.reduce(np.maximum, cs)


def centroids(cs: list[np.ndarray]) -> np.ndarray:
    """The mean of the cells' vertices ``(n_cells, dim)``."""
    return functools.reduce(np.add, cs) / len(cs)


def longest_edges(cs: list[np.ndarray]) -> np.ndarray:
    """The longest edge of each cell ``(n_cells,)`` (vertex k to vertex k + 1, cyclically)."""

    def length(a, b):
        d = b - a
        return np.sqrt(functools.reduce(np.add, [d[:, i] * d[:, i] for i in range(d.shape[1])]))

    n = len(cs)
    return functools.reduce(np.maximum, [length(cs[k], cs[(k + 1) % n]) for k in range(n)])
