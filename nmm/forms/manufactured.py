"""Manufactured solutions for any form: the source that makes a chosen field exact.

A form's weak residual ∫ r0·v + r1:∇v is, in strong form, r0(x, u, ∇u) − ∇·r1(x, u, ∇u). For a
field ``u_exact`` that is smooth where the form is evaluated, :func:`source` returns that
strong residual as data ``s(x)``; a form whose volume source enters as ``−f`` (every form here)
solves to ``u_exact`` with ``f = s`` computed from the same form with ``f = 0``. The divergence
is differentiated by JAX (forward over forward), so no operator is written twice.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .base import Form


def source(form: Form, u_exact, params=None):
    """``s(x) = r0 − ∇·r1`` at ``u = u_exact(x)`` (shape ``()`` for scalar forms, ``(n,)`` for
    vector forms): the source ``f`` for which ``form`` — built with its own ``f`` /
    ``body_force`` zero — has the solution ``u_exact``, a JAX-traceable function of one point."""
    scalar = form.components == 1

    def state(x):
        u = jnp.asarray(u_exact(x))
        du = jax.jacfwd(u_exact)(x)
        return u, du

    def r(x):
        u, du = state(x)
        return form.residual(x, u, du, params)

    def s(x):
        r0 = r(x)[0]
        dr1 = jax.jacfwd(lambda y: r(y)[1])(x)  # (dim, dim) scalar; (n, dim, dim) vector
        div = jnp.trace(dr1) if scalar else jnp.trace(dr1, axis1=-2, axis2=-1)
        return r0 - div

    return s
