"""Networks on cracked elastic bodies (issue 10's deep energy method): vector outputs trained on
an elasticity Task, near-tip input features, the hard Dirichlet ansatz, SIFs of a network."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import nmm
from experiments.cracks import griffith, near_tip
from nmm_nn import MLP, Task, covers, rectangle_ansatz, train


@pytest.fixture(scope="module")
def griffith_setup():
    dom, exact, form, ks = griffith(E=1.0)
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.5), dom, degree=1, components=2)
    return dom, exact, form, ks, V


def test_tip_features_are_the_cutoff_functions_and_jump_only_on_the_crack(griffith_setup):
    dom, *_ = griffith_setup
    tips = [nmm.Enrichment.crack_tip(dom, 0, e, functions="elastic", radius=0.6) for e in (0, -1)]
    net = MLP(2, 2, 8, 2, "tanh", key=jr.PRNGKey(0), features=tips)
    assert net.n_features == 8 and net.weights[0].shape == (8, 2 + 8)
    x = jnp.array([0.2, 0.1])
    want = jnp.concatenate([t.values(x) * t.cutoff(x) for t in tips])
    np.testing.assert_allclose(net.features(x), want, rtol=1e-14)
    # across the crack the features jump; across y = 0 beyond a tip (uncracked) they do not
    f = lambda x: net.features(jnp.asarray(x))  # noqa: E731
    assert float(jnp.max(jnp.abs(f([0.0, 1e-9]) - f([0.0, -1e-9])))) > 0.1
    for x0 in (0.5, -0.5, 0.95):
        np.testing.assert_allclose(f([x0, 1e-9]), f([x0, -1e-9]), atol=1e-6)
    assert net(x).shape == (2,)


def test_bad_features_and_transforms_are_named(griffith_setup):
    dom, *_ = griffith_setup
    key = jr.PRNGKey(0)
    no_radius = nmm.Enrichment.crack_tip(dom, 0, -1, functions="elastic")
    with pytest.raises(ValueError, match="has no radius"):
        MLP(2, 2, 8, 2, key=key, features=[no_radius])
    with pytest.raises(TypeError, match="features must be a callable"):
        MLP(2, 2, 8, 2, key=key, features=[1, 2])
    with pytest.raises(TypeError, match=r"features\(x\) failed"):
        MLP(2, 2, 8, 2, key=key, features=lambda x: x @ jnp.ones((3, 3)))
    with pytest.raises(TypeError, match=r"output_transform\(x, y\) failed"):
        MLP(2, 2, 8, 2, key=key, output_transform=lambda x: x)
    with pytest.raises(ValueError, match="must return the shape of y"):
        MLP(2, 2, 8, 2, key=key, output_transform=lambda x, y: jnp.sum(y))
    relu = MLP(2, "scalar", 8, 2, "relu", key=key, features=lambda x: x[:1] ** 2)
    with pytest.raises(ValueError, match="input features"):
        covers(relu, dom)


def test_rectangle_ansatz_meets_the_data_on_every_side(griffith_setup):
    _, exact, _, _, _ = griffith_setup
    net = MLP(
        2,
        2,
        16,
        2,
        "tanh",
        key=jr.PRNGKey(1),
        output_transform=rectangle_ansatz(exact, (-1, -1), (1, 1)),
    )
    s = np.linspace(-1, 1, 7)
    for x in [
        *[(t, -1.0) for t in s],
        *[(1.0, t) for t in s],
        *[(t, 1.0) for t in s],
        *[(-1.0, t) for t in s],
    ]:
        np.testing.assert_allclose(net(jnp.array(x)), exact(jnp.array(x)), atol=1e-15)
    assert float(jnp.max(jnp.abs(net(jnp.zeros(2)) - exact(jnp.zeros(2))))) > 0  # free inside
    with pytest.raises(ValueError, match="hi > lo"):
        rectangle_ansatz(exact, (0, 0), (0, 1))


def test_vector_network_trains_on_an_elasticity_task(griffith_setup):
    """A 2-output network on the elasticity functional (Nitsche boundary terms): the loss falls
    and the task's errors are reported; a scalar network is refused by name."""
    _, exact, form, _, V = griffith_setup
    task = Task.pde(form, V, exact=exact)
    net = MLP(2, 2, 16, 2, "tanh", key=jr.PRNGKey(0))
    trained, hist = train(net, task, steps=200, chunk=100, learning_rate=1e-2, progress=False)
    assert hist.loss[-1] < 1e-2 * hist.loss[0] and len(hist.errors["L2"]) == 2
    with pytest.raises(ValueError, match="out_size='scalar' does not match the task's 2"):
        train(MLP(2, "scalar", 8, 2, key=jr.PRNGKey(0)), task, steps=1, progress=False)


@pytest.mark.slow  # the callable path is in the fast suite through test_fracture's collinear test
def test_stress_intensity_of_a_callable_matches_the_field():
    """The interaction integral of a field and of the same field as a callable agree; the exact
    Williams field as a callable gives its K."""
    dom, exact, form = near_tip((0.0, 0.0), 1.3, -0.7)
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.5), dom, degree=1, components=2)
    u = nmm.solve(V, form)
    a = nmm.stress_intensity(u, form)
    b = nmm.stress_intensity(lambda x: u(x[None])[0], form, space=V)
    assert b.K_I == pytest.approx(a.K_I, rel=1e-10) and b.K_II == pytest.approx(a.K_II, rel=1e-10)
    k = nmm.stress_intensity(exact, form, space=V)
    assert abs(k.K_I - 1.3) < 1e-5 and abs(k.K_II + 0.7) < 1e-5
    with pytest.raises(TypeError, match="space: a callable u needs"):
        nmm.stress_intensity(exact, form)
    other = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.5), dom, degree=1, components=2)
    with pytest.raises(ValueError, match="leave space=None"):
        nmm.stress_intensity(u, form, space=other)
    with pytest.raises(TypeError, match="u must be an nmm.Field or a callable"):
        nmm.stress_intensity(3.0, form)
