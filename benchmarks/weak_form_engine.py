"""The weak-form engine: what autodiff assembly, the implicit adjoint and the factor cache cost.

One run, side by side in one process, compile time apart from run time (compile = first call
minus the best later call), every timed call ends in ``block_until_ready``, the minimum over the
calls after a warm-up is reported. Problem (all parts): -∇·(k ∇u) = f on the unit square, u = g
on ∂Ω by Nitsche, exact u = sin(πx) sin(πy) + x y, on an aligned triangle cover with h = 1/n.

(a) Assembly: the hand-written Poisson kernel of commit a76f601 (``poisson_system`` with its
    helpers, copied below and adapted to the current ``ManifoldSpace``) against the autodiff path
    (``nmm.drivers.boundary_data`` + the jitted ``nmm.drivers._assemble_jit``, i.e.
    ``nmm.assemble`` without its input checks); both times include the host-side boundary
    masks. Also the agreement of the two systems: max |K_hand - K| / max |K_hand| over the block
    values and max |b_hand - (-R)| / max |b_hand| (the engine returns the residual R at zero; the
    system is K x = -R). Target: autodiff <= 1.2x hand-written.
(b) Gradients: k(x) = θ0 + θ1 x0 (``params`` θ), loss(θ) = Σ u(x_i)² at 16 fixed points, through
    ``nmm.solve``; ``loss`` against ``jax.value_and_grad(loss)``, both under ``eqx.filter_jit``,
    with the default solver (``SuperLU()``, which estimates the condition number at the
    factorisation) and with ``SuperLU(condition=False)``. The adjoint reuses the forward
    factorisation (one transpose solve). "old adjoint" emulates the rule of a76f601, which
    factored the matrix again in the backward pass: an identity on the coefficients whose
    backward rule empties the factor cache (``nmm.linalg.clear_factor_cache``), so that the
    transpose solve must refactor. Target: value_and_grad <= 1.3x forward.
(c) Factorisation reuse: 32 consistent right-hand sides b_i = K x_i with one matrix,
    ``SuperLU(condition=False)``: a fresh ``linear_solve(K, b_i)`` per right-hand side (factor +
    solve each time) against one ``solver.init(K)`` and ``linear_solve(K, b_i, state=st)``, and
    against one ``jax.vmap`` of ``linear_solve`` over the 32 right-hand sides (K unbatched: it is
    factored once). Loops are Python loops over one jitted call.

Usage::

    python benchmarks/weak_form_engine.py                  # 1e4 / 1e5 unknowns (~7 min, 2 cores)
    python benchmarks/weak_form_engine.py --quick          # ~1e3 unknowns (~1 min, mostly compiling)
    python benchmarks/weak_form_engine.py --parts grad     # one part only
    python benchmarks/weak_form_engine.py --render results/bench_weak_form.json  # tables only

Prints Markdown tables and writes the raw results as JSON to ``results/bench_weak_form.json``
(``--out``).
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
from nmm.drivers import _assemble_jit, boundary_data

N_RHS = 32

# (n, p): cells per side of the triangle cover (h = 1/n) and cover-function order
SIZES = {
    "quick": {
        "assembly": [(31, 0), (12, 2)],
        "grad": [(31, 0), (17, 1)],
        "reuse": [(31, 0), (12, 2)],
    },
    "default": {
        # 1e4 and 1e5 unknowns at p = 0, 1e4 and 6e4 at p = 2
        "assembly": [(99, 0), (316, 0), (40, 2), (100, 2)],
        # 1e4 and 1e5 at p = 0, 1e4 at p = 1
        "grad": [(99, 0), (316, 0), (57, 1)],
        "reuse": [(99, 0), (316, 0), (40, 2)],
    },
}


# ================================================================================ the problem


def exact(x):
    return jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1]) + x[0] * x[1]


def source(x):
    return 2.0 * jnp.pi**2 * jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])


def unit_square_space(n: int, p: int) -> nmm.ManifoldSpace:
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    return nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=1.0 / n), dom, degree=p)


# ============================================================ hand-written kernel (commit a76f601)
# nmm/assembly.py::poisson_system and its helpers as they were before the weak-form engine; the
# only changes: the block count comes from space.host.pattern, data are evaluated by `evaluate`
# (a76f601's nmm/problems.py), and the masks are built here (a76f601's nmm/solve.py).


def evaluate(fn, points, params, *extra):
    """Data ``fn`` at ``points (..., dim)``: a constant, ``fn(x, *extra)`` or
    ``fn(x, *extra, params)``; shape ``points.shape[:-1]``."""
    lead = points.shape[:-1]
    if fn is None:
        return jnp.zeros(lead, points.dtype)
    if not callable(fn):
        return jnp.full(lead, fn, points.dtype)
    flat = points.reshape(-1, points.shape[-1])
    flat_extra = [e.reshape(-1, e.shape[-1]) for e in extra]
    if params is None:
        out = jax.vmap(lambda x, *ex: jnp.asarray(fn(x, *ex)))(flat, *flat_extra)
    else:
        out = jax.vmap(lambda x, *ex: jnp.asarray(fn(x, *ex, params)))(flat, *flat_extra)
    return out.reshape(lead).astype(points.dtype)


def basis_at(space, elems, points):
    """``elems (S,)``, ``points (S, Q, dim)`` -> ``phi (S, Q, n_loc)``, ``dphi (S, Q, n_loc, dim)``."""
    per_point = jax.vmap(space.local_basis, in_axes=(None, 0))
    return jax.vmap(per_point)(elems, points)


def scatter_matrix(space, elems, local):
    """Local matrices ``(S, n_loc, n_loc)`` into block data ``(n_blocks, nt, nt)``."""
    nt = space.n_terms
    nv = space.n_local // nt
    s = local.shape[0]
    blocks = local.reshape(s, nv, nt, nv, nt).transpose(0, 1, 3, 2, 4).reshape(-1, nt, nt)
    idx = space.elem_blocks[elems].reshape(-1)
    return jax.ops.segment_sum(blocks, idx, num_segments=space.host.pattern.n_blocks)


def scatter_vector(space, elems, local):
    """Local vectors ``(S, n_loc)`` into a global vector ``(n_dofs,)``."""
    idx = space.elem_dofs[elems].reshape(-1)
    return jax.ops.segment_sum(local.reshape(-1), idx, num_segments=space.n_dofs)


def hand_masks(space, problem):
    """Dirichlet and Neumann masks over the boundary pieces (a76f601's ``boundary_masks`` for
    ``dirichlet_on=None``: Dirichlet on all of ∂Ω, crack faces excluded)."""
    outer = ~space.host.topology.bnd_crack
    dirichlet = outer.copy() if problem.dirichlet is not None else np.zeros(len(outer), bool)
    neumann = outer & ~dirichlet
    return jnp.asarray(dirichlet.astype(float)), jnp.asarray(neumann.astype(float))


@eqx.filter_jit
def poisson_system(space, problem, params, dirichlet_mask, neumann_mask):
    """Block data and rhs ``b`` (K x = b) of the Poisson problem, Nitsche or penalty terms."""
    elems, pts, w = space.q_elem, space.q_points, space.q_weights
    phi, dphi = basis_at(space, elems, pts)
    kq = evaluate(problem.k, pts, params)
    cq = evaluate(problem.c, pts, params)
    fq = evaluate(problem.f, pts, params)
    local = jnp.einsum("sq,sqid,sqjd->sij", w * kq, dphi, dphi)
    local = local + jnp.einsum("sq,sqi,sqj->sij", w * cq, phi, phi)
    data = scatter_matrix(space, elems, local)
    rhs = scatter_vector(space, elems, jnp.einsum("sq,sqi->si", w * fq, phi))
    if space.b_elem.shape[0] == 0:
        return data, rhs

    be, bp, normal = space.b_elem, space.b_points, space.b_normal
    phib, dphib = basis_at(space, be, bp)
    if problem.dirichlet is not None:
        wd = space.b_weights * dirichlet_mask[:, None]
        kb = evaluate(problem.k, bp, params)
        g = evaluate(problem.dirichlet, bp, params)
        wdeg = 2 if space.kind == "quad" else 1
        beta = problem.beta0 * (space.degree + wdeg) ** 2 / space.elem_h[be]
        pen = wd * kb * beta[:, None]
        bl = jnp.einsum("sq,sqi,sqj->sij", pen, phib, phib)
        br = jnp.einsum("sq,sqi->si", pen * g, phib)
        if problem.bc == "nitsche":
            dn = jnp.einsum("sqid,sd->sqi", dphib, normal)
            cross = jnp.einsum("sq,sqi,sqj->sij", wd * kb, dn, phib)
            bl = bl - cross - jnp.swapaxes(cross, 1, 2)
            br = br - jnp.einsum("sq,sqi->si", wd * kb * g, dn)
        data = data + scatter_matrix(space, be, bl)
        rhs = rhs + scatter_vector(space, be, br)
    nq = jnp.broadcast_to(normal[:, None, :], bp.shape)
    for flux, mask in (
        (problem.neumann, neumann_mask),
        (problem.crack_neumann, space.b_crack.astype(bp.dtype)),
    ):
        if flux is not None:
            wn = space.b_weights * mask[:, None]
            hq = evaluate(flux, bp, params, nq)
            rhs = rhs + scatter_vector(space, be, jnp.einsum("sq,sqi->si", wn * hq, phib))
    return data, rhs


# ================================================================================ timing


def _ready(out):
    return jax.block_until_ready(out)


def interleaved(fns: dict, reps: int, clear: bool = True) -> dict:
    """Call each function ``reps + 1`` times, in turn so that they see the same load; the first
    call compiles. Per function: the best later call, the first call minus it (compile) and all
    calls.

    With ``clear``, nmm's factor cache is emptied after every call (untimed): each call starts
    as a first solve does, and dead factorisations do not pile up (the cache keeps them after
    their states are gone)."""
    times = {k: [] for k in fns}
    for _ in range(reps + 1):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            _ready(fn())
            times[k].append(time.perf_counter() - t0)
            if clear:
                nmm.linalg.clear_factor_cache()
    out = {}
    for k, ts in times.items():
        best = min(ts[1:])
        out[k] = {"s": best, "compile_s": max(0.0, ts[0] - best), "all_s": ts}
    return out


def _size(space) -> dict:
    return {
        "dofs": int(space.n_dofs),
        "elements": int(space.n_elements),
        "blocks": int(space.host.pattern.n_blocks),
        "block_size": int(space.block_size),
    }


# ================================================================================ (a) assembly


def assembly_case(n: int, p: int, reps: int) -> dict:
    space = unit_square_space(n, p)
    prob = nmm.Poisson(k=1.0, f=source, dirichlet=exact)

    def hand():
        dmask, nmask = hand_masks(space, prob)
        return poisson_system(space, prob, None, dmask, nmask)

    def autodiff():
        bd = boundary_data(space, prob)
        return _assemble_jit(space, prob, None, bd, None)

    t = interleaved({"hand": hand, "autodiff": autodiff}, reps)
    data, b = hand()
    K, R = autodiff()
    dk = float(jnp.max(jnp.abs(data - K.data)) / jnp.max(jnp.abs(data)))
    db = float(jnp.max(jnp.abs(b + R)) / jnp.max(jnp.abs(b)))
    return {
        "n": n,
        "p": p,
        **_size(space),
        "hand": t["hand"],
        "autodiff": t["autodiff"],
        "ratio": t["autodiff"]["s"] / t["hand"]["s"],
        "matrix_rel_diff": dk,
        "rhs_rel_diff": db,
    }


# ================================================================================ (b) gradients


@eqx.filter_custom_vjp
def _refactor_in_backward(x):
    return x


@_refactor_in_backward.def_fwd
def _refactor_fwd(perturbed, x):
    return x, None


@_refactor_in_backward.def_bwd
def _refactor_bwd(residuals, g, perturbed, x):
    # empty the factor cache before the cotangent reaches the solve's adjoint rule (a data
    # dependency orders the callback), so that its transpose solve must factor again
    def host(v):
        nmm.linalg.clear_factor_cache()
        return np.asarray(v)

    return jax.pure_callback(host, jax.ShapeDtypeStruct(g.shape, g.dtype), g)


def grad_case(n: int, p: int, reps: int) -> dict:
    space = unit_square_space(n, p)
    # with params, every data callable is called as fn(x, params)
    prob = nmm.Poisson(
        k=lambda x, th: th[0] + th[1] * x[0],
        f=lambda x, th: source(x),
        dirichlet=lambda x, th: exact(x),
    )
    th = jnp.array([1.0, 0.5])
    g = np.linspace(0.1, 0.9, 4)
    pts = jnp.asarray(np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2))

    def loss(th, solver, old):
        # the space is closed over: it is host data, not a jit argument
        u = nmm.solve(space, prob, params=th, solver=solver)
        if old:
            u = eqx.tree_at(lambda f: f.coeffs, u, _refactor_in_backward(u.coeffs))
        return jnp.sum(u(pts) ** 2)

    fwd = eqx.filter_jit(loss)
    vg = eqx.filter_jit(jax.value_and_grad(loss))
    solvers = {
        "default": nmm.linalg.SuperLU(),
        "no_condition": nmm.linalg.SuperLU(condition=False),
    }
    out = {"n": n, "p": p, **_size(space)}
    for name, solver in solvers.items():
        t = interleaved(
            {
                "forward": lambda s=solver: fwd(th, s, False),
                "value_and_grad": lambda s=solver: vg(th, s, False),
                "old_adjoint": lambda s=solver: vg(th, s, True),
            },
            reps,
        )
        v0, g0 = vg(th, solver, False)
        v1, g1 = vg(th, solver, True)
        out[name] = {
            **t,
            "ratio": t["value_and_grad"]["s"] / t["forward"]["s"],
            "ratio_old": t["old_adjoint"]["s"] / t["forward"]["s"],
            "loss": float(v0),
            "grad": [float(v) for v in g0],
            "old_grad_rel_diff": float(jnp.max(jnp.abs(g1 - g0)) / jnp.max(jnp.abs(g0))),
        }
    return out


# ================================================================================ (c) reuse


def reuse_case(n: int, p: int, reps: int) -> dict:
    space = unit_square_space(n, p)
    prob = nmm.Poisson(k=1.0, f=source, dirichlet=exact)
    K, _ = nmm.assemble(space, prob)
    solver = nmm.linalg.SuperLU(condition=False)
    # consistent right-hand sides: p >= 1 systems are singular (linearly dependent cover
    # functions), so b must lie in the range of K
    xs = jax.random.normal(jax.random.PRNGKey(0), (N_RHS, space.n_dofs))
    B = _ready(jax.vmap(K.mv)(xs))

    fresh = eqx.filter_jit(lambda K, b: nmm.linalg.linear_solve(K, b, solver).value)
    init = eqx.filter_jit(solver.init)
    again = eqx.filter_jit(lambda K, b, st: nmm.linalg.linear_solve(K, b, solver, state=st).value)
    batched = eqx.filter_jit(
        lambda K, B: jax.vmap(lambda b: nmm.linalg.linear_solve(K, b, solver).value)(B)
    )

    # compile each (one call), then time whole sweeps over the 32 right-hand sides
    st = _ready(init(K))
    for f, args in ((fresh, (K, B[0])), (again, (K, B[0], st)), (batched, (K, B))):
        _ready(f(*args))

    def loop_fresh():
        return [_ready(fresh(K, B[i])) for i in range(N_RHS)]

    def loop_reuse():
        s = _ready(init(K))
        return [_ready(again(K, B[i], s)) for i in range(N_RHS)]

    t = interleaved(
        {
            "fresh": loop_fresh,
            "reuse": loop_reuse,
            "vmap": lambda: batched(K, B),
            "init": lambda: init(K),
            "one_solve_reusing": lambda: again(K, B[0], st),
        },
        reps,
        clear=False,  # `st` must stay in the cache
    )
    X = batched(K, B)
    Xr = jnp.stack(loop_reuse())
    res = jnp.max(jnp.linalg.norm(jax.vmap(K.mv)(X) - B, axis=1) / jnp.linalg.norm(B, axis=1))
    return {
        "n": n,
        "p": p,
        **_size(space),
        "n_rhs": N_RHS,
        **t,
        "speedup_reuse": t["fresh"]["s"] / t["reuse"]["s"],
        "speedup_vmap": t["fresh"]["s"] / t["vmap"]["s"],
        "max_rel_residual_vmap": float(res),
        "reuse_vs_vmap_rel_diff": float(jnp.max(jnp.abs(X - Xr)) / jnp.max(jnp.abs(X))),
    }


# ================================================================================ tables


def _f(x, digits=3) -> str:
    if isinstance(x, str):
        return x
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) < 1e-3:
        return f"{x:.1e}"
    return f"{x:.{digits}g}"


def markdown(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def assembly_table(rows: list[dict]) -> str:
    headers = [
        "p",
        "h",
        "unknowns",
        "hand-written s",
        "autodiff s",
        "ratio",
        "≤ 1.2×?",
        "compile hand / autodiff s",
        "max rel. diff K",
        "max rel. diff b",
    ]
    out = [
        [
            str(r["p"]),
            f"1/{r['n']}",
            str(r["dofs"]),
            r["hand"]["s"],
            r["autodiff"]["s"],
            r["ratio"],
            "yes" if r["ratio"] <= 1.2 else "no",
            f"{_f(r['hand']['compile_s'])} / {_f(r['autodiff']['compile_s'])}",
            f"{r['matrix_rel_diff']:.1e}",
            f"{r['rhs_rel_diff']:.1e}",
        ]
        for r in rows
    ]
    return markdown(headers, out)


def grad_table(rows: list[dict]) -> str:
    headers = [
        "p",
        "h",
        "unknowns",
        "solver",
        "forward s",
        "value_and_grad s",
        "ratio",
        "≤ 1.3×?",
        "old adjoint s",
        "old ratio",
        "compile fwd / vg s",
    ]
    out = []
    for r in rows:
        for name, label in (("default", "SuperLU()"), ("no_condition", "SuperLU(condition=False)")):
            c = r[name]
            out.append(
                [
                    str(r["p"]),
                    f"1/{r['n']}",
                    str(r["dofs"]),
                    label,
                    c["forward"]["s"],
                    c["value_and_grad"]["s"],
                    c["ratio"],
                    "yes" if c["ratio"] <= 1.3 else "no",
                    c["old_adjoint"]["s"],
                    c["ratio_old"],
                    f"{_f(c['forward']['compile_s'])} / {_f(c['value_and_grad']['compile_s'])}",
                ]
            )
    return markdown(headers, out)


def reuse_table(rows: list[dict]) -> str:
    headers = [
        "p",
        "h",
        "unknowns",
        f"{N_RHS} fresh solves s",
        "init + reused state s",
        "vmap s",
        "speed-up reuse",
        "speed-up vmap",
        "init (factor) s",
        "one solve, reused s",
        "max rel. residual",
    ]
    out = [
        [
            str(r["p"]),
            f"1/{r['n']}",
            str(r["dofs"]),
            r["fresh"]["s"],
            r["reuse"]["s"],
            r["vmap"]["s"],
            r["speedup_reuse"],
            r["speedup_vmap"],
            r["init"]["s"],
            r["one_solve_reusing"]["s"],
            f"{r['max_rel_residual_vmap']:.1e}",
        ]
        for r in rows
    ]
    return markdown(headers, out)


def render(result: dict) -> str:
    m = result["meta"]
    lines = [
        f"# Weak-form engine ({m['started']}, {m['machine']}, nmm {m['nmm_git']}, "
        f"load {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end)",
        "",
        "Seconds, best call after a warm-up; compile = first call minus best. Unit square, "
        "Nitsche, aligned triangle cover h = 1/n.",
        "",
        "## (a) Assembly: hand-written Poisson kernel (a76f601) vs autodiff weak form",
        "",
        "Both include the host-side boundary masks. Differences: max over block values of "
        "|K_hand - K| / max |K_hand|; max |b_hand + R| / max |b_hand|.",
        "",
        assembly_table(result["assembly"]),
        "",
        "## (b) value_and_grad vs forward (k = θ0 + θ1 x0, loss = Σ u(x_i)² at 16 points)",
        "",
        "Both jitted. 'old adjoint' = the backward pass factors again (factor cache emptied "
        "between forward and backward), as the rule of a76f601 did.",
        "",
        grad_table(result["grad"]),
        "",
        f"## (c) One matrix, {N_RHS} right-hand sides (SuperLU(condition=False))",
        "",
        "fresh = linear_solve(K, b_i) per right-hand side; reused = one solver.init(K), then "
        "linear_solve(K, b_i, state=st); vmap = one jax.vmap of linear_solve over all of them.",
        "",
        reuse_table(result["reuse"]),
        "",
        f"Total wall time: {m['wall_s']:.0f} s",
    ]
    return "\n".join(lines)


# ================================================================================ driver


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="~1e3 unknowns, two timed calls each")
    ap.add_argument("--reps", type=int, default=None, help="timed calls after the warm-up")
    ap.add_argument(
        "--parts",
        nargs="+",
        choices=("assembly", "grad", "reuse"),
        default=["assembly", "grad", "reuse"],
    )
    ap.add_argument("--out", default="results/bench_weak_form.json")
    ap.add_argument("--render", metavar="JSON", help="only print the tables of an earlier run")
    args = ap.parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return

    sizes = SIZES["quick" if args.quick else "default"]
    t_start = time.perf_counter()
    result = {
        "meta": {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "nmm_git": git_state(),
            "versions": {"jax": jax.__version__, "numpy": np.__version__},
            "loadavg_start": os.getloadavg(),
        },
        "assembly": [],
        "grad": [],
        "reuse": [],
    }
    cases = {"assembly": assembly_case, "grad": grad_case, "reuse": reuse_case}
    for part in args.parts:
        for n, p in sizes[part]:
            dofs = (n + 1) ** 2 * (p + 1) * (p + 2) // 2
            reps = args.reps or (2 if args.quick else (5 if dofs <= 2e4 else 3))
            if part == "reuse":  # one call is a sweep over 32 right-hand sides
                reps = args.reps or 2
            t0 = time.perf_counter()
            r = cases[part](n, p, reps)
            # factorisations stay in nmm's cache after their states are gone: free them
            nmm.linalg.clear_factor_cache()
            r["load_after"] = os.getloadavg()[0]
            result[part].append(r)
            print(
                f"  {part} p={p} n={n} ({r['dofs']} unknowns): {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    result["meta"]["loadavg_end"] = os.getloadavg()
    result["meta"]["wall_s"] = time.perf_counter() - t_start
    write_result(result, render(result), args.out)


if __name__ == "__main__":
    main()
