"""The high-order floor and slivers: the README's figures for "Singular systems".

Every figure is an error against an exact solution, with the default options (stable cover
functions and outer refinement for p >= 1, see ``nmm.stable`` and ``nmm.refine``), and, for
comparison, the plain cover functions (``stable=False``: Legendre terms of each patch box with the
factored solve's own refinement only):

* ``nmm.fit`` of a random degree-12 polynomial on 1, 2 and 8 intervals (p = 11; relative max);
* ``nmm.fit`` of a random degree-10 polynomial on an unaligned triangle cover of a square with a
  hole (p = 9; relative max);
* Poisson, p = 6, the same domain and cover kind (h = 0.25), a smooth exact solution (relative L2);
* slivers: [0, 1 + δ]² with δ = 1e-9 on grid and triangle covers (h = 0.25), p = 1 … 6, the
  relative L2 and H1 errors against the sliver-free square (δ = 0) with the same cover;
* sliver widths: the same at p = 6 for δ = 1e-3 … 1e-12 (the donor fluxes above
  ``nmm.stable.AGGREGATE`` × h, aggregated elements below it, the cover line itself below the
  geometric tolerance 1e-9 × diameter).

Usage::

    python benchmarks/high_order.py            # everything (about 5 minutes on 2 cores)
    python benchmarks/high_order.py --quick    # no slivers

Prints Markdown tables; writes results/high_order.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import nmm

HOLE = [(-0.35, -0.3), (0.3, -0.4), (0.2, 0.35), (-0.3, 0.25)]


def square_with_hole() -> nmm.Domain:
    return nmm.Domain.polygon([(-1, -1), (1, -1), (1, 1), (-1, 1)], holes=[HOLE])


def smooth(x):
    return jnp.sin(0.7 * x[0] + 0.5) * jnp.cos(0.6 * x[1]) + jnp.exp(0.3 * x[0] * x[1])


def manufactured(exact) -> nmm.Poisson:
    lap = lambda x: jnp.trace(jax.hessian(exact)(x))  # noqa: E731
    return nmm.Poisson(k=1.0, f=lambda x: -lap(x), dirichlet=exact)


def polynomial_2d(degree: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    ij = np.array([(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)])
    c = jnp.asarray(rng.standard_normal(len(ij)))
    i, j = jnp.asarray(ij[:, 0]), jnp.asarray(ij[:, 1])
    return lambda x: jnp.sum(c * x[0] ** i * x[1] ** j)


def fits_1d(stable: bool) -> dict[int, float]:
    a = jnp.asarray(np.random.default_rng(0).standard_normal(13))
    dom = nmm.Domain.interval(-1, 1)
    xs = jnp.linspace(-1, 1, 4001)
    ref = jnp.polyval(a, xs)
    out = {}
    for n in (1, 2, 8):
        V = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, n=n), dom, degree=11, stable=stable)
        u = nmm.fit(V, lambda x: jnp.polyval(a, x[0]), throw=False)
        out[n] = float(jnp.max(jnp.abs(u(xs) - ref)) / jnp.max(jnp.abs(ref)))
    return out


def fit_2d(stable: bool) -> float:
    dom = square_with_hole()
    f = polynomial_2d(10)
    V = nmm.ManifoldSpace(
        nmm.MathCover.triangles(dom, 0.5, offset=(0.37, 0.21)), dom, degree=9, stable=stable
    )
    return nmm.errors(nmm.fit(V, f, throw=False), f)["max"]


def poisson_p6(stable: bool) -> float:
    dom = square_with_hole()
    V = nmm.ManifoldSpace(
        nmm.MathCover.triangles(dom, 0.25, offset=(0.37, 0.21)), dom, degree=6, stable=stable
    )
    return nmm.errors(nmm.solve(V, manufactured(smooth), throw=False), smooth)["L2"]


def sliver(kind: str, p: int, delta: float) -> dict:
    e = 1.0 + delta
    dom = nmm.Domain.polygon([(0, 0), (e, 0), (e, e), (0, e)])
    V = nmm.ManifoldSpace(getattr(nmm.MathCover, kind)(dom, 0.25), dom, degree=p)
    u = nmm.solve(V, manufactured(smooth), throw=False)
    return {"result": int(u.info.result), **nmm.errors(u, smooth)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the sliver table")
    ap.add_argument("--out", default="results/high_order.json")
    args = ap.parse_args()
    report: dict = {"machine": platform.platform(), "cpus": __import__("os").cpu_count()}

    print("| case | default (stable) | plain (stable=False) |\n|---|---|---|")
    for stable_key, stable in (("stable", True), ("plain", False)):
        report[stable_key] = {
            "fit_1d": fits_1d(stable),
            "fit_2d_hole": fit_2d(stable),
            "poisson_p6_hole": poisson_p6(stable),
        }
    s, q = report["stable"], report["plain"]
    for n in (1, 2, 8):
        a, b = s["fit_1d"][n], q["fit_1d"][n]
        print(f"| fit, degree 12, {n} interval(s), rel. max | {a:.1e} | {b:.1e} |")
    print(
        f"| fit, degree 10, 2D with a hole, rel. max | {s['fit_2d_hole']:.1e} | {q['fit_2d_hole']:.1e} |"
    )
    print(f"| Poisson p = 6, hole, rel. L2 | {s['poisson_p6_hole']:.1e} | {q['poisson_p6_hole']:.1e} |")

    if not args.quick:
        print("\n| cover | p | L2, no sliver | L2, 1e-9 sliver | ratio | H1 ratio | result |")
        print("|---|---|---|---|---|---|---|")
        rows = []
        for kind in ("grid", "triangles"):
            for p in range(1, 7):
                a, b = sliver(kind, p, 0.0), sliver(kind, p, 1e-9)
                rows.append({"kind": kind, "p": p, "plain_square": a, "sliver": b})
                print(
                    f"| {kind} | {p} | {a['L2']:.1e} | {b['L2']:.1e} | {b['L2'] / a['L2']:.1f} | "
                    f"{b['H1'] / a['H1']:.1f} | {b['result']} |",
                    flush=True,
                )
        report["slivers"] = rows
        widths = (1e-3, 1e-5, 1e-7, 1e-9, 1e-12)
        print("\n| cover, p = 6 | " + " | ".join(f"δ = {d:.0e}" for d in widths) + " |")
        print("|---|" + "---|" * len(widths))
        report["sliver_widths"] = {}
        for kind in ("grid", "triangles"):
            a = sliver(kind, 6, 0.0)
            cells = []
            for d in widths:
                b = sliver(kind, 6, d)
                report["sliver_widths"][f"{kind} {d:.0e}"] = b
                cells.append(
                    f"{b['L2'] / a['L2']:.1f} ({b['H1'] / a['H1']:.1f})"
                    + ("" if b["result"] == 0 else " FAIL")
                )
            print(f"| {kind}: L2 ratio (H1 ratio) | " + " | ".join(cells) + " |", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
