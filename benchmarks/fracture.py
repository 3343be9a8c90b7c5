"""Fracture benchmarks (issue 10): stress intensity factors against exact and handbook values.

* Griffith: Westergaard's centre crack (a = 0.3, σ = 1, τ = 0.5) in the square of half-width 1,
  exact displacements on its boundary; K_I, K_II (interaction integral) and the displacement
  errors against h, for p = 1 and p = 2 with the near-tip orders n ≤ 2p + 1 on cut-off discs of
  radius 0.6 (``terms = p + 1``), and beside them p = 1 without tip functions and with the first
  order on the tip elements' covers only (``radius=None``).
* Inclined crack (a = 0.5 in the square of half-width 2, exact infinite-plate field on its
  boundary): β = 0 … 75°, p = 2 (terms 3, cut-off radius 0.9), h = 0.2; the kink angle of the
  computed K against that of the exact K.
* Two collinear cracks (0.2 < |x| < 0.5) in the square of half-width 1, exact displacements on its
  boundary: K_I at all four tips against the closed form, tip covers, p = 1 and 2, graded cover.
* Deep energy method beside the NMM (Griffith, E = 1 so that u = O(1)): tanh MLPs 64 × 3 on the
  NMM's functional (the quadrature of the p = 1, h = 0.125 space with tip covers, degree 4 — the
  fan rules at the tips), Dirichlet data met exactly by ``nmm_nn.rectangle_ansatz``; x alone, and
  x with the four Williams functions of each tip (cut-off radius 0.6) as input features; Adam
  1e-3 for 3000 steps then 300 L-BFGS steps (``nmm_nn.train``).
* Growth: the re-cut of one step against a whole cut at 1e5 cells; a mode-I crack stays straight;
  an edge crack beside a hole turns toward it.
* Edge crack (a/W = 0.1 … 0.6) and centre crack (2a/W = 0.2 … 0.6) in the strip W = 1, H = 1.5
  (rollers at the bottom: a mirror plane) under σ = 1, against Tada's F; p = 2 (terms 3) on a
  graded cover (``MathCover.graded``: h = 0.3 far, 0.02 at the tips, growth 1.5).

Every solve uses the library's defaults but for the options named here. Usage::

    python benchmarks/fracture.py            # about 40 minutes on 2 cores
    python benchmarks/fracture.py dem collinear   # only these sections

Prints Markdown tables; writes results/fracture.json.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import jax.random as jr
import numpy as np
import shapely

import nmm
from experiments.cracks import collinear, griffith, inclined_crack, tada_centre, tada_edge, tension_strip
from nmm.fracture import kink_angle
from nmm.topology import cut, recut
from nmm_nn import MLP, Task, rectangle_ansatz, train


def solve(dom, form, mc, degree, enrich):
    t0 = time.perf_counter()
    V = nmm.ManifoldSpace(mc, dom, degree=degree, components=2, enrich=enrich)
    u = nmm.solve(V, form, throw=False)
    return V, u, time.perf_counter() - t0


def griffith_table(report):
    dom, exact, form, (k1, k2) = griffith()
    print(
        "\n| Griffith | p | h | unknowns | L2 | H1 | L2 rate | H1 rate | max K_I err | max K_II err |\n"
        + "|---" * 10
        + "|"
    )
    cases = [
        ("cut-off disc 0.6, terms 2", 1, (0.25, 0.125, 0.0625, 0.03125), dict(radius=0.6, terms=2)),
        ("cut-off disc 0.6, terms 3", 2, (0.25, 0.125, 0.0625), dict(radius=0.6, terms=3)),
        ("tip covers, terms 1", 1, (0.25, 0.125, 0.0625, 0.03125), dict(radius=None)),
        ("no tip functions", 1, (0.25, 0.125, 0.0625, 0.03125), None),
    ]
    report["griffith"] = {}
    for label, p, hs, opts in cases:
        rows, prev = [], None
        for h in hs:
            tips = (
                []
                if opts is None
                else [nmm.Enrichment.crack_tip(dom, 0, e, functions="elastic", **opts) for e in (0, -1)]
            )
            mc = nmm.MathCover.triangles(dom, h, offset=(0.03, 0.05))
            V, u, dt = solve(dom, form, mc, p, tips)
            err = nmm.errors(u, exact)
            ks = [nmm.stress_intensity(u, form, 0, e) for e in (0, -1)]
            e1 = max(abs(k.K_I / k1 - 1) for k in ks)
            e2 = max(abs(k.K_II / k2 - 1) for k in ks)
            rate = (
                ("", "")
                if prev is None
                else tuple(f"{np.log2(prev[k] / err[k]):.2f}" for k in ("L2", "H1"))
            )
            cells = [
                label,
                p,
                h,
                V.n_unknowns,
                f"{err['L2']:.2e}",
                f"{err['H1']:.2e}",
                *rate,
                f"{e1:.1e}",
                f"{e2:.1e}",
            ]
            print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)
            rows.append(
                {
                    "h": h,
                    "dofs": V.n_unknowns,
                    **err,
                    "K_I_err": e1,
                    "K_II_err": e2,
                    "radius": ks[0].radius,
                    "s": dt,
                }
            )
            prev = err
        report["griffith"][label] = rows


def inclined_table(report):
    print(
        "\n| inclined crack β | unknowns | K_I | exact | K_II | exact | max error / σ√(πa) "
        "| θ_c | θ_c of exact K |\n" + "|---" * 9 + "|"
    )
    report["inclined"] = []
    for deg in (0, 15, 30, 45, 60, 75):
        beta = np.radians(deg)
        dom, exact, form, (k1, k2) = inclined_crack(beta)
        tips = [
            nmm.Enrichment.crack_tip(dom, 0, e, functions="elastic", radius=0.9, terms=3)
            for e in (0, -1)
        ]
        mc = nmm.MathCover.triangles(dom, 0.2, offset=(0.03, 0.05))
        V, u, _ = solve(dom, form, mc, 2, tips)
        ks = [nmm.stress_intensity(u, form, 0, e) for e in (0, -1)]
        k0 = np.sqrt(np.pi * 0.5)
        worst = max(max(abs(k.K_I - k1), abs(k.K_II - k2)) for k in ks) / k0
        cells = [
            f"{deg}°",
            V.n_unknowns,
            f"{ks[1].K_I:.5f}",
            f"{k1:.5f}",
            f"{ks[1].K_II:.5f}",
            f"{k2:.5f}",
        ]
        th, th0 = np.degrees(ks[1].kink_angle), np.degrees(kink_angle(k1, k2))
        print(
            "| " + " | ".join(str(c) for c in cells) + f" | {worst:.1e} | {th:.2f}° | {th0:.2f}° |",
            flush=True,
        )
        report["inclined"].append(
            {
                "beta_deg": deg,
                "dofs": V.n_unknowns,
                "K": [[k.K_I, k.K_II] for k in ks],
                "exact": [k1, k2],
                "err": worst,
                "kink_deg": [th, th0],
            }
        )


def strip_table(report):
    print("\n| strip W = 1, H = 1.5 | a/W | unknowns | F (NMM) | Tada | error |\n" + "|---" * 6 + "|")
    report["strip"] = []
    cases = [("edge", r) for r in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)] + [
        ("centre", r) for r in (0.1, 0.2, 0.3)
    ]
    for kind, r in cases:
        if kind == "edge":
            a, crack, F, ends = r, [(0.0, 0.0), (r, 0.0)], tada_edge(r), (-1,)
            radius = 0.5  # the branch ray leaves the plate through the crack's mouth
        else:
            a, crack, F, ends = r, [(0.5 - r, 0.0), (0.5 + r, 0.0)], tada_centre(r), (0, -1)
            radius = min(0.5, 1.8 * r)  # short of the other tip
        dom, form = tension_strip(crack, height=1.5)
        tips = [
            nmm.Enrichment.crack_tip(dom, 0, e, functions="elastic", radius=radius, terms=3)
            for e in ends
        ]
        mc = nmm.MathCover.graded(dom, 0.3, 0.02, [crack[e] for e in ends], growth=1.5)
        V, u, _ = solve(dom, form, mc, 2, tips)
        Fs = [nmm.stress_intensity(u, form, 0, e).K_I / np.sqrt(np.pi * a) for e in ends]
        err = max(abs(f / F - 1) for f in Fs)
        label = f"{kind} crack" + ("" if kind == "edge" else " (2a/W)")
        ratio = r if kind == "edge" else 2 * r
        print(
            f"| {label} | {ratio:.1f} | {V.n_unknowns} | {Fs[0]:.4f} | {F:.4f} | {err:.1e} |", flush=True
        )
        report["strip"].append(
            {"kind": kind, "ratio": ratio, "dofs": V.n_unknowns, "F": Fs, "tada": F, "err": err}
        )


def recut_timing(report):
    """One growth step's re-cut against cutting the whole cover again, 1e5 cells (best of 3)."""
    c0 = [(0.0, 0.5), (0.43, 0.52)]
    dom0 = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)], cracks=[c0])
    mc = nmm.MathCover.triangles(dom0, 1 / 224, offset=(0.3, 0.2))
    topo0 = cut(mc, dom0)
    new = (0.43 + 0.05 * np.cos(0.3), 0.52 + 0.05 * np.sin(0.3))
    dom1 = nmm.Domain.polygon(dom0.outer, cracks=[c0 + [new]])
    seg = shapely.LineString([c0[-1], new])
    t_cut, t_re = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        cut(mc, dom1)
        t_cut.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        recut(topo0, mc, dom1, seg)
        t_re.append(time.perf_counter() - t0)
    a, b = min(t_cut), min(t_re)
    print("\n| cells | whole cut (s) | re-cut of one step (s) | ratio |\n|---|---|---|---|")
    print(f"| {len(mc.cells)} | {a:.3f} | {b:.4f} | {a / b:.1f} |")
    report["recut"] = {"cells": len(mc.cells), "cut_s": a, "recut_s": b}


