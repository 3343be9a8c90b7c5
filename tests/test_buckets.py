"""Size buckets (nmm.buckets): spaces of one bucket share the compiled solve, and padding changes
no result."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nmm
from nmm import buckets, drivers


def test_bucket_sizes():
    assert [buckets.bucket(n) for n in (0, 1, 16, 17, 121, 144, 1000)] == [0, 1, 16, 18, 128, 144, 1024]
    n = np.arange(1, 100_000)
    b = np.array([buckets.bucket(int(k)) for k in n])
    assert np.all(b >= n) and np.all(b <= 1.125 * n)
    assert len(np.unique(b)) < 200  # few sizes: 8 per octave


def _compiles():
    count = {"n": 0}

    def listen(name, duration, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            count["n"] += 1

    jax.monitoring.register_event_duration_secs_listener(listen)
    return count


def _holed(cx):
    hole = [(cx, 0.4), (cx + 0.13, 0.4), (cx + 0.13, 0.53), (cx, 0.53)]
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)], holes=[hole])
    return nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=0.125), dom, degree=2)


@pytest.mark.parametrize("solver", [None, "direct"])
def test_a_space_of_the_same_bucket_does_not_recompile(solver):
    count = _compiles()
    exact = lambda x: jnp.sin(x[0]) * jnp.exp(x[1])  # noqa: E731 (harmonic)
    prob = nmm.Poisson(f=0.0, dirichlet=exact)
    V1, V2 = _holed(0.40), _holed(0.43)  # the hole moved: other cut, other counts
    assert V1.n_dofs != V2.n_dofs
    nmm.solve(V1, prob, solver=solver)
    before = count["n"]
    u2 = nmm.solve(V2, prob, solver=solver)
    assert count["n"] == before, "a space of the same bucket compiled again"
    # padding changes nothing: the unpadded space's own solve gives the same coefficients
    bd = drivers.boundary_data(V2, prob)
    lin = drivers.default_solver(V2) if solver is None else nmm.linalg.SuperLU()
    x, _ = drivers._solve(V2, prob, None, bd, None, lin, nmm.Newton(), None, True)
    # (coefficients of p = 2 are not unique: a dense LU of the padded matrix pivots otherwise;
    # the fields agree)
    pts = jnp.array([[0.1, 0.2], [0.3, 0.8], [0.9, 0.45], [0.55, 0.35]])
    field = nmm.Field(V2, x)
    np.testing.assert_allclose(np.asarray(u2(pts)), np.asarray(field(pts)), rtol=0, atol=1e-11)
    # and the padded solve's coefficients solve the space's own system (the coefficients of a
    # stable p = 2 space are unique only up to rounding in its near-null directions: two solves
    # of one system, eager and compiled, differed there by 4e-6 while the fields agree to 1e-11)
    K, R = nmm.assemble(V2, prob)
    r = np.asarray(K.mv(u2.coeffs) + R)
    assert np.linalg.norm(r) <= 1e-10 * np.linalg.norm(np.asarray(R))
    assert float(nmm.errors(u2, exact)["L2"]) < 1e-4


@pytest.mark.parametrize("solver", ["cg", nmm.linalg.DenseLU()])
def test_padded_covers_stay_zero_with_every_solver(solver):
    V = _holed(0.43)
    view = buckets.solve_view(V)
    assert view.n_dofs > V.n_dofs  # there is padding to check
    exact = lambda x: x[0] + 2 * x[1]  # noqa: E731
    u = nmm.solve(V, nmm.Poisson(f=0.0, dirichlet=exact), solver=solver)
    assert u.coeffs.shape == (V.n_dofs,)
    assert float(nmm.errors(u, exact)["L2"]) < 1e-6
