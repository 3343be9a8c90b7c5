"""Bad config values and command lines: one line on stderr naming the key and the value, exit
status 2, never a traceback; every key of the embedded configs is checked; corrupted or stale case
files are refused with the file's name and how to start afresh (--fresh)."""

import copy
import json
import subprocess
import sys
import tomllib
from importlib import resources

import pytest

from experiments.__main__ import main
from experiments.runner import ConfigError, parse_config

BASE = 'problems = ["poly-2"]\nmethods = ["nmm"]\n[nmm.sizes]\n"poly-2" = [[1, 2]]\n'


def cli_error(argv, capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err and not captured.out
    return lines[0]


@pytest.mark.parametrize(
    "toml, fragments",
    [
        ('problems = "poly-2"', ["problems must be a non-empty list of problems", "'poly-2'"]),
        ("problems = []", ["problems must be a non-empty list", "got []"]),
        ('problems = ["poly-2", 3]', ["problems: 3 is not a problem name"]),
        ('problems = ["poly-3"]', ["problems: unknown problem 'poly-3'"]),
        ('problems = ["poly-2", "poly-2"]', ["problems lists 'poly-2' twice"]),
        ('problems = ["poly-2"]\nmethods = "nmm"', ["methods must be", "got 'nmm'"]),
        ('problems = ["poly-2"]\nseeds = "3"', ["seeds must be a positive integer, got '3'"]),
        ('problems = ["poly-2"]\nseeds = -1', ["seeds must be a positive integer, got -1"]),
        ('problems = ["poly-2"]\nseeds = [1]', ["seeds must be a positive integer, got [1]"]),
        ('problems = ["poly-2"]\nname = 3', ["name must be a non-empty string, got 3"]),
        ('problems = ["poly-2"]\nproblem = 1', ["unknown keys ['problem']"]),
        ('problems = ["poly-2"]\ntrain = 5', ["train must be a table", "got 5"]),
        ('problems = ["poly-2"]\n[train]\nsteps = "100"', ["train.steps must be", "got '100'"]),
        ('problems = ["poly-2"]\n[train]\nchunk = [10]', ["train.chunk must be", "got [10]"]),
        ('problems = ["poly-2"]\n[train]\nlbfgs_steps = -5', ["train.lbfgs_steps", "got -5"]),
        (
            'problems = ["poly-2"]\n[train]\nlearning_rate = "1e-3"',
            ["train.learning_rate must be a positive number, got '1e-3'"],
        ),
        ('problems = ["poly-2"]\n[train]\nlearning_rate = -0.1', ["learning_rate", "got -0.1"]),
        ('problems = ["poly-2"]\n[train]\nstepz = 3', ["unknown [train] keys ['stepz']"]),
        ('problems = ["poly-2"]\n[mlp]\nsizes = [16, 3]', ["mlp.sizes must be", "(entry 16)"]),
        ('problems = ["poly-2"]\n[mlp]\nsizes = [["16", 3]]', ["mlp.sizes", "['16', 3]"]),
        ('problems = ["poly-2"]\n[mlp]\nsize = [[16, 3]]', ["unknown [mlp] keys ['size']"]),
        (
            'problems = ["poly-2"]\n[nmm.sizes]\npoly10 = [[1, 2]]',
            ["unknown [nmm.sizes] keys ['poly10']"],
        ),
        ('problems = ["poly-2"]\n[nmm.sizes]\n"poly-2" = 4', ["nmm.sizes.poly-2 must be", "got 4"]),
        (
            'problems = ["poly-2"]\n[deep_manifold]\nexperiments = "capacity"',
            ["deep_manifold.experiments must be a non-empty list", "got 'capacity'"],
        ),
        (
            'problems = ["poly-2"]\n[deep_manifold]\nexperiments = ["nope"]',
            ["unknown Deep Manifold experiment 'nope'"],
        ),
        (
            'problems = ["poly-2"]\n[deep_manifold]\npoly_degrees = [3]',
            ["deep_manifold.poly_degrees: unknown poly degree 3"],
        ),
        (
            'problems = ["poly-2"]\n[deep_manifold]\ndepths = [1, 0]',
            ["deep_manifold.depths[1] must be a positive integer, got 0"],
        ),
        (
            'problems = ["poly-2"]\n[deep_manifold]\nbudget = 2.5',
            ["deep_manifold.budget must be a positive integer, got 2.5"],
        ),
        (
            'problems = ["poly-2"]\n[deep_manifold]\nsteps = 100\nstage = 30',
            ["multiple of stage", "steps = 100, stage = 30"],
        ),
        ("problems = [", ["malformed config"]),
    ],
)
def test_bad_config_is_one_line(toml, fragments, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(toml + "\n")
    line = cli_error(["run", "--config", str(path), "--out", str(tmp_path / "out")], capsys)
    assert str(path) in line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not (tmp_path / "out").exists()  # refused before anything runs


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "--seeds", "abc"], "argument --seeds: invalid int value: 'abc'"),
        (["run", "--seeds", "0"], "command line: seeds must be a positive integer, got 0"),
        (["run", "--problem", "nope"], "unknown problem 'nope'"),
        (["run", "--suite", "full", "--config", "x.toml"], "either --suite ('full') or --config"),
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_bad_command_line_is_one_line(argv, fragment, capsys):
    assert fragment in cli_error(argv, capsys)


