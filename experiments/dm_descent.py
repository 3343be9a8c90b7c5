"""Double descent and grokking: the two training phenomena the Deep Manifold seeds cite as evidence
of a hidden training bottleneck, each put to a measurement whose rule (``RULE_DOUBLE_DESCENT``,
``RULE_GROKKING``) was written before any result was seen.

``double_descent``: test error against model size through the interpolation threshold on n = 40
noisy samples (σ = 0.1) of poly-10 at uniformly random points of [-1, 1] (points, noise and
network draws from ``PRNGKey(seed)``), in a 2 × 2 of

* representation: the NMM's cover functions (a 1D ``nmm`` space of degree-1 covers, stable basis,
  swept over the number of cells) or the features of a one-hidden-layer ReLU network (the
  functions ``h_j`` of its hidden layer plus the output bias: ``nmm_nn.cover_solve``'s view of a
  network as cover functions);
* solver: the minimum-norm least-squares solve of the linear coefficients (``numpy.linalg.lstsq``
  on the design matrix; for the network: random features frozen at initialisation, output layer
  solved) or Adam training for ``s.steps`` steps at ``s.learning_rate`` on ½·mean squared residual
  (the NMM coefficients from zero; all network parameters from the same initialisation as the
  random features). Adam, not a ridge solve, because the seeds' claim is about training: the
  question is whether the optimiser networks are trained with shows the peak the min-norm solve
  shows. Adam runs the full ``s.steps`` (no early stop; nothing but the step count and rate
  limits how close it gets to interpolation), and every cell's train error is recorded beside
  its test error (the figure's bottom row, the summary's last size): a cell that never
  interpolates the noise cannot show the threshold's peak, and its "no double descent" then
  says that, not that the solver removes the peak.

The size axis is the number of cover functions, i.e. the coefficients of the last linear map (the
NMM's unknowns; the network's width + 1): that is where a model can first interpolate the n
samples — a 1D ReLU layer of w units is piecewise linear with w kinks whether or not it is
trained, so it interpolates about w + 2 points — so the interpolation threshold sits at ≈ n for
all four cells and the rule's window [n/2, 2n] is the same for each. The network's parameter count
(3w + 1) is reported beside; its widths obey ``3w + 1 <= s.budget``. The network is drawn from
``nmm_nn.MLP``'s initial distribution (weights U(±1/√fan_in)) except the hidden biases, drawn so
that every kink lies in [-1, 1] (b = -w·k, k ~ U(-1, 1)): with U(-1, 1) biases half the kinks fall
outside the data, where a ReLU is linear, and the threshold would move to ≈ 2n features. The
networks of one seed are nested (width w: the first w units of one draw), as in a random-features
sweep.

``grokking``: a tanh MLP 64×3 (the suite's ``mlp-tanh``) trained with AdamW (weight decay 0.1,
decoupled, on all weights and biases; ``s.learning_rate``) on 32 noise-free samples of poly-10 for
``s.steps`` steps; train and test error at every stage. The NMM fit of the same samples (an
ordinary least-squares solve on 8 degree-1 cells) has no training time: grokking is n/a for it,
its test error is reported.

Both experiments train all seeds at once (``vmap`` over the seed axis, ``lax.scan`` over steps).
"""

from __future__ import annotations

import math
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

import nmm  # noqa: E402  (float64)
from nmm.assembly import basis_at  # noqa: E402
from nmm_nn import MLP  # noqa: E402

from . import deep_manifold as dm  # noqa: E402  (Claim; imported as a module: no import cycle)
from . import problems as registry  # noqa: E402
from .batch_train import train_batch  # noqa: E402
from .stats import fmt_ci, geometric_mean, mean_ci, wilson  # noqa: E402

