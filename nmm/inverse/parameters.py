"""What in a parameter pytree is identified, and its flat vector.

A parameter is any pytree: numbers, arrays, an :class:`nmm.Field` (its cover-function coefficients
are the unknowns, its space stays fixed), an equinox module such as an MLP (its floating-point
arrays), or a dict / tuple of these. Gauss–Newton and the Laplace approximation work on the flat
vector of the unknowns; the rest of the pytree is carried along unchanged.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..field import Field


def _is_field(node) -> bool:
    return isinstance(node, Field)


def spec(theta):
    """Filter spec (a pytree of bools): a Field's coefficients, every other floating array."""

    def leaf_spec(node):
        if _is_field(node):
            no = jax.tree_util.tree_map(lambda _: False, node)
            return eqx.tree_at(lambda f: f.coeffs, no, True)
        return eqx.is_inexact_array(node)

    return jax.tree_util.tree_map(leaf_spec, theta, is_leaf=_is_field)


def as_arrays(theta):
    """Python and numpy numbers of ``theta`` as float arrays (so that they are unknowns)."""

    def conv(a):
        if isinstance(a, bool):
            return a
        if isinstance(a, int | float) or (hasattr(a, "dtype") and not isinstance(a, jax.Array)):
            return jnp.asarray(a, dtype=float)
        return a

    # modules (Fields, networks) are left as they are: their numbers are structure, not unknowns
    return jax.tree_util.tree_map(conv, theta, is_leaf=lambda n: isinstance(n, eqx.Module))


def split(theta):
    """``(x, rebuild)``: the unknowns as one flat vector and ``rebuild(x) -> theta``."""
    dynamic, static = eqx.partition(theta, spec(theta))
    x, unravel = ravel_pytree(dynamic)

    def rebuild(v):
        return eqx.combine(unravel(v), static)

    return x, rebuild


def count(theta) -> int:
    return int(split(as_arrays(theta))[0].shape[0])


def unknowns(theta) -> jax.Array:
    """The flat vector of the unknowns of ``theta``."""
    return split(theta)[0]


def zeros_like(theta):
    x, rebuild = split(theta)
    return rebuild(jnp.zeros_like(x))
