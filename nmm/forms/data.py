"""Problem data: what a coefficient, a source or a boundary value may be, and its value at a point.

Data are numbers, arrays, callables of one point ``x (dim,)``, ``nmm.Field`` s or equinox modules
(an MLP). All of them are pytree leaves of the form that holds them, so ``jit``, ``vmap`` and
``grad`` see their arrays: a coefficient field identified by an inverse problem has a gradient.

Plain callables are called ``fn(x)``, or ``fn(x, params)`` when a solve is given ``params``
(boundary fluxes ``h(x, n)`` / ``h(x, n, params)``). Modules (fields, networks) are always called
with the point alone: their parameters are their own leaves.
"""

from __future__ import annotations

import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def value(data, x, params=None, *extra):
    """The value of ``data`` at one point ``x`` (extra arguments, e.g. the normal, follow ``x``)."""
    if data is None:
        return jnp.zeros((), x.dtype)
    if isinstance(data, eqx.Module) and callable(data):
        out = jnp.asarray(data(x, *extra))
        # a Field at one point: its value shape (in 1D, x of shape (1,) also reads as one point
        # of a vector of points, whose value would keep that axis)
        shape = getattr(data, "value_shape", None)
        return out.reshape(shape) if isinstance(shape, tuple) else out
    if callable(data):
        out = data(x, *extra) if params is None else data(x, *extra, params)
        return jnp.asarray(out)
    return jnp.asarray(data)


def is_concrete_number(data) -> bool:
    return isinstance(data, int | float | np.integer | np.floating) and not isinstance(data, bool)


def check(data, name: str, allow_none: bool = True) -> None:
    """Type and finiteness checks of one datum, done where the form is built (before tracing)."""
    if data is None:
        if allow_none:
            return
        raise TypeError(f"{name} must be given, got None")
    if callable(data):
        return
    if isinstance(data, bool):
        raise TypeError(f"{name} must be a number, an array or a callable of x, got a bool")
    if isinstance(data, jax.core.Tracer):
        return
    try:
        arr = np.asarray(data)
    except Exception as err:  # noqa: BLE001 - anything numpy cannot read is a type error here
        raise TypeError(
            f"{name} must be a number, an array or a callable of x, got {type(data).__name__}"
        ) from err
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real number, an array or a callable of x, got {data!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {data!r}")


def check_signature(data, where: str, params, with_normal: bool = False) -> None:
    """A plain callable must accept the arguments the engine passes: ``(x)`` or ``(x, params)``
    (``(x, n)`` / ``(x, n, params)`` for fluxes). Checked before tracing, naming the datum."""
    if data is None or not callable(data) or isinstance(data, eqx.Module):
        return
    args = ["x", "n"] if with_normal else ["x"]
    if params is not None:
        args.append("params")
    try:
        inspect.signature(data).bind(*args)
    except TypeError as err:
        call = f"{where}({', '.join(args)})"
        hint = (
            " (with params=..., every data callable takes params as its last argument, even "
            "when it does not use it)"
            if params is not None
            else ""
        )
        raise TypeError(f"{where} is called as {call}, but {err}{hint}") from None
    except ValueError:  # builtins without a signature: let the call decide
        return
