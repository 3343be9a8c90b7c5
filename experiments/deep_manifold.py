"""The Deep Manifold experiments: each claim of Ma & Shi put to one measurement, a figure and a
verdict line whose rule is stated before the numbers are seen (in ``RULES``).

* ``capacity``: linear regions of ReLU MLPs at a fixed parameter budget as depth grows, at
  initialisation and after training, against the 1D bound Π(n_l + 1) and the tent map's 2^L;
* ``bottleneck``: loss curves of poly-J fits split into the rapid drop and the slow decline
  (``analysis.analyse``), their zig-zag and spectrum, for ``mlp-tanh`` and ``nmm-adam``;
* ``spectral``: per-frequency relative error over training on ``sines``;
* ``completion``: the cover-solve gap and the parameter-step residual over training, a gap-based
  completion criterion against plateau stopping;
* ``dof``: functional DOF vs parameter count vs the NMM unknowns that reach the same error;
* ``nonlinearity``: "networks struggle with high-order nonlinearity": error and training-curve
  statistics of one fixed network and budget on -Δu + u^m = f (``nonlinear-m``) against the
  order m, the NMM (Newton) beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import nmm  # noqa: E402
from nmm_nn import MLP, Task, cover_solve, covers, deep_bound_1d, train  # noqa: E402
from nmm_nn.mlp import trainable  # noqa: E402

from . import problems as registry  # noqa: E402
from .analysis import analyse  # noqa: E402
from .stats import fmt_ci, mean_ci  # noqa: E402

EXPERIMENTS = (
    "capacity",
    "bottleneck",
    "spectral",
    "completion",
    "dof",
    "boundary",
    "double-descent",
    "grokking",
    "forward-inverse",
    "nonlinearity",
)
# experiments in modules of their own (they import this one: loaded when first needed)
_MODULES = {
    "bottleneck": ("dm_bottleneck", "bottleneck", "RULE"),
    "boundary": ("dm_boundary", "boundary", "RULE"),
    "double-descent": ("dm_descent", "double_descent", "RULE_DOUBLE_DESCENT"),
    "grokking": ("dm_descent", "grokking", "RULE_GROKKING"),
    "forward-inverse": ("dm_inverse", "forward_inverse", "RULE"),
}

RULES = {
    "capacity": "supported if the realised region count at a fixed parameter budget grows by at least "
    "a factor 2 per added layer on average (log2-count slope >= 1 over depth); not supported if it "
    "does not grow at all (slope <= 0.1); inconclusive in between",
    "spectral": "spectral bias supported for a model if the steps at which each frequency's relative "
    "error first falls below 0.5 rise with the frequency (Spearman rank correlation with average "
    "ranks >= 0.8, never learnt = last; the mean over the seeds where it is defined); inconclusive "
    "for a model that learns fewer than two frequencies or all at the same stage in half of the "
    "seeds or more",
    "completion": "the trained network is at a fixed point if the mean parameter-step residual of the "
    "last stage is below 1e-6; its output layer is complete if the cover-solve gap is below 1 % of "
    "the loss (both as geometric means over seeds)",
    "dof": "'near-infinite degrees of freedom' not supported if the functional DOF is below 10 % "
    "of the parameter count for every network",
    "nonlinearity": "supported if the network's relative L2 error (geometric mean over seeds) at "
    "the highest order m is at least 3 times that at the lowest while the NMM's error and Newton "
    "steps change by less than a factor 1.5 (the difficulty is the network's, not the problem's); "
    "not supported if the network's error grows by less than a factor 1.5; inconclusive otherwise",
}


@dataclass
class DMSettings:
    """Sizes of the Deep Manifold experiments (quick suite defaults)."""

    # the nonlinearity experiment is opt-in (the nonlinear suite): it trains 2D networks
    experiments: list = field(default_factory=lambda: list(EXPERIMENTS[:-1]))
    steps: int = 3000
    stage: int = 250
    learning_rate: float = 1e-3
    poly_degrees: list = field(default_factory=lambda: [4, 10, 16])
    budget: int = 500
    depths: list = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    seeds: int = 2
    orders: list = field(default_factory=lambda: [3, 5, 7, 9])  # m of ``nonlinearity``
    # an embedded suite whose [deep_manifold] settings are run too, for the stability line
    compare: str = ""


# the registry problems and suite methods each experiment is about: ``--problem``/``--method``
# run the experiments that use one of those given (experiments on problems of their own have no
# registry problem: select them by name with ``--experiment``)
_POLY = tuple(f"poly-{j}" for j in registry.POLY_DEGREES)
USES = {
    "capacity": (("poly-10",), ("mlp-relu",)),
    "bottleneck": (_POLY, ("nmm", "nmm-adam", "mlp-tanh", "mlp-cover-solved")),
    "spectral": (("sines",), ("nmm", "nmm-adam", "mlp-tanh", "mlp-relu", "mlp-siren")),
    "completion": (("poly-10",), ("mlp-tanh", "mlp-cover-solved")),
    "dof": (None, ("nmm", "mlp-relu", "mlp-tanh", "mlp-siren", "mlp-fourier", "mlp-cover-solved")),
    "nonlinearity": (tuple(f"nonlinear-{m}" for m in registry.NONLINEAR_ORDERS), ("nmm", "mlp-tanh")),
    # problems of their own (no registry problem), networks and NMM fits of their own
    "boundary": ((), ("nmm", "mlp-tanh")),
    "double-descent": (("poly-10",), ("nmm", "nmm-adam", "mlp-relu")),
    "grokking": (("poly-10",), ("nmm", "mlp-tanh")),
    "forward-inverse": ((), ("nmm", "mlp-tanh")),
}


def selected(experiments, problems=None, methods=None, names=None) -> list[str]:
    """The experiments of ``experiments`` a filtered run keeps: those named in ``names``, and
    those using one of ``problems`` and one of ``methods`` (``None``: no filter of that kind;
    ``dof`` uses every problem of the suite)."""
    keep = []
    for e in experiments:
        if names is not None and e not in names:
            continue
        probs, meths = USES.get(e, ((), ()))
        if problems is not None and probs is not None and not set(probs) & set(problems):
            continue
        if methods is not None and not set(meths) & set(methods):
            continue
        keep.append(e)
    return keep


def category(verdict: str) -> str:
    """The leading category of a verdict: "not supported", "inconclusive" or "supported"."""
    for c in ("not supported", "inconclusive", "supported"):
        if verdict.startswith(c):
            return c
    return verdict


def stability(verdict: str, quick: str) -> str:
    """The stability line: does the quick suite's verdict agree with this one?"""
    if verdict == quick:
        return "agrees with the quick suite"
    if category(verdict) == category(quick):
        return f"agrees in direction with the quick suite, which says: {quick}"
    return f"differs: the quick suite says: {quick}"


