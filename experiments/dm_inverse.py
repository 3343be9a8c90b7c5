"""Deep Manifold claim "forward and inverse combined" and "negative time": one network, one loss
(data + PDE + boundary, no distinction between forward and inverse), recovers an earlier state of
the heat equation from a later one, and gives the forward field with it.

The problem: u_t = u_xx on [0, 1], u = 0 at both ends, u(x, 0) = Σ A_k sin kπx with the modes
(k, A_k) = (1, 1), (4, 0.5), (10, 0.25) of ``experiments.inverse.backward_heat``. The data: u(·, T)
at 99 interior points plus Gaussian noise of σ = 1 % of max|u(·, T)| (the noise draw fixed per
seed), for T = 0.01, 0.05, 0.1. The k-th mode of u(·, 0) reaches the data damped by
e^{−k²π²T}: the mode is recoverable only while e^{−k²π²T}|A_k| exceeds the noise.

* **The network** (the claim's "combined" formulation): a tanh MLP of (x, t/T), 3 hidden layers,
  width from ``s.budget``, trained by Adam on ONE loss, all weights 1,

      mean_i (u(x_i, T) − d_i)²  +  mean_q (u_τ − T u_xx)²(x_q, τ_q)  +  mean_b u(x_b, τ_b)²

  (τ = t/T ∈ [0, 1]; 256 collocation points, 64 boundary times per end). Nothing in it marks
  t = 0: the initial state is read off the trained network, and the forward field u(x, t),
  t ∈ (0, T], is the same network.
* **The regularised inversion**: the exact spectral forward map (24 sine modes, u(x_i, T) =
  Σ c_k e^{−k²π²T} sin kπx_i) inverted by ``nmm.inverse`` — Gauss–Newton with a Tikhonov (L2)
  prior on the coefficients, its weight chosen among half-decades 10⁻⁴ … 10⁸ by the discrepancy
  principle (τ = 1.2, see ``TAU``). Its forward field is the same series at t.
* **The forward reference**: the NMM (32 cells, p = 3, Crank–Nicolson, 100 steps) from the true
  initial state; the forward errors of both methods are measured against it at t = T/10 … T.
* **The information limit**: the modes with e^{−k²π²T}|A_k| > σ (the count above the noise), and the
  relative L2 share of u(·, 0) in the other modes — the error that no method can avoid without
  knowing the answer. A least-squares coefficient sees the noise σ√(2/m) (m data), so a mode
  whose damped amplitude lies 30× below that is beyond any method: recovering it to within 20 %
  (a chance below 0.5 % for an unbiased estimate, nil for a shrinking one) is a leak of the truth.

The rule (``RULE``) was fixed before any result of the network was seen (the regularised
inversion had been tried: with the default τ = 1.1 one noise draw of 99 data had |r|/√m = 1.10
at the best fit and the principle fell back to no regularisation; τ = 1.2 is above the noise
norm's 99.9 % quantile). Why these thresholds: the claim is that the combined formulation needs
no dedicated inverse machinery, so the yardstick is a dedicated inversion on the same data, and
"as well" means within a factor 2, not digit for digit; 5× worse is a clear loss. The
initial-state error is dominated by the information floor (0.22 at T = 0.01, 0.49 at T ≥ 0.05),
which masks differences in what *can* be recovered: the error against the recoverable part of
the truth (the modes above σ) is reported beside it as a qualifier, with its own ratio, without
changing the verdict.

Measured (2-core dev machine, CPU, other jobs beside it). Quick settings (3000 steps, 2 seeds,
budget 500: a 14x3 network): not supported — at T = 0.01 the small network has not fitted the
data yet (rms misfit 5.5σ), its forward error is 6.7x the inversion's; at T = 0.05 and 0.1 the
ratios are 1.0. Standard settings (20 000 steps, 5 seeds, 32x3): supported — u(·, 0) error
ratios 1.08, 1.00, 1.00 and forward ratios 1.34, 1.00, 1.01 for T = 0.01, 0.05, 0.1, modes 1 and
4 recovered at T = 0.01, none beyond the limit; but against the recoverable part of the truth the
network is 4.3x [2.9, 6.4] less accurate at T = 0.01, from spurious content outside the true
modes (9e-2 of ‖u0‖ against 1e-2), not from the modes' coefficients.
"""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import nmm  # noqa: E402
from nmm import inverse as inv  # noqa: E402
from nmm_nn import MLP  # noqa: E402

