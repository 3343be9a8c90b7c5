"""Batched solves with different matrices: one ``jax.vmap`` against a Python loop.

One run, side by side in one process, compile time apart from run time (compile = first call
minus the best later call), every timed call ends in ``block_until_ready``, the best of the
timed calls after a warm-up is reported, nmm's factor cache emptied after every call.

Problem: -∇·(k ∇u) = f on the unit square, u = g on ∂Ω by Nitsche, exact u = sin(πx) sin(πy) +
x y, k = 1 + θ₀ x + θ₁ y with a different θ in [0, 1]² for every batch member (so every member
has its own matrix: assembly, factorisation and solve are all per member). Cases:

* p = 0 on an aligned triangle cover with h = 1/99: 1e4 unknowns;
* p = 8 on h = 1/4: 1 125 unknowns (45 cover functions on each of 25 covers).

Solvers (each the whole ``nmm.solve``):

* ``loop``: a Python loop over one jitted ``nmm.solve`` (the default solver, SuperLU on the
  host), one member at a time;
* ``vmap, 1 thread``: one jitted ``jax.vmap`` of the same solve, host factorisations one after
  another (``NMM_HOST_THREADS=1``: what the host path did before it threaded);
* ``vmap``: the same with the default host threads (one per CPU);
* ``chunked``: ``nmm.parallel.chunked_vmap`` with its default ``chunk=8`` (the batch 8 members at
  a time: ``jax.lax.map`` with ``batch_size=8``), default solver and threads;
* ``vmap DenseLU`` (p = 8 only): the batched dense LU in JAX (``nmm.linalg.DenseLU()``);
* ``loop AMG`` / ``vmap AMG`` (p = 0 only): CG with the multigrid V-cycle in JAX
  (``solver="amg"``), one member at a time and batched.

Then the default ``vmap`` over batch sizes 1 … 256 (time per solve), and the batch of the main
table in chunks of 4, 8, 16 and 32.

Usage::

    python benchmarks/batch_solve.py                 # both cases, batch 64, sweep (~6 min, 2 cores)
    python benchmarks/batch_solve.py --quick         # smaller problems, batch 8
    python benchmarks/batch_solve.py --render results/bench_batch_solve.json

Prints Markdown tables and writes the raw results to ``results/bench_batch_solve.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from provenance import git_state, write_result  # shared by the benchmarks

import nmm
from nmm.parallel import chunked_vmap

CASES = {"default": [(99, 0), (4, 8)], "quick": [(31, 0), (2, 8)]}
SWEEP = {"default": (1, 4, 16, 64, 256), "quick": (1, 4, 16)}
# one vmap of 256 p = 8 solves (1 125 unknowns each) needed more than this machine's 24 GiB (the
# kernel killed the run, 2026-12-06); the p = 8 sweep stops at 64
SWEEP_MAX = {0: 256, 8: 64}
CHUNKS = {"default": (4, 8, 16, 32), "quick": (2, 4)}


def exact(x):
    return jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1]) + x[0] * x[1]


def source(x, th):
    # f = -∇·(k ∇u) for k = 1 + θ₀ x + θ₁ y: written out so that the data stay one-point
    # callables of (x, θ)
    k = 1.0 + th[0] * x[0] + th[1] * x[1]
    grad_u = jax.grad(exact)(x)
    lap = -2.0 * jnp.pi**2 * jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])
    return -(k * lap + th[0] * grad_u[0] + th[1] * grad_u[1])


PROBLEM = nmm.Poisson(
    k=lambda x, th: 1.0 + th[0] * x[0] + th[1] * x[1],
    f=source,
    dirichlet=lambda x, th: exact(x),
)


def space(n: int, p: int) -> nmm.ManifoldSpace:
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    return nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=1.0 / n), dom, degree=p)


def _ready(out):
    return jax.block_until_ready(out)


def _timed(fn, reps: int) -> dict:
    ts = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        _ready(fn())
        ts.append(time.perf_counter() - t0)
        nmm.linalg.clear_factor_cache()
    best = min(ts[1:])
    return {"s": best, "compile_s": max(0.0, ts[0] - best), "all_s": ts}


class _threads:
    """``NMM_HOST_THREADS`` set for the duration of a block (read at every host call)."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.old = os.environ.get("NMM_HOST_THREADS")
        if self.n is not None:
            os.environ["NMM_HOST_THREADS"] = str(self.n)

    def __exit__(self, *exc):
        if self.old is None:
            os.environ.pop("NMM_HOST_THREADS", None)
        else:
            os.environ["NMM_HOST_THREADS"] = self.old


