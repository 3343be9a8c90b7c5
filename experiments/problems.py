"""Benchmark problems with exact solutions: the registry every method is run on.

A :class:`Problem` knows its domain, its exact solution, how to build a cover of a given
resolution, and whether it is a fit (L2 projection of the exact solution) or a Poisson problem
(data manufactured from the exact solution). ``get(name, seed)`` builds one; ``names()`` lists them.

* ``poly-J`` (J in 2, 4, 6, 8, 10, 12, 16): fit of f(x) = Σ_{j≤J} α_j x^j on [-1, 1], α ~ N(0, 1)
  from the seed (the high-order nonlinear function of the Deep Manifold seeds);
* ``sines``: fit of Σ_k sin(2π k x + φ_k) on [0, 1], k in 5, 10, 20, 30, 40, 50, φ from the seed
  (spectral bias);
* ``crack-jump``: fit of √r sin(θ/2) on [-1, 1]² with an edge crack along y = 0, x < 0: the
  function jumps by 2√r across the crack;
* ``poisson-hole``: -Δu = f on [0, 1]² minus a disk, u = sin(πx) exp(y) on all of ∂Ω;
* ``poisson-lshape``: -Δu = 0 on the L-shape (-1, 1)² \\ [0, 1) × (-1, 0], u = r^(2/3) sin(2θ/3)
  on ∂Ω: the re-entrant corner singularity (u ∉ H², so every method's rate is capped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

import nmm

POLY_DEGREES = (2, 4, 6, 8, 10, 12, 16)
SINE_FREQUENCIES = (5, 10, 20, 30, 40, 50)


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    Attributes:
        name, description: registry name and one line saying what it is.
        dim: 1 or 2.
        kind: ``"fit"`` or ``"poisson"``.
        domain: the :class:`nmm.Domain`.
        exact: the exact solution, a jax callable of one point.
        poisson: the :class:`nmm.Poisson` problem (None for fits).
        extent: length of the domain's bounding box side (a cover of ``cells`` cells per side has
            cell size ``extent / cells``).
        quadrature: ``(cells, degree)`` of the NMM space whose quadrature defines the functional
            every trained method minimises and every method is measured on (its error rule).
        info: problem constants (coefficients, frequencies, phases) for reports.
    """

    name: str
    description: str
    dim: int
    kind: str
    domain: nmm.Domain
    exact: Callable
    poisson: nmm.Poisson | None = None
    extent: float = 1.0
    quadrature: tuple[int, int] = (16, 1)
    info: dict = field(default_factory=dict)

    def cover(self, cells: int, offset=(0.0, 0.0)) -> nmm.MathCover:
        """A mathematical cover with ``cells`` cells per side of the bounding box."""
        if isinstance(cells, bool) or not isinstance(cells, int | np.integer) or cells < 1:
            raise ValueError(f"cells must be a positive integer, got {cells!r}")
        if self.dim == 1:
            return nmm.MathCover.intervals(self.domain, int(cells))
        return nmm.MathCover.triangles(self.domain, self.extent / cells, offset=offset)

    def space(self, cells: int, degree: int, **kwargs) -> nmm.ManifoldSpace:
        return nmm.ManifoldSpace(self.cover(cells), self.domain, degree=degree, **kwargs)

    def quadrature_space(self) -> nmm.ManifoldSpace:
        """The space whose quadrature is the shared functional's (see ``quadrature``)."""
        return self.space(*self.quadrature)

    def shared(self):
        """``(quadrature space, task)``: the functional every method is trained and measured on."""
        space = self.quadrature_space()
        return space, self.task(space)

    def task(self, space: nmm.ManifoldSpace | None = None, form: str = "ritz"):
        """The :class:`nmm_nn.Task` (the functional every method minimises) on ``space``'s
        quadrature (default: the problem's quadrature space)."""
        from nmm_nn import Task

        space = self.quadrature_space() if space is None else space
        if self.kind == "fit":
            return Task.fit(self.exact, space)
        return Task.poisson(self.poisson, space, form=form, exact=self.exact)

    def solve(self, space: nmm.ManifoldSpace) -> nmm.Field:
        """The NMM solution of the problem on ``space`` (``nmm.fit`` or ``nmm.solve``)."""
        return nmm.fit(space, self.exact) if self.kind == "fit" else nmm.solve(space, self.poisson)


def _laplacian(u):
    return lambda x: jnp.trace(jax.hessian(u)(x))


