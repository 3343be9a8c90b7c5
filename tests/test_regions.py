"""Exact linear regions of piecewise-linear networks (nmm_nn.regions), checked against dense grids."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import shapely
from conftest import lshape_with_hole_and_crack

import nmm
from nmm_nn.mlp import KINKS, MLP
from nmm_nn.regions import covers, deep_bound_1d, region_bound, shallow_bound, tent_map

SQUARE = [(0, 0), (1, 0), (1, 1), (0, 1)]


def square(lo, hi):
    return nmm.Domain.polygon([(lo, lo), (hi, lo), (hi, hi), (lo, hi)])


def _codes(net, p):
    """Per neuron, how many kink values lie below its pre-activation at the point p."""
    z = jnp.concatenate(net.preactivations(p))
    return (z[:, None] > jnp.asarray(KINKS[net.activation])).sum(-1)


@jax.jit
def _evaluate(net, x):
    return jax.vmap(lambda p: (_codes(net, p), net(p)))(x)


@jax.jit
def grid_keys(net, x):
    """One integer per activation pattern at each point (codes are < 4)."""
    return jax.vmap(lambda p: _codes(net, p) @ 4 ** jnp.arange(sum(net.widths), dtype=jnp.int64))(x)


def keys(patterns):
    return np.asarray(patterns, dtype=np.int64) @ 4 ** np.arange(patterns.shape[1], dtype=np.int64)


def evaluate(net, points):
    """Activation codes and outputs of the network at a few points."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    # pad to a power of two: jax compiles once per network structure and size, not per call
    padded = np.concatenate([points, np.repeat(points[:1], 2 ** int(np.ceil(np.log2(n))) - n, axis=0)])
    pattern, y = _evaluate(net, jnp.asarray(padded))
    return np.asarray(pattern)[:n], np.asarray(y)[:n]


def check_regions(net, dom, nc):
    """Representative points give each region's pattern and affine map; the regions tile the domain."""
    assert nc.n_regions == len(nc.regions) == len(nc.patterns) == len(nc.points)
    assert np.all(dom.contains(nc.points))
    pattern, y = evaluate(net, nc.points)
    np.testing.assert_array_equal(pattern, nc.patterns)
    np.testing.assert_allclose(
        np.einsum("rd,rd->r", nc.slopes, nc.points) + nc.intercepts, y, atol=1e-12
    )
    np.testing.assert_allclose(nc.sizes.sum(), dom.measure, rtol=1e-12)
    if dom.dim == 2:
        # snapped to a 1e-12 grid first: neighbours' shared edges agree to round-off only, and
        # GEOS's union of such not-quite-noded polygons can drop a whole region (seen at -O0)
        union = shapely.union_all(shapely.set_precision(nc.regions, 1e-12))
        assert union.symmetric_difference(dom.shape).area < 1e-12 * dom.measure
        assert abs(union.area - nc.sizes.sum()) < 1e-12 * dom.measure  # no overlaps


@pytest.mark.parametrize("depth", range(1, 11))
def test_tent_map_sawtooth(depth):
    net, dom = tent_map(depth), nmm.Domain.interval(0, 1)
    nc = covers(net, dom)
    n = 2**depth
    assert nc.n_regions == nc.n_pieces == nc.n_patterns == n
    assert nc.layer_regions == tuple(2**l for l in range(1, depth + 1))
    np.testing.assert_allclose(nc.regions, np.c_[np.arange(n), np.arange(1, n + 1)] / n, atol=1e-14)
    np.testing.assert_allclose(np.abs(nc.slopes[:, 0]), n)
    mid = nc.regions.mean(axis=1)
    y = evaluate(net, mid[:, None])[1]
    np.testing.assert_allclose(nc.slopes[:, 0] * mid + nc.intercepts, y, atol=1e-12)
    np.testing.assert_allclose(y, 0.5, atol=1e-12)  # the sawtooth is 1/2 at every midpoint
    # layer l bends (neuron 1, relu(z - 1/2)) at the odd multiples of 2^-l
    for l, (pts, ids) in enumerate(nc.kinks, start=1):
        np.testing.assert_allclose(pts, (2 * np.arange(2 ** (l - 1)) + 1) / 2**l, atol=1e-14)
        np.testing.assert_array_equal(ids, 1)
    check_regions(net, dom, nc)