from .batch_train import train_batch  # noqa: E402
from .deep_manifold import Claim, DMSettings, _save  # noqa: E402
from .inverse import HEAT_MODES, heat_exact  # noqa: E402
from .stats import fmt_ci, mean_ci  # noqa: E402

RULE = (
    "supported if, at every T, the network's initial-state error (relative L2 against the true "
    "u(·, 0); geometric mean over seeds of the paired ratio network / regularised inversion) is "
    "within a factor 2 of the regularised inversion's AND its forward error over (0, T] is within "
    "a factor 2 of the inversion's forward field's — the combined formulation does as well as a "
    "dedicated inversion; not supported if either ratio is >= 5 at any T, or if the network "
    "recovers (to within 20 %) a mode whose damped amplitude lies 30x below the per-coefficient "
    "noise floor σ√(2/m) (beyond the information limit: a leak of the truth); inconclusive "
    "otherwise. Qualifier, reported without changing the verdict: the same ratio for the error "
    "against the recoverable part of the truth (the modes whose damped amplitude exceeds σ)"
)
QUESTION = (
    "Does one network trained on one loss (data at t = T + PDE residual over space-time + "
    "boundary) run time backwards — recover u(·, 0) of the heat equation from noisy u(·, T) — as "
    "well as a dedicated regularised inversion, and give the forward field u(·, t) with it?"
)

GAPS = (0.01, 0.05, 0.1)  # T
NOISE = 1e-2  # σ relative to max|u(·, T)|
N_DATA = 99  # u(x_i, T) at x_i = i/100, as experiments.inverse.backward_heat
N_COLLOCATION = 256
N_BOUNDARY = 64  # times per end
DEPTH = 3
MAX_WIDTH = 32  # the standard budget would give 56: 2.5x the cost a step (measured), on 2 cores
K_MODES = 24  # sine modes of the regularised inversion's unknown u(·, 0)
ALPHAS = 10.0 ** np.arange(-4.0, 8.01, 0.5)
TAU = 1.2  # discrepancy factor (see the module docstring)
RECOVERED = 0.2  # a mode is recovered when its coefficient is within 20 % of A_k
LEAK_FACTOR = 30.0  # ... and a leak when its damped amplitude is 30x below σ√(2/m)
N_GRID = 401  # evaluation grid in x
N_TIMES = 10  # forward field at t = T/10, 2T/10, ..., T

# the truth as arrays
_K = np.array([k for k, _ in HEAT_MODES])
_A = np.array([a for _, a in HEAT_MODES], float)


# ------------------------------------------------------------------ the verdict (pure)


def verdict(u0_ratios, forward_ratios, leaks) -> str:
    """The rule on per-T geometric-mean ratios (network / regularised inversion) of the
    initial-state and forward errors, and per-T flags of a mode recovered beyond the limit."""
    u0 = np.asarray(u0_ratios, float)
    fw = np.asarray(forward_ratios, float)
    if any(leaks):
        return "not supported (the network recovers a mode beyond the information limit: a leak)"
    if np.any(u0 >= 5) or np.any(fw >= 5):
        return "not supported"
    if np.all(u0 <= 2) and np.all(fw <= 2):
        return "supported"
    return "inconclusive"


# ------------------------------------------------------------------ data and limits


