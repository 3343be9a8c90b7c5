"""Tasks: one discrete functional, shared by NMM solves and network training.

A :class:`Task` holds the quadrature of a ``ManifoldSpace`` (points, weights, boundary pieces) and
the problem data evaluated there, and defines the functional a representation ``u`` minimises:

* ``Task.fit(target, space)``: ``J(u) = ½ Σ_q w_q (u(x_q) - f(x_q))²`` on the space's quadrature
  (the L2 projection ``nmm.fit`` computes), or ``½ Σ_i (u(x_i) - y_i)²`` at samples;
* ``Task.poisson(problem, space)``, ``form="ritz"``: the Ritz energy of ``nmm.solve`` with the same
  Nitsche or penalty terms (same β per boundary piece),
  ``J(u) = Σ_q w_q (½ k|∇u|² + ½ c u² - f u) + Σ_D w k (½ β (u-g)² - ∂_n u (u-g)) - Σ_N w h u``;
  it differs from ``½ xᵀAx - bᵀx`` of the NMM system by the constant ``½ Σ_D w k β g²`` only;
* ``form="pinn"``: the strong-form residual ``½ Σ_q w_q (-∇·(k∇u) + c u - f)²`` plus
  ``½ λ Σ_D w (u-g)²`` and ``½ λ Σ_N w (k ∂_n u - h)²``.

The functional is written once, in terms of ``u`` and its derivatives at the points
(:meth:`Task.energy`): networks, NMM fields and the linear models of ``cover_solve`` all go
through it, so their losses are the same numbers computed the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import nmm
from nmm.problems import evaluate as _evaluate
from nmm.quadrature import map_segments, map_triangles
from nmm.solve import boundary_masks

FORMS = ("ritz", "pinn")


def _call(fn, x, params, *extra):
    return fn(x, *extra) if params is None else fn(x, *extra, params)


# data are evaluated jitted: op-by-op dispatch of vmapped user callables costs seconds
evaluate = eqx.filter_jit(_evaluate)


@eqx.filter_jit
def _gradients(fn, points, params):
    return jax.vmap(lambda y: jnp.asarray(_call(fn, y, params), float))(points)


def _finite(a, name: str) -> jax.Array:
    a = jnp.asarray(a, dtype=float)
    if not bool(jnp.all(jnp.isfinite(a))):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return a


class Task(eqx.Module):
    """A discrete functional on fixed points (build with :meth:`fit` or :meth:`poisson`).

    Arrays: volume points ``points (N, dim)`` with weights ``weights (N,)`` and the element of each
    point ``elems (N,)`` (-1 for samples); per point ``data (N, k)`` = target values (fit) or
    ``k, c, f, ∂k/∂x`` (Poisson); boundary points ``b_points (M, dim)``, ``b_elems``,
    ``b_normal (M, dim)`` and ``b_data (M, 6)`` = Dirichlet weight w (0 off Γ_D), β, g, Neumann weight w,
    flux h, k; error quadrature ``e_points``, ``e_weights``, ``e_elems`` with exact values
    ``e_exact`` and gradients ``e_grad`` (empty when no exact solution is known).
    """

    kind: str = eqx.field(static=True)  # "fit" | "poisson"
    form: str = eqx.field(static=True)  # "l2" | "ritz" | "pinn"
    dim: int = eqx.field(static=True)
    has_exact: bool = eqx.field(static=True)
    has_exact_grad: bool = eqx.field(static=True)
    boundary_weight: float = eqx.field(static=True)
    nitsche: bool = eqx.field(static=True)
    located: bool = eqx.field(static=True)  # the element of every volume point is known
    space_host: object = eqx.field(static=True)  # HostData of the space ``elems`` index (or None)
    points: jax.Array
    weights: jax.Array
    elems: jax.Array
    data: jax.Array
    b_points: jax.Array
    b_elems: jax.Array
    b_normal: jax.Array
    b_data: jax.Array
    e_points: jax.Array
    e_weights: jax.Array
    e_elems: jax.Array
    e_exact: jax.Array
    e_grad: jax.Array

    # ------------------------------------------------------------------ constructors

    @classmethod
    def fit(
        cls, target, space: nmm.ManifoldSpace | None = None, *, params=None, exact=None, exact_grad=None
    ) -> Task:
        """L2 misfit to ``target``: a callable ``f(x)`` (needs ``space``: its quadrature) or a pair
        ``(points (m, dim), values (m,))`` of samples (``space`` optional, used for errors).
        ``exact`` defaults to a callable target."""
        if callable(target):
            if not isinstance(space, nmm.ManifoldSpace):
                raise TypeError(
                    "space: a callable fit target needs an nmm.ManifoldSpace for its quadrature"
                )
            pts, w, el = _volume_rule(space)
            values = _finite(evaluate(target, jnp.asarray(pts), params), "target values")
            exact = target if exact is None else exact
            return cls._build("fit", "l2", space, params, pts, w, el, values[:, None], exact, exact_grad)
        if not (isinstance(target, tuple | list) and len(target) == 2):
            raise TypeError(
                f"target must be a callable or a (points, values) pair, got {type(target).__name__}"
            )
        pts = np.asarray(target[0], dtype=float)
        values = np.asarray(target[1], dtype=float)
        if pts.ndim == 1:
            pts = pts[:, None]
        if space is not None and pts.shape[1] != space.dim:
            raise ValueError(f"points must have shape (m, {space.dim}), got {pts.shape}")
        if pts.ndim != 2 or values.shape != (pts.shape[0],) or pts.shape[0] == 0:
            raise ValueError(
                f"target must be points (m, dim) and values (m,), got {pts.shape} and {values.shape}"
            )
        _finite(pts, "points")
        _finite(values, "values")
        el = np.full(len(pts), -1)
        return cls._build(
            "fit",
            "l2",
            space,
            params,
            pts,
            np.ones(len(pts)),
            el,
            values[:, None],
            exact,
            exact_grad,
            dim=pts.shape[1],
        )

    @classmethod
    def poisson(
        cls,
        problem: nmm.Poisson,
        space: nmm.ManifoldSpace,
        *,
        params=None,
        form: str = "ritz",
        boundary_weight: float = 1.0,
        exact=None,
        exact_grad=None,
    ) -> Task:
        """The functional of ``problem`` on ``space``'s quadrature (``form="ritz" | "pinn"``;
        ``boundary_weight`` λ of the PINN boundary terms)."""
        if not isinstance(problem, nmm.Poisson):
            raise TypeError(f"problem must be an nmm.Poisson, got {type(problem).__name__}")
        if not isinstance(space, nmm.ManifoldSpace):
            raise TypeError(f"space must be an nmm.ManifoldSpace, got {type(space).__name__}")
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        if not (np.isfinite(boundary_weight) and boundary_weight > 0):
            raise ValueError(f"boundary_weight must be a positive number, got {boundary_weight!r}")
        pts, w, el = _volume_rule(space)
        x = jnp.asarray(pts)
        k, c, f = (evaluate(getattr(problem, n), x, params) for n in ("k", "c", "f"))
        if callable(problem.k):  # ∇·(k∇u) = kΔu + ∇k·∇u in the strong form
            dk = _gradients(jax.grad(problem.k), x, params)
        else:
            dk = jnp.zeros_like(x)
        data = _finite(jnp.concatenate([jnp.stack([k, c, f], 1), dk], 1), "k, c, f at the quadrature")

        dmask, nmask = boundary_masks(space, problem)
        nq = space.b_points.shape[1]
        bp = space.b_points.reshape(-1, space.dim)
        bw = space.b_weights.reshape(-1)
        normal = jnp.repeat(space.b_normal, nq, axis=0)
        kb = evaluate(problem.k, bp, params)
        wdeg = 2 if space.kind == "quad" else 1
        beta = jnp.repeat(problem.beta0 * (space.degree + wdeg) ** 2 / space.elem_h[space.b_elem], nq)
        g = evaluate(problem.dirichlet, bp, params)
        outer_flux = evaluate(problem.neumann, bp, params, normal)
        crack_flux = evaluate(problem.crack_neumann, bp, params, normal)
        crack = jnp.repeat(space.b_crack.astype(float), nq)
        wn = bw * jnp.repeat(jnp.asarray(nmask), nq)
        flux = jnp.where(crack > 0, crack_flux, outer_flux)
        wflux = jnp.where(crack > 0, bw, wn)  # crack faces: given flux (zero by default)
        wd = bw * jnp.repeat(jnp.asarray(dmask), nq)  # all zero without Dirichlet data
        b_data = _finite(
            jnp.stack([wd, beta, g, wflux, flux, kb], 1), "boundary data (dirichlet, neumann, k)"
        )
        boundary = (bp, jnp.repeat(space.b_elem, nq), normal, b_data)
        return cls._build(
            "poisson",
            form,
            space,
            params,
            pts,
            w,
            el,
            data,
            exact,
            exact_grad,
            boundary=boundary,
            boundary_weight=float(boundary_weight),
            nitsche=problem.bc == "nitsche",
        )

    @classmethod
    def of(cls, objective, space: nmm.ManifoldSpace | None = None, **kwargs) -> Task:
        """A task from what ``nmm`` solves: a Task (returned as is), an ``nmm.Poisson`` problem
        (:meth:`poisson`), a callable or ``(points, values)`` fit target (:meth:`fit`)."""
        if isinstance(objective, Task):
            if space is not None or kwargs:
                raise ValueError("space and task options go to Task.fit / Task.poisson, not to a Task")
            return objective
        if isinstance(objective, nmm.Poisson):
            return cls.poisson(objective, space, **kwargs)
        return cls.fit(objective, space, **kwargs)

    @classmethod
    def _build(
        cls,
        kind,
        form,
        space,
        params,
        pts,
        w,
        el,
        data,
        exact,
        exact_grad,
        dim=None,
        boundary=None,
        boundary_weight=1.0,
        nitsche=True,
    ):
        dim = space.dim if space is not None else dim
        if exact is not None and not callable(exact):
            raise TypeError(f"exact must be a callable of x, got {type(exact).__name__}")
        if space is not None:
            ep, ew, ee = _volume_rule(space, extra=4)
        else:
            ep, ew, ee = pts, w, el
        ep = jnp.asarray(ep)
        if exact is not None:
            ex = _finite(evaluate(exact, ep, params), "exact solution values")
            grad_fn = exact_grad if exact_grad is not None else jax.grad(exact)
            eg = _gradients(grad_fn, ep, params).reshape(-1, dim)
        else:
            ex, eg = jnp.zeros((0,)), jnp.zeros((0, dim))
        empty = jnp.zeros((0, dim))
        if boundary is None:
            boundary = (empty, jnp.zeros((0,), int), empty, jnp.zeros((0, 6)))
        return cls(
            kind=kind,
            form=form,
            dim=int(dim),
            has_exact=exact is not None,
            has_exact_grad=exact is not None and (exact_grad is not None or callable(exact)),
            boundary_weight=boundary_weight,
            located=bool(np.all(np.asarray(el) >= 0)),
            space_host=space.host if space is not None else None,
            nitsche=bool(nitsche),
            points=jnp.asarray(pts, float),
            weights=jnp.asarray(w, float),
            elems=jnp.asarray(el),
            data=jnp.asarray(data, float),
            b_points=boundary[0],
            b_elems=boundary[1],
            b_normal=boundary[2],
            b_data=boundary[3],
            e_points=ep,
            e_weights=jnp.asarray(ew, float),
            e_elems=jnp.asarray(ee),
            e_exact=ex,
            e_grad=eg,
        )

    def __init__(self, **fields):
        for name, value in fields.items():
            setattr(self, name, value)

    # ------------------------------------------------------------------ evaluation

    @property
    def needs(self) -> tuple[bool, bool]:
        """(gradients, Laplacians) of u that the functional needs."""
        return self.kind == "poisson", self.form == "pinn"

    def evaluate(self, fn: Callable):
        """Values of ``fn: R^dim -> R^m`` (and the derivatives the functional needs) at the volume
        and boundary points: a dict of arrays with the point axis first and ``m`` last."""
        grad, lap = self.needs
        return {
            "volume": _derivatives(fn, self.points, grad, lap),
            "boundary": _derivatives(fn, self.b_points, True, False) if grad else None,
        }

    def energy(self, vals) -> jax.Array:
        """The functional from scalar point values (``evaluate`` contracted to one output)."""
        v = vals["volume"]
        w = self.weights
        if self.kind == "fit":
            return 0.5 * jnp.sum(w * (v["u"] - self.data[:, 0]) ** 2)
        k, c, f, dk = self.data[:, 0], self.data[:, 1], self.data[:, 2], self.data[:, 3:]
        b = vals["boundary"]
        wd, beta, g, wn, h, kb = (self.b_data[:, i] for i in range(6))
        dn = jnp.sum(b["du"] * self.b_normal, -1)
        if self.form == "ritz":
            vol = jnp.sum(w * (0.5 * k * jnp.sum(v["du"] ** 2, -1) + 0.5 * c * v["u"] ** 2 - f * v["u"]))
            consistency = dn * (b["u"] - g) if self.nitsche else 0.0  # the penalty method has none
            dirichlet = jnp.sum(wd * kb * (0.5 * beta * (b["u"] - g) ** 2 - consistency))
            return vol + dirichlet - jnp.sum(wn * h * b["u"])
        lam = self.boundary_weight
        residual = -(k * v["lap"] + jnp.sum(dk * v["du"], -1)) + c * v["u"] - f
        dirichlet = jnp.sum(wd * (b["u"] - g) ** 2)
        neumann = jnp.sum(wn * (kb * dn - h) ** 2)
        return 0.5 * jnp.sum(w * residual**2) + 0.5 * lam * (dirichlet + neumann)

    def loss(self, u: Callable) -> jax.Array:
        """The functional at a scalar function ``u(x)`` of one point (a network, a lambda) or at
        an :class:`nmm.Field`. Traceable (``train`` differentiates it); eagerly it runs jitted."""
        if isinstance(u, nmm.Field) and u.space.host is self.space_host:
            return self.field_loss(u)
        return _loss(self, u)  # any callable; a field of another space locates the points

    def field_loss(self, field: nmm.Field) -> jax.Array:
        """The functional at an NMM field of the task's space (evaluated in the known element of
        each point; use ``loss`` for a field of another space)."""
        if field.space.host is not self.space_host:
            raise ValueError("field_loss: the field lives on another space than the task's; use loss()")
        grad, lap = self.needs
        if lap:
            raise ValueError(
                "field_loss: the PINN form needs second derivatives, which an NMM field "
                "of hat weights does not have"
            )
        if not self.located:  # samples: locate them
            vol = {"u": field(self.points)}
        else:
            vol = _field_values(field, self.elems, self.points)
        bnd = _field_values(field, self.b_elems, self.b_points) if grad else None
        return self.energy({"volume": vol, "boundary": bnd})

    def errors(self, u: Callable) -> dict[str, float]:
        """Relative L2, H1-seminorm and max errors of ``u(x)`` (a callable or an nmm.Field)
        against the exact solution on the error rule (the space's quadrature degree + 4, the rule
        of ``nmm.errors``; max over its points)."""
        if not self.has_exact:
            raise ValueError("errors: this task has no exact solution (give exact=...)")
        if isinstance(u, nmm.Field) and u.space.host is self.space_host:
            return {k: float(v) for k, v in _field_errors(self, u).items()}
        return {k: float(v) for k, v in _errors(self, u).items()}


@eqx.filter_jit
def _loss(task: Task, u):
    vals = task.evaluate(lambda x: jnp.reshape(u(x), (1,)))
    return task.energy(_contract(vals, jnp.ones((1,))))


@eqx.filter_jit
def _errors(task: Task, fn):
    d = _derivatives(lambda x: jnp.reshape(fn(x), (1,)), task.e_points, True, False)
    return _relative(task, d["u"][:, 0], d["du"][:, 0])


@eqx.filter_jit
def _field_errors(task: Task, field):
    return _relative(task, *field.in_elements(task.e_elems, task.e_points))


def _relative(task: Task, u, du):
    w = task.e_weights
    l2 = jnp.sqrt(jnp.sum(w * (u - task.e_exact) ** 2) / jnp.sum(w * task.e_exact**2))
    h1 = jnp.sqrt(
        jnp.sum(w * jnp.sum((du - task.e_grad) ** 2, -1)) / jnp.sum(w * jnp.sum(task.e_grad**2, -1))
    )
    mx = jnp.max(jnp.abs(u - task.e_exact)) / jnp.max(jnp.abs(task.e_exact))
    return {"L2": l2, "H1": h1, "max": mx}


def _derivatives(fn, points, grad: bool, lap: bool):
    def one(x):
        out = {"u": fn(x)}
        if grad:
            out["du"] = jax.jacfwd(fn)(x)  # (m, dim)
        if lap:
            out["lap"] = jnp.trace(jax.hessian(fn)(x), axis1=-2, axis2=-1)
        return out

    return jax.vmap(one)(points)


def _contract(vals, theta):
    """Scalar point values of the linear combination ``Σ_j θ_j fn_j`` of a vector function."""

    def con(a):
        return jnp.tensordot(a, theta, axes=([1], [0])) if a.ndim > 1 else a

    return jax.tree_util.tree_map(con, vals)


@eqx.filter_jit
def _field_values(field, elems, points):
    u, du = field.in_elements(elems, points)
    return {"u": u, "du": du}


def _volume_rule(space, extra: int = 0):
    """Flattened quadrature points, weights and elements of the space (``extra`` degrees finer)."""
    if extra == 0:
        s, q, dim = space.q_points.shape
        return (
            np.asarray(space.q_points).reshape(-1, dim),
            np.asarray(space.q_weights).reshape(-1),
            np.repeat(np.asarray(space.q_elem), q),
        )
    topo = space.host.topology
    rule = map_segments if space.dim == 1 else map_triangles
    pts, w = rule(topo.simplices, space.quad_degree + extra)
    q = pts.shape[1]
    return pts.reshape(-1, space.dim), w.reshape(-1), np.repeat(np.asarray(space.q_elem), q)
