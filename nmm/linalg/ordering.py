"""Fill-reducing orderings of block patterns (host): nested dissection of the cover graph.

A sparse direct factorisation's cost is set by its fill, and its fill by the elimination order.
SuperLU's own choice for symmetric matrices, minimum degree on ``A + Aᵀ``, leaves more fill on
the planar cover graphs of NMM than nested dissection, whose separators are ``O(√n)`` covers
(p = 0, 1e5 unknowns, 2 cores: SuperLU factors in 0.17–0.19 s in this order against 0.31–0.35 s
with its minimum degree, and the order takes ~0.045 s to find; p = 2: 6–12 % less at 1e5).

The dissection needs coordinates, and a block pattern has none: it takes graph distances to a few
far-apart covers as coordinates (four breadth-first searches, depths read off their order),
bisects them at the midpoints of their range, alternately (a Morton code of the quantised
coordinates), and makes each bisection's separator the covers on its lower side that touch the
upper side. A separator is then a true vertex separator of the graph whatever the coordinates
are; the coordinates only decide how small it is. Everything is vectorised: one pass over the
graph's edges per level.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph


def nested_dissection(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """An elimination order of the ``n`` nodes of the graph with edges ``(rows[k], cols[k])``:
    ``perm`` with ``perm[new] = old``.

    The graph is taken as symmetric, each edge given both ways (the block pattern of a
    symmetric matrix); self-loops and repeats are allowed. Each connected component is dissected
    on its own; separators come after the parts they separate, and the nodes of a finest part
    keep their relative order. Any order is a correct one: an unsymmetric pattern only gets a
    worse one."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    if n <= 2 or not np.any(rows != cols):
        return np.arange(n)
    ones = np.ones(len(rows))
    if np.all(rows[1:] >= rows[:-1]):  # block CSR order (every pattern nmm builds): no sort
        indptr = np.searchsorted(rows, np.arange(n + 1))
        graph = sp.csr_matrix((ones, cols, indptr), shape=(n, n))
        # repeated edges must go: scipy's strong components never return on them (scipy
        # 1.17); a check, and a sort only where there are repeats
        graph.sum_duplicates()
    else:
        graph = sp.csr_matrix((ones, (rows, cols)), shape=(n, n))
    # strong components of a symmetric graph are its components (and need no transposed copy)
    n_comp, comp = csgraph.connected_components(graph, directed=True, connection="strong")
    code, depth = _morton(_landmark_coordinates(graph, comp, n_comp), n)
    upper = rows < cols  # each edge once
    level = _separator_levels(code, depth, rows[upper], cols[upper])
    return np.lexsort((_elimination_key(code, depth, level), comp))


def _far(d: np.ndarray, comp: np.ndarray, big: np.ndarray) -> np.ndarray:
    """A node of largest ``d`` in each component of the labels ``big``."""
    if len(big) == 1:  # the others are isolated nodes at distance 0, below the component's max
        return np.array([np.argmax(d)])
    best = np.full(int(comp.max()) + 1, -np.inf)
    np.maximum.at(best, comp, d)
    cand = np.flatnonzero(d == best[comp])
    labels, first = np.unique(comp[cand], return_index=True)
    return cand[first[np.isin(labels, big)]]


def _distances(graph, sources) -> np.ndarray:
    """Hops from the nearest of ``sources`` (one per component; 0 for the nodes of no source's
    component): one breadth-first search, from the source or from a node joined to all of them.
    The depths follow from the search's order alone: a node found k-th has its parent at a
    position that does not decrease with k, so each level ends where the parents of the previous
    level's last node do (one ``searchsorted`` per level)."""
    n = graph.shape[0]
    if len(sources) == 1:
        g, root = graph, int(sources[0])
    else:
        indptr = np.append(graph.indptr, graph.indptr[-1] + len(sources))
        indices = np.concatenate([graph.indices, sources])
        g, root = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n + 1, n + 1)), n
    order, pred = csgraph.breadth_first_order(g, root, directed=True, return_predecessors=True)
    pos = np.empty(g.shape[0], np.int64)
    pos[order] = np.arange(len(order))
    parent = pos[pred[order[1:]]]
    ends = [1]
    while ends[-1] < len(order):
        nxt = 1 + int(np.searchsorted(parent, ends[-1]))
        if nxt <= ends[-1]:  # cannot happen in a breadth-first order; never loop on it
            break
        ends.append(nxt)
    level = np.repeat(np.arange(len(ends)), np.diff(ends, prepend=0))
    d = np.zeros(n)
    shift = 0 if root < n else 1
    d[order[shift : len(level)]] = level[shift:] - shift
    return d


