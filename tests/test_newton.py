"""Newton for nonlinear forms: quadratic convergence, optimal rates on a cracked domain with a
hole, implicit gradients, and a clear result (no NaN) when there is no solution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nmm


class QuasiLinear(nmm.Form):
    """-∇·(a (1 + u²) ∇u) = f: a residual form (the operator has no energy density)."""

    a: object = 1.0
    f: object = 0.0

    def residual(self, x, u, du, params):
        a = nmm.value(self.a, x, params)
        return -nmm.value(self.f, x, params), a * (1 + u**2) * du


def exact(x):
    return jnp.sin(2 * x[0] + 0.5) * jnp.cos(1.5 * x[1]) + 0.5 * x[0] * x[1]


def manufactured(a=1.0):
    def flux(x):
        return a * (1 + exact(x) ** 2) * jax.grad(exact)(x)

    f = lambda x: -jnp.trace(jax.jacfwd(flux)(x))  # noqa: E731
    crack = lambda x, n: jnp.dot(flux(x), n)  # noqa: E731
    return QuasiLinear(a=a, f=f, dirichlet=exact, crack_neumann=crack)


def convergence_orders(history):
    """Estimated orders q_k = log(r_{k+1}/r_k) / log(r_k/r_{k-1}) (2 for quadratic convergence)
    once the residual has fallen below 1 % of its start. A round-off floor can only lower q."""
    r = np.asarray(history)
    return [
        np.log(r[k + 1] / r[k]) / np.log(r[k] / r[k - 1])
        for k in range(1, len(r) - 1)
        if r[k] < 1e-2 * r[0] and r[k] < r[k - 1]
    ]


# fast: test_nonlinear_forms (NonlinearDiffusion on this domain, quadratic Newton)
@pytest.mark.parametrize("p", [pytest.param(p, marks=pytest.mark.slow) for p in (1, 2)])
def test_newton_quadratic_convergence_and_rates(dom2d, p, capsys):
    problem = manufactured()
    hs = [0.4, 0.2, 0.1] if p == 1 else [0.4, 0.2, 0.13]
    errs = []
    for h in hs:
        V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom2d, h, offset=(0.37, 0.21)), dom2d, degree=p)
        u = nmm.solve(V, problem)
        hist = u.info.newton_history()
        with capsys.disabled():
            print(f"\np = {p}, h = {h}: Newton |R_k| = {np.array2string(hist, precision=2)}")
        assert int(u.info.result) == 0 and 3 <= int(u.info.newton_steps) <= 10
        orders = convergence_orders(hist)
        assert orders and max(orders) > 1.8, (hist, orders)  # quadratic: q → 2
        assert hist[-1] <= 1e-10 * hist[0]
        errs.append(nmm.errors(u, exact)["L2"])
    rate = np.diff(np.log(errs))[-1] / np.diff(np.log(hs))[-1]
    assert abs(rate - (p + 2)) < 0.3, (errs, rate)


def test_newton_gradient_matches_finite_differences(dom2d):
    """The converged solution is differentiated implicitly (one adjoint solve)."""
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom2d, 0.4, offset=(0.37, 0.21)), dom2d, degree=1)
    pts = jnp.array([[0.3, 0.2], [1.6, 0.5], [0.5, 1.5]])
    base = manufactured()
    # built once (a new lambda per call would be a new static argument: a new compilation)
    form = QuasiLinear(
        a=lambda x, t: t[0] + t[1] * x[0],
        f=lambda x, t: t[2] * base.f(x),
        dirichlet=lambda x, t: exact(x),
        crack_neumann=lambda x, n, t: base.crack_neumann(x, n),
    )
    tight = nmm.Newton(rtol=1e-14)

    def loss(th):
        return jnp.sum(nmm.solve(V, form, params=th, newton=tight)(pts) ** 2)

    th = jnp.array([1.0, 0.2, 0.8])
    g = jax.grad(loss)(th)
    h = 1e-5
    fd = np.array([(loss(th + h * e) - loss(th - h * e)) / (2 * h) for e in jnp.eye(3)])
    np.testing.assert_allclose(g, fd, rtol=1e-6)


@pytest.mark.slow
def test_frozen_jacobian_converges_linearly():
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.2, offset=(0.1, 0.05)), dom, degree=1)
    problem = QuasiLinear(f=1.0, dirichlet=0.0)
    full = nmm.solve(V, problem)
    chord = nmm.solve(V, problem, newton=nmm.Newton(refactor_every=0, max_steps=60))
    assert int(chord.info.result) == 0
    assert int(chord.info.newton_steps) > int(full.info.newton_steps)
    # coefficients of hats × P1 are not unique (linear dependence): compare the fields
    pts = jnp.array([[0.5, 0.5], [0.2, 0.7], [0.9, 0.1]])
    np.testing.assert_allclose(chord(pts), full(pts), rtol=1e-8)


@pytest.mark.slow  # fast: test_continuation.py::test_no_solution_above_the_fold_says_so (nmm.Bratu)
def test_newton_without_solution_reports_and_returns_no_nan():
    """Bratu −Δu = λ eᵘ on the unit square has no solution for λ > λ* ≈ 6.81."""

    class Bratu(nmm.Form):
        lam: float = 10.0

        def residual(self, x, u, du, params):
            return -self.lam * jnp.exp(u), du

    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.25, offset=(0.1, 0.05)), dom, degree=1)
    u = nmm.solve(V, Bratu(dirichlet=0.0), newton=nmm.Newton(max_steps=15), throw=False)
    assert int(u.info.result) in (nmm.RESULTS.max_steps_reached, nmm.RESULTS.line_search_failed)
    assert np.all(np.isfinite(np.asarray(u.coeffs)))
    with pytest.raises(Exception, match="Newton failed|iteration limit"):
        nmm.solve(V, Bratu(dirichlet=0.0), newton=nmm.Newton(max_steps=15))
    # below the turning point the lower branch is found
    ok = nmm.solve(V, Bratu(lam=2.0, dirichlet=0.0))
    assert int(ok.info.result) == 0 and 0 < float(ok(jnp.array([0.5, 0.5]))) < 0.2


@pytest.mark.parametrize(
    "solver", [pytest.param(s, marks=pytest.mark.slow) for s in ("direct", "dense")]
)
def test_gradient_from_an_already_converged_guess(solver):
    """f = 0 gives u = 0 = the initial guess: Newton still factors once, so the adjoint is right
    (d u / d f at f = 0 is the linear Poisson solution)."""
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.25, offset=(0.05, 0.1)), dom, degree=1)
    pts = jnp.array([[0.5, 0.5], [0.3, 0.7]])
    s = nmm.linalg.SuperLU() if solver == "direct" else nmm.linalg.DenseLU()
    form = QuasiLinear(f=lambda x, q: q, dirichlet=0.0)
    g = jax.grad(lambda q: nmm.solve(V, form, params=q, solver=s)(pts).sum())(jnp.asarray(0.0))
    lin = nmm.solve(V, nmm.Poisson(f=1.0, dirichlet=0.0), solver=s)(pts).sum()
    np.testing.assert_allclose(g, lin, rtol=1e-9)
