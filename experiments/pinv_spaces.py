"""PInv with other parameter spaces for a, the model chosen by the Laplace evidence.

The evidence (``nmm.inverse.log_evidence``, proper Gaussian priors) compares a-spaces as well as
weights, with the data alone: does a coarser or smoother space for a, or a weaker L2 part of the
H1 prior, cut the prior's bias that dominates PInv's error? Each argument is one configuration
``(h, degree, beta_ratio, alphas)``: a's cover size and degree, the prior H1(α, β = ratio·α,
mean = a's boundary level) and the weights tried. Prints the evidence and the errors (the truth is
used only for the errors). With ``--coons`` a's known boundary trace is built in instead of
observed: a = g + 16 x(1−x) y(1−y) q, g the Coons patch of a's boundary values, q the field on the
given space with the prior's mean 0, and the evidence is that of u's data alone. Example (the
README's runs)::

    python -m experiments.pinv_spaces "(0.5, 3, 1.0, (10, 100, 1e3))" \\
        "(1.0, 4, 1e-3, (1e-3, 1e-2, 0.1, 1, 10))"
    python -m experiments.pinv_spaces --coons "(1.0, 2, 1.0, (0.1, 1, 10, 100))"
"""

import sys
import time
from ast import literal_eval

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import nmm  # noqa: E402
from nmm import inverse as inv  # noqa: E402
from nmm_nn.inverse import PINV  # noqa: E402

from .inverse import _scores, pinv_setup  # noqa: E402


def _coons(p):
    """The transfinite (Coons) patch of a's boundary values: a's known trace, extended."""
    x, y = p[0], p[1]
    z, o = jnp.zeros_like(x), jnp.ones_like(x)

    def a(s, t):
        return PINV.exact_a(jnp.stack([s, t]))

    edges = (1 - x) * a(z, y) + x * a(o, y) + (1 - y) * a(x, z) + y * a(x, o)
    corners = (1 - x) * (1 - y) * a(z, z) + x * (1 - y) * a(o, z) + (1 - x) * y * a(z, o)
    return edges - corners - x * y * a(o, o)


class CoonsPlusBubble(eqx.Module):
    """a = g + 16 x(1−x) y(1−y) q: a's known boundary trace built in (g its Coons patch)."""

    q: nmm.Field

    def __call__(self, p):
        return _coons(p) + 16 * p[0] * (1 - p[0]) * p[1] * (1 - p[1]) * self.q(p)


def main(configs, coons: bool = False) -> None:
    task, dom, V, f, obs_u, obs_a = pinv_setup(seed=0)  # the data of experiments.inverse.pinv

    def chi2(k):  # the u data's χ² of a coefficient k
        u = nmm.solve(V, nmm.Poisson(k=k, f=f, dirichlet=0.0))
        r = (u(task.obs_points) - task.obs_values) / 0.1
        return float(r @ r), u

    # what the data can tell apart (the truth used here only to score)
    print(f"u data: m = {task.obs_values.size}, chi2 of the true a = {chi2(PINV.exact_a)[0]:.1f}")
    for c in (0.95, 1.05):
        print(f"  chi2 of {c} * a = {chi2(lambda x, c=c: c * PINV.exact_a(x))[0]:.1f}")
    if coons:
        G = jnp.asarray(np.asarray(task.e_points)[:, :2])
        exact = jax.vmap(PINV.exact_a)(G)
        err = jnp.linalg.norm(jax.vmap(_coons)(G) - exact) / jnp.linalg.norm(exact)
        print(f"the Coons patch of a's boundary values alone: a rel. L2 = {float(err):.3e}")

    def forward(a):
        if coons:  # the boundary trace is exact by construction: u's data only
            return nmm.solve(V, nmm.Poisson(k=CoonsPlusBubble(a), f=f, dirichlet=0.0), throw=False)
        return nmm.solve(V, nmm.Poisson(k=a, f=f, dirichlet=0.0), throw=False), a

    observations = obs_u if coons else (obs_u, obs_a)
    for h, degree, ratio, alphas in configs:
        Q = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=h), dom, degree=degree)
        level = 0.0 if coons else float(np.mean(np.asarray(task.ab_values)))
        a0 = nmm.fit(Q, lambda x, level=level: level)

        def problem(alpha, a0=a0, ratio=ratio):
            return inv.InverseProblem(forward, observations, inv.H1(alpha, beta=ratio * alpha, mean=a0))

        t0 = time.perf_counter()
        choice = inv.choose_regularisation(
            problem, a0, alphas, rule="evidence", max_steps=40, damping=1e-3
        )
        print(
            f"{'q' if coons else 'a'}-space h={h} p={degree} ({Q.n_dofs} unknowns), "
            f"beta/alpha={ratio}: {time.perf_counter() - t0:.0f} s, evidence chooses "
            f"alpha={choice.alpha:g}"
        )
        for alpha, ev, res in zip(choice.alphas, choice.evidence, choice.results, strict=True):
            a = CoonsPlusBubble(res.theta) if coons else res.theta
            c2, u = chi2(a)
            s = _scores(u, jax.vmap(a) if coons else a, task, PINV)
            print(
                f"  alpha={alpha:8.2e} log evidence={ev:10.2f} steps={int(res.steps):2d} "
                f"{res.reason:9s} u chi2={c2:.1f} a rel. L2={s['a_L2']:.3e} "
                f"u rel. L2={s['u_L2']:.3e}",
                flush=True,
            )


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--coons"]
    if not args:
        sys.exit(__doc__)
    main([literal_eval(c) for c in args], coons="--coons" in sys.argv[1:])
