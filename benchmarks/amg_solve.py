"""The JAX solvers for large systems side by side: AMG-preconditioned CG (``nmm.linalg.AMG``),
block-Jacobi CG (``"cg"``) and the default direct solver (SuperLU), on the Poisson problem of
``poisson_vs_skfem.py`` (-Δu = f on the unit square, u = g by Nitsche, exact
u = sin(πx) sin(πy) + x y), p = 0 at 1e4 and 1e5 unknowns and p = 2 at 1e4.

Per solver and size: the first ``nmm.solve`` (host setup + compile + assembly + solve) and the
best of ``--reps`` later ones (assembly + solve: what a user pays per new coefficient set),
the iterations, the relative L2 error. For AMG, the host setup of the hierarchy (pyamg
aggregation and index lists, once per space) is timed apart.

Usage::

    python benchmarks/amg_solve.py            # writes results/bench_amg.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

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


def render(result: dict) -> str:
    head = ["p", "unknowns", "solver", "setup s", "first solve s", "nmm.solve s (best)"]
    head += ["iterations", "rel. L2"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["runs"]:
        setup = f"{r['setup_s']:.2f}" if r["setup_s"] is not None else "—"
        lines.append(
            f"| {r['p']} | {r['dofs']} | {r['solver']} | {setup} | {r['first_s']:.2f} | "
            f"{r['best_s']:.3f} | {r['iterations']} | {r['rel_L2']:.2e} |"
        )
    m = result["meta"]
    return f"Machine: {m['machine']}, JAX {m['jax']}, nmm {m['nmm_git']}.\n\n" + "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["0:1e4", "0:1e5", "2:1e4"], help="p:unknowns")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default="results/bench_amg.json")
    args = ap.parse_args(argv)
    import jax

    import nmm
    from nmm.buckets import solve_view
    from nmm.drivers import prepared_solver

    exact, source = _jax_problem()
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    prob = nmm.Poisson(k=1.0, f=source, dirichlet=exact)
    runs = []
    for case in args.cases:
        p, dofs = int(case.split(":")[0]), float(case.split(":")[1])
        n = nmm_n_for(dofs, p)
        for name, solver in (("SuperLU", "direct"), ("CG, block Jacobi", "cg"), ("AMG", "amg")):
            V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=1.0 / n), dom, degree=p)
            setup = None
            if solver == "amg":  # the host setup, once per space (nmm.solve would do it)
                t0 = time.perf_counter()
                prepared_solver(nmm.linalg.AMG(), solve_view(V), V.host.derived)
                setup = time.perf_counter() - t0
            u, first, best = _time(
                lambda s=solver, V=V: jax.block_until_ready(nmm.solve(V, prob, solver=s)), args.reps
            )
            runs.append(
                {
                    "p": p,
                    "dofs": nmm_dofs(n, p),
                    "solver": name,
                    "setup_s": setup,
                    "first_s": first + (setup or 0.0),
                    "best_s": best,
                    "iterations": int(u.info.iterations),
                    "rel_L2": float(nmm.errors(u, exact)["L2"]),
                }
            )
            print(runs[-1], file=sys.stderr, flush=True)
    result = {
        "meta": {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "jax": jax.__version__,
            "nmm_git": git_state(),
        },
        "runs": runs,
    }
    write_result(result, render(result), args.out)


if __name__ == "__main__":
    main()