def _leaves(table, path=()):
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*path, key))
        else:
            yield (*path, key), value


@pytest.mark.parametrize("suite", ["quick", "full"])
def test_every_key_of_the_embedded_configs_is_checked(suite):
    text = resources.files("experiments").joinpath("configs", f"{suite}.toml").read_text()
    raw = tomllib.loads(text)
    parse_config(raw)
    checked = 0
    for path, value in _leaves(raw):
        wrong = [3, ["x"]] if isinstance(value, str) else ["oops", [[1]], -3, True]
        for bad in wrong:
            broken = copy.deepcopy(raw)
            table = broken
            for key in path[:-1]:
                table = table[key]
            table[path[-1]] = bad
            with pytest.raises(ConfigError) as err:
                parse_config(broken, "cfg")
            msg = str(err.value)
            assert ".".join(path) in msg and (repr(bad) in msg or repr(bad[0]) in msg), msg
            checked += 1
    assert checked >= 4 * 15


def test_module_entry_point_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('problems = "poly-2"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "experiments", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: problems must be")


def test_corrupted_or_stale_case_files(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(BASE)
    out = tmp_path / "out"
    argv = ["run", "--config", str(cfg), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    (case,) = (out / "cases").glob("*.json")
    good = case.read_text()
    case.write_text("garbage")
    line = cli_error(argv, capsys)
    assert f"case file {str(case)!r} cannot be read" in line and "--fresh" in line
    stale = json.loads(good)
    stale["task"] = "0123456789abcdef"  # written for another version of poly-2
    case.write_text(json.dumps(stale))
    line = cli_error(argv, capsys)
    assert f"case file {str(case)!r} was computed for another version of problem 'poly-2'" in line
    assert "'0123456789abcdef'" in line and "--fresh" in line
    assert main([*argv, "--fresh"]) == 0  # recomputed
    assert json.loads(case.read_text())["task"] == json.loads(good)["task"]


def test_diverging_case_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "lr.toml"
    cfg.write_text(
        'problems = ["poly-2"]\nmethods = ["mlp-tanh"]\n[train]\nsteps = 10\nchunk = 10\n'
        "learning_rate = 1e300\n[mlp]\nsizes = [[4, 1]]\n"
    )
    line = cli_error(["run", "--config", str(cfg), "--out", str(tmp_path), "--no-progress"], capsys)
    assert "case poly-2 mlp-tanh 4x1 seed 0: the loss became non-finite at step" in line
    assert "learning_rate=1e+300" in line
