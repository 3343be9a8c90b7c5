"""Physics-informed networks for coefficient inverse problems: PINNacle's PInv and HInv.

The unknowns are a field u and the coefficient a of

    −∇·(a∇u) = f                     in Ω                 (steady, PInv),
    u_t − ∇·(a∇u) = f                in Ω × (t0, t1)       (time, HInv; a = a(x)),

given noisy observations of u at scattered points, a on ∂Ω, and (optionally) u on ∂Ω and u at
t0. :class:`InverseTask` is the PINNacle loss of one network ``z -> (u, a)`` (``z = x`` or
``(x, t)``), every term a *mean* over its points, equal weights by default:

    J = w_data  mean_i (u(z_i) − y_i)²                     (observations, noisy)
      + w_pde   mean_q (u_t − ∇a·∇u − a Δu − f)²(z_q)       (collocation; no u_t when steady)
      + w_ub    mean_b (u(z_b) − g_b)²                      (u on the spatial boundary)
      + w_ab    mean_b (a(x_b) − α_b)²                      (a on the boundary)
      + w_init  mean_j (u(x_j, t0) − u0_j)²                 (initial state; time only)

It has the duck-typed interface :func:`nmm_nn.train` takes (``loss``, ``errors``, ``fingerprint``,
``has_exact``, ``dim``, ``components``; see ``Task.of``).

The network is ONE :class:`nmm_nn.MLP` with ``out_size=2`` (u first, a second), ``in_size`` =
``dim`` (space, plus time for HInv). ``train`` trains MLPs and ``nmm.Field`` only (its
``_model_spec`` checks ``isinstance(net, MLP)`` and its checkpoints record one MLP's shapes), so
two networks in one equinox module would need changes to ``train``; a two-output MLP is what it
trains as is. For a time problem a must not depend on t (PINNacle's HInv feeds its a-branch with
(x, y) only): here a(x) is read from the second output *at the fixed time* t_a = t0, ``a(x) =
net(x, t0)[1]``; the second output at other times is never used, so a is a function of x alone by
construction. :meth:`InverseTask.loss` accepts any callable ``z -> (u, a)`` (a hand-written
equinox module of the exact functions, say), with the same convention.

Derivatives are taken by autodiff through the network: −∇·(a∇u) = −(∇a·∇u + a Δu), the
Laplacian by forward-over-reverse along each space direction. The source f is evaluated once, at
build, at the collocation points (so the task holds arrays only and its fingerprint covers f by
value).

:data:`PINV` and :data:`HINV` are the two PINNacle problems (exact u and a, the box, the source f
computed from them by the same operator); :func:`pinv_task` and :func:`hinv_task` build their
tasks with the data PINNacle uses (2 500 observations, noise σ = 0.1; a 50 × 50 grid for PInv,
seeded uniform points in the space-time box for HInv, whose own point file we do not have).
PINNacle constrains u only by the data (its boundary conditions are the observations and a on
∂Ω); the u-boundary and initial terms are on by default here and can be switched off
(``u_boundary=False``, ``initial=False``).

Errors (:meth:`InverseTask.errors`): relative discrete L2 errors on a uniform grid (``error_points``
per space axis, including the boundary, × ``error_times`` uniform times for HInv): ``"L2"``,
``"H1"`` (of ∇_x u), ``"max"`` for u — the keys ``train`` records — and ``"a_L2"``, ``"a_max"``
for a on the spatial grid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import nmm  # noqa: F401  float64, as in the engine

from .task import _array_bytes

__all__ = ["InverseTask", "InverseProblem", "PINV", "HINV", "pinv_task", "hinv_task"]

TERMS = ("data", "pde", "u_boundary", "a_boundary", "initial")


# ------------------------------------------------------------------------------ the operator


def _operator(u_of_z, a_of_x, z, d: int, time: bool):
    """u_t − ∇·(a∇u) (time) or −∇·(a∇u) at one point ``z = (x, [t])`` (``x = z[:d]``)."""
    x, rest = z[:d], z[d:]

    def grad_u(y):  # ∇_z u as a function of x: its x-Jacobian holds the Hessian's x-block
        return jax.grad(u_of_z)(jnp.concatenate([y, rest]))

    # d forward-over-reverse passes: the gradient (primal) and ∂_i ∇u (tangents) together
    gz, dgz = jax.vmap(lambda e: jax.jvp(grad_u, (x,), (e,)))(jnp.eye(d, dtype=z.dtype))
    gz = gz[0]
    lap = jnp.trace(dgz[:, :d])
    a, ga = jax.value_and_grad(a_of_x)(x)
    out = -(ga @ gz[:d] + a * lap)
    return out + gz[d] if time else out


@dataclasses.dataclass(frozen=True)
class InverseProblem:
    """A coefficient inverse problem with known exact fields.

    Attributes:
        name: "PInv", "HInv".
        box: ``((lo, hi), ...)`` per network input (space axes, then time when ``time``).
        time: whether the PDE has u_t (the last input is t).
        exact_u: ``u(z)`` of one input point (pure JAX).
        exact_a: ``a(x)`` of one spatial point (pure JAX).
    """

    name: str
    box: tuple[tuple[float, float], ...]
    time: bool
    exact_u: Callable
    exact_a: Callable

    @property
    def space_dim(self) -> int:
        return len(self.box) - int(self.time)

    def source(self, z):
        """f = u_t − ∇·(a∇u) of the exact fields at one input point (autodiff)."""
        z = jnp.asarray(z, float)
        return _operator(self.exact_u, self.exact_a, z, self.space_dim, self.time)


def _pinv_u(z):
    return jnp.sin(jnp.pi * z[0]) * jnp.sin(jnp.pi * z[1])


def _pinv_a(x):
    return 1.0 / (1.0 + x[0] ** 2 + x[1] ** 2 + (x[0] - 1.0) ** 2 + (x[1] - 1.0) ** 2)


def _hinv_u(z):
    return jnp.exp(-z[2]) * jnp.sin(jnp.pi * z[0]) * jnp.sin(jnp.pi * z[1])


def _hinv_a(x):
    return 2.0 + jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])


PINV = InverseProblem("PInv", ((0.0, 1.0), (0.0, 1.0)), False, _pinv_u, _pinv_a)
HINV = InverseProblem("HInv", ((-1.0, 1.0), (-1.0, 1.0), (0.0, 1.0)), True, _hinv_u, _hinv_a)


# ------------------------------------------------------------------------------ checks


def _box(box) -> tuple[tuple[float, float], ...]:
    try:
        b = tuple((float(lo), float(hi)) for lo, hi in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be a sequence of (lo, hi) pairs, got {box!r}") from None
    if not b or not all(np.isfinite(lo) and np.isfinite(hi) and lo < hi for lo, hi in b):
        raise ValueError(f"box must be non-empty (lo, hi) pairs with finite lo < hi, got {box!r}")
    return b


def _points(p, name: str, box, n_coords: int | None = None) -> np.ndarray:
    """Finite points ``(m, k)`` inside the box's first ``k`` coordinates."""
    k = len(box) if n_coords is None else n_coords
    try:
        a = np.asarray(p, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of points (m, {k}), got {type(p).__name__}") from None
    if a.ndim != 2 or a.shape[1] != k or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty array of points (m, {k}), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf) at {_bad_rows(a)} points")
    lo = np.array([b[0] for b in box[:k]])
    hi = np.array([b[1] for b in box[:k]])
    tol = 1e-12 * np.maximum(1.0, np.maximum(abs(lo), abs(hi)))
    out = np.any((a < lo - tol) | (a > hi + tol), axis=1)
    if np.any(out):
        i = int(np.argmax(out))
        raise ValueError(
            f"{name}: {int(out.sum())} of {len(a)} points lie outside the domain "
            f"{[tuple(b) for b in box[:k]]}, e.g. {a[i].tolist()}"
        )
    return np.clip(a, lo, hi)


