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


@eqx.filter_jit
def _features(net, x, xb):
    """The last hidden layer and 1, with their gradients, at the points ``x`` and ``xb``."""
    feats = lambda y: jnp.concatenate([net.hidden(y), jnp.ones(1)])  # noqa: E731
    both = lambda y: (jax.vmap(feats)(y), jax.vmap(jax.jacfwd(feats))(y))  # noqa: E731
    return (*both(x), *both(xb))


def _output_layer_functional(task, net, source):
    """The task's functional written out here (not Task.energy), on the task's own rule, as a
    function of the output layer θ = (weights, bias) of ``net`` (u = θ·h with h the last hidden
    layer and 1): the fit ½ Σ w (u − f)², or for -Δu = f, u = 0 on the unit square's boundary
    (Nitsche, k = 1, β = β0 (p + w)² / h = 100 · 4 / (0.2 √2), the longest edge of the cover's
    triangles) Σ w (½ |∇u|² − f u) + Σ_Γ w (½ β u² − ∂u/∂n u). Also returns its minimiser by
    numpy least squares."""
    w, nb, wb = (np.asarray(a) for a in (task.weights, task.b_normal, task.b_weights))
    F, G, Fb, dFb = (np.asarray(a) for a in _features(net, task.points, task.b_points))
    f = np.asarray(jax.vmap(source)(task.points))
    if task.kind == "fit":
        theta = np.linalg.lstsq(np.sqrt(w)[:, None] * F, np.sqrt(w) * f, rcond=None)[0]
        return (lambda t: 0.5 * np.sum(w * (F @ t - f) ** 2)), theta
    dFb = np.einsum("nid,nd->ni", dFb, nb)
    beta = 100.0 * 4 / (0.2 * np.sqrt(2))

    def functional(t):
        u, du, ub = F @ t, np.einsum("nid,i->nd", G, t), Fb @ t
        volume = np.sum(w * (0.5 * np.sum(du**2, 1) - f * u))
        return volume + np.sum(wb * (0.5 * beta * ub**2 - (dFb @ t) * ub))

    # the Hessian H (symmetrised Nitsche term) and b = Σ w f h: the minimiser solves H θ = b
    H = np.einsum("n,nid,njd->ij", w, G, G) + np.einsum("n,ni,nj->ij", wb, beta * Fb - 2 * dFb, Fb)
    theta = np.linalg.lstsq(0.5 * (H + H.T), F.T @ (w * f), rcond=None)[0]
    return functional, theta


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_cover_solve_never_worse_than_training(activation):
    """Both losses of cover_solve against the functional written out by hand (measured <= 2.4e-14
    relative, bound 1e-12), and the solved loss against the minimum over the output layer
    computed here by numpy least squares (measured up to 1e-10 relative above it: the tanh
    features' Hessian has a condition number of 2e12; bound 1e-9)."""
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    space = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.2), dom, degree=1)
    exact = lambda x: jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])  # noqa: E731
    source = lambda x: 2 * jnp.pi**2 * exact(x)  # noqa: E731
    fit = Task.fit(exact, space)
    poisson = Task.poisson(nmm.Poisson(f=source, dirichlet=0.0), space, exact=exact)
    for task, data in ((fit, exact), (poisson, source)):
        net = MLP(2, "scalar", 16, 2, activation, key=jr.PRNGKey(4))
        trained, hist = train(net, task, steps=200, chunk=100, learning_rate=1e-2, progress=False)
        res = cover_solve(trained, task)
        scale = abs(res.loss_trained) + abs(res.loss)
        assert res.gap >= -1e-10 * scale
        by_hand, theta = _output_layer_functional(task, trained, data)
        output = lambda n: np.r_[n.weights[-1][0], n.biases[-1]]  # noqa: E731
        np.testing.assert_allclose(res.loss_trained, by_hand(output(trained)), rtol=1e-12)
        np.testing.assert_allclose(res.loss, by_hand(output(res.net)), rtol=1e-12)
        minimum = by_hand(theta)
        assert minimum - 1e-9 * abs(minimum) <= res.loss <= minimum + 1e-9 * abs(minimum)
        assert res.errors["L2"] <= res.errors_trained["L2"] * 1.5  # usually much better


def test_functional_dof_below_parameter_count():
    kinks = np.array([-0.7, -0.2, 0.1, 0.45, 0.8])
    rng = np.random.default_rng(0)
    net = MLP.from_arrays([np.ones((5, 1)), rng.standard_normal((1, 5))], [-kinks, np.zeros(1)], "relu")
    x = np.linspace(-1, 1, 400)
    dof = functional_dof(net, x)
    # 3n + 1 parameters, one positive scaling per neuron unidentifiable: rank 2n + 1
    assert dof.n_params == 16 and dof.rank == 11 and dof.n_points == 400
    # known dependence: a copy of the first neuron adds nothing, a neuron dead on [-1, 1] (kink at
    # 2) nothing, one active everywhere (kink at -2) the function x: the span becomes
    # {1, x, H(x - k_i), x H(x - k_i)}: rank 2n + 2 = 12 of 25 parameters (a clear gap: 6e-3, 1e-16)
    more = np.r_[kinks, -0.7, 2.0, -2.0]
    net8 = MLP.from_arrays([np.ones((8, 1)), rng.standard_normal((1, 8))], [-more, np.zeros(1)], "relu")
    dom = nmm.Domain.interval(-1.0, 1.0)
    space = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 10), dom, degree=0)
    d2 = functional_dof(net8, x, space)
    assert d2.n_params == 25 and d2.rank == 12 and d2.n_dofs == 11
    field = nmm.fit(space, lambda x: jnp.sin(3 * x[0]))
    d3 = functional_dof(field, x)  # a field's parameters are its coefficients: hats are independent
    assert d3.rank == d3.n_params == space.n_dofs == 11
    # hats × P1 on 10 cells span the continuous piecewise quadratics: 2 · 10 + 1 = 21 of 22
    # coefficients (Σ_i w_i(x) (x − x_i) = 0 is the one dependence; singular values 4e-2, 7e-17)
    V1 = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 10), dom, degree=1)
    d4 = functional_dof(nmm.Field(V1, jnp.zeros(V1.n_dofs)), x)
    assert d4.n_params == 22 and d4.rank == 21
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
