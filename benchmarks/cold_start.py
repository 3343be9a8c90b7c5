"""A small high-order solve from a cold process, and again with JAX's persistent compilation cache.

Problem (that of ``poisson_vs_skfem.py``): -Δu = f on the unit square, u = g on ∂Ω (Nitsche),
exact u = sin(πx) sin(πy) + x y. NMM: cover functions of degree 7 on a triangle cover of 2 × 2
squares (324 unknowns). scikit-fem: P4 on ``MeshTri.init_tensor`` with 12 × 12 squares (2 401
unknowns: the mesh where P4 meets NMM's error, from the README's time-to-error table).

Each measurement is a fresh Python process (``subprocess``), so it pays everything a user's script
pays: ``import``, JAX start-up, cutting the cover, tracing, compiling, assembling and solving.
The NMM processes share one new, empty compilation cache directory (``NMM_COMPILATION_CACHE``):
run 1 starts with it empty (a first run), run 2 finds what run 1 wrote (a second run of the same
script). Per run: seconds for the imports, the space, the first ``nmm.solve`` (trace + compile +
assembly + solve; of it, by ``jax.monitoring``: lowering to MLIR, and XLA's compilation or the
load of a cached executable; the rest is mostly tracing) and a second solve in the same process
(run time alone), the persistent cache's hits and misses (``jax.monitoring`` events) and the
relative L2 error. Solvers: the default (``nmm.linalg.DenseLU()`` at this size: pure JAX, and
the result is checked on the host after the call, so the compiled solve holds no callback and goes
to the cache) and ``solver="direct"``
(SuperLU: an eager solve factors, solves and refines in Python around compiled assembly and
residual programs, which hold no callback and go to the cache too).

JAX's own floor, in the same run: fresh processes that import JAX alone and time a trivial
``jax.jit`` and ``jax.jit(jnp.linalg.solve)`` of a dense system of NMM's size, with a
compilation cache of their own (empty for the first, filled for the second): what any JAX
program of this shape costs a first and a second run, before NMM does anything.

Usage::

    python benchmarks/cold_start.py              # ~1 min
    python benchmarks/cold_start.py --render results/bench_cold_start.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T_START = time.perf_counter()

from provenance import run_meta, write_result  # noqa: E402 - shared by the benchmarks

CHILD_NMM = r"""
import json, sys, time
t0 = time.perf_counter()
import jax
import jax.numpy as jnp
import nmm
events = {"hits": 0, "misses": 0}
def _listen(name, **kw):
    if name == "/jax/compilation_cache/cache_hits":
        events["hits"] += 1
    elif name == "/jax/compilation_cache/cache_misses":
        events["misses"] += 1
jax.monitoring.register_event_listener(_listen)
durations = {"lower_s": 0.0, "backend_s": 0.0}
def _duration(name, secs, **kw):
    if name == "/jax/core/compile/jaxpr_to_mlir_module_duration":
        durations["lower_s"] += secs
    elif name == "/jax/core/compile/backend_compile_duration":  # a compilation, or a cache load
        durations["backend_s"] += secs
jax.monitoring.register_event_duration_secs_listener(_duration)
t1 = time.perf_counter()
exact = lambda x: jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1]) + x[0] * x[1]
f = lambda x: 2 * jnp.pi**2 * jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])
dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=0.5), dom, degree=7)
t2 = time.perf_counter()
solver = None if sys.argv[1] == "default" else "direct"
prob = nmm.Poisson(f=f, dirichlet=exact)
durations = dict.fromkeys(durations, 0.0)  # the first solve's alone
u = nmm.solve(V, prob, solver=solver)
jax.block_until_ready(u.coeffs)
t3 = time.perf_counter()
first = dict(durations)
u2 = nmm.solve(V, prob, solver=solver)
jax.block_until_ready(u2.coeffs)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "space_s": t2 - t1, "first_solve_s": t3 - t2,
                  "second_solve_s": t4 - t3, "total_s": t3 - t0, "dofs": int(V.n_dofs),
                  "rel_L2": float(nmm.errors(u, exact)["L2"]), **events, **first}))