def _bad_rows(a: np.ndarray) -> int:
    return int(np.sum(~np.all(np.isfinite(a.reshape(len(a), -1)), axis=1)))


def _values(v, name: str, m: int) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of {m} numbers, got {type(v).__name__}") from None
    if a.shape not in ((m,), (m, 1)):
        raise ValueError(f"{name} must have shape ({m},) (one value per point), got {a.shape}")
    a = a.reshape(m)
    if not np.all(np.isfinite(a)):
        raise ValueError(
            f"{name} contains non-finite values (NaN or inf) at {_bad_rows(a[:, None])} points"
        )
    return a


def _pair(pair, name: str, box, k: int):
    if not (isinstance(pair, tuple | list) and len(pair) == 2):
        raise ValueError(f"{name} must be a (points, values) pair, got {type(pair).__name__}")
    p = _points(pair[0], f"{name} points", box, k)
    return p, _values(pair[1], f"{name} values", len(p))


def _on_boundary(p: np.ndarray, box, name: str) -> None:
    """Every point's first ``len(box)`` coordinates on the box's boundary."""
    d = len(box)
    lo, hi = np.array([b[0] for b in box]), np.array([b[1] for b in box])
    tol = 1e-9 * (hi - lo)
    x = p[:, :d]
    on = np.any((np.abs(x - lo) <= tol) | (np.abs(x - hi) <= tol), axis=1)
    if not np.all(on):
        i = int(np.argmin(on))
        raise ValueError(
            f"{name}: {int((~on).sum())} of {len(p)} points are not on the spatial boundary of "
            f"{[tuple(b) for b in box]}, e.g. {p[i].tolist()}"
        )


