"""PInv (PINNacle's Poisson inverse problem) by NMM + Gauss–Newton and by a PINN, on the same data.

−∇·(a∇u) = f on [0, 1]², a = 1/(1 + x² + y² + (x−1)² + (y−1)²), u = sin πx sin πy; 2 500 grid
observations of u with noise σ = 0.1; a known on the boundary (the PINN task's 2 048 boundary
points; NMM reads them as data of a with σ = 1e-3), u = 0 on the boundary (both methods).

NMM: u on a 4 × 4 grid cover, degree 4 (375 unknowns); a an ``nmm.Field`` on a 2 × 2 grid cover,
degree 3 (90 coefficients), from a = mean of its boundary data; prior H1 with weight α on
∫|∇a|² + ∫a²; α from {1, 10, 100, 1e3, 1e4} by the largest Laplace log-evidence (data only); the
Laplace posterior's 95 % intervals of a checked on a 10 × 10 grid. PINN: ``nmm_nn.pinv_task`` with
the same seed (the same noisy values), one tanh MLP with outputs (u, a), Adam 1e-3.

Errors: relative L2 of a and of u on the task's uniform error grid (101 × 101), and PINNacle's
joint score (relative L2 of the stacked [u, a] on a 50 × 50 interior grid).

Usage::

    python benchmarks/inverse_pinv.py                      # NMM, then the PINN 64 × 3, 5 000 steps
    python benchmarks/inverse_pinv.py --steps 20000 --width 100 --depth 5   # PINNacle's network
    python benchmarks/inverse_pinv.py --skip-pinn --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import nmm
import nmm_nn
from nmm import inverse as inv
from nmm_nn.inverse import PINV

ALPHAS = (1.0, 10.0, 100.0, 1e3, 1e4)


def rel(pred, exact):
    return float(np.linalg.norm(np.asarray(pred) - exact) / np.linalg.norm(exact))


def scores(u_fn, a_fn, task):
    """(a L2, u L2, PINNacle joint) of callables on point arrays."""
    eu, ea = np.asarray(task.e_u).reshape(-1), np.asarray(task.e_a).reshape(-1)
    g = np.linspace(0, 1, 52)[1:-1]
    G = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    ue, ae = np.asarray(jax.vmap(PINV.exact_u)(G)), np.asarray(jax.vmap(PINV.exact_a)(G))
    up, ap = np.asarray(u_fn(G)), np.asarray(a_fn(G))
    joint = np.sqrt(np.sum((up - ue) ** 2) + np.sum((ap - ae) ** 2)) / np.sqrt(
        np.sum(ue**2) + np.sum(ae**2)
    )
    return (
        rel(a_fn(np.asarray(task.ea_points)), ea),
        rel(u_fn(np.asarray(task.e_points)), eu),
        float(joint),
    )


def nmm_run(task):
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=0.25), dom, degree=4)
    Q = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=0.5), dom, degree=3)
    f = nmm.manufactured_source(nmm.Poisson(k=PINV.exact_a), PINV.exact_u)
    obs_u = inv.Observations.at_points(task.obs_points, task.obs_values, 0.1, domain=dom)
    obs_a = inv.Observations.at_points(task.ab_points, task.ab_values, 1e-3, domain=dom)

    def forward(a):
        return nmm.solve(V, nmm.Poisson(k=a, f=f, dirichlet=0.0), throw=False), a

    a0 = nmm.fit(Q, lambda x: float(np.mean(np.asarray(task.ab_values))))

    def problem(alpha):
        alpha = jnp.asarray(alpha)
        return inv.InverseProblem(forward, (obs_u, obs_a), inv.H1(alpha, beta=alpha))

    t0 = time.perf_counter()
    jax.block_until_ready(
        inv.gauss_newton(problem(ALPHAS[0]), a0, max_steps=40, damping=1e-3).theta.coeffs
    )
    inv.log_evidence(problem(ALPHAS[0]), a0)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    runs = []
    for alpha in ALPHAS:
        res = inv.gauss_newton(problem(alpha), a0, max_steps=40, damping=1e-3, throw=False)
        runs.append((float(inv.log_evidence(problem(alpha), res.theta)), alpha, res))
    run_s = time.perf_counter() - t0
    ev, alpha, res = max(runs, key=lambda r: r[0])
    u = nmm.solve(V, nmm.Poisson(k=res.theta, f=f, dirichlet=0.0))
    post = inv.laplace(problem(alpha), res.theta)
    g = np.linspace(0.05, 0.95, 10)
    G = jnp.asarray(np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2))
    mean, std = post.predictive(lambda a: a(G))
    cover = float(jnp.mean(jnp.abs(mean - jax.vmap(PINV.exact_a)(G)) <= 1.96 * std))
    a_l2, u_l2, joint = scores(u, res.theta, task)
    print("  alpha   log-evidence  steps  status      |r|/sqrt(m)")
    for e, al, r in runs:
        print(
            f"  {al:7.0e} {e:13.2f}  {int(r.steps):5d}  {r.reason:10s}  {float(r.discrepancy_ratio):.4f}"
        )
    rms_std = float(jnp.sqrt(jnp.mean(std**2)))
    print(
        f"NMM  (evidence: alpha = {alpha:g}): a L2 {a_l2:.3e}  u L2 {u_l2:.3e}  joint {joint:.3e}  "
        f"steps {int(res.steps)}  run {run_s:.1f} s for {len(ALPHAS)} alphas (+ {compile_s:.1f} s "
        f"compile and first alpha)  posterior std of a (rms, 10x10) {rms_std:.2e}  "
        f"95% coverage {cover:.2f}"
    )
    return a_l2, u_l2, joint, run_s


def pinn_run(task, args, seed):
    net = nmm_nn.MLP(2, 2, args.width, args.depth, "tanh", key=jr.PRNGKey(seed))
    t0 = time.perf_counter()
    net, hist = nmm_nn.train(net, task, steps=args.steps, learning_rate=1e-3, chunk=500, progress=False)
    wall = time.perf_counter() - t0

    def u_fn(p):
        return jax.vmap(lambda z: net(z)[0])(jnp.asarray(p))

    def a_fn(p):
        return jax.vmap(lambda z: net(z)[1])(jnp.asarray(p))

    a_l2, u_l2, joint = scores(u_fn, a_fn, task)
    print(
        f"PINN ({args.width}x{args.depth} tanh, Adam 1e-3, {args.steps} steps): a L2 {a_l2:.3e}  "
        f"u L2 {u_l2:.3e}  joint {joint:.3e}  train {hist.wall[-1]:.1f} s (+ {hist.compile_time:.1f} s "
        f"compile; {wall:.1f} s wall)"
    )


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--skip-pinn", action="store_true")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5000)
    args = ap.parse_args()
    for seed in args.seeds:
        task = nmm_nn.pinv_task(2500, 0.1, seed=seed)
        print(f"== PInv, seed {seed} (the same noisy data for both methods)")
        nmm_run(task)
        if not args.skip_pinn:
            pinn_run(task, args, seed)


if __name__ == "__main__":
    main()
