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
  on ∂Ω: the re-entrant corner singularity (u ∉ H², so every method's rate is capped);
* ``bratu``: u'' + 3 eᵘ = 0 on [0, 1], u(0) = u(1) = 0, the lower branch (closed form);
* ``nonlinear-m`` (m in 3, 5, 7, 9): -Δu + u^m = f on the unit square with a disk hole,
  u = ½ sin(πx) e^y: the polynomial nonlinearity of order m;
* ``allen-cahn``: u_t = ε²u_xx + u - u³ + f, ε = 0.05, on [-1, 1], t in [0, 1], an interface
  tanh((x + ½ - t/2)/(√2 ε)) moving across the interval (steady Allen–Cahn with an interface has
  several solutions, so the suite's problem is the well-posed initial-value one);
* ``heat``: u_t - Δu = f on the unit square, t in [0, 1], u = e^{-t} sin(πx) sin(πy);
* ``burgers``: u_t + u u_x = ν u_xx, ν = 0.01/π, x in [-1, 1], t in [0, 1], u(x, 0) = -sin πx,
  u(±1, t) = 0 (the PINN classic), against the Cole–Hopf solution.

Steady nonlinear problems are solved by Newton and trained on their Ritz energy; time-dependent
ones are stepped by ``nmm.integrate`` and trained on the space-time PINN residual
(:class:`nmm_nn.SpaceTimeTask`), both measured on one space-time grid.
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
        kind: ``"fit"``, ``"poisson"``, ``"pde"`` (a nonlinear form) or ``"transient"``.
        domain: the :class:`nmm.Domain`.
        exact: the exact solution, a jax callable of one point.
        poisson: the form: :class:`nmm.Poisson`, or any :class:`nmm.Form` for ``"pde"`` and
            ``"transient"`` problems (None for fits). Transient forms take data ``fn(x, t)`` and
            their exact solution is ``exact(x, t)``.
        extent: length of the domain's bounding box side (a cover of ``cells`` cells per side has
            cell size ``extent / cells``).
        quadrature: ``(cells, degree)`` of the NMM space whose quadrature defines the functional
            every trained method minimises and every method is measured on (its error rule).
        info: problem constants (coefficients, frequencies, phases) for reports.
        transient: ``(t_span, u0, dt, method, save_every)`` of a transient problem: what
            ``nmm.integrate`` is given.
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
    transient: tuple | None = None
    grading: float = 1.0  # 1D covers: nodes c + w sign(s)|s|^grading, s uniform in [-1, 1]

    def cover(self, cells: int, offset=(0.0, 0.0)) -> nmm.MathCover:
        """A mathematical cover with ``cells`` cells per side of the bounding box."""
        if isinstance(cells, bool) or not isinstance(cells, int | np.integer) or cells < 1:
            raise ValueError(f"cells must be a positive integer, got {cells!r}")
        if self.dim == 1 and self.grading != 1.0:
            # graded towards the interval's middle (Burgers' front at x = 0)
            a, b = self.domain.outer
            t = np.linspace(-1.0, 1.0, int(cells) + 1)
            nodes = 0.5 * (a + b) + 0.5 * (b - a) * np.sign(t) * np.abs(t) ** self.grading
            nodes[0], nodes[-1] = a, b
            return nmm.MathCover.intervals(self.domain, nodes=nodes)
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
        if self.kind == "transient":
            from nmm_nn import SpaceTimeTask

            t_span, u0 = self.transient[:2]
            return SpaceTimeTask.build(self.poisson, space, t_span, u0, exact=self.exact)
        return Task.poisson(self.poisson, space, form=form, exact=self.exact)

    def solve(self, space: nmm.ManifoldSpace):
        """The NMM solution on ``space``: ``nmm.fit``, ``nmm.solve`` (Newton for nonlinear
        forms) or, for transient problems, the :class:`nmm.History` of ``nmm.integrate``."""
        if self.kind == "fit":
            return nmm.fit(space, self.exact)
        if self.kind == "transient":
            t_span, u0, dt, method, every = self.transient
            return nmm.integrate(space, self.poisson, u0, t_span, dt, method=method, save_every=every)
        return nmm.solve(space, self.poisson)


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


def _bratu(seed: int) -> Problem:
    from .exact_nonlinear import bratu1d_theta

    lam = 3.0
    theta = bratu1d_theta(lam)[0]  # the lower branch: the one Newton from zero finds

    def exact(x):
        return -2.0 * jnp.log(jnp.cosh((x[0] - 0.5) * theta / 2) / jnp.cosh(theta / 4))

    return Problem(
        "bratu",
        "1D Bratu u'' + 3eᵘ = 0 on [0, 1], u(0) = u(1) = 0, lower branch (closed form)",
        1,
        "pde",
        nmm.Domain.interval(0.0, 1.0),
        exact,
        nmm.Bratu(lam=lam, dirichlet=0.0),
        quadrature=(64, 1),
        info={"lam": lam, "theta": float(theta)},
    )


def nonlinear_exact(x):
    return 0.5 * hole_exact(x)


def _nonlinear(m: int, seed: int) -> Problem:
    th = np.linspace(0, 2 * np.pi, 49)[:-1]
    hole = np.c_[0.55 + 0.2 * np.cos(th), 0.45 + 0.2 * np.sin(th)]
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)], holes=[hole])
    f = nmm.manufactured_source(nmm.PowerReaction(m=m), nonlinear_exact)
    return Problem(
        f"nonlinear-{m}",
        f"2D -Δu + u^{m} = f on the unit square with a disk hole, u = ½ sin(πx) e^y",
        2,
        "pde",
        dom,
        nonlinear_exact,
        nmm.PowerReaction(m=m, f=f, dirichlet=nonlinear_exact),
        info={"m": m},
    )


