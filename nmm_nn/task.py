"""Tasks: one discrete functional, shared by NMM solves and network training.

A :class:`Task` holds the quadrature of a ``ManifoldSpace`` (points, weights, boundary pieces and
which boundary condition holds on each) and defines the functional a representation ``u``
minimises. It holds no physics of its own: PDE tasks evaluate the very ``nmm.Form`` that
``nmm.solve`` assembles, at the same points.

* ``Task.fit(target, space)``: ``J(u) = ½ Σ_q w_q |u(x_q) − f(x_q)|²`` on the space's quadrature
  (the L2 projection ``nmm.fit`` computes), or ``½ Σ_i |u(x_i) − y_i|²`` at samples;
* ``Task.pde(form, space)`` (``Task.poisson`` is the same), ``functional="ritz"``: the form's
  energy with the boundary energy of ``nmm.forms.boundary`` (the same Nitsche or penalty terms,
  the same β per boundary piece), ``J(u) = Σ_q w_q W(x_q, u, ∇u) + Σ_b w_b E_Γ(u)``; its gradient
  is the residual ``nmm.solve`` zeroes, so the NMM solution is its minimiser on the space;
* ``functional="pinn"``: the strong residual ``r0 − ∇·r1`` of the form (r0, r1 its weak
  residual, the divergence taken by autodiff through the representation) in least squares, plus
  ``½ λ Σ_D w |u − g|²`` and ``½ λ Σ_N w |σ n − h|²`` on the rest of the boundary and the crack
  faces.

The functional is written once, in terms of ``u`` and its derivatives at the points
(:meth:`Task.energy`): networks, NMM fields and the linear models of ``cover_solve`` all go
through it, so their losses are the same numbers computed the same way.
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
from nmm.forms import boundary as bc
from nmm.forms.data import is_concrete_number, value
from nmm.kernels import boundary_function, volume_function
from nmm.quadrature import map_simplices

FUNCTIONALS = ("ritz", "pinn")


def _finite(a, name: str) -> jax.Array:
    a = jnp.asarray(a, dtype=float)
    if not bool(jnp.all(jnp.isfinite(a))):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return a


@eqx.filter_jit
def _point_values(fn, points, params, shape):
    return jax.vmap(lambda x: jnp.reshape(value(fn, x, params), shape))(points)


class Task(eqx.Module):
    """A discrete functional on fixed points (build with :meth:`fit` or :meth:`pde`).

    Arrays: volume points ``points (N, dim)`` with weights ``weights (N,)`` and the element of each
    point ``elems (N,)`` (-1 for samples); fit targets ``target (N, n)`` (empty for PDE tasks);
    boundary points ``b_points (M, dim)``, ``b_elems``, ``b_flux`` (the element giving the flux),
    ``b_normal (M, dim)``, ``b_weights (M,)``,
    ``b_pieces (M,)`` (the boundary piece of each point), the per-piece condition masks
    ``b_dirichlet (k_d, M, n)`` / ``b_neumann (k_n, M, n)``, crack flags ``b_crack (M,)`` and the
    penalty ``b_beta (M,)``; error quadrature ``e_points``, ``e_weights``, ``e_elems`` with exact
    values ``e_exact (N_e, n)`` and gradients ``e_grad (N_e, n, dim)`` (empty without an exact
    solution). ``problem`` is the ``nmm.Form`` (its arrays are leaves, its callables and other
    non-array parts static, so a Task is an argument ``jax.jit`` takes as is), ``params`` its
    parameters.
    """

    kind: str = eqx.field(static=True)  # "fit" | "pde"
    functional: str = eqx.field(static=True)  # "l2" | "ritz" | "pinn"
    dim: int = eqx.field(static=True)
    components: int = eqx.field(static=True)
    has_exact: bool = eqx.field(static=True)
    boundary_weight: float = eqx.field(static=True)
    located: bool = eqx.field(static=True)  # the element of every volume point is known
    space_host: object = eqx.field(static=True)  # HostData of the space ``elems`` index (or None)
    problem_arrays: object
    problem_static: object = eqx.field(static=True)
    params: object
    points: jax.Array
    weights: jax.Array
    elems: jax.Array
    target: jax.Array
    b_points: jax.Array
    b_elems: jax.Array
    b_flux: jax.Array  # the element whose gradients give the flux (nmm.stable.boundary_donors)
    b_normal: jax.Array
    b_weights: jax.Array
    b_dirichlet: jax.Array
    b_neumann: jax.Array
    b_crack: jax.Array
    b_beta: jax.Array
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
            n = space.components
            values = _point_values(target, jnp.asarray(pts), params, (n,))
            values = _finite(values, "target values")
            exact = target if exact is None else exact
            return cls._build("fit", "l2", space, None, params, pts, w, el, values, exact, exact_grad)
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
        n = space.components if space is not None else 1
        shape = (pts.shape[0],) if n == 1 else (pts.shape[0], n)
        if pts.ndim != 2 or values.shape != shape or pts.shape[0] == 0:
            raise ValueError(
                f"target must be points (m, dim) and values {'(m,)' if n == 1 else f'(m, {n})'}, "
                f"got {pts.shape} and {values.shape}"
            )
        _finite(pts, "points")
        _finite(values, "values")
        el = np.full(len(pts), -1)
        return cls._build(
            "fit",
            "l2",
            space,
            None,
            params,
            pts,
            np.ones(len(pts)),
            el,
            values.reshape(len(pts), n),
            exact,
            exact_grad,
            dim=pts.shape[1],
        )

    @classmethod
    def pde(
        cls,
        problem: nmm.Form,
        space: nmm.ManifoldSpace,
        *,
        params=None,
        functional: str = "ritz",
        boundary_weight: float = 1.0,
        exact=None,
        exact_grad=None,
    ) -> Task:
        """The functional of the form ``problem`` on ``space``'s quadrature
        (``functional="ritz" | "pinn"``; ``boundary_weight`` λ of the PINN boundary terms)."""
        if not isinstance(problem, nmm.Form):
            raise TypeError(
                f"problem must be an nmm.Form (e.g. nmm.Poisson), got {type(problem).__name__}"
            )
        if not isinstance(space, nmm.ManifoldSpace):
            raise TypeError(f"space must be an nmm.ManifoldSpace, got {type(space).__name__}")
        if functional not in FUNCTIONALS:
            raise ValueError(f"form must be one of {FUNCTIONALS}, got {functional!r}")
        if functional == "ritz" and not problem.is_variational:
            raise ValueError(
                f"{type(problem).__name__} has no energy (it defines a residual only): use "
                "functional='pinn'"
            )
        if not (np.isfinite(boundary_weight) and boundary_weight > 0):
            raise ValueError(f"boundary_weight must be a positive number, got {boundary_weight!r}")
        if problem.components != space.components:
            raise ValueError(
                f"{type(problem).__name__} has {problem.components} component(s) but the space has "
                f"{space.components}"
            )
        problem.check_data(params)  # the same checks as nmm.solve: data signatures, null modes
        bd = nmm.drivers.boundary_data(space, problem)
        pts, w, el = _volume_rule(space)
        dmask, nmask = np.asarray(bd.dirichlet), np.asarray(bd.neumann)
        _check_zero_data_null_modes(problem, params, space, pts, dmask)
        nq = space.b_points.shape[1]
        beta = space.boundary_beta(problem.beta0)
        rep = lambda a: np.repeat(np.asarray(a), nq, axis=0)  # noqa: E731
        boundary = {
            "b_points": np.asarray(space.b_points).reshape(-1, space.dim),
            "b_elems": rep(space.b_elem),
            "b_flux": rep(space.b_flux),
            "b_normal": rep(space.b_normal),
            "b_weights": np.asarray(space.b_weights).reshape(-1),
            "b_dirichlet": np.repeat(dmask, nq, axis=1),
            "b_neumann": np.repeat(nmask, nq, axis=1),
            "b_crack": rep(space.b_crack).astype(float),
            "b_beta": rep(beta),
        }
        task = cls._build(
            "pde",
            functional,
            space,
            problem,
            params,
            pts,
            w,
            el,
            np.zeros((0, space.components)),
            exact,
            exact_grad,
            boundary=boundary,
            boundary_weight=float(boundary_weight),
        )
        # the data must be finite where the functional uses them
        vals = _data_at(task)
        for name, v in vals.items():
            _finite(v, name)
        return task

    @classmethod
    def poisson(
        cls,
        problem,
        space,
        *,
        params=None,
        form: str = "ritz",
        boundary_weight: float = 1.0,
        exact=None,
        exact_grad=None,
    ) -> Task:
        """:meth:`pde` under the name of the first form (``form`` = the functional)."""
        return cls.pde(
            problem,
            space,
            params=params,
            functional=form,
            boundary_weight=boundary_weight,
            exact=exact,
            exact_grad=exact_grad,
        )

    @classmethod
    def of(cls, objective, space: nmm.ManifoldSpace | None = None, **kwargs) -> Task:
        """A task from what ``nmm`` solves: a Task (returned as is), an ``nmm.Form``
        (:meth:`pde`), a callable or ``(points, values)`` fit target (:meth:`fit`)."""
        # a Task, or any object with its interface (nmm_nn.SpaceTimeTask)
        if isinstance(objective, Task) or all(
            hasattr(objective, a)
            for a in ("loss", "errors", "fingerprint", "has_exact", "dim", "components")
        ):
            if space is not None or kwargs:
                raise ValueError("space and task options go to Task.fit / Task.pde, not to a Task")
            return objective
        if isinstance(objective, nmm.Form):
            return cls.pde(objective, space, **kwargs)
        return cls.fit(objective, space, **kwargs)

    @classmethod
    def _build(
        cls,
        kind,
        functional,
        space,
        problem,
        params,
        pts,
        w,
        el,
        target,
        exact,
        exact_grad,
        dim=None,
        boundary=None,
        boundary_weight=1.0,
    ):
        dim = space.dim if space is not None else dim
        n = space.components if space is not None else 1
        if exact is not None and not callable(exact):
            raise TypeError(f"exact must be a callable of x, got {type(exact).__name__}")
        if space is not None:
            ep, ew, ee = _volume_rule(space, extra=4)
        else:
            ep, ew, ee = pts, w, el
        ep = jnp.asarray(ep)
        if exact is not None:
            ex = _finite(_point_values(exact, ep, params, (n,)), "exact solution values")
            if exact_grad is not None:
                eg = _point_values(exact_grad, ep, params, (n, dim))
            else:
                eg = _point_values(
                    lambda x, *p: jax.jacfwd(lambda y: jnp.reshape(value(exact, y, *p), (n,)))(x),
                    ep,
                    params,
                    (n, dim),
                )
        else:
            ex, eg = jnp.zeros((0, n)), jnp.zeros((0, n, dim))
        if boundary is None:
            empty = np.zeros((0, dim))
            boundary = {
                "b_points": empty,
                "b_elems": np.zeros((0,), int),
                "b_flux": np.zeros((0,), int),
                "b_normal": empty,
                "b_weights": np.zeros((0,)),
                "b_dirichlet": np.zeros((0, 0, n)),
                "b_neumann": np.zeros((0, 0, n)),
                "b_crack": np.zeros((0,)),
                "b_beta": np.zeros((0,)),
            }
        return cls(
            kind=kind,
            functional=functional,
            dim=int(dim),
            components=int(n),
            has_exact=exact is not None,
            boundary_weight=boundary_weight,
            located=bool(np.all(np.asarray(el) >= 0)),
            space_host=space.host if space is not None else None,
            problem_arrays=eqx.filter(problem, eqx.is_array),
            problem_static=eqx.filter(problem, eqx.is_array, inverse=True),
            params=params,
            points=jnp.asarray(pts, float),
            weights=jnp.asarray(w, float),
            elems=jnp.asarray(el),
            target=jnp.asarray(target, float),
            e_points=ep,
            e_weights=jnp.asarray(ew, float),
            e_elems=jnp.asarray(ee),
            e_exact=ex,
            e_grad=eg,
            **{k: jnp.asarray(v) for k, v in boundary.items()},
        )

    def __init__(self, **fields):
        for name, v in fields.items():
            setattr(self, name, v)

    # ------------------------------------------------------------------ evaluation

    @property
    def problem(self):
        """The ``nmm.Form`` of a PDE task (None for fits)."""
        return eqx.combine(self.problem_arrays, self.problem_static)

    @property
    def form(self) -> str:
        """The functional's name (``"l2"``, ``"ritz"``, ``"pinn"``)."""
        return self.functional

    @property
    def needs(self) -> tuple[bool, bool]:
        """(gradients, Hessians) of u that the functional needs."""
        return self.kind == "pde", self.functional == "pinn"

    def evaluate(self, fn: Callable):
        """Values of ``fn: R^dim -> R^m`` (and the derivatives the functional needs) at the volume
        and boundary points: a dict of arrays with the point axis first and ``m`` second."""
        grad, hess = self.needs
        return {
            "volume": _derivatives(fn, self.points, grad, hess),
            "boundary": _derivatives(fn, self.b_points, True, False) if grad else None,
        }

    def energy(self, vals) -> jax.Array:
        """The functional from point values: ``u (N,)``, ``du (N, dim)``, ``hess (N, dim, dim)``
        for scalar tasks (``evaluate`` contracted to one output), ``(N, n, ...)`` for vector ones."""
        v = _with_components(vals["volume"], self.components)
        w = self.weights
        if self.kind == "fit":
            return 0.5 * jnp.sum(w * jnp.sum((v["u"] - self.target) ** 2, -1))
        b = _with_components(vals["boundary"], self.components)
        n, dim = self.components, self.dim
        form, params = self.problem, self.params
        data = _data_at(self)
        g, m, h, bs = data["g"], data["m"], data["h"], data["beta_s"]
        vol = volume_function(form, params, n, dim)
        if self.functional == "ritz":
            scalar = n == 1

            def density(x, u, du):
                return form.energy(x, u[0], du[0], params) if scalar else form.energy(x, u, du, params)

            W = jax.vmap(density)(self.points, v["u"], v["du"])

            def edge(x, nrm, u, du, g_, m_, h_, bs_):
                z = jnp.concatenate([u[:, None], du], axis=1)
                flux = lambda zz: vol(x, zz[:, 0], zz[:, 1:])[1]  # noqa: E731
                return bc.energy(flux, z, nrm, g_, m_, h_, bs_, self.problem.bc == "nitsche")

            E = jax.vmap(edge)(self.b_points, self.b_normal, b["u"], b["du"], g, m, h, bs)
            return jnp.sum(w * W) + jnp.sum(self.b_weights * E)
        # PINN: strong residual r0 − ∇·r1 with the divergence through the representation
        res = jax.vmap(lambda x, u, du, hs: _strong(vol, x, u, du, hs))(
            self.points, v["u"], v["du"], v["hess"]
        )
        sig = jax.vmap(lambda x, u, du: vol(x, u, du)[1])(self.b_points, b["u"], b["du"])
        flux_n = jnp.einsum("mcd,md->mc", sig, self.b_normal)
        dirichlet = jnp.sum(self.b_weights[:, None] * m * (b["u"] - g) ** 2)
        neumann = jnp.sum(self.b_weights[:, None] * (1 - m) * (flux_n - h) ** 2)
        lam = self.boundary_weight
        return 0.5 * jnp.sum(w * jnp.sum(res**2, -1)) + 0.5 * lam * (dirichlet + neumann)

    def loss(self, u: Callable) -> jax.Array:
        """The functional at a function ``u(x)`` of one point (a network, a lambda) or at an
        :class:`nmm.Field`. Traceable (``train`` differentiates it); eagerly it runs jitted."""
        if isinstance(u, nmm.Field) and u.space.host is self.space_host:
            return self.field_loss(u)
        return _loss(self, u)  # any callable; a field of another space locates the points

    def field_loss(self, field: nmm.Field) -> jax.Array:
        """The functional at an NMM field of the task's space (evaluated in the known element of
        each point; use ``loss`` for a field of another space)."""
        if field.space.host is not self.space_host:
            raise ValueError("field_loss: the field lives on another space than the task's; use loss()")
        grad, hess = self.needs
        if hess:
            raise ValueError(
                "field_loss: the PINN form needs second derivatives, which an NMM field "
                "of hat weights does not have"
            )
        if not self.located:  # samples: locate them
            vol = {"u": field(self.points)}
        else:
            vol = _field_values(field, self.elems, self.points)
        bnd = None
        if grad:
            # values in the pieces' elements, gradients from the elements the solver takes the
            # flux from (their own, or a neighbour's next to a sliver: nmm.stable.boundary_donors)
            bnd = _field_values(field, self.b_elems, self.b_points)
            bnd["du"] = _field_values(field, self.b_flux, self.b_points)["du"]
        return self.energy({"volume": vol, "boundary": bnd})

    def fingerprint(self) -> str:
        """A stable hash of the functional (what a checkpoint of a training run belongs to).

        It covers the static description (kind, functional, dimension, components, boundary
        weight, the form's type and its non-callable settings), every array leaf (points,
        weights, targets, boundary pieces and masks, penalties, the error rule and exact values,
        the form's and the parameters' arrays) and, for PDE tasks, the form's data *at the
        task's points*: its residual at two probe states at every volume point and its boundary
        data at every boundary point. Callables (``f``, ``dirichlet``, ...) are thus compared by
        what they evaluate to where the functional uses them, not by identity, so the same
        script run again gives the same fingerprint. Floats are rounded to 32 mantissa bits
        (last-bit noise between builds does not change it). Hex string of 16 characters."""
        h = hashlib.sha256()
        static = {
            "kind": self.kind,
            "functional": self.functional,
            "dim": self.dim,
            "components": self.components,
            "has_exact": self.has_exact,
            "boundary_weight": self.boundary_weight,
            "form": _describe(self.problem_static),
            "params": _describe(self.params),
        }
        h.update(json.dumps(static, sort_keys=True).encode())
        leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(self, eqx.is_array))
        probes = {} if self.kind != "pde" else {"probe": _probe(self)}
        for path, leaf in [*leaves, *jax.tree_util.tree_leaves_with_path(probes)]:
            h.update(jax.tree_util.keystr(path).encode())
            h.update(_array_bytes(leaf))
        return h.hexdigest()[:16]

    def errors(self, u: Callable) -> dict[str, float]:
        """Relative L2, H1-seminorm and max errors of ``u(x)`` (a callable or an nmm.Field)
        against the exact solution on the error rule (the space's quadrature degree + 4, the rule
        of ``nmm.errors``; max over its points)."""
        if not self.has_exact:
            raise ValueError("errors: this task has no exact solution (give exact=...)")
        if isinstance(u, nmm.Field) and u.space.host is self.space_host:
            return {k: float(v) for k, v in _field_errors(self, u).items()}
        return {k: float(v) for k, v in _errors(self, u).items()}