def paths(report):
    """Growth: a mode-I Griffith crack (τ = 0) stays on its line; an edge crack passing a hole
    turns toward it (figure results/fracture_hole.png)."""
    dom, _, form, _ = griffith(tau=0.0)
    mc = nmm.MathCover.triangles(dom, 0.125, offset=(0.03, 0.05))
    hist = nmm.grow(dom, form, mc, step=0.15, n_steps=3, progress=False)
    dev = max(float(np.max(np.abs(np.asarray(p)[:, 1]))) for p in hist.paths.values())
    kinks = max(abs(r["kink_deg"]) for r in hist.steps)
    print(f"\nmode-I Griffith, 3 steps of 0.15 at both tips: max |y| {dev:.1e}, max kink {kinks:.2f}°")
    report["mode_I"] = {"max_y": dev, "max_kink_deg": kinks}
    hole = [
        (0.55 + 0.12 * np.cos(t), 0.25 + 0.12 * np.sin(t))
        for t in np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ]
    dom, form = tension_strip([(0.0, 0.0), (0.25, 0.0)], height=1.0, holes=[hole])
    mc = nmm.MathCover.triangles(dom, 0.04, offset=(0.013, 0.021))
    t0 = time.perf_counter()
    hist = nmm.grow(dom, form, mc, step=0.06, n_steps=10, out="results/fracture_hole", progress=False)
    path = np.asarray(hist.paths[(0, -1)])
    print(
        f"edge crack beside a hole (centre (0.55, 0.25), radius 0.12), p = 1, h = 0.04, steps of 0.06: "
        f"tip y = {', '.join(f'{y:.3f}' for y in path[:, 1])}; {hist.reason} "
        f"({time.perf_counter() - t0:.0f} s; figure results/fracture_hole/paths.png)"
    )
    report["hole"] = {"path": path.tolist(), "reason": hist.reason, "steps": hist.steps}


