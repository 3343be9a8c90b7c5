"""h-convergence of Poisson on the cracked L-shape with a hole: the README's table of orders.

-Δu = f with a smooth manufactured solution, its Dirichlet data on ∂Ω (Nitsche) and its flux on
the crack faces; triangle covers not aligned with the boundary (offset (0.37, 0.21)); relative L2
and H1-seminorm errors on the finer error rule of ``nmm.errors``; slopes between successive h.

Usage::

    python benchmarks/convergence.py            # p = 0..3 (p = 0, 1 to h = 0.05; p = 2, 3 to 0.1)
    python benchmarks/convergence.py --quick    # p = 0, 1 to h = 0.1

Prints a Markdown table; writes results/convergence.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import nmm


def domain() -> nmm.Domain:
    th = np.linspace(0, 2 * np.pi, 33)[:-1]
    outer = [(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]
    hole = np.c_[0.5 + 0.2 * np.cos(th), 0.5 + 0.2 * np.sin(th)]
    return nmm.Domain.polygon(outer, holes=[hole], cracks=[[(1.5, 0.3), (1.5, 1.2)]])


def exact(x):
    return jnp.sin(2 * x[0] + 0.5) * jnp.cos(1.5 * x[1]) + jnp.exp(0.3 * x[0] * x[1])


def problem() -> nmm.Poisson:
    lap = lambda x: jnp.trace(jax.hessian(exact)(x))  # noqa: E731
    flux = lambda x, n: jnp.dot(jax.grad(exact)(x), n)  # noqa: E731
    return nmm.Poisson(f=lambda x: -lap(x), dirichlet=exact, crack_neumann=flux)


def run(degrees: dict[int, list[float]]) -> list[dict]:
    dom, prob = domain(), problem()
    rows = []
    for p, hs in degrees.items():
        l2, h1, dofs, secs = [], [], [], []
        for h in hs:
            t0 = time.perf_counter()
            V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h, offset=(0.37, 0.21)), dom, degree=p)
            e = nmm.errors(nmm.solve(V, prob), exact)
            secs.append(time.perf_counter() - t0)
            l2.append(e["L2"])
            h1.append(e["H1"])
            dofs.append(V.n_dofs)
            print(
                f"p = {p}, h = {h}: {V.n_dofs} unknowns, L2 {e['L2']:.3e}, H1 {e['H1']:.3e}", flush=True
            )
        slope = lambda err, hs=hs: list(np.diff(np.log(err)) / np.diff(np.log(hs)))  # noqa: E731
        rows.append(
            {
                "p": p,
                "h": hs,
                "dofs": dofs,
                "L2": l2,
                "H1": h1,
                "seconds": secs,
                "L2_slopes": slope(l2),
                "H1_slopes": slope(h1),
            }
        )
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/convergence.json")
    args = ap.parse_args(argv)
    if args.quick:
        degrees = {0: [0.4, 0.2, 0.1], 1: [0.4, 0.2, 0.1]}
    else:
        degrees = {
            0: [0.4, 0.2, 0.1, 0.05],
            1: [0.4, 0.2, 0.1, 0.05],
            2: [0.4, 0.2, 0.1],
            3: [0.4, 0.2, 0.1],
        }
    rows = run(degrees)
    print("\n| p | L2 slopes | H1 slopes |\n|---|---|---|")
    for r in rows:
        fmt = lambda s: ", ".join(f"{v:.2f}" for v in s)  # noqa: E731
        print(f"| {r['p']} | {fmt(r['L2_slopes'])} | {fmt(r['H1_slopes'])} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.node(), "rows": rows}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
