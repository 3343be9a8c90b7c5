"""The same cases on the CPU and, where one is present, on the accelerator (GPU).

One run, side by side in one process, compile time apart from run time (compile = first call
minus the best later call), every timed call ends in ``block_until_ready``, the best of the
timed calls after a warm-up is reported, nmm's factor cache emptied after every call. Every
case runs once per device: the space is built on the host, its arrays are placed on the device
with ``jax.device_put`` and every call runs under ``jax.default_device(device)`` (the device the
result lives on is recorded). Without an accelerator (``jax.default_backend() == "cpu"``) the run
is CPU only and says so (``"accelerator": null`` in the JSON).

Problem (that of ``batch_solve.py``): -∇·(k ∇u) = f on the unit square, u = g on ∂Ω by Nitsche,
exact u = sin(πx) sin(πy) + x y, k = 1 + θ₀ x + θ₁ y (``params`` θ, shape (2,)), on an aligned
triangle cover with h = 1/n and cover functions of degree p. Sizes: p = 0 with n = 31, 99, 316
(1e3, 1e4, 1e5 unknowns) and p = 8 with n = 2, 4 (405, 1 125 unknowns). Cases, each under
``eqx.filter_jit``:

* assembly: ``nmm.assemble(V, PROBLEM, params=θ)`` (tangent and residual);
* solve: ``nmm.solve(V, PROBLEM, params=θ, solver=s)`` with ``s`` the default (``None``:
  SuperLU through a host callback; on an accelerator the system goes back to the host, which is
  what this measures), ``nmm.linalg.CG()`` (pure JAX) and ``nmm.linalg.DenseLU()`` (pure JAX,
  only up to 4 000 unknowns);
* value+grad: ``jax.value_and_grad`` of θ ↦ Σ u(x_i)² at 16 fixed points, per solver (the exact
  solution does not depend on θ: the gradient is discretisation error only, tiny at p = 8, so
  its relative difference between solvers measures their tolerances);
* vmap: ``jax.vmap`` of the solve over 64 θ uniform in [0, 1]², per solver, against a Python
  loop of the single jitted solve (speed-up = loop / vmap); up to 1e4 unknowns (``--vmap-max``)
  so that the default run stays near 10 minutes on a 2-core CPU.

Where an accelerator is present, a ladder of larger sizes follows on it alone (p = 0 up to
1e7 unknowns, p = 8 up to 5e4; assembly, solves and value+grad, no vmap): a size that runs out
of memory is recorded as "OOM" and ends the ladder of its degree; the ladder also stops once it
has run ``--ladder-budget`` seconds.

Correctness columns compare fields at 64 points (never coefficients: for p >= 1 the cover
functions are linearly dependent and the coefficients are not unique): max |u - u_ref| / max
|u_ref| against the CPU's default solve (on the ladder, the accelerator's), the matrix and
residual of the assembly against the CPU's, vmap against the loop; plus the relative L2 error
against the exact solution.

Usage::

    python benchmarks/gpu.py                  # all sizes, batch 64 (~10 min CPU only, 2 cores)
    python benchmarks/gpu.py --quick          # p = 0 h = 1/15 and p = 8 h = 1/2, batch 8
    python benchmarks/gpu.py --render results/bench_gpu.json

Prints Markdown tables and writes the raw results to ``results/bench_gpu.json`` (``--out``).
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
from batch_solve import PROBLEM, _ready, _timed, exact, space  # the shared problem and timer
from provenance import git_state, write_result  # shared by the benchmarks

import nmm

# (n, p): cells per side of the triangle cover (h = 1/n) and cover-function order
SIZES = {"default": [(31, 0), (99, 0), (316, 0), (2, 8), (4, 8)], "quick": [(15, 0), (2, 8)]}
# accelerator only, after the sizes above, in increasing order per degree until out of memory
LADDER = {
    "default": [(1000, 0), (2000, 0), (3162, 0), (8, 8), (16, 8), (32, 8)],
    "quick": [(63, 0), (4, 8)],
}
SOLVERS = {
    "superlu": ("SuperLU (host)", lambda: None),
    "cg": ("CG", nmm.linalg.CG),
    "denselu": ("DenseLU", nmm.linalg.DenseLU),
}
DENSE_MAX = 4000  # DenseLU only up to this many unknowns (n² memory, n³ work)
THETA = (0.5, 0.25)


def _is_oom(e: BaseException) -> bool:
    msg = str(e).lower()
    return isinstance(e, MemoryError) or "resource_exhausted" in msg or "out of memory" in msg


def _attempt(fn):
    """``fn()``, or ``{"error": "OOM" | message}`` where it raises (XlaRuntimeError is a
    RuntimeError): one failing case must not end the run."""
    try:
        return fn()
    except Exception as e:  # recorded in the results, not hidden
        nmm.linalg.clear_factor_cache()
        if _is_oom(e):
            return {"error": "OOM"}
        first = (str(e).strip().splitlines() or [""])[0]
        return {"error": f"{type(e).__name__}: {first[:200]}"}


def _put(tree, dev):
    """The JAX arrays of ``tree`` committed to ``dev`` (host data and static fields stay)."""
    return jax.tree_util.tree_map(
        lambda x: jax.device_put(x, dev) if isinstance(x, jax.Array) else x, tree
    )


def _where(x) -> str:
    return ", ".join(sorted(str(d) for d in jax.tree_util.tree_leaves(x)[0].devices()))


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _peak_gib(dev):
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / 2**30


def device_case(V_host, dev, batch: int, reps: int, vmap: bool, host: dict) -> dict:
    """All cases of one size on one device. ``host`` collects (untimed, on the CPU) what the
    correctness columns need: fields at the comparison points, gradients, the system."""
    cpu = jax.devices("cpu")[0]
    V = _put(V_host, dev)
    th = jax.device_put(jnp.asarray(THETA), dev)
    g = np.linspace(0.1, 0.9, 4)
    pts = jax.device_put(jnp.asarray(np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)), dev)
    thetas = jax.device_put(jnp.asarray(np.random.default_rng(0).uniform(size=(batch, 2))), dev)
    ths = [thetas[i] for i in range(batch)]
    cmp_pts = jax.device_put(np.random.default_rng(1).uniform(0.01, 0.99, (64, 2)), cpu)

    ev = eqx.filter_jit(lambda c: nmm.Field(V_host, c)(cmp_pts))
    ev_batch = eqx.filter_jit(jax.vmap(lambda c: nmm.Field(V_host, c)(cmp_pts)))

    def values(c):  # field values at the comparison points, on the host ((m,) or (batch, m))
        with jax.default_device(cpu):
            c = jax.device_put(c, cpu)
            return np.asarray(ev(c) if c.ndim == 1 else ev_batch(c))

    out = {"device": str(dev), "kind": dev.device_kind, "platform": dev.platform}
    with jax.default_device(dev):
        asm = eqx.filter_jit(lambda t: nmm.assemble(V, PROBLEM, params=t))
        out["assembly"] = _attempt(lambda: _timed(lambda: asm(th), reps))
        if "error" not in out["assembly"]:
            K, R = asm(th)
            out["assembly"]["ran_on"] = _where(R)
            host["system"] = (np.asarray(K.data), np.asarray(R))
        out["solve"], out["value_and_grad"], out["vmap"] = {}, {}, {}
        for key, (_, make) in SOLVERS.items():
            if key == "denselu" and V_host.n_dofs > DENSE_MAX:
                continue
            s = make()

            def coeffs(t, s=s):
                return nmm.solve(V, PROBLEM, params=t, solver=s).coeffs

            def loss(t, s=s):
                return jnp.sum(nmm.solve(V, PROBLEM, params=t, solver=s)(pts) ** 2)

            one = eqx.filter_jit(coeffs)
            r = out["solve"][key] = _attempt(lambda one=one: _timed(lambda: one(th), reps))
            if "error" not in r:
                c = one(th)
                r["ran_on"] = _where(c)
                host["fields"][key] = values(c)
                with jax.default_device(cpu):
                    u = nmm.Field(V_host, jax.device_put(c, cpu))
                    r["rel_L2"] = float(nmm.errors(u, exact)["L2"])
                nmm.linalg.clear_factor_cache()
            vg = eqx.filter_jit(jax.value_and_grad(loss))
            r = out["value_and_grad"][key] = _attempt(lambda vg=vg: _timed(lambda: vg(th), reps))
            if "error" not in r:
                v, gr = vg(th)
                r["value"], r["grad"] = float(v), [float(x) for x in gr]
                nmm.linalg.clear_factor_cache()
                if "error" not in out["solve"][key]:
                    r["ratio"] = r["s"] / out["solve"][key]["s"]
            if not vmap:
                continue
            batched = eqx.filter_jit(jax.vmap(coeffs))

            def run(one=one, batched=batched):
                res = {"loop": _timed(lambda: [_ready(one(t)) for t in ths], reps)}
                res["vmap"] = _timed(lambda: batched(thetas), reps)
                res["speedup"] = res["loop"]["s"] / res["vmap"]["s"]
                res["per_solve_s"] = res["vmap"]["s"] / batch
                X = batched(thetas)
                res["ran_on"] = _where(X)
                Ul = values(jnp.stack([jax.device_put(one(t), cpu) for t in ths]))
                res["vmap_vs_loop_rel_diff"] = _rel(values(X), Ul)
                nmm.linalg.clear_factor_cache()
                return res

            out["vmap"][key] = _attempt(run)
    out["peak_gib"] = _peak_gib(dev)
    return out


def size_case(n: int, p: int, devices: list, batch: int, reps: int, vmap_max: int, ladder: bool):
    cpu = jax.devices("cpu")[0]
    with jax.default_device(cpu):
        V_host = _attempt(lambda: space(n, p))
    if isinstance(V_host, dict):  # the space itself did not fit (nmm's memory estimate)
        return {"n": n, "p": p, "ladder": ladder, "error": V_host["error"], "devices": {}}
    out = {"n": n, "p": p, "dofs": int(V_host.n_dofs), "ladder": ladder, "batch": batch}
    out["devices"] = {}
    ref = None  # (label, fields, value, grad, system) of the first device's default solve
    for label, dev in devices:
        host = {"fields": {}}
        t0 = time.perf_counter()
        vmap = not ladder and V_host.n_dofs <= vmap_max
        d = out["devices"][label] = device_case(V_host, dev, batch, reps, vmap, host)
        d["wall_s"] = time.perf_counter() - t0
        if ref is None and "superlu" in host["fields"]:
            g = d["value_and_grad"]["superlu"]
            ref = (label, host["fields"]["superlu"], g.get("value"), g.get("grad"), host.get("system"))
            out["reference"] = f"{label} SuperLU (host)"
        if ref is None:
            continue
        for key, u in host["fields"].items():
            d["solve"][key]["rel_diff"] = _rel(u, ref[1])
            g = d["value_and_grad"][key]
            if "grad" in g and ref[3] is not None:
                g["value_rel_diff"] = abs(g["value"] - ref[2]) / abs(ref[2])
                g["grad_rel_diff"] = _rel(g["grad"], ref[3])
        if "system" in host and ref[4] is not None and ref[0] != label:
            d["assembly"]["matrix_rel_diff"] = _rel(host["system"][0], ref[4][0])
            d["assembly"]["residual_rel_diff"] = _rel(host["system"][1], ref[4][1])
        print(f"    {label} ({dev}): {d['wall_s']:.1f} s", file=sys.stderr, flush=True)
    return out


def _oom(r: dict) -> bool:
    def walk(x):
        if isinstance(x, dict):
            return x.get("error") == "OOM" or any(walk(v) for v in x.values())
        return False

    return walk(r)


# ================================================================================ tables


def _f(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, int):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) < 1e-3:
        return f"{x:.1e}"
    return f"{x:.{digits}g}"


def _e(x) -> str:
    return "-" if x is None else f"{x:.1e}"


def _s(r: dict | None, key: str = "s"):
    """A time, or why there is none."""
    if not r:
        return "-"
    if "error" in r:
        return "OOM" if r["error"] == "OOM" else "failed"
    return r[key]


def markdown(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _rows(result: dict):
    """(case, device label, device record, the CPU's record of the case or None)."""
    for c in result["cases"]:
        for label, d in c.get("devices", {}).items():
            yield c, label, d, c["devices"].get("cpu") if label != "cpu" else None


def _speedup(cpu: dict | None, r: dict | None):
    if cpu is None or r is None or "error" in cpu or "error" in r:
        return "-"
    return cpu["s"] / r["s"]


def _head(c: dict, label: str) -> list:
    return [str(c["p"]), f"1/{c['n']}", str(c["dofs"]), label + (" (ladder)" if c["ladder"] else "")]


def assembly_table(result: dict) -> str:
    headers = [
        "p", "h", "unknowns", "device", "assembly s", "compile s", "CPU / device",
        "K vs CPU", "R vs CPU",
    ]  # fmt: skip
    rows = []
    for c, label, d, cpu in _rows(result):
        a = d["assembly"]
        rows.append(
            _head(c, label)
            + [
                _s(a),
                _s(a, "compile_s"),
                _speedup(cpu and cpu["assembly"], a),
                _e(a.get("matrix_rel_diff")),
                _e(a.get("residual_rel_diff")),
            ]
        )
    return markdown(headers, rows)


def solve_table(result: dict) -> str:
    headers = [
        "p", "h", "unknowns", "device", "solver", "solve s", "value+grad s", "ratio",
        "compile solve / vg s", "CPU / device", "u vs ref", "max abs grad", "grad vs ref",
        "rel. L2 error",
    ]  # fmt: skip
    rows = []
    for c, label, d, cpu in _rows(result):
        for key, r in d["solve"].items():
            g = d["value_and_grad"].get(key, {})
            compile_ = f"{_f(_s(r, 'compile_s'))} / {_f(_s(g, 'compile_s'))}"
            rows.append(
                _head(c, label)
                + [
                    SOLVERS[key][0],
                    _s(r),
                    _s(g),
                    g.get("ratio", "-"),
                    compile_,
                    _speedup(cpu and cpu["solve"].get(key), r),
                    _e(r.get("rel_diff")),
                    _e(max(map(abs, g["grad"])) if "grad" in g else None),
                    _e(g.get("grad_rel_diff")),
                    _e(r.get("rel_L2")),
                ]
            )
    return markdown(headers, rows)


def vmap_table(result: dict) -> str:
    headers = [
        "p", "h", "unknowns", "device", "solver", "batch", "loop s", "vmap s", "speed-up",
        "per solve s", "compile vmap s", "CPU / device (vmap)", "vmap vs loop",
    ]  # fmt: skip
    rows = []
    for c, label, d, cpu in _rows(result):
        for key, r in d["vmap"].items():
            cv = cpu and cpu["vmap"].get(key)
            ok = "error" not in r
            rows.append(
                _head(c, label)
                + [
                    SOLVERS[key][0],
                    str(c["batch"]),
                    r["loop"]["s"] if ok else _s(r),
                    r["vmap"]["s"] if ok else _s(r),
                    r["speedup"] if ok else "-",
                    r["per_solve_s"] if ok else "-",
                    r["vmap"]["compile_s"] if ok else "-",
                    _speedup(cv["vmap"], r["vmap"]) if ok and cv and "vmap" in cv else "-",
                    _e(r.get("vmap_vs_loop_rel_diff")),
                ]
            )
    return markdown(headers, rows)


def render(result: dict) -> str:
    m = result["meta"]
    acc = m["accelerator"]
    lines = [
        f"# CPU and accelerator ({m['started']}, {m['machine']}, JAX {m['versions']['jax']}, "
        f"nmm {m['nmm_git']}, load {m['loadavg_start'][0]:.2f} at start, "
        f"{m['loadavg_end'][0]:.2f} at end)",
        "",
        "No accelerator present: CPU only"
        if acc is None
        else f"Accelerator: {acc['kind']} ({acc['name']}, {acc['platform']}); "
        f"CPU: {m['cpu']['kind']} ({m['cpu']['name']})",
        "",
        "Devices: " + "; ".join(f"{d['name']} ({d['kind']})" for d in m["devices"]),
        "",
        "Seconds, best call after a warm-up; compile = first call minus best. Unit square, "
        "Nitsche, aligned triangle cover h = 1/n, k = 1 + θ₀ x + θ₁ y. 'CPU / device' = CPU "
        "time / this device's time. Differences: max |u - u_ref| / max |u_ref| at 64 points, "
        "ref = the CPU's default solve (SuperLU on the host; on the accelerator's ladder, the "
        "accelerator's).",
        "",
        "## Assembly (nmm.assemble)",
        "",
        assembly_table(result),
        "",
        "## Solve and value+grad (loss = Σ u(x_i)² at 16 points)",
        "",
        solve_table(result),
        "",
        f"## vmap of the solve over {m['batch']} θ against a Python loop of the jitted solve",
        "",
        vmap_table(result),
    ]
    skipped = [c for c in result["cases"] if "error" in c]
    if skipped:
        lines += [
            "",
            "Not run: " + "; ".join(f"p = {c['p']} h = 1/{c['n']}: {c['error']}" for c in skipped),
        ]
    failed = [
        f"p = {c['p']} h = 1/{c['n']} {label} {part} {SOLVERS[key][0]}: {r['error']}"
        for c, label, d, _ in _rows(result)
        for part in ("solve", "value_and_grad", "vmap")
        for key, r in d[part].items()
        if r.get("error", "OOM") != "OOM"
    ]
    failed += [
        f"p = {c['p']} h = 1/{c['n']} {label} assembly: {d['assembly']['error']}"
        for c, label, d, _ in _rows(result)
        if d["assembly"].get("error", "OOM") != "OOM"
    ]
    if failed:
        lines += ["", "Failures:", "", *(f"* {f}" for f in failed)]
    if m.get("ladder_note"):
        lines += ["", m["ladder_note"]]
    lines += ["", f"Total wall time: {m['wall_s']:.0f} s"]
    return "\n".join(lines)


# ================================================================================ driver


def _device_info(d) -> dict:
    info = {"name": str(d), "kind": d.device_kind, "platform": d.platform}
    stats = d.memory_stats() if hasattr(d, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        info["memory_gib"] = stats["bytes_limit"] / 2**30
    return info


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="p = 0 h = 1/15 and p = 8 h = 1/2, batch 8")
    ap.add_argument("--batch", type=int, default=None, help="vmap batch size (default 64, quick 8)")
    ap.add_argument("--reps", type=int, default=2, help="timed calls after the warm-up")
    ap.add_argument("--vmap-max", type=int, default=10_000, help="vmap only up to these unknowns")
    ap.add_argument(
        "--ladder-budget", type=float, default=300.0, help="seconds for the accelerator's ladder"
    )
    ap.add_argument("--out", default="results/bench_gpu.json")
    ap.add_argument("--render", metavar="JSON", help="only print the tables of an earlier run")
    args = ap.parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return
    mode = "quick" if args.quick else "default"
    batch = args.batch or (8 if args.quick else 64)
    if batch < 1 or args.reps < 1:
        ap.error(f"--batch and --reps must be positive, got {batch} and {args.reps}")

    cpu = jax.devices("cpu")[0]
    backend = jax.default_backend()
    acc = None if backend == "cpu" else jax.devices()[0]
    devices = [("cpu", cpu)] + ([("accelerator", acc)] if acc is not None else [])
    listed = list({str(d): d for d in jax.devices() + jax.devices("cpu")}.values())
    result = {
        "meta": {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {backend}",
            "nmm_git": git_state(),
            "versions": {"jax": jax.__version__, "numpy": np.__version__},
            "loadavg_start": os.getloadavg(),
            "host_threads": nmm.linalg.superlu.host_threads(),
            "backend": backend,
            "devices": [_device_info(d) for d in listed],
            "cpu": _device_info(cpu),
            "accelerator": None if acc is None else _device_info(acc),
            "batch": batch,
            "reps": args.reps,
            "vmap_max_dofs": args.vmap_max,
        },
        "cases": [],
    }
    if acc is None:
        print("No accelerator present: CPU only", file=sys.stderr, flush=True)
    else:
        print(f"Accelerator: {acc.device_kind} ({acc})", file=sys.stderr, flush=True)
    t_start = time.perf_counter()
    for n, p in SIZES[mode]:
        t0 = time.perf_counter()
        r = size_case(n, p, devices, batch, args.reps, args.vmap_max, ladder=False)
        result["cases"].append(r)
        print(f"  p={p} n={n}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    if acc is None:
        result["meta"]["ladder_note"] = "Ladder of larger sizes: not run (no accelerator)."
    else:
        t_ladder, stopped, notes = time.perf_counter(), set(), []
        for n, p in LADDER[mode]:
            if p in stopped:
                continue
            if time.perf_counter() - t_ladder > args.ladder_budget:
                notes.append(f"p = {p} h = 1/{n}: not run (ladder budget spent)")
                continue
            t0 = time.perf_counter()
            r = size_case(n, p, devices[1:], batch, args.reps, args.vmap_max, ladder=True)
            result["cases"].append(r)
            if _oom(r):
                stopped.add(p)
                notes.append(f"p = {p}: OOM at h = 1/{n}, larger sizes not tried")
            print(f"  ladder p={p} n={n}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        result["meta"]["ladder_note"] = "Ladder (accelerator only): " + (
            "; ".join(notes) if notes else "all sizes ran."
        )
    result["meta"]["loadavg_end"] = os.getloadavg()
    result["meta"]["wall_s"] = time.perf_counter() - t_start
    write_result(result, render(result), args.out)


if __name__ == "__main__":
    main()
