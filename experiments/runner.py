"""Suites: a TOML config -> cases (problem × method × size × seed) -> one JSON file per case.

Finished cases are never redone: each case is written to ``<out>/cases/<key>.json`` (written then
renamed), and a rerun with the same settings skips the cases already there, so an interrupted run
resumes where it stopped. The key holds a hash of the training settings, so changed settings never
reuse stale results; the file holds the fingerprint of its problem's task, and a case computed for
another version of the problem (or a corrupted file) is refused by name: ``--fresh`` recomputes.

Configs are checked key by key (type, range, known names) before anything runs: every error is a
:class:`ConfigError` naming the key and the value, which the CLI prints as one line (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path

from tqdm.auto import tqdm

from . import deep_manifold as dm
from . import problems as registry
from .methods import METHODS, Result, Settings, run

SUITES = ("quick", "standard", "full", "nonlinear")


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
                        if prob.kind == "transient":
                            continue  # a time history is stepped, not one field trained
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


def _fail(where: str, key: str, value, must: str):
    raise ConfigError(f"{where}: {key} must be {must}, got {value!r}")


def _integer(where: str, key: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(where, key, value, "a positive integer" if minimum == 1 else f"an integer >= {minimum}")
    return value


def _positive(where: str, key: str, value) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        _fail(where, key, value, "a positive number")
    return float(value)


def _table(where: str, key: str, value, known) -> dict:
    if not isinstance(value, dict):
        _fail(where, key, value, f"a table ([{key}])")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown [{key}] keys {unknown}; known: {sorted(known)}")
    return value


def _list(where: str, key: str, value, noun: str, choices=None, item=None) -> list:
    """A non-empty list without duplicates of names (strings among ``choices``) or of values
    checked by ``item``."""
    example = f"[{choices[0]!r}]" if choices else "[1, 2]"
    must = f"a non-empty list of {noun}s, e.g. {key} = {example}".replace("'", '"')
    if not isinstance(value, list) or not value:
        _fail(where, key, value, must)
    out = []
    for i, v in enumerate(value):
        if item is not None:
            v = item(f"{key}[{i}]", v)
        elif not isinstance(v, str):
            raise ConfigError(
                f"{where}: {key}: {v!r} is not a {noun} name (a string); {key} = {value!r}"
            )
        if choices is not None and v not in choices:
            raise ConfigError(
                f"{where}: {key}: unknown {noun} {v!r}; known: {', '.join(map(str, choices))}"
            )
        if v in out:
            raise ConfigError(f"{where}: {key} lists {v!r} twice")
        out.append(v)
    return out


def _sizes(where: str, key: str, value, what: str) -> list[tuple[int, int]]:
    def pair(s):
        if (
            not isinstance(s, list)
            or len(s) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in s)
        ):
            raise ConfigError(
                f"{where}: {key} must be a list of [{what}] pairs of positive integers, got {value!r} "
                f"(entry {s!r})"
            )
        return tuple(s)

    if not isinstance(value, list) or not value:
        _fail(where, key, value, f"a non-empty list of [{what}] pairs (e.g. [[16, 3], [64, 3]])")
    return [pair(s) for s in value]


def _settings(where: str, cls, table: dict, section: str, checks: dict):
    """A dataclass of settings from a TOML table; each field checked by its default's type
    (int: positive, unless ``checks`` says otherwise; float: positive number)."""
    table = _table(where, section, table, [f.name for f in fields(cls)])
    values = {}
    for f in fields(cls):
        if f.name not in table:
            continue
        key, v = f"{section}.{f.name}", table[f.name]
        if f.name in checks:
            values[f.name] = checks[f.name](key, v)
        elif f.type in ("int", int):
            values[f.name] = _integer(where, key, v)
        elif f.type in ("float", float):
            values[f.name] = _positive(where, key, v)
        else:  # pragma: no cover - every field has a check
            raise AssertionError(f"no check for {key}")
    return cls(**values)


def _compare(where: str, key: str, value) -> str:
    if value not in SUITES:
        _fail(where, key, value, f"an embedded suite ({', '.join(SUITES)})")
    return value


def parse_config(raw: dict, where: str = "config") -> Suite:
    """A :class:`Suite` from a parsed TOML document; any value of the wrong type or range, unknown
    key or unknown name is a :class:`ConfigError` naming the key and the value."""
    known = {"name", "seeds", "problems", "methods", "train", "mlp", "nmm", "deep_manifold"}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a config must be a TOML table, got {type(raw).__name__}")
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    names = registry.names()
    if "problems" not in raw:
        raise ConfigError(f"{where}: no problems given (problems = [...]; known: {', '.join(names)})")
    problems = _list(where, "problems", raw["problems"], "problem", names)
    methods = _list(where, "methods", raw.get("methods", list(METHODS)), "method", METHODS)
    seeds = _integer(where, "seeds", raw.get("seeds", 1))
    name = raw.get("name", "custom")
    if not isinstance(name, str) or not name:
        _fail(where, "name", name, "a non-empty string")
    settings = _settings(
        where,
        Settings,
        raw.get("train", {}),
        "train",
        {"lbfgs_steps": lambda k, v: _integer(where, k, v, minimum=0)},
    )
    mlp = _table(where, "mlp", raw.get("mlp", {}), ["sizes"])
    mlp_sizes = _sizes(where, "mlp.sizes", mlp.get("sizes", [[64, 3]]), "width, depth")
    nmm_table = _table(where, "nmm", raw.get("nmm", {}), ["sizes"])
    size_keys = [*names, "default_1d", "default_2d"]
    nmm_sizes = {
        k: _sizes(where, f"nmm.sizes.{k}", v, "cells, degree")
        for k, v in _table(where, "nmm.sizes", nmm_table.get("sizes", {}), size_keys).items()
    }
    dms = None
    if "deep_manifold" in raw:
        degrees = list(registry.POLY_DEGREES)
        dms = _settings(
            where,
            dm.DMSettings,
            raw["deep_manifold"],
            "deep_manifold",
            {
                "experiments": lambda k, v: _list(
                    where, k, v, "Deep Manifold experiment", dm.EXPERIMENTS
                ),
                "poly_degrees": lambda k, v: _list(
                    where, k, v, "poly degree", degrees, lambda ki, d: _integer(where, ki, d)
                ),
                "depths": lambda k, v: _list(
                    where, k, v, "depth", None, lambda ki, d: _integer(where, ki, d)
                ),
                "compare": lambda k, v: _compare(where, k, v),
                "orders": lambda k, v: _list(
                    where,
                    k,
                    v,
                    "order",
                    list(registry.NONLINEAR_ORDERS),
                    lambda ki, d: _integer(where, ki, d),
                ),
            },
        )
        if dms.steps % dms.stage:
            raise ConfigError(
                f"{where}: [deep_manifold] steps must be a positive multiple of stage, got "
                f"steps = {dms.steps}, stage = {dms.stage}"
            )
    return Suite(name, seeds, problems, methods, settings, mlp_sizes, nmm_sizes, dms)


def case_key(problem: str, method: str, size, seed: int, settings: Settings) -> str:
    digest = hashlib.sha1(json.dumps(asdict(settings), sort_keys=True).encode()).hexdigest()[:8]
    return f"{problem}__{method}__{'x'.join(map(str, size))}__s{seed}__{digest}"


def _read_json(path: Path, what: str) -> dict:
    """A finished case or claim file, or a ConfigError naming it (corrupted: say how to redo it)."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        return data
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"{what} file {str(path)!r} cannot be read ({type(err).__name__}: {err}); delete it, "
            "or rerun with --fresh to recompute every case"
        ) from None


