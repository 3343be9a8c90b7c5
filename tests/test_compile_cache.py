"""JAX's persistent compilation cache, as nmm switches it on: a second run compiles nothing."""

import json
import os
import subprocess
import sys

SCRIPT = """
import json, jax, nmm
events, compiles = [], []
jax.monitoring.register_event_listener(lambda ev, **k: events.append(ev))
jax.monitoring.register_event_duration_secs_listener(
    lambda ev, d, **k: compiles.append(ev) if ev.endswith("backend_compile_duration") else None)
dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 1 / 24), dom, degree=0)
e0, c0 = len(events), len(compiles)
u = nmm.solve(V, nmm.Poisson(f=1.0, dirichlet=0.0))  # 625 unknowns: the default is SuperLU
V2 = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 1 / 4), dom, degree=2)  # stable: refined
u2 = nmm.solve(V2, nmm.Poisson(f=1.0, dirichlet=0.0), solver="direct")
ev = events[e0:]
print(json.dumps({
    "dofs": int(V.n_dofs),
    "compiles": len(compiles) - c0,
    "hits": sum(e.endswith("/cache_hits") for e in ev),
    "misses": sum(e.endswith("/cache_misses") for e in ev),
    "u": float(u(jax.numpy.array([0.5, 0.5]))),
    "u2": float(u2(jax.numpy.array([0.5, 0.5]))),
}))
"""


def _run(cache) -> dict:
    env = {**os.environ, "NMM_COMPILATION_CACHE": str(cache), "NMM_COMPILATION_CACHE_MIN_S": "0"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_run_of_a_sparse_solve_compiles_nothing(tmp_path):
    """An eager solve with the host SuperLU (p = 0 above the dense LU's 512 unknowns, and a stable
    p = 2 space, refined outside) compiles its programs once: they hold no host callback, so the
    second run reads every one from the cache (before, the one program with the SuperLU callbacks
    compiled anew in every run)."""
    first, second = _run(tmp_path), _run(tmp_path)
    assert first["dofs"] > 512 and first["compiles"] >= 1
    assert first["misses"] == first["compiles"]
    assert second["misses"] == 0 and second["hits"] == second["compiles"] >= 1
    assert second["u"] == first["u"] and abs(first["u"] - 0.0737) < 1e-3  # -Δu = 1: u(½, ½)
    assert second["u2"] == first["u2"] and abs(first["u2"] - 0.0737) < 1e-4
