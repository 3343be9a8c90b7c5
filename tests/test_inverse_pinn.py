"""InverseTask (nmm_nn.inverse): the PINN baseline of PINNacle's PInv and HInv. The source f of
the operator matches PINNacle's closed forms, the exact (u, a) zero the residual and leave the
noise as data misfit (≈ σ²), their errors are 0, the loss trains down with nmm_nn.train (and
checkpoints), and bad input is refused by name."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmm_nn import MLP, InverseTask, hinv_task, pinv_task, train
from nmm_nn.inverse import HINV, PINV
from nmm_nn.train import CheckpointError

SIGMA = 0.1


class Exact(eqx.Module):
    """The exact (u, a) of a problem as a network ``z -> (u, a)`` (a reads the space part)."""

    d: int = eqx.field(static=True)
    u: object = eqx.field(static=True)
    a: object = eqx.field(static=True)

    def __call__(self, z):
        return jnp.stack([self.u(z), self.a(z[: self.d])])


def exact(problem):
    return Exact(problem.space_dim, problem.exact_u, problem.exact_a)


@pytest.fixture(scope="module")
def pinv():
    # 2 500 noisy observations (PINNacle's 50 x 50 grid), few collocation points
    return pinv_task(2500, SIGMA, 256, seed=1, n_boundary=64, error_points=21)


@pytest.fixture(scope="module")
def hinv():
    return hinv_task(
        2500, SIGMA, 256, seed=1, n_boundary=64, n_initial=64, error_points=11, error_times=3
    )


def test_source_matches_pinnacle_closed_forms():
    z = np.asarray(jr.uniform(jr.PRNGKey(0), (50, 3), float))
    s, c, p = np.sin, np.cos, np.pi
    # PInv: PINNacle's f_src (src/pde/inverse.py), a = 1/(1 + x² + y² + (x−1)² + (y−1)²)
    x, y = z[:, 0], z[:, 1]
    a = 1 / (1 + x**2 + y**2 + (x - 1) ** 2 + (y - 1) ** 2)
    f = (
        2 * p**2 * s(p * x) * s(p * y) * a
        + 2 * p * ((2 * x - 1) * c(p * x) * s(p * y) + (2 * y - 1) * s(p * x) * c(p * y)) * a**2
    )
    got = jax.vmap(PINV.source)(jnp.asarray(z[:, :2]))
    np.testing.assert_allclose(got, f, rtol=1e-12, atol=1e-12)
    # HInv on [−1, 1]² × [0, 1]
    x, y, t = 2 * z[:, 0] - 1, 2 * z[:, 1] - 1, z[:, 2]
    f = np.exp(-t) * (
        (4 * p**2 - 1) * s(p * x) * s(p * y)
        + p**2
        * (
            2 * s(p * x) ** 2 * s(p * y) ** 2
            - c(p * x) ** 2 * s(p * y) ** 2
            - s(p * x) ** 2 * c(p * y) ** 2
        )
    )
    got = jax.vmap(HINV.source)(jnp.asarray(np.c_[x, y, t]))
    np.testing.assert_allclose(got, f, rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("name", ["pinv", "hinv"])
def test_exact_fields_zero_the_residual_and_leave_the_noise(name, request):
    task = request.getfixturevalue(name)
    problem = PINV if name == "pinv" else HINV
    assert (task.dim, task.components, task.has_exact) == (len(problem.box), 2, True)
    net = exact(problem)
    assert float(jnp.max(jnp.abs(task.residual(net)))) < 1e-10
    parts = task.parts(net)
    assert parts["pde"] < 1e-20 and parts["u_boundary"] < 1e-28 and parts["a_boundary"] < 1e-28
    assert parts["initial"] < 1e-28
    # the data misfit is the noise's mean square: σ² within sampling error (√(2/2500) ≈ 3 %)
    assert abs(parts["data"] / SIGMA**2 - 1) < 0.1, parts["data"]
    assert np.isclose(float(task.loss(net)), sum(parts.values()), rtol=1e-12)
    errs = task.errors(net)
    assert max(errs.values()) < 1e-12, errs


def test_errors_measure_u_and_a_apart(pinv):
    # u exact, a off by 10 %: u errors 0, a_L2 = 0.1
    net = Exact(2, PINV.exact_u, lambda x: 1.1 * PINV.exact_a(x))
    errs = pinv.errors(net)
    assert errs["L2"] < 1e-14 and errs["H1"] < 1e-14
    assert np.isclose(errs["a_L2"], 0.1, rtol=1e-10)
    assert pinv.parts(net)["pde"] > 1e-3  # and the residual sees the wrong a


def test_hinv_reads_a_at_t0():
    # a network whose a-output drifts in t is measured (and constrained) at t = 0 only
    task = hinv_task(100, SIGMA, 64, n_boundary=16, n_initial=16, error_points=5, error_times=2)

    def net(z):
        return jnp.stack([HINV.exact_u(z), HINV.exact_a(z[:2]) + z[2]])

    assert task.errors(net)["a_L2"] < 1e-14
    assert float(jnp.max(jnp.abs(task.residual(net)))) < 1e-10


def test_loss_trains_down_and_checkpoints(tmp_path):
    task = pinv_task(100, SIGMA, 128, seed=0, n_boundary=32, error_points=11)
    net = MLP(2, 2, 16, 2, "tanh", key=jr.PRNGKey(0))
    trained, hist = train(net, task, steps=300, chunk=150, learning_rate=1e-2, progress=False)
    assert hist.steps == 300 and np.all(np.isfinite(hist.loss))
    assert hist.loss[-1] < 0.2 * hist.loss[0], (hist.loss[0], hist.loss[-1])
    assert len(hist.errors["L2"]) == 2 and hist.errors["L2"][-1] < hist.errors["L2"][0]
    assert np.isclose(float(task.loss(trained)), sum(task.parts(trained).values()), rtol=1e-12)
    # the fingerprint is stable across builds, and a checkpoint refuses another task
    again = pinv_task(100, SIGMA, 128, seed=0, n_boundary=32, error_points=11)
    other = pinv_task(100, SIGMA, 128, seed=1, n_boundary=32, error_points=11)
    assert task.fingerprint() == again.fingerprint() != other.fingerprint()
    ck = tmp_path / "inv.ckpt"
    train(net, task, steps=20, chunk=10, progress=False, checkpoint=ck)
    _, h = train(net, again, steps=30, chunk=10, progress=False, checkpoint=ck)
    assert h.steps == 30
    with pytest.raises(CheckpointError, match="task differs"):
        train(net, other, steps=40, chunk=10, progress=False, checkpoint=ck)


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="sigma"):
        pinv_task(100, 0.0, 16)
    with pytest.raises(ValueError, match="sigma"):
        hinv_task(100, -0.1, 16)
    with pytest.raises(ValueError, match="n_obs must be a square"):
        pinv_task(99, SIGMA, 16)
    with pytest.raises(ValueError, match="n_collocation"):
        pinv_task(100, SIGMA, 0)
    box = PINV.box
    obs = np.asarray(jr.uniform(jr.PRNGKey(2), (20, 2), float))
    vals = np.zeros(20)
    col = obs[:10]
    bnd = (np.array([[0.0, 0.5], [1.0, 0.2]]), np.ones(2))

    def build(**kw):
        args = {"observations": (obs, vals), "collocation": col, "source": PINV.source, "box": box}
        return InverseTask.build(**{**args, **kw})

    assert build(a_boundary=bnd).dim == 2
    with pytest.raises(ValueError, match="observations values contains non-finite"):
        build(observations=(obs, np.where(np.arange(20) == 3, np.nan, 0.0)))
    with pytest.raises(ValueError, match="observations points contains non-finite"):
        build(observations=(np.where(obs > 0.9, np.nan, obs), vals))
    with pytest.raises(ValueError, match=r"observations values must have shape \(20,\)"):
        build(observations=(obs, vals[:5]))
    with pytest.raises(ValueError, match="collocation: 1 of 10 points lie outside the domain"):
        build(collocation=np.r_[col[:9], [[1.5, 0.2]]])
    with pytest.raises(ValueError, match="observations points: .* outside the domain"):
        build(observations=(obs - 0.5, vals))
    with pytest.raises(ValueError, match="a_boundary points: 1 of 2 points are not on the"):
        build(a_boundary=(np.array([[0.0, 0.5], [0.5, 0.5]]), np.ones(2)))
    with pytest.raises(ValueError, match="initial: an initial state needs time=True"):
        build(initial=(obs, vals))
    with pytest.raises(ValueError, match="weights: unknown term 'boundary'"):
        build(weights={"boundary": 1.0})
    with pytest.raises(ValueError, match=r"weights\['pde'\] must be a non-negative"):
        build(weights={"pde": -1.0})
    with pytest.raises(ValueError, match="exact_u and exact_a go together"):
        build(exact_u=PINV.exact_u)
    with pytest.raises(ValueError, match="box must be"):
        build(box=((0.0, 1.0), (1.0, 0.0)))
    # a network must give (u, a): out_size=2
    task = build(a_boundary=bnd)
    with pytest.raises(ValueError, match="out_size"):
        train(MLP(2, "scalar", 4, 1, key=jr.PRNGKey(0)), task, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"net must return \(u, a\)"):
        task.loss(lambda z: z[0])
