"""The ``make run`` job: NMM on a cracked L-shaped domain with a hole, degrees p = 1..4.

    python -m nmm.demo --out results

Two problems on the same domain and the same (boundary-blind) triangle cover:

1. **Manufactured, smooth.** -Δu = f with u = exact(x) smooth everywhere; Dirichlet data on the
   outer boundary and the hole, and on both crack faces the exact flux ∂u/∂n (``crack_neumann``).
   The discrete field is still free to jump across the crack, so this checks the cutting, the crack
   faces and the p-convergence: errors must fall with p and the measured jump must be ~0.
2. **Genuine jump.** -Δu = a hot spot below the crack, u = 0 on ∂Ω, crack faces insulated (the
   default). Heat cannot cross the crack, so u differs on its two faces; no exact solution, the
   jump is measured by evaluating u on each face with that face's element.

Writes ``<out>/demo.png`` (highest-degree solution, the jump case, errors against p),
``<out>/demo.vtu`` (highest-degree solution), ``<out>/demo_jump.vtu`` (the jump case) and
``<out>/summary.json``; prints a table. Runs in a few seconds to a few tens of seconds on 2 CPU
cores, most of it JIT compilation (the "solve s" column includes it; "warm s" is a second solve
with the compiled code).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import nmm
from nmm import io

# ----------------------------------------------------------------------------- the problem

OUTER = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [1.0, 1.0], [1.0, 2.0], [0.0, 2.0]])
HOLE_CENTER, HOLE_RADIUS, HOLE_SIDES = (0.5, 1.35), 0.25, 48
# edge crack into the lower arm, slightly inclined (not aligned with the cover), from its tip
# inside the domain to a point beyond the right edge (the domain clips it)
CRACK = np.array([[1.12, 0.56], [2.1, 0.44]])
H = 0.125
OFFSET = (0.37, 0.21)  # shifts the cover lattice so that it follows no boundary
DEGREES = (1, 2, 3, 4)


def exact(x):
    """Manufactured solution (smooth, so continuous across the crack)."""
    return jnp.sin(1.5 * x[0] + 0.3) * jnp.exp(0.7 * x[1]) + 0.2 * x[0] * x[1]


def source(x):
    return -jnp.trace(jax.hessian(exact)(x))


def crack_flux(x, n):
    return jnp.dot(jax.grad(exact)(x), n)


def heat(x):
    """Source of the jump case: a hot spot below the crack."""
    return 40.0 * jnp.exp(-((x[0] - 1.6) ** 2 + (x[1] - 0.25) ** 2) / 0.02)


def domain() -> nmm.Domain:
    t = np.linspace(0.0, 2.0 * np.pi, HOLE_SIDES, endpoint=False)
    hole = np.c_[HOLE_CENTER[0] + HOLE_RADIUS * np.cos(t), HOLE_CENTER[1] + HOLE_RADIUS * np.sin(t)]
    return nmm.Domain.polygon(OUTER, holes=[hole], cracks=[CRACK])


@eqx.filter_jit
def _face_values(u, points, offset):
    """u on one face of the crack: the element is located at ``points + offset`` (just off the
    face), the value is taken at ``points`` (on the face) with that element's basis."""
    e = u.elements(points + offset)
    val, _ = u.in_elements(jnp.maximum(e, 0), points)
    return jnp.where(e >= 0, val, jnp.nan)


def crack_jump(u, dom: nmm.Domain, n_points: int = 41) -> dict:
    """Jump [u] = u(upper face) - u(lower face) along the crack.

    Points are spread along the part of the crack inside the domain (ends excluded); each face is
    evaluated exactly on the crack with the element found a distance δ = 1e-7 off that face, so the
    measure has no O(δ ∂u/∂n) bias.
    """
    line = dom.crack_lines.geoms[0]
    a, b = np.asarray(line.coords)[0], np.asarray(line.coords)[-1]
    t = np.linspace(0.0, 1.0, n_points + 2)[1:-1]
    pts = a + t[:, None] * (b - a)
    d = (b - a) / np.linalg.norm(b - a)
    normal = np.array([-d[1], d[0]])
    if normal[1] < 0:
        normal = -normal
    delta = 1e-7
    upper = np.asarray(_face_values(u, pts, delta * normal))
    lower = np.asarray(_face_values(u, pts, -delta * normal))
    jump = upper - lower
    k = int(np.argmax(np.abs(jump)))
    return {
        "max_abs": float(np.max(np.abs(jump))),
        "mean": float(np.mean(jump)),
        "at_max": pts[k].tolist(),
        "points": pts.tolist(),
        "values": jump.tolist(),
    }


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    jax.block_until_ready(getattr(out, "coeffs", None))
    return out, time.perf_counter() - t0


# ----------------------------------------------------------------------------- output


