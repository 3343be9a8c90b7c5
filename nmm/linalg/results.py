"""Result codes of solves: returned per batch member instead of raised, so that one failing member
of a ``vmap`` batch does not fail the others (``throw=False``)."""

from __future__ import annotations

import jax.numpy as jnp


class RESULTS:
    """Integer result codes of linear and nonlinear solves (``Solution.result``)."""

    successful = 0
    residual_too_large = 1
    singular = 2
    nonfinite = 3
    not_elliptic = 4
    max_steps_reached = 5
    line_search_failed = 6
    nonfinite_rhs = 7
    nonfinite_matrix = 8

    messages = (
        "",
        "linear solve failed: the relative residual stayed above 1e-6 (singular or very "
        "ill-conditioned system: check the boundary conditions and coefficients)",
        "linear solve failed: the matrix could not be factored (exactly singular)",
        "solve failed: non-finite values in the matrix, right-hand side or solution (check the "
        "data: coefficients, sources, boundary values)",
        "the form is not elliptic at some quadrature points (e.g. k <= 0 or c < 0 somewhere, "
        "E <= 0 or nu outside (-1, 0.5)): the problem is ill-posed; check the coefficients",
        "solve failed: the iteration limit was reached before convergence",
        "Newton failed: the line search found no step that decreases the residual",
        "right-hand side (check the source, the boundary data and the coefficients) contains "
        "non-finite values",
        "system matrix (check the coefficients and the boundary data) contains non-finite values",
    )

    @classmethod
    def message(cls, code: int) -> str:
        code = int(code)
        return cls.messages[code] if 0 <= code < len(cls.messages) else f"unknown result {code}"


def worst(*codes):
    """The first non-zero code of several (elementwise), as int32."""
    out = jnp.asarray(codes[0], jnp.int32)
    for c in codes[1:]:
        out = jnp.where(out == 0, jnp.asarray(c, jnp.int32), out)
    return out
