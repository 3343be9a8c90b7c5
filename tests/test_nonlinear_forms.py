"""The library's nonlinear forms (nmm.PowerReaction, NonlinearDiffusion, AllenCahn, Bratu,
PLaplacian, NeoHookean) on manufactured solutions: the source from ``nmm.manufactured_source``,
the exact flux of the form's own residual on the crack faces, Newton quadratic, errors as small as
Poisson's on the same space, optimal h-rates (slow), NeoHookean = Elasticity at u = 0, and bad
input refused with the argument named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_newton import convergence_orders  # noqa: E402  (the tests directory is on the path)

import nmm


def exact(x):
    return jnp.sin(2 * x[0] + 0.5) * jnp.cos(1.5 * x[1]) + 0.5 * x[0] * x[1]


# name -> constructor with the given data; without data: the form whose residual manufactures the
# source and the crack flux
FORMS = {
    "power_m3": lambda **kw: nmm.PowerReaction(m=3, **kw),
    "power_m9": lambda **kw: nmm.PowerReaction(m=9, **kw),
    "diffusion": lambda **kw: nmm.NonlinearDiffusion(**kw),
    "allen_cahn": lambda **kw: nmm.AllenCahn(eps=0.3, **kw),
    "bratu": lambda **kw: nmm.Bratu(lam=1.0, **kw),
    # the Nitsche scale: about the largest |∇u|^2 (p - 1) of the solution
    "p_laplacian": lambda **kw: nmm.PLaplacian(p=4, stiffness=10.0, **kw),
}


def manufactured(make):
    """``make``'s problem with the solution ``exact``: source, Dirichlet data on ∂Ω and the exact
    flux r1(u, ∇u)·n on the crack faces."""
    base = make()
    f = nmm.manufactured_source(base, exact)
    flux = lambda x, n: jnp.dot(base.residual(x, exact(x), jax.grad(exact)(x), None)[1], n)  # noqa: E731
    return make(f=f, dirichlet=exact, crack_neumann=flux)


def space_on(dom, h, p):
    return nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h, offset=(0.37, 0.21)), dom, degree=p)


# ------------------------------------------------------------------------ fast: one space, all forms
# every (form, space shape) is one compilation (~5-10 s): all scalar forms share one space


@pytest.fixture(scope="module")
def space(dom2d):
    return space_on(dom2d, 0.2, 1)


@pytest.fixture(scope="module")
def poisson(space):
    u = nmm.solve(space, manufactured(lambda **kw: nmm.Poisson(**kw)))
    return u, nmm.errors(u, exact)


@pytest.fixture(scope="module")
def solved(space, poisson):
    """name -> (problem, solution), each solved once (a new problem is a new compilation)."""
    cache = {}

    def get(name):
        if name not in cache:
            problem = manufactured(FORMS[name])
            # the p-Laplacian is degenerate at ∇u = 0: Newton starts from the Poisson solution
            x0 = poisson[0].coeffs if name == "p_laplacian" else None
            cache[name] = problem, nmm.solve(space, problem, x0=x0)
        return cache[name]

    return get


# Bratu's manufactured solve runs in the slow suite (fast: its continuation and suite problem)
@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in ("bratu", "allen_cahn") else n for n in FORMS],
)
def test_manufactured_solution_newton_quadratic(name, solved, poisson, capsys):
    _, u = solved(name)
    hist = u.info.newton_history()
    e, ep = nmm.errors(u, exact), poisson[1]
    orders = convergence_orders(hist)
    with capsys.disabled():
        print(
            f"\n{name}: L2 {e['L2']:.3e} (Poisson {ep['L2']:.3e}), H1 {e['H1']:.3e} "
            f"(Poisson {ep['H1']:.3e}), Newton |R_k| = {np.array2string(hist, precision=2)}, "
            f"orders {np.round(orders, 2)}"
        )
    assert int(u.info.result) == 0 and 1 <= int(u.info.newton_steps) <= 10
    # the nonlinearity costs (almost) no accuracy: the same space's Poisson error, within 1.5
    assert e["L2"] < 1.5 * ep["L2"] and e["H1"] < 1.5 * ep["H1"], (e, ep)
    assert e["L2"] < 2e-3 and e["H1"] < 2e-2
    assert hist[-1] <= 1e-10 * hist[0]
    if name == "p_laplacian":
        # from the Poisson solution there are only 3 steps, and the residual norm's constant
        # r_{k+1} / r_k^2 changes between them (0.01, then 0.3): the estimate is ~1.7 here;
        # test_p_laplacian_newton_is_quadratic measures the order by the start instead
        assert orders and max(orders) > 1.5, (hist, orders)
    else:
        assert orders and max(orders) > 1.8, (hist, orders)  # quadratic: q → 2


def test_p_laplacian_newton_is_quadratic(space, solved, poisson):
    """Start Newton at x* + t (x_Poisson − x*) for t and t / 3: the first residual must fall by
    3² = 9 times more (same compiled solve: x0 is an array)."""
    problem, u = solved("p_laplacian")
    xs, xp = u.coeffs, poisson[0].coeffs
    first = []
    for t in (0.3, 0.1):
        v = nmm.solve(space, problem, x0=xs + t * (xp - xs))
        hist = v.info.newton_history()
        assert int(v.info.result) == 0
        first.append(hist[:2])
    (r0a, r1a), (r0b, r1b) = first
    q = np.log(r1a / r1b) / np.log(r0a / r0b)
    assert 1.8 < q < 2.2, (first, q)


def test_higher_power_needs_no_more_newton_steps(solved):
    s3 = int(solved("power_m3")[1].info.newton_steps)
    s9 = int(solved("power_m9")[1].info.newton_steps)
    assert s9 <= s3 + 1, (s3, s9)


# ------------------------------------------------------------------------ NeoHookean


def plate_with_hole() -> nmm.Domain:
    th = np.linspace(0, 2 * np.pi, 33)[:-1]
    hole = np.c_[0.5 + 0.2 * np.cos(th), 0.5 + 0.2 * np.sin(th)]
    return nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)], holes=[hole])


def outer_edges(pts):
    return (np.abs(pts[:, 0] - 0.5) > 0.5 - 1e-9) | (np.abs(pts[:, 1] - 0.5) > 0.5 - 1e-9)


def displacement(x):
    """Zero on the unit square's edges; |∇u| up to 0.38, J = det F in [0.62, 1.24]."""
    s = jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])
    return 0.06 * jnp.array([s * (1 + x[0]), 0.5 * jnp.sin(2 * jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1])])


