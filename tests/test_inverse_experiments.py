"""The inverse-problem experiments' CLI and report (the cases themselves run in
``python -m experiments inverse``; their pieces are tested in test_inverse*.py)."""

from experiments import inverse
from experiments.__main__ import main


def _method(a, u, joint, run_s=1.0):
    return {"a_L2": a, "u_L2": u, "joint_L2": joint, "run_s": run_s, "compile_s": 2.0}


def test_report_has_one_row_per_method_and_every_case():
    pinv = {
        "nmm": {
            **_method(1.1e-3, 2.2e-3, 3.3e-3),
            "alpha": 10.0,
            "steps": 7,
            "a_posterior_std_rms": 1e-3,
            "a_error_rms": 2e-3,
            "a_coverage_95": 0.9,
        },
        "hybrid": {**_method(4.4e-3, 5.5e-3, 6.6e-3), "network": "a: 32x2 tanh", "steps": 300},
        "pinn": {**_method(7.7e-2, 8.8e-2, 9.9e-2), "network": "64x3 tanh", "steps": 5000},
    }
    hinv = {
        "nmm": {
            **_method(1.2e-2, 3.4e-3, 1.1e-2),
            "alpha": 1.0,
            "steps": 300,
            "discrepancy_ratio": 0.99,
            "unknowns": {"u": 375, "time_steps": 20, "a": 135},
        },
        "pinn": {**_method(3.6e-1, 2.2e-1, 3.5e-1), "network": "64x3 tanh", "steps": 5000},
    }
    md = inverse.report({"pinv": pinv, "hinv": hinv})
    for v in ("1.100e-03", "4.400e-03", "7.700e-02", "1.200e-02", "3.600e-01"):
        assert v in md
    assert "## PInv" in md and "## HInv" in md and "hybrid" in md
    assert md.count("| PINN 64x3 tanh (u, a), Adam, 5000 steps |") == 2
    assert "L-BFGS (H1 prior, α = 1 fixed, 300 steps" in md
    hinv["nmm"].update(optimizer="gauss-newton", alpha=100.0, steps=12)
    md = inverse.report({"hinv": hinv})
    assert "Gauss–Newton (H1 prior, α = 100 by evidence, 12 steps" in md


def test_cli_names_an_unknown_inverse_problem(capsys, tmp_path):
    assert main(["inverse", "--problem", "pinv", "--problem", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "hinv" in err and "crack" in err
    assert main(["inverse", "--pinn-steps", "-1", "--out", str(tmp_path)]) == 2
    assert "--pinn-steps" in capsys.readouterr().err
