"""The Deep Manifold "forward and inverse combined" / "negative time" experiment
(``experiments.dm_inverse``): one tiny end-to-end run, the pieces it rests on, and the rule on
hand-made numbers (one test per outcome)."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from experiments import dm_inverse as dmi
from experiments.deep_manifold import DMSettings
from nmm_nn import MLP

VERDICTS = ("supported", "not supported", "inconclusive")


@pytest.mark.slow  # fast: the jet, the series, the inversion and the rule's tests below
def test_forward_inverse_tiny_run(tmp_path):
    s = DMSettings(steps=60, stage=30, seeds=1, budget=300)
    claim = dmi.forward_inverse(s, tmp_path)
    assert claim.name == "forward-inverse"
    assert (tmp_path / claim.figure).is_file()
    assert claim.verdict.startswith(VERDICTS)
    n = claim.numbers
    json.dumps(claim.to_dict())  # the runner writes it as JSON
    for key in ("rule", "rows", "gaps", "ratio_u0", "ratio_forward", "ratio_excess", "times_s"):
        assert key in n
    assert [r["T"] for r in n["rows"]] == list(dmi.GAPS)
    first = n["rows"][0]
    for key in ("net_u0", "reg_u0", "net_forward", "reg_forward", "limit_error", "modes_above_noise"):
        assert key in first
    # the regularised inversion is at the information limit for the smallest T: modes 1 and 4
    # kept, mode 10 (damped to 5e-5) lost; the forward reference is the NMM's, accurate
    assert first["modes_recoverable"] == [1, 4] and first["reg_recovered"] == [[1, 4]]
    assert first["reg_u0"][0] < first["limit_error"] + 0.02
    assert first["reg_excess"][0] < 0.05
    assert first["nmm_reference_error"] < 1e-4
    assert not any(r["reg_leak"] for r in n["rows"])
    assert "T = 0.01" in claim.interval


def test_jet_matches_autodiff():
    net = MLP(2, "scalar", 8, 3, "tanh", key=jr.PRNGKey(3))
    p = (net.weights, net.biases)
    Z = jr.uniform(jr.PRNGKey(4), (5, 2))
    ut, uxx = jax.jit(dmi._jet)(p, Z)
    g, h, v = eqx.filter_jit(
        lambda n, z: (jax.vmap(jax.grad(n))(z), jax.vmap(jax.hessian(n))(z), jax.vmap(n)(z))
    )(net, Z)  # one program: eager autodiff dispatches hundreds of small ones
    np.testing.assert_allclose(ut, g[:, 1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(uxx, h[:, 0, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jax.jit(dmi._value)(p, Z), v, rtol=1e-12)


def test_information_limit_and_modes():
    lim = dmi.information_limit(0.01, 0.0096)
    assert lim["modes"] == [1, 4] and lim["beyond"] == [10]
    assert lim["limit_error"] == pytest.approx(0.25 / np.sqrt(1 + 0.25 + 0.0625))
    lim = dmi.information_limit(0.05, 0.0061)
    assert lim["modes"] == [1] and lim["beyond"] == [10]  # mode 4 is in between: neither
    x = np.linspace(0, 1, 401)
    c = dmi.sine_coefficients(x, np.asarray(dmi.series(dmi.truth_coefficients(), x, 0.0)))
    np.testing.assert_allclose(c, dmi.truth_coefficients(), atol=1e-4)
    assert dmi.recovered(c).all()
    assert not dmi.recovered(0.7 * c).any()


def test_regularised_inversion_on_low_noise_data():
    _, d, sigma = dmi.heat_data(0.001, jr.PRNGKey(0))
    r = dmi.regularised(0.001, d, sigma)
    assert r["ratio"] <= dmi.TAU
    assert dmi.recovered(r["c"]).all()  # every mode above the noise at T = 0.001


def test_series_solves_the_heat_equation():
    c = jnp.asarray(dmi.truth_coefficients())
    u = dmi._Series(c)
    p = jnp.array([0.3, 0.002])
    ut, uxx = eqx.filter_jit(lambda f, q: (jax.grad(f)(q)[1], jax.hessian(f)(q)[0, 0]))(u, p)
    assert float(ut) == pytest.approx(float(uxx), rel=1e-10)


@pytest.mark.parametrize(
    "u0, forward, leaks, expected",
    [
        ([1.0, 1.5, 0.9], [1.2, 2.0, 0.8], [False] * 3, "supported"),
        ([1.0, 5.0, 0.9], [1.2, 1.0, 0.8], [False] * 3, "not supported"),
        ([1.0, 1.0, 0.9], [1.2, 1.0, 6.0], [False] * 3, "not supported"),
        ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [False, True, False], "not supported (the network"),
        ([1.0, 2.5, 0.9], [1.2, 1.0, 0.8], [False] * 3, "inconclusive"),
        ([1.0, 1.0, 0.9], [1.2, 4.9, 0.8], [False] * 3, "inconclusive"),
    ],
)
def test_verdict_rule(u0, forward, leaks, expected):
    v = dmi.verdict(u0, forward, leaks)
    assert v.startswith(expected)
    if expected == "not supported":
        assert "leak" not in v
