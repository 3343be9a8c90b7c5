"""Forward-mode derivatives (``jax.jvp``, ``jax.jacfwd``) of ``nmm.solve`` and ``linear_solve``:
against central finite differences and ``jax.jacrev``, under ``jit`` and ``vmap``, and one
factorisation per solve in either mode (the tangent solve reuses the forward factorisation)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_linalg import Convection  # the tests directory is on the path
from test_newton import QuasiLinear

import nmm
import nmm.linalg.superlu as superlu
from nmm.linalg import BlockCSR, DenseLU, SuperLU, linear_solve


@pytest.fixture(scope="module")
def setup():
    dom = nmm.Domain.polygon(
        [(0, 0), (1, 0), (1, 1), (0, 1)], holes=[[(0.3, 0.3), (0.6, 0.35), (0.5, 0.6)]]
    )
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.25, offset=(0.2, 0.1)), dom, degree=1)
    W = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.4, offset=(0.05, 0.3)), dom, degree=1)
    pts = jnp.array([[0.5, 0.8], [0.2, 0.2], [0.75, 0.5], [0.9, 0.1]])
    return V, W, pts


def central(fn, theta, h=1e-5):
    cols = [(fn(theta + h * e) - fn(theta - h * e)) / (2 * h) for e in jnp.eye(theta.size)]
    return jnp.stack(cols, axis=-1)


def source(x, th):
    return 1.0 + th[2] * x[0]


def conductivity(x, th):
    return 1.0 + th[0] * x[0] + th[1] * x[1] ** 2


def boundary_value(x, th):
    return th[1] * x[0]


POISSON = nmm.Poisson(k=conductivity, f=source, dirichlet=boundary_value)
THETA = jnp.array([0.5, 0.3, 0.2])


# "direct" (SuperLU) is also what the factorisation-count test below runs: slow here
@pytest.mark.parametrize("solver", [None, pytest.param("direct", marks=pytest.mark.slow)])
def test_jacfwd_of_solve_with_array_parameters(setup, solver):
    """k, f and the Dirichlet data depend on θ: jacfwd = jacrev = central differences (dense LU
    in JAX and SuperLU on the host)."""
    V, _, pts = setup

    def fn(th):
        u = nmm.solve(V, POISSON, params=th, solver=solver)
        return jnp.concatenate([u(pts), u.grad(pts)[:, 0]])

    fwd = jax.jacfwd(fn)(THETA)
    np.testing.assert_allclose(fwd, jax.jacrev(fn)(THETA), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fwd, central(fn, THETA), rtol=1e-6, atol=1e-9)
    # one tangent: jax.jvp equals the Jacobian's column sum
    _, tangent = jax.jvp(fn, (THETA,), (jnp.ones(3),))
    np.testing.assert_allclose(tangent, fwd.sum(axis=1), rtol=1e-10, atol=1e-12)


def test_jacfwd_of_solve_with_a_field_coefficient(setup):
    """k an nmm.Field on another space (its coefficients the parameters): the Jacobian in every
    coefficient, forward against reverse, and along a direction against differences."""
    V, W, pts = setup
    c0 = nmm.fit(W, lambda x: 1.0 + 0.3 * x[0] * x[1]).coeffs

    def fn(c):
        return nmm.solve(V, nmm.Poisson(k=nmm.Field(W, c), f=1.0, dirichlet=0.0))(pts)

    fwd = jax.jacfwd(fn)(c0)
    assert fwd.shape == (pts.shape[0], W.n_dofs)
    np.testing.assert_allclose(fwd, jax.jacrev(fn)(c0), rtol=1e-10, atol=1e-13)
    d = 0.1 * jnp.cos(jnp.arange(W.n_dofs))
    h = 1e-5
    np.testing.assert_allclose(
        fwd @ d, (fn(c0 + h * d) - fn(c0 - h * d)) / (2 * h), rtol=1e-6, atol=1e-10
    )


def test_jacfwd_through_the_right_hand_side_only(setup):
    """θ in the source only (the matrix has no tangent): the tangent is K⁻¹ of the tested source."""
    V, _, pts = setup
    prob = nmm.Poisson(k=1.0, f=lambda x, th: th[0] + th[1] * x[0] + th[2] * x[1] ** 2, dirichlet=0.0)

    def fn(th):
        return nmm.solve(V, prob, params=th)(pts)

    fwd = jax.jacfwd(fn)(THETA)
    np.testing.assert_allclose(fwd, jax.jacrev(fn)(THETA), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(fwd, central(fn, THETA), rtol=1e-6, atol=1e-10)
    # linear in θ: the Jacobian reproduces the solution
    np.testing.assert_allclose(fwd @ THETA, fn(THETA), rtol=1e-10, atol=1e-13)


def test_jacfwd_under_jit_and_vmap(setup):
    V, _, pts = setup

    def fn(th):
        return nmm.solve(V, POISSON, params=th)(pts)

    thetas = jnp.stack([THETA, 1.5 * THETA, -0.5 * THETA])
    looped = np.stack([jax.jacfwd(fn)(t) for t in thetas])
    np.testing.assert_allclose(jax.jit(jax.jacfwd(fn))(THETA), looped[0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(jax.vmap(jax.jacfwd(fn))(thetas), looped, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(jax.jit(jax.vmap(jax.jacfwd(fn)))(thetas), looped, rtol=1e-10, atol=1e-13)


def test_jacfwd_of_a_nonlinear_solve(setup):
    """Newton: the tangent solve uses the last factorisation refined against the Jacobian at the
    solution."""
    V, _, pts = setup
    prob = QuasiLinear(a=conductivity, f=source, dirichlet=boundary_value)

    def fn(th):
        return nmm.solve(V, prob, params=th, solver="direct", newton=nmm.Newton(rtol=1e-14))(pts)

    fwd = jax.jacfwd(fn)(THETA)
    np.testing.assert_allclose(fwd, jax.jacrev(fn)(THETA), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fwd, central(fn, THETA), rtol=1e-6, atol=1e-9)


def test_jacfwd_of_a_fit(setup):
    """The least-squares path (L2Fit; p = 2: stable cover functions, outer refinement)."""
    _, _, pts = setup
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    U = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.35), dom, degree=2)
    assert U.stable

    def target(x, th):
        return jnp.sin(th[0] * x[0]) + th[1] * x[1] ** 2 + th[2]

    def fn(th):
        return nmm.fit(U, target, params=th)(pts)

    fwd = jax.jacfwd(fn)(THETA)
    np.testing.assert_allclose(fwd, jax.jacrev(fn)(THETA), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fwd, central(fn, THETA), rtol=1e-6, atol=1e-9)


def test_every_mode_factors_once_and_frees_the_factor(setup):
    """SuperLU: the primal, grad, jacrev, jacfwd and jvp each factor once, and the factor is freed
    after the tangent (or adjoint) solve."""
    V, _, pts = setup
    g = jax.jit(lambda t: nmm.solve(V, POISSON, params=t, solver="direct")(pts))
    modes = {
        "primal": g,
        "grad": jax.jit(jax.grad(lambda t: jnp.sum(g(t)))),
        "jacrev": jax.jit(jax.jacrev(g)),
        "jacfwd": jax.jit(jax.jacfwd(g)),
        "jvp": jax.jit(lambda t: jax.jvp(g, (t,), (jnp.ones(3),))),
    }
    for name, fn in modes.items():
        jax.block_until_ready(fn(THETA))  # compile
        superlu.clear_factor_cache()
        before = nmm.linalg.factorisations()
        jax.block_until_ready(fn(THETA))
        assert nmm.linalg.factorisations() - before == 1, name
        assert len(superlu.FACTORS._entries) == 0, name


@pytest.mark.parametrize("solver", [SuperLU(), pytest.param(DenseLU(), marks=pytest.mark.slow)])
def test_linear_solve_forward_mode(setup, solver):
    """x(θ) = A(θ)⁻¹ b(θ), A non-symmetric (the tangent solves with A, the adjoint with Aᵀ)."""
    V, _, _ = setup
    C, Rc = nmm.assemble(V, Convection(dirichlet=0.0))
    diag = (C.rows == C.cols)[:, None, None] * jnp.eye(C.block_size)  # a shift: nonsingular
    w = jnp.sin(jnp.arange(C.shape[0]) * 1.0)

    def fn(t):
        op = BlockCSR(C.data * (1 + t[0]) + (1.0 + t[1]) * diag, C.rows, C.cols, C.pattern)
        return linear_solve(op, -Rc * (1 + t[2]) + t[1] * w, solver).value

    t = jnp.array([0.1, 0.3, -0.2])
    fwd = jax.jacfwd(fn)(t)
    np.testing.assert_allclose(fwd, jax.jacrev(fn)(t), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fwd, central(fn, t, 1e-6), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(jax.jit(jax.jacfwd(fn))(t), fwd, rtol=1e-10, atol=1e-13)
    ts = jnp.stack([t, 0.5 * t])
    np.testing.assert_allclose(jax.vmap(jax.jacfwd(fn))(ts)[0], fwd, rtol=1e-10, atol=1e-13)
    # the right-hand side alone: a symbolic-zero operator tangent
    op = BlockCSR(C.data + diag, C.rows, C.cols, C.pattern)
    _, dx = jax.jvp(lambda b: linear_solve(op, b, solver).value, (w,), (w,))
    np.testing.assert_allclose(op.mv(dx), w, rtol=0, atol=1e-10 * float(jnp.abs(w).max()))


def test_linear_solve_jvp_reuses_a_given_state(setup):
    """A state passed in (a factorisation kept by the caller): forward mode solves with it and
    does not free it."""
    V, _, _ = setup
    K, R = nmm.assemble(V, nmm.Poisson(f=1.0, dirichlet=0.0))
    shift = (K.rows == K.cols)[:, None, None] * jnp.eye(K.block_size)
    K = BlockCSR(K.data + shift, K.rows, K.cols, K.pattern, K.symmetric)
    solver = SuperLU()
    state = solver.init(K)
    before = nmm.linalg.factorisations()
    for s in (1.0, 2.0):
        x, dx = jax.jvp(lambda b: linear_solve(K, b, solver, state=state).value, (-R,), (-s * R,))
        np.testing.assert_allclose(dx, s * x, rtol=1e-10, atol=1e-13)
    assert nmm.linalg.factorisations() == before


def test_jacfwd_through_histories():
    """Time histories: a fixed-matrix Crank–Nicolson history (one linear_solve per step, one
    factorisation) and a Newton (Allen–Cahn) history; jacfwd = jacrev, and = differences."""
    from nmm.transient import integrate

    dom = nmm.Domain.interval(-1.0, 1.0)
    V = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 8), dom, degree=2)
    x0 = nmm.fit(V, lambda x: 0.5 * jnp.sin(np.pi * x[0]) + 0.1).coeffs
    pts = jnp.array([[0.3], [-0.6], [0.1]])

    def heat(th):
        form = nmm.Poisson(k=th[0], f=th[1], dirichlet=0.0)
        return integrate(V, form, x0 * th[2], (0.0, 0.2), 0.02, method="cn").final(pts)

    def allen_cahn(th):
        form = nmm.AllenCahn(eps=th[0], f=th[1])
        return integrate(V, form, x0 * th[2], (0.0, 0.2), 0.05, method="be").final(pts)

    th = jnp.array([0.2, 0.3, 1.1])
    for fn in (heat, allen_cahn):
        fwd = jax.jacfwd(fn)(th)
        np.testing.assert_allclose(fwd, jax.jacrev(fn)(th), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fwd, central(fn, th), rtol=1e-5, atol=1e-8)
