"""Methods: one problem, one representation, one optimiser, the same functional; one result row.

Every method builds the problem's :class:`nmm_nn.Task` on an NMM space (its quadrature is the
functional's) and returns a :class:`Result` with the same metrics:

* ``nmm``: the direct solve on the space (cells, degree);
* ``nmm-adam``: the same space, coefficients trained from zero by the MLPs' optimiser;
* ``mlp-relu``, ``mlp-tanh``, ``mlp-siren`` (sin, ω0 = 30), ``mlp-fourier`` (tanh on 32 random
  Fourier features, σ = 1): Adam, then optionally L-BFGS;
* ``mlp-cover-solved``: the ``mlp-tanh`` network with its output layer solved exactly.

Timings: ``compile_s`` apart from ``run_s`` (for ``nmm`` the first solve minus a second identical
one; for trained methods the ahead-of-time compile of the training chunks).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import nmm
from nmm_nn import MLP, cover_solve, functional_dof, spacetime_errors, train, vectorised
from nmm_nn.train import History

from .problems import Problem

METHODS = ("nmm", "nmm-adam", "mlp-relu", "mlp-tanh", "mlp-siren", "mlp-fourier", "mlp-cover-solved")
TARGETS = (1e-2, 1e-3, 1e-4, 1e-6)  # relative L2 accuracies whose time-to-reach is reported
_DOF_POINTS = 600  # functional DOF is measured on at most this many of the task's points


@dataclass
class Settings:
    """Training settings shared by every trained method (common practice, stated in the report)."""

    steps: int = 2000
    learning_rate: float = 1e-3
    siren_learning_rate: float = 1e-4  # Sitzmann et al.'s setting for SIREN
    lbfgs_steps: int = 0
    chunk: int = 500
    width: int = 64
    depth: int = 3


@dataclass
class Result:
    """One row: problem × method × size × seed."""

    problem: str
    method: str
    size: str
    seed: int
    unknowns: int  # NMM unknowns or trainable parameters
    functional_dof: int
    L2: float
    H1: float
    max: float
    compile_s: float
    run_s: float
    loss: float
    time_to: dict = field(default_factory=dict)  # "1e-03" -> seconds (run time), when reached
    history: dict = field(default_factory=dict)  # loss per step, errors at chunk ends
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _dof_points(points):
    """At most ``_DOF_POINTS`` of the given quadrature points, evenly strided."""
    pts = np.asarray(points).reshape(-1, points.shape[-1])
    return pts[:: max(1, len(pts) // _DOF_POINTS)]


def _time_to(history: History) -> dict:
    out = {}
    l2 = history.errors.get("L2", [])
    for target in TARGETS:
        hit = [w for w, e in zip(history.wall, l2, strict=True) if e <= target]
        if hit:
            out[f"{target:.0e}"] = hit[0]
    return out


def run_nmm(problem: Problem, cells: int, degree: int, seed: int, task) -> Result:
    """The direct NMM solve on its own space (its own exact quadrature), measured on ``task``."""
    space = problem.space(cells, degree)
    t0 = time.perf_counter()
    jax.block_until_ready(problem.solve(space).coeffs)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    u = problem.solve(space)  # a Field, or a History for transient problems
    jax.block_until_ready(u.coeffs)
    run = time.perf_counter() - t0
    if problem.kind == "transient":
        # a time history: measured on the space-time grid the networks are measured on; its
        # functional DOF and PINN loss are not those of one field (reported as -1 / NaN)
        errs = spacetime_errors(
            history_function(u), problem.exact, problem.quadrature_space(), task.t_span
        )
        dof, loss = -1, float("nan")
        extra = {"steps": int(u.newton_steps.shape[0]), "newton_max": int(np.max(u.newton_steps))}
    else:
        errs = task.errors(u)
        dof = functional_dof(u, _dof_points(space.q_points)).rank  # on the space's own points
        loss = float(task.loss(u))
        extra = {"refinement_steps": float(u.stats[1]), "newton_steps": int(u.info.newton_steps)}
    reached = {f"{t:.0e}": run for t in TARGETS if errs["L2"] <= t}
    return Result(
        problem.name,
        "nmm",
        f"cells={cells},p={degree}",
        seed,
        space.n_dofs,
        dof,
        errs["L2"],
        errs["H1"],
        errs["max"],
        max(first - run, 0.0),
        run,
        loss,
        reached,
        {},
        extra,
    )


def history_function(history):
    """An ``nmm.History`` as a vectorised ``u(x, t)`` (with its x-gradient) at its saved times
    (no interpolation in time: other times are refused)."""
    times = np.asarray(history.times)

    def index(t):
        i = int(np.argmin(np.abs(times - t)))
        if abs(times[i] - t) > 1e-9 * max(1.0, abs(t)):
            raise ValueError(f"the history holds no state at t = {t} (saved: {times.tolist()})")
        return i

    def value(x, t):
        return np.asarray(history.field(index(t))(jnp.asarray(x)))

    def grad(x, t):
        return np.asarray(history.field(index(t)).grad(jnp.asarray(x))).reshape(len(x), -1)

    return vectorised(value, grad)


def _trained(model, task, settings: Settings, lr, progress):
    model, hist = train(
        model, task, steps=settings.steps, learning_rate=lr, chunk=settings.chunk, progress=progress
    )
    if settings.lbfgs_steps:
        # L-BFGS continues from Adam's end; its history is appended (run times accumulate)
        model, tail = train(
            model,
            task,
            steps=settings.lbfgs_steps,
            optimizer="lbfgs",
            chunk=min(settings.chunk, settings.lbfgs_steps),
            progress=progress,
        )
        offset = hist.wall[-1] if hist.wall else 0.0
        hist = History(
            np.concatenate([hist.loss, tail.loss]),
            hist.step + [s + settings.steps for s in tail.step],
            hist.wall + [w + offset for w in tail.wall],
            {k: hist.errors[k] + tail.errors[k] for k in hist.errors},
            hist.compile_time + tail.compile_time,
        )
    return model, hist, task.errors(model)


def _network(method: str, dim: int, width: int, depth: int, key) -> MLP:
    if method == "mlp-relu":
        return MLP(dim, "scalar", width, depth, "relu", key=key)
    if method in ("mlp-tanh", "mlp-cover-solved"):
        return MLP(dim, "scalar", width, depth, "tanh", key=key)
    if method == "mlp-siren":
        return MLP(dim, "scalar", width, depth, "sin", key=key)
    return MLP(dim, "scalar", width, depth, "tanh", key=key, fourier_features=32, fourier_scale=1.0)


def run_trained(
    problem: Problem, method: str, size, seed: int, settings: Settings, shared, progress: bool = False
) -> Result:
    """``nmm-adam`` (the quadrature space's coefficients, from zero) and the MLP methods
    (``size = (width, depth)``, default the settings'), all trained on the shared task."""
    space, task = shared
    lr = settings.learning_rate
    if method == "nmm-adam" and problem.kind == "transient":
        raise ValueError(
            f"nmm-adam trains one field on the functional; {problem.name} is time-dependent "
            "(the NMM steps it in time): leave nmm-adam out for it"
        )
    if method == "nmm-adam":
        start = nmm.Field(space, jnp.zeros(space.n_dofs), jnp.zeros(3))
        model, hist, errs = _trained(start, task, settings, lr, progress)
        cells, degree = problem.quadrature
        return Result(
            problem.name,
            method,
            f"cells={cells},p={degree}",
            seed,
            space.n_dofs,
            functional_dof(model, _dof_points(task.points)).rank,
            errs["L2"],
            errs["H1"],
            errs["max"],
            hist.compile_time,
            hist.wall[-1],
            float(hist.loss[-1]),
            _time_to(hist),
            hist.to_json(),
        )
    width, depth = size if size is not None else (settings.width, settings.depth)
    net = _network(method, task.dim, width, depth, jr.PRNGKey(seed))  # dim + 1 in space-time
    if method == "mlp-siren":
        lr = settings.siren_learning_rate
    net, hist, errs = _trained(net, task, settings, lr, progress)
    extra, loss, run_s, time_to = {}, float(hist.loss[-1]), hist.wall[-1], _time_to(hist)
    if method == "mlp-cover-solved":
        t0 = time.perf_counter()
        res = cover_solve(net, task)
        solve_s = time.perf_counter() - t0
        extra = {
            "loss_trained": res.loss_trained,
            "gap": res.gap,
            "L2_trained": res.errors_trained["L2"],
            "cover_solve_s": solve_s,
            "rank": res.rank,
            "n_features": res.n_features,
        }
        net, loss, errs = res.net, res.loss, task.errors(res.net)
        run_s += solve_s
        time_to = {f"{t:.0e}": run_s for t in TARGETS if errs["L2"] <= t}
    dof = functional_dof(net, _dof_points(task.points))
    return Result(
        problem.name,
        method,
        f"{width}x{depth}",
        seed,
        net.n_params,
        dof.rank,
        errs["L2"],
        errs["H1"],
        errs["max"],
        hist.compile_time,
        run_s,
        loss,
        time_to,
        hist.to_json(),
        extra,
    )


def run(
    problem: Problem,
    method: str,
    size,
    seed: int,
    settings: Settings,
    shared=None,
    progress: bool = False,
) -> Result:
    """One case.

    Args:
        size: ``(cells, degree)`` of the NMM space for ``nmm``; ``(width, depth)`` for the MLP
            methods (None: the settings'); ignored by ``nmm-adam`` (the quadrature space).
        shared: ``(quadrature space, task)``, the shared functional (default: built from the
            problem; pass it to reuse it across cases).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known methods: {', '.join(METHODS)}")
    shared = problem.shared() if shared is None else shared
    if method == "nmm":
        cells, degree = size
        return run_nmm(problem, cells, degree, seed, shared[1])
    return run_trained(problem, method, size, seed, settings, shared, progress)
