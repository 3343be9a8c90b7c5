"""2D Poisson: nmm (Numerical Manifold Method, JAX) next to scikit-fem, same machine, same run.

Problem: -Δu = f on the unit square, u = g on the boundary, exact u = sin(πx) sin(πy) + x y, so
f = 2π² sin(πx) sin(πy) (the x y part is harmonic). Both codes get the same analytic f and g.

What is measured (seconds, wall clock):

* geometry: nmm ``MathCover`` + ``ManifoldSpace`` (host-side cutting, quadrature, block structure);
  scikit-fem ``MeshTri.init_tensor`` + ``Basis``.
* compile: nmm only: first call of each jitted function minus the steady-state call; and, as a
  noise-free cross-check, trace + lower + XLA compile alone after ``jax.clear_caches()`` ([AOT]).
  scikit-fem has no JIT (0).
* assembly: nmm host-side boundary masks (``nmm.drivers.boundary_data``) plus the jitted
  autodiff assembly of the ``nmm.Poisson`` weak form (``nmm.drivers._assemble_jit``: volume +
  Nitsche boundary terms, returns ``(K, R)``; the system is K x = -R), i.e. ``nmm.assemble``
  without its input checks; scikit-fem ``BilinearForm``/``LinearForm`` assembly, boundary DOFs
  and values, and ``condense`` (strong Dirichlet conditions).
* solve: nmm ``linalg.linear_solve`` under ``eqx.filter_jit`` with the default solver
  ``linalg.SuperLU()`` (block -> CSC, unit-diagonal scaling, SuperLU, iterative refinement; no
  condition estimate unless asked for) or ``linalg.CG(rtol=1e-10, max_iter=20000)`` (JAX CG +
  block-Jacobi); scikit-fem ``skfem.solve`` with the named solver.
* total = geometry + assembly + solve, steady state; "incl. compile" adds the compile time.
* first solve: what a user waits for in a fresh process, timed once before anything else of the
  case: nmm ``MathCover`` + ``ManifoldSpace`` + ``nmm.solve(space, problem)`` with default
  options (tracing, compiling, boundary masks, assembly, solve); scikit-fem mesh + ``Basis`` +
  assembly + ``condense`` + ``solve``. Both include their first-call costs (JAX backend start-up
  for nmm).
* error: relative L2 error ||u - u_exact|| / ||u_exact|| (not timed).

Each case runs in its own subprocess (fresh JIT caches, its own peak memory), watched for a time
and a memory cap; a case over either is killed and reported as skipped with the reason. Every phase
is run ``reps`` times and the minimum after the first (warm-up / compile) call is reported, for
both codes alike.

Usage::

    python benchmarks/poisson_vs_skfem.py                  # 1e4, 1e5, 1e6 + sweep + cut (~30 min)
    python benchmarks/poisson_vs_skfem.py --quick          # 1e4 only, short sweep (~1-2 min)
    python benchmarks/poisson_vs_skfem.py --max-dofs 1e5   # up to 1e5
    python benchmarks/poisson_vs_skfem.py --sizes 1e4 1e6  # chosen sizes
    python benchmarks/poisson_vs_skfem.py --render results/bench_poisson.json  # tables only

Prints Markdown tables; writes the raw results as JSON to ``results/bench_poisson.json``
(``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from provenance import git_state, write_result  # shared by the benchmarks

RESULT_TAG = "@@RESULT@@"
TARGET_ERR = 1e-6
SKFEM_ORDERS = {1: "P1", 2: "P2", 3: "P3", 4: "P4"}

# scikit-fem solver variants (name -> description); "default" is what skfem.solve does with no
# solver argument: solver_direct_scipy() = scipy.sparse.linalg.spsolve = SuperLU, COLAMD ordering.
SKFEM_SOLVERS = {
    "default": "skfem.solve default = spsolve (SuperLU, COLAMD)",
    "direct_mmd": "solver_direct_scipy(permc_spec='MMD_AT_PLUS_A') (SuperLU, symmetric "
    "minimum degree: nmm's order before nested dissection, SuperLU(ordering='mmd'))",
    "pcg_ilu": "solver_iter_pcg(M=build_pc_ilu(A), rtol=1e-10) (scipy CG + ILU)",
}
NMM_SOLVERS = {
    "direct": "nmm direct: the default solver, SuperLU() (nested-dissection order of the cover "
    "graph, symmetric mode) + iterative refinement",
    "cg": "nmm cg: JAX CG + block-Jacobi, rtol=1e-10",
    "amg": "nmm amg: JAX CG + smoothed-aggregation AMG V-cycle (nmm.linalg.AMG), rtol=1e-10; its "
    "host setup (once per space) is in the geometry column",
    "cholesky": "nmm cholesky: nmm.linalg.Cholesky() (CHOLMOD through cvxopt, the extra "
    "nmm[cholmod]) + the same iterative refinement; set by solver=, not the default",
}


# ================================================================================ the problem


def exact_np(x, y):
    return np.sin(np.pi * x) * np.sin(np.pi * y) + x * y


def source_np(x, y):
    return 2.0 * np.pi**2 * np.sin(np.pi * x) * np.sin(np.pi * y)


def _jax_problem():
    """Exact solution and source as nmm data callables (one point ``x`` of shape (2,))."""
    import jax.numpy as jnp

    def exact(x):
        return jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1]) + x[0] * x[1]

    def source(x):
        return 2.0 * jnp.pi**2 * jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])

    return exact, source


# ================================================================================ sizes


def nmm_n_for(dofs: float, p: int) -> int:
    """Cells per side so that the p-th order triangle cover of the unit square has ~dofs unknowns:
    (n + 1)² nodes × (p + 1)(p + 2)/2 terms."""
    nt = (p + 1) * (p + 2) // 2
    return max(1, round(math.sqrt(dofs / nt)) - 1)


def nmm_dofs(n: int, p: int) -> int:
    return (n + 1) ** 2 * (p + 1) * (p + 2) // 2


def skfem_n_for(dofs: float, order: int) -> int:
    """Squares per side of ``MeshTri.init_tensor`` so that Pk has ~dofs DOFs: (k n + 1)²."""
    return max(1, round((math.sqrt(dofs) - 1) / order))


def skfem_dofs(n: int, order: int) -> int:
    return (order * n + 1) ** 2


def _steady(times: list[float]) -> tuple[float, float]:
    """(first call, best of the later calls); with a single call both are that call."""
    later = times[1:] if len(times) > 1 else times
    return times[0], min(later)


class Clock:
    """Wall and CPU (process) time of named phases, one entry per call.

    CPU time is kept next to wall time because other jobs may share the machine: a single-threaded
    phase's CPU time hardly changes under load, its wall time does. (XLA may use both cores in the
    nmm assembly, so there CPU time can exceed wall time on an idle machine.)"""

    def __init__(self):
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    @contextmanager
    def __call__(self, phase: str):
        w0, c0 = time.perf_counter(), time.process_time()
        yield
        self.wall.setdefault(phase, []).append(time.perf_counter() - w0)
        self.cpu.setdefault(phase, []).append(time.process_time() - c0)

    def summary(self, jit: bool) -> dict:
        """Steady-state time per phase; with ``jit``, first-call extra time as compile time."""
        out = {}
        extra = 0.0
        for phase, times in self.wall.items():
            first, best = _steady(times)
            out[f"{phase}_s"] = best
            out[f"cpu_{phase}_s"] = _steady(self.cpu[phase])[1]
            out[f"all_{phase}_s"] = times
            if jit and phase != "geometry":
                out[f"compile_{phase}_s"] = max(0.0, first - best)
            extra += max(0.0, first - best)
        if jit:
            out["compile_s"] = sum(v for k, v in out.items() if k.startswith("compile_"))
        else:
            out["compile_s"] = 0.0  # no JIT; first-call extra time (imports, caches) kept apart
            out["warmup_extra_s"] = extra
        return out


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


# ================================================================================ nmm case


def _nmm_problem():
    """The unit square, the ``nmm.Poisson`` problem on it and its exact solution."""
    import nmm

    exact, source = _jax_problem()
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    return dom, nmm.Poisson(k=1.0, f=source, dirichlet=exact), exact


def nmm_first_solve(n: int, p: int, solver=None) -> dict:
    """What a user waits for, timed: ``MathCover`` + ``ManifoldSpace`` (``geometry_s``) and
    ``nmm.solve`` with ``solver`` (``None``: the default; ``solve_s``: tracing, compiling,
    assembly, solve), with the space and the field."""
    import nmm

    dom, prob, exact = _nmm_problem()
    t0 = time.perf_counter()
    space = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=1.0 / n), dom, degree=p)
    t1 = time.perf_counter()
    u = nmm.solve(space, prob, solver=solver)
    u.coeffs.block_until_ready()
    t2 = time.perf_counter()
    return {"geometry_s": t1 - t0, "solve_s": t2 - t1, "space": space, "field": u, "exact": exact}


def run_nmm(n: int, p: int, solver: str, reps: int, e2e: bool) -> dict:
    """One nmm solve on an n×n-square triangle cover with cover functions of order p."""
    import equinox as eqx
    import jax

    import nmm
    from nmm.drivers import _assemble_jit, boundary_data, prepared_solver

    dom, prob, exact = _nmm_problem()
    lin = {
        "direct": nmm.linalg.SuperLU(),
        "cg": nmm.linalg.CG(rtol=1e-10, max_iter=20000),
        "amg": nmm.linalg.AMG(rtol=1e-10),
        "cholesky": nmm.linalg.Cholesky() if solver == "cholesky" else None,
    }[solver]

    # first solve, as a user meets it: nothing compiled yet in this process
    first = nmm_first_solve(n, p, None if solver == "direct" else lin)
    first_solve = first["geometry_s"] + first["solve_s"]
    del first
    nmm.linalg.clear_factor_cache()

    def solve_system(K, R, lin):
        # K x = -R; only x and the stats leave the jitted function (the state would copy K out)
        sol = nmm.linalg.linear_solve(K, -R, lin)
        return sol.value, sol.stats

    # geometry: built `reps` times; the jitted functions below are then given the last space only
    # (a new space is a new static HostData, which would retrace and recompile)
    clock = Clock()
    unprepared = lin
    for _ in range(reps):
        with clock("geometry"):
            mc = nmm.MathCover.triangles(dom, h=1.0 / n)
            space = nmm.ManifoldSpace(mc, dom, degree=p)
            # AMG's hierarchy structure: host work once per space, as the cut is
            lin = prepared_solver(unprepared, space)
        del mc

    lin_solve = eqx.filter_jit(solve_system)
    for _ in range(max(reps, 2)):  # at least: one compile call, one steady-state call
        with clock("assembly"):
            bd = boundary_data(space, prob)
            K, R = jax.block_until_ready(_assemble_jit(space, prob, None, bd, None))
        with clock("solve"):
            x, stats = jax.block_until_ready(lin_solve(K, R, lin))
        # SuperLU keeps each factorisation in nmm's factor cache (up to 4 GiB) after its state is
        # gone; drop them (untimed) so that peak RSS is that of one solve, as before the cache
        nmm.linalg.clear_factor_cache()

    # Cross-check of the compile time, independent of run-to-run noise (which at 1e6 unknowns
    # can exceed the compile time itself): drop JAX's caches, then trace + lower + compile only.
    jax.clear_caches()
    t0 = time.perf_counter()
    _assemble_jit.lower(space, prob, None, bd, None).compile()
    eqx.filter_jit(solve_system).lower(K, R, lin).compile()
    aot = time.perf_counter() - t0
    del K, R

    field = nmm.Field(space, x, stats)
    err = nmm.errors(field, exact)
    out = {
        "code": "nmm",
        "method": f"NMM p={p}",
        "element": f"p={p}",
        "solver": solver,
        "solver_desc": NMM_SOLVERS[solver],
        "n": n,
        "h": 1.0 / n,
        "p": p,
        "dofs": int(space.n_dofs),
        "elements": int(space.n_elements),
        "blocks": int(space.block_rows.shape[0]),
        "nnz": int(space.block_rows.shape[0]) * space.n_terms**2,
        "quad_points": int(np.prod(space.q_points.shape[:2])),
        **clock.summary(jit=True),
        "compile_aot_s": aot,
        "first_solve_s": first_solve,
        "solver_stats": [float(s) for s in np.asarray(stats)],
        "L2": float(err["L2"]),
        "H1": float(err["H1"]),
    }
    if e2e:
        # what a user runs: steady-state nmm.solve, default options (for "direct": solver=None,
        # the dense LU up to 512 unknowns, SuperLU above; stable spaces refine outside), best of
        # the later calls, and its own error (the outer refinement changes it at high p)
        user = None if solver == "direct" else unprepared
        t0 = time.perf_counter()
        u = nmm.solve(space, prob, solver=user)
        u.coeffs.block_until_ready()
        first = time.perf_counter() - t0
        ts = []
        for _ in range(max(reps, 3)):
            t0 = time.perf_counter()
            u = nmm.solve(space, prob, solver=user)
            u.coeffs.block_until_ready()
            ts.append(time.perf_counter() - t0)
        out["e2e_nmm_solve_s"] = min(ts)
        out["e2e_compile_s"] = max(0.0, first - min(ts))  # its programs, beside the split's
        out["e2e_L2"] = float(nmm.errors(u, exact)["L2"])
        nmm.linalg.clear_factor_cache()
    return out


# ================================================================================ skfem case


def _skfem_solver(name: str):
    """The ``solver=`` argument for skfem.solve (None = its default)."""
    from skfem.utils import build_pc_ilu, solver_direct_scipy, solver_iter_pcg

    if name == "default":
        return None
    if name == "direct_mmd":
        return solver_direct_scipy(permc_spec="MMD_AT_PLUS_A")
    if name == "pcg_ilu":
        # the ILU factorisation is part of the solve, so it is built inside the timed call
        def pcg_ilu(A, b, **kw):
            return solver_iter_pcg(M=build_pc_ilu(A), rtol=1e-10)(A, b, **kw)

        return pcg_ilu
    raise ValueError(f"unknown skfem solver {name!r}")


def _skfem_problem():
    """scikit-fem's elements by order and ``dirichlet_system(basis) -> (A, condensed system)``
    of the problem (strong Dirichlet conditions by condensation)."""
    import skfem as fem
    from skfem.helpers import dot, grad

    elements = {
        1: fem.ElementTriP1,
        2: fem.ElementTriP2,
        3: fem.ElementTriP3,
        4: fem.ElementTriP4,
    }

    @fem.BilinearForm
    def laplace(u, v, w):
        return dot(grad(u), grad(v))

    @fem.LinearForm
    def load(v, w):
        return source_np(w.x[0], w.x[1]) * v

    def dirichlet_system(basis):
        A = laplace.assemble(basis)
        b = load.assemble(basis)
        D = basis.get_dofs().flatten()
        xD = np.zeros(basis.N)
        xD[D] = exact_np(*basis.doflocs[:, D])  # Lagrange DOFs: nodal values of g
        return A, fem.condense(A, b, x=xD, D=D)

    return elements, dirichlet_system


def skfem_first_solve(n: int, order: int, solver: str = "default") -> dict:
    """What a user waits for, timed (scikit-fem has no compilation; first calls still cost):
    mesh + ``Basis`` (``geometry_s``), assembly + condensation + solve (``solve_s``), with the
    basis and the solution."""
    import skfem as fem

    elements, dirichlet_system = _skfem_problem()
    t0 = time.perf_counter()
    xs = np.linspace(0.0, 1.0, n + 1)
    basis = fem.Basis(fem.MeshTri.init_tensor(xs, xs), elements[order]())
    t1 = time.perf_counter()
    x = fem.solve(*dirichlet_system(basis)[1], solver=_skfem_solver(solver))
    t2 = time.perf_counter()
    return {"geometry_s": t1 - t0, "solve_s": t2 - t1, "basis": basis, "x": x}


def skfem_rel_l2(mesh, order: int, u) -> float:
    """Relative L2 error of the P``order`` solution ``u`` on ``mesh``, on a finer quadrature than
    the assembly's."""
    import skfem as fem

    elements, _ = _skfem_problem()

    @fem.Functional
    def err2(w):
        return (w["u"] - exact_np(w.x[0], w.x[1])) ** 2

    @fem.Functional
    def norm2(w):
        return exact_np(w.x[0], w.x[1]) ** 2

    ebasis = fem.Basis(mesh, elements[order](), intorder=2 * order + 4)
    return math.sqrt(err2.assemble(ebasis, u=ebasis.interpolate(u)) / norm2.assemble(ebasis))