def _weights(weights) -> dict[str, float]:
    w = dict.fromkeys(TERMS, 1.0)
    if weights is None:
        return w
    if not isinstance(weights, dict):
        raise ValueError(f"weights must be a dict with keys among {TERMS}, got {weights!r}")
    for k, v in weights.items():
        if k not in TERMS:
            raise ValueError(f"weights: unknown term {k!r}; the terms are {TERMS}")
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise ValueError(f"weights[{k!r}] must be a non-negative number, got {v!r}")
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"weights[{k!r}] must be a non-negative number, got {v!r}")
        w[k] = float(v)
    if not any(w.values()):
        raise ValueError(f"weights: at least one term needs a positive weight, got {weights!r}")
    return w


def _count(n, name: str, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return int(n)


# ------------------------------------------------------------------------------ the task


def _join(x, t):
    return jnp.concatenate([x, t]) if t.shape[0] else x


def _uniform_grid(box, n: int) -> np.ndarray:
    axes = [np.linspace(lo, hi, n) for lo, hi in box]
    return np.stack([g.reshape(-1) for g in np.meshgrid(*axes, indexing="ij")], axis=1)


@eqx.filter_jit
def _vals(fn, points):
    return jax.vmap(lambda z: jnp.reshape(fn(z), ()))(points)


class InverseTask(eqx.Module):
    """The PINN loss of a coefficient inverse problem (module docstring); build with
    :meth:`build`, or :func:`pinv_task` / :func:`hinv_task`.

    Arrays (``dim`` = the network's input size, ``d`` = the space dimension): observations
    ``obs_points (n, dim)``, ``obs_values (n,)``; collocation ``points (N, dim)`` with the source
    ``f_values (N,)``; u on the boundary ``ub_points (M, dim)``, ``ub_values``; a on the boundary
    ``ab_points (K, d)``, ``ab_values``; the initial state ``i_points (L, dim)``, ``i_values``;
    error grids ``e_points (E, dim)`` with exact ``e_u (E,)``, ``e_du (E, d)`` and
    ``ea_points (Ea, d)`` with ``e_a (Ea,)`` (empty without exact fields). Absent terms have
    empty arrays (and contribute 0).
    """

    kind: str = eqx.field(static=True)  # "inverse"
    dim: int = eqx.field(static=True)
    space_dim: int = eqx.field(static=True)
    components: int = eqx.field(static=True)  # 2: (u, a)
    time: bool = eqx.field(static=True)
    t_a: float = eqx.field(static=True)  # the time at which a(x) is read (time problems)
    box: tuple = eqx.field(static=True)
    term_weights: tuple = eqx.field(static=True)  # ((term, weight), ...) in TERMS order
    has_exact: bool = eqx.field(static=True)
    obs_points: jax.Array
    obs_values: jax.Array
    points: jax.Array
    f_values: jax.Array
    ub_points: jax.Array
    ub_values: jax.Array
    ab_points: jax.Array
    ab_values: jax.Array
    i_points: jax.Array
    i_values: jax.Array
    e_points: jax.Array
    e_u: jax.Array
    e_du: jax.Array
    ea_points: jax.Array
    e_a: jax.Array

    @classmethod
    def build(
        cls,
        observations,
        collocation,
        source: Callable,
        *,
        box,
        a_boundary=None,
        u_boundary=None,
        initial=None,
        time: bool = False,
        weights: dict | None = None,
        exact_u: Callable | None = None,
        exact_a: Callable | None = None,
        error_points: int = 101,
        error_times: int = 11,
    ) -> InverseTask:
        """The task from its data.

        Args:
            observations: ``(points (n, dim), values (n,))``, the noisy observations of u.
            collocation: ``points (N, dim)`` where the PDE residual is taken.
            source: ``f(z)``, a pure JAX callable of one input point (evaluated once, here).
            box: ``((lo, hi), ...)`` per input (space axes, then time): every point must lie in it.
            a_boundary: ``(points (K, d), values (K,))``, a on the spatial boundary (space
                points only: a does not depend on t).
            u_boundary: ``(points (M, dim), values (M,))``, u on the spatial boundary.
            initial: ``(points (L, dim), values (L,))`` with t = t0 (time problems only).
            time: the last input is t and the PDE has u_t; a is read at t_a = t0.
            weights: ``{term: w >= 0}`` for terms among ``"data", "pde", "u_boundary",
                "a_boundary", "initial"`` (default 1 each, PINNacle's equal weights).
            exact_u, exact_a: ``u(z)`` and ``a(x)`` (pure JAX, both or neither): enable
                :meth:`errors` (and ``train``'s error history).
            error_points, error_times: the uniform error grid (points per space axis, times).
        """
        b = _box(box)
        if not isinstance(time, bool):
            raise ValueError(f"time must be True or False, got {time!r}")
        d = len(b) - int(time)
        if d < 1:
            raise ValueError(f"box must have a space axis besides time, got {box!r}")
        if not callable(source):
            raise ValueError(f"source must be a callable f(z) of one point, got {type(source).__name__}")
        if (exact_u is None) != (exact_a is None):
            raise ValueError("exact_u and exact_a go together (the errors are of both u and a)")
        for name, f in (("exact_u", exact_u), ("exact_a", exact_a)):
            if f is not None and not callable(f):
                raise ValueError(f"{name} must be a callable of one point, got {type(f).__name__}")
        w = _weights(weights)
        op, ov = _pair(observations, "observations", b, len(b))
        colloc = _points(collocation, "collocation", b)
        dim = len(b)
        empty = (np.zeros((0, dim)), np.zeros(0))
        ub = empty if u_boundary is None else _pair(u_boundary, "u_boundary", b, dim)
        if u_boundary is not None:
            _on_boundary(ub[0], b[:d], "u_boundary points")
        ab = (np.zeros((0, d)), np.zeros(0))
        if a_boundary is not None:
            ab = _pair(a_boundary, "a_boundary", b, d)
            _on_boundary(ab[0], b[:d], "a_boundary points")
        init = empty
        if initial is not None:
            if not time:
                raise ValueError("initial: an initial state needs time=True")
            init = _pair(initial, "initial", b, dim)
            t0 = b[-1][0]
            off = np.abs(init[0][:, -1] - t0) > 1e-12 * max(1.0, abs(t0))
            if np.any(off):
                raise ValueError(
                    f"initial points: {int(off.sum())} points are not at t0 = {t0} (their last "
                    f"coordinate), e.g. {init[0][int(np.argmax(off))].tolist()}"
                )
        f_values = np.asarray(_vals(source, jnp.asarray(colloc)))
        if not np.all(np.isfinite(f_values)):
            raise ValueError(
                f"source: non-finite values at {int(np.sum(~np.isfinite(f_values)))} collocation points"
            )

        n_e = _count(error_points, "error_points", 2)
        if exact_u is not None:
            xs = _uniform_grid(b[:d], n_e)
            if time:
                ts = np.linspace(*b[-1], _count(error_times, "error_times", 1))
                ep = np.concatenate([np.tile(xs, (len(ts), 1)), np.repeat(ts, len(xs))[:, None]], 1)
            else:
                ep = xs
            e_u, e_du = _exact_on(exact_u, jnp.asarray(ep), d)
            e_a = np.asarray(_vals(exact_a, jnp.asarray(xs)))
            for name, v in (("exact_u values", e_u), ("exact_u gradients", e_du), ("exact_a", e_a)):
                if not np.all(np.isfinite(v)):
                    raise ValueError(f"{name}: non-finite values on the error grid")
        else:
            ep, e_u, e_du = np.zeros((0, dim)), np.zeros(0), np.zeros((0, d))
            xs, e_a = np.zeros((0, d)), np.zeros(0)

        arr = lambda a: jnp.asarray(a, float)  # noqa: E731
        return cls(
            kind="inverse",
            dim=dim,
            space_dim=d,
            components=2,
            time=time,
            t_a=b[-1][0] if time else 0.0,
            box=b,
            term_weights=tuple((k, w[k]) for k in TERMS),
            has_exact=exact_u is not None,
            obs_points=arr(op),
            obs_values=arr(ov),
            points=arr(colloc),
            f_values=arr(f_values),
            ub_points=arr(ub[0]),
            ub_values=arr(ub[1]),
            ab_points=arr(ab[0]),
            ab_values=arr(ab[1]),
            i_points=arr(init[0]),
            i_values=arr(init[1]),
            e_points=arr(ep),
            e_u=arr(e_u),
            e_du=arr(e_du),
            ea_points=arr(xs),
            e_a=arr(e_a),
        )

    def __init__(self, **fields):
        for name, v in fields.items():
            setattr(self, name, v)

    # ------------------------------------------------------------------ evaluation

    @property
    def weights(self) -> dict[str, float]:
        """The loss weights per term."""
        return dict(self.term_weights)

    def loss(self, net: Callable) -> jax.Array:
        """The weighted sum of the terms' means at ``net(z) -> (u, a)``. Traceable (``train``
        differentiates it); eagerly it runs jitted."""
        return _loss(self, net)

    def parts(self, net: Callable) -> dict[str, float]:
        """Each term's mean, unweighted (``"data"``, ``"pde"``, ``"u_boundary"``,
        ``"a_boundary"``, ``"initial"``; 0 for absent terms); ``loss`` = Σ weight × part."""
        return {k: float(v) for k, v in _parts(self, net).items()}

    def residual(self, net: Callable) -> jax.Array:
        """The PDE residual u_t − ∇·(a∇u) − f at the collocation points ``(N,)``."""
        return _residuals(self, net)

    def errors(self, net: Callable) -> dict[str, float]:
        """Relative discrete L2 errors on the uniform error grid: ``"L2"``, ``"H1"`` (∇_x u) and
        ``"max"`` of u, ``"a_L2"`` and ``"a_max"`` of a (a read at t_a for time problems)."""
        if not self.has_exact:
            raise ValueError("errors: this task has no exact fields (give exact_u and exact_a)")
        return {k: float(v) for k, v in _errors(self, net).items()}

    def fingerprint(self) -> str:
        """A stable hash of the loss (what a training checkpoint belongs to): the settings and
        every array (points, data, the source at the collocation points, the error grids and
        exact values), floats rounded to 32 mantissa bits as :meth:`Task.fingerprint`. Hex
        string of 16 characters."""
        h = hashlib.sha256()
        static = {
            "kind": self.kind,
            "dim": self.dim,
            "space_dim": self.space_dim,
            "components": self.components,
            "time": self.time,
            "t_a": repr(self.t_a),
            "box": [[repr(lo), repr(hi)] for lo, hi in self.box],
            "weights": [[k, repr(v)] for k, v in self.term_weights],
            "has_exact": self.has_exact,
        }
        h.update(json.dumps(static, sort_keys=True).encode())
        for path, leaf in jax.tree_util.tree_leaves_with_path(eqx.filter(self, eqx.is_array)):
            h.update(jax.tree_util.keystr(path).encode())
            h.update(_array_bytes(leaf))
        return h.hexdigest()[:16]


@eqx.filter_jit
def _exact_on(exact_u, points, d: int):
    def one(z):
        f = lambda zz: jnp.reshape(exact_u(zz), ())  # noqa: E731
        return f(z), jax.grad(f)(z)[:d]

    return jax.vmap(one)(points)


def _fields(task: InverseTask, net):
    """``u(z)`` and ``a(x)`` (a read at t_a) of a callable ``net(z) -> (u, a)``."""
    t = jnp.full((task.dim - task.space_dim,), task.t_a)

    def out(z):
        y = net(z)
        if jnp.shape(y) != (2,):
            raise ValueError(
                f"net must return (u, a), shape (2,), at one point: got shape {jnp.shape(y)} "
                "(use an MLP with out_size=2)"
            )
        return y

    return (lambda z: out(z)[0]), (lambda x: out(_join(x, t.astype(x.dtype)))[1])


def _residual_values(task: InverseTask, net):
    u, a = _fields(task, net)
    op = jax.vmap(lambda z: _operator(u, a, z, task.space_dim, task.time))(task.points)
    return op - task.f_values


@eqx.filter_jit
def _residuals(task: InverseTask, net):
    return _residual_values(task, net)


def _mean_sq(fn, points, values):
    if points.shape[0] == 0:  # an absent term (static shape: decided when tracing)
        return jnp.zeros(())
    return jnp.mean((jax.vmap(fn)(points) - values) ** 2)


def _parts_values(task: InverseTask, net):
    u, a = _fields(task, net)
    return {
        "data": _mean_sq(u, task.obs_points, task.obs_values),
        "pde": jnp.mean(_residual_values(task, net) ** 2),
        "u_boundary": _mean_sq(u, task.ub_points, task.ub_values),
        "a_boundary": _mean_sq(a, task.ab_points, task.ab_values),
        "initial": _mean_sq(u, task.i_points, task.i_values),
    }


@eqx.filter_jit
def _parts(task: InverseTask, net):
    return _parts_values(task, net)


@eqx.filter_jit
def _loss(task: InverseTask, net):
    p = _parts_values(task, net)
    return sum(w * p[k] for k, w in task.term_weights if w != 0)


@eqx.filter_jit
def _errors(task: InverseTask, net):
    u, a = _fields(task, net)
    d = task.space_dim
    uu, du = jax.vmap(lambda z: (u(z), jax.grad(u)(z)[:d]))(task.e_points)
    aa = jax.vmap(a)(task.ea_points)

    def rel(err, ref):
        return jnp.sqrt(jnp.sum(err**2) / jnp.sum(ref**2))

    return {
        "L2": rel(uu - task.e_u, task.e_u),
        "H1": rel(du - task.e_du, task.e_du),
        "max": jnp.max(jnp.abs(uu - task.e_u)) / jnp.max(jnp.abs(task.e_u)),
        "a_L2": rel(aa - task.e_a, task.e_a),
        "a_max": jnp.max(jnp.abs(aa - task.e_a)) / jnp.max(jnp.abs(task.e_a)),
    }


# ------------------------------------------------------------------------------ PInv and HInv


def _sigma(sigma) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, int | float | np.integer | np.floating):
        raise ValueError(f"sigma must be a positive number (the noise level), got {sigma!r}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number (the noise level), got {sigma!r}")
    return float(sigma)


