"""Checkpoints belong to one run (task, network, initial key, optimiser): any other run, a corrupted
file or an unwritable path is a CheckpointError naming the file and saying how to start afresh.
A Task for an ill-posed problem is refused like nmm.solve refuses it."""

import contextlib
import io
import json

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import nmm
from nmm_nn import MLP, Task, train
from nmm_nn.train import CheckpointError

AFRESH = "resume=False"


@pytest.fixture(scope="module")
def space():
    dom = nmm.Domain.interval(-1.0, 1.0)
    return nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 16), dom, degree=1)


@pytest.fixture(scope="module")
def task(space):
    return Task.fit(lambda x: x[0] ** 2, space)


def net(key=0, width=4, **kw):
    return MLP(1, "scalar", width, 1, "tanh", key=jr.PRNGKey(key), **kw)


def fit(model, task, path, steps=10, **kw):
    return train(model, task, steps=steps, chunk=5, checkpoint=path, progress=False, **kw)


@contextlib.contextmanager
def refused(path, *fragments):
    """A CheckpointError whose message names the file and holds every fragment."""
    with pytest.raises(CheckpointError) as info:
        yield info
    msg = str(info.value)
    assert repr(str(path)) in msg, msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_another_run_is_refused(task, space, tmp_path):
    path = tmp_path / "run.ckpt"
    ref = train(net(), task, steps=20, chunk=5, progress=False)[1]
    first = fit(net(), task, path)[1]
    assert first.steps == 10
    saved = json.loads(np.load(path)["history"].tobytes())["meta"]
    assert saved["task"] == task.fingerprint() and saved["widths"] == [4] and len(saved["init"]) == 16

    other_task = Task.fit(lambda x: x[0] ** 3, space)  # the same points, another target
    with refused(path, "the task differs", repr(saved["task"]), repr(other_task.fingerprint()), AFRESH):
        fit(net(), other_task, path, steps=20)
    with refused(path, "the initial network differs", AFRESH):  # another PRNG key
        fit(net(key=1), task, path, steps=20)
    with refused(path, "fourier_features: checkpoint 0, this run 2"):
        fit(net(fourier_features=2), task, path, steps=20)
    four = tmp_path / "fourier.ckpt"
    fit(net(fourier_features=2), task, four, steps=5)
    with refused(four, "the initial network differs"):  # same key, other frozen features
        fit(net(fourier_features=2, fourier_scale=3.0), task, four, steps=10)
    with refused(path, "widths: checkpoint [4], this run [5]", AFRESH):
        fit(net(width=5), task, path, steps=20)
    with refused(path, "activation: checkpoint 'tanh', this run 'relu'"):
        fit(MLP(1, "scalar", 4, 1, "relu", key=jr.PRNGKey(0)), task, path, steps=20)
    with refused(path, "learning_rate: checkpoint 0.001, this run 0.01"):
        fit(net(), task, path, steps=20, learning_rate=1e-2)
    with refused(path, "fewer than the 10 steps", AFRESH):
        fit(net(), task, path, steps=5)
    # the run that wrote it resumes on the same curve, from the initial or from the returned network
    model, resumed = fit(net(), task, path, steps=15)
    _, done = fit(model, task, path, steps=20)
    assert np.array_equal(done.loss, ref.loss)
    # resume=False starts afresh and the file then belongs to the new run
    fresh = fit(net(key=1), other_task, path, steps=5, resume=False)[1]
    assert fresh.steps == 5 and fit(net(key=1), other_task, path, steps=10)[1].steps == 10


def test_field_checkpoint_knows_its_start(task, space, tmp_path):
    path = tmp_path / "field.ckpt"
    zero = nmm.Field(space, jnp.zeros(space.n_dofs))
    fit(zero, task, path, steps=5)
    with refused(path, "the initial network differs"):
        fit(nmm.Field(space, jnp.ones(space.n_dofs)), task, path, steps=10)