E, NU = 10.0, 0.3


def hyperelastic_data():
    """Body force, clamped outer edges (the exact displacement, zero there) and the exact
    traction P n on the hole, for NeoHookean; the same data for Elasticity."""
    material = nmm.NeoHookean(E=E, nu=NU)
    traction = lambda x, n: material.stress(x, jax.jacfwd(displacement)(x), None) @ n  # noqa: E731
    return dict(
        body_force=nmm.manufactured_source(material, displacement),
        dirichlet=displacement,
        dirichlet_on=outer_edges,
        neumann=traction,
    )


@pytest.fixture(scope="module")
def plate():
    dom = plate_with_hole()
    cover = nmm.MathCover.triangles(dom, 0.25, offset=(0.07, 0.03))
    return nmm.ManifoldSpace(cover, dom, degree=2, components=2)


def test_neo_hookean_manufactured_large_deformation(plate, capsys):
    g = jnp.asarray(np.stack(np.meshgrid(*2 * [np.linspace(0, 1, 41)]), -1).reshape(-1, 2))
    J = jnp.linalg.det(jnp.eye(2) + jax.vmap(jax.jacfwd(displacement))(g))
    assert 0.5 < float(J.min()) < 0.7 and 1.2 < float(J.max()) < 1.3  # large, admissible
    u = nmm.solve(plate, nmm.NeoHookean(E=E, nu=NU, **hyperelastic_data()))
    hist = u.info.newton_history()
    e = nmm.errors(u, displacement)
    orders = convergence_orders(hist)
    with capsys.disabled():
        print(
            f"\nNeoHookean: {e}, Newton |R_k| = {np.array2string(hist, precision=2)}, orders "
            f"{np.round(orders, 2)}"
        )
    assert int(u.info.result) == 0 and int(u.info.newton_steps) <= 10
    assert orders and max(orders) > 1.8, (hist, orders)
    # the linear model with the same data is ~0.2 off (L2); the nonlinear one is a p = 2 error
    assert e["L2"] < 4e-3 and e["H1"] < 2.5e-2, e