def collinear_table(report):
    dom, _, form, K = collinear()
    tips = [nmm.Enrichment.crack_tip(dom, c, e, functions="elastic") for c in (0, 1) for e in (0, -1)]
    print(
        "\n| two collinear cracks | p | unknowns | K_I err (-0.5) | (-0.2) | (0.2) | (0.5) "
        "| max K_II / K |\n" + "|---" * 8 + "|"
    )
    report["collinear"] = {"K": {f"{c},{e}": k for (c, e), k in K.items()}, "rows": []}
    for p in (1, 2):
        mc = nmm.MathCover.graded(dom, 0.25, 0.03, [t.point for t in tips], 1.5)
        V, u, dt = solve(dom, form, mc, p, tips)
        errs, k2 = [], 0.0
        for c in (0, 1):
            for e in (0, -1):
                k = nmm.stress_intensity(u, form, c, e)
                ref = K[(c, e)]
                errs.append(k.K_I / ref - 1)
                k2 = max(k2, abs(k.K_II) / ref)
        cells = [
            "tip covers, graded 0.25 → 0.03",
            p,
            V.n_unknowns,
            *(f"{x:+.1e}" for x in errs),
            f"{k2:.1e}",
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)
        report["collinear"]["rows"].append(
            {"p": p, "dofs": V.n_unknowns, "K_I_err": errs, "K_II": k2, "s": dt}
        )


