"""Data as leaves: gradients of solves with respect to a coefficient given as a number, an array of
parameters, an ``nmm.Field`` and an MLP, for a linear and a nonlinear form, against central finite
differences (directional, along a random direction for the many-parameter kinds)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from test_newton import QuasiLinear  # the tests directory is on the path

import nmm
from nmm_nn import MLP


@pytest.fixture(scope="module")
def setup():
    dom = nmm.Domain.polygon(
        [(0, 0), (1, 0), (1, 1), (0, 1)],
        holes=[[(0.3, 0.3), (0.6, 0.35), (0.5, 0.6)]],
        cracks=[[(0.7, 0.2), (0.8, 0.7)]],
    )
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.2, offset=(0.2, 0.1)), dom, degree=1)
    W = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.35, offset=(0.05, 0.3)), dom, degree=1)
    pts = jnp.array([[0.5, 0.8], [0.2, 0.2], [0.75, 0.5], [0.9, 0.1]])
    return V, W, pts


# data defined once: a new function object is a new static argument, hence a new compilation
def boundary_value(x, *params):
    return 0.2 * x[0] - 0.1 * x[1]


def source(x, *params):
    return 1.0 + x[1]


def make_form(kind, coefficient):
    if kind == "linear":
        return nmm.Poisson(k=coefficient, f=source, dirichlet=boundary_value)
    return QuasiLinear(a=coefficient, f=source, dirichlet=boundary_value)


def objective(V, pts, kind, coefficient, params=None):
    newton = nmm.Newton(rtol=1e-14)
    u = nmm.solve(V, make_form(kind, coefficient), params=params, newton=newton)
    return jnp.sum(u(pts) ** 2) + jnp.sum(u.grad(pts)[:, 0])


def directional_fd(fn, theta, direction, h=1e-5):
    return (fn(theta + h * direction) - fn(theta - h * direction)) / (2 * h)


# fast: a number as an array leaf takes the arrays' path (test_array_of_parameters) and a closure's
@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=pytest.mark.slow) for k in ("linear", "nonlinear")]
)
def test_number(setup, kind):
    V, _, pts = setup
    fn = lambda k: objective(V, pts, kind, k)  # noqa: E731
    k = jnp.asarray(1.5)  # an array: new values do not recompile (a Python float is static)
    g = jax.grad(fn)(k)
    assert g != 0
    np.testing.assert_allclose(g, directional_fd(fn, k, 1.0), rtol=1e-6)


@pytest.mark.parametrize("kind", ["linear", pytest.param("nonlinear", marks=pytest.mark.slow)])
def test_array_of_parameters(setup, kind):
    V, _, pts = setup
    coefficient = lambda x, th: th[0] + th[1] * x[0] + th[2] * x[1] ** 2  # noqa: E731
    fn = lambda th: objective(V, pts, kind, coefficient, params=th)  # noqa: E731
    th = jnp.array([1.2, 0.4, -0.3])
    g = jax.grad(fn)(th)
    assert np.all(np.asarray(g) != 0)
    direction = jnp.array([0.3, -1.0, 0.7])
    np.testing.assert_allclose(g @ direction, directional_fd(fn, th, direction), rtol=1e-6)


# fast: numbers, arrays and MLPs as data take the same path (a field datum is one more leaf)
@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=pytest.mark.slow) for k in ("linear", "nonlinear")]
)
def test_field(setup, kind):
    """The coefficient is an NMM field on another cover of the domain (identification)."""
    V, W, pts = setup
    k0 = nmm.fit(W, lambda x: 1.5 + 0.5 * x[0] * x[1])

    def fn(c):
        return objective(V, pts, kind, nmm.Field(W, c, k0.info))

    g = jax.grad(fn)(k0.coeffs)
    direction = jr.normal(jr.PRNGKey(1), g.shape)
    assert np.count_nonzero(np.asarray(g)) > 0.5 * g.size
    np.testing.assert_allclose(g @ direction, directional_fd(fn, k0.coeffs, direction), rtol=1e-6)


@pytest.mark.parametrize("kind", ["linear", pytest.param("nonlinear", marks=pytest.mark.slow)])
def test_mlp(setup, kind):
    """The coefficient is a network k(x) = MLP(x) (positive: output bias 2)."""
    V, _, pts = setup
    net = MLP(2, "scalar", width=8, depth=2, activation="tanh", key=jr.PRNGKey(0))
    net = eqx.tree_at(lambda n: n.biases[-1], net, jnp.array([2.0]))
    arrays, static = eqx.partition(net, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(arrays)

    def fn(theta):
        return objective(V, pts, kind, eqx.combine(unravel(theta), static))

    g = jax.grad(fn)(flat)
    direction = jr.normal(jr.PRNGKey(2), flat.shape)
    assert np.count_nonzero(np.asarray(g)) > 0.5 * g.size
    np.testing.assert_allclose(g @ direction, directional_fd(fn, flat, direction), rtol=1e-6)
    # and through the module itself, as a user would write it
    gm = eqx.filter_grad(lambda n: objective(V, pts, kind, n))(net)
    np.testing.assert_allclose(ravel_pytree(eqx.filter(gm, eqx.is_inexact_array))[0], g, rtol=1e-10)


def test_closure_over_a_traced_value(setup):
    """A plain lambda that closes over the differentiated value (no params) still differentiates."""
    V, _, pts = setup

    def fn(s):
        return objective(V, pts, "linear", lambda x: 1.0 + s * x[0])

    s = jnp.asarray(0.5)
    np.testing.assert_allclose(jax.grad(fn)(s), directional_fd(fn, s, 1.0), rtol=1e-6)


def test_jit_vmap_grad_compose(setup):
    V, _, pts = setup
    coefficient = lambda x, th: th[0] + th[1] * x[0]  # noqa: E731
    fn = lambda th: objective(V, pts, "linear", coefficient, params=th)  # noqa: E731
    ths = jnp.array([[1.0, 0.1], [1.5, -0.2], [2.0, 0.3]])
    batched = jax.vmap(jax.grad(fn))(ths)
    jitted = jax.jit(jax.vmap(jax.grad(fn)))(ths)
    looped = np.stack([jax.grad(fn)(t) for t in ths])
    np.testing.assert_allclose(batched, looped, rtol=1e-10)
    # the solve is jitted inside: the outer jit is checked against differences, not against
    # the eager gradient (measured 4e-8 relative; values from value_and_grad: no new compile)
    value = lambda t: jax.value_and_grad(fn)(t)[0]  # noqa: E731
    fd = np.array([directional_fd(value, ths[1], e) for e in jnp.eye(2)])
    np.testing.assert_allclose(jitted[1], fd, rtol=1e-6)
