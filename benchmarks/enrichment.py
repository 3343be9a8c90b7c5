"""Enriched covers (``nmm.Enrichment``): the README's figures for "Enriched covers".

* exactness: with a cut-off plateau over the whole domain the singular exact solution is in the
  space (p = 1, h = 0.25): an edge crack's √r sin(θ/2) + a flux-free smooth part, the tip at
  three places in its cell (one 7e-4 from an edge), and the L-shape's r^(2/3) sin(2θ/3); beside
  them the same solves without enrichment;
* rates: the L-shape, h = 0.25 … 0.03125, without enrichment and with the corner's elements
  enriched (``radius=None``) at p = 1, and with the cut-off enrichment of radius 0.9 at p = 1, 2.

Usage::

    python benchmarks/enrichment.py          # about 2 minutes on 2 cores

Prints Markdown tables; writes results/enrichment.json.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import nmm
from experiments.cracks import scalar_edge_crack

LSHAPE = [(-1, -1), (0, -1), (0, 0), (1, 0), (1, 1), (-1, 1)]
OFFSET = (0.03, 0.05)


def crack(tip_point, radius):
    dom, tip, exact, prob = scalar_edge_crack(tip_point, radius)
    mc = nmm.MathCover.triangles(dom, 0.25, offset=OFFSET)
    out = {}
    for name, enrich in (("enriched", [tip]), ("plain", [])):
        u = nmm.solve(nmm.ManifoldSpace(mc, dom, degree=1, enrich=enrich), prob, throw=False)
        out[name] = nmm.errors(u, exact)["L2"]
    return out


def lshape(h, radius, enrich=True, degree=1, inner=0.0):
    dom = nmm.Domain.polygon(LSHAPE)
    c = nmm.Enrichment.corner(
        (0.0, 0.0), edge_angle=0.0, opening=1.5 * np.pi, radius=radius, inner=inner
    )

    def exact(x):
        r, t = c.polar(x)
        return r ** (2 / 3) * jnp.sin(2 * t / 3)

    V = nmm.ManifoldSpace(
        nmm.MathCover.triangles(dom, h, offset=OFFSET), dom, degree=degree, enrich=[c] if enrich else []
    )
    u = nmm.solve(V, nmm.Poisson(k=1.0, f=0.0, dirichlet=exact), throw=False)
    return {"dofs": V.n_unknowns, "result": int(u.info.result), **nmm.errors(u, exact)}


def main() -> None:
    report: dict = {"machine": platform.platform()}
    print(
        "| case (p = 1, h = 0.25, cut-off plateau over Ω) | enriched, rel. L2 | plain |\n|---|---|---|"
    )
    report["exact"] = {}
    for tp in ((0.013, 0.007), (0.11, 0.007), (0.16, 0.13)):
        r = crack(tp, 10.0)
        report["exact"][f"crack tip {tp}"] = r
        print(f"| edge crack, tip at {tp} | {r['enriched']:.1e} | {r['plain']:.1e} |", flush=True)
    a, b = lshape(0.25, 10.0, inner=0.5), lshape(0.25, None, enrich=False)
    report["exact"]["lshape"] = {"enriched": a["L2"], "plain": b["L2"]}
    print(f"| L-shape corner | {a['L2']:.1e} | {b['L2']:.1e} |", flush=True)

    print("\n| L-shape | p | h | unknowns | L2 | H1 | L2 rate | H1 rate |\n" + "|---" * 8 + "|")
    report["rates"] = {}
    for label, radius, enrich, p in (
        ("none", None, False, 1),
        ("corner elements", None, True, 1),
        ("cut-off radius 0.9", 0.9, True, 1),
        ("cut-off radius 0.9", 0.9, True, 2),
    ):
        rows, prev = [], None
        for h in (0.25, 0.125, 0.0625, 0.03125):
            e = lshape(h, radius, enrich, degree=p)
            rate = (
                ("", "")
                if prev is None
                else tuple(f"{np.log2(prev[k] / e[k]):.2f}" for k in ("L2", "H1"))
            )
            cells = [label, p, h, e["dofs"], f"{e['L2']:.2e}", f"{e['H1']:.2e}", *rate]
            print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)
            rows.append({"h": h, **e})
            prev = e
        report["rates"][f"{label}, p = {p}"] = rows
    Path("results").mkdir(exist_ok=True)
    Path("results/enrichment.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