def case(n: int, p: int, batch: int, reps: int, sweep, chunks) -> dict:
    V = space(n, p)
    thetas = jax.random.uniform(jax.random.PRNGKey(0), (max(batch, *sweep), 2))

    def solver_fn(solver):
        return lambda t: nmm.solve(V, PROBLEM, params=t, solver=solver).coeffs

    one = eqx.filter_jit(solver_fn(None))
    batched = eqx.filter_jit(jax.vmap(solver_fn(None)))
    th = thetas[:batch]

    def loop():
        return [_ready(one(th[i])) for i in range(batch)]

    out = {"n": n, "p": p, "dofs": int(V.n_dofs), "batch": batch}
    out["loop"] = _timed(loop, reps)
    with _threads(1):
        out["vmap_1_thread"] = _timed(lambda: batched(th), reps)
    out["vmap"] = _timed(lambda: batched(th), reps)
    chunked = chunked_vmap(solver_fn(None))  # default chunk
    out["chunked"] = _timed(lambda: chunked(th), reps)
    # p >= 1 coefficients are not unique (linearly dependent cover functions): compare fields
    pts = jax.random.uniform(jax.random.PRNGKey(1), (64, 2), minval=0.01, maxval=0.99)

    def values(X):
        return jax.vmap(lambda c: nmm.Field(V, c)(pts))(X)

    X = batched(th)
    Ul = values(jnp.stack(loop()))
    out["vmap_vs_loop_rel_diff"] = float(jnp.max(jnp.abs(values(X) - Ul)) / jnp.max(jnp.abs(Ul)))
    Uc = values(chunked(th))
    out["chunked_vs_loop_rel_diff"] = float(jnp.max(jnp.abs(Uc - Ul)) / jnp.max(jnp.abs(Ul)))
    # accuracy of member 0 against the exact solution (all members share it)
    out["rel_L2_member0"] = float(nmm.errors(nmm.Field(V, X[0]), exact)["L2"])
    if V.n_dofs <= 4000:
        dense = eqx.filter_jit(jax.vmap(solver_fn(nmm.linalg.DenseLU())))
        out["vmap_denselu"] = _timed(lambda: dense(th), reps)
        Ud = values(dense(th))
        out["denselu_vs_loop_rel_diff"] = float(jnp.max(jnp.abs(Ud - Ul)) / jnp.max(jnp.abs(Ul)))
    if p == 0:  # AMG-preconditioned CG in JAX (nmm.linalg.AMG): a loop of it against its vmap
        amg_one = eqx.filter_jit(solver_fn("amg"))
        amg_batched = eqx.filter_jit(jax.vmap(solver_fn("amg")))
        out["loop_amg"] = _timed(lambda: [_ready(amg_one(th[i])) for i in range(batch)], reps)
        out["vmap_amg"] = _timed(lambda: amg_batched(th), reps)
        Ua = values(amg_batched(th))
        out["amg_vs_loop_rel_diff"] = float(jnp.max(jnp.abs(Ua - Ul)) / jnp.max(jnp.abs(Ul)))
        out["speedup_vmap_amg_over_loop_amg"] = out["loop_amg"]["s"] / out["vmap_amg"]["s"]
    for k in ("vmap_1_thread", "vmap", "chunked", "vmap_denselu", "vmap_amg"):
        if k in out:
            out[f"speedup_{k}"] = out["loop"]["s"] / out[k]["s"]
    out["sweep"] = []
    for b in sweep:
        t = _timed(lambda b=b: batched(thetas[:b]), max(1, reps - 1))
        out["sweep"].append({"batch": b, **t, "per_solve_s": t["s"] / b})
        print(f"    batch {b}: {t['s']:.3f} s", file=sys.stderr, flush=True)
    out["chunks"] = []
    for c in chunks:
        fn = chunked_vmap(solver_fn(None), chunk=c)
        t = _timed(lambda fn=fn: fn(th), max(1, reps - 1))
        out["chunks"].append({"chunk": c, **t, "speedup_over_loop": out["loop"]["s"] / t["s"]})
        print(f"    chunk {c}: {t['s']:.3f} s", file=sys.stderr, flush=True)
    return out


