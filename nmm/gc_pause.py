"""Python's cyclic garbage collector paused around host-side set-up and tracing.

Building a space and tracing a solve allocate many small containers (tuples, dicts, jaxpr
equations), and every few thousand of them the collector runs; its full collections walk every
object the process holds, the ~10⁵ that importing JAX made included. Measured on the 2-core
development machine, fresh processes: a p = 0 space of 1e5 unknowns took 1.06–1.21 s with the
collector on and 0.82–0.93 s with it off. These functions make no reference cycles that must be
freed early; what they do make is collected once the collector runs again.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable


def gc_paused(fn: Callable) -> Callable:
    """``fn`` with the cyclic collector paused while it runs (and resumed after, if it was on:
    a caller that turned it off keeps it off; a nested call leaves it to the outermost)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return wrapped
