"""The PETSc backend (``nmm.linalg.PETSc``: CG + GAMG) against the direct solver, serial and under
``mpiexec``, on the Poisson problem of ``poisson_vs_skfem.py`` (-Δu = f on the unit square,
u = g on ∂Ω by Nitsche, exact u = sin(πx) sin(πy) + x y) at ~1e5 unknowns, p = 0.

Every rank runs this script: it cuts the cover and assembles the whole system (JAX), then the
solve is PETSc's, distributed by covers; the solution is gathered to every rank. Timed per solver:
the first ``nmm.solve`` (compile + assembly + solve) and the best of ``--reps`` later ones (run
time: assembly + solve), the assembly alone (``nmm.assemble``, best of ``--reps``: the part every
rank repeats), and the relative L2 error. Rank 0 writes the results.

Usage (needs the petsc extra, see the README)::

    python benchmarks/petsc_solve.py                   # serial: SuperLU and PETSc
    mpiexec -n 2 python benchmarks/petsc_solve.py      # two ranks (OpenMPI as root:
                                                       #   --allow-run-as-root)
    python benchmarks/petsc_solve.py --render results/bench_petsc_n1.json results/bench_petsc_n2.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from poisson_vs_skfem import _jax_problem, nmm_dofs, nmm_n_for
from provenance import git_state, write_result


def _time(fn, reps):
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, first, best


def render(results: list[dict]) -> str:
    head = ["ranks", "solver", "unknowns", "first solve s", "nmm.solve s (best)"]
    head += ["of which assembly s", "iterations", "rel. L2"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        for r in res["runs"]:
            lines.append(
                f"| {res['meta']['ranks']} | {r['solver']} | {r['dofs']} | {r['first_s']:.2f} | "
                f"{r['best_s']:.2f} | {r['assembly_s']:.2f} | {r['iterations']} | {r['rel_L2']:.2e} |"
            )
    m = results[0]["meta"]
    return f"Machine: {m['machine']}, nmm {m['nmm_git']}.\n\n" + "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dofs", type=float, default=1e5)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=None, help="default results/bench_petsc_n<ranks>.json")
    ap.add_argument("--render", nargs="+", metavar="JSON")
    args = ap.parse_args(argv)
    if args.render:
        print(render([json.loads(Path(p).read_text()) for p in args.render]))
        return
    import jax

    import nmm
    from nmm.linalg.petsc import petsc4py_module

    comm = petsc4py_module().COMM_WORLD
    ranks, rank = comm.getSize(), comm.getRank()
    exact, source = _jax_problem()
    n = nmm_n_for(args.dofs, 0)
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=1.0 / n), dom, degree=0)
    prob = nmm.Poisson(k=1.0, f=source, dirichlet=exact)
    _, _, assembly = _time(lambda: jax.block_until_ready(nmm.assemble(V, prob)), args.reps)
    runs = []
    solvers = [("PETSc CG + GAMG", nmm.linalg.PETSc())]
    if ranks == 1:  # the direct solver is serial: once is enough
        solvers.insert(0, ("SuperLU (default)", None))
    for name, solver in solvers:
        u, first, best = _time(
            lambda s=solver: jax.block_until_ready(nmm.solve(V, prob, solver=s)), args.reps
        )
        runs.append(
            {
                "solver": name,
                "dofs": nmm_dofs(n, 0),
                "first_s": first,
                "best_s": best,
                "assembly_s": assembly,
                "iterations": int(u.info.iterations),
                "rel_L2": float(nmm.errors(u, exact)["L2"]),
            }
        )
        print(f"  rank {rank}: {runs[-1]}", file=sys.stderr, flush=True)
    if rank == 0:
        result = {
            "meta": {
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                "jax": jax.__version__,
                "nmm_git": git_state(),
                "ranks": ranks,
                # petsc4py's version string: PETSc.Sys.getVersion() on one rank only hung the
                # ranks at exit (measured here)
                "petsc4py": __import__("petsc4py").__version__,
            },
            "runs": runs,
        }
        write_result(result, render([result]), args.out or f"results/bench_petsc_n{ranks}.json")


if __name__ == "__main__":
    main()
