"""Enrichment: the covers around a point carry given (singular) functions beside their polynomials.

A crack tip, a re-entrant corner, the point where a Dirichlet boundary meets a Neumann one: the
solution there is r^λ × (a function of θ) with λ < p + 1, and no polynomial cover function of any
order carries it (the rate drops to that of the singularity). As in the extended finite element
method and the NMM's crack-tip covers, the covers whose support holds the point (or, with
``radius``, every cover within that distance: "geometric" enrichment, which keeps the optimal
rate as h → 0) carry F_j(r, θ) × their hat beside their polynomials, so that the singular field is
in the space:

    u = Σ_c w_c (P_c + Σ_j a_cj F_j),    (r, θ) polar in the enrichment's frame.

The functions are written in the point's own frame: ``angle`` is the direction of its x-axis and
θ runs over (branch − 2π, branch]; the branch ray is where F jumps (behind a crack tip: the crack
itself; outside the domain at a corner). The space does the rest (``nmm.space``): the enrichment
functions are orthonormalised with the polynomials on each enriched cover (``nmm.stable``, so
nearly dependent combinations are dropped instead of ruining the solve), the elements that hold
the point are integrated by a fan of triangles from it, split at the branch ray, with a rule that
makes r^½ integrands smooth (``nmm.quadrature.singular_triangle``), and the other enriched
elements with a higher-degree rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import shapely

from .geometry import Domain


def crack_scalar(r, theta):
    """The anti-plane (mode III) / Poisson crack-tip function √r sin(θ/2)."""
    return jnp.sqrt(r) * jnp.sin(0.5 * theta)[None]


def crack_elastic(r, theta):
    """The four Williams functions √r {sin θ/2, cos θ/2, sin θ/2 sin θ, cos θ/2 sin θ}."""
    s, c, st = jnp.sin(0.5 * theta), jnp.cos(0.5 * theta), jnp.sin(theta)
    return jnp.sqrt(r) * jnp.stack([s, c, s * st, c * st])


def crack_series(kind: str, terms: int):
    """The first ``terms`` half-integer orders n/2 (n = 1, 3, …) of the near-tip expansion: for
    ``"scalar"`` (flux-free faces) r^{n/2} sin(nθ/2); for ``"elastic"`` (traction-free faces,
    both modes) r^{n/2} {sin, cos}(nθ/2) and r^{n/2} {sin, cos}((n/2 − 2)θ), 4 per order (the
    first order spans the same functions as :func:`crack_elastic`).

    Why more than the first. The smooth part of a crack solution is not smooth: the expansion goes
    on with r^{3/2}, r^{5/2}, … (in H^{5/2−ε}, H^{7/2−ε}), which cap the rate of a degree-k
    polynomial space at h^{3/2} in H1 unless they are in the space too. Cover functions of degree p
    (polynomials of degree p + 1 with the weights) need the orders n ≤ 2p + 1: ``terms = p + 1``.
    """
    if kind not in ("scalar", "elastic"):
        raise ValueError(f"kind must be 'scalar' or 'elastic', got {kind!r}")
    if isinstance(terms, bool) or not isinstance(terms, int | np.integer) or not 1 <= terms <= 8:
        raise ValueError(f"terms must be an integer in 1 … 8, got {terms!r}")
    if terms == 1:
        return _PRESETS[kind]
    lams = [0.5 * n for n in range(1, 2 * int(terms), 2)]

    def scalar_series(r, theta):
        return jnp.stack([r**lam * jnp.sin(lam * theta) for lam in lams])

    def elastic_series(r, theta):
        out = []
        for lam in lams:
            rl = r**lam
            out += [rl * jnp.sin(lam * theta), rl * jnp.cos(lam * theta)]
            out += [rl * jnp.sin((lam - 2) * theta), rl * jnp.cos((lam - 2) * theta)]
        return jnp.stack(out)

    return scalar_series if kind == "scalar" else elastic_series


_PRESETS = {"scalar": crack_scalar, "elastic": crack_elastic}


@dataclass(frozen=True, eq=False)
class Enrichment:
    """Functions F(r, θ) -> ``(m,)`` carried by the covers around ``point``.

    Args:
        point: ``(2,)`` the singular point.
        functions: a pure JAX callable ``(r, theta) -> (m,)`` (scalars in), or ``"scalar"`` /
            ``"elastic"`` for the crack-tip functions (:func:`crack_scalar`, :func:`crack_elastic`).
        angle: direction of the frame's x-axis (radians).
        branch: θ lies in (branch − 2π, branch]; the ray θ = branch is where F may jump (π: behind
            the point, along a crack that ends there).
        radius: ``None``: the functions go on the covers of the elements that hold the point, each
            cover with its own coefficients. A distance R: the functions times a smooth cut-off
            χ(r) (1 up to ``inner`` × R, 0 from R on, :func:`smooth_step` between) with one set of
            coefficients for all of them ("cut-off enrichment", Chahine, Laborde & Renard 2008):
            the singular part is then in the space on a fixed region as h → 0, and what is left,
            u − K χ F, is smooth, so the rate is that of the polynomials (per-cover enrichment of
            every cover within R leaves a layer where the enriched covers stop, and the rate drops
            there: ``benchmarks/enrichment.py``).
        inner: the plateau of the cut-off, as a fraction of ``radius`` (0 <= inner < 1).
        power: the radial substitution r = s^q of the rules at the point
            (``nmm.quadrature.singular_triangle``): exact when q λ is an integer for F ~ r^λ (2 for
            r^½, 3 for r^⅔).
    """

    point: np.ndarray
    functions: Callable
    angle: float = 0.0
    branch: float = np.pi
    radius: float | None = None
    power: int = 2
    inner: float = 0.0
    n_functions: int = 0

    def __init__(self, point, functions, angle=0.0, branch=np.pi, radius=None, power=2, inner=0.0):
        p = np.asarray(point, dtype=float) if not isinstance(point, str) else None
        if p is None or p.shape != (2,) or not np.all(np.isfinite(p)):
            raise ValueError(f"point must be two finite coordinates, got {point!r}")
        if isinstance(functions, str):
            if functions not in _PRESETS:
                raise ValueError(
                    f"functions must be a callable or one of {sorted(_PRESETS)}, got {functions!r}"
                )
            functions = _PRESETS[functions]
        if not callable(functions):
            raise TypeError(
                f"functions must be a callable (r, theta) -> (m,), got {type(functions).__name__}"
            )
        for name, v in (("angle", angle), ("branch", branch)):
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float | np.floating | np.integer)
                or not np.isfinite(v)
            ):
                raise ValueError(f"{name} must be a finite angle in radians, got {v!r}")
        if radius is not None and (
            isinstance(radius, bool)
            or not isinstance(radius, int | float | np.floating | np.integer)
            or not radius > 0
        ):
            raise ValueError(f"radius must be a positive distance or None, got {radius!r}")
        try:
            probe = np.asarray(functions(jnp.asarray(0.5), jnp.asarray(0.3)))
        except Exception as err:  # noqa: BLE001 - say which argument is at fault
            raise TypeError(
                f"functions(r, theta) failed on scalars: {type(err).__name__}: {err}"
            ) from err
        if probe.ndim != 1 or probe.size == 0 or not np.all(np.isfinite(probe)):
            raise ValueError(
                f"functions(r, theta) must return a non-empty 1-D array of finite values, got {probe!r}"
            )
        object.__setattr__(self, "point", p)
        object.__setattr__(self, "functions", functions)
        object.__setattr__(self, "angle", float(angle))
        object.__setattr__(self, "branch", float(branch))
        object.__setattr__(self, "radius", None if radius is None else float(radius))
        if isinstance(power, bool) or not isinstance(power, int | np.integer) or not 1 <= power <= 8:
            raise ValueError(f"power must be an integer in 1 … 8, got {power!r}")
        object.__setattr__(self, "power", int(power))
        object.__setattr__(self, "n_functions", int(probe.size))
        if (
            isinstance(inner, bool)
            or not isinstance(inner, int | float | np.floating | np.integer)
            or not 0 <= inner < 1
        ):
            raise ValueError(f"inner must be a fraction of the radius in [0, 1), got {inner!r}")
        object.__setattr__(self, "inner", float(inner))

    # ------------------------------------------------------------------ constructors

    @classmethod
    def crack_tip(
        cls,
        domain: Domain,
        crack: int = 0,
        end: int = -1,
        functions="scalar",
        radius=None,
        inner=0.0,
        terms: int = 1,
    ):
        """The tip at end ``end`` (0 or -1) of ``domain.cracks[crack]``, in the frame of the
        crack's last segment (x-axis ahead of the tip, the crack along θ = ±π); ``terms``: the
        orders of the near-tip expansion carried with ``"scalar"`` / ``"elastic"``
        (:func:`crack_series`; p + 1 for the optimal rate with cover functions of degree p)."""
        if not isinstance(domain, Domain) or domain.dim != 2:
            raise TypeError("domain must be a 2D nmm.Domain with cracks")
        if isinstance(crack, bool) or not isinstance(crack, int) or not 0 <= crack < len(domain.cracks):
            raise ValueError(
                f"crack must index domain.cracks (0 … {len(domain.cracks) - 1}), got {crack!r}"
            )
        if end not in (0, -1):
            raise ValueError(f"end must be 0 or -1 (the crack's first or last point), got {end!r}")
        c = np.asarray(domain.cracks[crack], dtype=float)
        tip, prev = (c[-1], c[-2]) if end == -1 else (c[0], c[1])
        pt = shapely.Point(tip)
        size = float(np.max(np.ptp(domain.outer, axis=0)))
        if not domain.shape.contains(pt) or domain.shape.boundary.distance(pt) <= 1e-12 * size:
            raise ValueError(
                f"the end {end} of cracks[{crack}] at {tip.tolist()} is not inside the domain (it is on "
                "or outside the boundary): not a crack tip"
            )
        d = tip - prev
        angle = float(np.arctan2(d[1], d[0]))
        if isinstance(functions, str) and functions in _PRESETS:
            functions = crack_series(functions, terms)
        elif terms != 1:
            raise ValueError(f"terms needs functions='scalar' or 'elastic', got {functions!r}")
        return cls(tip, functions, angle=angle, branch=np.pi, radius=radius, inner=inner)

    @classmethod
    def corner(cls, point, edge_angle: float, opening: float, radius=None, inner=0.0):
        """A re-entrant corner of interior angle ``opening`` (ω, π < ω < 2π) whose first edge (the
        domain lies counter-clockwise from it) leaves ``point`` in direction ``edge_angle``: the
        Laplace singularity r^{π/ω} sin(πθ/ω), θ from that edge."""
        if not (isinstance(opening, int | float | np.floating) and 0 < opening < 2 * np.pi):
            raise ValueError(f"opening must be an angle in (0, 2π), got {opening!r}")
        lam = np.pi / float(opening)

        def corner_function(r, theta):
            return (r**lam * jnp.sin(lam * theta))[None]

        # the branch ray in the middle of the wedge outside the domain; r = s^q with q λ integer
        # where λ is a simple fraction (2/3 for the L-shape: q = 3)
        q = Fraction(lam).limit_denominator(6)
        power = q.denominator if abs(float(q) - lam) < 1e-12 else 3
        return cls(
            point,
            corner_function,
            angle=edge_angle,
            branch=0.5 * (opening + 2 * np.pi),
            radius=radius,
            power=power,
            inner=inner,
        )

    # ------------------------------------------------------------------ evaluation

    def polar(self, x):
        """``(r, θ)`` of a point ``x (2,)`` in the frame, θ in (branch − 2π, branch]."""
        d = x - jnp.asarray(self.point)
        ca, sa = np.cos(self.angle), np.sin(self.angle)
        xl, yl = ca * d[0] + sa * d[1], -sa * d[0] + ca * d[1]
        t = jnp.arctan2(yl, xl)
        t = self.branch - jnp.mod(self.branch - t, 2 * np.pi)
        return jnp.sqrt(xl * xl + yl * yl), t

    def values(self, x):
        """``(m,)`` the functions at ``x``."""
        r, t = self.polar(x)
        return jnp.asarray(self.functions(r, t)).reshape(self.n_functions)

    def values_and_grads(self, x):
        """``(m,)`` values and ``(m, 2)`` gradients at ``x`` (not at the point itself)."""
        return self.values(x), jax.jacfwd(self.values)(x)

    def cutoff(self, x):
        """χ(r) at ``x``: 1 for r <= ``inner`` × radius, 0 from ``radius`` on, C^∞ between (the
        weight of the enrichment's shared coefficients; ``radius=None``: not defined)."""
        r = jnp.linalg.norm(x - jnp.asarray(self.point))
        r0 = self.inner * self.radius
        return smooth_step((self.radius - r) / (self.radius - r0))

    def cutoff_and_grad(self, x):
        """χ(r) and its gradient ``(2,)`` at ``x``."""
        return self.cutoff(x), jax.grad(self.cutoff)(x)

    def __repr__(self) -> str:
        name = getattr(self.functions, "__name__", "functions")
        return (
            f"Enrichment(point={self.point.tolist()}, functions={name}, m={self.n_functions}, "
            f"angle={self.angle:.6g}, branch={self.branch:.6g}, radius={self.radius}, "
            f"inner={self.inner})"
        )


def smooth_step(s):
    """0 for s <= 0, 1 for s >= 1, C^∞ between: g(s) / (g(s) + g(1 - s)), g(t) = exp(-1/t).
    Every derivative vanishes at both ends, so χ F − F is as smooth as F away from the point and
    the rate is that of the smooth part for any order (a polynomial step of smoothness k would
    cap it)."""

    def g(t):
        pos = t > 0
        return jnp.where(pos, jnp.exp(-1.0 / jnp.where(pos, t, 1.0)), 0.0)

    a, b = g(s), g(1.0 - s)
    return a / (a + b)


def stack_values(enrichments, x):
    """All enrichments' functions at ``x``: values ``(M,)`` and gradients ``(M, 2)``."""
    vals, grads = zip(*(e.values_and_grads(x) for e in enrichments), strict=True)
    return jnp.concatenate(vals), jnp.concatenate(grads)