def run_skfem(n: int, order: int, solver: str, reps: int) -> dict:
    """One scikit-fem solve with Lagrange P``order`` on ``MeshTri.init_tensor`` (n×n squares)."""
    import skfem as fem

    # first solve, as a user meets it
    first = skfem_first_solve(n, order, solver)
    first_solve = first["geometry_s"] + first["solve_s"]
    del first
    elements, dirichlet_system = _skfem_problem()

    clock = Clock()
    for _ in range(reps):
        with clock("geometry"):
            xs = np.linspace(0.0, 1.0, n + 1)
            mesh = fem.MeshTri.init_tensor(xs, xs)
            basis = fem.Basis(mesh, elements[order]())  # default quadrature: order 2k

    for _ in range(reps):
        with clock("assembly"):
            A, system = dirichlet_system(basis)
        with clock("solve"):
            u = fem.solve(*system, solver=_skfem_solver(solver))

    l2 = skfem_rel_l2(mesh, order, u)
    return {
        "code": "skfem",
        "method": f"skfem {SKFEM_ORDERS[order]}",
        "element": SKFEM_ORDERS[order],
        "solver": solver,
        "solver_desc": SKFEM_SOLVERS[solver],
        "n": n,
        "h": 1.0 / n,
        "p": order,
        "dofs": int(basis.N),
        "dofs_solved": int(system[0].shape[0]),
        "elements": int(mesh.t.shape[1]),
        "nnz": int(A.nnz),
        "quad_points": int(mesh.t.shape[1] * basis.X.shape[1]),
        **clock.summary(jit=False),
        "first_solve_s": first_solve,
        "L2": l2,
    }