@pytest.mark.parametrize(
    "lo, hi, activation, n_regions",
    [(0, 1, "relu", 8), (-2, 2, "relu", 68), (-2, 2, "hat", 195)],
)
def test_2d_regions_match_dense_grid(lo, hi, activation, n_regions):
    net, dom = MLP(2, "scalar", 8, 2, activation, key=jax.random.PRNGKey(0)), square(lo, hi)
    nc = covers(net, dom)
    xs = np.linspace(lo, hi, 1500)
    grid = np.stack(np.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    seen = np.unique(grid_keys(net, grid))
    # a convex domain: every activation pattern is one convex region
    assert nc.n_regions == nc.n_patterns == len(seen) == n_regions
    assert set(seen) == set(keys(nc.patterns))
    assert nc.n_pieces == nc.n_regions  # a random net: no two neighbours share their affine map
    check_regions(net, dom, nc)


@pytest.mark.parametrize("activation", ["relu", "hat"])
def test_nonconvex_domain_with_hole(activation):
    dom = lshape_with_hole_and_crack()
    for seed in range(3):
        net = MLP(2, "scalar", 8, 2, activation, key=jax.random.PRNGKey(seed))
        nc = covers(net, dom)
        assert nc.n_regions >= nc.n_patterns
        check_regions(net, dom, nc)


def test_one_pattern_two_regions():
    """In a U-shaped domain the line y = 1.5 leaves the two prongs as separate regions."""
    dom = nmm.Domain.polygon([(0, 0), (3, 0), (3, 2), (2, 2), (2, 1), (1, 1), (1, 2), (0, 2)])
    net = MLP.from_arrays([[[0.0, 1.0]], [[1.0]]], [[-1.5], [0.0]], "relu")
    nc = covers(net, dom)
    assert (nc.n_regions, nc.n_patterns, nc.n_pieces) == (3, 2, 3)
    np.testing.assert_allclose(np.sort(nc.sizes), [0.5, 0.5, 4.0])
    [(neuron, line)] = nc.kinks[0]
    assert neuron == 0 and line.length == pytest.approx(2.0)
    check_regions(net, dom, nc)


def test_kinks_are_the_interior_edges():
    """Every interior edge is a kink: the perimeters count each twice, the domain boundary once."""
    net, dom = MLP(2, "scalar", 8, 2, "relu", key=jax.random.PRNGKey(1)), square(-2, 2)
    nc = covers(net, dom)
    kink_length = sum(g.length for layer in nc.kinks for _, g in layer)
    perimeters = shapely.length(nc.regions).sum()
    assert perimeters - dom.shape.length == pytest.approx(2 * kink_length, rel=1e-10)


def test_pieces_merge_regions_with_the_same_map():
    # 1D: the second neuron bends at 1/2 but its output weight is 0
    net = MLP.from_arrays([[[1.0], [1.0]], [[1.0, 0.0]]], [[0.0, -0.5], [0.0]], "relu")
    nc = covers(net, nmm.Domain.interval(-1, 1))
    assert (nc.n_regions, nc.n_pieces) == (3, 2)
    np.testing.assert_array_equal(nc.piece_of, [0, 1, 1])
    # 2D: relu(x) + 0 * relu(y - 1/2): four regions, two pieces (x < 0 and x > 0)
    net = MLP.from_arrays([np.eye(2), [[1.0, 0.0]]], [[0.0, -0.5], [0.0]], "relu")
    nc = covers(net, square(-1, 1))
    assert (nc.n_regions, nc.n_pieces) == (4, 2)
    check_regions(net, square(-1, 1), nc)


def test_vector_output_and_compare():
    net, dom = MLP(2, 3, 6, 2, "hat", key=jax.random.PRNGKey(2)), square(-1, 1)
    nc = covers(net, dom)
    assert nc.slopes.shape == (nc.n_regions, 3, 2) and nc.intercepts.shape == (nc.n_regions, 3)
    y = evaluate(net, nc.points)[1]
    np.testing.assert_allclose(
        np.einsum("rod,rd->ro", nc.slopes, nc.points) + nc.intercepts, y, atol=1e-12
    )
    dom1 = nmm.Domain.interval(0, 1)
    space = nmm.ManifoldSpace(nmm.MathCover.intervals(dom1, 8), dom1, degree=1)
    got = covers(tent_map(3), dom1).compare(space)
    assert got == dict(
        regions=8,
        patterns=8,
        pieces=8,
        params=tent_map(3).n_params,
        elements=space.n_elements,
        covers=space.n_covers,
        dofs=space.n_dofs,
    )
    with pytest.raises(ValueError, match="space has dimension 1"):
        nc.compare(space)


def test_bound_values():
    assert shallow_bound(3, 2) == 7 and shallow_bound(0, 2) == 1 and shallow_bound(5, 1) == 6
    assert shallow_bound(10, 10) == 2**10
    assert deep_bound_1d([2, 2]) == 9 and deep_bound_1d([4], kinks_per_neuron=3) == 13
    big = shallow_bound(100, 3)
    assert isinstance(big, int) and big == 1 + 100 + 4950 + 161700
    net = MLP(2, "scalar", [4, 3], None, "hat", key=jax.random.PRNGKey(0))
    assert region_bound(net) == shallow_bound(12, 2) * shallow_bound(9, 2)
    assert region_bound(net, in_dim=1) == deep_bound_1d([4, 3], 3) == 13 * 10
    for args, match in [((-1, 2), "n_hyperplanes"), ((3, 0), "in_dim"), ((2.5, 1), "n_hyperplanes")]:
        with pytest.raises(ValueError, match=match):
            shallow_bound(*args)
    with pytest.raises(ValueError, match="widths"):
        deep_bound_1d([])
    with pytest.raises(ValueError, match="kinks_per_neuron"):
        deep_bound_1d([2], kinks_per_neuron=0)
    with pytest.raises(ValueError, match="in_dim"):
        region_bound(net, in_dim=0)


@pytest.mark.parametrize("activation", ["relu", "hat"])
def test_counts_within_bounds(activation):
    k = len(KINKS[activation])
    for seed in range(4):
        key = jax.random.PRNGKey(seed)
        net = MLP(1, "scalar", [6, 5, 4], None, activation, key=key)
        dom = nmm.Domain.interval(-4, 4)
        nc = covers(net, dom)
        assert nc.n_regions <= region_bound(net) == deep_bound_1d(net.widths, k)
        for l, n in enumerate(nc.layer_regions, start=1):
            assert n <= deep_bound_1d(net.widths[:l], k)
        # 1D: the regions are the runs of one pattern along a dense grid
        grid = np.asarray(grid_keys(net, np.linspace(-4, 4, 400_001)[:, None]))
        assert nc.n_regions == 1 + np.count_nonzero(np.diff(grid))
        check_regions(net, dom, nc)
        net = MLP(2, "scalar", [6, 5], None, activation, key=key)
        nc = covers(net, square(-3, 3))
        assert nc.n_patterns == nc.n_regions <= region_bound(net)
        assert nc.layer_regions[0] <= shallow_bound(k * 6, 2)


def test_errors():
    key = jax.random.PRNGKey(0)
    sq, line = nmm.Domain.polygon(SQUARE), nmm.Domain.interval(0, 1)
    for activation in ("tanh", "sin"):
        net = MLP(2, "scalar", 4, 1, activation, key=key)
        with pytest.raises(ValueError, match=f"activation '{activation}'.*piecewise-linear"):
            covers(net, sq)
        with pytest.raises(ValueError, match="piecewise-linear"):
            region_bound(net)
    net = MLP(2, "scalar", 4, 1, "relu", key=key, fourier_features=3)
    with pytest.raises(ValueError, match="Fourier.*piecewise-linear"):
        covers(net, sq)
    with pytest.raises(
        ValueError, match=r"max_regions=100 regions: reached 101 in hidden layer 7 of 10"
    ):
        covers(tent_map(10), line, max_regions=100)
    net = MLP(2, "scalar", 4, 1, "relu", key=key)
    with pytest.raises(ValueError, match="domain has dimension 1 but net.in_size is 2"):
        covers(net, line)
    with pytest.raises(TypeError, match="domain must be an nmm.Domain"):
        covers(net, SQUARE)
    with pytest.raises(TypeError, match="net must be an nmm_nn.MLP"):
        covers(lambda x: x, sq)
    with pytest.raises(ValueError, match="max_regions must be an integer >= 1"):
        covers(net, sq, max_regions=0)
    with pytest.raises(ValueError, match="tol must be"):
        covers(net, sq, tol=-1.0)
    with pytest.raises(ValueError, match="depth"):
        tent_map(0)
