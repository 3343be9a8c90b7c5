"""nmm.demo (`make demo`): the engine demo end to end, its outputs, and its command-line errors."""

import json
import math
import subprocess
import sys

import matplotlib.image
import meshio
import numpy as np
import pytest

from nmm import demo


def _check_run(out, summary, degrees):
    files = {name: out / name for name in ("demo.png", "demo.vtu", "summary.json")}
    for path in files.values():
        assert path.is_file() and path.stat().st_size > 0, path

    # summary.json is what main returned, and every number in it is finite
    on_disk = json.loads(files["summary.json"].read_text())
    assert on_disk["problem"]["cover"]["offset"] == [0.37, 0.21]
    rows = on_disk["degrees"]
    assert [r["p"] for r in rows] == degrees
    assert [r["p"] for r in summary["degrees"]] == degrees

    def numbers(x):
        if isinstance(x, dict):
            return [v for val in x.values() for v in numbers(val)]
        if isinstance(x, list):
            return [v for val in x for v in numbers(val)]
        return [x] if isinstance(x, int | float) and not isinstance(x, bool) else []

    values = numbers(on_disk)
    assert len(values) > 50 and all(math.isfinite(v) for v in values)

    # p-convergence on the fixed cover; unknowns grow with p; the smooth solution does not jump
    for key, factor in (("L2", 0.2), ("H1", 0.3), ("max", 0.9)):
        errs = [r["errors"][key] for r in rows]
        assert all(b < factor * a for a, b in zip(errs, errs[1:], strict=False)), (key, errs)
    assert rows[0]["errors"]["H1"] < 1e-2
    dofs = [r["n_dofs"] for r in rows]
    assert dofs == sorted(dofs) and len(set(dofs)) == len(dofs)
    for r in rows:
        assert r["crack_jump_max"] < 10 * max(r["errors"]["max"], 1e-8) + 1e-6
        assert r["time_s"]["solve_first"] > 0 and r["solver"]["residual"] < 1e-6
    # the insulated crack with a source below it does jump
    jump = on_disk["jump_case"]["jump"]
    assert jump["max_abs"] > 0.1
    assert jump["max_abs"] == pytest.approx(np.max(np.abs(jump["values"])))

    # the picture and the VTU file are readable
    img = matplotlib.image.imread(files["demo.png"])
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 900
    assert np.ptp(img[..., :3]) > 0.5  # not a blank image
    mesh = meshio.read(files["demo.vtu"])
    assert len(mesh.cells_dict["triangle"]) > 100
    assert np.all(np.isfinite(mesh.point_data["u"]))
    assert np.all(np.isfinite(mesh.point_data["grad_u"]))


@pytest.mark.slow  # `make demo` runs it; fast: test_demo_cli_error_is_one_line
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "results"  # main creates it
    summary = demo.main(["--out", str(out), "--degrees", "1", "2"])
    _check_run(out, summary, [1, 2])
    printed = capsys.readouterr().out
    assert "unknowns" in printed and str(out / "summary.json") in printed
    assert len(printed.splitlines()) <= 10


@pytest.mark.slow
def test_demo_default_run(tmp_path, capsys):
    """The full `make run` (p = 1..4), as the Makefile calls it; must stay well under a minute."""
    summary = demo.main(["--out", str(tmp_path)])
    _check_run(tmp_path, summary, [1, 2, 3, 4])
    assert summary["total_time_s"] < 60


def test_demo_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    bad = blocker / "results"
    with pytest.raises(SystemExit) as info:
        demo.main(["--out", str(bad)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "--out" in err and str(bad) in err


def test_demo_cli_error_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = subprocess.run(
        [sys.executable, "-m", "nmm.demo", "--out", str(blocker / "results")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot write" in proc.stderr


def test_demo_rejects_bad_degrees(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        demo.main(["--out", str(tmp_path), "--degrees", "0"])
    assert info.value.code == 2
    assert "--degrees" in capsys.readouterr().err