# ================================================================================ cutting case


def run_cut(cells: float, reps: int) -> dict:
    """Cut a ~``cells`` triangle cover by a square with a 64-gon hole and a slanted crack."""
    import nmm
    from nmm.topology import cut

    t = np.linspace(0.0, 2.0 * np.pi, 64, endpoint=False)
    hole = np.stack([0.5 + 0.2 * np.cos(t), 0.5 + 0.2 * np.sin(t)], axis=1)
    crack = [(0.12, 0.83), (0.71, 0.91)]  # interior crack, both tips inside cells, not grid-aligned
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)], holes=[hole], cracks=[crack])
    n = max(1, round(math.sqrt(cells / 2.0)))
    h = 1.0 / n
    t_cover, t_cut, t_space = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        mc = nmm.MathCover.triangles(dom, h=h)
        t_cover.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        topo = cut(mc, dom)
        t_cut.append(time.perf_counter() - t0)
    for _ in range(reps if cells <= 2e5 else 0):  # a p = 2 space of 1e6 cells: ~3e6 unknowns
        t0 = time.perf_counter()
        space = nmm.ManifoldSpace(mc, dom, degree=2)
        t_space.append(time.perf_counter() - t0)
    return {
        "cells": int(len(mc.cells)),
        "h": h,
        "elements": int(topo.n_elem),
        "cut_elements": int(topo.elem_cut.sum()),
        "physical_covers": int(topo.n_cover),
        "boundary_pieces": int(len(topo.bnd)),
        "crack_pieces": int(topo.bnd_crack.sum()),
        "dofs_p2": int(space.n_dofs) if t_space else None,
        "cover_s": min(t_cover),
        "cut_s": min(t_cut),
        "space_p2_s": min(t_space) if t_space else None,
        "all_cut_s": t_cut,
        "all_space_p2_s": t_space,
    }