def _f(x) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def markdown(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(_f(v) for v in r) + " |" for r in rows])


def render(result: dict) -> str:
    m = result["meta"]
    parts = [
        f"Machine: {m['machine']}, JAX {m['versions']['jax']}, nmm {m['nmm_git']}; "
        f"load average {m['loadavg_start'][0]:.2f} at the start.",
        "",
        markdown(
            [
                "p",
                "unknowns",
                "batch",
                "loop s",
                "vmap 1 thread s",
                "vmap s",
                "chunked (8) s",
                "vmap DenseLU s",
                "speed-up vmap / loop",
                "speed-up chunked / loop",
                "speed-up DenseLU / loop",
                "vmap vs loop",
            ],
            [
                [
                    r["p"],
                    r["dofs"],
                    r["batch"],
                    r["loop"]["s"],
                    r["vmap_1_thread"]["s"],
                    r["vmap"]["s"],
                    r["chunked"]["s"],
                    r["vmap_denselu"]["s"] if "vmap_denselu" in r else "-",
                    r["speedup_vmap"],
                    r["speedup_chunked"],
                    r.get("speedup_vmap_denselu", "-"),
                    f"{r['vmap_vs_loop_rel_diff']:.1e}",
                ]
                for r in result["cases"]
            ],
        ),
        "",
        'AMG (`solver="amg"`, p = 0): '
        + "; ".join(
            f"p = {r['p']}: loop {r['loop_amg']['s']:.3g} s, vmap {r['vmap_amg']['s']:.3g} s, "
            f"vmap / loop {r['speedup_vmap_amg_over_loop_amg']:.2f}x, vmap / default loop "
            f"{r['speedup_vmap_amg']:.2f}x, fields vs the default loop "
            f"{r['amg_vs_loop_rel_diff']:.1e}"
            for r in result["cases"]
            if "vmap_amg" in r
        ),
        "",
        "Compile (first call less the best later one), s: "
        + "; ".join(
            f"p = {r['p']}: loop {r['loop']['compile_s']:.2f}, "
            f"vmap {r['vmap_1_thread']['compile_s']:.2f}"
            for r in result["cases"]
        ),
        "",
        markdown(
            ["p", "batch", "vmap s", "per solve s"],
            [
                [r["p"], s["batch"], s["s"], s["per_solve_s"]]
                for r in result["cases"]
                for s in r["sweep"]
            ],
        ),
        "",
        markdown(
            ["p", "batch", "chunk", "s", "speed-up over loop"],
            [
                [r["p"], r["batch"], c["chunk"], c["s"], c["speedup_over_loop"]]
                for r in result["cases"]
                for c in r.get("chunks", [])
            ],
        ),
    ]
    return "\n".join(parts)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small problems, batch 8")
    ap.add_argument("--batch", type=int, default=None, help="batch size of the main table")
    ap.add_argument("--reps", type=int, default=2, help="timed calls after the warm-up")
    ap.add_argument("--out", default="results/bench_batch_solve.json")
    ap.add_argument("--render", metavar="JSON", help="only print the tables of an earlier run")
    args = ap.parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return
    mode = "quick" if args.quick else "default"
    batch = args.batch or (8 if args.quick else 64)
    if batch < 1 or args.reps < 1:
        ap.error(f"--batch and --reps must be positive, got {batch} and {args.reps}")
    result = {
        "meta": {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"{jax.default_backend()}",
            "nmm_git": git_state(),
            "versions": {"jax": jax.__version__, "numpy": np.__version__},
            "loadavg_start": os.getloadavg(),
            "host_threads": nmm.linalg.superlu.host_threads(),
        },
        "cases": [],
    }
    t_start = time.perf_counter()
    for n, p in CASES[mode]:
        t0 = time.perf_counter()
        sweep = tuple(b for b in SWEEP[mode] if b <= SWEEP_MAX.get(p, max(SWEEP[mode])))
        result["cases"].append(case(n, p, batch, args.reps, sweep, CHUNKS[mode]))
        print(f"  p={p} n={n}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        # the finished cases on disk as each ends: a killed run keeps them
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    result["meta"]["loadavg_end"] = os.getloadavg()
    result["meta"]["wall_s"] = time.perf_counter() - t_start
    write_result(result, render(result), args.out)


if __name__ == "__main__":
    main()
