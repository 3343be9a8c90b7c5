"""Result codes of solves: returned per batch member instead of raised, so that one failing member
of a ``vmap`` batch does not fail the others (``throw=False``)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np


class RefinementWarning(UserWarning):
    """A solve whose iterative refinement stopped at ``max_iter`` before its energy rule held: the
    result is returned (its residual is small) but may be less accurate than ``rtol`` asks."""


class SolveError(RuntimeError):
    """A solve that failed (raised by eager calls with ``throw=True``; under ``jit``/``vmap``/
    ``grad`` the same message comes as a runtime error from the compiled program)."""


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
    refinement_stalled = 9  # a warning, not a failure: the solution is returned
    nonfinite_data = 64  # + i: datum i of the form (``Kernels.data_names``) is not finite

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
        "iterative refinement stopped at max_iter before the energy of its correction fell below "
        "rtol: the solution is returned, but it may be less accurate than rtol asks (near-singular "
        "system: high order on cut covers; raise the solver's max_iter or look at u.info)",
    )
    warnings = (refinement_stalled,)

    @classmethod
    def failed(cls, code):
        """Where ``code`` is a failure (not success, not a warning), elementwise."""
        code = jnp.asarray(code)
        bad = code != cls.successful
        for w in cls.warnings:
            bad = bad & (code != w)
        return bad

    @classmethod
    def message(cls, code: int) -> str:
        code = int(code)
        if 0 <= code < len(cls.messages):
            return cls.messages[code]
        if code >= cls.nonfinite_data:
            return f"datum {code - cls.nonfinite_data} of the form is not finite where it is used"
        return f"unknown result {code}"

    @classmethod
    def for_form(
        cls, form_name: str, data_names: tuple, has_dirichlet: bool, newton_hint: str = ""
    ) -> tuple:
        """The messages, indexed by code, of a solve of one form: they name the form and, for
        non-finite data, the datum; ``newton_hint`` follows the messages of a failed Newton."""
        msgs = list(cls.messages)
        if newton_hint:
            for c in (cls.max_steps_reached, cls.line_search_failed):
                msgs[c] = f"{form_name}: {msgs[c]}; {newton_hint}"
        msgs[cls.not_elliptic] = f"{form_name}: {msgs[cls.not_elliptic]}"
        if not has_dirichlet:
            hint = (
                f"; {form_name} has no Dirichlet boundary here, so unless another term fixes the "
                "solution (a reaction c > 0 somewhere, a penalty) it is singular: give dirichlet=..."
            )
            for c in (cls.residual_too_large, cls.singular):
                msgs[c] += hint
        msgs += [""] * (cls.nonfinite_data - len(msgs))
        msgs += [
            f"{name} is not finite at some points where it is used (quadrature points of the "
            "domain, or of the boundary part where the condition holds): check its definition"
            for name in data_names
        ]
        return tuple(msgs)


def worst(*codes):
    """The first non-zero code of several (elementwise), as int32: in numpy where none is traced
    (an eager solve's host codes: a jnp operation would compile a small program per process)."""
    xp = jnp if any(isinstance(c, jax.core.Tracer) for c in codes) else np
    out = xp.asarray(codes[0], xp.int32)
    for c in codes[1:]:
        out = xp.where(out == 0, xp.asarray(c, xp.int32), out)
    return out


def _warn_host(codes) -> None:
    codes = np.asarray(codes)
    for w in RESULTS.warnings:
        if np.any(codes == w):
            # one fixed message per code: Python's warning filter shows it once per session
            warnings.warn(RESULTS.messages[w], RefinementWarning, stacklevel=2)


def settle(tree):
    """``tree``, after the warnings of its program have been emitted when it was computed eagerly:
    the callback runs with the program, which JAX dispatches asynchronously, so without this
    barrier a warning would surface later, away from the call that caused it (and outside a
    ``warnings.catch_warnings`` around that call). Under a trace it does nothing."""
    if not any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(tree)):
        jax.effects_barrier()
    return tree


def check_on_host(codes, messages, throw: bool) -> None:
    """The checks of a compiled solve done after it, on concrete result ``codes``: the warnings,
    then (``throw``) a :class:`SolveError` with the message of the first failing code. Programs
    that check on the host hold no callbacks, so JAX's persistent cache keeps them."""
    codes = np.asarray(codes)
    _warn_host(codes)
    if throw:
        # numpy, not RESULTS.failed: a JAX comparison here would compile a program per shape
        bad = codes[(codes != RESULTS.successful) & ~np.isin(codes, RESULTS.warnings)]
        if bad.size:
            code = int(bad.reshape(-1)[0])
            raise SolveError(messages[code] if 0 <= code < len(messages) else RESULTS.message(code))


def warn_if_flagged(codes) -> None:
    """Emit the warning of each warning code present in ``codes`` when the program runs (works
    under jit, vmap and grad)."""
    jax.debug.callback(_warn_host, jax.lax.stop_gradient(codes))