def _perimeter(box, s: np.ndarray) -> np.ndarray:
    """Points of a rectangle's boundary at arc-length fractions ``s`` in [0, 1)."""
    (x0, x1), (y0, y1) = box
    w, h = x1 - x0, y1 - y0
    r = (s % 1.0) * 2 * (w + h)
    # the four sides, anticlockwise from (x0, y0): bottom, right, top, left
    side = np.searchsorted(np.array([w, w + h, 2 * w + h]), r, side="right")
    x = np.choose(side, [x0 + r, np.full_like(r, x1), x1 - (r - w - h), np.full_like(r, x0)])
    y = np.choose(side, [np.full_like(r, y0), y0 + (r - w), np.full_like(r, y1), y1 - (r - 2 * w - h)])
    return np.stack([x, y], axis=1)


def _uniform(key, n: int, box) -> np.ndarray:
    lo = np.array([b[0] for b in box])
    hi = np.array([b[1] for b in box])
    return lo + (hi - lo) * np.asarray(jr.uniform(key, (n, len(box)), float))


def pinv_task(
    n_obs: int = 2500,
    sigma: float = 0.1,
    n_collocation: int = 8192,
    seed: int = 0,
    *,
    n_boundary: int = 2048,
    u_boundary: bool = True,
    weights: dict | None = None,
    error_points: int = 101,
) -> InverseTask:
    """PINNacle's PInv: −∇·(a∇u) = f on [0, 1]², u = sin πx sin πy, a = 1/(1 + x² + y² +
    (x−1)² + (y−1)²).

    Observations: u on a k × k grid of [0, 1]² (boundary included; ``n_obs = k²``, PINNacle's
    50 × 50) plus N(0, σ²) noise; ``n_collocation`` uniform random collocation points (PINNacle's
    8192); ``n_boundary`` points evenly spaced on ∂Ω carry a (and u = 0 with ``u_boundary``).
    ``seed`` fixes the noise and the collocation points."""
    k = math.isqrt(_count(n_obs, "n_obs", 4))
    if k * k != n_obs:
        raise ValueError(
            f"n_obs must be a square number (a k x k grid, PINNacle 50 x 50), got {n_obs!r}"
        )
    sig = _sigma(sigma)
    n_col = _count(n_collocation, "n_collocation")
    n_b = _count(n_boundary, "n_boundary", 4)
    key = jr.PRNGKey(_count(seed, "seed", 0))
    k_noise, k_col = jr.split(key)
    p = PINV
    obs = _uniform_grid(p.box, k)
    y = np.asarray(_vals(p.exact_u, jnp.asarray(obs))) + sig * np.asarray(jr.normal(k_noise, (n_obs,)))
    xb = _perimeter(p.box, np.arange(n_b) / n_b)
    a_b = np.asarray(_vals(p.exact_a, jnp.asarray(xb)))
    return InverseTask.build(
        (obs, y),
        _uniform(k_col, n_col, p.box),
        p.source,
        box=p.box,
        a_boundary=(xb, a_b),
        u_boundary=(xb, np.zeros(n_b)) if u_boundary else None,
        weights=weights,
        exact_u=p.exact_u,
        exact_a=p.exact_a,
        error_points=error_points,
    )


