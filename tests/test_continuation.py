"""Pseudo-arclength continuation: the Bratu branch through its turning point, λ* against the
closed form (1D) and the published value (unit square), both solutions at λ = 3 against the
exact ones, and clear failures (no solution above λ*, a fold the corrector cannot pass)."""

import jax.numpy as jnp
import numpy as np
import pytest

import nmm
from experiments.exact_nonlinear import BRATU_2D_CRITICAL, bratu1d, bratu1d_critical


def bratu(lam):
    return nmm.Bratu(lam=lam, dirichlet=0.0)


@pytest.fixture(scope="module")
def interval():
    dom = nmm.Domain.interval(0.0, 1.0)
    return nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 16), dom, degree=4)


def test_bratu_1d_branch_through_the_fold(interval):
    branch = nmm.continuation(interval, bratu, 1.0, (1.0, 3.6), ds=0.2, ds_max=1.0)
    lam_star = bratu1d_critical()[0]
    assert len(branch.folds) == 1
    assert abs(branch.fold_lams[0] - lam_star) <= 1e-6  # measured 7e-13
    assert branch.lam[-1] < 1.0 and np.max(branch.lam) < lam_star + 1e-6  # came back down
    pts = jnp.linspace(0, 1, 101)[:, None]
    lower, upper = branch.solutions_at(3.0)
    for u, which in ((lower, "lower"), (upper, "upper")):
        err = float(jnp.max(jnp.abs(u(pts) - bratu1d(np.asarray(pts[:, 0]), 3.0, which))))
        assert err <= 1e-8, (which, err)  # measured 4e-11 and 2.2e-9


@pytest.mark.slow
def test_bratu_unit_square_fold():
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.125), dom, degree=3)
    branch = nmm.continuation(V, bratu, 2.0, (2.0, 7.0), ds=0.5, ds_max=2.0, max_points=40)
    assert abs(branch.fold_lams[0] - BRATU_2D_CRITICAL) <= 1e-6  # measured 3.4e-8


def test_no_solution_above_the_fold_says_so(interval):
    with pytest.raises(Exception, match="turning point"):
        nmm.solve(interval, bratu(4.0), newton=nmm.Newton(max_steps=12))
    u = nmm.solve(interval, bratu(4.0), newton=nmm.Newton(max_steps=12), throw=False)
    assert int(u.info.result) in (nmm.RESULTS.max_steps_reached, nmm.RESULTS.line_search_failed)
    assert np.all(np.isfinite(np.asarray(u.coeffs)))  # the last iterate, no NaN


def test_a_fold_the_corrector_cannot_pass_is_reported(interval):
    with pytest.raises(nmm.ContinuationError, match="ds below ds_min"):
        nmm.continuation(
            interval,
            bratu,
            1.0,
            (1.0, 3.6),
            ds=0.8,
            ds_min=0.4,
            ds_max=0.8,
            newton=nmm.Newton(max_steps=1),
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lam_range": (2.0, 1.0)}, "lam_range"),
        ({"lam_start": 5.0}, "lam_start=5.0 must lie"),
        ({"ds": -1.0}, "ds must be a positive"),
        ({"ds": 2.0}, "ds_min <= ds <= ds_max"),
        ({"family": 3.0}, "family must be a callable"),
    ],
)
def test_bad_input(interval, kwargs, match):
    args = {"family": bratu, "lam_start": 1.0, "lam_range": (1.0, 3.6)} | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        nmm.continuation(interval, **args)
