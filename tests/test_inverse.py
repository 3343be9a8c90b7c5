"""nmm.inverse: identification by Gauss–Newton / L-BFGS through differentiable solves, the
Laplace posterior, the discrepancy principle, and the errors bad input gets."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nmm
from nmm import inverse as inv
from nmm.inverse.gauss_newton import jacobian
from nmm.inverse.parameters import split
from nmm_nn import MLP

# 1D: -(k u')' = 1 on (0, 1), u(0) = u(1) = 0, k(x) = 1 + x / 2 (linear: exact in a p = 1 field)
K_TRUE = (1.0, 0.5)
DOM = nmm.Domain.interval(0.0, 1.0)
V = nmm.ManifoldSpace(nmm.MathCover.intervals(DOM, n=4), DOM, degree=3)
Q = nmm.ManifoldSpace(nmm.MathCover.intervals(DOM, n=2), DOM, degree=1)
PTS = np.linspace(0.02, 0.98, 25)[:, None]


def solve_linear_k(th):
    return nmm.solve(V, nmm.Poisson(k=lambda x: th[0] + th[1] * x[0], f=1.0, dirichlet=0.0), throw=False)


def data(sigma, key):
    u = solve_linear_k(jnp.array(K_TRUE))
    return inv.synthetic(u, PTS, sigma, key)


@pytest.fixture(scope="module")
def noisy():
    return data(0.002, jax.random.PRNGKey(1))


def test_array_parameters_recovered_and_discrepancy_stop(noisy):
    problem = inv.InverseProblem(solve_linear_k, noisy)
    res = inv.gauss_newton(problem, jnp.array([2.0, 0.0]))
    assert res.reason == "converged" and int(res.steps) <= 20
    # the data are fitted to their noise level: |r| ≈ √m (a χ² with m - 2 degrees of freedom)
    assert 0.6 < float(res.discrepancy_ratio) < 1.4
    np.testing.assert_allclose(res.theta, K_TRUE, atol=0.05)
    early = inv.gauss_newton(problem, jnp.array([2.0, 0.0]), discrepancy=True)
    assert early.reason == "discrepancy" and float(early.discrepancy_ratio) <= 1.1
    assert int(early.steps) <= int(res.steps)


@pytest.mark.slow
def test_lbfgs_reaches_the_gauss_newton_minimum(noisy):
    problem = inv.InverseProblem(solve_linear_k, noisy)
    gn = inv.gauss_newton(problem, jnp.array([2.0, 0.0]))
    lb = inv.minimise(problem, jnp.array([2.0, 0.0]), optimizer="lbfgs", steps=200)
    assert lb.ok
    f_gn, f_lb = float(gn.objective[int(gn.steps)]), float(lb.objective[int(lb.steps)])
    assert abs(f_lb - f_gn) <= 1e-6 * f_gn
    np.testing.assert_allclose(lb.theta, gn.theta, rtol=1e-4)


class Positive(eqx.Module):
    """k = 1 + softplus(net(x)): a network coefficient that stays elliptic."""

    net: MLP

    def __call__(self, x):
        return 1.0 + jax.nn.softplus(self.net(x).reshape(()))


def _kinds():
    q = nmm.fit(Q, lambda x: 1.2 + 0.1 * x[0])
    net = MLP(1, width=8, depth=2, key=jax.random.PRNGKey(3))

    def linear(th):
        return lambda x: th[0] + th[1] * x[0]

    def with_k(k):
        return nmm.Poisson(k=k, f=1.0, dirichlet=0.0)

    return {
        "number": (jnp.asarray(1.3), with_k),
        "array": (jnp.array([1.2, 0.3]), lambda th: with_k(linear(th))),
        "field": (q, with_k),
        "mlp": (Positive(net), with_k),
    }


# numbers and arrays are also covered by tests/test_gradients.py (through nmm.solve): slow here
@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("number", marks=pytest.mark.slow),
        pytest.param("array", marks=pytest.mark.slow),
        "field",
        "mlp",
        "field, fewer data than state unknowns",
    ],
)
def test_gradient_and_jacobian_equal_central_differences(noisy, kind):
    """Both Jacobian paths: 25 data and fewer state unknowns (Jo = U Σ Wᵀ, one adjoint product per
    state unknown) and 6 data (one adjoint product per datum, Jo by reverse products)."""
    few = kind.endswith("unknowns")
    theta, form = _kinds()[kind.split(",")[0]]
    reg = inv.Tikhonov(1e-3) if not kind.startswith("field") else inv.H1(1e-3, beta=1e-3)
    obs = inv.Observations.at_points(PTS[::4][:6], noisy.values[::4][:6], 0.002) if few else noisy
    assert (obs.size < V.n_dofs) == few
    problem = inv.InverseProblem(lambda th: nmm.solve(V, form(th), throw=False), obs, reg)
    x, rebuild = split(theta)
    v = jax.random.normal(jax.random.PRNGKey(7), x.shape)
    obj = jax.jit(lambda y: problem.objective(rebuild(y)))
    g = jax.grad(lambda y: problem.objective(rebuild(y)))(x)
    eps = 1e-5
    fd = (obj(x + eps * v) - obj(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(g @ v, fd, rtol=1e-6)
    # the Gauss–Newton Jacobian: tangent solves, and adjoint products through the states' unknowns
    res = jax.jit(lambda y: problem.residual(rebuild(y)))
    fd_r = (res(x + eps * v) - res(x - eps * v)) / (2 * eps)
    for mode in ("forward", "adjoint"):
        r, J = jax.jit(lambda y, mode=mode: jacobian(problem, rebuild, y, mode))(x)
        scale = float(jnp.max(jnp.abs(fd_r)))
        np.testing.assert_allclose(J @ v, fd_r, rtol=1e-6, atol=1e-6 * scale, err_msg=mode)


def test_a_reverse_only_forward_map_gets_the_adjoint_jacobian(noisy):
    """A user's forward map with a custom_vjp (no forward mode): ``jacobian="auto"`` falls back
    to adjoint products; ``"forward"`` says why it cannot."""

    @jax.custom_vjp
    def states(th):
        return solve_linear_k(th)

    def fwd(th):
        u, pullback = jax.vjp(solve_linear_k, th)
        return u, pullback

    states.defvjp(fwd, lambda pullback, g: pullback(g))
    problem = inv.InverseProblem(states, noisy)
    res = inv.gauss_newton(problem, jnp.array([2.0, 0.0]))
    plain = inv.gauss_newton(inv.InverseProblem(solve_linear_k, noisy), jnp.array([2.0, 0.0]))
    assert res.reason == "converged"
    np.testing.assert_allclose(res.theta, plain.theta, rtol=1e-8)
    with pytest.raises(TypeError, match="forward-mode"):
        inv.gauss_newton(problem, jnp.array([2.0, 0.0]), jacobian="forward")
    with pytest.raises(ValueError, match="jacobian must be one of"):
        inv.gauss_newton(problem, jnp.array([2.0, 0.0]), jacobian="fwd")


def test_field_parameter_identified_without_recompiling():
    traces = {"n": 0}

    def forward(q):
        traces["n"] += 1  # runs only when JAX traces the forward map
        return nmm.solve(V, nmm.Poisson(k=q, f=1.0, dirichlet=0.0), throw=False)

    obs = data(0.0002, jax.random.PRNGKey(2))
    problem = inv.InverseProblem(forward, obs, inv.H1(1e-6))
    q0 = nmm.fit(Q, lambda x: 1.0)
    res = inv.gauss_newton(problem, q0)
    assert res.reason == "converged" and int(res.steps) >= 3
    first = traces["n"]
    assert first <= 4  # the iterations do not trace the forward map again
    err = nmm.errors(res.theta, lambda x: K_TRUE[0] + K_TRUE[1] * x[0])["L2"]
    assert err < 0.02
    for seed in (3, 4):  # new data of the same shapes: no recompilation
        again = inv.gauss_newton(problem.with_data(data(0.0002, jax.random.PRNGKey(seed)).values), q0)
        assert again.ok
    assert traces["n"] == first
    with pytest.warns(RuntimeWarning, match="max_steps"):
        opt = inv.minimise(problem, q0, optimizer="adam", steps=30, learning_rate=1e-2)
    n_adam = traces["n"]
    with pytest.warns(RuntimeWarning, match="max_steps"):
        inv.minimise(
            problem.with_data(obs.values * 1.01), q0, optimizer="adam", steps=30, learning_rate=1e-2
        )
    assert traces["n"] == n_adam and int(opt.steps) == 30


# slow (compile-bound): the Laplace posterior is also built in the README block and the
# source-identification case checks its coverage over 50 draws
@pytest.mark.slow
def test_laplace_intervals_cover_the_truth_over_50_noise_draws():
    """95 % credible intervals of (k0, k1) over 50 data sets, inverted in one vmap: coverage
    within binomial sampling error (3σ of 100 Bernoulli(0.95) trials: 88..100)."""
    sigma = 0.002
    clean = solve_linear_k(jnp.array(K_TRUE))(PTS)
    noise = sigma * jax.random.normal(jax.random.PRNGKey(11), (50, len(PTS)))
    base = inv.Observations.at_points(PTS, clean, sigma)
    problem = inv.InverseProblem(solve_linear_k, base)
    th0 = jnp.array([1.5, 0.0])

    def one(d):
        p = problem.with_data(d)
        th = inv.gauss_newton(p, th0).theta
        lo, hi = inv.laplace(p, th).interval(0.95)
        return th, lo, hi

    th, lo, hi = jax.vmap(one)(clean + noise)
    truth = jnp.array(K_TRUE)
    covered = int(jnp.sum((lo <= truth) & (truth <= hi)))
    assert 88 <= covered <= 100, covered
    # the posterior standard deviation is the spread of the estimates over the draws
    post = inv.laplace(problem.with_data(clean + noise[0]), th[0])
    spread = jnp.std(th, axis=0)
    np.testing.assert_allclose(post.std, spread, rtol=0.35)


# slow (compile-bound): field identification is in the fast suite (test_field_parameter_...)
@pytest.mark.slow
def test_noise_free_poisson_inverse_recovers_the_coefficient_to_1e_4():
    """PInv without noise: a(x, y) = 1 / (1 + x² + y² + (x−1)² + (y−1)²) from u = sin πx sin πy
    at a 25 × 25 grid, a known on the boundary; a as a p = 4 field on a 2 × 2 grid cover."""
    a_true = lambda x: 1.0 / (1 + x[0] ** 2 + x[1] ** 2 + (x[0] - 1) ** 2 + (x[1] - 1) ** 2)  # noqa: E731
    u_true = lambda x: jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])  # noqa: E731
    f = nmm.manufactured_source(nmm.Poisson(k=a_true), u_true)
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    Vu = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=0.25), dom, degree=4)
    Qa = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=0.5), dom, degree=4)
    g = np.linspace(0, 1, 25)
    P = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    t = np.linspace(0, 1, 41)[:-1]
    B = np.concatenate(
        [np.c_[t, 0 * t], np.c_[1 + 0 * t, t], np.c_[1 - t, 1 + 0 * t], np.c_[0 * t, 1 - t]]
    )
    obs_u = inv.Observations.at_points(P, jax.vmap(u_true)(P), 0.1)
    obs_a = inv.Observations.at_points(B, jax.vmap(a_true)(B), 1e-3)

    def forward(a):
        return nmm.solve(Vu, nmm.Poisson(k=a, f=f, dirichlet=0.0), throw=False), a

    res = inv.gauss_newton(inv.InverseProblem(forward, (obs_u, obs_a)), nmm.fit(Qa, lambda x: 0.4))
    assert res.ok and int(res.steps) <= 20
    assert nmm.errors(res.theta, a_true)["L2"] <= 1e-4


def test_bad_observations_and_parameters_are_named():
    with pytest.raises(ValueError, match="values: not finite"):
        inv.Observations.at_points(PTS, np.r_[np.nan, np.zeros(len(PTS) - 1)], 0.1)
    with pytest.raises(ValueError, match="points: not finite"):
        inv.Observations.at_points(np.r_[[[np.nan]], PTS[1:]], np.zeros(len(PTS)), 0.1)
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="noise must be positive"):
            inv.Observations.at_points(PTS, np.zeros(len(PTS)), bad)
    with pytest.raises(ValueError, match="noise must be given"):
        inv.Observations.at_points(PTS, np.zeros(len(PTS)), None)
    outside = np.r_[PTS, [[1.5]]]
    with pytest.raises(ValueError, match="1 of 26 observation points lie outside the domain"):
        inv.Observations.at_points(outside, np.zeros(26), 0.1, domain=DOM)
    # without a domain, the inversion names the observation that has no prediction
    problem = inv.InverseProblem(solve_linear_k, inv.Observations.at_points(outside, np.zeros(26), 0.1))
    with pytest.raises(ValueError, match=r"observations\[0\]: 1 of 26 predictions are not finite.*1.5"):
        inv.gauss_newton(problem, jnp.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"coeffs must have shape \(\d+,\)"):
        nmm.Field(Q, jnp.ones(Q.n_dofs + 1))
    with pytest.raises(ValueError, match="Tikhonov: mean has 3 unknowns"):
        inv.Tikhonov(1.0, mean=jnp.ones(3))(jnp.ones(2))
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        inv.H1(-1.0)
    with pytest.raises(TypeError, match="H1 regularises an nmm.Field"):
        inv.H1(1.0)(jnp.ones(2))
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        inv.gauss_newton(problem, jnp.ones(2), max_steps=0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        inv.minimise(problem, jnp.ones(2), optimizer="sgd-ish")
    with pytest.raises(ValueError, match="theta0 has no unknowns"):
        inv.gauss_newton(problem, jnp.arange(2))  # integers: nothing to identify


def test_an_iteration_limit_is_reported_not_hidden(noisy):
    problem = inv.InverseProblem(solve_linear_k, noisy)
    with pytest.warns(RuntimeWarning, match=r"reached max_steps after 1 steps.*\|r\|/√m"):
        res = inv.gauss_newton(problem, jnp.array([5.0, 0.0]), max_steps=1)
    assert res.reason == "max_steps" and not bool(res.ok)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inv.gauss_newton(problem, jnp.array([1.0, 0.5]))  # converges: no warning


# slow: five inversions and their evidence; the experiments' PInv and backward heat use both
@pytest.mark.slow
def test_regularisation_chosen_by_discrepancy_and_by_evidence(noisy):
    """Field k with an L2 prior: the discrepancy principle takes the largest weight that still
    fits the data to τσ√m; the evidence rule a weight inside the grid; both inversions fit."""

    def forward(q):
        return nmm.solve(V, nmm.Poisson(k=q, f=1.0, dirichlet=0.0), throw=False)

    def make(alpha):
        return inv.InverseProblem(forward, noisy, inv.H1(0.0, beta=alpha, mean=1.25))

    q0 = nmm.fit(Q, lambda x: 1.25)
    alphas = [1e-4, 1e-2, 1.0, 1e2, 1e4]
    dp = inv.choose_regularisation(make, q0, alphas, rule="discrepancy")
    fits = [a for a, r in zip(dp.alphas, dp.ratios, strict=True) if r <= 1.1]
    assert dp.alpha == max(fits) and dp.ratios[dp.alphas.index(dp.alpha)] <= 1.1
    assert max(dp.ratios) > 1.1  # the largest weights do not fit: the rule had a choice
    ev = inv.choose_regularisation(make, q0, alphas, rule="evidence")
    assert np.all(np.isfinite(ev.evidence)) and ev.alpha in alphas
    assert "<" in ev.table()
    with pytest.raises(ValueError, match="rule must be one of"):
        inv.choose_regularisation(make, q0, alphas, rule="gcv")
    with pytest.raises(ValueError, match="alphas must be positive"):
        inv.choose_regularisation(make, q0, [0.0, 1.0])
