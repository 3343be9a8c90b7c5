"""Double descent and grokking (experiments.dm_descent): the pre-registered rules on hand-made
curves (one case per outcome), the representations against the library's own evaluation, exact
padding of the batched training, the min-norm peak near n, and both experiments end to end at
tiny settings."""

import json
import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import nmm
from experiments import dm_descent as dd
from experiments.deep_manifold import DMSettings
from nmm_nn import MLP

N = 40
SIZES = [5, 10, 20, 30, 40, 50, 60, 80, 200, 800]
PEAKED = [0.1, 0.08, 0.1, 0.5, 2.0, 0.8, 0.4, 0.2, 0.1, 0.09]  # peak at n, second descent
FLAT = [0.1, 0.08, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07]
NO_SECOND = [0.1, 0.08, 0.1, 0.5, 2.0, 1.8, 1.5, 1.4, 1.2, 1.1]  # peak, but no descent after


def _curves(**shape):
    """Every cell FLAT unless named (``nmm_min_norm=PEAKED``, ...)."""
    return {
        (rep, solver): (SIZES, shape.get(f"{rep}_{solver.replace('-', '_')}", FLAT))
        for rep, solver in dd.CELLS
    }


# ------------------------------------------------------------------ the rules


def test_curve_shape_statistics():
    sh = dd.curve_shape(SIZES, PEAKED, N)
    assert sh["shows"] and sh["peak_size"] == 40 and sh["min_below"] == 0.08
    assert math.isclose(sh["rise"], 25) and math.isclose(sh["fall"], 2.0 / 0.09)
    assert not dd.curve_shape(SIZES, NO_SECOND, N)["shows"]  # falls by < 2x after the peak
    assert not dd.curve_shape(SIZES, FLAT, N)["shows"]
    # no size beyond 2n: the peak is not interior, so the cell cannot show it
    short = dd.curve_shape(SIZES[:7], PEAKED[:7], N)
    assert not short["shows"] and short["rise"] is None


def test_double_descent_verdicts():
    solver = _curves(nmm_min_norm=PEAKED, mlp_min_norm=PEAKED)
    assert (
        dd.verdict_double_descent(solver, N)[0] == "supported; it lives in the solver (min-norm solve)"
    )
    rep = _curves(mlp_min_norm=PEAKED, mlp_adam=PEAKED)
    assert dd.verdict_double_descent(rep, N)[0] == (
        "supported; it lives in the representation (ReLU MLP features)"
    )
    rep = _curves(nmm_min_norm=PEAKED, nmm_adam=PEAKED)
    assert "representation (NMM covers" in dd.verdict_double_descent(rep, N)[0]
    none = _curves(nmm_min_norm=NO_SECOND)
    assert dd.verdict_double_descent(none, N)[0].startswith("not supported")
    one = _curves(nmm_min_norm=PEAKED)
    verdict, shapes = dd.verdict_double_descent(one, N)
    assert verdict.startswith("inconclusive") and "nmm min-norm" in verdict
    assert shapes[("nmm", "min-norm")]["shows"] and not shapes[("mlp", "adam")]["shows"]
    every = _curves(nmm_min_norm=PEAKED, nmm_adam=PEAKED, mlp_min_norm=PEAKED, mlp_adam=PEAKED)
    assert dd.verdict_double_descent(every, N)[0].startswith("inconclusive")


STEPS = np.arange(0, 10001, 500)


def _drop(at, start, end):
    return np.where(STEPS < at, start, end)


def test_grok_times_and_verdicts():
    train = _drop(500, 1.0, 1e-4)  # fits by step 500
    late = _drop(8000, 0.5, 1e-3)  # generalises at step 8000
    early = _drop(500, 0.5, 1e-2)
    g = dd.grok_times(STEPS, train, late)
    assert g == {"t_fit": 500, "t_gen": 8000, "drop": 500.0, "lag": 16.0, "groks": True}
    assert not dd.grok_times(STEPS, train, early)["groks"]
    # test lags by 10x but falls by only 5x: not grokking
    assert not dd.grok_times(STEPS, train, _drop(8000, 5e-3, 1e-3))["groks"]
    # fits only at the end: no lag
    assert not dd.grok_times(STEPS, _drop(9000, 1.0, 1e-4), late)["groks"]
    verdict, per_seed = dd.verdict_grokking(STEPS, [train] * 3, [late, late, early])
    assert verdict == "supported (2 of 3 seeds grok)" and [r["groks"] for r in per_seed] == [1, 1, 0]
    assert dd.verdict_grokking(STEPS, [train] * 3, [late, early, early])[0].startswith("inconclusive")
    assert dd.verdict_grokking(STEPS, [train] * 2, [early] * 2)[0].startswith("not supported")


def test_wilson_interval():
    assert dd.wilson(0, 5)[0] == 0.0 and 0.4 < dd.wilson(0, 5)[1] < 0.5
    lo, hi = dd.wilson(5, 5)
    assert hi == pytest.approx(1.0) and 0.5 < lo < 0.6


# ------------------------------------------------------------------ representations and solvers


def test_nmm_design_is_the_field():
    space = dd.nmm_space(5)
    x = np.linspace(-1, 1, 17)
    a = dd.nmm_design(space, x)
    c = np.random.default_rng(0).standard_normal(space.n_dofs)
    field = nmm.Field(space, jnp.asarray(c))
    assert np.allclose(a @ c, np.asarray(field(jnp.asarray(x))), atol=1e-13)