@dataclass
class Claim:
    name: str
    question: str
    verdict: str  # "supported" | "not supported" | "inconclusive" (+ qualifiers)
    summary: str  # the numbers behind the verdict, one line
    numbers: dict
    figure: str
    # the key effect sizes over seeds with their 95 % intervals (``stats.fmt_ci``)
    interval: str = ""
    # a replaced rule's verdict, kept beside the new one: {"rule": ..., "verdict": ...}
    previous: dict = field(default_factory=dict)
    # whether the quick suite's verdict agrees with this one (filled by the runner)
    stability: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ helpers


def _width_for_budget(budget: int, depth: int) -> int:
    """Width of a 1-in, 1-out MLP of ``depth`` hidden layers with about ``budget`` parameters."""
    best = 1
    for w in range(1, 2000):
        params = 2 * w + (depth - 1) * (w * w + w) + w + 1
        if params > budget:
            break
        best = w
    return best


def _trace(model, task, s: DMSettings, lr: float, measure):
    """One training run of ``s.steps`` steps; ``measure(model)`` at the end of every stage.
    Returns the stage ends, the measurements and the history."""
    steps, values = [], []

    def record(step, trained, _history):
        steps.append(step)
        values.append(measure(trained))

    _, hist = train(
        model, task, steps=s.steps, learning_rate=lr, chunk=s.stage, progress=False, callback=record
    )
    return steps, values, hist


