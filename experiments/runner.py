"""Suites: a TOML config -> cases (problem × method × size × seed) -> one JSON file per case.

Finished cases are never redone: each case is written to ``<out>/cases/<key>.json`` (written then
renamed), and a rerun with the same settings skips the cases already there, so an interrupted run
resumes where it stopped. The key holds a hash of the training settings, so changed settings never
reuse stale results.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path

from tqdm.auto import tqdm

from . import deep_manifold as dm
from . import problems as registry
from .methods import METHODS, Result, Settings, run

SUITES = ("quick", "full")


class ConfigError(ValueError):
    """A config that cannot be run (the CLI prints it as one line)."""


@dataclass
class Suite:
    name: str
    seeds: int
    problems: list[str]
    methods: list[str]
    settings: Settings
    mlp_sizes: list[tuple[int, int]]
    nmm_sizes: dict[str, list[tuple[int, int]]]
    deep_manifold: dm.DMSettings | None = None  # None: no Deep Manifold experiments

    def nmm_sizes_for(self, problem: registry.Problem) -> list[tuple[int, int]]:
        sizes = self.nmm_sizes.get(problem.name) or self.nmm_sizes.get(f"default_{problem.dim}d")
        return sizes or [problem.quadrature]

    def cases(self):
        """(problem name, method, size, seed) for every case of the suite."""
        for name in self.problems:
            prob = registry.get(name)
            for seed in range(self.seeds):
                for method in self.methods:
                    if method == "nmm":
                        sizes = self.nmm_sizes_for(prob)
                    elif method == "nmm-adam":
                        sizes = [prob.quadrature]
                    else:
                        sizes = self.mlp_sizes
                    for size in sizes:
                        yield name, method, tuple(size), seed


def load_config(suite: str | None = None, path: str | os.PathLike | None = None) -> Suite:
    """A suite from an embedded config (``quick`` or ``full``) or from a TOML file."""
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"cannot read config {str(path)!r}: {err.strerror}") from None
        where = str(path)
    else:
        if suite not in SUITES:
            raise ConfigError(f"unknown suite {suite!r}; known suites: {', '.join(SUITES)}")
        text = resources.files("experiments").joinpath("configs", f"{suite}.toml").read_text()
        where = f"embedded {suite}.toml"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"malformed config {where}: {err}") from None
    return parse_config(raw, where)


def parse_config(raw: dict, where: str = "config") -> Suite:
    known = {"name", "seeds", "problems", "methods", "train", "mlp", "nmm", "deep_manifold"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    try:
        problems = [str(p) for p in raw.get("problems", [])]
        methods = [str(m) for m in raw.get("methods", list(METHODS))]
        seeds = raw.get("seeds", 1)
        train = dict(raw.get("train", {}))
        mlp_sizes = [tuple(int(v) for v in s) for s in raw.get("mlp", {}).get("sizes", [[64, 3]])]
        nmm_sizes = {
            k: [tuple(int(v) for v in s) for s in v]
            for k, v in raw.get("nmm", {}).get("sizes", {}).items()
        }
    except (TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f"{where}: malformed entry ({err})") from None
    for p in problems:
        if p not in registry.names():
            raise ConfigError(f"{where}: unknown problem {p!r}; known: {', '.join(registry.names())}")
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"{where}: unknown method {m!r}; known: {', '.join(METHODS)}")
    if not problems:
        raise ConfigError(f"{where}: no problems given")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"{where}: seeds must be a positive integer, got {seeds!r}")
    names = {f.name for f in fields(Settings)}
    if set(train) - names:
        raise ConfigError(
            f"{where}: unknown [train] keys {sorted(set(train) - names)}; known: {sorted(names)}"
        )
    settings = Settings(**train)
    if settings.steps < 1 or settings.chunk < 1 or settings.lbfgs_steps < 0:
        raise ConfigError(f"{where}: [train] steps and chunk must be >= 1, lbfgs_steps >= 0")
    if any(len(s) != 2 or min(s) < 1 for s in mlp_sizes + [s for v in nmm_sizes.values() for s in v]):
        raise ConfigError(f"{where}: sizes must be pairs of positive integers")
    dms = None
    if "deep_manifold" in raw:
        table = dict(raw["deep_manifold"])
        names = {f.name for f in fields(dm.DMSettings)}
        if set(table) - names:
            raise ConfigError(
                f"{where}: unknown [deep_manifold] keys {sorted(set(table) - names)}; "
                f"known: {sorted(names)}"
            )
        dms = dm.DMSettings(**table)
        bad = [e for e in dms.experiments if e not in dm.EXPERIMENTS]
        if bad:
            raise ConfigError(
                f"{where}: unknown Deep Manifold experiments {bad}; known: {list(dm.EXPERIMENTS)}"
            )
        if dms.stage < 1 or dms.steps < dms.stage or dms.steps % dms.stage:
            raise ConfigError(f"{where}: [deep_manifold] steps must be a positive multiple of stage")
    name = str(raw.get("name", "custom"))
    return Suite(name, seeds, problems, methods, settings, mlp_sizes, nmm_sizes, dms)


def case_key(problem: str, method: str, size, seed: int, settings: Settings) -> str:
    digest = hashlib.sha1(json.dumps(asdict(settings), sort_keys=True).encode()).hexdigest()[:8]
    return f"{problem}__{method}__{'x'.join(map(str, size))}__s{seed}__{digest}"


def run_suite(suite: Suite, out: Path, progress: bool = True) -> list[Result]:
    """Run (or resume) every case; returns all results, finished earlier or now."""
    cases_dir = Path(out) / "cases"
    try:
        cases_dir.mkdir(parents=True, exist_ok=True)
        probe = cases_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write to output directory {str(out)!r}: {err.strerror}") from None
    todo = list(suite.cases())
    results, shared_key, shared = [], None, None
    bar = tqdm(todo, disable=not progress, desc=f"suite {suite.name}", unit="case")
    for name, method, size, seed in bar:
        path = cases_dir / (case_key(name, method, size, seed, suite.settings) + ".json")
        if path.exists():
            results.append(Result(**json.loads(path.read_text())))
            continue
        bar.set_postfix_str(f"{name} {method} {size}")
        problem = registry.get(name, seed)
        if shared_key != (name, seed):  # cases come grouped: keep one quadrature space + task
            shared_key, shared = (name, seed), problem.shared()
        res = run(problem, method, size, seed, suite.settings, shared)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(res.to_dict()))
        os.replace(tmp, path)
        results.append(res)
    return results


def run_claims(suite: Suite, results: list[Result], out: Path, progress: bool = True) -> list[dm.Claim]:
    """Run (or resume) the suite's Deep Manifold experiments; each is kept in ``<out>/claims/``."""
    if suite.deep_manifold is None:
        return []
    s = suite.deep_manifold
    claims_dir = Path(out) / "claims"
    claims_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(json.dumps(asdict(s), sort_keys=True).encode()).hexdigest()[:8]
    claims = []
    for name in tqdm(s.experiments, disable=not progress, desc="deep manifold", unit="experiment"):
        # dof reads the suite's cases: its key also depends on them
        key = digest + (f"_{len(results)}" if name == "dof" else "")
        path = claims_dir / f"{name}__{key}.json"
        if path.exists() and (Path(out) / json.loads(path.read_text())["figure"]).exists():
            claims.append(dm.Claim(**json.loads(path.read_text())))
            continue
        claim = dm.run_experiment(name, s, Path(out), results)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(claim.to_dict(), default=float))
        os.replace(tmp, path)
        claims.append(claim)
    return claims
