"""Linear solves: singular high-order systems, sliver covers, condition estimates, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import manufactured

import nmm


def test_singular_high_order_system_is_solved_and_conditioned(dom2d):
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom2d, 0.3, offset=(0.3, 0.2)), dom2d, degree=2)
    exact = lambda x: jnp.cos(x[0]) * jnp.exp(x[1] / 2)  # noqa: E731
    u = nmm.solve(V, manufactured(exact), solver=nmm.linalg.SuperLU(condition=True))
    residual, iterations, cond = (float(s) for s in u.stats)
    assert residual < 1e-12 and 1 <= iterations <= 20
    # hats × polynomials are linearly dependent: the factored (perturbed) matrix is near 1/eps
    assert 1e8 < cond < 1e14
    assert nmm.errors(u, exact)["L2"] < 1e-3


@pytest.mark.slow  # fast: tests/test_high_order.py::test_sliver_cover
def test_sliver_covers_do_not_break_accuracy():
    """A square whose right edge leaves slivers of 1e-6 h in the last column of cover cells."""
    h = 0.1
    width = 1.0 + 1e-7
    dom = nmm.Domain.polygon([(0.0, 0.0), (width, 0.0), (width, 1.0), (0.0, 1.0)])
    mc = nmm.MathCover.triangles(dom, h, offset=(0.0, 0.33))
    exact = lambda x: jnp.sin(2 * x[0]) * jnp.cosh(x[1])  # noqa: E731
    for p in (0, 2):
        V = nmm.ManifoldSpace(mc, dom, degree=p)
        assert min(g.area for g in V.host.topology.elem_geom) < 1e-5 * h * h  # slivers exist
        u = nmm.solve(V, manufactured(exact))
        e = nmm.errors(u, exact)
        assert np.isfinite(e["L2"]) and e["L2"] < (5e-3 if p == 0 else 5e-5), e
        assert nmm.errors(nmm.fit(V, exact), exact)["L2"] < (5e-3 if p == 0 else 5e-5)


def test_non_finite_data_raises_instead_of_nan():
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.25), dom, degree=1)
    # the datum at fault is named, not only the system
    with pytest.raises(Exception, match=r"Poisson\.f is not finite at some points"):
        nmm.solve(V, nmm.Poisson(f=lambda x: jnp.log(x[0] - 0.5), dirichlet=0.0))
    with pytest.raises(Exception, match=r"L2Fit\.target is not finite at some points"):
        nmm.fit(V, lambda x: jnp.where(x[0] > 0.5, jnp.nan, 1.0))
    with pytest.raises(ValueError, match="values contains non-finite values"):
        nmm.fit(V, (jnp.array([[0.5, 0.5]]), jnp.array([jnp.inf])))
    with pytest.raises(ValueError, match=r"values must have shape \(2,\)"):
        nmm.fit(V, (jnp.array([[0.5, 0.5], [0.2, 0.2]]), jnp.array([1.0])))
    with pytest.raises(Exception, match="points: some sample points lie outside the domain"):
        nmm.fit(V, (jnp.array([[1.5, 0.5]]), jnp.array([1.0])))


def test_bad_problem_input():
    with pytest.raises(ValueError, match=r"bc must be one of .* got 'robin'"):
        nmm.Poisson(bc="robin")
    with pytest.raises(ValueError, match="k must be positive, got -1.0"):
        nmm.Poisson(k=-1.0)
    with pytest.raises(ValueError, match="f must be finite, got nan"):
        nmm.Poisson(f=float("nan"))
    with pytest.raises(TypeError, match="neumann must be a callable"):
        nmm.Poisson(neumann=1.0)
    with pytest.raises(ValueError, match=r"method must be one of .* got 'lu'"):
        nmm.SolverOptions(method="lu")
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.5), dom, degree=0)
    with pytest.raises(ValueError, match="no Dirichlet boundary and c = 0"):
        nmm.solve(V, nmm.Poisson(f=1.0))
    with pytest.raises(TypeError, match="problem must be an nmm.Poisson"):
        nmm.solve(V, "poisson")


def test_penalty_and_neumann_boundary_conditions():
    """Mixed problem: Dirichlet on x = 0, Neumann flux elsewhere; penalty converges to Nitsche."""
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1.2, 1), (0, 0.8)])
    exact = lambda x: jnp.exp(x[0]) * jnp.sin(x[1] + 0.3)  # noqa: E731
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.15, offset=(0.4, 0.1)), dom, degree=2)
    base = manufactured(exact)

    def problem(bc):
        return nmm.Poisson(
            f=base.f,
            dirichlet=exact,
            dirichlet_on=lambda m: m[:, 0] < 1e-9,
            neumann=lambda x, n: jnp.dot(jax.grad(exact)(x), n),
            bc=bc,
        )

    en = nmm.errors(nmm.solve(V, problem("nitsche")), exact)
    ep = nmm.errors(nmm.solve(V, problem("penalty")), exact)
    # measured L2 5.05e-7 (Nitsche), 5.85e-7 (penalty, β0 = 1e8: ratio 1.16); with β0 = 1e4 (a
    # penalty 1e4 times too weak) the penalty's error is 1.19e-6, ratio 2.4
    assert en["L2"] < 1e-6 and ep["L2"] < 1e-6, (en, ep)
    assert ep["L2"] < 1.5 * en["L2"], (en, ep)


def test_eager_host_solve_is_the_compiled_solve(monkeypatch):
    """An eager solve with SuperLU on a space without outer refinement (p = 0) factors and solves
    outside the compiled program (``drivers._host_solve``: the program then holds no callback and
    the persistent cache keeps it). Under ``jit`` it is one program with a callback. Both give the
    same field and the same diagnostics: values, result codes, a datum at fault named, and a
    nonlinear form (Newton) left to the one program."""
    from nmm import drivers

    calls, compiled = [], drivers._solve
    monkeypatch.setattr(drivers, "_solve", lambda *a, **k: calls.append(1) or compiled(*a, **k))
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 1 / 8), dom, degree=0)
    prob = nmm.Poisson(k=lambda x, th: 1 + th * x[0], f=1.0, dirichlet=0.0)
    u = nmm.solve(V, prob, params=0.5, solver="direct")
    assert calls == []  # the eager path
    u_jit = jax.jit(lambda th: nmm.solve(V, prob, params=th, solver="direct"))(0.5)
    assert calls == [1]
    np.testing.assert_allclose(u.coeffs, u_jit.coeffs, rtol=1e-13, atol=1e-15)
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(u.info), leaves(u_jit.info), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-8)
    assert int(u.info.result) == 0 and int(u.info.iterations) >= 1

    bad = nmm.Poisson(f=lambda x: jnp.log(x[0] - 0.5), dirichlet=0.0)
    with pytest.raises(Exception, match=r"Poisson\.f is not finite at some points"):
        nmm.solve(V, bad, solver="direct")
    assert calls == [1]
    code = int(nmm.solve(V, bad, solver="direct", throw=False).info.result)
    assert code == int(jax.jit(lambda: nmm.solve(V, bad, solver="direct", throw=False))().info.result)
    assert code >= nmm.RESULTS.nonfinite_data
    assert calls == [1, 1]  # the jitted one

    nmm.solve(V, nmm.Bratu(lam=1.0, dirichlet=0.0), solver="direct")
    assert calls == [1, 1, 1]  # Newton: the one program

    # a stable p = 3 space: the outer refinement with matrix-free residuals runs eagerly too
    V3 = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 1 / 3), dom, degree=3)
    assert V3.stable
    prob3 = nmm.Poisson(k=lambda x, th: 1 + th * x[0], f=lambda x, th: jnp.sin(3 * x[0]), dirichlet=0.0)
    u = nmm.solve(V3, prob3, params=0.5, solver="direct")
    assert len(calls) == 3
    u_jit = jax.jit(lambda th: nmm.solve(V3, prob3, params=th, solver="direct"))(0.5)
    pts = jnp.array([[0.3, 0.4], [0.7, 0.2], [0.5, 0.5]])
    np.testing.assert_allclose(u(pts), u_jit(pts), rtol=1e-12, atol=1e-15)
    assert int(u.info.result) == int(u_jit.info.result) == 0
    assert int(u.info.iterations) == int(u_jit.info.iterations)

    # the one program called eagerly (the default dense LU at this size) names a datum at fault
    # after the call, as the same solve under jit does inside its program
    with pytest.raises(Exception, match=r"Poisson\.f is not finite at some points"):
        nmm.solve(V, bad)
    eager = int(nmm.solve(V, bad, throw=False).info.result)
    assert eager == int(jax.jit(lambda: nmm.solve(V, bad, throw=False))().info.result) == code


def test_solve_inside_a_transformation_with_every_input_closed_over():
    """A form whose coefficient closes over the batched or differentiated parameter (nothing the
    solve is given is a tracer) still runs as the caller's transformation: vmap equals a loop with
    the host solver (the eager path must not take it) and with the dense LU, and grad equals a
    central difference with the host solver."""
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 1 / 6), dom, degree=0)

    for solver in ("direct", None):

        def coeffs(k, solver=solver):
            form = nmm.Poisson(k=lambda x: k * (1 + x[0]), f=1.0, dirichlet=0.0)
            return nmm.solve(V, form, solver=solver).coeffs

        ks = jnp.array([0.5, 2.5])
        batch = jax.vmap(coeffs)(ks)
        np.testing.assert_allclose(batch, np.stack([coeffs(k) for k in ks]), rtol=1e-12, atol=1e-15)
        if solver == "direct":  # the path whose eager branch converted a tracer (one grad: compile)
            g = jax.grad(lambda k: jnp.sum(coeffs(k)))(1.5)
            fd = (jnp.sum(coeffs(1.5 + 1e-5)) - jnp.sum(coeffs(1.5 - 1e-5))) / 2e-5
            np.testing.assert_allclose(g, fd, rtol=1e-6)