def _width(budget: int) -> int:
    """Width of a 2-in, 1-out tanh MLP of ``DEPTH`` hidden layers with about ``budget``
    parameters, kept in [8, MAX_WIDTH]."""
    best = 1
    for w in range(1, 512):
        if 3 * w + (DEPTH - 1) * (w * w + w) + w + 1 > budget:
            break
        best = w
    return int(np.clip(best, 8, MAX_WIDTH))


def data_points() -> np.ndarray:
    return np.arange(1, N_DATA + 1) / (N_DATA + 1)


def heat_data(T: float, key) -> tuple[np.ndarray, np.ndarray, float]:
    """Clean u(x_i, T), noisy data, σ (relative to the clean peak, the same for every seed)."""
    x = data_points()
    clean = np.asarray(jax.vmap(lambda p: heat_exact(p, T))(jnp.asarray(x[:, None])))
    sigma = NOISE * float(np.max(np.abs(clean)))
    return clean, clean + sigma * np.asarray(jr.normal(key, clean.shape)), sigma


def damped(T: float) -> np.ndarray:
    """|A_k| e^{−k²π²T} of the true modes: their amplitudes in the data."""
    return np.abs(_A) * np.exp(-((_K * np.pi) ** 2) * T)


def information_limit(T: float, sigma: float, m: int = N_DATA) -> dict:
    """Modes above the noise, the per-coefficient noise floor, the modes a method cannot recover
    (the leak test) and the error of knowing the recoverable modes exactly."""
    amp = damped(T)
    above = amp > sigma
    floor = sigma * np.sqrt(2.0 / m)
    return {
        "modes_above_noise": int(above.sum()),
        "modes": _K[above].tolist(),
        "noise_floor": float(floor),
        "beyond": _K[amp * LEAK_FACTOR < floor].tolist(),
        "limit_error": float(np.sqrt(np.sum(_A[~above] ** 2) / np.sum(_A**2))),
        "above": above,
    }


def _sines(x: np.ndarray, n: int) -> np.ndarray:
    return np.sin(np.pi * np.outer(x, np.arange(1, n + 1)))


def truth_coefficients(n: int = K_MODES) -> np.ndarray:
    c = np.zeros(n)
    c[_K - 1] = _A
    return c


def sine_coefficients(x: np.ndarray, u: np.ndarray, n: int = K_MODES) -> np.ndarray:
    """c_k = 2 ∫ u sin kπx (trapezoid on the grid ``x``)."""
    return 2.0 * np.trapezoid(u[:, None] * _sines(x, n), x, axis=0)


def recovered(c: np.ndarray) -> np.ndarray:
    """Which true modes the coefficients ``c`` hold to within ``RECOVERED``."""
    return np.abs(c[_K - 1] - _A) < RECOVERED * np.abs(_A)


def _rel(u, ref, scale=None) -> float:
    ref = np.asarray(ref)
    return float(np.linalg.norm(np.asarray(u) - ref) / np.linalg.norm(ref if scale is None else scale))


# ------------------------------------------------------------------ the regularised inversion


class _Series(eqx.Module):
    """u(x, t) = Σ c_k e^{−k²π²t} sin kπx at one point p = (x, t)."""

    c: jax.Array

    def __call__(self, p):
        k = jnp.arange(1, self.c.shape[0] + 1)
        return jnp.sum(self.c * jnp.exp(-((k * jnp.pi) ** 2) * p[1]) * jnp.sin(k * jnp.pi * p[0]))


def _series_state(c):
    # module-level (the forward map is static in an InverseProblem): T travels in the
    # observation points (x_i, T), so one compiled inversion serves every T and seed
    return _Series(c)