RULE_DOUBLE_DESCENT = (
    "for each cell (representation x solver), on the geometric mean over seeds of the test error "
    "at each size F (cover functions), the peak is the largest error with n/2 <= F <= 2n; the cell "
    "shows double descent if the peak is >= 2x the smallest error with F < n/2 AND >= 2x the error "
    "at the cell's largest F (> 2n); a cell without sizes on both sides of the window does not "
    "show it. Supported and placed in the solver if both min-norm cells show it and neither Adam "
    "cell does; placed in the representation if one representation shows it under both solvers "
    "and the other under neither; not supported if no cell shows it; inconclusive otherwise "
    "(naming the cells that show it)"
)
RULE_GROKKING = (
    "per seed, on the errors recorded every s.stage steps (step 0 included): t_fit = the first "
    "step at which the train error is within 2x of its final value, t_gen = the first step at "
    "which the test error is within 2x of its final value; the seed groks if the test error at "
    "t_fit is >= 10x its final value AND t_fit <= t_gen / 10 (test lags train by >= 10x). "
    "Supported if at least half of the seeds grok, not supported if none does, inconclusive "
    "otherwise"
)

N_SAMPLES = 40  # double descent: noisy samples
NOISE = 0.1  # their Gaussian noise σ (a third of poly-10's RMS value 0.31 on [-1, 1])
NMM_DEGREE = 1  # cover functions of degree 1: (cells + 1) · 2 unknowns
MAX_FACTOR = 20  # the sweep ends at 20 n cover functions (the MLP's also at s.budget parameters)
NEAR_N = (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0)  # sizes near the threshold, times n
GEO_STEPS = 10  # geometric sizes from n/8 to the largest
GROK_SAMPLES = 32
GROK_WIDTH, GROK_DEPTH = 64, 3
WEIGHT_DECAY = 0.1  # AdamW's decoupled decay: shrink time 1/(lr·wd) = 1e4 steps at lr 1e-3
TEST_POINTS = 1001
ROUND_OFF = 1e-16  # errors below it are shown as it (a train error can be exactly 0)
RELU_UNITS = MAX_FACTOR * N_SAMPLES  # units drawn per seed (the widest network)
CELLS = (("nmm", "min-norm"), ("nmm", "adam"), ("mlp", "min-norm"), ("mlp", "adam"))
LABEL = {
    "nmm": "NMM covers (p = 1)",
    "mlp": "ReLU MLP features",
    "min-norm": "min-norm solve",
    "adam": "Adam",
}


# ------------------------------------------------------------------ data


def _target():
    return registry.get("poly-10")


def grid() -> np.ndarray:
    """The dense test grid on [-1, 1] (end points included: the NMM space holds them)."""
    return np.linspace(-1.0, 1.0, TEST_POINTS)


def exact_values(x) -> np.ndarray:
    f = _target().exact
    return np.asarray(jax.vmap(lambda t: f(jnp.reshape(t, (1,))))(jnp.asarray(x, float)))


def samples(seed: int, n: int, noise: float):
    """``(x, y)``: n points uniform in [-1, 1] and the target there plus N(0, noise²), from
    ``PRNGKey(seed)`` (the network draws use another branch of the same key)."""
    kx, ky = jr.split(jr.fold_in(jr.PRNGKey(seed), 1))
    x = np.asarray(jr.uniform(kx, (n,), float, -1.0, 1.0))
    return x, exact_values(x) + noise * np.asarray(jr.normal(ky, (n,), float))


def rel_l2(pred, exact) -> np.ndarray:
    """Relative L2 (RMS) error over the last axis."""
    pred, exact = np.asarray(pred), np.asarray(exact)
    return np.sqrt(np.mean((pred - exact) ** 2, axis=-1) / np.mean(exact**2, axis=-1))


# ------------------------------------------------------------------ representations


def nmm_space(cells: int, degree: int = NMM_DEGREE) -> nmm.ManifoldSpace:
    return _target().space(int(cells), degree)


@eqx.filter_jit
def _located_basis(space, pts):
    # point location and basis in one program: compiled once per space (op by op, the vmapped
    # basis code compiles each primitive anew for every shape: seconds per call)
    elems = nmm.Field(space, jnp.zeros(space.n_dofs)).elements(pts)
    phi, _ = basis_at(space, jnp.maximum(elems, 0), pts[:, None, :])
    return elems, phi[:, 0]


