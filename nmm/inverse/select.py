"""Choosing the regularisation weight from the data alone.

* ``rule="discrepancy"`` — Morozov's discrepancy principle: the largest α whose minimiser fits
  the data to their noise level, |r| ≤ τ√m (needs the true noise levels);
* ``rule="evidence"`` — empirical Bayes: the α of the largest Laplace log-evidence
  (:func:`nmm.inverse.log_evidence`; needs a quadratic, proper prior).

α is handed to ``make_problem`` as a JAX scalar: every weight reuses one compiled inversion.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from .gauss_newton import InversionResult, gauss_newton
from .laplace import log_evidence

RULES = ("discrepancy", "evidence")


@dataclass
class Choice:
    """The chosen weight and what was computed for every candidate.

    Attributes:
        alpha: the chosen weight.
        result: its :class:`InversionResult`.
        alphas: the candidates, in the order given.
        ratios: |r|/√m of each candidate's minimiser.
        evidence: each candidate's log-evidence (``rule="evidence"``; NaN otherwise).
        results: each candidate's result.
    """

    alpha: float
    result: InversionResult
    alphas: list
    ratios: list
    evidence: list
    results: list

    def table(self) -> str:
        """A plain-text table of the candidates (the chosen one marked)."""
        lines = ["  alpha        |r|/sqrt(m)   log-evidence   steps  status"]
        for a, q, e, r in zip(self.alphas, self.ratios, self.evidence, self.results, strict=True):
            mark = " <" if a == self.alpha else ""
            lines.append(f"  {a:10.3e}  {q:11.4f}  {e:13.2f}  {int(r.steps):6d}  {r.reason}{mark}")
        return "\n".join(lines)


def choose_regularisation(
    make_problem, theta0, alphas, *, rule: str = "discrepancy", tau: float = 1.1, **options
) -> Choice:
    """Invert for every weight in ``alphas`` and choose one by ``rule``.

    Args:
        make_problem: ``alpha -> InverseProblem`` (alpha arrives as a JAX scalar).
        theta0: the initial parameters of every inversion.
        alphas: candidate weights (> 0).
        rule: ``"discrepancy"`` or ``"evidence"``.
        tau: the discrepancy principle's safety factor.
        options: passed to :func:`gauss_newton` (``max_steps``, ``damping``, ...).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    alphas = [float(a) for a in alphas]
    if not alphas or any(not (np.isfinite(a) and a > 0) for a in alphas):
        raise ValueError(f"alphas must be positive numbers, got {alphas!r}")
    results, ratios, evidence = [], [], []
    for a in alphas:
        problem = make_problem(jnp.asarray(a))
        res = gauss_newton(problem, theta0, throw=False, **options)
        results.append(res)
        ratios.append(float(res.discrepancy_ratio))
        evidence.append(float(log_evidence(problem, res.theta)) if rule == "evidence" else float("nan"))
    if rule == "evidence":
        i = int(np.nanargmax(evidence))
    else:
        fits = [i for i, q in enumerate(ratios) if q <= tau]
        if fits:
            i = max(fits, key=lambda j: alphas[j])
        else:
            i = int(np.argmin(ratios))
            warnings.warn(
                f"discrepancy principle: no weight fits the data to tau·noise (best |r|/√m = "
                f"{ratios[i]:.4g} > {tau}); the best-fitting alpha = {alphas[i]:g} is returned "
                "(smaller weights, or the noise level is underestimated)",
                RuntimeWarning,
                stacklevel=2,
            )
    return Choice(alphas[i], results[i], alphas, ratios, evidence, results)
