"""Shared domains for the tests: non-convex, with a hole and cracks, covers not aligned."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nmm


def lshape_with_hole_and_crack() -> nmm.Domain:
    th = np.linspace(0, 2 * np.pi, 33)[:-1]
    outer = [(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]
    hole = np.c_[0.5 + 0.2 * np.cos(th), 0.5 + 0.2 * np.sin(th)]
    return nmm.Domain.polygon(outer, holes=[hole], cracks=[[(1.5, 0.3), (1.5, 1.2)]])


@pytest.fixture(scope="session")
def dom2d() -> nmm.Domain:
    return lshape_with_hole_and_crack()


def manufactured(exact, k=1.0):
    """Poisson data for an exact solution: source, Dirichlet data and crack-face flux."""
    lap = lambda x: jnp.trace(jax.hessian(exact)(x))  # noqa: E731
    flux = lambda x, n: k * jnp.dot(jax.grad(exact)(x), n)  # noqa: E731
    return nmm.Poisson(k=k, f=lambda x: -k * lap(x), dirichlet=exact, crack_neumann=flux)


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_caches():
    """Drop compiled executables after each test file. Every XLA CPU executable holds a few
    hundred memory maps; a suite that compiles thousands of them (a new space is a new program)
    would otherwise reach the kernel's vm.max_map_count (65530) and crash inside the compiler."""
    yield
    jax.clear_caches()


_SQUARE = [(0, 0), (1, 0), (1, 1), (0, 1)]
_HOLE = [(0.4, 0.4), (0.61, 0.4), (0.5, 0.63)]


def backend_problem(h, degree, *, hole=False, crack=False, stable=None):
    """``(space, problem, exact)``: Poisson with the exact solution sin(πx) sin(πy) + xy on the
    unit square (with a triangular hole, or cut in two by a through crack: two components of the
    cover graph), triangle covers of size ``h``: the problem solver backends are compared on."""

    def exact(x):
        return jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1]) + x[0] * x[1]

    def f(x):
        return 2 * jnp.pi**2 * jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])

    holes = [_HOLE] if hole else []
    cracks = [[(0.47, -0.1), (0.53, 1.1)]] if crack else []
    dom = nmm.Domain.polygon(_SQUARE, holes=holes, cracks=cracks)
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=h), dom, degree=degree, stable=stable)
    return V, nmm.Poisson(f=f, dirichlet=exact), exact


def assert_same_solution(u, u_ref, exact, pts, rtol: float) -> None:
    """Two solves of one problem (another solver backend) agree at ``pts`` and in L2 error."""
    np.testing.assert_allclose(np.asarray(u(pts)), np.asarray(u_ref(pts)), rtol=rtol)
    e, e_ref = (float(nmm.errors(v, exact)["L2"]) for v in (u, u_ref))
    assert abs(e - e_ref) <= 1e-6 * e_ref


def poisson_loss(V, prob, pts):
    """``loss(k, solver)``: the sum of the solution at ``pts`` for conductivity ``k``, a scalar
    to differentiate through a solver backend."""

    def loss(k, solver):
        p = nmm.Poisson(k=k, f=prob.f, dirichlet=prob.dirichlet)
        return jnp.sum(nmm.solve(V, p, solver=solver)(pts))

    return loss