def _check_zero_data_null_modes(problem, params, space, points, dmask) -> None:
    """The engine's null-mode check (``nmm.forms.boundary.check_null_modes``) for data that are
    zero but not the number 0: ``nmm.solve`` sees the null modes of concrete data only (c = 0 as a
    number) and otherwise fails later, at the solve; a task never solves, so a functional without
    a minimiser (pure Neumann Poisson with ``c=jnp.zeros(())`` or ``c=lambda x: 0.0``) would train
    towards -inf. A datum that is zero at every volume point is the number 0 for the functional:
    the engine's check is run on the form with that datum set to 0."""
    if problem.null_modes(space.dim) is not None:
        return  # concrete data: already checked by nmm.drivers.boundary_data
    zero = []
    for name in type(problem).data_fields:
        d = getattr(problem, name)
        if d is None or is_concrete_number(d):
            continue
        vals = np.asarray(_data_values(d, jnp.asarray(points), params))
        if vals.size and np.all(vals == 0):
            zero.append(name)
    if not zero:
        return
    probe = eqx.tree_at(lambda f: [getattr(f, name) for name in zero], problem, [0.0] * len(zero))
    try:
        bc.check_null_modes(space, probe, dmask)
    except ValueError as err:
        which = ", ".join(f"{type(problem).__name__}.{name}" for name in zero)
        raise ValueError(
            f"{err} ({which} {'is' if len(zero) == 1 else 'are'} zero at every quadrature point; "
            "the functional has no minimiser and training would diverge to -inf)"
        ) from None