def nmm_design(space: nmm.ManifoldSpace, x) -> np.ndarray:
    """``(m, n_dofs)``: every cover function of ``space`` at the points ``x (m,)`` (a Field's
    value is this matrix times its coefficients)."""
    pts = jnp.asarray(np.reshape(x, (-1, 1)), float)
    elems, phi = _located_basis(space, pts)
    if bool(jnp.any(elems < 0)):
        raise ValueError("nmm_design: points outside the space's domain")
    rows = np.repeat(np.arange(pts.shape[0]), space.elem_dofs.shape[1])
    a = np.zeros((pts.shape[0], space.n_dofs))
    # scalar space: local index j is unknown elem_dofs[e, j] (as in Field.in_elements)
    np.add.at(a, (rows, np.asarray(space.elem_dofs[elems]).ravel()), np.asarray(phi).ravel())
    return a


@jax.jit
def _relu_draw(key):
    k1, k2, k3, k4 = jr.split(key, 4)
    u = lambda k: jr.uniform(k, (RELU_UNITS,), float, -1.0, 1.0)  # noqa: E731
    return u(k1), u(k2), u(k3), u(k4)


def relu_net(width: int, seed: int) -> dict:
    """A 1-``width``-1 ReLU network from ``PRNGKey(seed)``, with ``nmm_nn.MLP``'s initial
    distribution (weights U(±1/√fan_in)) except the hidden biases, drawn as -w·k with the kink
    k ~ U(-1, 1) (every unit bends inside the data). The networks of one seed are nested: width w
    is the first w units of one draw of ``RELU_UNITS`` (adding features adds units, as in a
    random-features sweep; one draw, one program)."""
    if not 1 <= width <= RELU_UNITS:
        raise ValueError(f"width must be in 1..{RELU_UNITS}, got {width}")
    w1, kink, v, c = (np.asarray(a[:width]) for a in _relu_draw(jr.fold_in(jr.PRNGKey(seed), 2)))
    scale = 1.0 / math.sqrt(width)  # the output layer's fan-in
    return {"w1": w1, "b1": -w1 * kink, "w2": scale * v, "b2": scale * c[0]}


def relu_features(p: dict, x):
    """``(m, width)`` hidden-layer values at the points ``x (m,)`` (numpy or jax, as given)."""
    lib = jnp if isinstance(p["w1"], jax.Array) else np
    return lib.maximum(lib.asarray(x)[:, None] * p["w1"] + p["b1"], 0.0)


def relu_apply(p: dict, x):
    return relu_features(p, x) @ p["w2"] + p["b2"]


@jax.jit
def _tanh_draw(key):
    # the constructor jitted: op by op, its initialisers compile one small program each
    net = MLP(1, "scalar", GROK_WIDTH, GROK_DEPTH, "tanh", key=key)
    return {"w": tuple(net.weights), "b": tuple(net.biases)}


def tanh_net(seed: int) -> dict:
    """The grokking network: ``nmm_nn.MLP(1, 64, 3, "tanh")``'s arrays from ``PRNGKey(seed)``."""
    return _tanh_draw(jr.fold_in(jr.PRNGKey(seed), 2))


def tanh_apply(p: dict, x):
    h = jnp.asarray(x)[:, None]
    for w, b in zip(p["w"][:-1], p["b"][:-1], strict=True):
        h = jnp.tanh(h @ w.T + b)
    return (h @ p["w"][-1].T + p["b"][-1])[:, 0]


# ------------------------------------------------------------------ solvers


def min_norm(a, y) -> np.ndarray:
    """The minimum-norm least-squares coefficients (``lstsq``, cut-off at machine precision)."""
    return np.linalg.lstsq(np.asarray(a), np.asarray(y), rcond=None)[0]


def _sq_loss(apply):
    """One model's ½·mean squared residual, in ``batch_train``'s ``loss(p, data, shared)`` form."""
    return lambda p, d, _shared: 0.5 * jnp.mean((apply(p, d["x"]) - d["y"]) ** 2)


def _linear_apply(c, a):
    return a @ c


# ------------------------------------------------------------------ sizes


def size_targets(n: int, f_max: int) -> list[float]:
    """Target sizes: GEO_STEPS geometric steps from n/8 to ``f_max`` and the sizes near n
    (NEAR_N)."""
    geo = np.geomspace(n / 8, f_max, GEO_STEPS)
    return sorted({float(f) for f in [*geo, *(c * n for c in NEAR_N)] if f <= f_max})


