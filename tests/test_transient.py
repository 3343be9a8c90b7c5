"""Time integration: the orders of backward Euler, Crank–Nicolson and BDF2 against the exact
semi-discrete solution, Newmark's energy over 1000 steps, one factorisation for a fixed matrix,
Newton per step for a nonlinear form, the adjoint through a history, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sl

import nmm
from nmm.transient import _mass, integrate


@pytest.fixture(scope="module")
def square():
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    return nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.25, offset=(0.1, 0.05)), dom, degree=1)


HEAT = nmm.Poisson(k=1.0, f=lambda x, t: 0.0 * t, dirichlet=lambda x, t: 0.0 * t)


def u0(x):
    return jnp.sin(np.pi * x[0]) * jnp.sin(np.pi * x[1])


def semi_discrete(space, x0, T):
    """exp(−T M⁻¹K) x0 on the range of M (hat × polynomial frames are linearly dependent)."""
    K, _ = nmm.assemble(space, nmm.Poisson(k=1.0, f=0.0, dirichlet=0.0))
    K, M = np.asarray(K.to_dense()), np.asarray(jax.jit(_mass)(space).to_dense())
    w, Q = np.linalg.eigh(M)
    Q = Q[:, w > 1e-12 * w.max()]
    Mr, Kr = Q.T @ M @ Q, Q.T @ K @ Q
    lam, Z = sl.eigh(Kr, Mr)
    xr = np.linalg.solve(Mr, Q.T @ M @ np.asarray(x0))
    return Q @ (Z @ (np.exp(-lam * T) * (Z.T @ Mr @ xr)))


# the orders in the slow suite (make test-all); the fast suite steps heat in the factor-once and
# Newmark tests
@pytest.mark.slow
@pytest.mark.parametrize(
    "method, order, steps",
    [("be", 1, (20, 40, 80, 160)), ("cn", 2, (20, 40, 80, 160)), ("bdf2", 2, (20, 40, 80, 160))],
)
def test_heat_orders(square, method, order, steps):
    x0 = nmm.fit(square, u0).coeffs
    T = 0.1
    pts = jnp.array(np.random.default_rng(0).uniform(0.05, 0.95, (40, 2)))
    exact = nmm.Field(square, jnp.asarray(semi_discrete(square, x0, T)))(pts)
    errs = []
    for n in steps:
        h = integrate(square, HEAT, x0, (0.0, T), T / n, method=method)
        assert h.fixed_matrix and int(h.result) == 0
        errs.append(float(jnp.max(jnp.abs(h.final(pts) - exact))))
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(rates - order) < 0.15), (errs, rates)


def test_thousand_steps_factor_once(square):
    x0 = nmm.fit(square, u0).coeffs
    before = nmm.linalg.factorisations()
    h = integrate(square, HEAT, x0, (0.0, 1.0), 1e-3, method="be", save_every=100)
    assert nmm.linalg.factorisations() - before == 1
    assert len(h) == 11 and h.coeffs.shape == (11, square.n_dofs)
    np.testing.assert_allclose(h.times, np.linspace(0, 1, 11), atol=1e-12)
    # backward Euler at dt = 1e-3 decays like the slowest mode, e^{-2π²t}
    mid = jnp.array([[0.5, 0.5]])
    ratio = float(h.field(1)(mid)[0] / h.field(0)(mid)[0])
    assert abs(ratio - np.exp(-2 * np.pi**2 * 0.1)) < 0.05


def test_newmark_conserves_energy(square):
    h = integrate(square, HEAT, u0, (0.0, 10.0), 0.01, method="newmark")
    K, _ = nmm.assemble(square, nmm.Poisson(k=1.0, f=0.0, dirichlet=0.0))
    M = jax.jit(_mass)(square)
    E = np.asarray(jax.vmap(lambda u, v: 0.5 * v @ M.mv(v) + 0.5 * u @ K.mv(u))(h.coeffs, h.velocities))
    assert len(E) == 1001
    assert np.max(np.abs(E - E[0])) / E[0] <= 1e-12


def allen_cahn_1d(method, n):
    dom = nmm.Domain.interval(-1.0, 1.0)
    V = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 16), dom, degree=2)
    form = nmm.AllenCahn(eps=0.1, f=lambda x, t: 0.0 * t)
    init = lambda x: 0.5 * jnp.sin(np.pi * x[0]) + 0.1  # noqa: E731
    h = integrate(V, form, init, (0.0, 1.0), 1.0 / n, method=method)
    assert not h.fixed_matrix and int(h.result) == 0
    assert 2 <= int(np.max(h.newton_steps)) <= 6  # Newton per step, from the last state
    return h.final(jnp.linspace(-0.95, 0.95, 21)[:, None])


@pytest.mark.slow  # fast: the adaptive and gradient tests step nonlinear forms by Newton
def test_nonlinear_steps_use_newton():
    """Allen–Cahn with Neumann boundaries: two second-order methods agree to O(Δt²)."""
    cn, bdf2 = allen_cahn_1d("cn", 40), allen_cahn_1d("bdf2", 40)
    assert float(jnp.max(jnp.abs(cn - bdf2))) < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("method, order", [("be", 1), ("cn", 2), ("bdf2", 2)])
def test_nonlinear_orders(method, order):
    vals = [allen_cahn_1d(method, n) for n in (20, 40, 80, 640)]
    e = [float(jnp.max(jnp.abs(v - vals[-1]))) for v in vals[:-1]]
    rates = np.log2(np.array(e[:-1]) / np.array(e[1:]))
    assert np.all(np.abs(rates - order) < 0.15), (e, rates)


@pytest.mark.slow  # fast: the nonlinear history's gradient (Newton steps' implicit adjoint)
def test_gradient_through_history_matches_finite_differences(square):
    x0 = nmm.fit(square, u0).coeffs
    pts = jnp.array([[0.5, 0.5], [0.3, 0.6]])

    def loss(k):
        form = nmm.Poisson(k=k, f=lambda x, t: 1.0 + t, dirichlet=lambda x, t: 0.0 * t)
        h = integrate(square, form, x0, (0.0, 0.2), 0.02, method="be")
        return jnp.sum(h.final(pts) ** 2)

    g = jax.grad(loss)(jnp.asarray(1.3))
    e = 1e-5
    fd = (loss(jnp.asarray(1.3 + e)) - loss(jnp.asarray(1.3 - e))) / (2 * e)
    np.testing.assert_allclose(g, fd, rtol=1e-7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dt": 0.0}, "dt must be a positive finite number"),
        ({"dt": -0.1}, "dt must be a positive finite number"),
        ({"dt": float("nan")}, "dt must be a positive finite number"),
        ({"dt": float("inf")}, "dt must be a positive finite number"),
        ({"dt": 0.3}, "whole number of steps"),
        ({"t_span": (1.0, 0.0)}, "t1 > t0"),
        ({"method": "rk4"}, "method must be one of"),
        ({"save_every": 3}, "save_every=3 must divide"),
        ({"v0": u0}, "v0 is the initial velocity"),
        ({"u0": jnp.zeros(3)}, "u0 must be a callable"),
    ],
)
def test_bad_input(square, kwargs, match):
    args = {"u0": u0, "t_span": (0.0, 1.0), "dt": 0.1} | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        integrate(square, HEAT, **args)


def test_gradient_through_nonlinear_history_matches_finite_differences():
    """Newton steps are differentiated implicitly (one transpose solve per step)."""
    dom = nmm.Domain.interval(-1.0, 1.0)
    V = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 8), dom, degree=2)
    init = lambda x: 0.5 * jnp.sin(np.pi * x[0]) + 0.1  # noqa: E731
    x0 = nmm.fit(V, init).coeffs
    pts = jnp.array([[0.3], [-0.6]])

    def loss(eps):
        h = integrate(
            V, nmm.AllenCahn(eps=eps, f=lambda x, t: 0.0 * t), x0, (0.0, 0.5), 0.05, method="be"
        )
        return jnp.sum(h.final(pts) ** 2)

    g = jax.grad(loss)(jnp.asarray(0.2))
    e = 1e-5
    fd = (loss(jnp.asarray(0.2 + e)) - loss(jnp.asarray(0.2 - e))) / (2 * e)
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_adaptive_steps_follow_the_burgers_front():
    """Adaptive Crank–Nicolson on Burgers: within 1e-4 of Cole–Hopf over the accepted states with
    far fewer steps than the fixed Δt = 0.002 (500) that reaches it; small steps where the front
    forms, large ones after (measured: 175 steps, 2.8e-5, Δt from 1e-3 to 1.3e-2)."""
    from experiments import problems
    from experiments.exact_nonlinear import burgers_cole_hopf

    p = problems.get("burgers")
    V = p.space(100, 3)
    h = nmm.integrate_adaptive(V, p.poisson, p.transient[1], (0.0, 1.0), 1e-3, rtol=1e-4, atol=1e-10)
    ts = np.asarray(h.times)
    assert ts[0] == 0.0 and abs(ts[-1] - 1.0) < 1e-12 and len(ts) - 1 < 300
    x = np.linspace(-1, 1, 256)
    U = np.stack([np.asarray(h.field(i)(jnp.asarray(x)[:, None])) for i in range(len(ts))])
    E = burgers_cole_hopf(x[None, :], ts[:, None])
    assert np.linalg.norm(U - E) / np.linalg.norm(E) <= 1e-4
    assert np.max(np.diff(ts)) > 5 * np.min(np.diff(ts))
    with pytest.raises(ValueError, match="dt0 must be a positive finite number"):
        nmm.integrate_adaptive(V, p.poisson, p.transient[1], (0.0, 1.0), -1.0)
    with pytest.raises(ValueError, match="rtol and atol are both zero"):
        nmm.integrate_adaptive(V, p.poisson, p.transient[1], (0.0, 1.0), 1e-3, rtol=0, atol=0)


@pytest.mark.slow  # fast: the other integrate tests (a crack is only another space)
def test_heat_around_a_crack_reaches_the_steady_state():
    """Insulated crack faces: the temperature jumps across the crack, and the history converges
    to the steady solve of the same form (backward Euler's fixed point is the steady state)."""
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)], cracks=[[(0.5, 0.2), (0.5, 0.8)]])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.125, offset=(0.03, 0.02)), dom, degree=2)
    form = nmm.Poisson(f=lambda x, t: 1.0 + 0.0 * t, dirichlet=lambda x, t: x[0] + 0.0 * t)
    h = integrate(V, form, lambda x: 0.0 * x[0], (0.0, 5.0), 0.25, method="be")
    steady = nmm.solve(V, nmm.Poisson(f=1.0, dirichlet=lambda x: x[0]))
    pts = jnp.array([[0.5 - 1e-9, 0.5], [0.5 + 1e-9, 0.5], [0.3, 0.3], [0.8, 0.9]])
    np.testing.assert_allclose(h.final(pts), steady(pts), atol=1e-9)
    assert float(steady(pts)[1] - steady(pts)[0]) > 0.05  # a jump across the crack


def test_history_at_space_time_points(square):
    """Values at (x, t): the saved states at saved times, linear in t between them, NaN outside
    the time span; differentiable in the initial state."""
    h = integrate(square, HEAT, u0, (0.0, 0.1), 0.02, method="cn")
    x = jnp.array([[0.3, 0.4], [0.7, 0.2], [1.0, 1.0]])
    for i in (0, 2, 5):
        np.testing.assert_allclose(
            h.at(x, jnp.full(3, h.times[i])), h.field(i)(x), rtol=1e-12, atol=1e-14
        )
    mid = 0.5 * (h.times[1] + h.times[2])
    np.testing.assert_allclose(
        h.at(x, jnp.full(3, mid)), 0.5 * (h.field(1)(x) + h.field(2)(x)), rtol=1e-12
    )
    assert np.all(np.isnan(h.at(x, jnp.full(3, 0.2))))
    with pytest.raises(ValueError, match="t must have one time per point"):
        h.at(x, jnp.zeros(2))
