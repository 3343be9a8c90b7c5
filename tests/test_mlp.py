"""MLP: shapes, activations, explicit construction, determinism, bad input."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmm_nn import MLP
from nmm_nn.mlp import trainable


@pytest.mark.parametrize("activation", ["relu", "tanh", "sin", "hat"])
def test_shapes_and_determinism(activation):
    a = MLP(2, "scalar", 16, 3, activation, key=jr.PRNGKey(3))
    b = MLP(2, "scalar", 16, 3, activation, key=jr.PRNGKey(3))
    x = jnp.linspace(0, 1, 20).reshape(10, 2)
    ya, yb = jax.vmap(a)(x), jax.vmap(b)(x)
    assert ya.shape == (10,) and np.array_equal(ya, yb)
    assert a.n_params == 2 * 16 + 16 + 2 * (16 * 16 + 16) + 16 + 1
    assert a.widths == (16, 16, 16) and a.depth == 3
    c = MLP(2, 3, [8, 4], None, activation, key=jr.PRNGKey(0))
    assert c(x[0]).shape == (3,) and c.widths == (8, 4)


def test_activations_and_hidden():
    w = [jnp.eye(2), jnp.ones((1, 2))]
    b = [jnp.array([0.5, -2.0]), jnp.zeros(1)]
    x = jnp.array([0.3, 0.5])  # pre-activations 0.8, -1.5
    assert np.allclose(MLP.from_arrays(w, b, "relu").hidden(x), [0.8, 0.0])
    assert np.allclose(MLP.from_arrays(w, b, "hat").hidden(x), [0.2, 0.0])
    assert np.allclose(MLP.from_arrays(w, b, "tanh").hidden(x), np.tanh([0.8, -1.5]))
    assert np.allclose(MLP.from_arrays(w, b, "sin").hidden(x), np.sin(30 * np.array([0.8, -1.5])))
    net = MLP.from_arrays(w, b, "relu")
    assert np.isclose(net(x), 0.8)


def test_siren_and_fourier_init():
    net = MLP(1, "scalar", 32, 2, "sin", key=jr.PRNGKey(0), omega0=30.0)
    assert np.max(np.abs(net.weights[0])) <= 1.0
    assert np.max(np.abs(net.weights[1])) <= np.sqrt(6 / 32) / 30 + 1e-15
    ff = MLP(2, "scalar", 16, 2, "tanh", key=jr.PRNGKey(0), fourier_features=8, fourier_scale=5.0)
    assert ff.weights[0].shape == (16, 16)
    assert ff.n_params == 16 * 16 + 16 + 16 * 16 + 16 + 16 + 1  # frequencies are not parameters
    grads = jax.grad(lambda n: n(jnp.array([0.1, 0.2])))(ff)
    assert np.all(grads.fourier == 0)  # frozen
    spec = trainable(ff)
    assert spec.fourier is False and all(spec.weights)


def test_bad_input():
    net = MLP(2, "scalar", 8, 2, "relu", key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match=r"x must be one point of shape \(2,\), got shape \(3,\)"):
        net(jnp.ones(3))
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(2, "scalar", 8, 2, "gelu", key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="in_size"):
        MLP(0, "scalar", 8, 2, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="width"):
        MLP(2, "scalar", 0, 2, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="depth"):
        MLP(2, "scalar", 8, 0, key=jr.PRNGKey(0))
    with pytest.raises(TypeError, match="key"):
        MLP(2, "scalar", 8, 2, key=0)
    with pytest.raises(ValueError, match="layer 1"):
        MLP.from_arrays([np.ones((3, 2)), np.ones((1, 4))], [np.zeros(3), np.zeros(1)])