def test_corrupted_checkpoints(task, tmp_path):
    path = tmp_path / "run.ckpt"
    fit(net(), task, path, steps=5)
    good = path.read_bytes()
    with np.load(io.BytesIO(good)) as data:
        leaves, history = data["leaves"], data["history"]

    def npz(**arrays):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    bad = {
        "not an .npz archive": b"garbage bytes" * 20,
        "not an .npz archive ": good[: len(good) // 2],  # truncated
        "history is not a file in the archive": npz(leaves=leaves),
        "JSONDecodeError": npz(leaves=leaves, history=np.frombuffer(b"{oops", np.uint8)),
        "network leaves are damaged": npz(leaves=leaves[:20], history=history),
        "history is inconsistent": npz(
            leaves=leaves,
            history=np.frombuffer(
                json.dumps(
                    {
                        **json.loads(history.tobytes()),
                        "history": {**json.loads(history.tobytes())["history"], "step": [5, 10]},
                    }
                ).encode(),
                np.uint8,
            ),
        ),
    }
    for why, content in bad.items():
        path.write_bytes(content)
        with refused(path, "cannot be read", why.strip(), "delete it", AFRESH):
            fit(net(), task, path, steps=10)
    assert fit(net(), task, path, steps=5, resume=False)[1].steps == 5  # afresh, overwritten


def test_unwritable_checkpoints(task, tmp_path):
    (tmp_path / "file").write_text("")
    for path, why in (
        (tmp_path, "is a directory"),
        (tmp_path / "file" / "run.ckpt", "cannot be written"),  # its parent is a file
    ):
        with refused(path, why):
            fit(net(), task, path, steps=5)
    with pytest.raises(TypeError, match="resume must be True or False, got 'no'"):
        fit(net(), task, tmp_path / "x.ckpt", resume="no")


def test_task_fingerprint_is_stable_and_specific(space):
    f = lambda x: jnp.sin(x[0])  # noqa: E731
    a = Task.pde(nmm.Poisson(f=f, dirichlet=0.0), space)
    again = Task.pde(nmm.Poisson(f=lambda x: jnp.sin(x[0]), dirichlet=0.0), space)  # a new lambda
    assert a.fingerprint() == again.fingerprint()
    others = [
        Task.pde(nmm.Poisson(f=lambda x: jnp.sin(x[0]) + 1e-6, dirichlet=0.0), space),
        Task.pde(nmm.Poisson(f=f, k=2.0, dirichlet=0.0), space),
        Task.pde(nmm.Poisson(f=f, dirichlet=0.0, bc="penalty"), space),
        Task.pde(nmm.Poisson(f=f, dirichlet=0.0), space, functional="pinn"),
        Task.pde(nmm.Poisson(f=f, dirichlet=0.0), space, exact=f),
        Task.fit(f, space),
    ]
    prints = [t.fingerprint() for t in [a, *others]]
    assert len(set(prints)) == len(prints)


def test_ill_posed_task_is_refused_like_nmm_solve(space):
    with pytest.raises(ValueError) as solve_err:
        nmm.solve(space, nmm.Poisson(f=1.0))  # pure Neumann, c = 0
    engine = str(solve_err.value)
    assert "no Dirichlet boundary and c = 0" in engine
    # c = 0 as an array or a callable: nmm.solve sees it only at the solve; the task at once
    for c in (jnp.zeros(()), lambda x: 0.0 * x[0]):
        for functional in ("ritz", "pinn"):
            with pytest.raises(ValueError) as err:
                Task.pde(nmm.Poisson(f=1.0, c=c), space, functional=functional)
            msg = str(err.value)
            assert msg.startswith(engine) and "Poisson.c is zero at every quadrature point" in msg
        with pytest.raises(ValueError, match="no Dirichlet boundary and c = 0"):
            train(net(), nmm.Poisson(f=1.0, c=c), space, steps=5, progress=False)
    Task.pde(nmm.Poisson(f=1.0, c=lambda x: 0.0 * x[0], dirichlet=0.0), space)  # well posed
    Task.pde(nmm.Poisson(f=1.0, c=lambda x: 1.0 + x[0]), space)  # c > 0 somewhere: well posed
