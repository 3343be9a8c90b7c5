"""The nested-dissection order that SuperLU factors symmetric systems in (``nmm.linalg.ordering``,
``SuperLU(ordering=...)``): a permutation on any graph, less fill than minimum degree where it is
meant to pay, and the same solutions, gradients and batches as SuperLU's own order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from conftest import assert_same_solution, backend_problem, poisson_loss

import nmm
from nmm.linalg.ordering import nested_dissection


def _grid_laplacian(m: int) -> sp.csr_matrix:
    """The 5-point Laplacian of an m × m grid, with a diagonal coupling per cell (a triangle
    mesh's graph), nodes numbered row by row."""
    one = sp.diags([np.ones(m - 1)], [1], shape=(m, m))
    eye = sp.eye(m)
    adj = sp.kron(eye, one) + sp.kron(one, eye) + sp.kron(one, one)
    adj = adj + adj.T
    return (sp.diags(np.asarray(adj.sum(1)).ravel() + 1e-3) - adj).tocsr()


def _fill(a: sp.spmatrix, order: str, perm=None) -> int:
    a = a.tocsr()
    if perm is not None:
        a = a[perm][:, perm]
    lu = spla.splu(a.tocsc(), permc_spec=order, diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    return lu.nnz


def _is_permutation(perm, n: int) -> bool:
    return perm.shape == (n,) and np.array_equal(np.sort(perm), np.arange(n))


def test_nested_dissection_is_a_permutation_on_any_graph():
    rng = np.random.default_rng(0)
    a = _grid_laplacian(12).tocoo()
    n = a.shape[0]
    # a connected grid, given in CSR order and shuffled
    assert _is_permutation(nested_dissection(a.row, a.col, n), n)
    k = rng.permutation(a.nnz)
    assert _is_permutation(nested_dissection(a.row[k], a.col[k], n), n)
    # repeated edges in row order (scipy's strong components never returned on them)
    rows, cols = np.array([0, 0, 1, 1, 2]), np.array([1, 1, 0, 2, 1])
    assert _is_permutation(nested_dissection(rows, cols, 3), 3)
    twice = np.argsort(np.concatenate([a.row, a.row]), kind="stable")
    doubled = np.concatenate([a.row, a.row])[twice], np.concatenate([a.col, a.col])[twice]
    assert _is_permutation(nested_dissection(*doubled, n), n)
    # two grids, a path and isolated nodes (a bucketed space's padding): several components
    b = sp.block_diag([_grid_laplacian(7), _grid_laplacian(5), sp.diags([1.0] * 6)]).tocoo()
    path = sp.diags([np.ones(9), 2 * np.ones(10), np.ones(9)], [-1, 0, 1]).tocoo()
    c = sp.block_diag([b, path]).tocoo()
    assert _is_permutation(nested_dissection(c.row, c.col, c.shape[0]), c.shape[0])
    # no edges, one node, two nodes
    for m in (1, 2, 5):
        d = sp.eye(m).tocoo()
        np.testing.assert_array_equal(nested_dissection(d.row, d.col, m), np.arange(m))


def test_nested_dissection_keeps_components_apart_and_separators_last():
    """Two disjoint grids: each component's nodes are contiguous in the order, and the node
    eliminated last in each is a separator node (it has neighbours on both sides), not one of
    its corners."""
    m = 9
    a = sp.block_diag([_grid_laplacian(m), _grid_laplacian(m)]).tocoo()
    perm = nested_dissection(a.row, a.col, 2 * m * m)
    comp = perm // (m * m)
    assert np.count_nonzero(np.diff(comp)) == 1
    corners = {0, m - 1, m * (m - 1), m * m - 1}
    for c in (0, 1):
        last = perm[comp == c][-1] - c * m * m
        assert last not in corners


@pytest.mark.parametrize("m", [120, 200])
def test_nested_dissection_fills_less_than_the_banded_order_and_about_as_minimum_degree(m):
    """On planar grids it is meant to pay: far less fill than the row-by-row (banded) order,
    and no more than SuperLU's minimum degree by a margin (measured at 1e5 cover unknowns: 10 %
    less fill and half the factor time; at 1e4, 4 % more fill)."""
    a = _grid_laplacian(m).tocoo()
    perm = nested_dissection(a.row, a.col, m * m)
    nd, mmd, banded = _fill(a, "NATURAL", perm), _fill(a, "MMD_AT_PLUS_A"), _fill(a, "NATURAL")
    assert nd < 0.5 * banded
    assert nd < 1.15 * mmd


def _problem(degree, cracked=False):
    # holed, or cut in two by a crack (two components of the cover graph)
    return backend_problem(0.08, degree, hole=not cracked, crack=cracked)


@pytest.mark.parametrize(("degree", "cracked"), [(0, False), (2, False), (1, True)])
def test_superlu_orders_agree(degree, cracked):
    """SuperLU in nested-dissection order (the default) against its minimum degree: the same
    refined solution, on a holed square and on a square cut in two by a crack."""
    V, prob, exact = _problem(degree, cracked)
    nd, mmd = nmm.linalg.SuperLU(), nmm.linalg.SuperLU(ordering="mmd")
    assert nd.ordering == "nested_dissection"
    u = nmm.solve(V, prob, solver=nd)
    assert int(u.info.result) == 0
    pts = jnp.array([[0.3, 0.2], [0.7, 0.2], [0.5, 0.9]])
    assert_same_solution(u, nmm.solve(V, prob, solver=mmd), exact, pts, rtol=1e-9)


def test_superlu_in_nested_dissection_order_differentiates_and_batches():
    """The adjoint solve reuses the renumbered factor: the gradient of SuperLU's own order; a
    vmap (factorisations on the host threads) equal to a loop."""
    V, prob, _ = _problem(0)
    nd, mmd = nmm.linalg.SuperLU(), nmm.linalg.SuperLU(ordering="mmd")
    loss = poisson_loss(V, prob, jnp.array([[0.3, 0.2], [0.7, 0.2], [0.5, 0.9]]))
    g, g_ref = jax.grad(loss)(1.3, nd), jax.grad(loss)(1.3, mmd)
    np.testing.assert_allclose(float(g), float(g_ref), rtol=1e-8)
    ks = jnp.array([0.7, 2.5])
    batched = jax.vmap(lambda k: loss(k, nd))(ks)
    looped = jnp.stack([loss(k, nd) for k in ks])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-10)


def test_superlu_factor_in_nested_dissection_order_solves_the_original_system(monkeypatch):
    """The host factor of a scipy matrix: renumbered inside, solutions in the caller's order
    (a non-symmetric matrix keeps its own order)."""
    from nmm.linalg import superlu
    from nmm.linalg.superlu import _factor, _refine, _Renumbered

    rng = np.random.default_rng(1)
    a = _grid_laplacian(30).tocsc()
    skew = (a + 0.2 * sp.diags([np.ones(899)], [1])).tocsc()
    b = rng.standard_normal(900)
    opts = nmm.linalg.SuperLU()._opts(1)
    orders = []  # what SuperLU is asked to order by: its own NATURAL once renumbered
    real = superlu.spla.splu

    def recording(m, permc_spec, **kw):
        orders.append(permc_spec)
        return real(m, permc_spec=permc_spec, **kw)

    monkeypatch.setattr(superlu.spla, "splu", recording)
    for mat, symmetric in ((a, True), (skew, False)):
        f = _factor(mat, symmetric, opts)
        assert isinstance(f.lu, _Renumbered) == symmetric
        x, _, _, met = _refine(f, f.a, b, False, opts)
        assert met
        np.testing.assert_allclose(mat @ x, b, atol=1e-9 * np.linalg.norm(b))
    # SuperLU's minimum degree must never see a renumbered matrix: on one it depends on the
    # input order and was measured at 15x the fill (29.6 s at 1e5 unknowns)
    assert orders == ["NATURAL", "COLAMD"]


def test_unknown_ordering_is_named():
    with pytest.raises(ValueError, match=r"ordering must be one of .*'nested_dissection'.* got 'metis'"):
        nmm.linalg.SuperLU(ordering="metis")


def test_a_layout_reorders_again_when_other_entries_are_dropped():
    """The order is kept with the pattern's layout and made anew when the round-off entries
    dropped before factoring change: both factors solve their own system."""
    from nmm.linalg.superlu import _Layout, _refine

    a = _grid_laplacian(20).tocoo()
    n = a.shape[0]
    layout = _Layout(a.row.astype(np.int64), a.col.astype(np.int64), n)
    opts = nmm.linalg.SuperLU(drop_roundoff=True)._opts(1)
    b = np.random.default_rng(2).standard_normal(n)
    weak = a.data.copy()
    weak[(a.row == 3) & (a.col == 4) | (a.row == 4) & (a.col == 3)] *= 1e-18  # dropped
    made = []
    for values in (a.data, a.data, weak):
        f = layout.factor(values, True, opts)
        made.append(layout._reordering[1])
        x, _, _, met = _refine(f, f.a, b, False, opts)
        mat = sp.csr_matrix((values, (a.row, a.col)), shape=(n, n))
        assert met
        np.testing.assert_allclose(mat @ x, b, atol=1e-9 * np.linalg.norm(b))
    assert made[0] is made[1] and made[2] is not made[1]


def test_breadth_first_distances_are_dijkstras():
    """The order's coordinates: hops from one source per component, read off a breadth-first
    order, equal scipy's unweighted Dijkstra (0 off the sources' components: isolated nodes)."""
    from scipy.sparse import csgraph

    from nmm.linalg.ordering import _distances

    path = sp.diags([np.ones(9), 2 * np.ones(10), np.ones(9)], [-1, 0, 1])
    a = sp.block_diag([_grid_laplacian(17), _grid_laplacian(5), sp.eye(6), path]).tocsr()
    graph = sp.csr_matrix((np.ones(a.nnz), a.indices, a.indptr), shape=a.shape)
    _, comp = csgraph.connected_components(graph)
    big = np.flatnonzero(np.bincount(comp) > 1)
    rng = np.random.default_rng(3)
    for _ in range(4):
        sources = np.array([rng.choice(np.flatnonzero(comp == c)) for c in big])
        for src in (sources, sources[:1]):
            want = csgraph.dijkstra(graph, indices=src, unweighted=True, min_only=True)
            np.testing.assert_array_equal(_distances(graph, src), np.where(np.isfinite(want), want, 0))
