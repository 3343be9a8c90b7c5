"""Inverse problems with references: PInv and HInv (the NMM beside a PINN and a hybrid on the
same data), backward heat (the loss of information against the time gap and the noise, the weight
chosen by the discrepancy principle), source identification (position and strength from boundary
flux, Laplace intervals checked over 50 noise draws) and crack identification
(``experiments.inverse_crack``).

``python -m experiments inverse [--problem pinv hinv backward-heat source crack] [--out DIR]``
runs them and writes ``inverse.json`` and ``inverse.md``; every case is a function returning a
dict of plain numbers, so the report and the tests read the same figures.
"""

from __future__ import annotations

import functools
import json
import time
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import nmm
from nmm import inverse as inv
from nmm_nn import MLP

UNIT_SQUARE = [(0, 0), (1, 0), (1, 1), (0, 1)]


# ------------------------------------------------------------------------------ PInv


def pinv_setup(seed: int = 0):
    """PInv's data and discretisation, shared by :func:`pinv` and ``experiments.pinv_spaces``:
    ``(task, domain, V, f, obs_u, obs_a)`` — the PINN task's noisy u data (σ = 0.1), u's space,
    the manufactured source, and the observations of u and of a's known boundary values."""
    import nmm_nn
    from nmm_nn.inverse import PINV

    task = nmm_nn.pinv_task(2500, 0.1, seed=seed)
    dom = nmm.Domain.polygon(UNIT_SQUARE)
    V = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=0.25), dom, degree=4)
    f = nmm.manufactured_source(nmm.Poisson(k=PINV.exact_a), PINV.exact_u)
    obs_u = inv.Observations.at_points(task.obs_points, task.obs_values, 0.1, domain=dom)
    obs_a = inv.Observations.at_points(task.ab_points, task.ab_values, 1e-3, domain=dom)
    return task, dom, V, f, obs_u, obs_a


def pinv(
    seed: int = 0,
    *,
    pinn_steps: int = 5000,
    width: int = 64,
    depth: int = 3,
    alphas=None,
    hybrid_steps: int = 300,
    draws: int = 50,
):
    """PINNacle's PInv on one noise draw (the PINN task's data, shared by all methods): NMM +
    Gauss–Newton (a a field, the H1 weight by the Laplace evidence), the PINN (u and a two
    outputs of one network), and the hybrid (a network for a, u solved exactly by the NMM inside
    the loss, L-BFGS through the differentiable solve)."""
    from nmm_nn.inverse import PINV

    alphas = (1.0, 10.0, 100.0, 1e3, 1e4) if alphas is None else tuple(alphas)
    task, dom, V, f, obs_u, obs_a = pinv_setup(seed)
    Q = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=0.5), dom, degree=3)

    def forward(a):
        return nmm.solve(V, nmm.Poisson(k=a, f=f, dirichlet=0.0), throw=False), a

    def problem(alpha):
        return inv.InverseProblem(forward, (obs_u, obs_a), inv.H1(alpha, beta=alpha, mean=a0))

    # the prior mean is a constant at a's boundary level (the data's, not the truth's): a zero
    # mean would pull a towards 0 with the prior's L2 term (measured: 4.4e-2 against 3.0e-2)
    a0 = nmm.fit(Q, lambda x: float(np.mean(np.asarray(task.ab_values))))
    choice, compile_s, run_s = _gauss_newton_by_evidence(problem, a0, alphas)
    a = choice.result.theta
    u = nmm.solve(V, nmm.Poisson(k=a, f=f, dirichlet=0.0))
    G = _grid(10, 0.05, 0.95)
    post = inv.laplace(problem(jnp.asarray(choice.alpha)), a)
    mean, std = post.predictive(lambda q: q(G))
    miss = jnp.abs(mean - jax.vmap(PINV.exact_a)(G))
    out = {
        "seed": seed,
        "nmm": {
            **_scores(u, a, task, PINV),
            "alpha": choice.alpha,
            "alphas": choice.alphas,
            "log_evidence": choice.evidence,
            "steps": int(choice.result.steps),
            "status": choice.result.reason,
            "run_s": run_s,
            "compile_s": compile_s,
            "a_posterior_std_rms": float(jnp.sqrt(jnp.mean(std**2))),
            "a_error_rms": float(jnp.sqrt(jnp.mean(miss**2))),
            "a_coverage_95": float(jnp.mean(miss <= 1.96 * std)),
            "unknowns": {"u": V.n_dofs, "a": Q.n_dofs},
        },
    }
    if draws > 0:
        out["nmm"]["draws"] = _pinv_coverage(problem(jnp.asarray(choice.alpha)), a0, G, seed, draws)
    if pinn_steps > 0:
        out["pinn"] = _pinn(task, PINV, seed, pinn_steps, width, depth)
    if hybrid_steps > 0:
        out["hybrid"] = _hybrid(forward, (obs_u, obs_a), a0, task, seed, hybrid_steps)
    return out