AC_EPS, AC_SPEED = 0.05, 0.5


def allen_cahn_exact(x, t):
    """A moving interface: tanh((x + 0.5 - vt)/(√2 ε)) solves u_t = ε²u_xx + u - u³ + f with
    f = u_t (the profile is a standing solution of the rest)."""
    return jnp.tanh((x[0] + 0.5 - AC_SPEED * t) / (jnp.sqrt(2.0) * AC_EPS))


def _allen_cahn(seed: int) -> Problem:
    def f(x, t):
        return jax.jvp(lambda s: allen_cahn_exact(x, s), (t,), (jnp.ones_like(t),))[1]

    return Problem(
        "allen-cahn",
        f"1D Allen–Cahn u_t = ε²u_xx + u - u³ + f, ε = {AC_EPS}, an interface moving at "
        f"{AC_SPEED} across [-1, 1], t in [0, 1]",
        1,
        "transient",
        nmm.Domain.interval(-1.0, 1.0),
        allen_cahn_exact,
        nmm.AllenCahn(eps=AC_EPS, f=f, dirichlet=lambda x, t: allen_cahn_exact(x, t)),
        extent=2.0,
        quadrature=(128, 1),
        transient=((0.0, 1.0), lambda x: allen_cahn_exact(x, 0.0), 0.005, "bdf2", 2),
        info={"eps": AC_EPS, "speed": AC_SPEED},
    )


def heat_exact(x, t):
    return jnp.exp(-t) * jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])


def _heat(seed: int) -> Problem:
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    form = nmm.Poisson(
        f=lambda x, t: (2 * jnp.pi**2 - 1.0) * heat_exact(x, t),
        dirichlet=lambda x, t: 0.0 * t,
    )
    return Problem(
        "heat",
        "2D heat u_t - Δu = f on the unit square, t in [0, 1], u = e^{-t} sin(πx) sin(πy)",
        2,
        "transient",
        dom,
        heat_exact,
        form,
        quadrature=(8, 1),
        transient=((0.0, 1.0), lambda x: heat_exact(x, 0.0), 0.01, "bdf2", 10),
    )


def _burgers(seed: int) -> Problem:
    from .exact_nonlinear import BURGERS_NU

    return Problem(
        "burgers",
        "1D viscous Burgers, ν = 0.01/π, u(x, 0) = -sin πx, u(±1, t) = 0, t in [0, 1] (Cole–Hopf)",
        1,
        "transient",
        nmm.Domain.interval(-1.0, 1.0),
        burgers_exact(),
        nmm.Burgers(nu=BURGERS_NU, dirichlet=lambda x, t: 0.0 * t),
        extent=2.0,
        quadrature=(128, 1),
        transient=((0.0, 1.0), lambda x: -jnp.sin(jnp.pi * x[0]), 0.002, "cn", 5),
        grading=2.0,
        info={"nu": BURGERS_NU},
    )


def burgers_exact():
    """The Cole–Hopf solution as a vectorised host function (it is numpy, not traceable) with its
    x-derivative."""
    from nmm_nn import vectorised

    from .exact_nonlinear import burgers_cole_hopf, burgers_cole_hopf_x

    return vectorised(
        lambda x, t: burgers_cole_hopf(np.asarray(x)[:, 0], t),
        grad=lambda x, t: burgers_cole_hopf_x(np.asarray(x)[:, 0], t)[:, None],
    )


NONLINEAR_ORDERS = (3, 5, 7, 9)

_BUILDERS: dict[str, Callable[[int], Problem]] = {
    **{f"poly-{j}": (lambda seed, j=j: _poly(j, seed)) for j in POLY_DEGREES},
    "sines": _sines,
    "crack-jump": _crack_jump,
    "poisson-hole": _poisson_hole,
    "poisson-lshape": _poisson_lshape,
    "bratu": _bratu,
    **{f"nonlinear-{m}": (lambda seed, m=m: _nonlinear(m, seed)) for m in NONLINEAR_ORDERS},
    "allen-cahn": _allen_cahn,
    "heat": _heat,
    "burgers": _burgers,
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