def regularised(T: float, d: np.ndarray, sigma: float) -> dict:
    """Tikhonov inversion by ``nmm.inverse`` with the weight by the discrepancy principle;
    the best weight in hindsight (it needs the truth) beside it as a reference."""
    xd = data_points()
    obs = inv.Observations.at_points(np.c_[xd, np.full_like(xd, T)], d, sigma)

    def make(alpha):
        return inv.InverseProblem(_series_state, obs, inv.Tikhonov(alpha))

    with warnings.catch_warnings():
        # "no weight fits": kept in the numbers (ratio > TAU), not hidden
        warnings.simplefilter("ignore", RuntimeWarning)
        ch = inv.choose_regularisation(
            make, jnp.zeros(K_MODES), ALPHAS, rule="discrepancy", tau=TAU, max_steps=4
        )
    truth = truth_coefficients()
    errs = [_rel(np.asarray(r.theta), truth) for r in ch.results]  # = L2 of u(·, 0): sines
    i = ch.alphas.index(ch.alpha)
    return {
        "c": np.asarray(ch.result.theta),
        "alpha": float(ch.alpha),
        "ratio": float(ch.ratios[i]),
        "best_error": float(min(errs)),
        "best_alpha": float(ch.alphas[int(np.argmin(errs))]),
    }


def series(c: np.ndarray, x: np.ndarray, t: float) -> np.ndarray:
    """The heat equation's solution from the sine coefficients ``c`` of u(·, 0), at time t."""
    k = np.arange(1, len(c) + 1)
    return _sines(x, len(c)) @ (c * np.exp(-((k * np.pi) ** 2) * t))


# ------------------------------------------------------------------ the NMM forward reference


@functools.cache
def _heat_space():
    # built once: a new form (new lambdas) is a new program for nmm.integrate
    I = nmm.Domain.interval(0.0, 1.0)
    V = nmm.ManifoldSpace(nmm.MathCover.intervals(I, 32), I, degree=3)
    return V, nmm.Poisson(f=_zero_in_time, dirichlet=_zero_in_time)


def _zero_in_time(x, t):
    return 0.0 * t


def _u0(x):
    return heat_exact(x, 0.0)