# ================================================================================ isolation


def worker(spec: dict) -> dict:
    """Run one case in this process (called in a subprocess by the driver)."""
    kind = spec["kind"]
    if kind == "nmm":
        out = run_nmm(spec["n"], spec["p"], spec["solver"], spec["reps"], spec["e2e"])
    elif kind == "skfem":
        out = run_skfem(spec["n"], spec["p"], spec["solver"], spec["reps"])
    elif kind == "cut":
        out = run_cut(spec["cells"], spec["reps"])
    else:
        raise ValueError(f"unknown case kind {kind!r}")
    out["peak_rss_gb"] = _peak_rss_gb()
    return out


def _rss_gb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _mem_available_gb() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def run_isolated(spec: dict, timeout_s: float, mem_cap_gb: float) -> dict:
    """Run ``worker(spec)`` in a fresh Python; kill it past ``timeout_s`` or ``mem_cap_gb`` RSS.

    The memory cap is enforced by polling RSS (an rlimit on address space would break JAX, which
    reserves far more virtual memory than it uses)."""
    cap = min(mem_cap_gb, _mem_available_gb() - 1.0)  # other processes share the machine
    load = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, reason = 0.0, None
    while proc.poll() is None:
        rss = _rss_gb(proc.pid)
        peak = max(peak, rss)
        elapsed = time.perf_counter() - t0
        if rss > cap:
            reason = f"killed: RSS {rss:.1f} GiB exceeded the {cap:.1f} GiB cap"
        elif elapsed > timeout_s:
            reason = f"killed: still running after {timeout_s:.0f} s (time cap)"
        if reason:
            proc.kill()
            break
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    base = {**spec, "wall_s": wall, "load_before": load, "watch_peak_rss_gb": peak}
    if reason:
        return {**base, "skipped": reason}
    for line in stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return {**base, **json.loads(line[len(RESULT_TAG) :])}
    tail = " | ".join(stderr.strip().splitlines()[-3:])
    return {**base, "skipped": f"failed (exit {proc.returncode}): {tail}"}