def _check_out(out: Path) -> None:
    """Create ``out`` and make sure a file can be written there (raises OSError otherwise)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out, prefix=".nmm-demo-", delete=True):
        pass


def _figure(u_high, u_jump, rows, jump, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(17.0, 5.4), layout="constrained")
    fig.get_layout_engine().set(wspace=0.06)
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[1.0, 1.0, 0.8])
    p = u_high.space.degree
    io.plot(
        u_high,
        ax=ax1,
        title=f"manufactured solution, p = {p}, {u_high.space.n_dofs} unknowns",
    )
    io.plot(
        u_jump,
        ax=ax2,
        cmap="plasma",
        title=f"hot spot below an insulated crack (p = {u_jump.space.degree}): "
        f"max |[u]| = {jump['max_abs']:.3g}",
    )
    degrees = [r["p"] for r in rows]
    for key, marker in (("L2", "o"), ("H1", "s"), ("max", "^")):
        ax3.semilogy(degrees, [r["errors"][key] for r in rows], marker=marker, label=key)
    ax3.set_xticks(degrees)
    ax3.set_xlabel("cover-function degree p")
    ax3.set_ylabel("relative error")
    ax3.set_title(f"p-convergence on a fixed cover (h = {H})")
    ax3.grid(True, which="both", alpha=0.3)
    ax3.legend()
    fig.savefig(path, dpi=110)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m nmm.demo",
        description="NMM demo: Poisson on a cracked L-shaped domain with a hole, p = 1..4.",
    )
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument(
        "--degrees",
        type=int,
        nargs="+",
        default=list(DEGREES),
        metavar="P",
        help="cover-function degrees to run (default: 1 2 3 4); the highest is plotted",
    )
    args = parser.parse_args(argv)
    if any(p < 1 or p > 8 for p in args.degrees):
        parser.error(f"--degrees must lie in 1..8, got {args.degrees}")
    degrees = sorted(set(args.degrees))
    out = Path(args.out)
    try:
        _check_out(out)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"nmm.demo: error: cannot write to --out {str(out)!r}: {reason}", file=sys.stderr)
        raise SystemExit(2) from None

    t_start = time.perf_counter()
    dom = domain()
    cover = nmm.MathCover.triangles(dom, h=H, offset=OFFSET)
    problem = nmm.Poisson(k=1.0, f=source, dirichlet=exact, crack_neumann=crack_flux)

    rows, fields = [], {}
    for p in degrees:
        space, t_space = _timed(nmm.ManifoldSpace, cover, dom, degree=p)
        u, t_solve = _timed(nmm.solve, space, problem)
        _, t_warm = _timed(nmm.solve, space, problem)
        t0 = time.perf_counter()
        err = nmm.errors(u, exact)
        t_err = time.perf_counter() - t0
        fields[p] = u
        rows.append(
            {
                "p": p,
                "n_dofs": space.n_dofs,
                "n_covers": space.n_covers,
                "n_elements": space.n_elements,
                "errors": {k: float(v) for k, v in err.items()},
                "crack_jump_max": crack_jump(u, dom)["max_abs"],
                "solver": {
                    "residual": float(u.stats[0]),
                    "refinement_steps": int(u.stats[1]),
                    "condition_estimate": float(u.stats[2]),
                },
                "time_s": {
                    "space": t_space,
                    "solve_first": t_solve,
                    "solve_warm": t_warm,
                    "errors": t_err,
                },
            }
        )

    # the genuine jump: insulated crack faces, a hot spot below the crack, u = 0 on the outer
    # boundary and the hole; same space as the highest degree (reuses its compiled evaluation)
    p_high = degrees[-1]
    space_j = fields[p_high].space
    u_jump, t_jump = _timed(nmm.solve, space_j, nmm.Poisson(k=1.0, f=heat, dirichlet=0.0))
    jump = crack_jump(u_jump, dom)
    files = {
        "png": out / "demo.png",
        "vtu": out / "demo.vtu",
        "vtu_jump": out / "demo_jump.vtu",
        "summary": out / "summary.json",
    }
    _figure(fields[p_high], u_jump, rows, jump, files["png"])
    io.write_vtu(fields[p_high], files["vtu"], refine=1)
    io.write_vtu(u_jump, files["vtu_jump"], refine=1)
    total = time.perf_counter() - t_start

    summary = {
        "problem": {
            "equation": "-div(k grad u) = f, k = 1",
            "domain": {
                "outer": OUTER.tolist(),
                "hole": {"center": list(HOLE_CENTER), "radius": HOLE_RADIUS, "sides": HOLE_SIDES},
                "crack": CRACK.tolist(),
                "area": dom.measure,
            },
            "exact": "sin(1.5 x + 0.3) exp(0.7 y) + 0.2 x y",
            "boundary": "Dirichlet u = exact on the outer boundary and the hole (Nitsche); "
            "exact flux du/dn on both crack faces",
            "cover": {"kind": "triangles", "h": H, "offset": list(OFFSET)},
            "nitsche_beta0": problem.beta0,
        },
        "degrees": rows,
        "jump_case": {
            "problem": "-lap u = 40 exp(-((x - 1.6)^2 + (y - 0.25)^2) / 0.02), u = 0 on the "
            "outer boundary and the hole, insulated crack faces",
            "degree": p_high,
            "n_dofs": space_j.n_dofs,
            "time_solve_s": t_jump,
            "jump": jump,
        },
        "files": {k: str(v) for k, v in files.items()},
        "total_time_s": total,
        "jax": {"version": jax.__version__, "backend": jax.default_backend()},
    }
    files["summary"].write_text(json.dumps(summary, indent=2))

    print(f"Poisson on an L-shaped domain with a hole and an edge crack, h = {H}")
    print(
        f"{'p':>2} {'unknowns':>9} {'L2':>10} {'H1':>10} {'max':>10} {'jump':>9} "
        f"{'space s':>8} {'solve s':>8} {'warm s':>7}"
    )
    for r in rows:
        e, t = r["errors"], r["time_s"]
        print(
            f"{r['p']:>2} {r['n_dofs']:>9} {e['L2']:>10.2e} {e['H1']:>10.2e} {e['max']:>10.2e} "
            f"{r['crack_jump_max']:>9.1e} {t['space']:>8.2f} {t['solve_first']:>8.2f} "
            f"{t['solve_warm']:>7.2f}"
        )
    print(
        f"insulated crack, hot spot below it (p = {p_high}): max |[u]| = {jump['max_abs']:.4f} "
        f"across the crack (mean {jump['mean']:+.4f})"
    )
    print(f"total {total:.1f} s; wrote {', '.join(str(v) for v in files.values())}")
    return summary


if __name__ == "__main__":
    main()
