"""What a point function depends on, read from its jaxpr (trace time, no evaluation).

Used to decide, for any form, without the user declaring it: whether its tangent depends on the
state (nonlinear form: Newton) or not (linear form: one solve), and which blocks of the tangent are
structurally zero (skipped in assembly: Poisson has no value–gradient coupling). The analysis is
conservative: an equation's outputs depend on everything its inputs depend on, nested jaxprs
included, so a dependence is never missed; at worst a linear form is solved by Newton.
"""

from __future__ import annotations

import numpy as np
from jax.extend import core as jcore

# primitives whose output is zero when their (first) data operand is zero
_ZERO_PRESERVING = {
    "broadcast_in_dim",
    "reshape",
    "transpose",
    "squeeze",
    "expand_dims",
    "convert_element_type",
    "copy",
    "copy_p",
    "slice",
    "dynamic_slice",
    "gather",
    "neg",
    "reduce_sum",
    "rev",
    "pad",
    "real",
    "imag",
    "conj",
    "cumsum",
    "reduce_precision",
    "split",
    "reduce_max",
    "reduce_min",
}
_ZERO_IF_ANY = {"mul", "dot_general", "and"}  # zero when any operand is zero
_ZERO_IF_ALL = {
    "add",
    "sub",
    "concatenate",
    "add_any",
    "max",
    "min",
    "select_n",
    "dynamic_update_slice",
}


def _is_zero_literal(v) -> bool:
    return isinstance(v, jcore.Literal) and np.all(np.asarray(v.val) == 0)


def analyse(closed, n_groups: list[int]) -> tuple[list[int], list[bool]]:
    """Bit masks of what each output of ``closed`` (a ClosedJaxpr) depends on, and whether each
    output is known to be identically zero.

    The zero analysis is symbolic (no evaluation, so nothing compiles): zeros come from literal
    zeros (the symbolic zeros autodiff instantiates) and flow through shape operations, products
    with a zero factor and sums of zeros; a nested jaxpr is analysed recursively. It may miss a
    zero (then a zero block is computed), never invent one.

    Args:
        closed: from ``jax.make_jaxpr``.
        n_groups: the number of flat input variables in each argument group; group ``i`` sets bit
            ``i``; closed-over constants set bit ``len(n_groups)``.
    """
    jaxpr = closed.jaxpr
    const_bit = 1 << len(n_groups)
    in_masks = []
    for g, n in enumerate(n_groups):
        in_masks += [1 << g] * n
    masks, zeros = _walk(jaxpr, [const_bit] * len(jaxpr.constvars), in_masks, [False] * len(in_masks))
    return masks, zeros


def _walk(jaxpr, const_masks, in_masks, in_zeros):
    mask: dict = {}
    zero: dict = {}
    for v, m in zip(jaxpr.constvars, const_masks, strict=True):
        mask[v], zero[v] = m, False
    for v, m, z in zip(jaxpr.invars, in_masks, in_zeros, strict=True):
        mask[v], zero[v] = m, z

    def m_of(v) -> int:
        return 0 if isinstance(v, jcore.Literal) else mask.get(v, 0)

    def z_of(v) -> bool:
        return _is_zero_literal(v) if isinstance(v, jcore.Literal) else zero.get(v, False)

    for eqn in jaxpr.eqns:
        m = 0
        for v in eqn.invars:
            m |= m_of(v)
        name = eqn.primitive.name
        zs = [z_of(v) for v in eqn.invars]
        sub = eqn.params.get("jaxpr")
        if sub is not None and hasattr(sub, "jaxpr") and len(sub.jaxpr.invars) == len(eqn.invars):
            sub_masks, sub_zeros = _walk(
                sub.jaxpr, [m] * len(sub.jaxpr.constvars), [m_of(v) for v in eqn.invars], zs
            )
            for v, mm, zz in zip(eqn.outvars, sub_masks, sub_zeros, strict=True):
                mask[v], zero[v] = mm, zz
            continue
        if name in _ZERO_PRESERVING:
            out_zero = bool(zs) and zs[0]
        elif name in _ZERO_IF_ANY:
            out_zero = any(zs)
        elif name in _ZERO_IF_ALL:
            data = zs[1:] if name == "select_n" else zs
            out_zero = bool(data) and all(data)
        elif name in ("iota", "broadcast_in_dim") or not eqn.invars:
            out_zero = False
        else:
            out_zero = False
        for v in eqn.outvars:
            mask[v], zero[v] = m, out_zero
    return [m_of(v) for v in jaxpr.outvars], [z_of(v) for v in jaxpr.outvars]