def _pinv_coverage(problem, a0, G, seed, draws):
    """The Laplace intervals against the truth over ``draws`` noise draws of PInv's u data (the
    same points, the chosen weight), inverted by ``vmap`` in chunks: the 95 % coverage of a at the
    grid ``G`` (correlated points: a summary, not a binomial count) and of the mean of a over
    ``G`` (one interval a draw: binomial), with the spread of the estimates beside the
    posterior std."""
    from nmm_nn.inverse import PINV

    obs_u, obs_a = problem.observations
    clean = jax.vmap(PINV.exact_u)(obs_u.points)
    noise = obs_u.noise * jr.normal(jr.PRNGKey(seed + 1), (draws, clean.size))
    truth = jax.vmap(PINV.exact_a)(G)

    def one(d):
        p = problem.with_data(d, obs_a.values)
        res = inv.gauss_newton(p, a0, max_steps=40, damping=1e-3, throw=False)
        post = inv.laplace(p, res.theta)
        (vals, std), (mean, mstd) = (
            post.predictive(lambda q: q(G)),
            post.predictive(lambda q: jnp.mean(q(G))[None]),
        )
        return vals, std, mean[0], mstd[0], res.steps, res.status

    t0 = time.perf_counter()
    # vmapped in chunks of 5: one vmap of all 50 asked 46 GB (measured), the chunks reuse
    # one compiled batch
    vals, std, mean, mstd, steps, status = jax.lax.map(one, clean + noise, batch_size=5)
    z = 1.959963984540054
    inside = jnp.abs(vals - truth) <= z * std
    mean_inside = jnp.abs(mean - jnp.mean(truth)) <= z * mstd
    return {
        "draws": draws,
        "batch_s": time.perf_counter() - t0,
        "steps_max": int(jnp.max(steps)),
        "converged": int(jnp.sum(status <= 1)),
        "coverage_95_points": float(jnp.mean(inside)),
        "coverage_95_mean": int(jnp.sum(mean_inside)),
        "std_rms": float(jnp.sqrt(jnp.mean(std**2))),
        "spread_rms": float(jnp.sqrt(jnp.mean(jnp.var(vals, axis=0)))),
        "bias_rms": float(jnp.sqrt(jnp.mean((jnp.mean(vals, axis=0) - truth) ** 2))),
        "mean_std": float(jnp.mean(mstd)),
        "mean_spread": float(jnp.std(mean)),
        "mean_bias": float(jnp.mean(mean) - jnp.mean(truth)),
    }


class PositiveNet(eqx.Module):
    """a(x) = softplus(net(x) + shift): a network coefficient that stays elliptic."""

    net: MLP
    shift: float = eqx.field(static=True)

    def __call__(self, x):
        return jax.nn.softplus(self.net(x).reshape(()) + self.shift)


def _hybrid(forward, observations, a0, task, seed, steps, width=32, depth=2):
    """A network for a, the PDE solved by the NMM inside the loss: L-BFGS on the data misfit
    through the differentiable solve (no PDE residual to balance, no u network)."""
    from nmm_nn.inverse import PINV

    mean = float(np.mean(np.asarray(observations[1].values)))
    net = PositiveNet(
        MLP(2, 1, width, depth, "tanh", key=jr.PRNGKey(seed)), float(np.log(np.expm1(mean)))
    )
    problem = inv.InverseProblem(forward, observations)
    run = functools.partial(inv.minimise, problem, net, optimizer="lbfgs", throw=False)
    compile_s = _compile_estimate(run)
    t0 = time.perf_counter()
    res = run(steps=steps)
    res.objective.block_until_ready()
    run_s = time.perf_counter() - t0 - compile_s
    a = res.theta
    u = forward(a)[0]
    return {
        **_scores(u, jax.vmap(a), task, PINV),
        "network": f"a: {width}x{depth} tanh, softplus",
        "steps": int(res.steps),
        "status": res.reason,
        "run_s": run_s,
        "compile_s": compile_s,
    }


