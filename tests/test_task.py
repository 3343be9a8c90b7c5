"""Task: the discrete functional is the one nmm minimises; networks and fields see the same numbers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import nmm
from nmm_nn import MLP, Task

EXACT = lambda x: jnp.sin(2 * x[0]) * jnp.exp(x[1])  # noqa: E731
K = lambda x: 1.0 + 0.5 * x[0]  # noqa: E731


def _data(exact, k):
    div = lambda x: jnp.trace(jax.jacfwd(lambda y: k(y) * jax.grad(exact)(y))(x))  # noqa: E731
    flux = lambda x, n: k(x) * jnp.dot(jax.grad(exact)(x), n)  # noqa: E731
    return dict(k=k, f=lambda x: -div(x), dirichlet=exact, neumann=flux)


@pytest.fixture(scope="module")
def space():
    th = np.linspace(0, 2 * np.pi, 25)[:-1]
    dom = nmm.Domain.polygon(
        [(0, 0), (1, 0), (1, 1), (0, 1)], holes=[np.c_[0.5 + 0.2 * np.cos(th), 0.5 + 0.2 * np.sin(th)]]
    )
    return nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.125, offset=(0.3, 0.1)), dom, degree=1)


@pytest.mark.parametrize("bc", ["nitsche", "penalty"])
def test_nmm_solution_is_the_minimiser(space, bc):
    prob = nmm.Poisson(bc=bc, dirichlet_on=lambda p: p[:, 0] < 0.99, **_data(EXACT, K))
    u = nmm.solve(space, prob)
    task = Task.poisson(prob, space, exact=EXACT)

    def loss_of(coeffs):
        return task.field_loss(nmm.Field(space, coeffs, u.stats))

    g_star = jax.grad(loss_of)(u.coeffs)
    g_zero = jax.grad(loss_of)(jnp.zeros_like(u.coeffs))
    assert np.linalg.norm(g_star) <= 1e-8 * np.linalg.norm(g_zero)
    # a network-like callable sees the same number, and the same errors as nmm.errors
    as_callable = lambda x: u(x[None])[0]  # noqa: E731
    assert np.isclose(float(task.loss(as_callable)), float(loss_of(u.coeffs)), rtol=1e-12)
    mine, ref = task.errors(as_callable), nmm.errors(u, EXACT)
    assert np.isclose(mine["L2"], ref["L2"], rtol=1e-10) and np.isclose(
        mine["H1"], ref["H1"], rtol=1e-10
    )


def test_fit_callable_and_samples(space):
    task = Task.fit(EXACT, space)
    u = nmm.fit(space, EXACT)
    g = jax.grad(lambda c: task.field_loss(nmm.Field(space, c, u.stats)))(u.coeffs)
    assert np.linalg.norm(g) <= 1e-10
    assert task.has_exact  # the target is the exact solution of a fit
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, (400, 2))
    pts = pts[np.hypot(pts[:, 0] - 0.5, pts[:, 1] - 0.5) > 0.22]
    vals = np.asarray(jax.vmap(EXACT)(jnp.asarray(pts)))
    ts = Task.fit((pts, vals), space)
    us = nmm.fit(space, (pts, vals))
    gs = jax.grad(lambda c: ts.field_loss(nmm.Field(space, c, us.stats)))(us.coeffs)
    assert np.linalg.norm(gs) <= 1e-10 * np.linalg.norm(vals)


def test_pinn_residual_vanishes_at_the_exact_solution(space):
    prob = nmm.Poisson(dirichlet_on=lambda p: p[:, 0] < 0.99, **_data(EXACT, K))
    task = Task.poisson(prob, space, form="pinn")
    assert abs(float(task.loss(EXACT))) <= 1e-20
    assert float(task.loss(lambda x: EXACT(x) + 0.01 * x[0] ** 2)) > 1e-6


def test_loss_gradient_against_finite_differences(space):
    prob = nmm.Poisson(**_data(EXACT, K))
    net = MLP(2, "scalar", 8, 2, "tanh", key=jr.PRNGKey(0))
    for form in ("ritz", "pinn"):
        task = Task.poisson(prob, space, form=form)
        g = jax.grad(task.loss)(net).weights[1]
        e = jnp.zeros_like(net.weights[1]).at[2, 3].set(1.0)

        def at(t, e=e, task=task):
            return float(task.loss(eqx.tree_at(lambda n: n.weights[1], net, net.weights[1] + t * e)))

        fd = (at(1e-6) - at(-1e-6)) / 2e-6
        assert np.isclose(float(g[2, 3]), fd, rtol=1e-6)


def test_bad_input(space):
    with pytest.raises(ValueError, match="values contains non-finite"):
        Task.fit((np.zeros((3, 2)), np.array([0.0, np.nan, 1.0])))
    with pytest.raises(ValueError, match="points contains non-finite"):
        Task.fit((np.array([[0.0, np.inf]]), np.array([1.0])))
    with pytest.raises(ValueError, match="target values contains non-finite"):
        Task.fit(lambda x: jnp.log(x[0] - 2.0), space)
    with pytest.raises(TypeError, match="space"):
        Task.fit(EXACT)
    with pytest.raises(ValueError, match="form must be one of"):
        Task.poisson(nmm.Poisson(f=1.0, dirichlet=0.0), space, form="galerkin")
    with pytest.raises(ValueError, match="boundary_weight"):
        Task.poisson(nmm.Poisson(f=1.0, dirichlet=0.0), space, boundary_weight=-1.0)
    with pytest.raises(ValueError, match="no exact solution"):
        Task.poisson(nmm.Poisson(f=1.0, dirichlet=0.0), space).errors(EXACT)
