"""What a point function is, read from its jaxpr (trace time, no evaluation).

Used to decide, for any form, without the user declaring it:

* whether it is linear — its residual affine in the state (u, ∇u) — so that one solve suffices,
  or Newton is needed (:func:`affine`);
* which blocks of its tangent are structurally zero (skipped in assembly: Poisson has no
  value–gradient coupling) (:func:`zero_outputs`).

Both analyses are conservative: a primitive they do not know makes its outputs nonlinear / not
zero, and only call-like primitives (``pjit``, ``closed_call``, ``remat``) are looked into; loops
and branches are treated as opaque. At worst a linear form is solved by Newton, or a zero block
is computed; a nonlinear form is never called linear and a non-zero block never dropped.
"""

from __future__ import annotations

import numpy as np
from jax.extend import core as jcore

# call-like primitives whose body runs once, with the equation's inputs as its inputs
_CALLS = {"pjit", "jit", "closed_call", "core_call", "remat", "checkpoint", "custom_jvp_call"}


def _sub_jaxpr(eqn):
    if eqn.primitive.name not in _CALLS:
        return None
    sub = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
    sub = getattr(sub, "jaxpr", sub)
    if sub is None or not hasattr(sub, "eqns") or len(sub.invars) != len(eqn.invars):
        return None
    return sub


def _literal(v) -> bool:
    return isinstance(v, jcore.Literal)


# ------------------------------------------------------------------------------ zero blocks

# output zero when the first operand is zero (shape and elementwise-odd operations)
_ZERO_PRESERVING = {
    "broadcast_in_dim", "reshape", "transpose", "squeeze", "expand_dims", "convert_element_type",
    "copy", "copy_p", "slice", "dynamic_slice", "gather", "neg", "reduce_sum", "rev", "real",
    "imag", "conj", "cumsum", "reduce_precision", "split", "reduce_max", "reduce_min",
}  # fmt: skip
_ZERO_IF_ANY = {"mul", "dot_general", "and"}  # zero when any operand is zero
_ZERO_IF_ALL = {"add", "sub", "concatenate", "add_any", "max", "min"}  # when all are zero


def _zero_rule(name: str, zs: list[bool]) -> bool:
    if name in _ZERO_PRESERVING:
        return bool(zs) and zs[0]
    if name in _ZERO_IF_ANY:
        return any(zs)
    if name in _ZERO_IF_ALL:
        return bool(zs) and all(zs)
    if name == "select_n":  # the cases, not the predicate
        return len(zs) > 1 and all(zs[1:])
    if name == "pad":  # the operand and the padding value
        return len(zs) > 1 and zs[0] and zs[1]
    if name == "dynamic_update_slice":  # the operand and the update, not the indices
        return len(zs) > 1 and zs[0] and zs[1]
    return False


def zero_outputs(closed) -> list[bool]:
    """Whether each output of ``closed`` (a ClosedJaxpr) is identically zero (symbolic: zeros
    come from literal zeros — the symbolic zeros autodiff instantiates — and flow through shape
    operations, products with a zero factor and sums of zeros)."""
    j = closed.jaxpr
    return _walk_zero(j, [False] * len(j.constvars), [False] * len(j.invars))


def _walk_zero(jaxpr, const_zero, in_zero) -> list[bool]:
    zero = dict(zip(jaxpr.constvars, const_zero, strict=True))
    zero.update(zip(jaxpr.invars, in_zero, strict=True))

    def z(v) -> bool:
        return bool(np.all(np.asarray(v.val) == 0)) if _literal(v) else zero.get(v, False)

    for eqn in jaxpr.eqns:
        zs = [z(v) for v in eqn.invars]
        sub = _sub_jaxpr(eqn)
        if sub is not None:
            outs = _walk_zero(sub, [False] * len(sub.constvars), zs)
        else:
            outs = [_zero_rule(eqn.primitive.name, zs)] * len(eqn.outvars)
        for v, o in zip(eqn.outvars, outs, strict=True):
            zero[v] = o
    return [z(v) for v in jaxpr.outvars]


# ------------------------------------------------------------------------------ linearity

# degree of a variable in the state: 0 independent, 1 affine, 2 anything else
_AFFINE_PASS = _ZERO_PRESERVING - {"reduce_max", "reduce_min"} | {
    "add", "sub", "add_any", "concatenate", "select_and_scatter_add", "dynamic_update_slice",
    "pad", "copy",
}  # fmt: skip


def _degree_rule(eqn, ds: list[int]) -> int:
    name = eqn.primitive.name
    top = max(ds, default=0)
    if top == 0:
        return 0
    if name in ("mul", "dot_general"):
        return min(2, sum(ds))
    if name == "div":
        return ds[0] if ds[1] == 0 else 2
    if name == "integer_pow":
        y = eqn.params.get("y")
        return ds[0] if y == 1 else (0 if y == 0 else 2)
    if name == "select_n":
        return top if ds[0] == 0 else 2
    if name == "convert_element_type":  # to an integer or a bool: a step function of the state
        return top if np.issubdtype(eqn.params["new_dtype"], np.inexact) else 2
    if name in _AFFINE_PASS:
        return top
    return 2  # nonlinear or unknown (sin, exp, stop_gradient, max, ...)


def affine(closed, state: list[bool]) -> bool:
    """Whether every output of ``closed`` is affine in the inputs flagged ``state`` (the others
    and the closed-over constants are held fixed)."""
    j = closed.jaxpr
    degs = [1 if s else 0 for s in state]
    return all(d <= 1 for d in _walk_degree(j, [0] * len(j.constvars), degs))


def _walk_degree(jaxpr, const_deg, in_deg) -> list[int]:
    deg = dict(zip(jaxpr.constvars, const_deg, strict=True))
    deg.update(zip(jaxpr.invars, in_deg, strict=True))

    def d(v) -> int:
        return 0 if _literal(v) else deg.get(v, 0)

    for eqn in jaxpr.eqns:
        ds = [d(v) for v in eqn.invars]
        sub = _sub_jaxpr(eqn)
        if sub is not None:
            outs = _walk_degree(sub, [0] * len(sub.constvars), ds)
        else:
            outs = [_degree_rule(eqn, ds)] * len(eqn.outvars)
        for v, o in zip(eqn.outvars, outs, strict=True):
            deg[v] = o
    return [d(v) for v in jaxpr.outvars]
