"""Space-time PINN tasks: a network ``u(x, t)`` trained on the evolution problem ``nmm.integrate``
steps in time.

``nmm.integrate`` solves M u' + R(u, t) = 0, R the weak residual of an ``nmm.Form`` whose data are
called ``fn(x, t)`` (the time is the form's ``params``). Its strong form is

    u_t + (r0 − ∇·r1)(x, t, u, ∇u) = 0    in Ω × (t0, t1),
    u = g(x, t) on ∂Ω,    u(x, t0) = u0(x),

with (r0, r1) = ``form.residual(x, u, ∇u, t)`` (Poisson: u_t − ∇·(k∇u) − f; Burgers:
u_t + u b·∇u − ν Δu − f). :class:`SpaceTimeTask` is the least-squares functional of it on fixed
points — the PINN loss of a network of ``z = (x, t)`` (``in_size = dim + 1``) — with the duck-typed
interface of :class:`nmm_nn.Task` that :func:`nmm_nn.train` uses (``loss``, ``errors``,
``fingerprint``, ``dim``, ``components``, ``has_exact``):

    J(u) = ½ Σ_{q,j} w_q w_j (u_t + r0 − ∇·r1)²(x_q, t_j)                       (interior)
         + ½ w_I Σ_q w_q (u(x_q, t0) − u0(x_q))²                                   (initial)
         + ½ w_B Σ_{b,j} w_b w_j (u(x_b, t_j) − g(x_b, t_j))²                      (boundary)

x_q, w_q: the NMM space's volume quadrature (``space.q_points``, zero weights dropped); x_b, w_b
its boundary quadrature; t_j, w_j: Gauss–Legendre in time on ``t_span``. The interior sum is thus
a quadrature of the space-time integral of the squared residual. The derivatives (u, ∇_x u, u_t
and the x-divergence of r1 through u) are taken by autodiff through the representation, as in
``Task``'s PINN functional (the same ``_strong``).

Errors (:meth:`SpaceTimeTask.errors`, :func:`spacetime_errors`) are measured on one space-time
grid: the space's volume quadrature points × ``times`` (default 11 uniform times including t0 and
t1), spatial quadrature weights × trapezoid weights in time; relative L2 of u, relative L2 of ∇_x u
("H1") and the relative max. :func:`spacetime_errors` takes any callable ``u(x, t)`` (a network,
an NMM history evaluated at t, ...), so networks and time-stepped NMM fields are measured by the
same numbers at the same points.

Callables ``fn(x, t)`` come in two kinds:

* pointwise JAX callables of one point ``x (dim,)`` and a scalar ``t`` (like the form's data and
  ``nmm.errors``' exact solution; an ``nmm.Field`` inside works): vmapped under jit, and their
  x-gradients are taken by autodiff;
* host (numpy) functions vectorised over points, wrapped in :func:`vectorised`: called
  ``fn(x (m, dim), t: float) -> (m,)`` once per time (e.g. ``experiments.exact_nonlinear.
  burgers_cole_hopf``), with an optional gradient ``grad(x, t) -> (m, dim)``; without one, "H1"
  is NaN.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import nmm
from nmm.forms.boundary import dirichlet_conditions, masks, neumann_conditions
from nmm.forms.data import value
from nmm.kernels import volume_function
from nmm.transient import check_t_span

from .mlp import MLP
from .task import _array_bytes, _describe, _strong

__all__ = ["SpaceTimeTask", "spacetime_errors", "vectorised", "Vectorised", "error_grid"]


# ------------------------------------------------------------------------------ callables


@dataclasses.dataclass(frozen=True)
class Vectorised:
    """A host function ``fn(x (m, dim), t: float) -> (m,)`` (numpy or jax), with an optional
    gradient ``grad(x (m, dim), t) -> (m, dim)``. Build with :func:`vectorised`."""

    fn: Callable
    grad: Callable | None = None


def vectorised(fn: Callable, grad: Callable | None = None) -> Vectorised:
    """Mark ``fn(x (m, dim), t) -> (m,)`` as vectorised over points (called once per time on the
    host, e.g. a numpy reference solution); ``grad(x, t) -> (m, dim)`` its x-gradient (optional:
    without it the "H1" error is NaN)."""
    if not callable(fn):
        raise TypeError(f"vectorised: fn must be a callable fn(x, t), got {type(fn).__name__}")
    if grad is not None and not callable(grad):
        raise TypeError(f"vectorised: grad must be a callable grad(x, t), got {type(grad).__name__}")
    return Vectorised(fn, grad)


class _NetworkXT(eqx.Module):
    """A network of ``z = (x, t)`` seen as a pointwise callable ``u(x, t)`` (a module, so its
    arrays are traced, not baked in as constants)."""

    net: Callable

    def __call__(self, x, t):
        return self.net(jnp.concatenate([x, jnp.reshape(t, (1,)).astype(x.dtype)]))


@eqx.filter_jit
def _pointwise(fn, grad_fn, xs, ts, want_grad: bool):
    """Values (and x-gradients) of a pointwise ``fn(x, t)`` at the points ``(xs[i], ts[i])``."""

    def one(x, t):
        f = lambda y: jnp.reshape(fn(y, t), ())  # noqa: E731
        if not want_grad:
            return f(x), jnp.full(x.shape, jnp.nan, x.dtype)
        if grad_fn is not None:
            return f(x), jnp.reshape(grad_fn(x, t), x.shape)
        return f(x), jax.grad(f)(x)

    return jax.vmap(one)(xs, ts)


def _on_grid(fn, grad_fn, x, times, name: str, want_grad: bool = True):
    """``fn`` and its x-gradient on the grid ``times × x``: ``(Nt·Nq,)`` and ``(Nt·Nq, dim)``
    (time-major). ``fn`` pointwise (jitted, gradients by autodiff unless ``grad_fn``) or
    :class:`Vectorised` (host, per time)."""
    nq, dim = x.shape
    if isinstance(fn, Vectorised):
        vals, grads = [], []
        for t in times:
            v = np.asarray(fn.fn(x, float(t)), dtype=float)
            if v.shape not in ((nq,), (nq, 1)):
                raise ValueError(
                    f"{name}: a vectorised function must return shape ({nq},) for x of shape "
                    f"({nq}, {dim}), got {v.shape}"
                )
            vals.append(v.reshape(nq))
            if fn.grad is not None and want_grad:
                g = np.asarray(fn.grad(x, float(t)), dtype=float)
                if g.size != nq * dim:
                    raise ValueError(
                        f"{name}: its vectorised grad must return shape ({nq}, {dim}), got {g.shape}"
                    )
                grads.append(g.reshape(nq, dim))
            else:
                grads.append(np.full((nq, dim), np.nan))
        return np.concatenate(vals), np.concatenate(grads)
    if isinstance(fn, MLP):
        fn = _NetworkXT(fn)
    xs = jnp.asarray(np.tile(x, (len(times), 1)))
    ts = jnp.asarray(np.repeat(np.asarray(times, float), nq))
    try:
        v, g = _pointwise(fn, grad_fn, xs, ts, want_grad)
    except jax.errors.JAXTypeError as err:
        raise TypeError(
            f"{name} is not a JAX callable of one point (x (dim,), t) ({type(err).__name__}); "
            "wrap a numpy function vectorised over points with nmm_nn.spacetime.vectorised(fn, "
            "grad=...), called fn(x (m, dim), t)"
        ) from None
    return np.asarray(v, float), np.asarray(g, float)


# ------------------------------------------------------------------------------ grids and checks


def _check_times(times, t_span: tuple[float, float], name: str) -> np.ndarray:
    t0, t1 = t_span
    if times is None:
        return np.linspace(t0, t1, 11)
    if isinstance(times, int | np.integer) and not isinstance(times, bool):
        if times < 1:
            raise ValueError(f"{name} must be a positive number of times or an array, got {times!r}")
        return np.linspace(t0, t1, int(times)) if times > 1 else np.array([t1])
    try:
        t = np.asarray(times, dtype=float).reshape(-1)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of times, got {times!r}") from err
    if t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError(f"{name} must be a non-empty array of finite times, got {times!r}")
    tol = 1e-12 * max(1.0, abs(t0), abs(t1))
    if np.any(t < t0 - tol) or np.any(t > t1 + tol):
        raise ValueError(f"{name} must lie in t_span={t_span!r}, got {t.min()} .. {t.max()}")
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"{name} must be strictly increasing, got {t.tolist()}")
    return np.clip(t, t0, t1)


def _trapezoid_weights(t: np.ndarray) -> np.ndarray:
    if len(t) == 1:
        return np.ones(1)
    d = np.diff(t)
    w = np.zeros_like(t)
    w[:-1] += 0.5 * d
    w[1:] += 0.5 * d
    return w


def _volume_points(space) -> tuple[np.ndarray, np.ndarray]:
    """The space's volume quadrature, flattened, zero weights dropped."""
    dim = space.dim
    x = np.asarray(space.q_points, float).reshape(-1, dim)
    w = np.asarray(space.q_weights, float).reshape(-1)
    keep = w != 0
    return x[keep], w[keep]