@pytest.mark.slow  # fast: the large-deformation manufactured solve
def test_neo_hookean_tangent_at_rest_is_linear_elasticity(plate):
    """At u = 0 (with Dirichlet data zero there: the Nitsche terms' second derivative of the
    stress multiplies u − g) the tangent and the residual are those of Elasticity, λ and μ alike."""
    data = hyperelastic_data()
    Kn, Rn = nmm.assemble(plate, nmm.NeoHookean(E=E, nu=NU, **data))
    Ke, Re = nmm.assemble(plate, nmm.Elasticity(E=E, nu=NU, **data))
    np.testing.assert_array_equal(Kn.rows, Ke.rows)
    np.testing.assert_array_equal(Kn.cols, Ke.cols)
    scale = float(jnp.abs(Ke.data).max())
    np.testing.assert_allclose(Kn.data, Ke.data, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(Rn, Re, rtol=0, atol=1e-12 * float(jnp.abs(Re).max()))


@pytest.mark.slow
@pytest.mark.parametrize("p", [1, 2])
def test_neo_hookean_h_rates_large_deformation(p, capsys):
    """The plate with a hole at J in [0.62, 1.24]: the rates of the linear problem's spaces."""
    dom, hs = plate_with_hole(), [0.25, 0.125, 0.0625]
    problem = nmm.NeoHookean(E=E, nu=NU, **hyperelastic_data())
    l2, h1, steps = [], [], []
    for h in hs:
        cover = nmm.MathCover.triangles(dom, h, offset=(0.07, 0.03))
        u = nmm.solve(nmm.ManifoldSpace(cover, dom, degree=p, components=2), problem)
        assert int(u.info.result) == 0
        e = nmm.errors(u, displacement)
        l2.append(e["L2"])
        h1.append(e["H1"])
        steps.append(int(u.info.newton_steps))
    rate = lambda err: np.diff(np.log(err)) / np.diff(np.log(hs))  # noqa: E731
    with capsys.disabled():
        print(
            f"\nNeoHookean p = {p}: L2 {l2} rates {rate(l2)}, H1 {h1} rates {rate(h1)}, "
            f"Newton steps {steps}"
        )
    assert abs(rate(l2)[-1] - (p + 2)) < 0.3, (l2, rate(l2))
    assert abs(rate(h1)[-1] - (p + 1)) < 0.3, (h1, rate(h1))


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: nmm.PLaplacian(p=1.0), "p"),
        (lambda: nmm.PLaplacian(p=0.5), "p"),
        (lambda: nmm.PLaplacian(stiffness=0.0), "stiffness"),
        (lambda: nmm.PLaplacian(stiffness=-1.0), "stiffness"),
        (lambda: nmm.PowerReaction(m=0), "m"),
        (lambda: nmm.PowerReaction(m=2.5), "m"),
    ],
)
def test_bad_exponents_and_scales_are_refused(make, arg):
    with pytest.raises(ValueError, match=rf"^{arg} must"):
        make()


# ------------------------------------------------------------------------ slow: h-rates
# hats × degree-p polynomials reproduce degree p + 1: L2 rate p + 2 and H1 rate p + 1 (one above
# the optimal p + 1 / p of a degree-p space; see test_newton and the README's table), measured by
# benchmarks/nonlinear_rates.py for these forms as for Poisson


@pytest.mark.slow
@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("name", ["power_m9", "diffusion", "p_laplacian"])
def test_h_rates(dom2d, name, p, capsys):
    hs = [0.4, 0.2, 0.1]
    problem = manufactured(FORMS[name])
    pois = manufactured(lambda **kw: nmm.Poisson(**kw))
    l2, h1 = [], []
    for h in hs:
        V = space_on(dom2d, h, p)
        x0 = nmm.solve(V, pois).coeffs if name == "p_laplacian" else None
        u = nmm.solve(V, problem, x0=x0)
        assert int(u.info.result) == 0
        e = nmm.errors(u, exact)
        l2.append(e["L2"])
        h1.append(e["H1"])
    rate = lambda err: np.diff(np.log(err)) / np.diff(np.log(hs))  # noqa: E731
    with capsys.disabled():
        print(f"\n{name}, p = {p}: L2 {l2} rates {rate(l2)}, H1 {h1} rates {rate(h1)}")
    assert abs(rate(l2)[-1] - (p + 2)) < 0.3, (l2, rate(l2))
    assert abs(rate(h1)[-1] - (p + 1)) < 0.3, (h1, rate(h1))