def nmm_sizes(n: int) -> list[int]:
    """Cells of the NMM sweep: (cells + 1)(p + 1) unknowns nearest each target."""
    per = NMM_DEGREE + 1
    cells = {max(1, round(f / per) - 1) for f in size_targets(n, MAX_FACTOR * n)}
    return sorted(cells)


def mlp_widths(n: int, budget: int) -> list[int]:
    """Widths of the network sweep: width + 1 features nearest each target, 3w + 1 <= budget."""
    w_max = min(MAX_FACTOR * n - 1, (int(budget) - 1) // 3)
    if w_max < 1:
        raise ValueError(f"budget {budget} leaves no network width")
    return sorted({min(w_max, max(1, round(f) - 1)) for f in size_targets(n, w_max + 1)})


# ------------------------------------------------------------------ verdicts (pure)


def curve_shape(sizes, errors, n: int) -> dict:
    """The rule's statistics of one test-error curve (``errors`` at ``sizes``)."""
    f, e = np.asarray(sizes, float), np.asarray(errors, float)
    order = np.argsort(f)
    f, e = f[order], e[order]
    below, window = f < n / 2, (f >= n / 2) & (f <= 2 * n)
    out = {"peak": None, "peak_size": None, "min_below": None, "last": float(e[-1])}
    out.update({"last_size": float(f[-1]), "rise": None, "fall": None, "shows": False})
    if not (below.any() and window.any() and f[-1] > 2 * n):
        return out
    k = int(np.flatnonzero(window)[np.argmax(e[window])])
    out.update(peak=float(e[k]), peak_size=float(f[k]), min_below=float(e[below].min()))
    out.update(rise=out["peak"] / out["min_below"], fall=out["peak"] / out["last"])
    out["shows"] = bool(out["rise"] >= 2 and out["fall"] >= 2)
    return out


def verdict_double_descent(curves: dict, n: int) -> tuple[str, dict]:
    """``curves``: ``{(representation, solver): (sizes, geometric-mean errors)}`` with
    representations ``"nmm", "mlp"`` and solvers ``"min-norm", "adam"``. Returns the verdict and
    each cell's ``curve_shape``."""
    shapes = {cell: curve_shape(*curves[cell], n) for cell in CELLS}
    shows = {cell: shapes[cell]["shows"] for cell in CELLS}
    reps, solvers = ("nmm", "mlp"), ("min-norm", "adam")
    if not any(shows.values()):
        return "not supported (no cell shows double descent)", shapes
    if all(shows[(r, "min-norm")] and not shows[(r, "adam")] for r in reps):
        return "supported; it lives in the solver (min-norm solve)", shapes
    for r, other in (reps, reps[::-1]):
        if all(shows[(r, s)] for s in solvers) and not any(shows[(other, s)] for s in solvers):
            return f"supported; it lives in the representation ({LABEL[r]})", shapes
    named = ", ".join(f"{r} {s}" for (r, s), v in shows.items() if v)
    return f"inconclusive (double descent in: {named}; the rule places it nowhere)", shapes


def grok_times(steps, train, test) -> dict:
    """One seed's rule statistics: ``t_fit``, ``t_gen``, the test-error drop after t_fit and the
    lag t_gen / t_fit; ``groks`` per ``RULE_GROKKING``."""
    steps, train, test = (np.asarray(a, float) for a in (steps, train, test))
    i_fit = int(np.argmax(train <= 2 * train[-1]))  # the first index meeting it (the last does)
    t_fit, t_gen = float(steps[i_fit]), float(steps[np.argmax(test <= 2 * test[-1])])
    drop = float(test[i_fit] / test[-1])
    lag = t_gen / t_fit if t_fit > 0 else (math.inf if t_gen > 0 else 1.0)
    groks = bool(drop >= 10 and t_fit <= t_gen / 10)
    return {"t_fit": t_fit, "t_gen": t_gen, "drop": drop, "lag": lag, "groks": groks}


def verdict_grokking(steps, train_curves, test_curves) -> tuple[str, list[dict]]:
    """``train_curves``, ``test_curves``: ``(seeds, stages)`` errors at ``steps``. Returns the
    verdict and each seed's ``grok_times``."""
    per_seed = [grok_times(steps, tr, te) for tr, te in zip(train_curves, test_curves, strict=True)]
    k, n = sum(r["groks"] for r in per_seed), len(per_seed)
    if k == 0:
        return f"not supported (0 of {n} seeds grok)", per_seed
    if 2 * k >= n:
        return f"supported ({k} of {n} seeds grok)", per_seed
    return f"inconclusive ({k} of {n} seeds grok)", per_seed


# ------------------------------------------------------------------ double descent


def size_groups(sizes, ratio: float = 2.0) -> list[list[int]]:
    """Indices of runs of consecutive (ascending) sizes whose largest is at most ``ratio`` times
    the smallest: trained as one batch, padded to the largest (one program per group, the
    padding costing at most ``ratio`` times the work)."""
    out: list[list[int]] = []
    for i, f in enumerate(sizes):
        if out and f <= ratio * sizes[out[-1][0]]:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _pad(a, width: int):
    """Zeros appended along the last axis up to ``width``."""
    return jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, width - a.shape[-1])])