def _save(fig, out: Path, name: str) -> None:
    """Every Deep Manifold figure: grid, tight layout, 110 dpi, into ``out`` (made if missing)."""
    for ax in fig.axes:
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    Path(out).mkdir(parents=True, exist_ok=True)
    fig.savefig(Path(out) / name, dpi=110)
    plt.close(fig)


def _params(net):
    return eqx.filter(net, trainable(net))


def _spearman(a, b) -> float:
    """Rank correlation with average ranks for ties; NaN when either side has no spread."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(scipy.stats.spearmanr(a, b).statistic)


# ------------------------------------------------------------------ experiments


CAPACITY_SAMPLES = 129


def capacity(s: DMSettings, out: Path) -> Claim:
    dom = nmm.Domain.interval(-1.0, 1.0)
    prob = registry.get("poly-10")
    # trained on 129 equispaced samples of the degree-10 target (more than enough to pin it down):
    # the regions a network makes do not need the suite's 513-point quadrature, and at budgets of
    # 1e4 parameters the training is 4x cheaper
    x = np.linspace(-1.0, 1.0, CAPACITY_SAMPLES)[:, None]
    task = Task.fit((x, np.asarray(jax.vmap(prob.exact)(jnp.asarray(x)))))
    rows = []
    for depth in s.depths:
        width = _width_for_budget(s.budget, depth)
        init, trained = [], []
        for seed in range(s.seeds):
            net = MLP(1, "scalar", width, depth, "relu", key=jr.PRNGKey(seed))
            init.append(covers(net, dom).n_regions)
            net, _ = train(
                net, task, steps=s.steps, learning_rate=s.learning_rate, chunk=s.stage, progress=False
            )
            trained.append(covers(net, dom).n_regions)
        rows.append(
            {
                "depth": depth,
                "width": width,
                "params": net.n_params,
                "init": float(np.mean(init)),
                "trained": float(np.mean(trained)),
                "init_seeds": init,
                "trained_seeds": trained,
                "bound": deep_bound_1d([width] * depth),
            }
        )
    d = np.array([r["depth"] for r in rows], float)
    slope_init = float(np.polyfit(d, np.log2([r["init"] for r in rows]), 1)[0])
    slope_trained = float(np.polyfit(d, np.log2([r["trained"] for r in rows]), 1)[0])
    slope = max(slope_init, slope_trained)
    verdict = "supported" if slope >= 1 else ("not supported" if slope <= 0.1 else "inconclusive")

    def per_seed(key):  # the log2 slope of each seed's counts over depth
        counts = np.array([r[key] for r in rows], float)  # (depths, seeds)
        return [float(np.polyfit(d, np.log2(counts[:, k]), 1)[0]) for k in range(counts.shape[1])]

    interval = (
        f"log2 slope per layer at init {fmt_ci(mean_ci(per_seed('init_seeds')), '.2f')}, "
        f"trained {fmt_ci(mean_ci(per_seed('trained_seeds')), '.2f')}"
    )
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.semilogy(d, [r["bound"] for r in rows], "k--", label="bound Π(n_l + 1)")
    ax.semilogy(d, 2.0**d, "k:", label="tent map 2^L (width 2)")
    ax.semilogy(d, [r["init"] for r in rows], "o-", label="at initialisation")
    ax.semilogy(
        d,
        [r["trained"] for r in rows],
        "s-",
        label=f"after {s.steps} Adam steps (poly-10, {CAPACITY_SAMPLES} samples)",
    )
    ax.set(
        xlabel="depth (hidden layers)",
        ylabel="linear regions on [-1, 1]",
        title=f"ReLU MLPs with ~{s.budget} parameters",
    )
    ax.legend(fontsize=8)
    _save(fig, out, "capacity.png")
    summary = (
        f"regions at init {[round(r['init']) for r in rows]}, "
        f"trained {[round(r['trained']) for r in rows]} "
        f"for depths {s.depths} (widths {[r['width'] for r in rows]}); log2 slope {slope_init:.2f} "
        f"(init), {slope_trained:.2f} (trained) per layer; bounds {[r['bound'] for r in rows]}; "
        "the maximum (tent map, bound) does grow as 2^L"
    )
    return Claim(
        "capacity",
        "Does the capacity (linear regions) of a ReLU MLP grow exponentially with "
        "depth at a fixed parameter budget?",
        f"{verdict} (realised regions)",
        summary,
        {"rows": rows, "slope_init": slope_init, "slope_trained": slope_trained},
        "capacity.png",
        interval=interval,
    )


def spectral(s: DMSettings, out: Path) -> Claim:
    freqs = np.asarray(registry.SINE_FREQUENCIES)
    x = jnp.asarray((np.arange(1024) / 1024)[:, None])
    names = ("mlp-tanh", "mlp-relu", "mlp-siren", "nmm-adam")
    traces = {n: [] for n in names}  # per model, per seed: (steps, errors, learnt, rho)
    for seed in range(s.seeds):  # a seed draws the phases of the target and the initialisation
        prob = registry.get("sines", seed)
        space, task = prob.shared()
        target = np.fft.rfft(np.asarray(jax.vmap(prob.exact)(x)))[freqs]

        def freq_error(model, target=target):
            if isinstance(model, nmm.Field):
                vals = np.asarray(model(x))
            else:
                vals = np.asarray(jax.vmap(model)(x))
            return np.abs(np.fft.rfft(vals)[freqs] - target) / np.abs(target)

        key = jr.PRNGKey(seed)
        models = {
            "mlp-tanh": MLP(1, "scalar", 64, 3, "tanh", key=key),
            "mlp-relu": MLP(1, "scalar", 64, 3, "relu", key=key),
            "mlp-siren": MLP(1, "scalar", 64, 3, "sin", key=key),
            "nmm-adam": nmm.Field(space, jnp.zeros(space.n_dofs), jnp.zeros(3)),
        }
        for name, model in models.items():
            lr = 1e-4 if name == "mlp-siren" else s.learning_rate
            steps, errs, _ = _trace(model, task, s, lr, freq_error)
            errs = np.array(errs)  # (stages, frequencies)
            learnt = [
                next((st for st, e in zip(steps, errs[:, k], strict=True) if e < 0.5), np.inf)
                for k in range(len(freqs))
            ]
            rho = _spearman(freqs, np.where(np.isfinite(learnt), learnt, 1e12))
            traces[name].append((steps, errs, learnt, rho))
        if seed == 0:
            nmm_err = freq_error(prob.solve(prob.space(64, 4)))

    def clear(t):  # the rule's "learns at least two frequencies, not all at one stage"
        return np.isfinite(t[3]) and int(np.sum(np.isfinite(t[2]))) >= 2

    rhos = {n: [t[3] for t in traces[n] if clear(t)] for n in names}
    biased = [n for n in names if 2 * len(rhos[n]) > s.seeds and np.mean(rhos[n]) >= 0.8]
    unclear = [n for n in names if 2 * len(rhos[n]) <= s.seeds]
    others = [n for n in names if n not in biased and n not in unclear]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.8), sharey=True)
    for ax, name in zip(axes, names, strict=True):
        steps, errs, _, rho = traces[name][0]
        for k, f in enumerate(freqs):
            ax.semilogy(steps, errs[:, k], label=f"k = {f}")
        ax.set(title=f"{name} (seed 0, ρ = {rho:.2f})", xlabel="step")
    axes[0].set_ylabel("relative error at frequency k")
    axes[-1].legend(fontsize=7)
    _save(fig, out, "spectral.png")
    parts = [
        f"supported for {', '.join(biased)}" if biased else "",
        f"not supported for {', '.join(others)}" if others else "",
        f"inconclusive for {', '.join(unclear)}" if unclear else "",
    ]
    verdict = "; ".join(p for p in parts if p)
    verdicts = {n: float(np.mean(rhos[n])) if rhos[n] else float("nan") for n in names}

    def learnt0(n):
        return [None if not np.isfinite(v) else int(v) for v in traces[n][0][2]]

    summary = "; ".join(
        f"{n}: first step with error < 0.5 per k (seed 0) {learnt0(n)}, mean ρ {verdicts[n]:.2f} "
        f"over {len(rhos[n])} of {s.seeds} seeds with a defined ρ"
        for n in names
    )
    summary += f"; nmm (64 cells, p = 4) per-k error {np.array2string(nmm_err, precision=1)}"
    interval = "; ".join(f"{n} ρ {fmt_ci(mean_ci(rhos[n]), '.2f')}" for n in names if rhos[n])
    return Claim(
        "spectral",
        "Do the models learn low frequencies first (spectral bias)?",
        verdict,
        summary,
        {
            "frequencies": freqs.tolist(),
            "rho": verdicts,
            "nmm_error": nmm_err.tolist(),
            "rho_seeds": rhos,
            "learnt_step": {
                n: [[None if not np.isfinite(v) else int(v) for v in t[2]] for t in traces[n]]
                for n in names
            },
        },
        "spectral.png",
        interval=interval,
    )


def _completion_run(s: DMSettings, seed: int):
    """One seed's training of the 64 × 3 tanh network on poly-10 (target and init from the seed):
    the per-stage rows, the step the gap criterion fires and the plateau stop."""
    prob = registry.get("poly-10", seed)
    _, task = prob.shared()
    net0 = MLP(1, "scalar", 64, 3, "tanh", key=jr.PRNGKey(seed))
    steps, stages, hist = _trace(
        net0,
        task,
        s,
        s.learning_rate,
        lambda net: (ravel_pytree(_params(net))[0], cover_solve(net, task)),
    )
    rows, prev = [], ravel_pytree(_params(net0))[0]
    for step, (theta, res) in zip(steps, stages, strict=True):
        rows.append(
            {
                "step": step,
                "loss": res.loss_trained,
                "gap": res.gap,
                "rel_gap": res.gap / max(abs(res.loss_trained), 1e-300),
                "step_residual": float(jnp.linalg.norm(theta - prev) / jnp.linalg.norm(theta) / s.stage),
                "L2": res.errors_trained["L2"],
                "L2_solved": res.errors["L2"],
            }
        )
        prev = theta
    gap_stop = next((r for r in rows if r["rel_gap"] < 0.01), None)
    loss = hist.loss
    window = 2 * s.stage
    plateau = next(
        (
            r
            for r in rows
            if r["step"] >= window and loss[r["step"] - 1] > 0.99 * loss[r["step"] - window]
        ),
        None,
    )
    return rows, gap_stop, plateau


def completion(s: DMSettings, out: Path) -> Claim:
    runs = [_completion_run(s, seed) for seed in range(s.seeds)]
    rows, gap_stop, plateau = runs[0]
    last = rows[-1]
    # the rule on the geometric means over seeds of the last stage
    residual = mean_ci([r[-1]["step_residual"] for r, _, _ in runs], log=True)
    rel_gap = mean_ci([max(r[-1]["rel_gap"], 1e-300) for r, _, _ in runs], log=True)
    fixed = residual["mean"] < 1e-6
    complete = rel_gap["mean"] < 0.01
    verdict = (
        f"{'at' if fixed else 'not at'} a fixed point; output layer "
        f"{'complete' if complete else 'not complete'}"
    )
    interval = (
        f"last-stage step residual {fmt_ci(residual, '.2e')}, gap/loss {fmt_ci(rel_gap, '.2e')} "
        f"(geometric means); gap criterion fires in {sum(g is not None for _, g, _ in runs)} and "
        f"plateau stopping in {sum(p is not None for _, _, p in runs)} of {len(runs)} seeds"
    )
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    st = [r["step"] for r in rows]
    ax.semilogy(st, [r["rel_gap"] for r in rows], "o-", label="cover-solve gap / loss")
    ax.semilogy(st, [r["step_residual"] for r in rows], "s-", label="mean ‖Δθ‖/‖θ‖ per step")
    ax.semilogy(st, [r["L2"] for r in rows], "^-", label="L2 error (trained)")
    ax.semilogy(st, [r["L2_solved"] for r in rows], "v-", label="L2 error (output layer solved)")
    if plateau:
        ax.axvline(plateau["step"], color="k", ls=":", label="plateau stop (<1 % in 2 stages)")
    ax.set(xlabel="step", title="mlp-tanh 64x3 on poly-10: training completion")
    ax.legend(fontsize=7)
    _save(fig, out, "completion.png")
    summary = (
        f"seed 0 at step {last['step']}: gap/loss {last['rel_gap']:.2e}, step residual "
        f"{last['step_residual']:.2e}, L2 {last['L2']:.2e} "
        f"(solved output layer {last['L2_solved']:.2e}); "
        f"gap criterion (gap < 1 % of loss) fires at "
        f"{gap_stop['step'] if gap_stop else 'never'}; plateau stopping at "
        f"{plateau['step'] if plateau else 'never'}"
        + (f" with L2 {plateau['L2']:.2e}" if plateau else "")
    )
    return Claim(
        "completion",
        "When is training complete, and does it reach a fixed point? (proposed "
        "criterion: the cover-solve gap below 1 % of the loss)",
        verdict,
        summary,
        {"rows": rows},
        "completion.png",
        interval=interval,
    )


def dof(s: DMSettings, out: Path, results) -> Claim:
    rows = []
    for r in results:
        if r.method.startswith("mlp-"):  # every seed's networks
            nmm_rows = [
                q for q in results if q.problem == r.problem and q.method == "nmm" and q.L2 <= r.L2
            ]
            rows.append(
                {
                    "problem": r.problem,
                    "method": r.method,
                    "size": r.size,
                    "params": r.unknowns,
                    "functional_dof": r.functional_dof,
                    "L2": r.L2,
                    "nmm_unknowns": min((q.unknowns for q in nmm_rows), default=None),
                }
            )
    if not rows:
        return Claim(
            "dof",
            "How many degrees of freedom does a network use?",
            "inconclusive",
            "no MLP cases in this suite",
            {},
            "",
        )
    ratio = [r["functional_dof"] / r["params"] for r in rows]
    verdict = "not supported" if max(ratio) < 0.1 else "inconclusive"
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, marker in (("params", "o"), ("functional_dof", "s"), ("nmm_unknowns", "^")):
        ax.loglog([r["L2"] for r in rows if r[key]], [r[key] for r in rows if r[key]], marker, label=key)
    ax.set(
        xlabel="relative L2 error of the network",
        ylabel="count",
        title="parameters, functional DOF, NMM unknowns at equal error",
    )
    ax.legend(fontsize=8)
    _save(fig, out, "dof.png")
    summary = (
        f"functional DOF / parameters {min(ratio):.3f}–{max(ratio):.3f} over {len(rows)} networks; "
        f"NMM reaches each network's error with "
        f"{sorted({r['nmm_unknowns'] for r in rows if r['nmm_unknowns']})} unknowns "
        f"(none in the sweep for {sum(r['nmm_unknowns'] is None for r in rows)} networks)"
    )
    return Claim(
        "dof",
        "Do networks use near-infinite degrees of freedom?",
        verdict,
        summary,
        {"rows": rows},
        "dof.png",
        interval="functional DOF / parameters over the networks "
        f"{fmt_ci(mean_ci(ratio, log=True), '.3f')} (geometric mean)",
    )


def nonlinearity(s: DMSettings, out: Path) -> Claim:
    rows, curves = [], {}
    for m in s.orders:
        prob = registry.get(f"nonlinear-{m}")
        space, task = prob.shared()
        u = prob.solve(prob.space(16, 2))
        nmm_err, newton = task.errors(u)["L2"], int(u.info.newton_steps)
        # the minimum the network's energy is measured from: the NMM's on the same functional
        # (the network may go a little below it: it is not in the space), less a margin
        e_ref = float(task.loss(prob.solve(space)))
        errs, stats = [], []
        for seed in range(s.seeds):
            net = MLP(2, "scalar", 64, 3, "tanh", key=jr.PRNGKey(seed))
            trained, hist = train(
                net, task, steps=s.steps, learning_rate=s.learning_rate, chunk=s.stage, progress=False
            )
            errs.append(task.errors(trained)["L2"])
            shifted = hist.loss - min(e_ref, float(np.min(hist.loss))) + 1e-12 * max(abs(e_ref), 1)
            a = analyse(shifted)
            stats.append(a)
            curves[(m, seed)] = shifted
        rows.append(
            {
                "m": m,
                "mlp_L2": float(np.exp(np.mean(np.log(errs)))),
                "mlp_L2_seeds": [float(e) for e in errs],
                "sign_changes": float(np.mean([a.sign_changes for a in stats])),
                "rel_std": float(np.mean([a.rel_std for a in stats])),
                "slow_decades": float(np.mean([a.slow_decades for a in stats])),
                "nmm_L2": float(nmm_err),
                "nmm_newton_steps": newton,
            }
        )
    lo, hi = rows[0], rows[-1]
    growth = hi["mlp_L2"] / lo["mlp_L2"]
    nmm_growth = hi["nmm_L2"] / lo["nmm_L2"]
    steps_growth = hi["nmm_newton_steps"] / max(lo["nmm_newton_steps"], 1)
    nmm_flat = max(nmm_growth, 1 / nmm_growth) < 1.5 and max(steps_growth, 1 / steps_growth) < 1.5
    if growth >= 3 and nmm_flat:
        verdict = "supported"
    elif growth < 1.5:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ms = [r["m"] for r in rows]
    axes[0].semilogy(ms, [r["mlp_L2"] for r in rows], "o-", label="mlp-tanh 64x3 (geo. mean)")
    axes[0].semilogy(ms, [r["nmm_L2"] for r in rows], "s-", label="NMM p = 2, 16 cells (Newton)")
    axes[0].set(xlabel="order m of the nonlinearity u^m", ylabel="relative L2 error")
    axes[0].legend(fontsize=7)
    for (m, seed), loss in curves.items():
        if seed == 0:
            axes[1].semilogy(loss, lw=0.7, label=f"m = {m}")
    axes[1].set(xlabel="step", ylabel="energy − reference", title="training curves (seed 0)")
    axes[1].legend(fontsize=7)
    _save(fig, out, "nonlinearity.png")
    summary = (
        f"network L2 at m = {lo['m']} … {hi['m']}: "
        + ", ".join(f"{r['mlp_L2']:.2e}" for r in rows)
        + f" (x{growth:.2f}); NMM L2 "
        + ", ".join(f"{r['nmm_L2']:.2e}" for r in rows)
        + ", Newton steps "
        + ", ".join(str(r["nmm_newton_steps"]) for r in rows)
        + "; slow-phase sign changes "
        + ", ".join(f"{r['sign_changes']:.2f}" for r in rows)
    )
    return Claim(
        "nonlinearity",
        "Do networks struggle with high-order nonlinearity (−Δu + u^m = f as m grows), where the "
        "NMM does not?",
        verdict,
        summary,
        {"rows": rows, "steps": s.steps, "seeds": s.seeds, "network": "tanh 64x3, Adam"},
        "nonlinearity.png",
    )


def _module(name: str):
    import importlib

    module, function, rule = _MODULES[name]
    mod = importlib.import_module(f".{module}", __package__)
    return getattr(mod, function), getattr(mod, rule)


def rule(name: str) -> str:
    """The pre-registered rule of an experiment."""
    return _module(name)[1] if name in _MODULES else RULES[name]


def run_experiment(name: str, s: DMSettings, out: Path, results) -> Claim:
    """Run one experiment; ``results`` (the suite's cases) feed ``dof``."""
    if name == "dof":
        return dof(s, Path(out), results)
    if name in _MODULES:
        return _module(name)[0](s, Path(out))
    experiment = {
        "capacity": capacity,
        "spectral": spectral,
        "completion": completion,
        "nonlinearity": nonlinearity,
    }
    return experiment[name](s, Path(out))