def _grid(n, lo=0.0, hi=1.0):
    g = np.linspace(lo, hi, n)
    return jnp.asarray(np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2))


def _rel(pred, exact):
    return float(np.linalg.norm(np.asarray(pred) - exact) / np.linalg.norm(exact))


def _scores(u_fn, a_fn, task, ref):
    """Relative L2 of a and of u on the task's uniform error grids, and PINNacle's score: one
    relative L2 of the stacked (u, a) at the same points (its ``ref_sol`` concatenates them)."""
    P = np.asarray(task.e_points)
    X = P[:, : ref.space_dim]
    ue, ae = np.asarray(task.e_u).reshape(-1), np.asarray(jax.vmap(ref.exact_a)(jnp.asarray(X)))
    up, ap = np.asarray(u_fn(P)).reshape(-1), np.asarray(a_fn(X)).reshape(-1)
    joint = np.sqrt(np.sum((up - ue) ** 2) + np.sum((ap - ae) ** 2)) / np.sqrt(
        np.sum(ue**2) + np.sum(ae**2)
    )
    return {
        "a_L2": _rel(a_fn(np.asarray(task.ea_points)), np.asarray(task.e_a).reshape(-1)),
        "u_L2": _rel(up, ue),
        "joint_L2": float(joint),
    }


# ------------------------------------------------------------------------------ HInv

SQUARE_11 = [(-1, -1), (1, -1), (1, 1), (-1, 1)]


def hinv(
    seed: int = 0,
    *,
    pinn_steps: int = 5000,
    width: int = 64,
    depth: int = 3,
    collocation: int = 4096,
    steps: int = 20,
    optimizer: str = "gauss-newton",
    alphas=None,
    alpha: float = 1.0,
    lbfgs_steps: int = 300,
    sigma: float = 0.1,
):
    """PINNacle's HInv on one noise draw: a(x, y) from 2 500 noisy space-time observations of u
    (the PINN task's data, shared by both methods; a known on ∂Ω).

    NMM: u by Crank–Nicolson (``steps`` steps, every state saved: the observations at random
    times are linear in t between them), a a p = 4 field on a 2 × 2 grid cover, an H1 prior.
    ``optimizer="gauss-newton"`` (default): its weight chosen among ``alphas`` by the Laplace
    evidence, the Jacobian by 135 tangent solves through the history (forward mode; 2 628
    adjoint products otherwise). ``"lbfgs"``: the weight ``alpha`` fixed, ``lbfgs_steps`` steps
    of L-BFGS (one adjoint gradient a step). The PINN: ``width`` × ``depth`` tanh, (u, a) out,
    Adam 1e-3, ``collocation`` points (PINNacle: 100 × 5, 20 000 steps, 32 768 points — too long
    for this machine)."""
    if optimizer not in ("gauss-newton", "lbfgs"):
        raise ValueError(f"optimizer must be 'gauss-newton' or 'lbfgs', got {optimizer!r}")
    alphas = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4) if alphas is None else tuple(alphas)
    import nmm_nn
    from nmm_nn.inverse import HINV

    task = nmm_nn.hinv_task(2500, sigma, seed=seed, n_collocation=collocation)
    dom = nmm.Domain.polygon(SQUARE_11)
    V = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=0.5), dom, degree=4)
    Q = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=1.0), dom, degree=4)
    X = np.asarray(task.obs_points)
    ab = np.asarray(task.ab_points)[::64]  # a on ∂Ω: 128 points fix a p = 4 field's trace

    def f(x, t):
        return HINV.source(jnp.append(x, t))

    def u0(x):
        return HINV.exact_u(jnp.append(x, 0.0))

    def history(a):
        return nmm.integrate(
            V,
            nmm.Poisson(k=a, f=f, dirichlet=_zero_in_time),
            u0,
            (0.0, 1.0),
            1.0 / steps,
            method="cn",
            throw=False,
        )

    obs_u = inv.Observations.of(lambda h: h.at(X[:, :2], X[:, 2]), task.obs_values, sigma)
    obs_a = inv.Observations.at_points(ab, jax.vmap(HINV.exact_a)(jnp.asarray(ab)), 1e-3, domain=dom)
    a0 = nmm.fit(Q, lambda x: float(np.mean(np.asarray(obs_a.values))))

    def problem(weight):
        # the prior's mean is a's boundary value (an H1 prior about 0 would pull a ≈ 2 down)
        prior = inv.H1(weight, beta=weight, mean=a0)
        return inv.InverseProblem(lambda a: (history(a), a), (obs_u, obs_a), prior)

    chosen = {}
    if optimizer == "gauss-newton":
        choice, compile_s, run_s = _gauss_newton_by_evidence(problem, a0, alphas)
        res, alpha = choice.result, choice.alpha
        chosen = {"alphas": choice.alphas, "log_evidence": choice.evidence}
    else:
        run = functools.partial(
            inv.minimise, problem(jnp.asarray(alpha)), a0, optimizer="lbfgs", rtol=1e-10, throw=False
        )
        compile_s = _compile_estimate(run)
        t0 = time.perf_counter()
        res = run(steps=lbfgs_steps)
        res.objective.block_until_ready()
        run_s = time.perf_counter() - t0 - compile_s
    hist = history(res.theta)

    def u_hist(p):
        p = jnp.asarray(p)
        return hist.at(p[:, :2], p[:, 2])

    out = {
        "seed": seed,
        "nmm": {
            **_scores(u_hist, res.theta, task, HINV),
            "optimizer": optimizer,
            "alpha": alpha,
            **chosen,
            "steps": int(res.steps),
            "status": res.reason,
            "discrepancy_ratio": float(res.discrepancy_ratio),
            "run_s": run_s,
            "compile_s": compile_s,
            "unknowns": {"u": V.n_dofs, "time_steps": steps, "a": Q.n_dofs},
        },
    }
    if pinn_steps > 0:
        out["pinn"] = _pinn(task, HINV, seed, pinn_steps, width, depth)
        out["pinn"]["collocation"] = collocation
    return out


