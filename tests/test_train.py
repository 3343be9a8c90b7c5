"""train: reduces the loss, reports errors, is deterministic, resumes the same curve, checks input."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import nmm
from nmm_nn import MLP, Task, train

COEFFS = np.random.default_rng(7).standard_normal(11)
POLY = lambda x: jnp.polyval(jnp.asarray(COEFFS), x[0])  # noqa: E731  degree 10


@pytest.fixture(scope="module")
def poly_task():
    dom = nmm.Domain.interval(-1.0, 1.0)
    return Task.fit(POLY, nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 96), dom, degree=1))


def test_degree10_fit_reduces_loss_and_is_deterministic(poly_task):
    net = MLP(1, "scalar", 32, 3, "tanh", key=jr.PRNGKey(0))
    trained, hist = train(net, poly_task, steps=600, chunk=200, learning_rate=3e-3, progress=False)
    assert hist.loss.shape == (600,) and hist.step == [200, 400, 600]
    assert hist.loss[-1] < 1e-2 * hist.loss[0]
    assert hist.errors["L2"][-1] < 0.5 * hist.errors["L2"][0] and len(hist.errors["H1"]) == 3
    assert hist.compile_time > 0 and hist.wall[-1] > 0
    seen = []
    train(
        net,
        poly_task,
        steps=50,
        chunk=20,
        progress=False,
        callback=lambda step, model, h: seen.append((step, h.steps, float(poly_task.loss(model)))),
    )
    assert [s[:2] for s in seen] == [(20, 20), (40, 40), (50, 50)]
    assert np.isclose(float(poly_task.loss(trained)), hist.loss[-1], rtol=0.2)
    again = train(
        MLP(1, "scalar", 32, 3, "tanh", key=jr.PRNGKey(0)),
        poly_task,
        steps=600,
        chunk=200,
        learning_rate=3e-3,
        progress=False,
    )[1]
    assert np.array_equal(hist.loss, again.loss)
    other = train(
        MLP(1, "scalar", 32, 3, "tanh", key=jr.PRNGKey(1)), poly_task, steps=10, progress=False
    )[1]
    assert not np.array_equal(hist.loss[:10], other.loss)


def test_lbfgs_and_schedule(poly_task):
    net = MLP(1, "scalar", 16, 2, "tanh", key=jr.PRNGKey(0))
    _, hist = train(net, poly_task, steps=100, chunk=50, optimizer="lbfgs", progress=False)
    assert hist.loss[-1] < 1e-2 * hist.loss[0]
    sched = optax.cosine_decay_schedule(1e-2, 100)
    _, hs = train(net, poly_task, steps=100, chunk=100, learning_rate=sched, progress=False)
    assert hs.loss[-1] < hs.loss[0]
    _, hc = train(net, poly_task, steps=20, optimizer=optax.sgd(1e-4), progress=False)
    assert hc.loss[-1] < hc.loss[0]


def test_poisson_2d_ritz():
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    space = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.2), dom, degree=1)
    exact = lambda x: jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])  # noqa: E731
    prob = nmm.Poisson(f=lambda x: 2 * jnp.pi**2 * exact(x), dirichlet=0.0)
    task = Task.poisson(prob, space, exact=exact)
    net = MLP(2, "scalar", 16, 2, "tanh", key=jr.PRNGKey(0))
    _, hist = train(net, task, steps=300, chunk=100, learning_rate=1e-2, progress=False)
    assert hist.loss[-1] < hist.loss[0] - 1.0
    assert hist.errors["L2"][-1] < hist.errors["L2"][0]


def test_resume_continues_the_same_curve(poly_task, tmp_path):
    net = MLP(1, "scalar", 16, 2, "tanh", key=jr.PRNGKey(2))
    ref = train(net, poly_task, steps=300, chunk=100, progress=False)[1]
    path = tmp_path / "run.ckpt"
    first = train(net, poly_task, steps=100, chunk=100, checkpoint=path, progress=False)[1]
    assert path.exists() and first.steps == 100
    trained, resumed = train(net, poly_task, steps=300, chunk=100, checkpoint=path, progress=False)
    assert np.array_equal(resumed.loss, ref.loss)
    assert resumed.errors["L2"] == ref.errors["L2"] and resumed.step == [100, 200, 300]
    # finished: asking for the same steps again does nothing; a different run is refused
    same = train(net, poly_task, steps=300, chunk=100, checkpoint=path, progress=False)[1]
    assert np.array_equal(same.loss, ref.loss)
    with pytest.raises(ValueError, match="checkpoint"):
        train(net, poly_task, steps=300, optimizer="lbfgs", checkpoint=path, progress=False)
    with pytest.raises(ValueError, match="fewer than"):
        train(net, poly_task, steps=50, checkpoint=path, progress=False)


def test_bad_input(poly_task):
    net = MLP(1, "scalar", 8, 1, "tanh", key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        train(net, poly_task, steps=0)
    with pytest.raises(ValueError, match="chunk"):
        train(net, poly_task, steps=10, chunk=0)
    with pytest.raises(ValueError, match="in_size"):
        train(MLP(2, "scalar", 8, 1, key=jr.PRNGKey(0)), poly_task, steps=10)
    with pytest.raises(ValueError, match="optimizer"):
        train(net, poly_task, steps=10, optimizer="sgdd")
    with pytest.raises(ValueError, match="learning_rate"):
        train(net, poly_task, steps=10, learning_rate=-1.0)
    with pytest.raises(FloatingPointError, match="non-finite at step"):
        train(net, poly_task, steps=50, learning_rate=1e300, progress=False)


def test_train_on_what_nmm_solves(poly_task):
    """A Poisson problem or a fit target with a space is made into the same Task."""
    space = nmm.ManifoldSpace(
        nmm.MathCover.intervals(nmm.Domain.interval(-1.0, 1.0), 96),
        nmm.Domain.interval(-1.0, 1.0),
        degree=1,
    )
    net = MLP(1, "scalar", 8, 1, "tanh", key=jr.PRNGKey(0))
    direct = train(net, POLY, space, steps=20, progress=False)[1]
    via_task = train(net, poly_task, steps=20, progress=False)[1]
    assert np.allclose(direct.loss, via_task.loss, rtol=1e-12)
    prob = nmm.Poisson(f=1.0, dirichlet=0.0)
    hist = train(net, prob, space, steps=20, progress=False)[1]
    assert hist.loss[-1] < hist.loss[0] and hist.errors == {}
    with pytest.raises(TypeError, match="space"):
        train(net, POLY, steps=10)


def test_train_nmm_coefficients(poly_task):
    """nmm-adam: the NMM space's coefficients trained by the same optimiser."""
    space = nmm.ManifoldSpace(
        nmm.MathCover.intervals(nmm.Domain.interval(-1.0, 1.0), 4),
        nmm.Domain.interval(-1.0, 1.0),
        degree=3,
    )
    task = Task.fit(POLY, space)
    start = nmm.Field(space, jnp.zeros(space.n_dofs), jnp.zeros(3))
    field, hist = train(start, task, steps=400, chunk=200, learning_rate=1e-2, progress=False)
    assert isinstance(field, nmm.Field) and hist.loss[-1] < 1e-2 * hist.loss[0]
    assert np.isclose(float(task.loss(field)), hist.loss[-1], rtol=0.05)
    assert hist.errors["L2"][-1] == task.errors(field)["L2"]
    best = nmm.fit(space, POLY)
    assert task.errors(best)["L2"] <= hist.errors["L2"][-1]  # the solve is the optimum
