"""Runner and CLI: a tiny config end to end, resume without redoing cases (also after a kill),
one-line errors."""

import json
import signal
import subprocess
import sys
import time

import pytest

from experiments import report
from experiments.__main__ import main
from experiments.runner import ConfigError, load_config, parse_config, run_suite

TINY = {
    "name": "tiny",
    "seeds": 1,
    "problems": ["poly-2"],
    "methods": ["nmm", "nmm-adam", "mlp-tanh", "mlp-cover-solved"],
    "train": {"steps": 40, "chunk": 20},
    "mlp": {"sizes": [[8, 2]]},
    "nmm": {"sizes": {"poly-2": [[1, 2], [4, 1]]}},
}


def test_tiny_suite_end_to_end_and_resume(tmp_path):
    suite = parse_config(TINY)
    results = run_suite(suite, tmp_path, progress=False)
    assert [r.method for r in results] == ["nmm", "nmm", "nmm-adam", "mlp-tanh", "mlp-cover-solved"]
    exact = results[0]
    assert exact.size == "cells=1,p=2" and exact.L2 <= 1e-12  # degree 2 reproduced exactly
    tanh, solved = results[3], results[4]
    assert len(tanh.history["loss"]) == 40 and tanh.unknowns == (8 + 8) + (64 + 8) + (8 + 1)
    assert solved.extra["gap"] >= -1e-12 and solved.L2 <= tanh.L2 * 1.01
    files = sorted((tmp_path / "cases").glob("*.json"))
    stamps = [f.stat().st_mtime_ns for f in files]
    again = run_suite(suite, tmp_path, progress=False)  # resumes: nothing is recomputed
    assert [f.stat().st_mtime_ns for f in sorted((tmp_path / "cases").glob("*.json"))] == stamps
    assert [r.L2 for r in again] == [r.L2 for r in results]
    path, table = report.write(suite, again, tmp_path, "test machine")
    text = path.read_text()
    assert "| nmm | cells=1,p=2 |" in text and "poly-2.png" in text and "| nmm |" in table
    assert (tmp_path / "poly-2.png").stat().st_size > 1000
    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data["cases"]) == 5 and data["settings"]["steps"] == 40