def nmm_reference(T: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The NMM's forward solve from the true u(·, 0) on the grid ``x`` at t = T/10 … T:
    ``(times, values (N_TIMES, len(x)))`` (saved states: History.at is exact there)."""
    V, heat = _heat_space()
    steps = 10 * N_TIMES
    h = nmm.integrate(V, heat, _u0, (0.0, T), T / steps, method="cn", save_every=10)
    times = np.arange(1, N_TIMES + 1) * T / N_TIMES
    vals = [np.asarray(h.at(x[:, None], np.full(len(x), t))) for t in times]
    return times, np.stack(vals)


# ------------------------------------------------------------------ the network


def _value(p, Z):
    """The MLP (weights (out, in) as ``nmm_nn.MLP``) at points ``Z (N, 2)``."""
    ws, bs = p
    h = Z
    for w, b in zip(ws[:-1], bs[:-1], strict=True):
        h = jnp.tanh(h @ w.T + b)
    return (h @ ws[-1].T + bs[-1])[:, 0]


def _jet(p, Z):
    """u_τ and u_xx at ``Z (N, 2)`` by propagating the derivatives through the layers: batched
    matmuls instead of a per-point reverse pass inside the loss's own reverse pass (the
    residual is the loss's cost; checked against autodiff in the tests)."""
    ws, bs = p
    a = Z @ ws[0].T + bs[0]
    ax = jnp.broadcast_to(ws[0][:, 0], a.shape)
    at = jnp.broadcast_to(ws[0][:, 1], a.shape)
    axx = jnp.zeros_like(a)
    for w, b in zip(ws[1:], bs[1:], strict=True):
        h = jnp.tanh(a)
        s = 1.0 - h * h  # tanh', and tanh'' = −2 h s
        hx, ht, hxx = s * ax, s * at, s * axx - 2.0 * h * s * ax * ax
        a, ax, at, axx = h @ w.T + b, hx @ w.T, ht @ w.T, hxx @ w.T
    return at[:, 0], axx[:, 0]


def _parts(p, T, d, pts):
    """The three terms of the one loss (scaled time τ = t/T: u_τ − T u_xx = T (u_t − u_xx))."""
    ut, uxx = _jet(p, pts["interior"])
    return {
        "data": jnp.mean((_value(p, pts["data"]) - d) ** 2),
        "pde": jnp.mean((ut - T * uxx) ** 2),
        "boundary": jnp.mean(_value(p, pts["boundary"]) ** 2),
    }


def _loss(p, T, d, pts):
    q = _parts(p, T, d, pts)
    return q["data"] + q["pde"] + q["boundary"]


def network_points(key, dtype) -> dict:
    """Collocation (x, τ) in the unit square, the data at τ = 1, the two ends at random τ."""
    kz, kb = jr.split(key)
    xd = data_points()
    tb = np.asarray(jr.uniform(kb, (N_BOUNDARY,)))
    return {
        "interior": jnp.asarray(jr.uniform(kz, (N_COLLOCATION, 2)), dtype),
        "data": jnp.asarray(np.c_[xd, np.ones_like(xd)], dtype),
        "boundary": jnp.asarray(np.r_[np.c_[np.zeros_like(tb), tb], np.c_[np.ones_like(tb), tb]], dtype),
    }


def _batch_loss(p, td, pts):
    """``_loss`` in ``batch_train``'s form: per network (T, data), the points shared."""
    return _loss(p, td[0], td[1], pts)


def train_networks(params, Ts, D, pts, s: DMSettings):
    """Adam on every network at once (vmapped: one program for all T and seeds), ``s.stage``
    steps per compiled scan; ``nmm_nn.train`` trains one network on a Task and has no loss
    without an initial condition. Returns the params, losses ``(steps, B)`` and the seconds
    spent (compile included)."""
    t0 = time.perf_counter()
    params, losses, _ = train_batch(
        _batch_loss,
        optax.adam(s.learning_rate),
        params,
        (Ts, D),
        pts,
        steps=s.steps,
        stage=s.stage,
        what="forward-inverse: a network's training",
    )
    return params, losses, time.perf_counter() - t0


# ------------------------------------------------------------------ the experiment


def _networks(s: DMSettings, nT: int, dtype):
    """One tanh MLP per (T, seed), stacked: ``(weights, biases)`` with a leading batch axis
    (``nmm_nn.MLP``'s initialisation, the key of seed ``seed`` folded with T's index)."""
    keys = jnp.stack(
        [jr.fold_in(jr.split(jr.PRNGKey(seed))[0], i) for i in range(nT) for seed in range(s.seeds)]
    )
    width = _width(s.budget)
    nets = eqx.filter_vmap(lambda k: MLP(2, "scalar", width, DEPTH, "tanh", key=k))(keys)
    return (
        tuple(w.astype(dtype) for w in nets.weights),
        tuple(b.astype(dtype) for b in nets.biases),
    )


def _scores(x, u0, recoverable, times, ref, un, fw_net, cr) -> dict:
    """One seed's errors: the network's u(·, 0) ``un`` and forward field ``fw_net`` (at
    ``times``) and the regularised inversion's coefficients ``cr``, against the truth ``u0``, its
    recoverable part and the NMM forward reference ``ref``."""
    ur = _sines(x, K_MODES) @ cr
    fw_reg = np.stack([series(cr, x, t) for t in times])
    return {
        "net_u0": _rel(un, u0),
        "reg_u0": _rel(ur, u0),
        "net_excess": _rel(un, recoverable, u0),
        "reg_excess": _rel(ur, recoverable, u0),
        "net_forward": _rel(fw_net, ref),
        "reg_forward": _rel(fw_reg, ref),
        "net_final": _rel(fw_net[-1], ref[-1]),
        # the part of u(·, 0) outside the true modes' span (spurious content)
        "net_outside": _outside(x, un, u0),
        "reg_outside": _outside(x, ur, u0),
        "net_c": sine_coefficients(x, un)[_K - 1].tolist(),
        "reg_c": cr[_K - 1].tolist(),
    }


def _modes(T: float, sigma: float, net_c, reg_c) -> dict:
    """The information limit at (T, σ) and the true modes each seed's estimates recovered."""
    lim = information_limit(T, sigma)
    beyond = np.isin(_K, lim["beyond"])
    net_rec = [recovered(_full(c)) for c in net_c]
    reg_rec = [recovered(_full(c)) for c in reg_c]
    return {
        "modes_above_noise": lim["modes_above_noise"],
        "modes_recoverable": lim["modes"],
        "modes_beyond": lim["beyond"],
        "noise_floor": lim["noise_floor"],
        "limit_error": lim["limit_error"],
        "net_recovered": [_K[m].tolist() for m in net_rec],
        "reg_recovered": [_K[m].tolist() for m in reg_rec],
        "net_leak": bool(any(np.any(m & beyond) for m in net_rec)),
        "reg_leak": bool(any(np.any(m & beyond) for m in reg_rec)),
    }


def _run(s: DMSettings) -> dict:
    """Every measurement, one row per T with lists over seeds (no figure, no verdict)."""
    nT, S = len(GAPS), s.seeds
    x = np.linspace(0.0, 1.0, N_GRID)
    u0 = np.asarray(series(truth_coefficients(), x, 0.0))
    # data: one noise draw per (seed, T), shared by both methods
    D, sigmas = np.zeros((nT, S, N_DATA)), np.zeros(nT)
    for i, T in enumerate(GAPS):
        for seed in range(S):
            key = jr.fold_in(jr.split(jr.PRNGKey(seed))[1], i)
            _, D[i, seed], sigmas[i] = heat_data(T, key)

    t0 = time.perf_counter()
    refs = [nmm_reference(T, x) for T in GAPS]
    nmm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reg = [[regularised(T, D[i, seed], sigmas[i]) for seed in range(S)] for i, T in enumerate(GAPS)]
    reg_s = time.perf_counter() - t0

    # float32: the data carry 1 % noise, far above its rounding, and it halves the training
    # time on the CPU (measured 15 against 32 ms a step for 15 networks)
    dtype = jnp.float32
    params = _networks(s, nT, dtype)
    n_params = int(sum(w[0].size + b[0].size for w, b in zip(*params, strict=True)))
    pts = network_points(jr.PRNGKey(12345), dtype)  # fixed: the same points for every network
    Ts = jnp.asarray(np.repeat(GAPS, S), dtype)
    Dn = jnp.asarray(D.reshape(nT * S, -1), dtype)
    params, losses, train_s = train_networks(params, Ts, Dn, pts, s)
    parts = jax.vmap(_parts, (0, 0, 0, None))(params, Ts, Dn, pts)

    def net_at(b, xs, tau):
        p = jax.tree_util.tree_map(lambda a: a[b], params)
        Z = np.c_[xs, np.full(len(xs), tau)]
        return np.asarray(_value(p, jnp.asarray(Z, dtype)), float)

    rows = []
    for i, T in enumerate(GAPS):
        times, ref = refs[i]
        above = _K[information_limit(T, sigmas[i])["above"]]
        recoverable = series(
            np.where(np.isin(np.arange(1, K_MODES + 1), above), truth_coefficients(), 0.0), x, 0.0
        )
        exact_fw = np.stack([series(truth_coefficients(), x, t) for t in times])
        b = [i * S + seed for seed in range(S)]
        per = [
            _scores(
                x,
                u0,
                recoverable,
                times,
                ref,
                net_at(b[seed], x, 0.0),
                np.stack([net_at(b[seed], x, t / T) for t in times]),
                reg[i][seed]["c"],
            )
            for seed in range(S)
        ]
        per = {k: [p[k] for p in per] for k in per[0]}
        fits = [net_at(b[seed], data_points(), 1.0) - D[i, seed] for seed in range(S)]
        rows.append(
            {
                "T": float(T),
                "sigma": float(sigmas[i]),
                **_modes(T, sigmas[i], per["net_c"], per["reg_c"]),
                "nmm_reference_error": _rel(ref, exact_fw),
                "alpha": [r["alpha"] for r in reg[i]],
                "discrepancy_ratio": [r["ratio"] for r in reg[i]],
                "reg_best_error": [r["best_error"] for r in reg[i]],
                "reg_best_alpha": [r["best_alpha"] for r in reg[i]],
                **per,
                "data_fit": [float(np.sqrt(np.mean(f**2)) / sigmas[i]) for f in fits],
                "loss_final": [float(v) for v in losses[-1, b]],
                "loss_parts": {k: [float(v) for v in np.asarray(parts[k])[b]] for k in parts},
                "_curves": (net_at(b[0], x, 0.0), _sines(x, K_MODES) @ reg[i][0]["c"]),
            }
        )
    return {
        "rows": rows,
        "x": x,
        "u0": u0,
        "losses": losses,
        "network": f"tanh {_width(s.budget)}x{DEPTH} ({n_params} parameters), Adam "
        f"{s.learning_rate:g}, {s.steps} steps, float32",
        "times": {"nmm_reference_s": nmm_s, "regularised_s": reg_s, "train_s": train_s},
    }


def _outside(x, u, u0) -> float:
    """‖u − its projection on the true modes‖ / ‖u0‖ on the grid ``x``."""
    S = _sines(x, K_MODES)[:, _K - 1]
    return _rel(u, S @ sine_coefficients(x, u)[_K - 1], u0)


def _full(c_true_modes) -> np.ndarray:
    """Coefficients of the true modes (in ``HEAT_MODES`` order) placed in a K_MODES vector."""
    c = np.zeros(K_MODES)
    c[_K - 1] = c_true_modes
    return c


def _join(values, fmt: str = ".2f") -> str:
    return ", ".join(f"{v:{fmt}}" for v in values)


def _ci(values) -> dict:
    return mean_ci(values, log=True)


def _figure(res: dict, cis: dict, out: Path, name: str, s: DMSettings) -> None:
    rows, x = res["rows"], res["x"]
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(4.2 * (len(rows) + 1), 3.8))
    for ax, r in zip(axes, rows, strict=False):
        net, reg = r["_curves"]
        ax.plot(x, res["u0"], "k-", lw=1.2, label="truth u(x, 0)")
        ax.plot(x, reg, "C0--", lw=1.0, label=f"regularised (α = {r['alpha'][0]:.2g})")
        ax.plot(x, net, "C3-", lw=1.0, label="network, one loss")
        ax.set(
            xlabel="x",
            title=f"T = {r['T']:g}: modes above σ {r['modes_recoverable']} (seed 0)",
        )
        ax.legend(fontsize=7)
    ax = axes[-1]
    T = np.array([r["T"] for r in rows])
    for j, (key, label, style) in enumerate(
        (
            ("net_u0", "network u(·, 0)", "C3o-"),
            ("reg_u0", "regularised u(·, 0)", "C0s-"),
            ("net_forward", "network forward (0, T]", "C3^:"),
            ("reg_forward", "regularised forward (0, T]", "C0v:"),
        )
    ):
        c = cis[key]
        m = np.array([v["mean"] for v in c])
        lo = m - np.array([v["lo"] for v in c])
        hi = np.array([v["hi"] for v in c]) - m
        ax.errorbar(T * (1 + 0.04 * (j - 1.5)), m, yerr=[lo, hi], fmt=style, capsize=3, label=label)
    ax.semilogy(T, [r["limit_error"] for r in rows], "k--", lw=0.8, label="information limit")
    ax.set(
        xscale="log",
        xlabel="T",
        ylabel="relative L2 error (geo. mean, 95 % CI)",
        title=f"{s.seeds} seeds, σ = {NOISE:.0%} of max|u(·, T)|",
    )
    ax.legend(fontsize=7)
    _save(fig, out, name)


