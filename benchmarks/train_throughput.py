"""Training throughput (optimiser steps per second) of the MLPs of the NMM-vs-MLP comparison.

For each problem and network, the same Adam run (learning rate 1e-3, the same number of steps, the
same initial network) is timed in three ways, side by side in one process, compile time apart from
run time:

* ``scan``: the library path, ``nmm_nn.train(..., chunk=C, progress=False)``: ``C`` steps per
  jitted ``lax.scan`` call, compiled ahead of time. Run time = ``history.wall[-1]`` (it includes
  the per-chunk copy of the losses to the host, not the per-chunk error evaluation); compile time
  = ``history.compile_time``.
* ``loop``: a plain Python loop over one jitted step (``jax.value_and_grad`` of
  ``task.loss(eqx.combine(params, static))`` + ``optax`` update + ``apply_updates``), compiled
  ahead of time (``.lower().compile()``); the loop as a user writes it when not logging: no
  synchronisation per step, ``block_until_ready`` on the final parameters only.
* ``loop+log``: the same loop with ``float(loss)`` every step (one device-to-host sync per step,
  as when printing or storing the loss).

All three run the same steps from the same network, so they must end at the same loss: the
relative difference of the final losses (scan vs loop) is printed and checked (< ``--tol``).

Problems (those of the comparison):

* ``fit1d``: L2 fit of a random degree-10 polynomial on [-1, 1] (``Task.fit``), on the quadrature
  of a degree-1 space on 171 intervals (3 points each: 513 points);
* ``poisson2d``: -Δu = f on the unit square, u = 0 on the boundary (Nitsche), exact
  u = sin(πx) sin(πy), Ritz form (``Task.poisson``), on the quadrature of a degree-1 space on the
  triangle cover h = 1/16 (4608 volume + 192 boundary points);
* ``poisson2d-pinn``: the same in the PINN (strong) form, tanh networks only (the Laplacian of a
  ReLU network is zero almost everywhere).

Networks: tanh 64x2, 64x3, 64x4 and relu 64x3 (``--quick``: tanh and relu 64x3, no PINN case).
Steps (the same for the three modes of a case): 2000 for fit1d, 400 for poisson2d, 200 for the
PINN (a 2D step costs 10-100 times a 1D one); ``--quick``: 200 and 100; ``--steps N``: N for all.

Besides steps/s the table gives the system (kernel) CPU time of each mode and the XLA scratch
memory of one step: XLA on CPU allocates a step's scratch buffer at every call, so the loop
page-faults it in afresh every step while a scan chunk does so once per chunk.

Usage::

    python benchmarks/train_throughput.py              # all cases (~4-5 min on 2 cores)
    python benchmarks/train_throughput.py --quick      # 64x3 tanh/relu, fewer steps (~40 s)
    python benchmarks/train_throughput.py --repeats 2  # each mode twice, interleaved, best kept
    python benchmarks/train_throughput.py --steps 1000 --chunk 250 --out results/train_throughput.json

Prints a Markdown table; with ``--out`` also writes the raw results (and machine info) as JSON.
Exits with an error if a loop's final loss differs from the scan path's by more than ``--tol``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import nmm
import nmm_nn
from nmm_nn.mlp import trainable

LEARNING_RATE = 1e-3
WIDTH = 64
FIT_INTERVALS = 171  # x 3 quadrature points of the degree-1 space = 513 points
POISSON_H = 1.0 / 16  # 512 triangles x 9 points = 4608 volume points (+ 192 boundary)

# per run size: (activation, depth) of the networks, and Adam steps per problem (the 2D steps cost
# 10-100x the 1D ones; --steps overrides them all). PINN cases use tanh networks only.
NETS = {
    "quick": [("tanh", 3), ("relu", 3)],
    "default": [("tanh", 2), ("tanh", 3), ("tanh", 4), ("relu", 3)],
}
PINN_NETS = {"quick": [], "default": [("tanh", 3)]}
STEPS = {
    "quick": {"fit1d": 200, "poisson2d": 100},
    "default": {"fit1d": 2000, "poisson2d": 400, "poisson2d-pinn": 200},
}


# ================================================================================ problems


def fit_problem(seed: int = 0) -> nmm_nn.Task:
    """L2 fit of a random degree-10 polynomial (N(0, 1) monomial coefficients) on [-1, 1]."""
    coeffs = jnp.asarray(np.random.default_rng(seed).standard_normal(11))

    def target(x):
        return jnp.polyval(coeffs, x[0])

    dom = nmm.Domain.interval(-1.0, 1.0)
    space = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, FIT_INTERVALS), dom, degree=1)
    return nmm_nn.Task.fit(target, space)


def poisson_problem(form: str) -> nmm_nn.Task:
    """-Δu = 2π² sin(πx) sin(πy) on the unit square, u = 0 on the boundary."""

    def exact(x):
        return jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])

    def source(x):
        return 2.0 * jnp.pi**2 * exact(x)

    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    space = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, POISSON_H), dom, degree=1)
    problem = nmm.Poisson(k=1.0, f=source, dirichlet=0.0)
    return nmm_nn.Task.poisson(problem, space, form=form, exact=exact)


def cases(quick: bool, steps: int | None) -> list[tuple[str, nmm_nn.Task, str, int, int]]:
    """(problem name, task, activation, depth, steps) for every measured case."""
    size = "quick" if quick else "default"
    problems = {
        "fit1d": (fit_problem, NETS[size]),
        "poisson2d": (lambda: poisson_problem("ritz"), NETS[size]),
        "poisson2d-pinn": (lambda: poisson_problem("pinn"), PINN_NETS[size]),
    }
    out = []
    for name, (build, nets) in problems.items():
        if nets:
            task = build()
            n = steps if steps is not None else STEPS[size][name]
            out += [(name, task, act, depth, n) for act, depth in nets]
    return out


def n_points(task: nmm_nn.Task) -> int:
    return int(task.points.shape[0] + task.b_points.shape[0])


# ================================================================================ the three modes


def _rusage() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def timed(fn, *args, **kw) -> dict:
    """``fn``'s result dict plus the process's user and system CPU seconds and minor page faults
    during the call (compile included: XLA compiles on the same threads)."""
    u0, s0, f0 = _rusage()
    out = fn(*args, **kw)
    u1, s1, f1 = _rusage()
    return {**out, "user_s": u1 - u0, "sys_s": s1 - s0, "minor_faults": f1 - f0}


def run_scan(net, task, steps: int, chunk: int) -> dict:
    """The library path: jitted lax.scan chunks, AOT-compiled inside ``train``."""
    trained, hist = nmm_nn.train(
        net, task, steps=steps, learning_rate=LEARNING_RATE, chunk=chunk, progress=False
    )
    return {"compile_s": hist.compile_time, "run_s": hist.wall[-1], "net": trained}


def make_step(static, opt):
    """One Adam step as a user would jit it: value_and_grad + optax update + apply_updates."""

    def step(params, state, task):
        def loss_fn(p):
            return task.loss(eqx.combine(p, static))

        value, grad = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grad, state, params)
        return optax.apply_updates(params, updates), state, value

    return jax.jit(step)


def run_loop(net, task, steps: int, log: bool) -> dict:
    """A Python loop over one AOT-compiled step; ``log``: ``float(loss)`` (a host sync) per step."""
    opt = optax.adam(LEARNING_RATE)
    params, static = eqx.partition(net, trainable(net))
    state = opt.init(params)
    t0 = time.perf_counter()
    step = make_step(static, opt).lower(params, state, task).compile()
    compile_s = time.perf_counter() - t0
    mem = step.memory_analysis()  # None where the backend does not say
    temp_mb = mem.temp_size_in_bytes / 2**20 if mem is not None else float("nan")
    losses = []
    t0 = time.perf_counter()
    for _ in range(steps):
        params, state, loss = step(params, state, task)
        if log:
            losses.append(float(loss))
    jax.block_until_ready(params)
    run_s = time.perf_counter() - t0
    net = eqx.combine(params, static)
    return {"compile_s": compile_s, "run_s": run_s, "net": net, "temp_mb": temp_mb}


@eqx.filter_jit
def _final_loss(net, task):
    return task.loss(net)


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), np.finfo(float).tiny)


def max_param_diff(net_a, net_b) -> float:
    """Largest absolute difference between the weights and biases of two networks."""
    leaves_a = jax.tree_util.tree_leaves((net_a.weights, net_a.biases))
    leaves_b = jax.tree_util.tree_leaves((net_b.weights, net_b.biases))
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(leaves_a, leaves_b, strict=True))


# ================================================================================ one case


MODES = {
    "scan": lambda net, task, steps, chunk: run_scan(net, task, steps, chunk),
    "loop": lambda net, task, steps, chunk: run_loop(net, task, steps, log=False),
    "loop+log": lambda net, task, steps, chunk: run_loop(net, task, steps, log=True),
}


def run_modes(net, task, steps: int, chunk: int, repeats: int) -> dict[str, dict]:
    """Every mode ``repeats`` times, interleaved (scan, loop, loop+log, scan, ...); per mode the
    fastest run, with the best compile time and all run times."""
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for mode, fn in MODES.items():
            r = timed(fn, net, task, steps, chunk)
            prev = best.get(mode)
            runs, compiles = (prev["all_run_s"], prev["all_compile_s"]) if prev else ([], [])
            if prev is None or r["run_s"] < prev["run_s"]:
                best[mode] = r
            best[mode]["all_run_s"] = [*runs, r["run_s"]]
            best[mode]["all_compile_s"] = [*compiles, r["compile_s"]]
    for r in best.values():
        r["compile_s"] = min(r["all_compile_s"])
    return best


def measure(
    problem: str,
    task,
    activation: str,
    depth: int,
    steps: int,
    chunk: int,
    repeats: int = 1,
    seed: int = 0,
) -> list[dict]:
    """Rows (scan, loop, loop+log) of one (problem, network) case, from the same initial net."""
    net = nmm_nn.MLP(task.dim, "scalar", WIDTH, depth, activation, key=jr.PRNGKey(seed))
    base = {
        "problem": problem,
        "net": f"{activation} {WIDTH}x{depth}",
        "params": net.n_params,
        "points": n_points(task),
        "steps": steps,
        "chunk": chunk,
        "loadavg_before": os.getloadavg()[0],
    }
    runs = run_modes(net, task, steps, chunk, repeats)
    base["step_temp_mb"] = runs["loop"]["temp_mb"]  # XLA scratch memory of one jitted step
    base["loadavg_after"] = os.getloadavg()[0]
    ref_net = runs["scan"]["net"]
    ref_loss = float(_final_loss(ref_net, task))
    rows = []
    for mode, r in runs.items():
        final = float(_final_loss(r["net"], task))
        rows.append(
            {
                **base,
                "mode": mode,
                "compile_s": r["compile_s"],
                "run_s": r["run_s"],
                "steps_per_s": steps / r["run_s"],
                "all_run_s": r["all_run_s"],
                "all_compile_s": r["all_compile_s"],
                "user_s": r["user_s"],
                "sys_s": r["sys_s"],
                "minor_faults": r["minor_faults"],
                "final_loss": final,
                "rel_diff_loss_vs_scan": rel_diff(final, ref_loss),
                "max_param_diff_vs_scan": max_param_diff(r["net"], ref_net),
            }
        )
    scan_rate = rows[0]["steps_per_s"]
    for row in rows:
        row["scan_speedup"] = scan_rate / row["steps_per_s"]
    return rows


def check_equal_work(rows: list[dict], tol: float) -> None:
    """Scan and loop paths ran the same steps: their final losses must agree to ``tol``."""
    bad = [r for r in rows if r["rel_diff_loss_vs_scan"] > tol]
    if bad:
        lines = [f"{r['problem']} {r['net']} {r['mode']}: {r['rel_diff_loss_vs_scan']:.2e}" for r in bad]
        raise AssertionError(
            f"final losses differ from the scan path by more than {tol:g}:\n" + "\n".join(lines)
        )


# ================================================================================ output


def _f(x, digits: int = 3) -> str:
    if isinstance(x, str):
        return x
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def markdown(headers: list[str], rows: list[list]) -> str:
    cells = [[_f(c) if isinstance(c, float) else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    headers = [
        "problem",
        "net",
        "params",
        "points",
        "steps",
        "mode",
        "compile s",
        "run s",
        "steps/s",
        "scan speed-up",
        "sys CPU s",
        "step temp MiB",
        "rel. diff. final loss",
    ]
    body = []
    for r in rows:
        speed = "—" if r["mode"] == "scan" else f"{r['scan_speedup']:.2f}x"
        diff = "ref." if r["mode"] == "scan" else f"{r['rel_diff_loss_vs_scan']:.1e}"
        body.append(
            [
                r["problem"],
                r["net"],
                r["params"],
                r["points"],
                r["steps"],
                r["mode"],
                r["compile_s"],
                r["run_s"],
                r["steps_per_s"],
                speed,
                r["sys_s"],
                f"{r['step_temp_mb']:.1f}",
                diff,
            ]
        )
    return markdown(headers, body)


NOTES = [
    "Adam 1e-3, full batch, float64; the three modes of one row group start from the same network "
    "and run the same steps (final losses compared in the last column).",
    "scan: nmm_nn.train (lax.scan chunks, AOT compile); loop: Python loop over one AOT-compiled "
    "jitted step, no host sync per step; loop+log: the same with float(loss) every step.",
    "compile s: trace + lower + XLA compile (scan: every chunk length used); run s: steps only "
    "(with --repeats: the fastest run, modes interleaved); scan speed-up = scan steps/s / this "
    "mode's steps/s.",
    "sys CPU s: kernel time of the process over the mode (compile included), mostly page faults; "
    "step temp MiB: XLA scratch memory of one jitted step, allocated afresh at every call of "
    "the step (loop) but once per chunk (scan).",
    "Other jobs may share the machine: see loadavg_before/after per case in the JSON. Each case "
    "runs scan first, which then also pays the case's first-touch warm-up.",
]


def machine_info() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "equinox": eqx.__version__,
        "optax": optax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "git": _git_head(),
    }


def _git_head() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ================================================================================ driver


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 steps, 64x3 tanh and relu only")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Adam steps per run, all problems (default: 2000 fit1d, 400 poisson2d, "
        "200 PINN; quick: 200 fit1d, 100 poisson2d)",
    )
    ap.add_argument("--chunk", type=int, default=200, help="steps per lax.scan call of the scan path")
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of each mode, interleaved; the fastest is reported (default 1)",
    )
    ap.add_argument(
        "--tol",
        type=float,
        default=1e-8,
        help="largest relative difference of the final losses (scan vs loop)",
    )
    ap.add_argument("--out", default=None, help="write the raw results as JSON to this path")
    args = ap.parse_args(argv)
    if (args.steps is not None and args.steps < 1) or args.chunk < 1 or args.repeats < 1:
        ap.error("--steps, --chunk and --repeats must be positive")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    t_start = time.perf_counter()
    rows = []
    for problem, task, activation, depth, steps in cases(args.quick, args.steps):
        case_rows = measure(problem, task, activation, depth, steps, args.chunk, args.repeats)
        for r in case_rows:
            print(
                f"  {r['problem']:15s} {r['net']:10s} {r['mode']:9s} compile {r['compile_s']:6.2f} s  "
                f"run {r['run_s']:7.2f} s  {r['steps_per_s']:8.1f} steps/s  "
                f"rel. diff. {r['rel_diff_loss_vs_scan']:.1e}",
                file=sys.stderr,
                flush=True,
            )
        rows += case_rows
    wall = time.perf_counter() - t_start
    info = machine_info()
    print(
        f"# Training throughput: Adam {LEARNING_RATE:g}, scan chunk {args.chunk} "
        f"(jax {info['jax']}, {info['backend']}, {info['cpu_count']} CPUs)\n"
    )
    print("\n".join(f"- {note}" for note in NOTES) + "\n")
    print(table(rows))
    worst = max(r["rel_diff_loss_vs_scan"] for r in rows)
    print(
        f"\nLargest relative difference of the final loss, loop vs scan: {worst:.1e} "
        f"(tolerance {args.tol:g})"
    )
    print(f"Total benchmark wall time: {wall:.0f} s")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "wall_s": wall,
            "learning_rate": LEARNING_RATE,
            "steps_option": args.steps,
            "chunk": args.chunk,
            "repeats": args.repeats,
            "loadavg_end": os.getloadavg(),
            **info,
        }
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        print(f"Wrote {out}")
    check_equal_work(rows, args.tol)


if __name__ == "__main__":
    main()