@eqx.filter_jit
def _data_values(data, points, params):
    return jax.vmap(lambda x: value(data, x, params))(points)


@eqx.filter_jit
def _probe(task: Task):
    """The form's residual at two fixed states at every volume point, and its boundary data at
    every boundary point: what the form's data are where the functional uses them."""
    n, dim = task.components, task.dim
    vol = volume_function(task.problem, task.params, n, dim)
    u1 = jnp.full((n,), 0.6180339887)
    du1 = 0.3 + 0.1 * jnp.arange(n * dim, dtype=float).reshape(n, dim)
    zero = jax.vmap(lambda x: vol(x, jnp.zeros(n), jnp.zeros((n, dim))))(task.points)
    state = jax.vmap(lambda x: vol(x, u1, du1))(task.points)
    return {"volume_zero": zero, "volume_state": state, "boundary": _data_at(task)}


def _array_bytes(a) -> bytes:
    """Shape, dtype kind and contents of an array; floats rounded to 32 mantissa bits."""
    a = np.asarray(a)
    head = f"{a.dtype.kind}{a.shape}".encode()
    if a.dtype.kind in "fc":
        parts = (a.real, a.imag) if a.dtype.kind == "c" else (a,)
        out = [head]
        for p in parts:
            p = np.asarray(p, np.float64)
            finite = np.isfinite(p)
            m, e = np.frexp(np.where(finite, p, 0.0))
            out += [np.round(m * 2.0**32).astype(np.int64).tobytes(), e.astype(np.int64).tobytes()]
            out.append(np.packbits(finite).tobytes() + np.sign(np.where(finite, 0, p)).tobytes())
        return b"".join(out)
    return head + np.ascontiguousarray(a).tobytes()