def hinv_task(
    n_obs: int = 2500,
    sigma: float = 0.1,
    n_collocation: int = 32768,
    seed: int = 0,
    *,
    n_boundary: int = 8192,
    n_initial: int = 2048,
    u_boundary: bool = True,
    initial: bool = True,
    weights: dict | None = None,
    error_points: int = 51,
    error_times: int = 11,
) -> InverseTask:
    """PINNacle's HInv: u_t − ∇·(a∇u) = f on [−1, 1]² × [0, 1], u = e^{−t} sin πx sin πy,
    a = 2 + sin πx sin πy.

    Observations: u at ``n_obs`` uniform random points of the space-time box plus N(0, σ²) noise;
    ``n_collocation`` uniform random collocation points (PINNacle: 4 × 8192); a at ``n_boundary``
    points evenly spaced on ∂Ω; with ``u_boundary``, u = 0 at ``n_boundary`` random points of
    ∂Ω × [0, 1]; with ``initial``, u(x, 0) at ``n_initial`` random points of Ω. ``seed`` fixes
    every random draw."""
    n = _count(n_obs, "n_obs")
    sig = _sigma(sigma)
    n_col = _count(n_collocation, "n_collocation")
    n_b = _count(n_boundary, "n_boundary", 4)
    n_i = _count(n_initial, "n_initial")
    keys = jr.split(jr.PRNGKey(_count(seed, "seed", 0)), 6)
    p = HINV
    space, (t0, t1) = p.box[:2], p.box[2]
    obs = _uniform(keys[0], n, p.box)
    y = np.asarray(_vals(p.exact_u, jnp.asarray(obs))) + sig * np.asarray(jr.normal(keys[1], (n,)))
    xb = _perimeter(space, np.arange(n_b) / n_b)
    a_b = np.asarray(_vals(p.exact_a, jnp.asarray(xb)))
    ub = None
    if u_boundary:
        s = np.asarray(jr.uniform(keys[3], (n_b,), float))
        t = t0 + (t1 - t0) * np.asarray(jr.uniform(keys[4], (n_b,), float))
        ub = (np.concatenate([_perimeter(space, s), t[:, None]], 1), np.zeros(n_b))
    init = None
    if initial:
        xi = np.concatenate([_uniform(keys[5], n_i, space), np.full((n_i, 1), t0)], 1)
        init = (xi, np.asarray(_vals(p.exact_u, jnp.asarray(xi))))
    return InverseTask.build(
        (obs, y),
        _uniform(keys[2], n_col, p.box),
        p.source,
        box=p.box,
        a_boundary=(xb, a_b),
        u_boundary=ub,
        initial=init,
        time=True,
        weights=weights,
        exact_u=p.exact_u,
        exact_a=p.exact_a,
        error_points=error_points,
        error_times=error_times,
    )