"""

CHILD_JAX = r"""
import json, sys, time
t0 = time.perf_counter()
import jax
import jax.numpy as jnp
import numpy as np
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # cache everything
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
t1 = time.perf_counter()
y = jax.jit(lambda x: jnp.sin(x) * 2.0 + 1.0)(np.ones(3))
jax.block_until_ready(y)
t2 = time.perf_counter()
n = 324  # NMM's system here
a = np.eye(n) * 4.0 + np.random.default_rng(0).standard_normal((n, n)) / n
x = jax.jit(jnp.linalg.solve)(a, np.ones(n))
jax.block_until_ready(x)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "trivial_jit_s": t2 - t1, "dense_solve_s": t3 - t2}))
"""

CHILD_SKFEM = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import skfem as fem
from skfem.helpers import dot, grad
t1 = time.perf_counter()
exact = lambda x, y: np.sin(np.pi * x) * np.sin(np.pi * y) + x * y
@fem.BilinearForm
def laplace(u, v, w):
    return dot(grad(u), grad(v))
@fem.LinearForm
def load(v, w):
    return 2 * np.pi**2 * np.sin(np.pi * w.x[0]) * np.sin(np.pi * w.x[1]) * v
xs = np.linspace(0.0, 1.0, 13)
basis = fem.Basis(fem.MeshTri.init_tensor(xs, xs), fem.ElementTriP4())
t2 = time.perf_counter()
def solve():
    A, b = laplace.assemble(basis), load.assemble(basis)
    D = basis.get_dofs().flatten()
    x = np.zeros(basis.N)
    x[D] = exact(*basis.doflocs[:, D])
    return fem.solve(*fem.condense(A, b, x=x, D=D))
u = solve()
t3 = time.perf_counter()
solve()
t4 = time.perf_counter()
uh = basis.interpolate(u)
ex = exact(*basis.global_coordinates().value)
err = np.sqrt(fem.Functional(lambda w: (w["uh"] - w["ex"]) ** 2).assemble(basis, uh=uh, ex=ex))
ref = np.sqrt(fem.Functional(lambda w: w["ex"] ** 2).assemble(basis, ex=ex))
print(json.dumps({"import_s": t1 - t0, "space_s": t2 - t1, "first_solve_s": t3 - t2,
                  "second_solve_s": t4 - t3, "total_s": t3 - t0, "dofs": int(basis.N),
                  "rel_L2": float(err / ref)}))
"""


def user_env(**extra: str) -> dict:
    """The environment of a user's script: this one's, less ``PYTHONDONTWRITEBYTECODE``.

    Some sandboxes set it; then every process compiles nmm's modules from source (~0.09 s
    of each import here), where a user's install keeps their bytecode (pip writes it for the
    site-packages; Python for an editable install, on its first import)."""
    env = dict(os.environ, **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def child(code: str, arg: str, env: dict) -> dict:
    t0 = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", code, arg], env=env, capture_output=True, text=True, timeout=600
    )
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        raise RuntimeError(f"child {arg} failed:\n{run.stderr[-3000:]}")
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "process_wall_s": wall}


def _f(x) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def render(result: dict) -> str:
    m = result["meta"]
    head = [
        "code",
        "run",
        "unknowns",
        "import s",
        "space s",
        "first solve s",
        "of it: lowering / compile or load s",
        "second solve s",
        "script total s",
        "process s",
        "cache hits / misses",
        "rel. L2",
    ]
    rows = []
    for r in result["runs"]:
        hm = f"{r['hits']} / {r['misses']}" if "hits" in r else "-"
        rows.append(
            [
                r["label"],
                r["run"],
                r["dofs"],
                r["import_s"],
                r["space_s"],
                r["first_solve_s"],
                f"{r['lower_s']:.3g} / {r['backend_s']:.3g}" if "lower_s" in r else "-",
                r["second_solve_s"],
                r["total_s"],
                r["process_wall_s"],
                hm,
                f"{r['rel_L2']:.1e}",
            ]
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_f(v) for v in row) + " |" for row in rows]
    floor = [
        "",
        "JAX alone in fresh processes (one cache directory, every program cached): "
        "`jax.jit` of sin(x)·2 + 1 on 3 numbers, and `jax.jit(jnp.linalg.solve)` of a dense "
        "324 × 324 system (NMM's size here):",
        "",
        "| run | import jax s | trivial jit s | dense solve s |",
        "|---|---|---|---|",
    ]
    floor += [
        f"| {r['run']} | {_f(r['import_s'])} | {_f(r['trivial_jit_s'])} | {_f(r['dense_solve_s'])} |"
        for r in result.get("jax_floor", [])
    ]
    return (
        f"Machine: {m['machine']}, JAX {m['jax']}, nmm {m['nmm_git']}; load average "
        f"{m['loadavg_start'][0]:.2f} at the start.\n\n" + "\n".join(lines + floor)
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/bench_cold_start.json")
    ap.add_argument("--render", metavar="JSON", help="only print the table of an earlier run")
    args = ap.parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return
    result = {
        "meta": run_meta(),
        "runs": [],
        "jax_floor": [],
    }
    with tempfile.TemporaryDirectory() as cache:
        for solver in ("default", "direct"):
            env = user_env(NMM_COMPILATION_CACHE=str(Path(cache) / solver))
            for run in (1, 2):
                r = child(CHILD_NMM, solver, env)
                label = "NMM p = 7, " + (
                    "default (DenseLU)" if solver == "default" else 'SuperLU (solver="direct")'
                )
                result["runs"].append({"label": label, "run": run, **r})
                print(f"  {label} run {run}: {r['total_s']:.2f} s", file=sys.stderr, flush=True)
        for run in (1, 2):  # JAX alone: its own floor for a first and a second run
            r = child(CHILD_JAX, str(Path(cache) / "jax"), user_env())
            result["jax_floor"].append({"run": run, **r})
    for run in (1, 2):
        r = child(CHILD_SKFEM, "skfem", user_env())
        result["runs"].append({"label": "scikit-fem P4", "run": run, **r})
    result["meta"]["wall_s"] = time.perf_counter() - T_START
    write_result(result, render(result), args.out)


if __name__ == "__main__":
    main()
