"""The planted bugs of issue 9, one at a time, against the fast tests that must catch them.

Each bug is a one-line change that once passed every test. This script copies the repository's
tracked files to a scratch directory (the working tree is never touched), plants each bug there,
runs the named tests of the fast suite and reports which failed; "NOT CAUGHT" is a test gap.

Usage (from the repository root)::

    python benchmarks/planted_bugs.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (what, file, original text, planted text, tests expected to catch it)
PLANTS = [
    (
        "Fourier derivative sign",
        "nmm/basis.py",
        "jnp.stack([-k * s, k * c], -1)",
        "jnp.stack([k * s, k * c], -1)",
        [
            "tests/test_references.py::test_fourier_poisson_1d_solution_and_gradient",
            "tests/test_references.py::test_fourier_poisson_2d_on_a_cut_cover_reproduces_its_frequencies",
        ],
    ),
    (
        "reaction term c u v halved",
        "nmm/forms/poisson.py",
        "0.5 * c * u * u - f * u",
        "0.25 * c * u * u - f * u",
        [
            "tests/test_references.py::test_reaction_term_against_manufactured_solution",
            "tests/test_forms.py::test_reaction_term_is_assembled",
        ],
    ),
    (
        "fit functional loses its 1/2",
        "nmm_nn/task.py",
        'return 0.5 * jnp.sum(w * jnp.sum((v["u"] - self.target) ** 2, -1))',
        'return jnp.sum(w * jnp.sum((v["u"] - self.target) ** 2, -1))',
        ["tests/test_bridge_values.py"],
    ),
    (
        "PINN boundary weight ignored",
        "nmm_nn/task.py",
        "lam = self.boundary_weight",
        "lam = 1.0",
        ["tests/test_bridge_values.py"],
    ),
    (
        "refinement residual against the perturbed matrix",
        "nmm/linalg/superlu.py",
        "        ax = a @ x\n",
        "        ax = a @ x + opts.eps * x\n",
        ["tests/test_references.py::test_singular_system_is_solved_against_the_unperturbed_matrix"],
    ),
    (
        "penalty 1e4 times too weak",
        "nmm/forms/base.py",
        'return 100.0 if self.bc == "nitsche" else 1e8',
        'return 100.0 if self.bc == "nitsche" else 1e4',
        [
            "tests/test_solver.py::test_penalty_and_neumann_boundary_conditions",
            "tests/test_bridge_values.py",
        ],
    ),
]


def scratch_copy() -> Path:
    dest = Path(tempfile.mkdtemp(prefix="nmm-planted-"))
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in files.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes((ROOT / name).read_bytes())
    return dest


def main() -> int:
    repo = scratch_copy()
    gaps = 0
    for what, name, old, new, tests in PLANTS:
        path = repo / name
        src = path.read_text()
        if src.count(old) != 1:
            print(f"{what}: the original text is not in {name} once; update this script")
            return 2
        path.write_text(src.replace(old, new))
        try:
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                cwd=repo,
                capture_output=True,
                text=True,
            )
            failed = [ln.split(" ")[1] for ln in out.stdout.splitlines() if ln.startswith("FAILED")]
            caught = out.returncode != 0 and failed
            gaps += not caught
            verdict = f"CAUGHT by {', '.join(failed)}" if caught else "NOT CAUGHT"
            print(f"{what}: {verdict} ({time.perf_counter() - t0:.0f} s)", flush=True)
        finally:
            path.write_text(src)
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main())
