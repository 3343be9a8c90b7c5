"""Bridge: exact ReLU networks of NMM fields, output layers solved on covers, functional DOF."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import shapely

import nmm
from nmm_nn import MLP, Task, cover_solve, functional_dof, to_mlp, train

EXACT2 = lambda x: jnp.sin(3 * x[0]) * jnp.cos(2 * x[1])  # noqa: E731


@pytest.fixture(scope="module")
def field_2d():
    th = np.linspace(0, 2 * np.pi, 41)[:-1]
    hole = np.c_[0.5 + 0.2 * np.cos(th), 0.5 + 0.2 * np.sin(th)]
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0.5, 1.2), (0, 1)], holes=[hole])
    space = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.08, offset=(0.3, 0.6)), dom, degree=0)
    prob = nmm.Poisson(f=lambda x: 13 * EXACT2(x), dirichlet=EXACT2)
    return space, prob, nmm.solve(space, prob)


def _points_in(dom, n, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = dom.bounds
    pts = rng.uniform(lo, hi, (4 * n, 2))
    return pts[shapely.contains_xy(dom.shape, pts[:, 0], pts[:, 1])][:n]


def _rel_max(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def test_to_mlp_1d_equals_the_field():
    rng = np.random.default_rng(1)
    dom = nmm.Domain.interval(-0.3, 2.1)
    nodes = np.sort(np.r_[-0.5, rng.uniform(-0.3, 2.1, 40), 2.2])
    space = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, nodes=nodes), dom, degree=0)
    u = nmm.fit(space, lambda x: jnp.sin(3 * x[0]) + x[0] ** 2)
    net = to_mlp(u)
    assert net.depth == 1 and net.activation == "relu"
    x = rng.uniform(-0.3, 2.1, 10_000)
    assert _rel_max(jax.vmap(net)(x[:, None]), u(x)) <= 1e-12


def test_to_mlp_2d_equals_the_field(field_2d):
    space, _, u = field_2d
    net = to_mlp(u)
    assert net.depth == 2
    pts = _points_in(space.domain, 10_000)
    assert len(pts) == 10_000
    assert _rel_max(jax.vmap(net)(jnp.asarray(pts)), u(pts)) <= 1e-12


def test_cover_solve_recovers_the_nmm_solution(field_2d):
    space, prob, u = field_2d
    task = Task.poisson(prob, space, exact=EXACT2)
    net = to_mlp(u)
    scrambled = eqx.tree_at(lambda n: n.weights[-1], net, jnp.full_like(net.weights[-1], 0.3))
    res = cover_solve(scrambled, task)
    pts = _points_in(space.domain, 2000, seed=3)
    assert _rel_max(jax.vmap(res.net)(jnp.asarray(pts)), u(pts)) <= 1e-9
    assert np.isclose(res.loss, float(task.field_loss(u)), rtol=1e-10)
    assert res.gap > 0 and res.n_features == space.n_dofs + 1
    assert res.rank == space.n_dofs  # hats sum to one: the constant feature is dependent
    ref = nmm.errors(u, EXACT2)
    assert np.isclose(res.errors["L2"], ref["L2"], rtol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_cover_solve_never_worse_than_training(activation):
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    space = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.2), dom, degree=1)
    exact = lambda x: jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])  # noqa: E731
    fit = Task.fit(exact, space)
    poisson = Task.poisson(
        nmm.Poisson(f=lambda x: 2 * jnp.pi**2 * exact(x), dirichlet=0.0), space, exact=exact
    )
    for task in (fit, poisson):
        net = MLP(2, "scalar", 16, 2, activation, key=jr.PRNGKey(4))
        trained, hist = train(net, task, steps=200, chunk=100, learning_rate=1e-2, progress=False)
        res = cover_solve(trained, task)
        scale = abs(res.loss_trained) + abs(res.loss)
        assert res.gap >= -1e-10 * scale
        assert np.isclose(res.loss_trained, float(task.loss(trained)))
        assert res.errors["L2"] <= res.errors_trained["L2"] * 1.5  # usually much better


def test_functional_dof_below_parameter_count():
    kinks = np.array([-0.7, -0.2, 0.1, 0.45, 0.8])
    rng = np.random.default_rng(0)
    net = MLP.from_arrays([np.ones((5, 1)), rng.standard_normal((1, 5))], [-kinks, np.zeros(1)], "relu")
    x = np.linspace(-1, 1, 400)
    dof = functional_dof(net, x)
    # 3n + 1 parameters, one positive scaling per neuron unidentifiable: rank 2n + 1
    assert dof.n_params == 16 and dof.rank == 11 and dof.n_points == 400
    dom = nmm.Domain.interval(-1.0, 1.0)
    space = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 10), dom, degree=0)
    deep = MLP(1, "scalar", 8, 3, "tanh", key=jr.PRNGKey(0))
    d2 = functional_dof(deep, x, space)
    assert d2.rank <= min(d2.n_params, 400) and d2.n_dofs == 11
    assert np.all(np.diff(d2.singular_values) <= 0)
    field = nmm.fit(space, lambda x: jnp.sin(3 * x[0]))
    d3 = functional_dof(field, x)  # a field's parameters are its coefficients: hats are independent
    assert d3.rank == d3.n_params == space.n_dofs == 11
    with pytest.raises(ValueError, match="points must have shape"):
        functional_dof(net, np.zeros((5, 2)))


def test_bad_input(field_2d):
    space, prob, u = field_2d
    dom = nmm.Domain.interval(0.0, 1.0, cracks=[0.55])
    cracked = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 8), dom, degree=0)
    with pytest.raises(ValueError, match="physical covers"):
        to_mlp(nmm.fit(cracked, lambda x: x[0]))
    with pytest.raises(ValueError, match="degree 0"):
        to_mlp(nmm.fit(nmm.ManifoldSpace(space.cover, space.domain, degree=1), EXACT2))
    square = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    grid = nmm.ManifoldSpace(nmm.MathCover.grid(square, 0.25), square, degree=0)
    with pytest.raises(ValueError, match="'quad' cover"):
        to_mlp(nmm.fit(grid, EXACT2))
    with pytest.raises(TypeError, match="field"):
        to_mlp(jnp.zeros(3))
    task = Task.poisson(prob, space)
    with pytest.raises(ValueError, match="in_size"):
        cover_solve(MLP(1, "scalar", 4, 1, key=jr.PRNGKey(0)), task)