def test_relu_net_is_an_mlp_and_nested():
    p = dd.relu_net(7, 0)
    net = MLP.from_arrays([p["w1"][:, None], p["w2"][None, :]], [p["b1"], [p["b2"]]], "relu")
    x = np.linspace(-1, 1, 9)
    assert np.allclose(dd.relu_apply(p, x), [float(net(jnp.array([t]))) for t in x])
    assert np.all(np.abs(p["b1"] / p["w1"]) <= 1)  # every kink inside [-1, 1]
    assert np.array_equal(dd.relu_net(12, 0)["w1"][:7], p["w1"])  # width 12 extends width 7


def test_padded_batch_training_is_exact():
    """Zero columns (NMM) and zero units (MLP) added for batching change nothing."""
    rng = np.random.default_rng(0)
    a, y = rng.standard_normal((1, 8, 3)), rng.standard_normal((1, 8))
    loss, opt = dd._sq_loss(dd._linear_apply), optax.adam(1e-2)
    run = {"steps": 30, "stage": 10}
    c, _, _ = dd.train_batch(loss, opt, jnp.zeros((1, 3)), {"x": jnp.asarray(a), "y": y}, **run)
    ap = jnp.asarray(np.pad(a, [(0, 0), (0, 0), (0, 4)]))
    cp, _, _ = dd.train_batch(loss, opt, jnp.zeros((1, 7)), {"x": ap, "y": y}, **run)
    assert np.allclose(np.asarray(cp)[:, :3], np.asarray(c), rtol=1e-12) and not np.any(cp[:, 3:])
    p = dd.relu_net(4, 1)
    x = rng.uniform(-1, 1, (1, 8))
    stack = lambda q: {k: jnp.asarray(v)[None] for k, v in q.items()}  # noqa: E731
    padded = {k: (v if k == "b2" else np.pad(v, (0, 3))) for k, v in p.items()}
    relu_loss, data = dd._sq_loss(dd.relu_apply), {"x": jnp.asarray(x), "y": y}
    q, _, _ = dd.train_batch(relu_loss, optax.adam(1e-2), stack(p), data, **run)
    qp, _, _ = dd.train_batch(relu_loss, optax.adam(1e-2), stack(padded), data, **run)
    assert np.allclose(qp["w1"][:, :4], q["w1"], rtol=1e-12) and not np.any(qp["w2"][:, 4:])


def test_min_norm_peak_at_the_threshold():
    """The solver on its own (isotropic Gaussian features, the textbook case of Hastie et al.):
    the min-norm solve's test error peaks where the feature count reaches the n samples, far
    above both ends of the sweep."""
    n, d, sizes = 20, 400, [5, 10, 20, 40, 400]
    errs = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        beta = rng.standard_normal(d) / np.sqrt(d)
        x, xt = rng.standard_normal((n, d)), rng.standard_normal((1000, d))
        y = x @ beta + 0.5 * rng.standard_normal(n)
        errs.append([dd.rel_l2(xt[:, :p] @ dd.min_norm(x[:, :p], y), xt @ beta) for p in sizes])
    geo = np.exp(np.mean(np.log(errs), axis=0))
    assert np.argmax(geo) == 2 and geo[2] > 3 * max(geo[0], geo[-1])


# ------------------------------------------------------------------ end to end


@pytest.fixture
def tiny(monkeypatch):
    # fewer sizes (each NMM size is a new space, a new program); the rule and code paths are the same
    monkeypatch.setattr(dd, "GEO_STEPS", 3)
    monkeypatch.setattr(dd, "NEAR_N", (1.0,))
    return DMSettings(steps=20, stage=10, seeds=2, budget=100)


def test_double_descent_end_to_end(tmp_path, tiny):
    claim = dd.double_descent(tiny, tmp_path)
    assert claim.name == "double-descent" and (tmp_path / claim.figure).stat().st_size > 1000
    assert claim.verdict.split(" (")[0].split(";")[0] in ("supported", "not supported", "inconclusive")
    cells = claim.numbers["cells"]
    assert set(cells) == {"nmm min-norm", "nmm adam", "mlp min-norm", "mlp adam"}
    assert len(cells["nmm adam"]["test"]) == len(claim.numbers["nmm_sizes"]) >= 4
    assert max(claim.numbers["mlp_params"]) <= tiny.budget
    assert "peak/largest" in claim.interval
    json.dumps(claim.to_dict())  # the runner writes it
    # min-norm interpolates above the threshold: train error at round-off at the largest size
    assert cells["nmm min-norm"]["train"][-1] < 1e-8


def test_grokking_end_to_end(tmp_path, tiny):
    claim = dd.grokking(tiny, tmp_path)
    assert claim.name == "grokking" and (tmp_path / claim.figure).stat().st_size > 1000
    assert claim.verdict.split(" (")[0] in ("supported", "not supported", "inconclusive")
    assert claim.numbers["steps"] == [0, 10, 20] and np.shape(claim.numbers["test"]) == (2, 3)
    assert claim.numbers["weight_decay"] == dd.WEIGHT_DECAY and len(claim.numbers["nmm_test"]) == 2
    assert "Wilson" in claim.interval
    json.dumps(claim.to_dict())


def test_tanh_net_is_the_library_mlp():
    p = dd.tanh_net(3)
    net = MLP(1, "scalar", dd.GROK_WIDTH, dd.GROK_DEPTH, "tanh", key=jr.fold_in(jr.PRNGKey(3), 2))
    x = np.linspace(-1, 1, 5)
    assert np.allclose(dd.tanh_apply(p, x), [float(net(jnp.array([t]))) for t in x], rtol=1e-12)