def _nmm_cells(s, data, x_test, y_test) -> dict:
    """Test and train errors ``(sizes, seeds)`` of both NMM cells, their sizes and design ranks."""
    seeds, m = len(data), len(x_test)
    xs = np.concatenate([x_test, *(x for x, _ in data)])
    y = np.stack([yy for _, yy in data])  # (seeds, n)
    out = {"sizes": [], "rank": [], "min-norm": ([], []), "adam": ([], [])}
    designs = []
    for cells in nmm_sizes(N_SAMPLES):
        space = nmm_space(cells)
        a_all = nmm_design(space, xs)  # one program per space: grid and every seed's samples
        a_test, a = a_all[:m], a_all[m:].reshape(seeds, -1, space.n_dofs)
        designs.append((a_test, a))
        out["sizes"].append(space.n_dofs)
        out["rank"].append(float(np.mean([np.linalg.matrix_rank(ai) for ai in a])))
        c = np.stack([min_norm(a[i], y[i]) for i in range(seeds)])
        out["min-norm"][0].append(rel_l2(c @ a_test.T, y_test))
        out["min-norm"][1].append(rel_l2(np.einsum("snf,sf->sn", a, c), y))
    for group in size_groups(out["sizes"]):
        # zero columns are exact padding: their coefficients get zero gradients, and Adam moves
        # a coefficient with zero gradient history by exactly 0
        f_max = out["sizes"][group[-1]]
        a = jnp.concatenate([_pad(jnp.asarray(designs[k][1]), f_max) for k in group])
        c, _, _ = train_batch(
            _sq_loss(_linear_apply),
            optax.adam(s.learning_rate),
            jnp.zeros((a.shape[0], f_max)),
            {"x": a, "y": jnp.tile(jnp.asarray(y), (len(group), 1))},
            steps=s.steps,
            stage=s.stage,
            what="double descent (NMM, Adam)",
        )
        for j, k in enumerate(group):
            ck = np.asarray(c[j * seeds : (j + 1) * seeds, : out["sizes"][k]])
            a_test, ak = designs[k]
            out["adam"][0].append(rel_l2(ck @ a_test.T, y_test))
            out["adam"][1].append(rel_l2(np.einsum("snf,sf->sn", ak, ck), y))
    return out