def run_suite(suite: Suite, out: Path, progress: bool = True, fresh: bool = False) -> list[Result]:
    """Run (or resume) every case; returns all results, finished earlier or now.

    A finished case file records the fingerprint of the problem's task (``Task.fingerprint``:
    its points, data and exact solution); one written for another version of the problem is
    refused (a :class:`ConfigError` naming the file). ``fresh=True`` recomputes every case."""
    cases_dir = Path(out) / "cases"
    try:
        cases_dir.mkdir(parents=True, exist_ok=True)
        probe = cases_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write to output directory {str(out)!r}: {err.strerror}") from None
    todo = list(suite.cases())
    results, shared_key, shared, fingerprint = [], None, None, None
    bar = tqdm(todo, disable=not progress, desc=f"suite {suite.name}", unit="case")
    for name, method, size, seed in bar:
        path = cases_dir / (case_key(name, method, size, seed, suite.settings) + ".json")
        if shared_key != (name, seed):  # cases come grouped: keep one quadrature space + task
            shared_key, shared, fingerprint = (name, seed), None, None
        if path.exists() and not fresh:
            data = _read_json(path, "case")
            if fingerprint is None:
                shared = registry.get(name, seed).shared()
                fingerprint = shared[1].fingerprint()
            saved = data.pop("task", None)
            if saved != fingerprint:
                why = (
                    f"was computed for another version of problem {name!r} (task fingerprint "
                    f"{saved!r}, now {fingerprint!r})"
                    if saved is not None
                    else "has no task fingerprint (written by an older version of experiments)"
                )
                raise ConfigError(
                    f"case file {str(path)!r} {why}; rerun with --fresh to recompute every case, "
                    "or use another --out"
                )
            try:
                results.append(Result(**data))
            except TypeError as err:
                raise ConfigError(
                    f"case file {str(path)!r} cannot be read ({err}); delete it, or rerun with "
                    "--fresh to recompute every case"
                ) from None
            continue
        bar.set_postfix_str(f"{name} {method} {size}")
        problem = registry.get(name, seed)
        if shared is None:
            shared = problem.shared()
            fingerprint = shared[1].fingerprint()
        try:
            res = run(problem, method, size, seed, suite.settings, shared)
        except FloatingPointError as err:  # a diverging run: the settings, not a bug
            raise ConfigError(
                f"case {name} {method} {'x'.join(map(str, size))} seed {seed}: {err}; change [train] "
                "in the config"
            ) from None
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"task": fingerprint, **res.to_dict()}))
        os.replace(tmp, path)
        results.append(res)
    return results