def _poly(degree: int, seed: int) -> Problem:
    alpha = np.random.default_rng(seed).standard_normal(degree + 1)  # α_0 .. α_J
    coeffs = jnp.asarray(alpha[::-1])  # highest first, for polyval
    return Problem(
        f"poly-{degree}",
        f"1D fit of a random degree-{degree} polynomial on [-1, 1] (seed {seed})",
        1,
        "fit",
        nmm.Domain.interval(-1.0, 1.0),
        lambda x: jnp.polyval(coeffs, x[0]),
        extent=2.0,
        quadrature=(171, 1),  # 513 points, as in the usual MLP polynomial-fit setting
        info={"alpha": alpha.tolist(), "seed": seed},
    )


def _sines(seed: int) -> Problem:
    k = np.asarray(SINE_FREQUENCIES, float)
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, len(k))
    kj, pj = jnp.asarray(k), jnp.asarray(phase)
    return Problem(
        "sines",
        f"1D fit of Σ sin(2πkx + φ_k), k = {', '.join(map(str, SINE_FREQUENCIES))}, on [0, 1]",
        1,
        "fit",
        nmm.Domain.interval(0.0, 1.0),
        lambda x: jnp.sum(jnp.sin(2 * jnp.pi * kj * x[0] + pj)),
        quadrature=(200, 1),  # 600 points, 12 per period of the highest frequency
        info={"frequencies": list(SINE_FREQUENCIES), "phases": phase.tolist(), "seed": seed},
    )


def crack_tip(x):
    """√r sin(θ/2), θ in (-π, π]: jumps by 2√r across the negative x-axis."""
    r = jnp.sqrt(x[0] ** 2 + x[1] ** 2)
    theta = jnp.arctan2(x[1], x[0])
    return jnp.sqrt(r) * jnp.sin(theta / 2)


def _crack_jump(seed: int) -> Problem:
    dom = nmm.Domain.polygon([(-1, -1), (1, -1), (1, 1), (-1, 1)], cracks=[[(-1.0, 0.0), (0.0, 0.0)]])
    return Problem(
        "crack-jump",
        "2D fit of √r sin(θ/2) on [-1, 1]², jumping by 2√r across an edge crack",
        2,
        "fit",
        dom,
        crack_tip,
        extent=2.0,
    )


def hole_exact(x):
    return jnp.sin(jnp.pi * x[0]) * jnp.exp(x[1])


def hole_source(x):
    """-Δ of hole_exact, by hand: (π² - 1) sin(πx) e^y."""
    return (jnp.pi**2 - 1.0) * hole_exact(x)


def _poisson_hole(seed: int) -> Problem:
    th = np.linspace(0, 2 * np.pi, 49)[:-1]
    hole = np.c_[0.55 + 0.2 * np.cos(th), 0.45 + 0.2 * np.sin(th)]
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)], holes=[hole])
    prob = nmm.Poisson(f=hole_source, dirichlet=hole_exact)
    return Problem(
        "poisson-hole",
        "2D Poisson on the unit square with a disk hole, u = sin(πx) e^y",
        2,
        "poisson",
        dom,
        hole_exact,
        prob,
    )


def lshape_exact(x):
    """r^(2/3) sin(2θ/3), θ in [0, 3π/2] on the L-shape (harmonic)."""
    r2 = x[0] ** 2 + x[1] ** 2
    theta = jnp.mod(jnp.arctan2(x[1], x[0]), 2 * jnp.pi)
    return r2 ** (1.0 / 3.0) * jnp.sin(2.0 * theta / 3.0)


def _poisson_lshape(seed: int) -> Problem:
    dom = nmm.Domain.polygon([(-1, -1), (0, -1), (0, 0), (1, 0), (1, 1), (-1, 1)])
    prob = nmm.Poisson(f=0.0, dirichlet=lshape_exact)
    return Problem(
        "poisson-lshape",
        "2D Laplace on the L-shape, u = r^(2/3) sin(2θ/3) (corner singularity)",
        2,
        "poisson",
        dom,
        lshape_exact,
        prob,
        extent=2.0,
    )


_BUILDERS: dict[str, Callable[[int], Problem]] = {
    **{f"poly-{j}": (lambda seed, j=j: _poly(j, seed)) for j in POLY_DEGREES},
    "sines": _sines,
    "crack-jump": _crack_jump,
    "poisson-hole": _poisson_hole,
    "poisson-lshape": _poisson_lshape,
}


def names() -> list[str]:
    return list(_BUILDERS)


def get(name: str, seed: int = 0) -> Problem:
    """The problem ``name`` (see :func:`names`) with random constants drawn from ``seed``."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown problem {name!r}; known problems: {', '.join(names())}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return _BUILDERS[name](int(seed))