def _mlp_cells(s, data, x_test, y_test) -> dict:
    """As ``_nmm_cells`` for the ReLU network (sizes: width + 1; params: 3 width + 1)."""
    seeds = len(data)
    x, y = np.stack([xx for xx, _ in data]), np.stack([yy for _, yy in data])
    widths = mlp_widths(N_SAMPLES, s.budget)
    out = {"sizes": [w + 1 for w in widths], "params": [3 * w + 1 for w in widths]}
    out.update({"min-norm": ([], []), "adam": ([], [])})
    nets = [[relu_net(w, seed) for seed in range(seeds)] for w in widths]

    def with_bias(h):
        return np.c_[h, np.ones(len(h))]

    for row in nets:
        thetas = [min_norm(with_bias(relu_features(p, x[i])), y[i]) for i, p in enumerate(row)]
        pred = [with_bias(relu_features(p, x_test)) @ th for p, th in zip(row, thetas, strict=True)]
        fit = [
            with_bias(relu_features(p, x[i])) @ th
            for i, (p, th) in enumerate(zip(row, thetas, strict=True))
        ]
        out["min-norm"][0].append(rel_l2(np.stack(pred), y_test))
        out["min-norm"][1].append(rel_l2(np.stack(fit), y))
    for group in size_groups(widths):
        # units padded with zero weights, bias and output weight are exact padding: relu(0) = 0,
        # and every gradient of such a unit is 0, so Adam never moves it
        w_max = widths[group[-1]]
        pad = [(0, w_max - widths[k]) for k in group for _ in range(seeds)]
        flat = [p for k in group for p in nets[k]]
        params = {
            key: jnp.asarray(np.stack([np.pad(p[key], pw) for p, pw in zip(flat, pad, strict=True)]))
            for key in ("w1", "b1", "w2")
        }
        params["b2"] = jnp.asarray([p["b2"] for p in flat])
        xg, yg = np.tile(x, (len(group), 1)), np.tile(y, (len(group), 1))
        params, _, _ = train_batch(
            _sq_loss(relu_apply),
            optax.adam(s.learning_rate),
            params,
            {"x": jnp.asarray(xg), "y": jnp.asarray(yg)},
            steps=s.steps,
            stage=s.stage,
            what="double descent (MLP, Adam)",
        )
        trained = [{k: np.asarray(v[i]) for k, v in params.items()} for i in range(len(flat))]
        test = rel_l2(np.stack([relu_apply(p, x_test) for p in trained]), y_test)
        train = rel_l2(np.stack([relu_apply(p, xi) for p, xi in zip(trained, xg, strict=True)]), yg)
        for j in range(len(group)):
            out["adam"][0].append(test[j * seeds : (j + 1) * seeds])
            out["adam"][1].append(train[j * seeds : (j + 1) * seeds])
    return out


def _geo(a, axis=0) -> np.ndarray:
    """Geometric mean; errors floored at round-off, 1e-16 (an exact interpolant's train error
    can be 0)."""
    return geometric_mean(a, axis, ROUND_OFF)


def _band(errors) -> tuple[np.ndarray, np.ndarray]:
    """Per-size 95 % interval of the geometric mean over seeds: ``errors (sizes, seeds)``."""
    cis = [mean_ci(np.maximum(e, ROUND_OFF), log=True) for e in errors]
    return np.array([c["lo"] for c in cis]), np.array([c["hi"] for c in cis])


def _per_seed_ratios(sizes, errors, n: int) -> dict:
    """The rule's rise and fall ratios on each seed's own curve (for the intervals)."""
    shapes = [curve_shape(sizes, e, n) for e in np.asarray(errors).T]
    if any(sh["rise"] is None for sh in shapes):
        return {}
    return {"rise": [sh["rise"] for sh in shapes], "fall": [sh["fall"] for sh in shapes]}


