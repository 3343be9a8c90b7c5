"""The smallest problems: what a solve costs when there is almost nothing to solve.

Problem (that of ``poisson_vs_skfem.py``): -Δu = f on the unit square, u = g on ∂Ω, exact
u = sin(πx) sin(πy) + x y. NMM: triangle covers of n × n squares, n = 1, 2, 3, cover functions of
degree p = 1..8, ``nmm.solve`` with default options (the dense LU in JAX at these sizes, the outer
refinement of stable spaces). scikit-fem: P1–P4 on ``MeshTri.init_tensor`` with n × n squares.

In one process, steady state (everything compiled by a first call; the best of ``--reps`` calls):
NMM's geometry (``MathCover.triangles`` + ``ManifoldSpace``) and ``nmm.solve``; scikit-fem's mesh +
``Basis`` + assembly + ``condense`` + ``solve``. Relative L2 errors as in ``poisson_vs_skfem.py``.
The tables: the fastest run of each code that reaches each error level, and NMM's floor (its
fastest run at any error, split into geometry and solve), which bounds how soon NMM can reach any
level on this machine.

Usage::

    python benchmarks/fixed_cost.py            # ~1-2 min
    python benchmarks/fixed_cost.py --render results/bench_fixed_cost.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from poisson_vs_skfem import _nmm_problem, _skfem_problem, skfem_rel_l2
from provenance import run_meta, write_result

LEVELS = (1e-3, 1e-4, 1e-5, 1e-6)
NMM_GRID = [(n, p) for n in (1, 2, 3) for p in range(1, 9)]
SKFEM_GRID = {
    1: (4, 8, 16, 32, 64, 128),
    2: (2, 4, 8, 16, 32),
    3: (1, 2, 3, 4, 6, 8, 12),
    4: (1, 2, 3, 4, 6, 8),
}


def best_of(fn, reps: int):
    """``(best wall seconds of reps calls after a first one, last result)``."""
    out = fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def run_nmm(n: int, p: int, reps: int) -> dict:
    import nmm

    dom, prob, exact = _nmm_problem()

    def geometry():
        return nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=1.0 / n), dom, degree=p)

    geo_s, space = best_of(geometry, reps)

    def solve():
        u = nmm.solve(space, prob)
        u.coeffs.block_until_ready()
        return u

    solve_s, u = best_of(solve, reps)
    return {
        "code": "NMM",
        "case": f"p = {p}, n = {n}",
        "dofs": int(space.n_dofs),
        "geometry_s": geo_s,
        "solve_s": solve_s,
        "total_s": geo_s + solve_s,
        "L2": float(nmm.errors(u, exact)["L2"]),
    }


def run_skfem(n: int, order: int, reps: int) -> dict:
    import skfem as fem

    elements, dirichlet_system = _skfem_problem()

    def solve():
        xs = np.linspace(0.0, 1.0, n + 1)
        basis = fem.Basis(fem.MeshTri.init_tensor(xs, xs), elements[order]())
        return basis, fem.solve(*dirichlet_system(basis)[1])

    total_s, (basis, u) = best_of(solve, reps)
    return {
        "code": f"P{order}",
        "case": f"n = {n}",
        "dofs": int(basis.N),
        "total_s": total_s,
        "L2": skfem_rel_l2(basis.mesh, order, u),
    }


def _ms(s: float) -> str:
    return f"{1e3 * s:.2f}"


def render(result: dict) -> str:
    runs, m = result["runs"], result["meta"]
    codes = ["NMM", "P1", "P2", "P3", "P4"]
    head = ["rel. L2 ≤"] + [f"{c} ms" for c in codes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for level in LEVELS:
        row = [f"{level:.0e}"]
        for c in codes:
            ok = [r for r in runs if r["code"] == c and r["L2"] <= level]
            if not ok:
                row.append("—")
                continue
            r = min(ok, key=lambda r: r["total_s"])
            row.append(f"{_ms(r['total_s'])} ({r['case']})")
        lines.append("| " + " | ".join(row) + " |")
    nmm = sorted((r for r in runs if r["code"] == "NMM"), key=lambda r: r["total_s"])
    floor = ["", "NMM's fastest runs at any error (ms):", ""]
    floor += ["| case | unknowns | geometry | solve | total | rel. L2 |", "|---|---|---|---|---|---|"]
    floor += [
        f"| {r['case']} | {r['dofs']} | {_ms(r['geometry_s'])} | {_ms(r['solve_s'])} | "
        f"{_ms(r['total_s'])} | {r['L2']:.1e} |"
        for r in nmm[:4]
    ]
    return (
        f"Machine: {m['machine']}, JAX {m['jax']}, nmm {m['nmm_git']}; load average "
        f"{m['loadavg_start'][0]:.2f} at the start; best of {m['reps']} calls.\n\n"
        + "\n".join(lines + floor)
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", default="results/bench_fixed_cost.json")
    ap.add_argument("--render", metavar="JSON", help="only print the tables of an earlier run")
    args = ap.parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return
    result = {
        "meta": {**run_meta(), "reps": args.reps},
        "runs": [],
    }
    for n, p in NMM_GRID:
        result["runs"].append(run_nmm(n, p, args.reps))
    for order, ns in SKFEM_GRID.items():
        for n in ns:
            result["runs"].append(run_skfem(n, order, args.reps))
    write_result(result, render(result), args.out)


if __name__ == "__main__":
    main()
