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


@pytest.mark.parametrize("bc", [pytest.param("nitsche", marks=pytest.mark.slow), "penalty"])
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


@pytest.mark.slow  # fast: test_sample_fit_of_a_vector_space
def test_vector_form_task_is_the_solver_functional():
    """Elasticity (a vector form) on the same functional: the Ritz task is stationary at the NMM
    solution, its errors are nmm.errors, and the PINN residual vanishes at the exact field."""
    th = np.linspace(0, 2 * np.pi, 33)[:-1]
    hole = np.c_[0.7 + 0.2 * np.cos(th), 0.5 + 0.2 * np.sin(th)]
    dom = nmm.Domain.polygon([(0, 0), (2, 0), (2, 1), (0, 1)], holes=[hole])
    V = nmm.ManifoldSpace(
        nmm.MathCover.triangles(dom, 0.3, offset=(0.31, 0.17)), dom, degree=1, components=2
    )
    ex = lambda x: jnp.array([jnp.sin(x[0]) * x[1], jnp.cos(x[1]) + 0.1 * x[0] ** 2])  # noqa: E731
    plain = nmm.Elasticity(E=100.0, nu=0.3)

    def body(x):
        sig = lambda y: plain.stress(y, jax.jacfwd(ex)(y), None)  # noqa: E731
        return -jnp.einsum("ijj->i", jax.jacfwd(sig)(x))

    traction = lambda x, n: plain.stress(x, jax.jacfwd(ex)(x), None) @ n  # noqa: E731
    form = nmm.Elasticity(
        E=100.0,
        nu=0.3,
        body_force=body,
        dirichlet=nmm.Dirichlet(ex, on=lambda p: p[:, 0] < 1e-9),
        neumann=traction,
    )
    u = nmm.solve(V, form)
    task = Task.pde(form, V, exact=ex)

    def loss_of(c):
        return task.field_loss(nmm.Field(V, c, u.info))

    assert np.linalg.norm(jax.grad(loss_of)(u.coeffs)) <= 1e-10 * np.linalg.norm(
        jax.grad(loss_of)(jnp.zeros_like(u.coeffs))
    )
    mine, ref = task.errors(lambda x: u(x[None])[0]), nmm.errors(u, ex)
    assert np.isclose(mine["L2"], ref["L2"], rtol=1e-10) and np.isclose(
        mine["H1"], ref["H1"], rtol=1e-10
    )
    pinn = Task.pde(form, V, functional="pinn")
    assert abs(float(pinn.loss(ex))) < 1e-20
    assert float(pinn.loss(lambda x: ex(x) + 0.01 * x[0] ** 2)) > 1e-4


def test_functional_values_against_closed_forms(space):
    """The fit functional is ½ ∫ (u − f)²: a unit shift costs half the area. A constant shift of
    the exact solution leaves the PINN interior residual at zero and costs ½ λ ∫_Γ 0.1² on the
    Dirichlet boundary, in proportion to the boundary weight λ."""
    area = space.domain.measure
    fit = Task.fit(EXACT, space)
    np.testing.assert_allclose(float(fit.loss(lambda x: EXACT(x) + 1.0)), 0.5 * area, rtol=1e-12)
    prob = nmm.Poisson(**_data(EXACT, K))  # Dirichlet on all of ∂Ω (the outer square, the hole)
    shifted = lambda x: EXACT(x) + 0.1  # noqa: E731
    one = float(Task.poisson(prob, space, form="pinn").loss(shifted))
    three = float(Task.poisson(prob, space, form="pinn", boundary_weight=3.0).loss(shifted))
    perimeter = 4.0 + 2 * np.pi * 0.2  # the 24-gon's perimeter is within 0.3 % of the circle's
    np.testing.assert_allclose(one, 0.5 * 0.01 * perimeter, rtol=5e-3)
    np.testing.assert_allclose(three, 3 * one, rtol=1e-12)


def test_sample_fit_of_a_vector_space():
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.5), dom, degree=1, components=2)
    pts = np.random.default_rng(0).uniform(0, 1, (50, 2))
    with pytest.raises(ValueError, match=r"values \(m, 2\)"):
        Task.fit((pts, pts[:, 0]), V)
    task = Task.fit((pts, pts[:, ::-1]), V)
    assert float(task.loss(lambda x: x[::-1])) == 0.0
    assert float(task.loss(lambda x: x)) > 0.1


# slow (both widths): fast, test_nmm_solution_is_the_minimiser[penalty] on the plain cover
@pytest.mark.slow
@pytest.mark.parametrize("delta", [1e-5, 1e-9])
def test_nmm_solution_is_the_minimiser_next_to_a_sliver(delta):
    """Next to a 1e-5 sliver the solver takes the Nitsche flux of the sliver's pieces from a
    neighbouring element (nmm.stable.boundary_donors); next to a 1e-9 sliver the sliver's
    elements use a neighbour's basis (nmm.stable.aggregate). The Task's functional does the
    same, so the NMM solution is still its minimiser (with the pieces' own gradients it was not)."""
    e = 1.0 + delta
    dom = nmm.Domain.polygon([(0, 0), (e, 0), (e, e), (0, e)])
    V = nmm.ManifoldSpace(nmm.MathCover.grid(dom, 0.25), dom, degree=1)
    assert V.extended == (delta > 1e-6)
    assert V.n_covers == (36 if delta > 1e-6 else 25)  # the sliver's covers aggregated
    prob = nmm.Poisson(**_data(EXACT, K))
    u = nmm.solve(V, prob)
    task = Task.poisson(prob, V)

    def loss_of(coeffs):
        return task.field_loss(nmm.Field(V, coeffs, u.stats))

    g_star = jax.grad(loss_of)(u.coeffs)
    g_zero = jax.grad(loss_of)(jnp.zeros_like(u.coeffs))
    assert np.linalg.norm(g_star) <= 1e-8 * np.linalg.norm(g_zero)
