"""End to end in a fresh process: NMM (cover + space + first ``nmm.solve``) against scikit-fem
(mesh + basis + assembly + condensation + solve), repeated, alternating, in fresh processes.

Problem (that of ``poisson_vs_skfem.py``): -Δu = f on the unit square, u = g on ∂Ω, exact
u = sin(πx) sin(πy) + x y; NMM p = 0 on a triangle cover aligned with the square (Nitsche
conditions), scikit-fem P1 (strong conditions), both ~1e5 unknowns by default.

Why a script of its own: ``poisson_vs_skfem.py`` takes one first solve per case, and on the 2-core
development machine one sample of NMM's moved by ±0.2 s from run to run (1.6–2.0 s). Here every
variant runs ``--rounds`` times, in the order skfem, NMM default, NMM with each ``--solvers``
entry, round after round, each in a new Python process; the table gives the median, minimum and
maximum. Imports are not timed (for either code); NMM's JAX compilation cache is the user's
(``NMM_COMPILATION_CACHE`` as set, by default ``~/.cache/nmm/jax``), so after the first round NMM
runs as a second run of a script does: compiled programs come from disk, tracing does not.

Usage::

    python benchmarks/first_solve.py                       # 1e5 unknowns, 5 rounds (~2 min)
    python benchmarks/first_solve.py --dofs 1e4 --rounds 3
    python benchmarks/first_solve.py --solvers cholesky    # add nmm.linalg.Cholesky (nmm[cholmod])
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# the same problem, steps and sizes as the main benchmark
from poisson_vs_skfem import nmm_first_solve, nmm_n_for, skfem_first_solve, skfem_n_for
from provenance import git_state, write_result

TAG = "@@FIRST@@"


def child_nmm(n: int, solver: str) -> dict:
    from poisson_vs_skfem import _jax_problem

    import nmm

    r = nmm_first_solve(n, 0, None if solver == "default" else solver)
    err = float(nmm.errors(r["field"], _jax_problem()[0])["L2"])
    return {
        "unknowns": r["space"].n_dofs,
        "geometry_s": r["geometry_s"],
        "solve_s": r["solve_s"],
        "L2": err,
    }


def child_skfem(n: int) -> dict:
    import numpy as np
    from poisson_vs_skfem import exact_np

    r = skfem_first_solve(n, 1)
    exact = exact_np(*r["basis"].doflocs)
    err = float(np.linalg.norm(r["x"] - exact) / np.linalg.norm(exact))  # nodal: a sanity check
    return {
        "unknowns": int(r["basis"].N),
        "geometry_s": r["geometry_s"],
        "solve_s": r["solve_s"],
        "nodal_rel": err,
    }


def run_child(variant: str, dofs: float) -> dict:
    args = [sys.executable, __file__, "--child", variant, "--dofs", str(dofs)]
    t0 = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, cwd=os.path.dirname(__file__))
    wall = time.perf_counter() - t0
    for line in out.stdout.splitlines():
        if line.startswith(TAG):
            r = json.loads(line[len(TAG) :])
            r.update(variant=variant, process_s=wall, load=os.getloadavg()[0])
            return r
    raise RuntimeError(f"{variant} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def table(rows: list[dict], variants: list[str]) -> str:
    lines = [
        "| code | unknowns | geometry s (median) | first solve s (median) "
        "| total s: median [min, max] | × scikit-fem (medians) |",
        "|---|---|---|---|---|---|",
    ]
    totals = {v: [r["geometry_s"] + r["solve_s"] for r in rows if r["variant"] == v] for v in variants}
    ref = statistics.median(totals["skfem"])
    for v in variants:
        rs = [r for r in rows if r["variant"] == v]
        t = totals[v]
        lines.append(
            f"| {v} | {rs[0]['unknowns']} | {statistics.median(r['geometry_s'] for r in rs):.3g} | "
            f"{statistics.median(r['solve_s'] for r in rs):.3g} | {statistics.median(t):.3g} "
            f"[{min(t):.3g}, {max(t):.3g}] | {statistics.median(t) / ref:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dofs", type=float, default=1e5, help="unknowns, about (default 1e5)")
    ap.add_argument("--rounds", type=int, default=5, help="samples of each variant (default 5)")
    ap.add_argument("--solvers", nargs="*", default=[], help="NMM solver= strings besides the default")
    ap.add_argument("--out", default="results/bench_first_solve.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.child:
        if args.child == "skfem":
            r = child_skfem(skfem_n_for(args.dofs, 1))
        else:
            r = child_nmm(nmm_n_for(args.dofs, 0), args.child.removeprefix("nmm-"))
        print(TAG + json.dumps(r), flush=True)
        return
    variants = ["skfem", "nmm-default", *(f"nmm-{s}" for s in args.solvers)]
    rows = []
    for k in range(args.rounds):
        for v in variants:
            r = run_child(v, args.dofs)
            r["round"] = k
            rows.append(r)
            print(
                f"  round {k} {v}: geometry {r['geometry_s']:.3f} s, first solve "
                f"{r['solve_s']:.3f} s (load {r['load']:.2f})",
                flush=True,
            )
    print()
    result = {"git": git_state(), "dofs": args.dofs, "rows": rows}
    write_result(result, table(rows, variants), args.out)


if __name__ == "__main__":
    main()