def run_claims(
    suite: Suite,
    results: list[Result],
    out: Path,
    progress: bool = True,
    fresh: bool = False,
    experiments: list[str] | None = None,
) -> list[dm.Claim]:
    """Run (or resume) the suite's Deep Manifold experiments (``experiments``: only these); each
    is kept in ``<out>/claims/`` (``fresh=True``: all recomputed). With ``compare`` set, the
    compared suite's settings run too and every claim gets its stability line."""
    if suite.deep_manifold is None:
        return []
    s = suite.deep_manifold
    names = list(s.experiments) if experiments is None else list(experiments)
    claims = _claims(s, names, results, out, progress, fresh)
    if s.compare:
        other = load_config(s.compare).deep_manifold
        if other is None:
            raise ConfigError(
                f"suite {s.compare!r} (deep_manifold.compare) has no Deep Manifold experiments"
            )
        other.experiments = names
        other.compare = ""
        # in a folder of its own: its figures must not overwrite this suite's
        compared = _claims(other, names, results, Path(out) / s.compare, progress, fresh)
        quick = {c.name: c for c in compared}
        for c in claims:
            c.stability = dm.stability(c.verdict, quick[c.name].verdict)
    return claims


def _claims(s: dm.DMSettings, names, results, out, progress, fresh) -> list[dm.Claim]:
    claims_dir = Path(out) / "claims"
    claims_dir.mkdir(parents=True, exist_ok=True)
    # the settings an experiment's numbers depend on (not which experiments run, nor the compare)
    keyed = {k: v for k, v in asdict(s).items() if k not in ("experiments", "compare")}
    digest = hashlib.sha1(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:8]
    claims = []
    for name in tqdm(names, disable=not progress, desc="deep manifold", unit="experiment"):
        # dof reads the suite's cases: its key also depends on them
        key = digest + (f"_{len(results)}" if name == "dof" else "")
        path = claims_dir / f"{name}__{key}.json"
        if path.exists() and not fresh:
            data = _read_json(path, "claim")
            if (Path(out) / str(data.get("figure", ""))).is_file():
                try:
                    claims.append(dm.Claim(**data))
                except TypeError as err:
                    raise ConfigError(
                        f"claim file {str(path)!r} cannot be read ({err}); delete it, or rerun "
                        "with --fresh to recompute every case"
                    ) from None
                continue
        claim = dm.run_experiment(name, s, Path(out), results)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(claim.to_dict(), default=float))
        os.replace(tmp, path)
        claims.append(claim)
    return claims
