"""Command line: ``python -m experiments list | run``.

    python -m experiments list
    python -m experiments run --suite quick|standard|full|nonlinear [--config FILE] [--problem P]
                              [--method M] [--experiment E] [--seeds N] [--out DIR] [--fresh]
                              [--no-progress]

``--problem``/``--method`` restrict both the cases and the Deep Manifold experiments (those about
one of the given problems and methods run); ``--experiment`` picks experiments by name.
    python -m experiments inverse [--problem pinv|hinv|backward-heat|source|crack] [--out DIR]
                                  [--pinn-steps N]

Bad input (an unknown problem, method or key, a config value of the wrong type or range, a
malformed config, an unwritable output directory, a case file that is corrupted or was computed for
another version of its problem, a diverging training run) prints one line naming the key or file
and the value, and exits with status 2. ``--fresh`` recomputes every case instead of resuming.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path


def _machine() -> str:
    import jax

    return (
        f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}, JAX {jax.__version__} "
        f"({jax.default_backend()})"
    )


def _list() -> int:
    from . import problems
    from .methods import METHODS

    print("problems:")
    for name in problems.names():
        print(f"  {name:16s} {problems.get(name).description}")
    print("methods:\n  " + ", ".join(METHODS))
    print(
        "suites:\n  quick (make run), standard (the verdicts' suite, 47 min on 2 cores), full, nonlinear"
    )
    return 0


def _run(args) -> int:
    from . import report
    from .runner import ConfigError, load_config, run_claims, run_suite

    if args.config is not None and args.suite is not None:
        raise ConfigError(
            f"give either --suite ({args.suite!r}) or --config ({args.config!r}), not both"
        )
    suite = load_config(args.suite or "quick", args.config)
    if args.problem:
        suite.problems = list(args.problem)
    if args.method:
        suite.methods = list(args.method)
    if args.experiment:
        from .deep_manifold import EXPERIMENTS

        for e in args.experiment:
            if e not in EXPERIMENTS:
                raise ConfigError(
                    f"unknown Deep Manifold experiment {e!r}; known: {', '.join(EXPERIMENTS)}"
                )
        if suite.deep_manifold is None:
            raise ConfigError(f"--experiment: suite {suite.name!r} has no Deep Manifold experiments")
    if args.seeds is not None:
        suite.seeds = args.seeds
    from .runner import parse_config

    # re-validate after the command-line overrides
    parse_config(
        {"name": suite.name, "seeds": suite.seeds, "problems": suite.problems, "methods": suite.methods},
        "command line",
    )
    out = Path(args.out)
    t0 = time.perf_counter()
    results = run_suite(suite, out, progress=not args.no_progress, fresh=args.fresh)
    claims = []
    if suite.deep_manifold is not None:
        from . import deep_manifold as dm

        # --problem/--method/--experiment keep the experiments about those problems and methods
        names = dm.selected(suite.deep_manifold.experiments, args.problem, args.method, args.experiment)
        if names != list(suite.deep_manifold.experiments):
            print(f"Deep Manifold experiments of this run: {', '.join(names) or 'none'}")
        claims = run_claims(
            suite, results, out, progress=not args.no_progress, fresh=args.fresh, experiments=names
        )
    path, table = report.write(suite, results, out, _machine(), claims)
    print(f"\nreport: {path}  ({len(results)} cases, {time.perf_counter() - t0:.0f} s)\n")
    print(table)
    for c in claims:
        print(f"\n{c.name}: {c.verdict}" + (f" ({c.stability})" if c.stability else ""))
    if claims and suite.name == "quick":
        print(
            "\nThe quick suite's verdicts are indicative (few steps and seeds); the standard suite "
            "(python -m experiments run --suite standard, 47 min on 2 cores) is what they rest on."
        )
    return 0


def _inverse(args) -> int:
    from . import inverse

    problems = args.problem or list(inverse.CASES)
    unknown = [p for p in problems if p not in inverse.CASES]
    if unknown:
        print(
            f"error: unknown inverse problem {unknown[0]!r}; known: {', '.join(inverse.CASES)}",
            file=sys.stderr,
        )
        return 2
    if args.pinn_steps < 0:
        print(f"error: --pinn-steps must be >= 0, got {args.pinn_steps}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    md = inverse.run(problems, Path(args.out), pinn_steps=args.pinn_steps)
    print(f"\nreport: {md}  ({time.perf_counter() - t0:.0f} s; {_machine()})\n")
    print(md.read_text())
    return 0


class _Parser(argparse.ArgumentParser):
    """Command-line errors as one line on stderr, exit status 2 (argparse prints the usage too)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def main(argv=None) -> int:
    parser = _Parser(prog="python -m experiments", description="NMM vs MLP benchmark suite")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list problems, methods and suites")
    run = sub.add_parser("run", help="run a suite (resumes finished cases)")
    run.add_argument(
        "--suite", default=None, help="embedded suite: quick (default), standard, full or nonlinear"
    )
    run.add_argument("--config", default=None, help="a TOML config file instead of an embedded suite")
    run.add_argument("--problem", action="append", help="only this problem (repeatable)")
    run.add_argument("--method", action="append", help="only this method (repeatable)")
    run.add_argument(
        "--experiment",
        action="append",
        help="only this Deep Manifold experiment (repeatable; see the suite's [deep_manifold])",
    )
    run.add_argument("--seeds", type=int, default=None, help="number of seeds")
    run.add_argument("--out", default="results", help="output directory (default: results)")
    run.add_argument(
        "--fresh", action="store_true", help="recompute every case instead of resuming from --out"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    invp = sub.add_parser(
        "inverse", help="the inverse problems (PInv, HInv, backward heat, source, crack)"
    )
    invp.add_argument(
        "--problem",
        action="append",
        help="pinv, hinv, backward-heat, source or crack (repeatable; default all)",
    )
    invp.add_argument("--out", default="results-inverse", help="output directory")
    invp.add_argument(
        "--pinn-steps", type=int, default=5000, help="the PINNs' Adam steps (PInv, HInv; 0: no PINN)"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a one-line error (status 2)
        return stop.code if isinstance(stop.code, int) else 2
    if args.command == "list":
        return _list()
    if args.command == "inverse":
        return _inverse(args)
    from .runner import ConfigError

    try:
        return _run(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
