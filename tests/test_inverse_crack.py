"""Crack identification (experiments/inverse_crack.py): centre and length of a hidden insulated
crack from boundary temperatures, each evaluation a new space on one fixed mathematical cover."""

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import inverse_crack as ic
from nmm import inverse as inv


# slow: seven new spaces, seven compilations; the misfit and the projection the search
# relies on are checked in the fast tests below
@pytest.mark.slow
def test_crack_position_and_length_recovered_from_a_start_half_a_cell_off():
    """Data on p = 3, inversion on p = 2 (same h = 0.1 cover: no inverse crime), the start 0.5 h
    off in position and 13 % short. Measured (noise-free data weighted with σ = 1e-3): after the 6
    evaluations the test allows, position error 0.032 h and length error 0.11 %; one evaluation
    more gives 0.003 h and 0.04 %. 7 solves, almost all of the time compilation (a new space is a
    new program): 96 s on the shared 2-core development machine at load 6, ~50 s when idle."""
    pts = ic.observation_points()
    clean = np.asarray(ic.CrackModel(0.1, 3, 4)(ic.CRACK_TRUTH)(pts))
    start = np.asarray(ic.CRACK_TRUTH) + [-0.04, 0.03, -0.04]
    model = ic.CrackModel(0.1, 2, 3)
    out = ic.invert(model, pts, clean, 1e-3, start=start, max_evals=6)
    err = np.asarray(out["estimate"]) - ic.CRACK_TRUTH
    assert out["new_solves"] == 6
    assert np.linalg.norm(err[:2]) < 0.1 * model.h, err
    assert abs(err[2]) < 0.005 * ic.CRACK_TRUTH[2], err


def test_crack_guess_outside_the_square_is_projected_and_penalised():
    inside, dist = ic.admissible(ic.CRACK_TRUTH)
    assert dist == 0.0 and np.allclose(inside, ic.CRACK_TRUTH)
    proj, dist = ic.admissible((1.3, -0.2, 2.0))  # centre outside, longer than the square
    ends = ic.crack_ends(proj)
    assert dist > 1.0
    assert np.all(ends >= ic.MARGIN - 1e-12) and np.all(ends <= 1 - ic.MARGIN + 1e-12)
    assert ic.admissible((0.5, 0.5, -0.1))[0][2] == ic.MIN_LENGTH


def test_misfit_outside_the_square_is_finite_and_larger():
    """The search evaluates the forward map only at admissible cracks (a stand-in forward map
    records what it is given: no solve needed) and adds PENALTY × distance."""
    seen = []

    def forward(theta):
        seen.append(np.asarray(theta))
        return jnp.full(3, theta[0] + theta[1] + theta[2])

    problem = inv.InverseProblem(forward, inv.Observations.of(lambda s: s, np.zeros(3), 1.0))
    model = ic.CrackModel(0.5, 0, 1)
    r_in = ic.misfit(model, problem, ic.CRACK_TRUTH)
    r_out = ic.misfit(model, problem, (1.3, -0.2, 2.0))
    proj, dist = ic.admissible((1.3, -0.2, 2.0))
    assert np.all(np.isfinite(r_out)) and r_in[-1] == 0.0
    assert np.isclose(r_out[-1], ic.PENALTY * dist) and r_out @ r_out > r_in @ r_in
    assert np.allclose(seen[-1], proj)