def double_descent(s, out: Path) -> dm.Claim:
    n, seeds = N_SAMPLES, int(s.seeds)
    data = [samples(seed, n, NOISE) for seed in range(seeds)]
    x_test = grid()
    y_test = exact_values(x_test)
    reps = {"nmm": _nmm_cells(s, data, x_test, y_test), "mlp": _mlp_cells(s, data, x_test, y_test)}
    curves, raw = {}, {}
    for rep, solver in CELLS:
        test, train = (np.asarray(a) for a in reps[rep][solver])  # (sizes, seeds)
        raw[(rep, solver)] = (test, train)
        curves[(rep, solver)] = (reps[rep]["sizes"], _geo(test, axis=1))
    verdict, shapes = verdict_double_descent(curves, n)
    ratios = {cell: _per_seed_ratios(curves[cell][0], raw[cell][0], n) for cell in CELLS}

    # top: test errors (the rule's curves); bottom: train errors (does the cell interpolate?)
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), sharex="col", sharey="row")
    for col, rep in enumerate(("nmm", "mlp")):
        sizes = reps[rep]["sizes"]
        for solver, marker in (("min-norm", "o"), ("adam", "s")):
            test, train = raw[(rep, solver)]
            for ax, err in ((axes[0, col], test), (axes[1, col], train)):
                (line,) = ax.loglog(sizes, _geo(err, axis=1), marker + "-", ms=3, label=LABEL[solver])
                if seeds > 1:
                    ax.fill_between(sizes, *_band(err), color=line.get_color(), alpha=0.2)
        for ax in axes[:, col]:
            ax.axvline(n, color="k", ls="--", lw=0.8, label=f"n = {n} samples")
            ax.legend(fontsize=7)
        axes[0, col].set_title(LABEL[rep])
        axes[1, col].set_xlabel("cover functions (coefficients of the last linear map)")
    # the axes follow the means: with few seeds the t bands span dozens of decades
    for row in range(2):
        err = [_geo(raw[c][row], axis=1) for c in CELLS]
        lo, hi = min(e.min() for e in err), max(e.max() for e in err)
        axes[row, 0].set_ylim(lo / 30, hi * 30)
    axes[0, 0].set_ylabel("test: relative L2 error vs the noiseless target")
    axes[1, 0].set_ylabel("train: relative error at the noisy samples")
    fig.suptitle(
        f"poly-10, {n} samples, σ = {NOISE}, Adam {s.steps} steps, {seeds} seeds "
        "(geometric means, bands: 95 % CI)",
        fontsize=9,
    )
    dm._save(fig, out, "double_descent.png")

    def cell_text(cell) -> str:
        sh = shapes[cell]
        # a cell that never interpolates the noise cannot show the threshold's peak: say so
        fit = f"train error at F = {sh['last_size']:.0f} {_geo(raw[cell][1][-1]):.1e}"
        if sh["rise"] is None:
            return f"{cell[0]} {cell[1]}: no sizes on both sides of the window, {fit}"
        return (
            f"{cell[0]} {cell[1]}: peak {sh['peak']:.3g} at F = {sh['peak_size']:.0f}, "
            f"x{sh['rise']:.2g} over the best below n/2, x{sh['fall']:.2g} over F = "
            f"{sh['last_size']:.0f} ({'shows' if sh['shows'] else 'no'} DD), {fit}"
        )

    interval = "; ".join(
        f"{c[0]} {c[1]} peak/best-below {fmt_ci(mean_ci(r['rise'], log=True))}, "
        f"peak/largest {fmt_ci(mean_ci(r['fall'], log=True))}"
        for c, r in ratios.items()
        if r
    )
    numbers = {
        "n": n,
        "noise": NOISE,
        "nmm_degree": NMM_DEGREE,
        "steps": s.steps,
        "learning_rate": s.learning_rate,
        "seeds": seeds,
        "nmm_sizes": reps["nmm"]["sizes"],
        "nmm_rank": reps["nmm"]["rank"],
        "mlp_sizes": reps["mlp"]["sizes"],
        "mlp_params": reps["mlp"]["params"],
        "cells": {
            f"{r} {sv}": {
                "test": _geo(raw[(r, sv)][0], axis=1).tolist(),
                "train": _geo(raw[(r, sv)][1], axis=1).tolist(),
                "test_seeds": raw[(r, sv)][0].T.tolist(),
                **shapes[(r, sv)],
                **{f"{k}_seeds": v for k, v in ratios[(r, sv)].items()},
            }
            for r, sv in CELLS
        },
    }
    return dm.Claim(
        "double-descent",
        "Does the test error show double descent through the interpolation threshold on noisy "
        "samples, and does it live in the representation (NMM covers vs ReLU MLP features) or in "
        "the solver (min-norm solve vs Adam training)?",
        verdict,
        "; ".join(cell_text(c) for c in CELLS),
        numbers,
        "double_descent.png",
        interval=interval,
    )


# ------------------------------------------------------------------ grokking


