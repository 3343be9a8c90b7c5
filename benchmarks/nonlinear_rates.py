"""h-convergence and Newton cost of the nonlinear scalar forms on the cracked L-shape with a hole.

For each form (``nmm.PowerReaction`` m = 3, 5, 7, 9, ``nmm.NonlinearDiffusion``,
``nmm.PLaplacian`` p = 4, ``nmm.AllenCahn`` ε = 0.3; ``nmm.Poisson`` as the linear reference) the
exact solution u = sin(2x + 0.5) cos(1.5y) + 0.5xy is manufactured with
``nmm.manufactured_source`` (the form's own strong residual), its Dirichlet data hold on ∂Ω
(Nitsche) and the crack faces carry the exact flux r1(u, ∇u)·n of the same form. Triangle covers
not aligned with the boundary (offset (0.37, 0.21)), space degree p; relative L2 and H1-seminorm
errors on the finer error rule of ``nmm.errors``; slopes between successive h.

Newton starts from zero, except the p-Laplacian (degenerate where ∇u = 0: its tangent vanishes
at u = 0), which starts from the Poisson solution on the same space. "solve s" is the run time of
a second, identical solve (same shapes, already compiled), "compile s" the first call minus it.

Usage::

    python benchmarks/nonlinear_rates.py            # 7 forms + Poisson, p = 1, 2, 3, h = 0.4, 0.2, 0.1
    python benchmarks/nonlinear_rates.py --quick    # PowerReaction m = 3, 9 and the p-Laplacian,
                                                    # p = 1, 2, h = 0.4, 0.2

Prints a Markdown table; writes results/nonlinear_rates.json.
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
    return jnp.sin(2 * x[0] + 0.5) * jnp.cos(1.5 * x[1]) + 0.5 * x[0] * x[1]


# name -> constructor of the form with the given data (no data: the form whose residual defines
# the manufactured source and the crack flux)
FORMS = {
    "Poisson": lambda **kw: nmm.Poisson(**kw),
    "PowerReaction m=3": lambda **kw: nmm.PowerReaction(m=3, **kw),
    "PowerReaction m=5": lambda **kw: nmm.PowerReaction(m=5, **kw),
    "PowerReaction m=7": lambda **kw: nmm.PowerReaction(m=7, **kw),
    "PowerReaction m=9": lambda **kw: nmm.PowerReaction(m=9, **kw),
    "NonlinearDiffusion": lambda **kw: nmm.NonlinearDiffusion(**kw),
    "PLaplacian p=4": lambda **kw: nmm.PLaplacian(p=4, stiffness=10.0, **kw),
    "AllenCahn eps=0.3": lambda **kw: nmm.AllenCahn(eps=0.3, **kw),
}


def problem(make) -> nmm.Form:
    """The manufactured problem of one form: source, Dirichlet data and crack-face flux."""
    base = make()
    f = nmm.manufactured_source(base, exact)
    flux = lambda x, n: jnp.dot(base.residual(x, exact(x), jax.grad(exact)(x), None)[1], n)  # noqa: E731
    return make(f=f, dirichlet=exact, crack_neumann=flux)


def timed_solve(V, prob, x0):
    """Solve twice: the first call compiles, the second (same shapes) is the run time."""
    t0 = time.perf_counter()
    u = nmm.solve(V, prob, x0=x0, throw=False)
    jax.block_until_ready(u.coeffs)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    u = nmm.solve(V, prob, x0=x0, throw=False)
    jax.block_until_ready(u.coeffs)
    run = time.perf_counter() - t0
    return u, run, first - run


def run(forms: list[str], degrees: list[int], hs: list[float]) -> list[dict]:
    dom = domain()
    spaces = {}
    poisson = {}
    pois = problem(FORMS["Poisson"])
    rows = []
    for name in forms:
        prob = problem(FORMS[name])
        for p in degrees:
            rec = {k: [] for k in ("dofs", "L2", "H1", "steps", "result", "solve_s", "compile_s")}
            for h in hs:
                if (p, h) not in spaces:
                    cover = nmm.MathCover.triangles(dom, h, offset=(0.37, 0.21))
                    spaces[p, h] = nmm.ManifoldSpace(cover, dom, degree=p)
                V = spaces[p, h]
                x0 = None
                if name.startswith("PLaplacian"):
                    if (p, h) not in poisson:
                        poisson[p, h] = nmm.solve(V, pois).coeffs
                    x0 = poisson[p, h]
                u, secs, comp = timed_solve(V, prob, x0)
                ok = int(u.info.result) == 0
                e = nmm.errors(u, exact) if ok else {"L2": float("nan"), "H1": float("nan")}
                rec["dofs"].append(int(V.n_dofs))
                rec["L2"].append(float(e["L2"]))
                rec["H1"].append(float(e["H1"]))
                rec["steps"].append(int(u.info.newton_steps))
                rec["result"].append(int(u.info.result))
                rec["solve_s"].append(secs)
                rec["compile_s"].append(comp)
                print(
                    f"{name}, p = {p}, h = {h}: {V.n_dofs} unknowns, L2 {e['L2']:.3e}, "
                    f"H1 {e['H1']:.3e}, {int(u.info.newton_steps)} Newton steps, result "
                    f"{int(u.info.result)}, solve {secs:.3f} s (compile {comp:.1f} s)",
                    flush=True,
                )
            slope = lambda err: list(np.diff(np.log(err)) / np.diff(np.log(hs)))  # noqa: E731
            rows.append(
                {
                    "form": name,
                    "p": p,
                    "h": hs,
                    **rec,
                    "L2_slopes": slope(rec["L2"]),
                    "H1_slopes": slope(rec["H1"]),
                }
            )
    return rows


def table(rows: list[dict]) -> str:
    out = [
        "| form | p | h | unknowns | L2 | H1 | L2 rate | H1 rate | Newton steps | solve s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for i, h in enumerate(r["h"]):
            rate = lambda s, i=i: "" if i == 0 else f"{s[i - 1]:.2f}"  # noqa: E731
            out.append(
                f"| {r['form']} | {r['p']} | {h} | {r['dofs'][i]} | {r['L2'][i]:.2e} | "
                f"{r['H1'][i]:.2e} | {rate(r['L2_slopes'])} | {rate(r['H1_slopes'])} | "
                f"{r['steps'][i]} | {r['solve_s'][i]:.3f} |"
            )
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/nonlinear_rates.json")
    args = ap.parse_args(argv)
    if args.quick:
        forms = ["PowerReaction m=3", "PowerReaction m=9", "PLaplacian p=4"]
        degrees, hs = [1, 2], [0.4, 0.2]
    else:
        forms = list(FORMS)
        degrees, hs = [1, 2, 3], [0.4, 0.2, 0.1]
    t0 = time.perf_counter()
    rows = run(forms, degrees, hs)
    print()
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"machine": platform.node(), "seconds": time.perf_counter() - t0, "rows": rows},
            indent=1,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