def error_grid(space, t_span, times=None, *, _name: str = "times") -> dict[str, np.ndarray]:
    """The space-time error grid: ``x (Nq, dim)`` and ``wx (Nq,)`` the space's volume quadrature
    (zero weights dropped), ``t (Nt,)`` the times (default 11 uniform times including both ends;
    an int n: n uniform times, n = 1 meaning t1 alone) and ``wt (Nt,)`` their trapezoid weights."""
    if not isinstance(space, nmm.ManifoldSpace):
        raise TypeError(f"space must be an nmm.ManifoldSpace, got {type(space).__name__}")
    span = check_t_span(t_span)
    t = _check_times(times, span, _name)
    x, wx = _volume_points(space)
    return {"x": x, "wx": wx, "t": t, "wt": _trapezoid_weights(t)}


def _relative(u, du, ex, eg, w) -> dict[str, float]:
    """Relative L2, ∇_x-L2 ("H1") and max errors with weights ``w`` (absolute where the exact norm
    is 0, as ``nmm.errors``)."""

    def ratio(err, ref):
        return float(np.sqrt(err / ref)) if ref > 0 else float(np.sqrt(err))

    l2 = ratio(np.sum(w * (u - ex) ** 2), np.sum(w * ex**2))
    h1 = ratio(np.sum(w[:, None] * (du - eg) ** 2), np.sum(w[:, None] * eg**2))
    mx, mxe = float(np.max(np.abs(ex))), float(np.max(np.abs(u - ex)))
    return {"L2": l2, "H1": h1, "max": mxe / mx if mx > 0 else mxe}


