"""grad, vmap and jit of solves: adjoint gradients vs finite differences, batches vs loops, reuse of
compiled code."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nmm


def domain():
    return nmm.Domain.polygon(
        [(0, 0), (1, 0), (1, 1), (0, 1)],
        holes=[[(0.3, 0.3), (0.6, 0.35), (0.5, 0.6)]],
        cracks=[[(0.7, 0.2), (0.8, 0.7)]],
    )


def space(**kw):
    dom = domain()
    return nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.15, offset=(0.2, 0.1)), dom, degree=1, **kw)


@pytest.fixture(scope="module")
def setup():
    V = space()
    calls = {"f": 0}

    def f(x, th):
        calls["f"] += 1  # counts traces: a cached compilation does not call it again
        return th[0] * jnp.sin(3 * x[0]) + th[1] * x[1] ** 2

    problem = nmm.Poisson(k=lambda x, th: 1.0 + th[2] * x[0], f=f, dirichlet=lambda x, th: th[0] * x[1])
    pts = jnp.array([[0.5, 0.8], [0.2, 0.2], [0.75, 0.5], [0.9, 0.1]])
    return V, problem, pts, calls


@pytest.mark.slow  # fast: tests/test_gradients.py::test_number, test_field (linear)
def test_grad_matches_finite_differences(setup):
    V, problem, pts, _ = setup

    def objective(th):
        u = nmm.solve(V, problem, params=th)
        return jnp.sum(u(pts) ** 2) + jnp.sum(u.grad(pts)[:, 0])

    th = jnp.array([1.0, 2.0, 0.5])
    g = jax.grad(objective)(th)
    h = 1e-5
    fd = jnp.array([(objective(th + h * e) - objective(th - h * e)) / (2 * h) for e in jnp.eye(3)])
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    # under an outer jit too (nmm.solve is jitted inside, so comparing with the eager gradient
    # would compare the code with itself: the reference is the differences)
    np.testing.assert_allclose(jax.jit(jax.grad(objective))(th), fd, rtol=1e-6)


@pytest.mark.slow  # vmap of solves stays fast in test_linalg and test_references
def test_vmap_over_64_sources_equals_loop(setup):
    V, problem, pts, _ = setup
    ths = jnp.stack([jnp.array([1.0, 2.0, 0.5]) * (1 + 0.02 * i) for i in range(64)])
    batched = jax.vmap(lambda th: nmm.solve(V, problem, params=th)(pts))(ths)
    # every eighth member solved on its own (the batch is the point; eight eager solves suffice)
    looped = jnp.stack([nmm.solve(V, problem, params=th)(pts) for th in ths[::8]])
    np.testing.assert_allclose(batched[::8], looped, rtol=1e-12, atol=1e-14)


def test_new_data_same_shape_does_not_recompile(setup):
    V, problem, pts, calls = setup
    nmm.solve(V, problem, params=jnp.array([1.0, 2.0, 0.5]))
    before = calls["f"]
    for s in (1.1, 1.3, 0.7):
        nmm.solve(V, problem, params=jnp.array([1.0, 2.0, 0.5]) * s)
    assert calls["f"] == before


def test_cg_agrees_with_direct_and_is_differentiable(setup):
    V, problem, pts, _ = setup
    th = jnp.array([1.0, 2.0, 0.5])
    ud = nmm.solve(V, problem, params=th)
    uc = nmm.solve(V, problem, params=th, solver="cg")
    np.testing.assert_allclose(uc(pts), ud(pts), rtol=1e-9)
    gd = jax.grad(lambda t: jnp.sum(nmm.solve(V, problem, params=t)(pts) ** 2))(th)
    gc = jax.grad(lambda t: jnp.sum(nmm.solve(V, problem, params=t, solver="cg")(pts) ** 2))(th)
    np.testing.assert_allclose(gc, gd, rtol=1e-7)


def test_field_evaluation_under_jit_and_vmap(setup):
    """A field with known coefficients: each physical cover's constant term is g(its node) for a
    linear g, so the hats (a partition of unity that reproduces linears, also across the crack
    and around the hole) make u = g and ∇u = ∇g exactly. Under jit, vmap and plain calls the
    values equal g (measured 4e-16, bound 1e-14), not merely each other."""
    _, _, pts, _ = setup
    # the plain cover functions (Legendre terms of the patch box), where coefficient 0 of a cover
    # is its constant term; the default p >= 1 basis is orthonormalised per cover (nmm.stable)
    V = space(stable=False)
    g = lambda p: 0.3 + 1.7 * p[..., 0] - 0.6 * p[..., 1]  # noqa: E731
    topo = V.host.topology
    nodes = np.asarray(V.host.cover.nodes)[topo.cover_node]
    u = nmm.Field(V, jnp.zeros(V.n_dofs).at[:: V.n_terms].set(g(nodes)))
    exact = g(np.asarray(pts))
    jitted, grads = jax.jit(lambda f, x: (f(x), f.grad(x)))(u, pts)
    for vals in (u(pts), jitted, jax.vmap(u)(pts)):
        np.testing.assert_allclose(vals, exact, rtol=0, atol=1e-14)
    # measured 2.4e-15
    np.testing.assert_allclose(grads, np.tile([1.7, -0.6], (len(pts), 1)), rtol=0, atol=2e-14)