def _describe(obj, depth: int = 0):
    """A JSON-able description of the non-array, non-callable parts of a pytree (the form's
    settings: bc, penalty, β0, Dirichlet components, ...); arrays and callables are described by
    their kind only (they are hashed by value, or evaluated at the points, elsewhere)."""
    if depth > 8:
        return "..."
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj if not isinstance(obj, float) else repr(obj)
    if isinstance(obj, np.generic):
        return repr(obj.item())
    if isinstance(obj, np.ndarray | jax.Array):
        return f"array{tuple(obj.shape)}"
    if isinstance(obj, list | tuple):
        return [_describe(o, depth + 1) for o in obj]
    if isinstance(obj, dict):
        return {str(k): _describe(v, depth + 1) for k, v in sorted(obj.items(), key=str)}
    if isinstance(obj, eqx.Module) and not callable(obj):
        return {
            type(obj).__qualname__: {
                f.name: _describe(getattr(obj, f.name, None), depth + 1) for f in dataclasses.fields(obj)
            }
        }
    if callable(obj):
        return f"callable {type(obj).__qualname__}" if isinstance(obj, eqx.Module) else "callable"
    return type(obj).__qualname__


def _strong(vol, x, u, du, hess):
    """r0 − ∇·r1 at one point: d/dx_d of r1(x, u(x), ∇u(x)) by a JVP along each direction."""
    dim = x.shape[0]

    def along(d):
        tangent = (jnp.eye(dim, dtype=x.dtype)[d], du[:, d], hess[:, :, d])
        return jax.jvp(lambda a, b, c: vol(a, b, c)[1], (x, u, du), tangent)[1][:, d]

    div = jnp.sum(jax.vmap(along)(jnp.arange(dim)), axis=0)
    return vol(x, u, du)[0] - div