def _gauss_newton_by_evidence(problem, theta0, alphas):
    """Gauss–Newton for each weight in ``alphas`` (``problem(alpha)``), the weight chosen by the
    Laplace evidence: ``(choice, compile_s, run_s)``, the compile time taken as the first weight's
    inversion and its evidence (one program serves every weight: α is a JAX scalar)."""
    opts = {"max_steps": 40, "damping": 1e-3}
    t0 = time.perf_counter()
    first = inv.gauss_newton(problem(jnp.asarray(alphas[0])), theta0, throw=False, **opts)
    inv.log_evidence(problem(jnp.asarray(alphas[0])), first.theta).block_until_ready()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    choice = inv.choose_regularisation(problem, theta0, alphas, rule="evidence", **opts)
    return choice, compile_s, time.perf_counter() - t0


def _compile_estimate(run) -> float:
    """Compile time of ``run(steps)``'s program, estimated as the first three-step run less a
    second one (the step count only bounds the loop: the program is the same for any count)."""
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # max_steps: meant
            run(steps=3).objective.block_until_ready()
        times.append(time.perf_counter() - t0)
    return times[0] - times[1]


def _zero_in_time(x, t):
    return 0.0 * t


def _pinn(task, ref, seed, steps, width, depth):
    """A PINN with outputs (u, a) trained by Adam on ``task``; the same scores as the NMM."""
    import nmm_nn

    net = nmm_nn.MLP(task.dim, 2, width, depth, "tanh", key=jr.PRNGKey(seed))
    net, hist = nmm_nn.train(net, task, steps=steps, learning_rate=1e-3, chunk=500, progress=False)

    def u_fn(p):
        return jax.vmap(lambda z: net(z)[0])(jnp.asarray(p))

    def a_fn(p):
        p = jnp.asarray(p)
        if ref.time and p.shape[1] == len(ref.box) - 1:  # a(x) has no t: read it at t = 0
            p = jnp.concatenate([p, jnp.zeros((p.shape[0], 1), p.dtype)], 1)
        return jax.vmap(lambda z: net(z)[1])(p)

    return {
        **_scores(u_fn, a_fn, task, ref),
        "network": f"{width}x{depth} tanh",
        "steps": steps,
        "run_s": float(hist.wall[-1]),
        "compile_s": float(hist.compile_time),
    }