def spacetime_errors(
    u_fn, exact, space, t_span, times=None, *, exact_grad=None, u_grad=None
) -> dict[str, float]:
    """Relative space-time errors of any ``u(x, t)`` against ``exact(x, t)`` on the grid of
    :func:`error_grid` (the space's volume quadrature × ``times``, default 11 uniform times from
    t0 to t1; weights: quadrature × trapezoid).

    Args:
        u_fn: a pointwise JAX callable ``u(x (dim,), t)`` (an NMM history at t, ``lambda x, t:
            net(jnp.append(x, t))``), an :class:`MLP` of ``z = (x, t)``, or a :class:`Vectorised`
            host function.
        exact: the same kinds (not an MLP).
        exact_grad, u_grad: pointwise x-gradients ``(x, t) -> (dim,)`` of pointwise callables
            (default: autodiff); a vectorised function carries its own ``grad``.
        times: an array of increasing times in ``t_span``, or a number of uniform times.

    Returns:
        ``{"L2", "H1", "max"}``: ‖u − e‖/‖e‖ and ‖∇_x(u − e)‖/‖∇_x e‖ over the grid, and
        max|u − e| / max|e| over its points. "H1" is NaN where a gradient is not available
        (a vectorised function without ``grad``).
    """
    for name, f in (("u_fn", u_fn), ("exact", exact)):
        if not callable(f) and not isinstance(f, Vectorised):
            raise TypeError(
                f"{name} must be a callable u(x, t) or vectorised(fn), got {type(f).__name__}"
            )
    grid = error_grid(space, t_span, times)
    ex, eg = _on_grid(exact, exact_grad, grid["x"], grid["t"], "exact")
    _check_finite(ex, "exact solution values")
    u, du = _on_grid(u_fn, u_grad, grid["x"], grid["t"], "u_fn")
    return _relative(u, du, ex, eg, np.kron(grid["wt"], grid["wx"]))


