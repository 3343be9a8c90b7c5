"""The CHOLMOD backend (optional extra ``nmm[cholmod]``, cvxopt): skipped where cvxopt is not
installed; the message that names the extra is checked everywhere."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_same_solution, backend_problem, poisson_loss

import nmm
from nmm.linalg import cholmod as _cholmod_module

# cvxopt is the optional extra nmm[cholmod] (GPL-3, not a core dependency). `make test` installs
# it with the dev extra, so these run in CI; an install without the extra skips them
_REASON = "nmm.linalg.Cholesky needs cvxopt, the optional extra nmm[cholmod] (not installed)"


def _problem(h, degree, stable=None):
    return backend_problem(h, degree, hole=True, stable=stable)


def test_missing_cvxopt_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cvxopt", None)  # import fails as if not installed
    _cholmod_module._cholmod.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install nmm\[cholmod\]"):
            nmm.linalg.Cholesky()
        with pytest.raises(ImportError, match=r"nmm\[cholmod\]"):
            nmm.solve(*_problem(0.25, 0)[:2], solver="cholesky")
    finally:
        _cholmod_module._cholmod.cache_clear()


def test_unknown_solver_string_lists_cholesky():
    V, prob, _ = _problem(0.25, 0)
    with pytest.raises(ValueError, match=r"solver must be one of .*'cholesky'.* got 'mumps'"):
        nmm.solve(V, prob, solver="mumps")


@pytest.mark.parametrize(("degree", "stable"), [(0, None), (2, None), (2, False)])
def test_cholesky_is_superlu_in_values_gradients_and_vmap(degree, stable):
    """Same refined solution as SuperLU (a cut domain; p = 2 stable, and p = 2 plain, whose
    singular system CHOLMOD meets with ε on the diagonal); its gradient (the adjoint reuses the
    factor) and a vmap against a loop."""
    pytest.importorskip("cvxopt", reason=_REASON)
    V, prob, exact = _problem(0.1, degree, stable)
    u_ref = nmm.solve(V, prob, solver="direct")
    made = []  # CHOLMOD factors the system itself (no fallback to LU)
    real = _cholmod_module._CholmodFactor.__init__

    def counting(self, a):
        real(self, a)
        made.append(a.shape[0])

    _cholmod_module._CholmodFactor.__init__ = counting
    try:
        u = nmm.solve(V, prob, solver="cholesky")
    finally:
        _cholmod_module._CholmodFactor.__init__ = real
    assert made, "the solve fell back to LU"
    assert int(u.info.result) == 0
    pts = jnp.array([[0.3, 0.2], [0.7, 0.2], [0.5, 0.9]])
    assert_same_solution(u, u_ref, exact, pts, rtol=1e-9)
    loss = poisson_loss(V, prob, pts)

    chol = nmm.linalg.Cholesky()
    g = jax.grad(loss)(1.3, chol)
    g_ref = jax.grad(loss)(1.3, nmm.linalg.SuperLU())
    np.testing.assert_allclose(float(g), float(g_ref), rtol=1e-8)
    d = 1e-5
    fd = (loss(1.3 + d, chol) - loss(1.3 - d, chol)) / (2 * d)
    np.testing.assert_allclose(float(g), float(fd), rtol=1e-6)

    ks = jnp.array([0.7, 1.0, 2.5])
    batched = jax.vmap(lambda k: loss(k, chol))(ks)
    looped = jnp.stack([loss(k, chol) for k in ks])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-10)


def test_cholesky_falls_back_to_lu_where_it_does_not_apply():
    """An indefinite matrix (CHOLMOD meets a negative pivot) and a non-symmetric one are factored
    by SuperLU: the same solutions as SuperLU's."""
    pytest.importorskip("cvxopt", reason=_REASON)
    import scipy.sparse as sp

    from nmm.linalg.superlu import _factor, _refine

    rng = np.random.default_rng(0)
    n = 40
    lap = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1])
    indefinite = (lap - 0.5 * sp.eye(n)).tocsc()  # eigenvalues on both sides of zero
    skew = (lap + 0.3 * sp.diags([np.ones(n - 1)], [1])).tocsc()
    b = rng.standard_normal(n)
    for a, symmetric in ((indefinite, True), (skew, False)):
        f = _factor(a, symmetric, nmm.linalg.Cholesky(max_iter=20)._opts(1))
        assert not isinstance(f.lu, _cholmod_module._CholmodFactor)
        x, res, _, met = _refine(f, f.a, b, False, nmm.linalg.Cholesky()._opts(1))
        np.testing.assert_allclose(a @ x, b, atol=1e-10 * np.linalg.norm(b))
    f = _factor(lap.tocsc(), True, nmm.linalg.Cholesky()._opts(1))
    assert isinstance(f.lu, _cholmod_module._CholmodFactor)
    B = rng.standard_normal((n, 3))  # several right-hand sides, as SuperLU's solve takes them
    A = f.a.toarray()
    np.testing.assert_allclose(A @ f.lu.solve(B), B, atol=1e-8 * np.abs(B).max())


def test_cholesky_takes_a_nonsymmetric_newton_tangent():
    """A nonlinear form whose tangent is not symmetric (k(u)∇u, Newton) solves with
    ``solver="cholesky"`` as with SuperLU (the tangent goes to LU)."""
    pytest.importorskip("cvxopt", reason=_REASON)
    V, _, exact = _problem(0.2, 1)
    prob = nmm.NonlinearDiffusion(f=lambda x: 4.0 + x[0], dirichlet=0.0)
    u = nmm.solve(V, prob, solver="cholesky")
    u_ref = nmm.solve(V, prob, solver="direct")
    np.testing.assert_allclose(np.asarray(u.coeffs), np.asarray(u_ref.coeffs), atol=1e-10)