# ================================================================================ tables


def _f(x, digits=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, str):
        return x
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def _totals(r: dict) -> dict:
    if "skipped" in r:
        return r
    r["asm_solve_s"] = r["assembly_s"] + r["solve_s"]
    r["cpu_asm_solve_s"] = r["cpu_assembly_s"] + r["cpu_solve_s"]
    r["total_s"] = r["geometry_s"] + r["asm_solve_s"]
    r["total_compile_s"] = r["total_s"] + r["compile_s"]
    return r


def markdown(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += [
        "| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows
    ]
    return "\n".join(lines)


def main_table(rows: list[dict]) -> str:
    headers = [
        "method",
        "solver",
        "unknowns",
        "geometry",
        "compile [AOT]",
        "assembly",
        "solve",
        "asm+solve",
        "total",
        "total+compile",
        "rel. L2",
        "qp/el",
        "peak RSS GiB",
        "load",
        "nmm.solve() 2nd call",
        "first solve",
    ]
    out = []
    for r in rows:
        name = r.get("method") or f"{r['kind']} p={r['p']}"
        if "skipped" in r:
            out.append(
                [
                    name,
                    r["solver"],
                    _f(r.get("dofs_est")),
                    *["—"] * 9,
                    _f(r.get("watch_peak_rss_gb")),
                    _f(r["load_before"], 2),
                    "—",
                    "—",
                ]
            )
            out[-1][3] = f"skipped: {r['skipped']}"
            continue
        comp = _f(r["compile_s"])
        if "compile_aot_s" in r:
            comp += f" [{_f(r['compile_aot_s'])}]"
        out.append(
            [
                name,
                r["solver"],
                r["dofs"],
                r["geometry_s"],
                comp,
                r["assembly_s"],
                r["solve_s"],
                r["asm_solve_s"],
                r["total_s"],
                r["total_compile_s"],
                _f(r["L2"], 3),
                r["quad_points"] / r["elements"],
                r["peak_rss_gb"],
                r["load_before"],
                _f(r.get("e2e_nmm_solve_s")),
                _f(r.get("first_solve_s")),
            ]
        )
    return markdown(headers, out)


def ratio_table(rows: list[dict]) -> str:
    """NMM p=0 (direct) versus skfem P1 at each size, on assembly+solve."""
    out = []
    for size in sorted({r["size"] for r in rows}):
        nm = [
            r
            for r in rows
            if r["size"] == size
            and r["kind"] == "nmm"
            and r["p"] == 0
            and r["solver"] == "direct"
            and "skipped" not in r
        ]
        sk = [
            r
            for r in rows
            if r["size"] == size and r["kind"] == "skfem" and r["p"] == 1 and "skipped" not in r
        ]
        if not nm or not sk:
            continue
        default = [r for r in sk if r["solver"] == "default"]
        best = min(sk, key=lambda r: r["asm_solve_s"])
        a, a_cpu = nm[0]["asm_solve_s"], nm[0]["cpu_asm_solve_s"]
        row = [f"{size:.0e}", nm[0]["dofs"], a]
        if default:
            d = default[0]
            row += [
                d["asm_solve_s"],
                a / d["asm_solve_s"],
                "yes" if a / d["asm_solve_s"] <= 1.0 else "no",
                a_cpu / d["cpu_asm_solve_s"],
                f"{_f(nm[0].get('first_solve_s'))} / {_f(d.get('first_solve_s'))}",
            ]
        else:
            row += ["—"] * 5
        b = best["asm_solve_s"]
        row += [
            f"{b:.3g} ({best['solver']})",
            a / b,
            "yes" if a / b <= 1.0 else "no",
            a_cpu / best["cpu_asm_solve_s"],
        ]
        out.append(row)
    headers = [
        "size",
        "unknowns",
        "NMM p=0 asm+solve",
        "skfem P1 default",
        "ratio",
        "≤1.0×?",
        "ratio, CPU time",
        "first solve: NMM / skfem",
        "skfem P1 fastest solver",
        "ratio",
        "≤1.0×?",
        "ratio, CPU time",
    ]
    return markdown(headers, out)


def sweep_table(rows: list[dict]) -> str:
    headers = [
        "method",
        "config",
        "unknowns",
        "total (no compile)",
        "compile [AOT]",
        "total+compile",
        "rel. L2",
        "≤1e-6",
    ]
    out = []
    for r in sorted(rows, key=lambda r: (r["kind"], r["p"], r["n"])):
        cfg = f"n={r['n']} (h=1/{r['n']})"
        name = r.get("method") or f"{r['kind']} p={r['p']}"
        if "skipped" in r:
            out.append([name, cfg, "—", f"skipped: {r['skipped']}", "—", "—", "—", "—"])
            continue
        comp = _f(r["compile_s"])
        if "compile_aot_s" in r:
            comp += f" [{_f(r['compile_aot_s'])}]"
        out.append(
            [
                name,
                cfg,
                r["dofs"],
                r["total_s"],
                comp,
                r["total_compile_s"],
                _f(r["L2"], 3),
                "yes" if r["L2"] <= TARGET_ERR else "",
            ]
        )
    return markdown(headers, out)


def fastest(rows: list[dict], key: str) -> dict | None:
    ok = [r for r in rows if "skipped" not in r and r["L2"] <= TARGET_ERR]
    return min(ok, key=lambda r: r[key]) if ok else None


def fastest_table(rows: list[dict]) -> tuple[str, dict]:
    """Fastest measured configuration reaching rel. L2 <= 1e-6, per method family and per
    element, with and without compile time."""
    groups = {
        "NMM (any p)": [r for r in rows if r["kind"] == "nmm"],
        "skfem best of P1/P2": [r for r in rows if r["kind"] == "skfem" and r["p"] <= 2],
        "skfem best of P1-P4": [r for r in rows if r["kind"] == "skfem"],
    }
    for p in sorted({r["p"] for r in rows if r["kind"] == "nmm"}):
        groups[f"  NMM p={p}"] = [r for r in rows if r["kind"] == "nmm" and r["p"] == p]
    for k in sorted({r["p"] for r in rows if r["kind"] == "skfem"}):
        groups[f"  skfem {SKFEM_ORDERS[k]}"] = [r for r in rows if r["kind"] == "skfem" and r["p"] == k]
    out, summary = [], {}
    for name, rs in groups.items():
        a, b = fastest(rs, "total_s"), fastest(rs, "total_compile_s")
        summary[name.strip()] = {"no_compile": a, "with_compile": b}
        if a is None:
            done = [r for r in rs if "skipped" not in r]
            best = min(done, key=lambda r: r["L2"]) if done else None
            note = (
                f"not reached; best {best['L2']:.2e} at {best['dofs']} unknowns" if best else "no runs"
            )
            out.append([name, note, "—", "—", "—", "—"])
            continue

        def cfg(r):
            return f"{r['method']} n={r['n']} ({r['dofs']} unk., {r['solver']})"

        out.append([name, cfg(a), a["total_s"], _f(a["L2"], 3), cfg(b), b["total_compile_s"]])
    headers = [
        "method",
        "fastest config (no compile)",
        "time s",
        "rel. L2",
        "fastest config (with compile)",
        "time+compile s",
    ]
    return markdown(headers, out), summary


LEVELS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)


