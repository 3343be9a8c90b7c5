"""Viscous Burgers (ν = 0.01/π, u₀ = −sin πx, x ∈ [−1, 1], t ∈ [0, 1]): the NMM's time stepping
beside a PINN trained here and PINNacle's published best PINN, all against the Cole–Hopf solution.

    python benchmarks/burgers.py [--steps 20000] [--skip-pinn]

* NMM: ``experiments.problems.get("burgers")`` as the suite solves it — hat × Legendre p = 3 on 100
  intervals graded towards x = 0 (nodes ∝ sign(s)|s|², the problem's ``grading``), Crank–Nicolson
  (Rannacher start) with Δt = 0.002, Newton per step; plus a few other sizes and steps.
* PINN: PINNacle's setting (100 × 5 tanh MLP, Adam 1e-3, 20 000 full-batch steps) on the
  space-time PINN residual of :class:`nmm_nn.SpaceTimeTask` (the suite's collocation points).
* PINNacle (Hao et al. 2023, arXiv 2306.08827, Burgers 1d-C): best relative L2 ≈ 1.45e-2 — quoted,
  not rerun.

Errors: relative L2 over a uniform 256 × 101 space-time grid (x × t), and over the suite's grid
(the quadrature points of the problem's space × 11 times). Compile time apart from run time.
Writes ``results/burgers.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import nmm
from experiments import problems
from experiments.exact_nonlinear import burgers_cole_hopf
from experiments.methods import history_function
from nmm_nn import MLP, spacetime_errors, train

PINNACLE_BEST = 1.45e-2


def grid_error(u_of_x_t) -> float:
    """Relative L2 over 256 × 101 uniform points (x × t)."""
    x = np.linspace(-1, 1, 256)
    t = np.linspace(0, 1, 101)
    U = np.stack([u_of_x_t(x, ti) for ti in t])
    E = burgers_cole_hopf(x[None, :], t[:, None])
    return float(np.linalg.norm(U - E) / np.linalg.norm(E))


def run_nmm(prob, cells, degree, dt, method):
    space = prob.space(cells, degree)
    t_span, u0 = prob.transient[:2]
    every = round(0.01 / dt)

    def solve():
        h = nmm.integrate(space, prob.poisson, u0, t_span, dt, method=method, save_every=every)
        jax.block_until_ready(h.coeffs)
        return h

    t0 = time.perf_counter()
    solve()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    h = solve()
    run = time.perf_counter() - t0
    times = np.asarray(h.times)

    def at(x, t):
        i = int(np.argmin(np.abs(times - t)))
        return np.asarray(h.field(i)(jnp.asarray(x)[:, None]))

    suite = spacetime_errors(history_function(h), prob.exact, prob.quadrature_space(), t_span)
    return {
        "method": f"NMM p={degree}, {cells} graded cells, {method.upper()} dt={dt}",
        "unknowns": space.n_dofs,
        "L2_grid": grid_error(at),
        "L2_suite": suite["L2"],
        "compile_s": max(first - run, 0.0),
        "run_s": run,
        "newton_max": int(np.max(h.newton_steps)),
    }


def run_pinn(prob, steps, seed=0):
    space, task = prob.shared()
    net = MLP(2, "scalar", 100, 5, "tanh", key=jr.PRNGKey(seed))
    net, hist = train(net, task, steps=steps, learning_rate=1e-3, chunk=1000, progress=True)

    def at(x, t):
        z = jnp.stack([jnp.asarray(x), jnp.full(len(x), t)], axis=1)
        return np.asarray(jax.vmap(net)(z)).reshape(-1)

    return {
        "method": f"PINN (ours) tanh 100x5, Adam 1e-3 x {steps}",
        "unknowns": net.n_params,
        "L2_grid": grid_error(at),
        "L2_suite": task.errors(net)["L2"],
        "compile_s": hist.compile_time,
        "run_s": hist.wall[-1],
        "collocation_points": int(task.points.shape[0]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20000, help="PINN Adam steps (PINNacle: 20000)")
    parser.add_argument("--skip-pinn", action="store_true")
    args = parser.parse_args()
    prob = problems.get("burgers")
    rows = []
    for cells, degree, dt, method in [
        (100, 3, 0.002, "cn"),  # the suite's setting
        (100, 3, 0.002, "bdf2"),
        (100, 3, 0.001, "cn"),
        (50, 3, 0.005, "cn"),
    ]:
        rows.append(run_nmm(prob, cells, degree, dt, method))
        print(rows[-1], flush=True)
    if not args.skip_pinn:
        rows.append(run_pinn(prob, args.steps))
        print(rows[-1], flush=True)
    rows.append({"method": "PINNacle best (published, Hao et al. 2023)", "L2_grid": PINNACLE_BEST})
    print(
        "\n| method | unknowns / params | rel. L2 (256x101 grid) | rel. L2 (suite grid) "
        "| compile s | run s |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        cols = [
            r["method"],
            str(r.get("unknowns", "—")),
            f"{r['L2_grid']:.2e}",
            f"{r['L2_suite']:.2e}" if "L2_suite" in r else "—",
            f"{r['compile_s']:.1f}" if "compile_s" in r else "—",
            f"{r['run_s']:.1f}" if "run_s" in r else "—",
        ]
        print("| " + " | ".join(cols) + " |")
    out = Path("results")
    out.mkdir(exist_ok=True)
    (out / "burgers.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