# ------------------------------------------------------------------------------ backward heat

HEAT_MODES = ((1, 1.0), (4, 0.5), (10, 0.25))


def heat_exact(x, t):
    """u_t = u_xx on (0, 1), u = 0 at both ends: Σ A_k e^{−k²π²t} sin kπx."""
    return sum(A * jnp.exp(-((k * jnp.pi) ** 2) * t) * jnp.sin(k * jnp.pi * x[0]) for k, A in HEAT_MODES)


def backward_heat(gaps=(1e-3, 1e-2, 5e-2), noises=(1e-4, 1e-3, 1e-2), *, seed: int = 0, alphas=None):
    """Recover u(·, 0) from noisy u(·, T) at 99 points: rows of (T, σ, the weight by the
    discrepancy principle, the error of the recovered initial state; the best error over the
    weights — which needs the truth — beside it as a reference). The weights span 10⁻² … 10¹⁰:
    the misfit is whitened (each datum weighs 1/σ²), so the useful L2 weight grows like 1/σ² and
    like the amplification e^{k²π²T} of the last mode kept."""
    alphas = 10.0 ** np.arange(-2, 11) if alphas is None else np.asarray(alphas)
    I = nmm.Domain.interval(0.0, 1.0)
    V = nmm.ManifoldSpace(nmm.MathCover.intervals(I, 32), I, degree=3)
    heat = nmm.Poisson(f=lambda x, t: 0.0 * t, dirichlet=lambda x, t: 0.0 * t)
    P = np.linspace(0, 1, 101)[1:-1, None]
    u0_true = lambda x: heat_exact(x, 0.0)  # noqa: E731
    rows = []
    steps = 100
    for T in gaps:

        def forward(u0, T=T, steps=steps):
            h = nmm.integrate(
                V, heat, u0, (0.0, T), T / steps, method="cn", save_every=steps, throw=False
            )
            return h.final

        for sigma in noises:
            obs = inv.synthetic(lambda x, T=T: heat_exact(x, T), P, sigma, jr.PRNGKey(seed))

            def make(a, obs=obs, forward=forward):
                return inv.InverseProblem(forward, obs, inv.H1(0.0, beta=a))

            t0 = time.perf_counter()
            choice = inv.choose_regularisation(
                make, nmm.Field(V, jnp.zeros(V.n_dofs)), alphas, rule="discrepancy", max_steps=4
            )
            errs = [nmm.errors(r.theta, u0_true)["L2"] for r in choice.results]
            rows.append(
                {
                    "T": float(T),
                    "sigma": float(sigma),
                    "alpha": choice.alpha,
                    "error": float(errs[choice.alphas.index(choice.alpha)]),
                    "best_error": float(min(errs)),
                    "best_alpha": float(choice.alphas[int(np.argmin(errs))]),
                    "ratio": float(choice.ratios[choice.alphas.index(choice.alpha)]),
                    "modes_damping": {
                        str(k): float(np.exp(-((k * np.pi) ** 2) * T)) for k, _ in HEAT_MODES
                    },
                    "time_s": time.perf_counter() - t0,
                }
            )
    return rows


# ------------------------------------------------------------------------------ source


SOURCE_WIDTH = 0.08
SOURCE_TRUTH = (0.62, 0.35, 2.0)


def _source(th):
    w = SOURCE_WIDTH
    return lambda x: th[2] * jnp.exp(-jnp.sum((x - th[:2]) ** 2) / (2 * w**2)) / (2 * jnp.pi * w**2)


