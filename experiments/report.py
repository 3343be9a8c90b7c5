"""Reports: results.json, a Markdown report with the tables, and PNG figures."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import problems as registry  # noqa: E402
from .deep_manifold import rule  # noqa: E402
from .methods import METHODS, Result  # noqa: E402
from .runner import Suite  # noqa: E402


def _mean_over_seeds(rows: list[Result]) -> list[dict]:
    """One entry per (problem, method, size): geometric-mean errors, mean times over seeds."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r.problem, r.method, r.size)].append(r)
    out = []
    for (problem, method, size), rs in groups.items():
        gm = lambda k, rs=rs: float(np.exp(np.mean([np.log(max(getattr(r, k), 1e-300)) for r in rs])))  # noqa: E731
        out.append(
            {
                "problem": problem,
                "method": method,
                "size": size,
                "seeds": len(rs),
                "unknowns": rs[0].unknowns,
                "functional_dof": int(np.median([r.functional_dof for r in rs])),
                "L2": gm("L2"),
                "H1": gm("H1"),
                "max": gm("max"),
                "compile_s": float(np.mean([r.compile_s for r in rs])),
                "run_s": float(np.mean([r.run_s for r in rs])),
                "time_to_1e-03": _mean_time(rs, "1e-03"),
            }
        )
    return out


def _mean_time(rs, key):
    times = [r.time_to.get(key) for r in rs]
    return float(np.mean(times)) if all(t is not None for t in times) else None


def headline(rows: list[dict], problem: str) -> str:
    """Markdown table: per method its most accurate size."""
    best = {}
    for r in rows:
        if r["problem"] == problem and (r["method"] not in best or r["L2"] < best[r["method"]]["L2"]):
            best[r["method"]] = r
    lines = [
        f"**{problem}** — per method the size with the smallest L2 error",
        "",
        "| method | size | unknowns / params | functional DOF | rel. L2 | rel. H1 | rel. max "
        "| compile s | run s | run s to L2 ≤ 1e-3 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        if m in best:
            r = best[m]
            t = "—" if r["time_to_1e-03"] is None else f"{r['time_to_1e-03']:.3g}"
            lines.append(
                f"| {m} | {r['size']} | {r['unknowns']} | {r['functional_dof']} | {r['L2']:.2e} | "
                f"{r['H1']:.2e} | {r['max']:.2e} | {r['compile_s']:.2f} | {r['run_s']:.3g} | {t} |"
            )
    return "\n".join(lines)


def _figures(rows: list[dict], results: list[Result], out: Path, problems: list[str]) -> list[str]:
    names = []
    for problem in problems:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        for m in METHODS:
            pts = sorted(
                (r["unknowns"], r["L2"], r["run_s"])
                for r in rows
                if r["problem"] == problem and r["method"] == m
            )
            if pts:
                n, e, t = zip(*pts, strict=True)
                axes[0].loglog(n, e, "o-", label=m)
                axes[1].loglog(np.maximum(t, 1e-4), e, "o", label=m)
        for res in results:
            if res.problem == problem and res.seed == 0 and res.history.get("loss"):
                loss = np.asarray(res.history["loss"])
                shift = loss - min(loss.min(), 0.0) + 1e-16  # Ritz energies can be negative
                axes[2].semilogy(shift, lw=0.8, label=f"{res.method} {res.size}")
        axes[0].set(
            xlabel="unknowns / parameters", ylabel="relative L2 error", title=f"{problem}: error vs size"
        )
        axes[1].set(
            xlabel="run time [s] (compile excluded)",
            ylabel="relative L2 error",
            title="error vs run time",
        )
        axes[2].set(xlabel="step", ylabel="loss − min(loss, 0)", title="loss curves (seed 0)")
        for ax in axes:
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=7)
        if axes[2].get_legend_handles_labels()[0]:  # no trained method: no loss curves
            axes[2].legend(fontsize=5, ncol=2)
        fig.tight_layout()
        name = f"{problem}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names


def write(suite: Suite, results: list[Result], out: Path, machine: str, claims=()) -> tuple[Path, str]:
    """Write results.json, report.md and the figures; return the report path and the headline
    table of the first problem."""
    out = Path(out)
    rows = _mean_over_seeds(results)
    (out / "results.json").write_text(
        json.dumps(
            {
                "suite": suite.name,
                "machine": machine,
                "settings": asdict(suite.settings),
                "mlp_sizes": suite.mlp_sizes,
                "summary": rows,
                "cases": [r.to_dict() for r in results],
                "claims": [c.to_dict() for c in claims],
            },
            default=float,
        )
    )
    _figures(rows, results, out, suite.problems)
    s = suite.settings
    parts = [
        f"# NMM vs MLP — suite `{suite.name}`",
        "",
        f"Machine: {machine}. Seeds: {suite.seeds} (errors: geometric mean over seeds; times: mean).",
        "",
        "Every method minimises the same discrete functional on the same quadrature points (the "
        "problem's quadrature space) and is measured on the same finer error rule. `nmm` solves on "
        "its own space (size = cells, degree) with its exact quadrature. Trained methods: full batch, "
        f"Adam with learning rate {s.learning_rate} (SIREN {s.siren_learning_rate}), {s.steps} steps"
        + (f", then {s.lbfgs_steps} L-BFGS steps" if s.lbfgs_steps else "")
        + "; networks are 'width x depth' tanh/relu/sin (SIREN, ω0 = 30)/tanh on 32 Fourier features "
        "(σ = 1), initialised as in equinox (SIREN: Sitzmann et al.); `nmm-adam` trains the "
        "quadrature space's NMM coefficients from zero with the same optimiser; "
        "`mlp-cover-solved` is the trained `mlp-tanh` with its output layer solved exactly. Nothing "
        "is tuned per problem or method.",
        "",
    ]
    for problem in suite.problems:
        parts += [
            f"## {problem}",
            "",
            registry.get(problem).description,
            "",
            headline(rows, problem),
            "",
            f"![{problem}]({problem}.png)",
            "",
        ]
    if claims:
        parts += [
            "## Deep Manifold claims",
            "",
            "Each verdict follows a rule fixed before the run (given under each claim).",
            "",
            "| claim | question | verdict | stability |",
            "|---|---|---|---|",
            *[f"| {c.name} | {c.question} | **{c.verdict}** | {c.stability or '—'} |" for c in claims],
            "",
        ]
        for c in claims:
            parts += [f"### {c.name}: {c.verdict}", "", c.summary, ""]
            if c.interval:
                parts += [f"Effect sizes over seeds, mean [95 % interval]: {c.interval}.", ""]
            if c.numbers.get("table"):
                parts += [c.numbers["table"], ""]
            parts += [f"Rule: {rule(c.name)}.", ""]
            if c.previous:
                parts += [
                    f"Replaced rule ({c.previous['rule']}) gives: **{c.previous['verdict']}**.",
                    "",
                ]
            if c.stability:
                parts += [f"Stability: {c.stability}.", ""]
            if c.figure:
                parts += [f"![{c.name}]({c.figure})", ""]
    parts += [
        "## All cases",
        "",
        "| problem | method | size | unknowns / params | L2 | H1 | max | compile s | run s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        parts.append(
            f"| {r['problem']} | {r['method']} | {r['size']} | {r['unknowns']} | {r['L2']:.2e} | "
            f"{r['H1']:.2e} | {r['max']:.2e} | {r['compile_s']:.2f} | {r['run_s']:.3g} |"
        )
    path = out / "report.md"
    path.write_text("\n".join(parts) + "\n")
    return path, headline(rows, suite.problems[0])