def _check_finite(a, name: str) -> None:
    a = np.asarray(a)
    if not np.all(np.isfinite(a)):
        raise ValueError(
            f"{name} contain non-finite values (NaN or inf) at {int(np.sum(~np.isfinite(a)))} points"
        )


# ------------------------------------------------------------------------------ the task


class SpaceTimeTask(eqx.Module):
    """The space-time PINN functional of ``u_t + (r0 − ∇·r1)(x, t, u, ∇u) = 0`` (see the module
    docstring); build with :meth:`build`.

    Arrays: collocation points ``points (N, dim + 1)`` (columns x then t) and weights
    ``weights (N,)``; initial points ``i_points (N_I, dim + 1)`` (t = t0), ``i_weights``,
    ``i_values`` (u0 there); boundary points ``b_points (M, dim + 1)``, ``b_weights (M,)`` and the
    Dirichlet condition masks ``b_mask (k_d, M)``; error grid ``e_points (N_e, dim + 1)``,
    ``e_weights``, exact values ``e_exact (N_e,)`` and x-gradients ``e_grad (N_e, dim)`` (empty
    without an exact solution). ``problem`` is the form (arrays leaves, the rest static, as in
    :class:`Task`). ``dim`` is the space-time dimension (the space's + 1): the network's
    ``in_size``.
    """

    kind: str = eqx.field(static=True)  # "spacetime"
    functional: str = eqx.field(static=True)  # "pinn"
    dim: int = eqx.field(static=True)
    components: int = eqx.field(static=True)
    has_exact: bool = eqx.field(static=True)
    t_span: tuple = eqx.field(static=True)
    time_points: int = eqx.field(static=True)
    boundary_weight: float = eqx.field(static=True)
    initial_weight: float = eqx.field(static=True)
    n_error_points: int = eqx.field(static=True)  # spatial points of the error grid
    problem_arrays: object
    problem_static: object = eqx.field(static=True)
    points: jax.Array
    weights: jax.Array
    i_points: jax.Array
    i_weights: jax.Array
    i_values: jax.Array
    b_points: jax.Array
    b_weights: jax.Array
    b_mask: jax.Array
    e_points: jax.Array
    e_weights: jax.Array
    e_exact: jax.Array
    e_grad: jax.Array

    @classmethod
    def build(
        cls,
        form: nmm.Form,
        space: nmm.ManifoldSpace,
        t_span,
        u0,
        *,
        exact=None,
        exact_grad=None,
        time_points: int = 16,
        boundary_weight: float = 1.0,
        initial_weight: float = 1.0,
        error_times=None,
    ) -> SpaceTimeTask:
        """The space-time PINN task of ``form`` on ``space`` over ``t_span``.

        Args:
            form: a scalar ``nmm.Form`` whose data take ``(x, t)`` (as ``nmm.integrate`` calls
                them), with Dirichlet data ``dirichlet=g(x, t)`` (or ``nmm.Dirichlet``
                conditions) covering the whole boundary; Neumann data are not supported.
            space: the ``nmm.ManifoldSpace`` whose volume and boundary quadrature give the points.
            t_span: ``(t0, t1)``, t1 > t0.
            u0: the initial state: a pointwise JAX callable ``u0(x)`` (as for ``nmm.integrate``),
                an ``nmm.Field`` or a number.
            exact: the exact solution, pointwise ``exact(x, t)`` (JAX) or :func:`vectorised`
                (numpy); enables :meth:`errors`.
            exact_grad: its x-gradient ``(x, t) -> (dim,)`` (pointwise exact only; default
                autodiff).
            time_points: Gauss–Legendre points in time (>= 1).
            boundary_weight, initial_weight: w_B and w_I (> 0).
            error_times: times of the error grid (default 11 uniform times from t0 to t1).
        """
        if not isinstance(form, nmm.Form):
            raise TypeError(f"form must be an nmm.Form (e.g. nmm.Poisson), got {type(form).__name__}")
        if not isinstance(space, nmm.ManifoldSpace):
            raise TypeError(f"space must be an nmm.ManifoldSpace, got {type(space).__name__}")
        name = type(form).__name__
        if form.components != 1 or space.components != 1:
            raise ValueError(
                f"SpaceTimeTask supports scalar forms and spaces (components = 1), got {name} with "
                f"{form.components} and a space with {space.components}"
            )
        span = check_t_span(t_span)
        if (
            isinstance(time_points, bool)
            or not isinstance(time_points, int | np.integer)
            or time_points < 1
        ):
            raise ValueError(f"time_points must be a positive integer, got {time_points!r}")
        for wname, w in (("boundary_weight", boundary_weight), ("initial_weight", initial_weight)):
            if isinstance(w, bool) or not isinstance(w, int | float | np.integer | np.floating):
                raise ValueError(f"{wname} must be a positive number, got {w!r}")
            if not (np.isfinite(w) and w > 0):
                raise ValueError(f"{wname} must be a positive number, got {w!r}")
        if exact is not None and not (callable(exact) or isinstance(exact, Vectorised)):
            raise TypeError(
                f"exact must be a callable exact(x, t) or vectorised(fn), got {type(exact).__name__}"
            )
        if exact_grad is not None and (exact is None or isinstance(exact, Vectorised)):
            raise ValueError(
                "exact_grad goes with a pointwise exact(x, t); a vectorised exact carries its own "
                "grad (vectorised(fn, grad=...))"
            )
        supported = (
            "SpaceTimeTask supports Dirichlet data on the whole boundary only (dirichlet=g(x, t), "
            "or nmm.Dirichlet conditions whose masks cover every boundary piece)"
        )
        if neumann_conditions(form) or form.crack_neumann is not None:
            raise ValueError(f"{name} has Neumann data (neumann / crack_neumann): {supported}")
        if not dirichlet_conditions(form):
            raise ValueError(f"{name} has no Dirichlet data: {supported}")
        t_probe = jnp.asarray(span[0])
        form.check_data(t_probe)  # data callables take (x, t)
        dmask, _ = masks(space, form)  # (k_d, n_b, 1)
        covered = dmask[..., 0].sum(axis=0)
        if np.any(covered < 1):
            free = int(np.sum(covered < 1))
            what = "crack faces or " if np.any(np.asarray(space.b_crack)) else ""
            raise ValueError(
                f"{name}: {free} of {len(covered)} boundary pieces ({what}pieces outside "
                f"dirichlet_on / the conditions' masks) have no Dirichlet data: {supported}"
            )

        dim = space.dim
        t0, t1 = span
        s, wts = np.polynomial.legendre.leggauss(int(time_points))
        tq = 0.5 * (t1 - t0) * s + 0.5 * (t0 + t1)
        wt = 0.5 * (t1 - t0) * wts
        xq, wq = _volume_points(space)
        nq = len(xq)
        points = np.concatenate([np.tile(xq, (len(tq), 1)), np.repeat(tq, nq)[:, None]], axis=1)
        weights = np.kron(wt, wq)

        # initial condition
        i_points = np.concatenate([xq, np.full((nq, 1), t0)], axis=1)
        if isinstance(u0, nmm.Field):
            if u0.space.dim != dim or u0.space.components != 1:
                raise ValueError("u0: the field must be a scalar field of the space's dimension")
            i_values = np.asarray(u0(jnp.asarray(xq)), float).reshape(nq)
        elif callable(u0) or isinstance(u0, int | float | np.integer | np.floating):
            try:
                i_values = np.asarray(_initial_values(u0, jnp.asarray(xq)), float)
            except jax.errors.JAXTypeError as err:
                raise TypeError(
                    f"u0 must be a JAX callable of one point x (dim,) ({type(err).__name__}), as "
                    "for nmm.integrate"
                ) from None
        else:
            raise TypeError(f"u0 must be a callable u0(x), an nmm.Field or a number, got {u0!r}")
        _check_finite(i_values, "u0 values")

        # boundary: every piece's quadrature points at every time point
        nqb = space.b_points.shape[1]
        xb = np.asarray(space.b_points, float).reshape(-1, dim)
        wb = np.asarray(space.b_weights, float).reshape(-1)
        mb = np.repeat(dmask[..., 0], nqb, axis=1)  # (k_d, n_b·nqb)
        keep = wb != 0
        xb, wb, mb = xb[keep], wb[keep], mb[:, keep]
        nb = len(xb)
        b_points = np.concatenate([np.tile(xb, (len(tq), 1)), np.repeat(tq, nb)[:, None]], axis=1)
        b_weights = np.kron(wt, wb)
        b_mask = np.tile(mb, (1, len(tq)))

        # error grid
        grid = error_grid(space, span, error_times, _name="error_times")
        e_points = np.concatenate(
            [np.tile(grid["x"], (len(grid["t"]), 1)), np.repeat(grid["t"], len(grid["x"]))[:, None]],
            axis=1,
        )
        e_weights = np.kron(grid["wt"], grid["wx"])
        if exact is not None:
            ex, eg = _on_grid(exact, exact_grad, grid["x"], grid["t"], "exact")
            _check_finite(ex, "exact solution values")
            if not isinstance(exact, Vectorised) or exact.grad is not None:
                _check_finite(eg, "exact solution gradients")
        else:
            ex, eg = np.zeros((0,)), np.zeros((0, dim))

        task = cls(
            kind="spacetime",
            functional="pinn",
            dim=dim + 1,
            components=1,
            has_exact=exact is not None,
            t_span=span,
            time_points=int(time_points),
            boundary_weight=float(boundary_weight),
            initial_weight=float(initial_weight),
            n_error_points=len(grid["x"]),
            problem_arrays=eqx.filter(form, eqx.is_array),
            problem_static=eqx.filter(form, eqx.is_array, inverse=True),
            points=jnp.asarray(points),
            weights=jnp.asarray(weights),
            i_points=jnp.asarray(i_points),
            i_weights=jnp.asarray(wq),
            i_values=jnp.asarray(i_values),
            b_points=jnp.asarray(b_points),
            b_weights=jnp.asarray(b_weights),
            b_mask=jnp.asarray(b_mask, float),
            e_points=jnp.asarray(e_points),
            e_weights=jnp.asarray(e_weights),
            e_exact=jnp.asarray(ex),
            e_grad=jnp.asarray(eg),
        )
        # the data must be finite where the functional uses them
        probe = _probe(task)
        for key, v in jax.tree_util.tree_leaves_with_path(probe):
            _check_finite(v, f"{name} data ({jax.tree_util.keystr(key)})")
        return task

    def __init__(self, **fields):
        for name, v in fields.items():
            setattr(self, name, v)

    # ------------------------------------------------------------------ evaluation

    @property
    def problem(self):
        """The ``nmm.Form``."""
        return eqx.combine(self.problem_arrays, self.problem_static)

    @property
    def space_dim(self) -> int:
        return self.dim - 1

    def loss(self, u: Callable) -> jax.Array:
        """The functional at a network ``u(z)`` of one space-time point ``z = (x, t)`` (shape
        ``(dim,)``, t last). Traceable; eagerly it runs jitted."""
        return _loss(self, u)

    def parts(self, u: Callable) -> dict[str, float]:
        """The three terms of the functional (``"residual"``, ``"initial"``, ``"boundary"``, each
        with its weight) at ``u``; their sum is :meth:`loss`."""
        return {k: float(v) for k, v in _parts(self, u).items()}

    def residual(self, u: Callable) -> jax.Array:
        """The strong residual u_t + r0 − ∇·r1 of ``u(z)`` at the collocation points ``(N,)``."""
        return _residuals(self, u)

    def errors(self, u: Callable) -> dict[str, float]:
        """Relative L2, ∇_x ("H1") and max errors of the network ``u(z)`` on the error grid (the
        numbers :func:`spacetime_errors` gives for ``u`` on the same space, t_span and times)."""
        if not self.has_exact:
            raise ValueError("errors: this task has no exact solution (give exact=...)")
        nq = self.n_error_points
        ep = np.asarray(self.e_points)
        x, t = ep[:nq, :-1], ep[::nq, -1]
        fn = u if isinstance(u, Vectorised) else _as_xt(u)
        uu, du = _on_grid(fn, None, x, t, "u")
        return _relative(
            uu, du, np.asarray(self.e_exact), np.asarray(self.e_grad), np.asarray(self.e_weights)
        )

    def fingerprint(self) -> str:
        """A stable hash of the functional (what a training checkpoint belongs to): the settings,
        every array leaf (points, weights, initial values, masks, the error grid and exact values,
        the form's arrays) and the form's data where the functional uses them (its residual at
        two probe states at every collocation point, its Dirichlet data at every boundary point).
        Floats rounded to 32 mantissa bits, as :meth:`Task.fingerprint`. Hex string of 16."""
        h = hashlib.sha256()
        static = {
            "kind": self.kind,
            "functional": self.functional,
            "dim": self.dim,
            "components": self.components,
            "has_exact": self.has_exact,
            "t_span": [repr(float(v)) for v in self.t_span],
            "time_points": self.time_points,
            "boundary_weight": repr(self.boundary_weight),
            "initial_weight": repr(self.initial_weight),
            "form": _describe(self.problem_static),
        }
        h.update(json.dumps(static, sort_keys=True).encode())
        leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(self, eqx.is_array))
        probes = {"probe": _probe(self)}
        for path, leaf in [*leaves, *jax.tree_util.tree_leaves_with_path(probes)]:
            h.update(jax.tree_util.keystr(path).encode())
            h.update(_array_bytes(leaf))
        return h.hexdigest()[:16]


