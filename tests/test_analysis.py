"""Loss-curve analysis finds the known phase split and zig-zag frequency of synthetic curves."""

import numpy as np
import pytest

from experiments.analysis import analyse, knee


def _curve(split=400, steps=4000, freq=0.02, amp=0.05, noise=0.0, seed=0):
    t = np.arange(steps, dtype=float)
    # log10 loss: 3 decades in the rapid drop, 0.5 decade over the slow phase, then a zig-zag
    log = np.where(t < split, -3.0 * t / split, -3.0 - 0.5 * (t - split) / (steps - split))
    log = log + np.where(t >= split, amp * np.cos(2 * np.pi * freq * t), 0.0)
    log = log + noise * np.random.default_rng(seed).standard_normal(steps)
    return 10.0**log


@pytest.mark.parametrize("split,freq", [(400, 0.02), (1000, 0.05), (250, 0.0125)])
def test_split_and_frequency(split, freq):
    a = analyse(_curve(split=split, freq=freq))
    assert abs(a.split - split) <= 1.0 / freq  # within one period of the zig-zag
    assert abs(a.peak_frequency - freq) <= 1.0 / (4000 - split)  # within one frequency bin
    assert a.peak_share > 0.8
    assert np.isclose(a.drop_decades, 3.0, atol=0.1) and np.isclose(a.slow_decades, 0.5, atol=0.15)


def test_zigzag_measures():
    smooth = analyse(_curve(amp=0.0))
    zig = analyse(_curve(freq=0.5, amp=0.02))  # step-by-step oscillation
    noisy = analyse(_curve(amp=0.0, noise=0.01))
    assert smooth.sign_changes < 0.05 and smooth.rel_std < 0.05
    assert zig.sign_changes > 0.95
    assert 0.5 < noisy.sign_changes < 0.8  # increments of white noise change sign 2/3 of the time
    assert noisy.rel_std > smooth.rel_std


def test_knee_of_two_slopes_and_bad_input():
    y = np.r_[np.linspace(0, -3, 101), np.linspace(-3, -3.5, 400)[1:]]
    assert knee(y) == 100
    with pytest.raises(ValueError, match="positive"):
        analyse(np.r_[np.ones(200), -1.0])
    with pytest.raises(ValueError, match="at least"):
        analyse(np.ones(10))


def _slow_decline(steps=4000, split=400, spikes=0, height=0.5, noise=0.0, seed=0):
    """log10 loss: a 3-decade drop, then a power-law slow decline; ``spikes`` up-down excursions
    of ``height`` decades (a jump, then a decay back within 30 steps), white noise of ``noise``."""
    t = np.arange(steps, dtype=float)
    slow = -3.0 - 0.8 * np.log10(1 + np.maximum(t - split, 0) / 200)
    log = np.where(t < split, -3.0 * t / split, slow)
    rng = np.random.default_rng(seed)
    for start in np.linspace(split + 200, steps - 100, spikes).astype(int):
        bump = height * np.exp(-(t - start) / 10.0) * (t >= start)
        log = log + bump
    return 10.0 ** (log + noise * rng.standard_normal(steps))


def test_the_bottleneck_rule_tells_spiky_from_smooth_and_noisy_curves():
    from experiments.dm_bottleneck import cell_state, zigzags

    spiky = analyse(_slow_decline(spikes=12))
    smooth = analyse(_slow_decline())
    noisy = analyse(_slow_decline(noise=0.002))  # 0.5 % white noise: Adam's steady jitter
    rare = analyse(_slow_decline(spikes=2))  # two excursions are not a zig-zag
    assert spiky.excursions == 12 and smooth.excursions == 0 and noisy.excursions == 0
    assert np.isclose(spiky.excursion_size, 0.5, atol=0.05)
    assert np.isclose(spiky.excursion_period, (4000 - 100 - 600) / 11, atol=2)
    assert smooth.trend_sd < 0.01 < 0.02 < spiky.trend_sd
    assert zigzags(spiky, 4000)
    assert not any(zigzags(a, 4000) for a in (smooth, noisy, rare))
    # the replaced rule read zig-zag as step-to-step sign changes: it saw the spikes as smooth and
    # the jitter as a zig-zag, the opposite of the claim's words
    assert spiky.sign_changes < 0.3 < noisy.sign_changes
    assert cell_state([True, True, False]) == "zig-zag" and cell_state([True, False, False]) == "smooth"
    assert cell_state([True, False]) == "mixed"


def test_the_bottleneck_verdict_places_the_zigzag():
    from experiments.dm_bottleneck import verdict

    def v(nmm_adam, solved, mlp, **rates):
        return verdict({"nmm-adam": nmm_adam, "mlp-solved": solved, "mlp-adam": mlp}, rates)

    assert v("smooth", "smooth", "smooth").startswith("not supported")
    assert v("smooth", "smooth", "mixed").startswith("inconclusive")
    assert "optimiser" in v("zig-zag", "zig-zag", "zig-zag")
    assert "hidden layers" in v("smooth", "zig-zag", "zig-zag")
    assert "end-to-end Adam" in v("smooth", "smooth", "zig-zag")
    calm = v("smooth", "smooth", "zig-zag", default=20.0, **{"eps=1e-4": 19.0, "lr/10": 1.0})
    assert calm.endswith("(the spikes fade at lr/10)")
    assert "instability" not in v("smooth", "smooth", "zig-zag", default=20.0, **{"lr/10": 6.0})


def test_the_output_layer_solved_inside_the_loss_is_cover_solve():
    """The bottleneck's mlp-solved cell: the output layer solved in the loss (normal equations with
    a relative ridge of 1e-12) comes within the ridge's bias of nmm_nn.cover_solve's, and its
    gradient is the partial gradient (the solve held fixed)."""
    import jax
    import jax.random as jr

    from experiments import problems as registry
    from experiments.dm_bottleneck import _solved_output
    from nmm_nn import MLP, cover_solve

    _, task = registry.get("poly-4").shared()
    net = MLP(1, "scalar", 8, 2, "tanh", key=jr.PRNGKey(3))
    solved = _solved_output(net, task)
    trained, best = float(task.loss(net)), cover_solve(net, task).loss
    assert best <= float(task.loss(solved)) <= 1e-5 * trained  # 7e-8 against 3.6e-9 and 2.8e-2
    g = jax.grad(lambda n: task.loss(_solved_output(n, task)))(net)
    assert float(np.abs(g.weights[-1]).max()) == 0.0  # the output layer is the solve's, not trained