@eqx.filter_jit
def _data_at(task: Task):
    """Boundary data of the task's form at its boundary points: Dirichlet value and weight,
    Neumann / crack flux and the penalty β s (the same evaluation as ``nmm.solve``)."""
    form = task.problem
    fn = boundary_function(form, task.params, task.components, task.dim)
    gs, hs, hc, s = jax.vmap(fn)(task.b_points, task.b_normal)
    dmask, nmask = (jnp.moveaxis(mk, 0, 1) for mk in (task.b_dirichlet, task.b_neumann))
    g, m, h, s = bc.combine(dmask, gs, nmask, hs, task.b_crack, hc, s)
    return {"g": g, "m": m, "h": h, "beta_s": task.b_beta * s}


@eqx.filter_jit
def _loss(task: Task, u):
    n = task.components
    vals = task.evaluate(lambda x: jnp.reshape(u(x), (n,)))
    if n == 1:
        vals = _contract(vals, jnp.ones((1,)))
    return task.energy(vals)


@eqx.filter_jit
def _errors(task: Task, fn):
    n = task.components
    d = _derivatives(lambda x: jnp.reshape(fn(x), (n,)), task.e_points, True, False)
    return _relative(task, d["u"], d["du"])


@eqx.filter_jit
def _field_errors(task: Task, field):
    u, du = field.in_elements(task.e_elems, task.e_points)
    return _relative(task, u.reshape(len(u), -1), du.reshape(len(u), -1, task.dim))