def _as_xt(u):
    if isinstance(u, eqx.Module):
        return _NetworkXT(u)
    return lambda x, t: u(jnp.concatenate([x, jnp.reshape(t, (1,)).astype(x.dtype)]))


@eqx.filter_jit
def _initial_values(u0, xs):
    return jax.vmap(lambda x: jnp.reshape(value(u0, x), ()))(xs)


def _dirichlet_at(task: SpaceTimeTask) -> jax.Array:
    """g(x, t) at the boundary points (the data of the condition that holds on each)."""
    conds = dirichlet_conditions(task.problem)
    d = task.space_dim

    def one(z):
        x, t = z[:d], z[d]
        return jnp.stack([jnp.reshape(value(c.value, x, t), ()) for c in conds])

    gs = jax.vmap(one)(task.b_points)  # (M, k_d)
    return jnp.sum(jnp.where(task.b_mask.T > 0, gs, 0.0), axis=1)


def _residual_values(task: SpaceTimeTask, u):
    form, d = task.problem, task.space_dim

    def scalar(z):
        return jnp.reshape(u(z), ())

    def one(z):
        g = jax.grad(scalar)(z)
        hess = jax.hessian(scalar)(z)
        x, t = z[:d], z[d]
        vol = volume_function(form, t, 1, d)
        strong = _strong(vol, x, scalar(z)[None], g[None, :d], hess[None, :d, :d])[0]
        return g[d] + strong

    return jax.vmap(one)(task.points)


