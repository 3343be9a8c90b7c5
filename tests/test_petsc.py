"""The PETSc backend (optional extra): skipped where petsc4py is not installed; the message that
names the extra is checked everywhere."""

import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_same_solution, backend_problem, poisson_loss

import nmm

# petsc4py (the optional extra nmm[petsc]) has no wheels on PyPI: it builds against an installed
# PETSc (PETSC_DIR) and MPI, which CI's machine does not have; these run where PETSc is installed
_REASON = "nmm.linalg.PETSc needs petsc4py and mpi4py, the optional extra nmm[petsc] (not installed)"


def test_missing_petsc4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "petsc4py", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r'pip install "nmm\[petsc\]"'):
        nmm.linalg.PETSc()
    with pytest.raises(ImportError, match=r"nmm\[petsc\]"):
        nmm.solve(*backend_problem(0.25, 0)[:2], solver="petsc")


def test_unknown_solver_string_lists_petsc():
    V, prob, _ = backend_problem(0.25, 0)
    with pytest.raises(ValueError, match=r"solver must be one of .*'petsc'.* got 'mumps'"):
        nmm.solve(V, prob, solver="mumps")


@pytest.mark.parametrize("degree", [0, 1])
def test_petsc_matches_the_direct_solver_values_and_gradients(degree):
    pytest.importorskip("petsc4py", reason=_REASON)
    V, prob, exact = backend_problem(0.1, degree)
    u_ref = nmm.solve(V, prob)
    u = nmm.solve(V, prob, solver="petsc")
    assert int(u.info.result) == 0 and int(u.info.iterations) > 0
    pts = jnp.array([[0.3, 0.4], [0.7, 0.2], [0.5, 0.9]])
    assert_same_solution(u, u_ref, exact, pts, rtol=1e-8)
    loss = poisson_loss(V, prob, pts)

    g = jax.grad(loss)(1.3, nmm.linalg.PETSc())
    g_ref = jax.grad(loss)(1.3, None)
    np.testing.assert_allclose(float(g), float(g_ref), rtol=1e-7)


def test_petsc_bad_options():
    pytest.importorskip("petsc4py", reason=_REASON)
    with pytest.raises(ValueError, match="rtol must be in"):
        nmm.linalg.PETSc(rtol=2.0)
    with pytest.raises(ValueError, match="max_iter must be a positive integer"):
        nmm.linalg.PETSc(max_iter=0)


@pytest.mark.slow
def test_two_mpi_ranks_give_the_serial_solution(tmp_path):
    pytest.importorskip("petsc4py", reason=_REASON)
    pytest.importorskip("mpi4py", reason=_REASON)
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec")
    script = tmp_path / "ranks.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, numpy as np, jax.numpy as jnp, nmm
            from mpi4py import MPI
            exact = lambda x: jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1]) + x[0] * x[1]
            f = lambda x: 2 * jnp.pi**2 * jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])
            dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
            V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=0.05), dom, degree=1)
            prob = nmm.Poisson(f=f, dirichlet=exact)
            u = nmm.solve(V, prob, solver="petsc")
            ref = nmm.solve(V, prob)
            pts = jnp.array([[0.3, 0.4], [0.7, 0.2]])
            gap = float(np.max(np.abs(np.asarray(u(pts)) - np.asarray(ref(pts)))))
            print(MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size(), gap)
            """
        )
    )
    run = subprocess.run(
        [mpiexec, "--allow-run-as-root", "--oversubscribe", "-n", "2", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = sorted(line.split() for line in run.stdout.strip().splitlines())
    assert [(r, s) for r, s, _ in lines] == [("0", "2"), ("1", "2")]
    assert all(float(gap) < 1e-8 for *_, gap in lines)