def time_to_error_table(rows: list[dict]) -> str:
    """Per accuracy level, the fastest measured run of each family reaching it (no
    interpolation): NMM (best p) against scikit-fem P1, P2, P3 and P4, run time with the compile
    time beside it, and who is first."""
    nmm_rows = [r for r in rows if r["kind"] == "nmm"]
    # "NMM nmm.solve": what a user's script waits for with default options, geometry included
    user = [
        {
            **r,
            "total_s": r["geometry_s"] + r["e2e_nmm_solve_s"],
            "L2": r["e2e_L2"],
            "compile_s": r["e2e_compile_s"],
        }
        for r in nmm_rows
        if "e2e_L2" in r
    ]
    fams = {"NMM": nmm_rows, "NMM nmm.solve": user}
    for k in sorted({r["p"] for r in rows if r["kind"] == "skfem"}):
        fams[f"skfem {SKFEM_ORDERS[k]}"] = [r for r in rows if r["kind"] == "skfem" and r["p"] == k]
    out = []
    for level in LEVELS:
        row, best = [f"{level:.0e}"], {}
        for name, rs in fams.items():
            ok = [r for r in rs if r["L2"] <= level]
            if not ok:
                row.append("not reached")
                continue
            r = min(ok, key=lambda r: r["total_s"])
            best[name] = r["total_s"]
            extra = (
                f" (p = {r['p']}, n = {r['n']}; + {r['compile_s']:.2g} s compile)"
                if name.startswith("NMM")
                else ""
            )
            row.append(f"{r['total_s']:.3g}{extra}")
        row.append(min(best, key=best.get) if best else "—")
        out.append(row)
    return markdown(["rel. L2 ≤", *fams, "first (run time)"], out)


def cut_table(runs) -> str:
    rows = []
    for r in runs if isinstance(runs, list) else [runs]:  # one dict: a run from before --cut-cells
        if "skipped" in r:
            rows.append([f"skipped: {r['skipped']}"] + ["-"] * 8)
            continue
        space = r["space_p2_s"]
        rows.append(
            [
                r["cells"],
                r["elements"],
                r["cut_elements"],
                r["physical_covers"],
                r["boundary_pieces"],
                r["cover_s"],
                r["cut_s"],
                "-" if space is None else space,
                "-" if space is None else ("yes" if space < 5 else "no"),
            ]
        )
    headers = [
        "cells",
        "elements",
        "cut elements",
        "physical covers",
        "boundary pieces",
        "MathCover s",
        "topology.cut s",
        "ManifoldSpace(p=2) s",
        "< 5 s?",
    ]
    return markdown(headers, rows)


# ================================================================================ driver


