"""The self-progressing boundary experiment: a tiny run end to end, the batched step against
``nmm_nn.train``, and the verdict rule on hand-made numbers."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import dm_boundary as dmb
from experiments.deep_manifold import DMSettings
from nmm_nn import train

OUTCOMES = ("supported", "not supported", "inconclusive")


@pytest.mark.slow  # fast: the batched step, the problem's response and the rule's tests below
def test_tiny_run_writes_figure_verdict_and_numbers(tmp_path):
    claim = dmb.boundary(DMSettings(steps=200, stage=50, seeds=2), tmp_path)
    assert claim.name == "boundary"
    assert (tmp_path / claim.figure).stat().st_size > 1000
    assert claim.verdict.startswith(OUTCOMES)
    assert claim.interval and claim.summary
    n = json.loads(json.dumps(claim.numbers))  # JSON-serialisable
    assert {"rule", "settings", "nmm", "variants", "curves"} <= set(n)
    assert n["rule"] == dmb.RULE
    ref = n["nmm"]
    # the NMM meets g to discretisation error in one solve, and its sensitivity is the PDE's
    assert ref["boundary_error"]["8"] < 1e-4 and ref["interior_error"]["8"] < 1e-3
    assert ref["converged"]
    assert abs(ref["sensitivity"]["8"] / ref["sensitivity_exact"] - 1) < 1e-3
    keys = {"boundary_error", "interior_error", "sensitivity", "ratio", "ratio_ci", "redundancy"}
    for name in dmb.VARIANTS:
        v = n["variants"][name]
        assert keys <= set(v) and len(v["ratio"]) == 2
        assert v["redundancy"].startswith(OUTCOMES)
    for name in ("soft", "nitsche"):
        v = n["variants"][name]
        assert {"rho", "boundary_drop", "interior_drop", "progression"} <= set(v)
        assert v["early_step"] == 50  # no stage end at or before 10 % of 200: the first
    # the ansatz meets g to rounding
    assert max(n["variants"]["hard"]["boundary_error"]) < 1e-12
    assert n["curves"]["steps"] == [50, 100, 150, 200]


def test_batched_step_is_the_step_of_train():
    """One run of the batched loop reproduces nmm_nn.train's loss history (same functional,
    same Adam), so the experiment's networks are the suite's networks."""
    s = DMSettings(steps=20, stage=10, seeds=1)
    probe = dmb.Probe.of(dmb._space(2, 1))
    r = dmb.train_batch("nitsche", [dmb._network(0)], [0.0], s, probe)
    _, hist = train(
        dmb._network(0),
        dmb.train_task("ritz"),
        steps=20,
        learning_rate=s.learning_rate,
        chunk=10,
        progress=False,
    )
    np.testing.assert_allclose(r["loss"][0], hist.loss, rtol=1e-10)


def test_problem_data_and_response():
    x = jnp.array([0.3, 0.0])
    assert float(dmb.bump(x)) == pytest.approx(math.sin(0.3 * math.pi))
    for side in ([0.0, 0.4], [1.0, 0.4], [0.4, 1.0]):  # zero on the other three sides
        assert abs(float(dmb.bump(jnp.array(side)))) < 1e-15
    assert float(dmb.response(x)) == pytest.approx(float(dmb.bump(x)))
    assert abs(float(dmb.response(jnp.array([0.3, 1.0])))) < 1e-15


def test_early_index():
    assert dmb.early_index([250 * k for k in range(1, 13)]) == 0  # 250 <= 300
    assert dmb.early_index([1000 * k for k in range(1, 21)]) == 1  # 2000 = 10 % of 20000
    assert dmb.early_index([50, 100, 150, 200]) == 0  # none at or before 20: the first


def test_progression_verdict_outcomes():
    assert dmb.progression_verdict(0.9, 20.0, 30.0) == "supported"
    assert dmb.progression_verdict(0.5, 1.5, 50.0) == "not supported (boundary first)"
    assert dmb.progression_verdict(0.9, 5.0, 5.0) == "inconclusive"  # drop too small
    assert dmb.progression_verdict(0.7, 20.0, 30.0) == "inconclusive"  # not together
    assert dmb.progression_verdict(float("nan"), 20.0, 30.0) == "inconclusive"


def ci(lo, hi):
    return {"mean": math.sqrt(lo * hi), "lo": lo, "hi": hi, "n": 5}


def test_redundancy_verdict_outcomes():
    assert dmb.redundancy_verdict(ci(0.1, 0.4)) == "supported"
    assert dmb.redundancy_verdict(ci(0.85, 0.95)) == "not supported"  # all >= 0.8
    assert dmb.redundancy_verdict(ci(0.6, 1.3)) == "not supported"  # contains 1
    assert dmb.redundancy_verdict(ci(1.5, 3.0)) == "not supported"  # above 1
    assert dmb.redundancy_verdict(ci(0.3, 2.0)) == "inconclusive"  # reaches < 0.5 and 1
    assert dmb.redundancy_verdict(ci(0.4, 0.7)) == "inconclusive"
    assert dmb.redundancy_verdict(None) == "inconclusive"  # a diverged run
    assert dmb.redundancy_verdict(ci(0.1, 0.4), nmm_converged=False) == "inconclusive"


def test_overall_verdict_outcomes():
    assert dmb.verdict("supported", "supported") == "supported"
    assert dmb.verdict("not supported (boundary first)", "not supported").startswith("not supported")
    mixed = dmb.verdict("supported", "not supported")
    assert mixed.startswith("inconclusive") and "progression: supported" in mixed
    assert dmb.verdict("inconclusive", "inconclusive").startswith("inconclusive")