def grokking(s, out: Path) -> dm.Claim:
    n, seeds = GROK_SAMPLES, int(s.seeds)
    data = [samples(seed, n, 0.0) for seed in range(seeds)]
    x = jnp.asarray(np.stack([xx for xx, _ in data]))
    y = jnp.asarray(np.stack([yy for _, yy in data]))
    x_test = jnp.asarray(grid())
    y_test = exact_values(x_test)
    nets = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[tanh_net(seed) for seed in range(seeds)])

    @jax.jit
    def errors(p):
        train = jax.vmap(tanh_apply)(p, x)
        test = jax.vmap(tanh_apply, (0, None))(p, x_test)
        return train, test

    def measure(p):
        train, test = errors(p)
        return rel_l2(train, y), rel_l2(test, y_test)

    _, _, records = train_batch(
        _sq_loss(tanh_apply),
        optax.adamw(s.learning_rate, weight_decay=WEIGHT_DECAY),
        nets,
        {"x": x, "y": y},
        steps=s.steps,
        stage=s.stage,
        measure=measure,
        what="grokking",
    )
    steps = np.array([st for st, _ in records])
    train = np.stack([m[0] for _, m in records], axis=1)  # (seeds, stages)
    test = np.stack([m[1] for _, m in records], axis=1)
    verdict, per_seed = verdict_grokking(steps, train, test)

    # the NMM beside: an ordinary least-squares fit of the same samples, no training time
    space = nmm_space(n // 4)
    a_test = nmm_design(space, np.asarray(x_test))
    nmm_err = [
        float(rel_l2(a_test @ min_norm(nmm_design(space, np.asarray(xx)), yy), y_test))
        for xx, yy in data
    ]

    fig, ax = plt.subplots(figsize=(7, 4.4))
    for i in range(seeds):
        ax.semilogy(steps, train[i], "-", color="C0", lw=0.8, label="train" if i == 0 else None)
        ax.semilogy(steps, test[i], "-", color="C1", lw=0.8, label="test" if i == 0 else None)
        ax.axvline(per_seed[i]["t_fit"], color="C0", ls=":", lw=0.6)
        ax.axvline(per_seed[i]["t_gen"], color="C1", ls=":", lw=0.6)
    ax.axhline(
        _geo(nmm_err), color="k", ls="--", lw=0.8, label=f"NMM fit ({space.n_dofs} unknowns), test"
    )
    ax.set(
        xlabel="step",
        ylabel="relative L2 error",
        title=f"tanh {GROK_WIDTH}x{GROK_DEPTH}, AdamW wd {WEIGHT_DECAY}, {n} samples of poly-10 "
        "(dotted: t_fit, t_gen)",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    dm._save(fig, out, "grokking.png")

    k = sum(r["groks"] for r in per_seed)
    lo, hi = wilson(k, seeds)
    drops = [r["drop"] for r in per_seed]
    lags = [r["lag"] for r in per_seed if math.isfinite(r["lag"])]
    interval = (
        f"grokking seeds {k}/{seeds} (Wilson 95 % [{lo:.2f}, {hi:.2f}]); test drop after t_fit "
        f"{fmt_ci(mean_ci(drops, log=True))}"
        + (f"; lag t_gen/t_fit {fmt_ci(mean_ci(lags, log=True))}" if len(lags) == seeds else "")
        + f"; final test error {fmt_ci(mean_ci(test[:, -1], log=True))}; "
        f"NMM test error {fmt_ci(mean_ci(nmm_err, log=True))}"
    )
    summary = (
        f"t_fit {[int(r['t_fit']) for r in per_seed]}, t_gen {[int(r['t_gen']) for r in per_seed]}, "
        f"test drop after t_fit {[round(d, 2) for d in drops]}; final train "
        f"{_geo(train[:, -1]):.2e}, test {_geo(test[:, -1]):.2e} (geo. mean); NMM least squares "
        f"({space.n_dofs} unknowns) test {_geo(nmm_err):.2e}, grokking n/a (no training time)"
    )
    return dm.Claim(
        "grokking",
        "Does a network generalise long after it has fitted its training samples (grokking, with "
        "weight decay), and what does the NMM fit of the same samples reach?",
        verdict,
        summary,
        {
            "samples": n,
            "weight_decay": WEIGHT_DECAY,
            "network": f"tanh {GROK_WIDTH}x{GROK_DEPTH}, AdamW",
            "learning_rate": s.learning_rate,
            "steps": steps.tolist(),
            "train": train.tolist(),
            "test": test.tolist(),
            "per_seed": per_seed,
            "groks_fraction": k / seeds,
            "groks_wilson": [lo, hi],
            "nmm_unknowns": space.n_dofs,
            "nmm_test": nmm_err,
        },
        "grokking.png",
        interval=interval,
    )