def _landmark_coordinates(graph, comp, n_comp):
    """Two coordinates per node from graph distances: along ``d(a) - d(b)`` between two far
    apart nodes ``a``, ``b`` of each component, and from a node far from both. Isolated nodes
    (a bucketed space's padding) stay at 0."""
    sizes = np.bincount(comp, minlength=n_comp)
    big = np.flatnonzero(sizes > 1)
    _, first = np.unique(comp, return_index=True)
    a = _far(_distances(graph, first[big]), comp, big)  # a pseudo-peripheral node
    da = _distances(graph, a)
    db = _distances(graph, _far(da, comp, big))
    dc = _distances(graph, _far(np.minimum(da, db), comp, big))
    return da - db, dc


def _morton(coords, n: int) -> tuple[np.ndarray, int]:
    """Interleaved bits of the coordinates quantised to ``2^bits`` levels each (``bits`` so that
    the finest cells hold about one node): ``(code, depth = 2 bits)``."""
    bits = int(min(15, max(1, np.ceil(np.log2(n) / 2))))
    q = []
    for x in coords:
        lo, hi = x.min(), x.max()
        scale = (1 << bits) / (hi - lo) if hi > lo else 0.0
        q.append(np.minimum(((x - lo) * scale).astype(np.int64), (1 << bits) - 1))
    code = np.zeros(n, np.int64)
    for k in range(bits - 1, -1, -1):  # most significant first, the first coordinate first
        for qc in q:
            code = (code << 1) | ((qc >> k) & 1)
    return code, 2 * bits


def _separator_levels(code, depth, u, v) -> np.ndarray:
    """The level at which each node becomes a separator (``depth``: never).

    The edge ``(u, v)`` (each edge once) is cut by the bisection at the highest bit where the
    codes differ; its end on the lower side joins that bisection's separator, unless either end
    has already left the graph as part of a separator higher up (bisections are taken level by
    level)."""
    cu, cv = code[u], code[v]
    diff = cu ^ cv
    cut = diff > 0  # the same finest cell: never cut
    u, v, cu, diff = u[cut], v[cut], cu[cut], diff[cut]
    bit = np.frexp(diff.astype(np.float64))[1] - 1  # the highest differing bit (exact below 2^53)
    swap = ((cu >> bit) & 1) == 1  # u on the upper side: v is the lower end
    u, v = np.where(swap, v, u), np.where(swap, u, v)
    level = (depth - 1 - bit).astype(np.int8)
    order = np.argsort(level, kind="stable")  # a radix sort for int8
    u, v, level = u[order], v[order], level[order]
    starts = np.searchsorted(level, np.arange(depth + 1))
    sep = np.full(len(code), depth, np.int64)
    for lev in range(depth):
        uu, vv = u[starts[lev] : starts[lev + 1]], v[starts[lev] : starts[lev + 1]]
        hit = uu[(sep[uu] > lev) & (sep[vv] > lev)]
        sep[hit] = lev
    return sep


def _elimination_key(code, depth, level) -> np.ndarray:
    """Sort key of the post-order of the dissection tree: digits base 3, one per level (0: the
    lower part, 1: the upper part, 2: this level's separator, after both parts)."""
    key = np.zeros(len(code), np.int64)
    for lev in range(depth):
        bit = (code >> (depth - 1 - lev)) & 1
        digit = np.where(level > lev, bit, np.where(level == lev, 2, 0))
        key = key * 3 + digit
    return key
