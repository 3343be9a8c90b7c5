"""Bad input to the engine: every class of defect gets a clear error (or warning) that names the
argument and the offending value, raised before tracing where possible; never a silent wrong
answer. (Training, checkpoints and the CLI: tests/test_checkpoints.py, tests/test_cli_errors.py.)"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nmm
import nmm.checks

SQUARE = [(0, 0), (1, 0), (1, 1), (0, 1)]


@pytest.fixture(scope="module")
def dom():
    return nmm.Domain.polygon(SQUARE)


@pytest.fixture(scope="module")
def V(dom):
    # p = 0: the checks do not depend on the order, and p = 0 solves compile fastest (the outer
    # refinement of p >= 1 has its own test below)
    return nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=0.25), dom, degree=0)


# ------------------------------------------------------------------ numbers that are not numbers


@pytest.mark.parametrize(
    "build, exc, match",
    [
        (
            lambda: nmm.Domain.polygon([("a", 0), (1, 0), (1, 1)]),
            TypeError,
            r"outer must be numbers, got .*'a'",
        ),
        (
            lambda: nmm.Domain.polygon([(0, 0), (1 + 1j, 0), (1, 1)]),
            TypeError,
            r"outer must be real numbers.*1\+1j",
        ),
        (
            lambda: nmm.Domain.polygon(SQUARE, holes=[[(0.2, 0.2), (0.4, "b"), (0.3, 0.4)]]),
            TypeError,
            r"holes\[0\] must be numbers, got .*'b'",
        ),
        (
            lambda: nmm.Domain.polygon(SQUARE, cracks=[[(0.2, 0.2), (0.5, 0.5j)]]),
            TypeError,
            r"cracks\[0\] must be real numbers",
        ),
        (lambda: nmm.Domain.interval("0", 1), TypeError, r"a must be numbers, got the string '0'"),
        (
            lambda: nmm.Domain.polygon([(0, 0), (1, 0), (1, np.nan)]),
            ValueError,
            r"outer contains non-finite coordinates",
        ),
    ],
)
def test_coordinates_must_be_real_numbers(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"h": "0.1"}, TypeError, r"h must be a positive number, got '0.1'"),
        ({"h": 0.1 + 0j}, TypeError, r"h must be a positive number, got \(0.1\+0j\)"),
        ({"h": True}, TypeError, r"h must be a positive number, got True"),
        ({"h": float("nan")}, ValueError, r"h must be a positive number, got nan"),
        ({"h": -0.1}, ValueError, r"h must be a positive number, got -0.1"),
        (
            {"h": 0.25, "offset": (np.nan, 0)},
            ValueError,
            r"offset must be two fractions in \[0, 1\), got \(nan, 0\)",
        ),
        ({"h": 0.25, "offset": ("a", 0)}, TypeError, r"offset must be numbers, got .*'a'"),
    ],
)
@pytest.mark.parametrize("kind", ["triangles", "grid"])
def test_cover_size_arguments(dom, kind, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        getattr(nmm.MathCover, kind)(dom, **kwargs)


def test_points_must_be_real_numbers(V):
    u = nmm.fit(V, lambda x: x[0])
    with pytest.raises(TypeError, match=r"x must be numbers, got .*'a'"):
        u([["a", "b"]])
    with pytest.raises(TypeError, match=r"x must be real numbers, got complex values"):
        u(np.array([[0.5 + 1j, 0.5]]))
    with pytest.raises(TypeError, match=r"points must be numbers, got .*'a'"):
        nmm.fit(V, ([["a", 0.5]], [1.0]))


# ------------------------------------------------------------------ silent wrong answers, closed


def test_complex_data_is_refused_not_cast(V):
    with pytest.raises(TypeError, match=r"values must be real numbers, got complex values"):
        nmm.fit(V, (jnp.array([[0.5, 0.5]]), jnp.array([1 + 1j])))
    with pytest.raises(TypeError, match=r"L2Fit\.target returns complex values \(dtype complex128\)"):
        nmm.fit(V, lambda x: (1 + 1j) * x[0])
    with pytest.raises(TypeError, match=r"Poisson\.f returns complex values"):
        nmm.solve(V, nmm.Poisson(f=lambda x: 1j * x[0], dirichlet=0.0))


def test_fit_with_no_samples_is_an_error_not_zero(V):
    with pytest.raises(ValueError, match=r"points: no samples given \(points has shape \(0, 2\)\)"):
        nmm.fit(V, (jnp.zeros((0, 2)), jnp.zeros((0,))))


def test_errors_refuse_a_non_finite_exact_solution(V):
    u = nmm.fit(V, lambda x: x[0])
    with pytest.raises(ValueError, match=r"errors: exact is not finite at \d+ of \d+ quadrature points"):
        nmm.errors(u, lambda x: jnp.where(x[0] > 0.5, jnp.nan, x[0]))
    with pytest.raises(ValueError, match=r"errors: exact_grad is not finite"):
        nmm.errors(u, lambda x: x[0], exact_grad=lambda x: jnp.array([jnp.inf, 0.0]))
    # a finite exact solution still gives numbers: x is in the space (p = 1), so to round-off
    assert nmm.errors(u, lambda x: x[0])["L2"] < 1e-12


def test_sign_changing_coefficient_is_reported_not_solved(V):
    """k = x - 1/2 changes sign: the problem is ill-posed (it solved to u = -10 for data in
    [0, 2] before the ellipticity check)."""
    with pytest.raises(Exception, match=r"Poisson: the form is not elliptic at some quadrature points"):
        nmm.solve(V, nmm.Poisson(k=lambda x: x[0] - 0.5, f=1.0, dirichlet=0.0))
    u = nmm.solve(V, nmm.Poisson(k=lambda x: x[0] - 0.5, f=1.0, dirichlet=0.0), throw=False)
    assert int(u.info.result) == nmm.RESULTS.not_elliptic and not bool(u.info.ok)


@pytest.mark.parametrize(
    "prob, name",
    [
        (
            lambda: nmm.Poisson(k=lambda x: jnp.where(x[0] > 0.5, jnp.nan, 1.0), f=1.0, dirichlet=0.0),
            r"Poisson\.k",
        ),
        (
            lambda: nmm.Poisson(f=1.0, c=lambda x: jnp.where(x[1] > 0.7, jnp.inf, 0.0), dirichlet=0.0),
            r"Poisson\.c",
        ),
        (lambda: nmm.Poisson(f=lambda x: jnp.log(x[0] - 0.5), dirichlet=0.0), r"Poisson\.f"),
        (lambda: nmm.Poisson(f=1.0, dirichlet=lambda x: jnp.log(x[0] - 0.5)), r"Poisson\.dirichlet"),
        (
            lambda: nmm.Poisson(
                f=1.0,
                dirichlet=nmm.Dirichlet(0.0, on=lambda p: p[:, 0] < 1e-9),
                neumann=nmm.Neumann(lambda x, n: jnp.nan, on=lambda p: p[:, 0] > 1 - 1e-9),
            ),
            r"Poisson\.neumann",
        ),
    ],
)
def test_non_finite_datum_is_named(V, prob, name):
    """NaN in k was blamed on f; now the datum at fault is named (and the code says which)."""
    with pytest.raises(Exception, match=name + " is not finite at some points where it is used"):
        nmm.solve(V, prob())
    u = nmm.solve(V, prob(), throw=False)
    assert int(u.info.result) >= nmm.RESULTS.nonfinite_data


def test_boundary_datum_non_finite_off_its_part_is_fine(V):
    """log(x) is NaN at x = 0, but the Dirichlet condition holds only on x = 1: no error."""
    on_right = lambda p: p[:, 0] > 1 - 1e-9  # noqa: E731
    prob = nmm.Poisson(
        f=0.0,
        dirichlet=[
            nmm.Dirichlet(lambda x: jnp.log(x[0]), on=on_right),
            nmm.Dirichlet(0.0, on=lambda p: p[:, 0] < 1e-9),
        ],
    )
    u = nmm.solve(V, prob)
    assert np.all(np.isfinite(np.asarray(u.coeffs)))
    # log(1) = 0 on the right and 0 on the left, f = 0, natural elsewhere: u = 0
    assert float(jnp.max(jnp.abs(u(jnp.array([[0.5, 0.5], [0.9, 0.2]]))))) < 1e-10


def test_singular_problem_says_why(V):
    """A callable c that is 0 everywhere and no Dirichlet boundary: the solve fails and the
    message says the form has no Dirichlet boundary (it said only 'linear solve failed')."""
    with pytest.raises(Exception, match=r"Poisson has no Dirichlet boundary here"):
        nmm.solve(V, nmm.Poisson(f=1.0, c=lambda x: 0.0 * x[0]))
    with pytest.raises(
        ValueError,
        match=r"no Dirichlet boundary and c = 0 \(no Dirichlet data, or "
        r"dirichlet_on selects no boundary piece\)",
    ):
        nmm.solve(V, nmm.Poisson(f=1.0, dirichlet=nmm.Dirichlet(0.0, on=lambda p: p[:, 0] > 5)))


def test_wrong_signature_of_a_datum_names_it(V):
    with pytest.raises(
        TypeError, match=r"Poisson\.f is called as Poisson\.f\(x\), but missing a required argument: 'y'"
    ):
        nmm.solve(V, nmm.Poisson(f=lambda x, y: 1.0, dirichlet=0.0))
    with pytest.raises(TypeError, match=r"Poisson\.k is called as Poisson\.k\(x, params\)"):
        nmm.solve(V, nmm.Poisson(k=lambda x: 1.0, f=1.0, dirichlet=0.0), params=jnp.ones(2))


# ------------------------------------------------------------------ long work is announced


def test_huge_cover_is_refused_before_allocating(dom):
    """h = 1e-5 used to die in numpy asking for 74.5 GiB."""
    with pytest.raises(
        MemoryError,
        match=r"MathCover\.triangles\(h=1e-05\) would need about .* GiB "
        r"\(2e\+10 cells\).*memory_limit_gib",
    ):
        nmm.MathCover.triangles(dom, h=1e-5)
    with pytest.raises(MemoryError, match=r"MathCover\.intervals would need"):
        nmm.MathCover.intervals(nmm.Domain.interval(0, 1), n=10**11)


def test_expensive_space_is_estimated_before_building(dom):
    """Degree 40 on a 2D cover ran past a minute at 3 GB without a word: it is estimated
    (unknowns, local matrices, basis at the quadrature points) before anything is built."""
    mc = nmm.MathCover.triangles(dom, h=0.5)
    with pytest.raises(
        MemoryError,
        match=r"ManifoldSpace\(degree=40\) would need about 3\.\d+ GiB "
        r"\(7\.75e\+03 unknowns, 2583 local functions on each of 8 cells\)",
    ):
        nmm.ManifoldSpace(mc, dom, degree=40, memory_limit_gib=1.0)


def test_large_space_warns(dom, monkeypatch):
    monkeypatch.setattr(nmm.checks, "WARN_GIB", 1e-4)
    with pytest.warns(nmm.LargeProblemWarning, match=r"ManifoldSpace\(degree=2\) will need about"):
        nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=0.5), dom, degree=2)


# ------------------------------------------------------------------ refinement that stops short


def test_stalled_refinement_sets_a_code_and_warns(dom):
    """One refinement step cannot meet the energy rule (the first correction is the whole
    solution): the result comes back with the code and a warning, never silently. (p = 0: on
    stable spaces, p >= 1, the outer refinement of nmm.refine decides, see the next test.)"""
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=0.25), dom, degree=0)
    exact = lambda x: x[0] + 2 * x[1]  # noqa: E731
    solver = nmm.linalg.SuperLU(max_iter=1)
    with pytest.warns(nmm.RefinementWarning, match="iterative refinement stopped at max_iter"):
        u = nmm.solve(V, nmm.Poisson(f=0.0, dirichlet=exact), solver=solver)
    assert int(u.info.result) == nmm.RESULTS.refinement_stalled and bool(u.info.ok)
    assert nmm.errors(u, exact)["L2"] < 1e-8  # the answer is still returned (x y is in the space)
    with pytest.warns(nmm.RefinementWarning):
        sol = nmm.linalg.linear_solve(*_system(V, exact), solver, throw=False)
    assert int(sol.result) == nmm.RESULTS.refinement_stalled
    # the default solver meets its rule here: no code, no warning
    u = nmm.solve(V, nmm.Poisson(f=0.0, dirichlet=exact))
    assert int(u.info.result) == nmm.RESULTS.successful


@pytest.mark.parametrize("solver", [None, "direct"])  # one program; SuperLU's eager path
def test_stalled_outer_refinement_sets_a_code_and_warns(dom, monkeypatch, solver):
    """On stable spaces (p >= 1) the outer refinement's own rule decides: a rule it cannot meet
    (rtol = 0) gives the stalled code and one warning, and the answer is still returned."""
    import nmm.drivers

    rule = nmm.drivers.converged
    monkeypatch.setattr(nmm.drivers, "converged", lambda e: rule(e, rtol=0.0))
    # a cover no other test builds (h = 0.3): this test's program is traced afresh, and dropped
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=0.3), dom, degree=2)
    exact = lambda x: x[0] * x[1] - x[0] ** 2  # noqa: E731
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            u = nmm.solve(V, nmm.Poisson(f=2.0, dirichlet=exact), solver=solver)
    finally:
        jax.clear_caches()
    stalled = [w for w in seen if issubclass(w.category, nmm.RefinementWarning)]
    assert len(stalled) == 1, [str(w.message) for w in seen]
    assert int(u.info.result) == nmm.RESULTS.refinement_stalled and bool(u.info.ok)
    assert nmm.errors(u, exact)["L2"] < 1e-12


def _system(V, exact):
    K, R = nmm.assemble(V, nmm.Poisson(f=0.0, dirichlet=exact))
    return K, -R


def test_a_traced_space_is_named_not_a_numpy_conversion_error(V):
    """A space passed through jit as an argument: a clear error, not a TracerArrayConversionError
    from deep inside the boundary checks (benchmarks/weak_form_engine.py did this)."""
    prob = nmm.Poisson(f=1.0, dirichlet=0.0)
    with pytest.raises(TypeError, match="space: its arrays are traced.*close over it"):
        jax.jit(lambda space: nmm.solve(space, prob).coeffs)(V)
    with pytest.raises(TypeError, match="space: its arrays are traced"):
        jax.jit(lambda space: nmm.assemble(space, prob)[1])(V)