def forward_inverse(s: DMSettings, out: Path) -> Claim:
    """The "forward and inverse combined" / "negative time" claim (see the module docstring)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = _run(s)
    rows = res["rows"]
    keys = ("net_u0", "reg_u0", "net_forward", "reg_forward", "net_excess", "reg_excess")
    cis = {k: [_ci(r[k]) for r in rows] for k in keys}
    ratios = {
        name: [_ci(np.asarray(r[f"net_{name}"]) / np.asarray(r[f"reg_{name}"])) for r in rows]
        for name in ("u0", "forward", "excess")
    }
    v = verdict(
        [c["mean"] for c in ratios["u0"]],
        [c["mean"] for c in ratios["forward"]],
        [r["net_leak"] for r in rows],
    )
    excess = [c["mean"] for c in ratios["excess"]]
    v += f"; recoverable-part error ratio {min(excess):.2g}–{max(excess):.2g}"
    _figure(res, cis, out, "forward_inverse.png", s)

    def row_numbers(r, i):
        plain = {k: val for k, val in r.items() if not k.startswith("_")}
        return {
            **plain,
            **{f"{k}_ci": cis[k][i] for k in keys},
            **{f"ratio_{n}_ci": ratios[n][i] for n in ratios},
        }

    numbers = {
        "rule": RULE,
        "rows": [row_numbers(r, i) for i, r in enumerate(rows)],
        "gaps": list(GAPS),
        "noise_relative": NOISE,
        "data": N_DATA,
        "collocation": N_COLLOCATION,
        "network": res["network"],
        "seeds": s.seeds,
        "regularised": f"{K_MODES} sine modes, exact series, Tikhonov by the discrepancy principle "
        f"(tau = {TAU}), nmm.inverse Gauss–Newton",
        "ratio_u0": [c["mean"] for c in ratios["u0"]],
        "ratio_forward": [c["mean"] for c in ratios["forward"]],
        "ratio_excess": excess,
        "times_s": {**res["times"], "total_s": time.perf_counter() - t0},
    }

    def fmt(key):
        return ", ".join(f"{c['mean']:.2e}" for c in cis[key])

    summary = (
        f"T = {', '.join(f'{T:g}' for T in GAPS)}: u(·,0) error network {fmt('net_u0')} vs "
        f"regularised {fmt('reg_u0')} (information limit "
        f"{_join(r['limit_error'] for r in rows)}); recoverable-part error network "
        f"{fmt('net_excess')} vs {fmt('reg_excess')} (outside the true modes "
        f"{_join((np.mean(r['net_outside']) for r in rows), '.1e')} vs "
        f"{_join((np.mean(r['reg_outside']) for r in rows), '.1e')}); forward error (0, T] network "
        f"{fmt('net_forward')} vs {fmt('reg_forward')}; modes above σ "
        f"{[r['modes_above_noise'] for r in rows]}, recovered by the network (seed 0) "
        f"{[r['net_recovered'][0] for r in rows]}, by the inversion "
        f"{[r['reg_recovered'][0] for r in rows]}; data fit rms/σ "
        f"{_join(np.mean(r['data_fit']) for r in rows)}"
    )
    interval = "; ".join(
        f"T = {r['T']:g}: u0 ratio {fmt_ci(ratios['u0'][i])}, forward ratio "
        f"{fmt_ci(ratios['forward'][i])}, recoverable-part ratio {fmt_ci(ratios['excess'][i])}"
        for i, r in enumerate(rows)
    )
    return Claim(
        "forward-inverse",
        QUESTION,
        v,
        summary,
        numbers,
        "forward_inverse.png",
        interval=interval,
    )