def main_cases(sizes: list[float], reps_small: int, with_cg: bool) -> list[dict]:
    """Specs for the fixed-size table; order interleaves the codes so both see similar load."""
    specs = []
    for size in sizes:
        reps = reps_small if size <= 2e5 else 2
        for order in (1, 2):
            n = skfem_n_for(size, order)
            for solver in SKFEM_SOLVERS:
                specs.append(
                    {
                        "kind": "skfem",
                        "n": n,
                        "p": order,
                        "solver": solver,
                        "reps": reps,
                        "size": size,
                        "dofs_est": skfem_dofs(n, order),
                    }
                )
            p = 0 if order == 1 else 2
            n = nmm_n_for(size, p)
            solvers = ["direct", "cg", "amg"] if (p == 0 and with_cg) else ["direct"]
            if _has_cvxopt():
                solvers.append("cholesky")
            for solver in solvers:
                specs.append(
                    {
                        "kind": "nmm",
                        "n": n,
                        "p": p,
                        "solver": solver,
                        "reps": reps,
                        "e2e": size <= 2e5,
                        "size": size,
                        "dofs_est": nmm_dofs(n, p),
                    }
                )
    return specs


def _has_cvxopt() -> bool:
    """The Cholesky rows need the optional cvxopt (``nmm[cholmod]``)."""
    import importlib.util

    return importlib.util.find_spec("cvxopt") is not None


def sweep_cases(quick: bool, max_dofs: float, reps_small: int) -> list[dict]:
    """(h, p) grid for the error-versus-time study; everything with the default solver."""
    if quick:
        nmm_grid = [(n, p) for n in (2, 4, 8) for p in (1, 2, 4, 6, 8)]
        sk_grid = {1: (64, 128, 256), 2: (16, 32, 64, 96), 3: (8, 16, 24), 4: (4, 8, 12)}
    else:
        nmm_grid = [(n, p) for n in (2, 4, 8, 16, 32) for p in range(1, 9)]
        sk_grid = {
            1: (64, 128, 256, 512, 1024, 1448),
            2: (16, 24, 32, 48, 64, 80, 96, 128),
            3: (4, 8, 12, 16, 24, 32, 48),
            4: (2, 4, 6, 8, 12, 16, 24),
        }
    specs = []
    for n, p in nmm_grid:
        if nmm_dofs(n, p) <= max_dofs:
            specs.append(
                {
                    "kind": "nmm",
                    "n": n,
                    "p": p,
                    "solver": "direct",
                    "reps": reps_small if nmm_dofs(n, p) <= 2e5 else 2,
                    "e2e": nmm_dofs(n, p) <= 2e5,  # nmm.solve with default options too
                    "dofs_est": nmm_dofs(n, p),
                }
            )
    for order, ns in sk_grid.items():
        for n in ns:
            if skfem_dofs(n, order) <= max_dofs:
                specs.append(
                    {
                        "kind": "skfem",
                        "n": n,
                        "p": order,
                        "solver": "default",
                        "reps": reps_small if skfem_dofs(n, order) <= 2e5 else 2,
                        "dofs_est": skfem_dofs(n, order),
                    }
                )
    return specs


def _progress(r: dict) -> None:
    if "skipped" in r:
        msg = f"SKIPPED ({r['skipped']})"
    else:
        msg = (
            f"dofs={r['dofs']} geom={r['geometry_s']:.3g} compile={r['compile_s']:.3g} "
            f"asm={r['assembly_s']:.3g} solve={r['solve_s']:.3g} L2={r['L2']:.3g} "
            f"rss={r['peak_rss_gb']:.2f}GiB"
        )
    print(
        f"  [{r['wall_s']:6.1f}s] {r['kind']} p={r['p']} n={r['n']} {r['solver']}: {msg}",
        file=sys.stderr,
        flush=True,
    )


def run_all(specs, timeout_s, cap_gb) -> list[dict]:
    done = []
    for spec in specs:
        r = _totals(run_isolated(spec, timeout_s, cap_gb))
        done.append(r)
        _progress(r)
    return done


NOTES = [
    "Unit square, -Δu = f, u = g on ∂Ω, exact u = sin(πx) sin(πy) + xy; the same analytic f and g "
    "for both codes.",
    "The nmm triangle cover is aligned with the square (cells are whole triangles, cut cells are "
    "exactly the boundary ones): NMM p=0 is then linear FEM with Nitsche boundary conditions, and "
    "the comparison with P1 is like for like.",
    "nmm Dirichlet: Nitsche (weak, all (n+1)² nodes are unknowns); skfem: strong, by condense "
    "(interior DOFs only). 'unknowns' counts all DOFs for both.",
    "Quadrature: each code's default rule; 'qp/el' = quadrature points per element.",
    "Times are wall-clock seconds, steady state = best of the calls after the first.",
    "compile = first call minus steady-state call (assembly + solve); [AOT] = trace + lower + XLA "
    "compile alone, timed after jax.clear_caches(): the first number also holds first-call "
    "run-time noise, the second does not.",
    "Other jobs may share this 2-core machine: see 'load' (1-min load average before each case).",
]


