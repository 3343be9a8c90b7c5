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