def source_identification(noises=(1e-3, 1e-2), *, draws: int = 50, seed: int = 0):
    """−Δu = s·G_w(x − c) on the unit square (u = 0 on the boundary, G_w a Gaussian of width
    0.08): c = (cx, cy) and s from the outward flux at 120 boundary points; Gauss–Newton, the
    Laplace 95 % intervals and their coverage over ``draws`` noise draws (one vmap)."""
    dom = nmm.Domain.polygon(UNIT_SQUARE)
    V = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=0.125), dom, degree=4)
    t = (np.arange(30) + 0.5) / 30
    B = np.concatenate([np.c_[t, 0 * t], np.c_[1 + 0 * t, t], np.c_[t, 1 + 0 * t], np.c_[0 * t, t]])
    normal = np.repeat([[0, -1.0], [1.0, 0], [0, 1.0], [-1.0, 0]], 30, axis=0)

    def flux(u):
        return jnp.sum(u.grad(B) * normal, axis=1)

    def forward(th):
        return nmm.solve(V, nmm.Poisson(f=_source(th), dirichlet=0.0), throw=False)

    truth = jnp.asarray(SOURCE_TRUTH)
    clean = flux(forward(truth))
    th0 = jnp.array([0.5, 0.5, 1.0])
    rows = []
    for sigma in noises:
        base = inv.InverseProblem(forward, inv.Observations.of(flux, clean, sigma))
        noise = sigma * jr.normal(jr.PRNGKey(seed), (draws, clean.size))
        t0 = time.perf_counter()
        one = inv.gauss_newton(base.with_data(clean + noise[0]), th0, max_steps=30, damping=1e-3)
        one_s = time.perf_counter() - t0
        post = inv.laplace(base.with_data(clean + noise[0]), one.theta)

        def invert(d, base=base):
            p = base.with_data(d)
            th = inv.gauss_newton(p, th0, max_steps=30, damping=1e-3).theta
            lo, hi = inv.laplace(p, th).interval(0.95)
            return th, lo, hi

        t0 = time.perf_counter()
        th, lo, hi = jax.vmap(invert)(clean + noise)
        batch_s = time.perf_counter() - t0
        inside = (lo <= truth) & (truth <= hi)
        rows.append(
            {
                "sigma": float(sigma),
                "relative_noise": float(sigma / jnp.max(jnp.abs(clean))),
                "estimate": np.asarray(one.theta).tolist(),
                "error": np.asarray(one.theta - truth).tolist(),
                "std": np.asarray(post.std).tolist(),
                "steps": int(one.steps),
                "time_s": one_s,
                "coverage_95": float(jnp.mean(inside)),
                "coverage_per_parameter": np.asarray(jnp.mean(inside, axis=0)).tolist(),
                "spread": np.asarray(jnp.std(th, axis=0)).tolist(),
                "draws": draws,
                "batch_s": batch_s,
            }
        )
    return rows


# ------------------------------------------------------------------------------ report


def crack(**kw):
    """Crack identification (``experiments.inverse_crack``)."""
    from .inverse_crack import crack_identification

    return crack_identification(**kw)


CASES = {
    "pinv": pinv,
    "hinv": hinv,
    "backward-heat": backward_heat,
    "source": source_identification,
    "crack": crack,
}
TAKE_PINN_STEPS = ("pinv", "hinv")


