"""Figures of the network-cover bridge (nmm_nn), printed as markdown tables.

    .venv/bin/python benchmarks/nn_bridge_report.py [--steps 20000] [--out report.json]

1. to_mlp: max relative difference between a degree-0 NMM field and its ReLU network at 10^4
   random points of the domain (1D interval cover, 2D triangle cover of a domain with a hole).
2. covers: linear regions of the tent map and of random ReLU networks beside the bounds and the
   manifold elements / unknowns of an NMM space of similar size.
3. Training vs cover_solve: a degree-10 polynomial fit (1D) and a 2D Poisson problem; MLPs trained
   with Adam, then the output layer solved exactly on the last hidden layer; loss, gap and errors,
   beside the NMM solution on the same functional.
4. Functional DOF of the trained networks on the task's points vs their parameter count.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import shapely

import nmm
from nmm_nn import MLP, Task, cover_solve, covers, functional_dof, region_bound, tent_map, to_mlp, train

POLY = np.random.default_rng(7).standard_normal(11)


def _inside(dom, n, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = dom.bounds
    pts = rng.uniform(lo, hi, (4 * n, 2))
    return pts[shapely.contains_xy(dom.shape, pts[:, 0], pts[:, 1])][:n]


def to_mlp_rows():
    rows = []
    dom = nmm.Domain.interval(-1.0, 1.0)
    space = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 100), dom, degree=0)
    u = nmm.fit(space, lambda x: jnp.polyval(jnp.asarray(POLY), x[0]))
    x = np.random.default_rng(1).uniform(-1, 1, 10_000)
    net = to_mlp(u)
    err = np.max(np.abs(jax.vmap(net)(x[:, None]) - u(x))) / np.max(np.abs(u(x)))
    rows.append(("1D, 100 cells", net.widths, float(err)))
    th = np.linspace(0, 2 * np.pi, 41)[:-1]
    dom2 = nmm.Domain.polygon(
        [(0, 0), (1, 0), (1, 1), (0, 1)], holes=[np.c_[0.5 + 0.2 * np.cos(th), 0.5 + 0.2 * np.sin(th)]]
    )
    space2 = nmm.ManifoldSpace(nmm.MathCover.triangles(dom2, 0.05, offset=(0.3, 0.6)), dom2, degree=0)
    ex = lambda p: jnp.sin(3 * p[0]) * jnp.cos(2 * p[1])  # noqa: E731
    u2 = nmm.solve(space2, nmm.Poisson(f=lambda p: 13 * ex(p), dirichlet=ex))
    pts = _inside(dom2, 10_000)
    net2 = to_mlp(u2)
    err2 = np.max(np.abs(jax.vmap(net2)(jnp.asarray(pts)) - u2(pts))) / np.max(np.abs(u2(pts)))
    rows.append(("2D, h=0.05, hole", net2.widths, float(err2)))
    return rows


def region_rows():
    rows = []
    for depth in (1, 5, 10):
        c = covers(tent_map(depth), nmm.Domain.interval(0.0, 1.0))
        rows.append(
            (
                f"tent map depth {depth}",
                c.n_regions,
                c.n_pieces,
                region_bound(tent_map(depth)),
                c.n_params,
                "",
                "",
            )
        )
    square = nmm.Domain.polygon([(-1, -1), (1, -1), (1, 1), (-1, 1)])
    for width, depth in ((16, 2), (32, 3), (64, 3)):
        net = MLP(2, "scalar", width, depth, "relu", key=jr.PRNGKey(0))
        t0 = time.perf_counter()
        c = covers(net, square)
        secs = time.perf_counter() - t0
        space = nmm.ManifoldSpace(
            nmm.MathCover.triangles(square, 2.0 / np.sqrt(c.n_regions / 2)), square, degree=0
        )
        rows.append(
            (
                f"relu {width}x{depth} on [-1,1]² ({secs:.2f} s)",
                c.n_regions,
                c.n_pieces,
                region_bound(net),
                c.n_params,
                space.n_elements,
                space.n_dofs,
            )
        )
    return rows


def training_rows(steps: int):
    rows = []
    dom = nmm.Domain.interval(-1.0, 1.0)
    space = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, 171), dom, degree=1)  # 513 points
    poly = lambda x: jnp.polyval(jnp.asarray(POLY), x[0])  # noqa: E731
    square = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    space2 = nmm.ManifoldSpace(nmm.MathCover.triangles(square, 0.1), square, degree=1)
    ex = lambda x: jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])  # noqa: E731
    prob = nmm.Poisson(f=lambda x: 2 * jnp.pi**2 * ex(x), dirichlet=0.0)
    cases = [
        ("fit deg-10 poly", Task.fit(poly, space), nmm.fit(space, poly), 1),
        ("Poisson 2D (Ritz, Nitsche)", Task.poisson(prob, space2, exact=ex), nmm.solve(space2, prob), 2),
    ]
    for name, task, field, dim in cases:
        nmm_loss = float(task.field_loss(field))
        nmm_err = task.errors(lambda x, f=field: f(x[None])[0])["L2"]
        for act in ("tanh", "relu"):
            net = MLP(dim, "scalar", 64, 3, act, key=jr.PRNGKey(0))
            trained, hist = train(net, task, steps=steps, chunk=1000, learning_rate=1e-3, progress=False)
            res = cover_solve(trained, task)
            dof = functional_dof(trained, task.points[:: max(1, len(task.points) // 600)])
            rows.append(
                (
                    name,
                    f"{act} 64x3",
                    hist.wall[-1],
                    res.loss_trained,
                    res.loss,
                    res.gap,
                    res.errors_trained["L2"],
                    res.errors["L2"],
                    nmm_loss,
                    nmm_err,
                    f"{dof.rank}/{dof.n_params} ({dof.n_points} pts)",
                    field.space.n_dofs,
                )
            )
    return rows


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    report = {"to_mlp": to_mlp_rows(), "regions": region_rows(), "training": training_rows(args.steps)}
    print("| field | hidden widths | max rel. difference |\n|---|---|---|")
    for r in report["to_mlp"]:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1e} |")
    print(
        "\n| network | regions | pieces | bound | params | NMM elements | NMM unknowns |\n"
        + "|---" * 7
        + "|"
    )
    for r in report["regions"]:
        print("| " + " | ".join(str(v) for v in r) + " |")
    print(
        f"\n| task | net | train s ({args.steps} Adam steps) | loss trained | loss cover-solved | gap | "
        "L2 trained | L2 cover-solved | NMM loss | NMM L2 | functional DOF | NMM unknowns |"
    )
    print("|---" * 12 + "|")
    for r in report["training"]:
        print(
            f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.6g} | {r[4]:.6g} | {r[5]:.2e} | {r[6]:.2e} | "
            f"{r[7]:.2e} | {r[8]:.6g} | {r[9]:.2e} | {r[10]} | {r[11]} |"
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