def deep_energy(report):
    """The same Griffith SIFs from networks trained on the NMM's functional."""
    dom, exact, form, (k1, k2) = griffith(E=1.0)
    covers = [nmm.Enrichment.crack_tip(dom, 0, e, functions="elastic") for e in (0, -1)]
    mc = nmm.MathCover.triangles(dom, 0.125, offset=(0.03, 0.05))
    Vq = nmm.ManifoldSpace(mc, dom, degree=1, components=2, enrich=covers, quad_degree=4)
    task = Task.pde(form, Vq, exact=exact)

    def measure(name, size, model, space, compile_s, run_s):
        err = task.errors(model)
        ks = [nmm.stress_intensity(model, form, 0, e, space=space) for e in (0, -1)]
        row = {
            "method": name,
            "size": size,
            "loss": float(task.loss(model)),
            **{k: float(v) for k, v in err.items()},
            "K_I_err": max(abs(k.K_I / k1 - 1) for k in ks),
            "K_II_err": max(abs(k.K_II / k2 - 1) for k in ks),
            "compile_s": compile_s,
            "run_s": run_s,
        }
        print(
            f"| {name} | {size} | {row['loss']:.6f} | {row['L2']:.1e} | {row['H1']:.1e} | "
            f"{row['K_I_err']:.1e} | {row['K_II_err']:.1e} | {compile_s:.0f} + {run_s:.0f} |",
            flush=True,
        )
        return row

    print(
        f"\nDeep energy method on the NMM's functional ({task.points.shape[0]} points)\n"
        "| method | unknowns / parameters | energy | L2 | H1 | K_I err | K_II err "
        "| compile + run (s) |\n" + "|---" * 8 + "|"
    )
    rows = []
    for name, enrich in (
        ("NMM p = 1, no tip functions", None),
        ("NMM p = 1, cut-off 0.6, terms 2", dict(radius=0.6, terms=2)),
    ):
        tips = (
            []
            if enrich is None
            else [nmm.Enrichment.crack_tip(dom, 0, e, functions="elastic", **enrich) for e in (0, -1)]
        )
        t0 = time.perf_counter()
        solve(dom, form, mc, 1, tips)
        first = time.perf_counter() - t0
        V, u, again = solve(dom, form, mc, 1, tips)
        rows.append(measure(name, V.n_unknowns, u, None, max(first - again, 0.0), again))
    ansatz = rectangle_ansatz(exact, (-1.0, -1.0), (1.0, 1.0))
    features = [nmm.Enrichment.crack_tip(dom, 0, e, functions="elastic", radius=0.6) for e in (0, -1)]
    for name, feats in (("MLP 64×3 tanh, x", None), ("MLP 64×3 tanh, x + 8 tip functions", features)):
        net = MLP(2, 2, 64, 3, "tanh", key=jr.PRNGKey(0), features=feats, output_transform=ansatz)
        net, h1 = train(net, task, steps=3000, learning_rate=1e-3, chunk=500, progress=False)
        net, h2 = train(net, task, steps=300, optimizer="lbfgs", chunk=100, progress=False)
        rows.append(
            measure(
                name, net.n_params, net, Vq, h1.compile_time + h2.compile_time, h1.wall[-1] + h2.wall[-1]
            )
        )
    report["deep_energy"] = {"points": int(task.points.shape[0]), "rows": rows}


SECTIONS = {
    "griffith": griffith_table,
    "inclined": inclined_table,
    "strip": strip_table,
    "collinear": collinear_table,
    "dem": deep_energy,
    "recut": recut_timing,
    "paths": paths,
}


def main() -> None:
    names = sys.argv[1:] or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    out = Path("results/fracture.json")
    report: dict = json.loads(out.read_text()) if out.exists() and sys.argv[1:] else {}
    report["machine"] = platform.platform()
    Path("results").mkdir(exist_ok=True)
    for name in names:
        SECTIONS[name](report)
        out.write_text(json.dumps(report, indent=1))  # after every section: nothing lost


if __name__ == "__main__":
    main()