def collect(args) -> dict:
    """Run every case (each in its own subprocess) and return the raw results."""
    sizes = [1e4] if args.quick else args.sizes
    sweep_max = args.sweep_max_dofs
    if args.max_dofs is not None:
        sizes = [s for s in sizes if s <= args.max_dofs]
        sweep_max = min(sweep_max, args.max_dofs)
    if args.quick:
        sweep_max = min(sweep_max, 1e5)
    reps = 2 if args.quick else args.reps

    import jax
    import scipy
    import skfem

    t_start = time.perf_counter()
    result = {
        "meta": {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"{_mem_available_gb():.1f} GiB available at start",
            "nmm_git": git_state(),
            "python": platform.python_version(),
            "versions": {
                "jax": jax.__version__,
                "scikit-fem": skfem.__version__,
                "scipy": scipy.__version__,
                "numpy": np.__version__,
            },
            "loadavg_start": os.getloadavg(),
        }
    }
    if args.only_cut:
        sizes, args.no_sweep = [], True
    print("running fixed-size cases ...", file=sys.stderr)
    result["cases"] = run_all(main_cases(sizes, reps, not args.no_cg), args.timeout, args.mem_cap_gb)
    if not args.no_sweep:
        print("running error-versus-time sweep ...", file=sys.stderr)
        specs = sweep_cases(args.quick, sweep_max, reps)
        result["sweep"] = run_all(specs, args.timeout, args.mem_cap_gb)
    if not args.no_cut:
        print("running cutting benchmark ...", file=sys.stderr)
        result["cut"] = [
            run_isolated(
                {"kind": "cut", "cells": c, "reps": 3, "p": 2, "n": 0, "solver": "-"},
                args.timeout,
                args.mem_cap_gb,
            )
            for c in args.cut_cells
        ]
    result["meta"]["nmm_git_end"] = git_state()
    result["meta"]["wall_s"] = time.perf_counter() - t_start
    return result


def render(result: dict) -> str:
    """All tables as Markdown (also fills result["fastest_to_1e-6"])."""
    meta = result["meta"]
    lines = [
        f"# Poisson: nmm vs scikit-fem  ({meta['started']}, {meta['machine']}, "
        f"nmm {meta.get('nmm_git', '?')})",
        "",
    ]
    lines += [f"- {note}" for note in NOTES]
    lines.append("- scikit-fem solvers: " + "; ".join(f"`{k}` = {v}" for k, v in SKFEM_SOLVERS.items()))
    lines.append("- nmm solvers: " + "; ".join(f"`{k}` = {v}" for k, v in NMM_SOLVERS.items()))
    if meta.get("nmm_git_end", meta.get("nmm_git")) != meta.get("nmm_git"):
        lines.append(f"- WARNING: nmm changed during the run (end: {meta['nmm_git_end']})")
    main_rows = result["cases"]
    lines += [
        "",
        "## Fixed sizes (seconds)",
        "",
        main_table(main_rows),
        "",
        "### Target: NMM p=0 assembly+solve (default options) ≤ 1.0 × skfem P1",
        "",
        ratio_table(main_rows),
        "",
    ]
    if "sweep" in result:
        sweep_rows = result["sweep"]
        pool = [r for r in sweep_rows + main_rows if "skipped" not in r]
        table, summary = fastest_table(pool)
        keep = ("method", "solver", "n", "dofs", "total_s", "total_compile_s", "L2")
        result["fastest_to_1e-6"] = {
            name: {which: None if r is None else {k: r[k] for k in keep} for which, r in best.items()}
            for name, best in summary.items()
        }
        lines += [
            "## Error versus wall time (default solvers; seconds)",
            "",
            sweep_table(sweep_rows),
            "",
            f"### Fastest measured configuration with rel. L2 ≤ {TARGET_ERR:g} "
            "(sweep + fixed-size runs, no interpolation)",
            "",
            table,
            "",
            "### Time to error: the fastest run of each family at every accuracy level",
            "",
            time_to_error_table(pool),
            "",
        ]
    if "cut" in result:
        lines += [
            "## Cutting covers: triangle cells over a square with a 64-gon hole and a crack",
            "",
            cut_table(result["cut"]),
            "",
        ]
    if "wall_s" in meta:
        lines.append(f"Total benchmark wall time: {meta['wall_s']:.0f} s")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes",
        type=float,
        nargs="+",
        default=[1e4, 1e5, 1e6],
        help="target unknown counts for the fixed-size table",
    )
    ap.add_argument(
        "--max-dofs",
        type=float,
        default=None,
        help="drop sizes (and sweep configurations) above this many unknowns",
    )
    ap.add_argument("--quick", action="store_true", help="1e4 only, a short sweep, fewer repetitions")
    ap.add_argument(
        "--sweep-max-dofs",
        type=float,
        default=2.2e6,
        help="largest configuration in the error-versus-time sweep",
    )
    ap.add_argument("--no-sweep", action="store_true", help="skip the error-versus-time sweep")
    ap.add_argument("--no-cut", action="store_true", help="skip the cutting benchmark")
    ap.add_argument("--only-cut", action="store_true", help="only the cutting benchmark")
    ap.add_argument(
        "--cut-cells",
        type=float,
        nargs="+",
        default=[1e5],
        help="cover sizes (cells) of the cutting benchmark; above 2e5 cells without the p = 2 space",
    )
    ap.add_argument("--no-cg", action="store_true", help="skip the nmm CG and AMG variants")
    ap.add_argument(
        "--reps",
        type=int,
        default=5,
        help="calls per phase for cases up to 2e5 unknowns (larger ones: 2)",
    )
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    ap.add_argument("--mem-cap-gb", type=float, default=20.0, help="RSS cap per case (GiB)")
    ap.add_argument("--out", default="results/bench_poisson.json")
    ap.add_argument(
        "--render", metavar="JSON", help="only print the tables of an earlier run's JSON file"
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        res = worker(json.loads(args.worker))
        print(RESULT_TAG + json.dumps(res), flush=True)
        return
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return

    result = collect(args)
    write_result(result, render(result), args.out)


if __name__ == "__main__":
    main()