def report(results: dict) -> str:
    lines = ["# Inverse problems", ""]
    if "pinv" in results:
        r = results["pinv"]
        n = r["nmm"]
        lines += [
            "## PInv (PINNacle's Poisson inverse; 2 500 observations, σ = 0.1, a known on ∂Ω)",
            "",
            *_method_table(
                r, f"NMM + Gauss–Newton (H1 prior, α = {n['alpha']:g} by evidence, {n['steps']} steps)"
            ),
            "",
            f"Laplace posterior of a on a 10 × 10 grid: rms std {n['a_posterior_std_rms']:.2e}, "
            f"rms error {n['a_error_rms']:.2e}, 95 % intervals cover "
            f"{100 * n['a_coverage_95']:.0f} % of the points.",
            "",
        ]
        if "draws" in n:
            c = n["draws"]
            lines += [
                f"Over {c['draws']} noise draws (vmapped in chunks, {c['batch_s']:.0f} s; Gauss–Newton "
                f"converged in {c['converged']} of them, at most {c['steps_max']} steps): 95 % "
                f"intervals of a on the grid cover the truth at {100 * c['coverage_95_points']:.1f} % "
                f"of the points (posterior std {c['std_rms']:.2e} rms, spread of the estimates "
                f"{c['spread_rms']:.2e}, bias {c['bias_rms']:.2e}); those of the mean of a over "
                f"the grid cover it in {c['coverage_95_mean']} of {c['draws']} draws.",
                "",
            ]
    if "hinv" in results:
        r = results["hinv"]
        n = r["nmm"]
        lines += [
            "## HInv (PINNacle's heat inverse; 2 500 space-time observations, σ = 0.1, a known on ∂Ω)",
            "",
            *_method_table(r, _hinv_label(n)),
            "",
        ]
    if "backward-heat" in results:
        lines += [
            "## Backward heat: u(·, 0) from noisy u(·, T) (modes 1, 4, 10; 99 points)",
            "",
            "| T | σ | α (discrepancy) | rel. L2 of u(·,0) | best over α (reference) "
            "| e^{−k²π²T}, k = 4, 10 |",
            "|---|---|---|---|---|---|",
        ]
        for row in results["backward-heat"]:
            d = row["modes_damping"]
            lines.append(
                f"| {row['T']:g} | {row['sigma']:g} | {row['alpha']:.0e} | {row['error']:.3e} | "
                f"{row['best_error']:.3e} (α = {row['best_alpha']:.0e}) | {d['4']:.1e}, {d['10']:.1e} |"
            )
        lines.append("")
    if "source" in results:
        lines += [
            "## Source identification (position and strength from boundary flux)",
            "",
            "| σ (relative) | error (cx, cy, s) | Laplace std | 95 % coverage over draws | time |",
            "|---|---|---|---|---|",
        ]
        for row in results["source"]:
            e = ", ".join(f"{v:.1e}" for v in row["error"])
            s = ", ".join(f"{v:.1e}" for v in row["std"])
            lines.append(
                f"| {row['sigma']:g} ({row['relative_noise']:.1e}) | {e} | {s} | "
                f"{100 * row['coverage_95']:.0f} % of {3 * row['draws']} | {row['time_s']:.1f} s "
                f"(batch of {row['draws']}: {row['batch_s']:.1f} s) |"
            )
        lines.append("")
    if "crack" in results:
        from .inverse_crack import report_crack

        lines.append(report_crack(results["crack"]))
    return "\n".join(lines)


def _hinv_label(n):
    how = (
        f"Gauss–Newton (H1 prior, α = {n['alpha']:g} by evidence"
        if n.get("optimizer", "lbfgs") == "gauss-newton"
        else f"L-BFGS (H1 prior, α = {n['alpha']:g} fixed"
    )
    return (
        f"NMM, CN {n['unknowns']['time_steps']} steps + {how}, {n['steps']} steps, "
        f"‖r‖/√m = {n['discrepancy_ratio']:.2f})"
    )


def _method_table(r, nmm_label):
    """One row per method: the NMM, the hybrid (a network for a, NMM solve), the PINN."""
    rows = [("nmm", nmm_label)]
    if "hybrid" in r:
        h = r["hybrid"]
        label = f"hybrid: {h['network']}, NMM solve in the loss, L-BFGS {h['steps']} steps"
        rows.append(("hybrid", label))
    if "pinn" in r:
        p = r["pinn"]
        rows.append(("pinn", f"PINN {p['network']} (u, a), Adam, {p['steps']} steps"))
    out = [
        "| method | a rel. L2 | u rel. L2 | PINNacle L2RE (u, a stacked) | run time |",
        "|---|---|---|---|---|",
    ]
    for key, label in rows:
        m = r[key]
        out.append(
            f"| {label} | {m['a_L2']:.3e} | {m['u_L2']:.3e} | {m['joint_L2']:.3e} | "
            f"{m['run_s']:.1f} s (+ {m['compile_s']:.1f} s compile) |"
        )
    return out


def run(problems, out: Path, *, pinn_steps: int = 5000) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "inverse.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for name in problems:
        t0 = time.perf_counter()
        print(f"inverse: {name} ...", flush=True)
        kw = {"pinn_steps": pinn_steps} if name in TAKE_PINN_STEPS else {}
        results[name] = CASES[name](**kw)
        print(f"inverse: {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
        path.write_text(json.dumps(results, indent=1, default=float))  # kept after every case
    md = out / "inverse.md"
    md.write_text(report(results))
    return md
