"""The physics-informed network baseline of two coefficient inverse problems (PINNacle's PInv and
HInv), trained with ``nmm_nn.train``.

The PINNacle setting: one tanh MLP, 100 wide × 5 hidden layers, two outputs (u, a); Adam,
learning rate 1e-3, 20 000 full-batch steps; the data of :func:`nmm_nn.pinv_task` and
:func:`nmm_nn.hinv_task` (2 500 observations with noise σ = 0.1; PInv 8 192 collocation points,
HInv 32 768). Every size is an argument, to shrink the run on a small machine.

Prints per problem: the relative L2 errors of a and of u (and ∇u, max) on the tasks' uniform error
grids, the final loss and its parts, the steps, the training run time (compile time apart).

Usage::

    python benchmarks/inverse_pinn.py                                   # PINNacle setting, both
    python benchmarks/inverse_pinn.py --problem pinv --width 64 --depth 3 --steps 5000
    python benchmarks/inverse_pinn.py --problem hinv --collocation 4096 --steps 2000 --out r.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.random as jr
import numpy as np

import nmm_nn

PROBLEMS = ("pinv", "hinv")


def run(problem: str, args) -> dict:
    t0 = time.perf_counter()
    kw = {"n_collocation": args.collocation} if args.collocation else {}
    if args.boundary:
        kw["n_boundary"] = args.boundary
    if args.no_u_boundary:
        kw["u_boundary"] = False
    if problem == "pinv":
        task = nmm_nn.pinv_task(args.obs, args.sigma, seed=args.seed, **kw)
    else:
        if args.no_initial:
            kw["initial"] = False
        task = nmm_nn.hinv_task(args.obs, args.sigma, seed=args.seed, **kw)
    build = time.perf_counter() - t0
    net = nmm_nn.MLP(task.dim, 2, args.width, args.depth, "tanh", key=jr.PRNGKey(args.seed))
    net, hist = nmm_nn.train(
        net,
        task,
        steps=args.steps,
        learning_rate=args.lr,
        chunk=args.chunk,
        progress=args.progress,
    )
    errs = task.errors(net)
    return {
        "problem": problem,
        "network": f"tanh {args.width}x{args.depth}, out (u, a)",
        "params": net.n_params,
        "obs": int(task.obs_points.shape[0]),
        "sigma": args.sigma,
        "collocation": int(task.points.shape[0]),
        "steps": hist.steps,
        "learning_rate": args.lr,
        "a_L2": errs["a_L2"],
        "u_L2": errs["L2"],
        "u_H1": errs["H1"],
        "u_max": errs["max"],
        "a_max": errs["a_max"],
        "loss": float(hist.loss[-1]),
        "parts": task.parts(net),
        "train_s": hist.wall[-1],
        "compile_s": hist.compile_time,
        "build_s": build,
        "history": {"step": hist.step, "L2": hist.errors["L2"]},
    }


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", choices=(*PROBLEMS, "both"), default="both")
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--obs", type=int, default=2500, help="observations (PInv: a square)")
    ap.add_argument("--sigma", type=float, default=0.1, help="observation noise")
    ap.add_argument("--collocation", type=int, default=0, help="0: PINNacle's count")
    ap.add_argument("--boundary", type=int, default=0, help="boundary points; 0: the default")
    ap.add_argument("--no-u-boundary", action="store_true", help="no u = 0 term (PINNacle's bcs)")
    ap.add_argument("--no-initial", action="store_true", help="HInv: no initial-state term")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)

    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} {jax.default_backend()}, float64"
    )
    results = []
    for problem in PROBLEMS if args.problem == "both" else (args.problem,):
        r = run(problem, args)
        results.append(r)
        print(
            f"{r['problem']}: {r['network']} ({r['params']} params), {r['obs']} obs σ={r['sigma']}, "
            f"{r['collocation']} collocation, Adam lr {r['learning_rate']:g}, {r['steps']} steps"
        )
        print(
            f"  rel L2 a = {r['a_L2']:.3e}   rel L2 u = {r['u_L2']:.3e}   (∇u {r['u_H1']:.3e}, "
            f"max a {r['a_max']:.3e}, max u {r['u_max']:.3e})"
        )
        parts = ", ".join(f"{k} {v:.3e}" for k, v in r["parts"].items())
        print(f"  loss {r['loss']:.4e}: {parts}")
        print(
            f"  train {r['train_s']:.1f} s ({r['steps'] / r['train_s']:.1f} steps/s), "
            f"compile {r['compile_s']:.1f} s, build {r['build_s']:.1f} s"
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "results": results}, fh, indent=1)
    return results


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
