"""Forward against reverse mode for a few parameters and many data: the Jacobian of θ (3 numbers:
a Gaussian source's centre and strength) ↦ 120 outward boundary fluxes of a Poisson solve
(``experiments/inverse.py::source_identification``'s map), by ``jax.jacfwd`` (3 tangent solves in
one batched call) and ``jax.jacrev`` (120 adjoint solves in one batched call), both jitted and
compiled before timing; with the default solver (SuperLU at this size: above
``nmm.drivers.DENSE_MAX_UNKNOWNS``) and ``"direct"`` (SuperLU named).

    python benchmarks/jacfwd_vs_jacrev.py
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

import nmm
from experiments.inverse import SOURCE_TRUTH, UNIT_SQUARE, _source


def main(repeats: int = 7):
    dom = nmm.Domain.polygon(UNIT_SQUARE)
    V = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=0.125), dom, degree=4)
    t = (np.arange(30) + 0.5) / 30
    B = np.concatenate([np.c_[t, 0 * t], np.c_[1 + 0 * t, t], np.c_[t, 1 + 0 * t], np.c_[0 * t, t]])
    normal = np.repeat([[0, -1.0], [1.0, 0], [0, 1.0], [-1.0, 0]], 30, axis=0)
    theta = jnp.asarray(SOURCE_TRUTH)
    print(f"n_dofs {V.n_dofs}, data {B.shape[0]}, parameters {theta.size}")
    for solver in (None, "direct"):

        def flux(th, solver=solver):
            u = nmm.solve(V, nmm.Poisson(f=_source(th), dirichlet=0.0), solver=solver, throw=False)
            return jnp.sum(u.grad(B) * normal, axis=1)

        fns = {
            "primal": jax.jit(flux),
            "jacfwd": jax.jit(jax.jacfwd(flux)),
            "jacrev": jax.jit(jax.jacrev(flux)),
        }
        out = {}
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out[name] = jax.block_until_ready(fn(theta))
            compile_s = time.perf_counter() - t0
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                jax.block_until_ready(fn(theta))
                times.append(time.perf_counter() - t0)
            print(
                f"{solver or 'default'!s:8} {name:7} first call {compile_s:6.2f} s, "
                f"then median {1e3 * np.median(times):8.2f} ms (min {1e3 * min(times):8.2f})"
            )
        diff = float(jnp.max(jnp.abs(out["jacfwd"] - out["jacrev"])) / jnp.max(jnp.abs(out["jacrev"])))
        print(f"{solver or 'default'!s:8} |jacfwd - jacrev| / |J| = {diff:.2e}, J {out['jacfwd'].shape}")


if __name__ == "__main__":
    main()