def _relative(task: Task, u, du):
    w = task.e_weights[:, None]
    l2 = jnp.sqrt(jnp.sum(w * (u - task.e_exact) ** 2) / jnp.sum(w * task.e_exact**2))
    h1 = jnp.sqrt(
        jnp.sum(w[..., None] * (du - task.e_grad) ** 2) / jnp.sum(w[..., None] * task.e_grad**2)
    )
    norm = lambda a: jnp.sqrt(jnp.sum(a**2, -1))  # noqa: E731
    mx = jnp.max(norm(u - task.e_exact)) / jnp.max(norm(task.e_exact))
    return {"L2": l2, "H1": h1, "max": mx}


def _derivatives(fn, points, grad: bool, hess: bool):
    def one(x):
        out = {"u": fn(x)}
        if grad:
            out["du"] = jax.jacfwd(fn)(x)  # (m, dim)
        if hess:
            out["hess"] = jax.hessian(fn)(x)  # (m, dim, dim)
        return out

    return jax.vmap(one)(points)


def _contract(vals, theta):
    """Scalar point values of the linear combination ``Σ_j θ_j fn_j`` of a vector function."""

    def con(a):
        return jnp.tensordot(a, theta, axes=([1], [0])) if a.ndim > 1 else a

    return jax.tree_util.tree_map(con, vals)


def _with_components(vals, n: int):
    """Point values with an explicit component axis: ``u (N, n)``, ``du (N, n, dim)``, ..."""
    if vals is None:
        return None
    if n != 1:
        return vals
    return {k: a[:, None] for k, a in vals.items()}


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
    pts, w = map_simplices(topo.simplices, space.quad_degree + extra, topo.simplex_singular)
    q = pts.shape[1]
    return pts.reshape(-1, space.dim), w.reshape(-1), np.repeat(np.asarray(space.q_elem), q)
