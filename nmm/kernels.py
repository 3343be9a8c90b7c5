"""A form bound to its data, as point kernels the engine can vmap, differentiate and inspect.

``bind`` turns a form (and ``params``) into three pure functions of one point — the volume
residual ``(x, u, du) -> (r0, r1)``, the boundary data ``(x, n) -> (g, h, h_crack, s)`` and the
admissibility test ``x -> bool`` — and closure-converts them: every array they use (coefficients,
fields, network weights, even tracers a user's lambda closes over) becomes a pytree leaf of the
kernels. That is what makes data of any kind differentiable through the implicit solve rule.

It also reads the volume tangent's jaxpr once (trace time) to learn whether the form is linear
and which tangent blocks are structurally zero (:mod:`nmm.forms.analysis`).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .forms.analysis import affine, zero_outputs
from .forms.base import Form, gershgorin_bound
from .forms.boundary import dirichlet_conditions, neumann_conditions
from .forms.data import value

BLOCKS = ("uu", "ug", "gu", "gg")  # ∂r0/∂u, ∂r0/∂∇u, ∂r1/∂u, ∂r1/∂∇u


class Kernels(eqx.Module):
    """Closure-converted point kernels of a bound form (arrays are leaves)."""

    volume: Callable
    boundary: Callable
    admissible: Callable
    data: Callable  # x -> (n_fields,) bool: each volume datum finite at x
    n: int = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    linear: bool = eqx.field(static=True)
    symmetric: bool = eqx.field(static=True)
    elliptic: bool = eqx.field(static=True)
    nitsche: bool = eqx.field(static=True)
    beta0: float = eqx.field(static=True)
    blocks: tuple = eqx.field(static=True)  # names of the tangent blocks that are not zero
    n_dirichlet: int = eqx.field(static=True)
    n_neumann: int = eqx.field(static=True)
    crack_flux: bool = eqx.field(static=True)
    data_names: tuple = eqx.field(static=True)  # volume data, dirichlet[i], neumann[i], crack

    @property
    def has_boundary_terms(self) -> bool:
        return self.n_dirichlet > 0 or self.n_neumann > 0 or self.crack_flux

    def pushforward(self, x, u, du, phi, dphi):
        """The tangent applied to every local basis function: for basis function j in
        component e, the residual's directional derivative along (φ_j e_e, ∇φ_j ⊗ e_e).

        Cheaper than forming the tangent and contracting it (one JVP of the physics per basis
        function: for Poisson a product k ∇φ_j). Returns ``t0 (L, n, n)``, ``t1 (L, n, n, dim)``
        with axes (j, e, c) (``None`` where the residual part has no state dependence)."""
        eye = jnp.eye(self.n, dtype=phi.dtype)
        du_dir = phi[:, None, None] * eye  # (L, e, c)
        ddu_dir = dphi[:, None, None, :] * eye[..., None]  # (L, e, c, dim)

        def jvp(tu, tg):
            return jax.jvp(lambda a, b: self.volume(x, a, b), (u, du), (tu, tg))[1]

        t0, t1 = jax.vmap(jax.vmap(jvp))(du_dir, ddu_dir)
        has0 = "uu" in self.blocks or "ug" in self.blocks
        has1 = "gu" in self.blocks or "gg" in self.blocks
        return (t0 if has0 else None), (t1 if has1 else None)

    def diagonal(self, x, u, du):
        """Diagonal entries ∂r1_cd/∂(∇u)_cd of the tangent ``(n, dim)`` (the ellipticity
        check), by JVPs along unit directions."""
        n, dim = self.n, self.dim
        eg = jnp.eye(n * dim, dtype=x.dtype).reshape(n * dim, n, dim)

        def along(tg):
            return jax.jvp(lambda b: self.volume(x, u, b)[1], (du,), (tg,))[1]

        dg = jax.vmap(along)(eg).reshape(n * dim, n * dim)
        return jnp.diagonal(dg).reshape(n, dim)

    def flux(self, x, z):
        """σ ``(n, dim)`` from the stacked state ``z (n, 1 + dim)``."""
        return self.volume(x, z[:, 0], z[:, 1:])[1]


def volume_function(form: Form, params, n: int, dim: int):
    """``(x, u (n,), du (n, dim)) -> (r0 (n,), r1 (n, dim))``: the form's residual at one point
    with shapes checked (a wrong shape is a clear error at trace time)."""
    scalar = n == 1
    name = type(form).__name__

    def fn(x, u, du):
        uu, dd = (u[0], du[0]) if scalar else (u, du)
        if form.is_variational and type(form).residual is Form.residual:
            # the shape alone (eval_shape): an evaluation here would stay in the kernel's jaxpr,
            # dead code that every use of the kernel traces again
            w = jax.eval_shape(lambda *a: form.energy(*a, params), x, uu, dd)
            if w.shape != ():
                raise ValueError(f"{name}.energy must return a scalar, got shape {w.shape}")
        r0, r1 = form.residual(x, uu, dd, params)
        e0, e1 = ((), (dim,)) if scalar else ((n,), (n, dim))
        if jnp.shape(r0) != e0 or jnp.shape(r1) != e1:
            raise ValueError(
                f"{name}.residual must return (r0, r1) of shapes {e0} and {e1} (form with {n} "
                f"component(s) in {dim}D), got {jnp.shape(r0)} and {jnp.shape(r1)}"
            )
        return jnp.reshape(r0, (n,)), jnp.reshape(r1, (n, dim))

    return fn


def _per_component(v, n: int, what: str):
    v = jnp.asarray(v)
    if v.shape == ():
        return jnp.broadcast_to(v, (n,))
    if v.shape != (n,):
        raise ValueError(f"{what} must return a scalar or shape ({n},), got shape {v.shape}")
    return v


def boundary_function(form: Form, params, n: int, dim: int):
    """``(x, normal) -> (g (k_d, n), h (k_n, n), h_crack (n,), s)``: the boundary data of every
    Dirichlet and Neumann condition of the form at one point, and its penalty scale."""
    vol = volume_function(form, params, n, dim)
    dirichlets, neumanns = dirichlet_conditions(form), neumann_conditions(form)

    def boundary(x, normal):
        gs = [_per_component(value(d.value, x, params), n, "the Dirichlet value") for d in dirichlets]
        hs = [
            _per_component(value(c.value, x, params, normal), n, "the Neumann value") for c in neumanns
        ]
        hc = _per_component(value(form.crack_neumann, x, params, normal), n, "crack_neumann")
        s = form.penalty_scale(x, params)
        if s is None:  # the bound on ∂σ/∂∇u at u = 0, its tangent by autodiff
            zero_u, zero_du = jnp.zeros((n,), x.dtype), jnp.zeros((n, dim), x.dtype)
            d = jax.jacfwd(lambda g: vol(x, zero_u, g)[1])(zero_du).reshape(n * dim, n * dim)
            s = gershgorin_bound(d)
        stack = lambda v: jnp.stack(v) if v else jnp.zeros((0, n), x.dtype)  # noqa: E731
        return stack(gs), stack(hs), hc, jnp.asarray(s, x.dtype)

    return boundary


class Converted(eqx.Module):
    """A point function as a jaxpr plus the arrays it closed over (leaves, so differentiable).

    Our own closure conversion rather than ``eqx.filter_closure_convert``: that one checks the
    call arguments' full abstract values, shardings included, and inside ``shard_map`` a
    quadrature point built outside the mapped body and an example built inside it differ in
    sharding only. Shapes and dtypes are what the jaxpr needs; those are checked here."""

    jaxpr: jax.extend.core.Jaxpr  # a leaf (not static): custom rules see it as an operand
    consts: list
    in_shapes: tuple = eqx.field(static=True)  # ((shape, dtype), ...)
    out_tree: jax.tree_util.PyTreeDef = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __call__(self, *args):
        if len(args) != len(self.in_shapes):
            raise TypeError(f"{self.name} takes {len(self.in_shapes)} arguments, got {len(args)}")
        for i, (a, (shape, dtype)) in enumerate(zip(args, self.in_shapes, strict=True)):
            if jnp.shape(a) != shape or jnp.result_type(a) != dtype:
                raise ValueError(
                    f"{self.name}: argument {i} has shape {jnp.shape(a)} and dtype "
                    f"{jnp.result_type(a)}, the kernel was built for {shape} and {dtype}"
                )
        out = jax.core.eval_jaxpr(self.jaxpr, self.consts, *args)
        return jax.tree_util.tree_unflatten(self.out_tree, out)

    def __repr__(self) -> str:
        # short: JAX names a traced callable without ``__code__`` by its ``str`` (every vmap,
        # make_jaxpr and jit of a kernel), and equinox's default prints the whole jaxpr (~5 ms
        # a call, 0.08 s of a p = 7 solve's first call)
        return f"Converted({self.name!r})"


def closure_convert(fn: Callable, *examples, name: str = "kernel") -> Converted:
    """``fn`` traced once at ``examples`` (arrays): every array it closes over, tracers of an
    outer trace included, becomes a leaf of the returned :class:`Converted`."""
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*examples)
    return Converted(
        jaxpr=closed.jaxpr,
        consts=list(closed.consts),
        in_shapes=tuple((jnp.shape(e), jnp.result_type(e)) for e in examples),
        out_tree=jax.tree_util.tree_structure(out_shape),
        name=name,
    )


def data_names(form: Form) -> tuple[str, ...]:
    """The names of the form's data, in the order of ``Kernels.data_names`` (and of the result
    codes ``RESULTS.nonfinite_data + i``): volume data, dirichlet[i], neumann[i], crack_neumann."""
    name = type(form).__name__

    def listed(what, k):
        return tuple(f"{name}.{what}" + (f"[{i}]" if k > 1 else "") for i in range(k))

    return (
        tuple(f"{name}.{f}" for f in type(form).data_fields)
        + listed("dirichlet", len(dirichlet_conditions(form)))
        + listed("neumann", len(neumann_conditions(form)))
        + (f"{name}.crack_neumann",)
    )


def bind(form: Form, params, n: int, dim: int, dtype=jnp.float64) -> Kernels:
    """The point kernels of ``form`` with ``n`` components in ``dim`` dimensions (call it where
    the solve is traced: the analysis runs once per compilation)."""
    vol = volume_function(form, params, n, dim)
    boundary = boundary_function(form, params, n, dim)
    dirichlets, neumanns = dirichlet_conditions(form), neumann_conditions(form)

    def admissible(x):
        return jnp.asarray(form.admissible(x, params), bool)

    name = type(form).__name__
    fields = type(form).data_fields

    def data(x):
        flags = [jnp.all(jnp.isfinite(value(getattr(form, f), x, params))) for f in fields]
        return jnp.stack(flags) if flags else jnp.ones((0,), bool)

    xe = jnp.zeros((dim,), dtype)
    for f in fields:  # a complex datum would be cast or fail deep inside autodiff
        out = jax.eval_shape(lambda x, f=f: value(getattr(form, f), x, params), xe)
        if jnp.issubdtype(out.dtype, jnp.complexfloating):
            raise TypeError(
                f"{name}.{f} returns complex values (dtype {out.dtype}); nmm fields are real: "
                "solve for the real and imaginary parts separately"
            )
    ue, due = jnp.zeros((n,), dtype), jnp.zeros((n, dim), dtype)
    vol_c = closure_convert(vol, xe, ue, due, name=f"{name} volume kernel")
    bnd_c = closure_convert(boundary, xe, xe, name=f"{name} boundary kernel")
    adm_c = closure_convert(admissible, xe, name=f"{name}.admissible")
    data_c = closure_convert(data, xe, name=f"{name} data check")

    names = data_names(form)

    # structure read from the jaxprs: is the residual affine in the state (one solve, no
    # Newton)? which tangent blocks are identically zero (not assembled)?
    def blocks(x, u, du):
        r0 = lambda a, b: vol_c(x, a, b)[0]  # noqa: E731
        r1 = lambda a, b: vol_c(x, a, b)[1]  # noqa: E731
        return (
            jax.jacfwd(r0, 0)(u, du),
            jax.jacfwd(r0, 1)(u, du),
            jax.jacfwd(r1, 0)(u, du),
            jax.jacfwd(r1, 1)(u, du),
        )

    zeros = zero_outputs(jax.make_jaxpr(blocks)(xe, ue, due))
    nonzero = tuple(name for name, z in zip(BLOCKS, zeros, strict=True) if not z)
    detected_linear = affine(jax.make_jaxpr(vol_c)(xe, ue, due), [False, True, True])
    linear = detected_linear if type(form).linear is None else bool(type(form).linear)
    return Kernels(
        volume=vol_c,
        boundary=bnd_c,
        admissible=adm_c,
        data=data_c,
        n=n,
        dim=dim,
        linear=linear,
        symmetric=form.is_symmetric,
        elliptic=bool(type(form).elliptic),
        nitsche=form.bc == "nitsche",
        beta0=form.beta0,
        blocks=nonzero or ("uu",),
        n_dirichlet=len(dirichlets),
        n_neumann=len(neumanns),
        crack_flux=form.crack_neumann is not None,
        data_names=names,
    )