def test_embedded_configs_parse():
    for suite in ("quick", "full", "nonlinear"):
        s = load_config(suite)
        assert s.problems and list(s.cases())


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("problems = [")
    cases = [
        (["run", "--problem", "nope"], "unknown problem 'nope'"),
        (["run", "--method", "svm"], "unknown method 'svm'"),
        (["run", "--config", str(bad)], "malformed config"),
        (["run", "--suite", "huge"], "unknown suite 'huge'"),
        (
            ["run", "--problem", "poly-2", "--out", "/proc/forbidden/x"],
            "cannot write to output directory",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="seeds"):
        parse_config({**TINY, "seeds": 0})
    with pytest.raises(ConfigError, match=r"unknown \[train\] keys"):
        parse_config({**TINY, "train": {"stepz": 3}})


def test_filters_select_the_deep_manifold_experiments(tmp_path, capsys):
    """--problem/--method keep the experiments about those problems and methods, --experiment
    picks by name; the cases are filtered as before."""
    from experiments.deep_manifold import selected

    every = ["capacity", "bottleneck", "spectral", "completion", "dof"]
    assert selected(every, problems=["poly-2"]) == ["bottleneck", "dof"]
    assert selected(every, problems=["sines"], methods=["mlp-siren"]) == ["spectral", "dof"]
    assert selected(every, methods=["mlp-relu"]) == ["capacity", "spectral", "dof"]
    assert selected(every, names=["completion"]) == ["completion"]
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'name = "f"\nproblems = ["poly-2"]\nmethods = ["nmm"]\n[nmm.sizes]\n"poly-2" = [[1, 2]]\n'
        '[deep_manifold]\nexperiments = ["capacity"]\nsteps = 100\nstage = 50\n'
    )
    argv = ["run", "--config", str(cfg), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main([*argv, "--problem", "poly-2"]) == 0
    assert "Deep Manifold experiments of this run: none" in capsys.readouterr().out
    assert not any((tmp_path / "o" / "claims").glob("*")), "an experiment ran"
    assert len(list((tmp_path / "o" / "cases").glob("*.json"))) == 1
    assert main([*argv, "--experiment", "nope"]) == 2
    assert "unknown Deep Manifold experiment 'nope'" in capsys.readouterr().err


@pytest.mark.slow  # `make run` runs them; fast: test_tiny_suite_end_to_end_and_resume
def test_deep_manifold_experiments_produce_figures_and_verdicts(tmp_path):
    from experiments.runner import run_claims

    tiny = {
        **TINY,
        "methods": ["nmm", "mlp-tanh"],
        "deep_manifold": {
            "experiments": ["capacity", "bottleneck", "spectral", "completion", "dof"],
            "steps": 100,
            "stage": 50,
            "poly_degrees": [2],
            "depths": [1, 2],
            "budget": 60,
            "seeds": 1,
        },
    }
    suite = parse_config(tiny)
    results = run_suite(suite, tmp_path, progress=False)
    claims = run_claims(suite, results, tmp_path, progress=False)
    assert [c.name for c in claims] == ["capacity", "bottleneck", "spectral", "completion", "dof"]
    for c in claims:
        assert c.verdict.split(" ")[0].rstrip(";") in ("supported", "not", "inconclusive", "at")
        assert c.summary and (tmp_path / c.figure).stat().st_size > 1000
    rows = claims[0].numbers["rows"]
    assert all(r["init"] <= r["bound"] and r["trained"] <= r["bound"] for r in rows)
    stamps = [p.stat().st_mtime_ns for p in sorted((tmp_path / "claims").glob("*.json"))]
    run_claims(suite, results, tmp_path, progress=False)  # resumes: nothing recomputed
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "claims").glob("*.json"))] == stamps
    path, _ = report.write(suite, results, tmp_path, "test machine", claims)
    assert "## Deep Manifold claims" in path.read_text() and "Rule:" in path.read_text()
    with pytest.raises(ConfigError, match="multiple of stage"):
        parse_config({**tiny, "deep_manifold": {"steps": 120, "stage": 50}})
    with pytest.raises(ConfigError, match="unknown Deep Manifold experiment 'nope'"):
        parse_config({**tiny, "deep_manifold": {"experiments": ["nope"]}})


@pytest.mark.slow  # fast: test_tiny_suite_end_to_end_and_resume
def test_cli_resumes_after_a_kill(tmp_path, capsys):
    """The CLI killed mid-suite (SIGKILL while a network trains) and run again: the finished case is
    kept (not recomputed), the rest is computed, and every result equals an uninterrupted run's."""
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        'name = "tiny"\nproblems = ["poly-2"]\nmethods = ["nmm", "mlp-tanh"]\n'
        "[train]\nsteps = 3000\nchunk = 1000\n[mlp]\nsizes = [[8, 2]]\n"
        '[nmm.sizes]\n"poly-2" = [[1, 2]]\n'
    )
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    argv = ["run", "--config", str(cfg), "--no-progress", "--out"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments", *argv, str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list((killed / "cases").glob("*__nmm__*.json")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the first case never finished"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    (first,) = (killed / "cases").glob("*.json")  # the network's case was not written
    stamp = first.stat().st_mtime_ns
    assert main([*argv, str(killed)]) == 0  # resumes
    assert first.stat().st_mtime_ns == stamp and len(list((killed / "cases").glob("*.json"))) == 2
    assert main([*argv, str(whole)]) == 0
    capsys.readouterr()
    resumed, ref = (json.loads((d / "results.json").read_text())["cases"] for d in (killed, whole))
    assert [(c["method"], c["size"]) for c in resumed] == [(c["method"], c["size"]) for c in ref]
    for a, b in zip(resumed, ref, strict=True):  # bit for bit, run times apart
        assert (a["L2"], a["H1"], a["max"], a["loss"]) == (b["L2"], b["H1"], b["max"], b["loss"])
        ha, hb = a["history"], b["history"]
        assert (ha.get("loss"), ha.get("errors")) == (hb.get("loss"), hb.get("errors"))
    assert len(resumed[1]["history"]["loss"]) == 3000