@eqx.filter_jit
def _residuals(task: SpaceTimeTask, u):
    return _residual_values(task, u)


@eqx.filter_jit
def _parts(task: SpaceTimeTask, u):
    def scalar(z):
        return jnp.reshape(u(z), ())

    res = _residual_values(task, u)
    ui = jax.vmap(scalar)(task.i_points)
    ub = jax.vmap(scalar)(task.b_points)
    g = _dirichlet_at(task)
    return {
        "residual": 0.5 * jnp.sum(task.weights * res**2),
        "initial": 0.5 * task.initial_weight * jnp.sum(task.i_weights * (ui - task.i_values) ** 2),
        "boundary": 0.5 * task.boundary_weight * jnp.sum(task.b_weights * (ub - g) ** 2),
    }


@eqx.filter_jit
def _loss(task: SpaceTimeTask, u):
    p = _parts(task, u)
    return p["residual"] + p["initial"] + p["boundary"]


@eqx.filter_jit
def _probe(task: SpaceTimeTask):
    """The form's residual (r0, r1) at two fixed states at every collocation point and its
    Dirichlet data at every boundary point."""
    form, d = task.problem, task.space_dim

    def at(z, u, du):
        return volume_function(form, z[d], 1, d)(z[:d], u, du)

    u1, du1 = jnp.full((1,), 0.6180339887), 0.3 + 0.1 * jnp.arange(d, dtype=float).reshape(1, d)
    zero = jax.vmap(lambda z: at(z, jnp.zeros(1), jnp.zeros((1, d))))(task.points)
    state = jax.vmap(lambda z: at(z, u1, du1))(task.points)
    return {"volume_zero": zero, "volume_state": state, "boundary": _dirichlet_at(task)}
