"""Block operators and solver objects: products against scipy, solvers against each other,
factorisations kept (the adjoint and repeated solves factor once), result codes per batch member."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nmm
import nmm.linalg.superlu as superlu
from nmm.linalg import CG, BiCGStab, DenseLU, SuperLU, linear_solve


class Convection(nmm.Form):
    def residual(self, x, u, du, params):
        return jnp.array([3.0, -1.0]) @ du - 1.0, 0.2 * du


@pytest.fixture(scope="module")
def systems():
    dom = nmm.Domain.polygon(
        [(0, 0), (1, 0), (1, 1), (0, 1)], holes=[[(0.3, 0.3), (0.6, 0.35), (0.5, 0.6)]]
    )
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.2, offset=(0.2, 0.1)), dom, degree=1)
    sym = nmm.assemble(V, nmm.Poisson(f=1.0, dirichlet=lambda x: x[0]))
    nonsym = nmm.assemble(V, Convection(dirichlet=0.0))
    return V, sym, nonsym


def test_operator_products_match_scipy(systems):
    _, (K, _), (C, _) = systems
    x = np.random.default_rng(0).standard_normal(K.shape[0])
    for op in (K, C):
        A = op.to_scipy()
        np.testing.assert_allclose(op.mv(jnp.asarray(x)), A @ x, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(op.T.mv(jnp.asarray(x)), A.T @ x, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(op.T.to_scipy().toarray(), A.T.toarray(), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(op.to_dense(), A.toarray(), rtol=0, atol=1e-15)
        # the block-Jacobi preconditioner's blocks are the dense matrix's diagonal blocks
        # (a wrong fill there only slows CG down: no solution test sees it; mutation testing)
        b = op.block_size
        dense = A.toarray()
        blocks = [dense[i * b : (i + 1) * b, i * b : (i + 1) * b] for i in range(op.n_block_rows)]
        np.testing.assert_array_equal(op.diagonal_blocks(), np.stack(blocks))
        np.testing.assert_allclose(op.to_bcoo() @ jnp.asarray(x), A @ x, rtol=1e-12, atol=1e-12)
    assert K.symmetric and not C.symmetric
    assert abs(C.to_scipy() - C.to_scipy().T).max() > 0.1


@pytest.mark.parametrize("which", ["sym", "nonsym"])
def test_solvers_agree(systems, which):
    _, (K, R), (C, Rc) = systems
    op, b = (K, -R) if which == "sym" else (C, -Rc)
    ref = linear_solve(op, b, SuperLU()).value
    A = op.to_scipy()
    assert np.linalg.norm(A @ np.asarray(ref) - np.asarray(b)) <= 1e-10 * np.linalg.norm(b)
    for solver in (DenseLU(), BiCGStab()) + ((CG(),) if which == "sym" else ()):
        x = linear_solve(op, b, solver).value
        # p = 1 coefficients are not unique (hats × P1 are dependent): compare A x
        np.testing.assert_allclose(A @ np.asarray(x), np.asarray(b), rtol=0, atol=1e-8 * np.abs(b).max())
    sol = linear_solve(op, b, SuperLU())
    assert int(sol.result) == 0 and sol.residual < 1e-12 and sol.iterations >= 1
    with pytest.raises(ValueError, match="CG needs a symmetric operator"):
        if which == "nonsym":
            linear_solve(op, b, CG())
        else:
            raise ValueError("CG needs a symmetric operator")


def test_dense_lu_reports_no_condition_unless_asked(systems):
    """``condition`` is -1 when not computed, and numpy's 1-norm condition of the factored
    matrix (unit diagonal, + eps I) when asked for; found by mutation testing."""
    _, (K, R), _ = systems
    A = np.asarray(K.to_dense())
    d = 1.0 / np.sqrt(np.diag(A))
    eps = nmm.linalg.DenseLU().eps
    ref = np.linalg.cond(d[:, None] * A * d[None, :] + eps * np.eye(len(d)), 1)
    plain = nmm.linalg.linear_solve(K, -R, nmm.linalg.DenseLU())
    assert float(plain.condition) == -1.0
    asked = nmm.linalg.linear_solve(K, -R, nmm.linalg.DenseLU(condition=True))
    # the inverse of a matrix of condition κ ≈ 2e13 is known to κ·u ≈ 2e-3 relative: rounding
    # (compiler flags, FMA) moves the estimate by that much, a missing ε would move it by O(1)
    assert ref > 1e12
    np.testing.assert_allclose(float(asked.condition), ref, rtol=1e-2)


def test_linear_solve_gradient_non_symmetric(systems):
    """d/dθ of x(θ) = A(θ)⁻¹ b(θ) with A non-symmetric: the adjoint must solve with Aᵀ."""
    _, _, (C, Rc) = systems
    D = C.to_dense()
    pick = jnp.asarray(np.random.default_rng(1).standard_normal(C.shape[0]))

    def loss(t):
        op = nmm.linalg.BlockCSR(
            C.data * (1 + t[0]) + t[1] * jnp.eye(C.block_size), C.rows, C.cols, C.pattern
        )
        return pick @ linear_solve(op, -Rc * (1 + t[2]), SuperLU()).value

    t = jnp.array([0.1, 0.3, -0.2])
    g = jax.grad(loss)(t)
    h = 1e-6
    fd = np.array([(loss(t + h * e) - loss(t - h * e)) / (2 * h) for e in jnp.eye(3)])
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    assert D.shape[0] == C.shape[0]


def test_factorisation_is_kept(systems):
    """Repeated solves with one state and the adjoint of a solve factor once."""
    V, (K, R), _ = systems
    start = nmm.linalg.factorisations()
    solver = SuperLU(condition=False)
    state = solver.init(K)
    xs = [linear_solve(K, -R * (1 + 0.1 * i), solver, state=state).value for i in range(5)]
    assert nmm.linalg.factorisations() - start == 1
    for i, x in enumerate(xs):  # (coefficients are not unique: check the equations)
        np.testing.assert_allclose(K.mv(x), -R * (1 + 0.1 * i), atol=1e-10 * float(jnp.abs(R).max()))
    # the adjoint of nmm.solve reuses the forward factorisation (one factorisation in all)
    start = nmm.linalg.factorisations()
    prob = nmm.Poisson(k=lambda x, th: th[0] + th[1] * x[0], f=1.0, dirichlet=lambda x, th: 0.0)
    pts = jnp.array([[0.5, 0.8], [0.9, 0.1]])
    val, grad = jax.value_and_grad(
        lambda th: jnp.sum(nmm.solve(V, prob, params=th, solver="direct")(pts) ** 2)
    )(jnp.array([1.0, 0.5]))
    assert nmm.linalg.factorisations() - start == 1 and np.all(np.isfinite(grad))
    # a dropped cache entry costs a refactorisation, never a wrong answer
    start = nmm.linalg.factorisations()
    state = solver.init(K)
    nmm.linalg.clear_factor_cache()
    x = linear_solve(K, -R, solver, state=state).value
    assert nmm.linalg.factorisations() - start == 2
    np.testing.assert_allclose(K.mv(x), -R, atol=1e-10 * float(jnp.abs(R).max()))


def test_vmap_with_one_infeasible_member(systems):
    """throw=False: a member with k < 0 somewhere is flagged; the 15 others equal their solo solves
    (to rounding)."""
    V, _, _ = systems
    prob = nmm.Poisson(
        k=lambda x, th: th[0] + th[1] * x[0], f=lambda x, th: 1.0 + x[1], dirichlet=lambda x, th: 0.0
    )
    pts = jnp.array([[0.5, 0.8], [0.2, 0.2], [0.75, 0.5], [0.9, 0.1]])
    ths = (
        jnp.stack([jnp.array([1.0 + 0.1 * i, 0.5]) for i in range(16)]).at[5].set(jnp.array([0.2, -1.0]))
    )

    def one(th):
        u = nmm.solve(V, prob, params=th, throw=False)
        return u(pts), u.info.result

    vals, codes = jax.vmap(one)(ths)
    assert list(np.nonzero(np.asarray(codes))[0]) == [5]
    assert int(codes[5]) == nmm.RESULTS.not_elliptic
    for i in range(16):
        if i != 5:
            # equal to rounding: the batched matrix-free residuals of nmm.refine (p = 1) reduce
            # in another order than the solo ones (measured 1.8e-16 relative)
            np.testing.assert_allclose(vals[i], one(ths[i])[0], rtol=1e-13, atol=0)
    with pytest.raises(Exception, match="not elliptic"):
        jax.vmap(lambda th: nmm.solve(V, prob, params=th).coeffs)(ths)


def test_failures_are_codes_not_nans(systems):
    _, (K, R), _ = systems
    zero = nmm.linalg.BlockCSR(jnp.zeros_like(K.data), K.rows, K.cols, K.pattern, symmetric=True)
    sol = linear_solve(zero, -R, SuperLU(eps=0.0), throw=False)
    assert int(sol.result) in (nmm.RESULTS.singular, nmm.RESULTS.residual_too_large)
    for solver in (SuperLU(), DenseLU(), CG()):  # NaN data is reported, never solved as zero
        bad = linear_solve(K, -R.at[0].set(jnp.nan), solver, throw=False)
        assert int(bad.result) == nmm.RESULTS.nonfinite, solver
    with pytest.raises(Exception, match="non-finite"):
        linear_solve(K, -R.at[0].set(jnp.nan), SuperLU())
    with pytest.raises(ValueError, match=r"b must have shape \("):
        linear_solve(K, jnp.zeros(3))
    with pytest.raises(TypeError, match="solver must be"):
        linear_solve(K, -R, solver=42)


def test_without_64_bit_floats(tmp_path):
    """NMM_KEEP_X64=0 leaves JAX in 32-bit mode: the default solver still runs (its callback
    returns no 64-bit integers)."""
    import os
    import subprocess
    import sys

    code = (
        "import jax.numpy as jnp, nmm\n"
        "dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])\n"
        "V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.25), dom, degree=1)\n"
        "u = nmm.solve(V, nmm.Poisson(f=1.0, dirichlet=0.0))\n"
        "print(u.coeffs.dtype, float(u(jnp.array([0.5, 0.5]))))\n"
    )
    env = {**os.environ, "NMM_KEEP_X64": "0", "JAX_ENABLE_X64": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    dtype, value = out.stdout.split()
    assert dtype == "float32" and abs(float(value) - 0.0737) < 2e-3  # -Δu = 1: u(½, ½) ≈ 0.0737


def test_batched_host_solves_run_on_threads_and_factor_each_member_once(monkeypatch):
    """A vmap of solves with different matrices: the threaded host path gives the sequential
    answers, and a batch above the cache's 16 entries factors each member once (the batch's
    factors do not evict each other before their solves)."""
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=0.25), dom, degree=1)
    prob = nmm.Poisson(k=lambda x, t: 1.0 + t * x[0], f=lambda x, t: 1.0, dirichlet=lambda x, t: 0.0)
    pts = jnp.array([[0.3, 0.4], [0.7, 0.2], [0.5, 0.5]])
    # (solver="direct": below 512 unknowns the default is the dense LU in JAX)
    batched = jax.jit(jax.vmap(lambda t: nmm.solve(V, prob, params=t, solver="direct")(pts)))
    thetas = jnp.linspace(0.0, 2.0, 20)
    batched(thetas)  # compile
    nmm.linalg.clear_factor_cache()
    monkeypatch.setenv("NMM_HOST_THREADS", "1")
    before = nmm.linalg.factorisations()
    seq = batched(thetas)
    assert nmm.linalg.factorisations() - before == 20
    monkeypatch.setenv("NMM_HOST_THREADS", "2")
    before = nmm.linalg.factorisations()
    par = batched(thetas)
    assert nmm.linalg.factorisations() - before == 20
    np.testing.assert_allclose(par, seq, rtol=1e-12, atol=1e-14)
    one = jax.jit(lambda t: nmm.solve(V, prob, params=t, solver="direct")(pts))
    np.testing.assert_allclose(par[7], one(thetas[7]), rtol=1e-10, atol=1e-13)
    monkeypatch.setenv("NMM_HOST_THREADS", "zero")
    with pytest.raises(ValueError, match="NMM_HOST_THREADS"):
        superlu.host_threads()


def test_segment_sum_nodiff_batches_like_segment_sum():
    """The solvers' scatter (batch axis last under vmap) gives segment_sum's values: one vmap,
    nested vmaps, segment ids batched too, out-of-range ids dropped, trailing block axes."""
    from nmm.linalg.operator import segment_sum_nodiff

    rng = np.random.default_rng(3)
    ids = jnp.asarray(np.append(rng.integers(0, 7, 40), 9))  # 9: out of range, dropped
    y = jnp.asarray(rng.normal(size=(3, 2, 41, 2)))
    ref = jax.vmap(jax.vmap(lambda v: jax.ops.segment_sum(v, ids, 7)))(y)
    got = jax.jit(jax.vmap(jax.vmap(lambda v: segment_sum_nodiff(v, ids, 7))))(y)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-14)
    got1 = jax.vmap(lambda v: segment_sum_nodiff(v, ids, 7))(y[0])
    np.testing.assert_allclose(np.asarray(got1), np.asarray(ref[0]), atol=1e-14)
    many = jnp.stack([ids, ids[::-1]])
    got2 = jax.vmap(lambda v, i: segment_sum_nodiff(v, i, 7))(y[0], many)
    ref2 = jax.vmap(lambda v, i: jax.ops.segment_sum(v, i, 7))(y[0], many)
    np.testing.assert_allclose(np.asarray(got2), np.asarray(ref2), atol=1e-14)


def test_factor_and_solve_is_init_then_solve_and_keeps_no_factor(systems):
    """The stateless forward solve (one host call) gives what init + solve(last=True) gives, per
    batch member, codes included, and leaves no factorisation in the cache."""
    _, (K, R), (N, Rn) = systems
    for op, rhs in ((K, -R), (N, -Rn)):
        solver = SuperLU()
        x, code, res, its, cond = solver.factor_and_solve(op, rhs)
        state = solver.init(op)
        y, code2, res2, its2 = solver.solve(state, rhs, last=True)
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-15)
        assert int(code) == int(code2) == 0 and int(its) == int(its2) and float(cond) == -1.0
    scales = jnp.array([1.0, 2.0, 0.5])
    entries = len(superlu.FACTORS._entries)
    before = nmm.linalg.factorisations()

    def scaled(s):
        return nmm.linalg.BlockCSR(s * K.data, K.rows, K.cols, K.pattern, symmetric=True)

    xs, codes = jax.vmap(lambda s: SuperLU().factor_and_solve(scaled(s), -R)[:2])(scales)
    assert nmm.linalg.factorisations() - before == 3
    assert len(superlu.FACTORS._entries) == entries  # nothing kept
    assert not np.any(np.asarray(codes))
    for i, s in enumerate(scales):
        op = scaled(s)
        np.testing.assert_allclose(
            xs[i], SuperLU().solve(SuperLU().init(op), -R, last=True)[0], rtol=1e-13, atol=1e-15
        )
    zero = nmm.linalg.BlockCSR(jnp.zeros_like(K.data), K.rows, K.cols, K.pattern, symmetric=True)
    assert int(SuperLU(eps=0.0).factor_and_solve(zero, -R)[1]) in (
        nmm.RESULTS.singular,
        nmm.RESULTS.residual_too_large,
    )
    bad = SuperLU().factor_and_solve(K, -R.at[0].set(jnp.nan))
    assert int(bad[1]) == nmm.RESULTS.nonfinite


def test_host_threads_hold_blas_to_one_thread():
    """SuperLU's OpenBLAS runs on one thread while the host kernels run (its own threads slowed
    SuperLU down and oversubscribed the cores), and gets its setting back afterwards."""
    from threadpoolctl import threadpool_info

    def blas_threads(_):
        return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})

    outside = blas_threads(None)
    assert superlu._map(blas_threads, [0]) == [[1]]
    assert superlu._map(blas_threads, [0, 1, 2]) == [[1]] * 3
    assert blas_threads(None) == outside


def test_host_layout_builds_the_scipy_matrix():
    """The cached CSC layout of a block pattern gives scipy's matrix, repeated blocks summed (a
    bucketed space's padding), and the factor of it solves like one from scipy's own matrix."""
    from nmm.linalg.operator import to_scipy

    rng = np.random.default_rng(0)
    rows = np.array([0, 0, 1, 1, 2, 2, 2, 2])  # the last block repeats (2, 2)
    cols = np.array([0, 1, 0, 1, 1, 2, 2, 2])
    data = rng.normal(size=(8, 3, 3))
    data[[0, 3, 5]] += 10 * np.eye(3)
    layout = superlu._Layout.of_blocks(rows, cols, 3, 3)
    want = to_scipy(data, rows, cols, 3)
    s, v = layout.scaled(data)
    np.testing.assert_allclose(s, 1 / np.sqrt(np.abs(want.diagonal())))
    np.testing.assert_allclose(
        layout.csc(v).toarray(), (want.multiply(np.outer(s, s))).toarray(), rtol=1e-14
    )
    opts = SuperLU()._opts(3)
    b = rng.normal(size=9)
    x = superlu._refine(layout.factor(data, False, opts), layout.csc(v), b, False, opts)[0]
    np.testing.assert_allclose(want @ x, b, rtol=1e-10, atol=1e-12)
