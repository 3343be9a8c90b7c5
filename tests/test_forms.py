"""Forms written by hand: a non-symmetric convection–diffusion form solved and differentiated,
the structure the engine reads off a form, and bad forms caught before a solve."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import lshape_with_hole_and_crack

import nmm
from nmm.kernels import bind


class ConvectionDiffusion(nmm.Form):
    """-∇·(k∇u) + b·∇u = f: no energy, so the form is its weak residual (r0, r1)."""

    k: float = 1.0
    b: tuple = (1.0, 0.5)
    f: object = 0.0

    def residual(self, x, u, du, params):
        return jnp.asarray(self.b) @ du - nmm.value(self.f, x, params), self.k * du


def exact(x):
    return jnp.sin(2 * x[0] + 0.5) * jnp.cos(1.5 * x[1]) + jnp.exp(0.3 * x[0] * x[1])


def convection_problem(k=0.5, b=(1.0, 0.5)):
    def f(x):
        return -k * jnp.trace(jax.hessian(exact)(x)) + jnp.asarray(b) @ jax.grad(exact)(x)

    flux = lambda x, n: k * jnp.dot(jax.grad(exact)(x), n)  # noqa: E731
    return ConvectionDiffusion(k=k, b=b, f=f, dirichlet=exact, crack_neumann=flux)


def test_engine_reads_the_form_structure():
    """Linearity and the zero tangent blocks come from the form's jaxpr, not from declarations."""
    k = bind(convection_problem(), None, 1, 2)
    assert k.linear and not k.symmetric and k.blocks == ("ug", "gg")
    k = bind(nmm.Poisson(f=1.0), None, 1, 2)
    assert k.linear and k.symmetric and k.blocks == ("gg",)
    k = bind(nmm.Poisson(c=2.0), None, 1, 2)
    assert k.blocks == ("uu", "gg")
    k = bind(nmm.Elasticity(), None, 2, 2)
    assert k.linear and k.symmetric and k.blocks == ("gg",)


@pytest.mark.parametrize("p", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_convection_diffusion_converges(dom2d, p):
    """Galerkin NMM for a non-symmetric form on the cracked L-shape with a hole: L2 rate p + 2
    between the two finest covers."""
    problem = convection_problem()
    hs = [0.2, 0.1] if p == 1 else [0.2, 0.13]
    errs = []
    for h in hs:
        V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom2d, h, offset=(0.37, 0.21)), dom2d, degree=p)
        u = nmm.solve(V, problem)
        assert int(u.info.result) == 0
        errs.append(nmm.errors(u, exact)["L2"])
    rate = np.diff(np.log(errs))[-1] / np.diff(np.log(hs))[-1]
    assert abs(rate - (p + 2)) < 0.3, (errs, rate)


def test_convection_diffusion_gradient_uses_the_transpose_solve():
    dom = lshape_with_hole_and_crack()
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.3, offset=(0.37, 0.21)), dom, degree=1)
    pts = jnp.array([[0.3, 0.2], [1.6, 0.5], [0.5, 1.5]])

    def loss(b):
        u = nmm.solve(V, ConvectionDiffusion(k=0.5, b=b, f=1.0, dirichlet=0.0))
        return jnp.sum(u(pts) ** 2)

    b = jnp.array([2.0, -1.0])
    g = jax.grad(loss)(b)
    h = 1e-5
    fd = np.array([(loss(b + h * e) - loss(b - h * e)) / (2 * h) for e in jnp.eye(2)])
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    # the operator is not symmetric, so a wrong (untransposed) adjoint would differ
    K, _ = nmm.assemble(V, ConvectionDiffusion(k=0.5, b=b, f=1.0, dirichlet=0.0))
    A = K.to_scipy()
    assert abs(A - A.T).max() > 1e-3 * abs(A).max()


def test_user_energy_form_equals_poisson():
    """Reaction–diffusion written by hand as an energy gives the built-in Poisson solution."""

    class ReactionDiffusion(nmm.Form):
        r: float = 3.0

        def energy(self, x, u, du, params):
            return 0.5 * du @ du + 0.5 * self.r * u**2 - jnp.sin(x[0]) * u

    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.2, offset=(0.1, 0.05)), dom, degree=2)
    g = lambda x: x[0] * x[1]  # noqa: E731
    mine = nmm.solve(V, ReactionDiffusion(dirichlet=g))
    ref = nmm.solve(V, nmm.Poisson(c=3.0, f=lambda x: jnp.sin(x[0]), dirichlet=g))
    # the fields, not the coefficients: hats x P_p are a frame, and the null-space part of the
    # coefficients follows the rounding of each assembly (measured field agreement 1e-15)
    pts = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (50, 2)))
    np.testing.assert_allclose(mine(pts), ref(pts), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mine.grad(pts), ref.grad(pts), rtol=1e-10, atol=1e-12)


def test_reaction_term_is_assembled():
    """c > 0 with a manufactured solution: a halved or dropped c u term fails this."""
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.1, offset=(0.03, 0.07)), dom, degree=2)
    ex = lambda x: jnp.exp(x[0]) * jnp.cos(x[1])  # noqa: E731  (harmonic: -Δu = 0)
    c = 50.0
    u = nmm.solve(V, nmm.Poisson(c=c, f=lambda x: c * ex(x), dirichlet=ex))
    assert nmm.errors(u, ex)["L2"] < 1e-6


def test_bad_forms_are_reported_before_solving():
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.5), dom, degree=1)

    class WrongShape(nmm.Form):
        def residual(self, x, u, du, params):
            return jnp.zeros(3), du

    with pytest.raises(ValueError, match=r"WrongShape.residual must return \(r0, r1\) of shapes"):
        nmm.solve(V, WrongShape(dirichlet=0.0))

    class VectorEnergy(nmm.Form):
        def energy(self, x, u, du, params):
            return du  # not a scalar

    with pytest.raises(ValueError, match=r"VectorEnergy.energy must return a scalar, got shape \(2,\)"):
        nmm.solve(V, VectorEnergy(dirichlet=0.0))

    class Nothing(nmm.Form):
        pass

    with pytest.raises(NotImplementedError, match="Nothing defines neither energy"):
        nmm.solve(V, Nothing(dirichlet=0.0))

    with pytest.raises(ValueError, match=r"Elasticity has 2 component\(s\) but the space has 1"):
        nmm.solve(V, nmm.Elasticity(dirichlet=jnp.zeros(2)))
    V2 = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.5), dom, degree=1, components=2)
    with pytest.raises(ValueError, match=r"the Dirichlet value must return a scalar or shape \(2,\)"):
        nmm.solve(V2, nmm.Elasticity(dirichlet=lambda x: jnp.zeros(3)))
    with pytest.raises(ValueError, match="Elasticity: no Dirichlet boundary of the displacement"):
        nmm.solve(V2, nmm.Elasticity(dirichlet=nmm.Dirichlet(0.0, on=lambda p: p[:, 0] > 5)))
    with pytest.raises(ValueError, match="do not fix the null space"):
        nmm.solve(
            V2,
            nmm.Elasticity(dirichlet=nmm.Dirichlet(0.0, on=lambda p: p[:, 0] < 1e-9, components=(0,))),
        )
    with pytest.raises(ValueError, match=r"dirichlet\[0\].components: component 2 does not exist"):
        nmm.solve(V2, nmm.Elasticity(dirichlet=nmm.Dirichlet(0.0, components=(2,))))
    with pytest.raises(ValueError, match="nu must be in"):
        nmm.Elasticity(nu=0.5)
    for nu in (-1.0, -1.5):  # the lower end too (found by mutation testing)
        with pytest.raises(ValueError, match="nu must be in"):
            nmm.Elasticity(nu=nu)
    with pytest.raises(ValueError, match="E must be positive"):
        nmm.Elasticity(E=-1.0)
    with pytest.raises(ValueError, match="plane must be one of"):
        nmm.Elasticity(plane="3d")
    with pytest.raises(ValueError, match="components must be an integer >= 1, got 0"):
        nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.5), dom, degree=1, components=0)
    with pytest.raises(TypeError, match="k must be a real number, an array or a callable"):
        nmm.Poisson(k="one")
    with pytest.raises(ValueError, match="k as a matrix must be positive definite"):
        nmm.Poisson(k=np.array([[1.0, 0.0], [0.0, -1.0]]))


def test_anisotropic_conductivity():
    """k as a constant SPD matrix: u = x² − xy + 2y² has -∇·(k∇u) = -tr(k H) with H its Hessian."""
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.25, offset=(0.1, 0.05)), dom, degree=1)
    k = np.array([[2.0, 0.5], [0.5, 1.0]])
    ex = lambda x: x[0] ** 2 - x[0] * x[1] + 2 * x[1] ** 2  # noqa: E731
    H = np.array([[2.0, -1.0], [-1.0, 4.0]])
    u = nmm.solve(V, nmm.Poisson(k=k, f=-float(np.sum(k * H)), dirichlet=ex))
    assert nmm.errors(u, ex)["max"] < 1e-10  # degree 2 is reproduced by hats × P1


@pytest.mark.parametrize("n, dim", [(1, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("nitsche", [True, False])
def test_boundary_terms_of_affine_fluxes(n, dim, nitsche):
    """The closed-form boundary residual and tangent used for linear forms equal autodiff of the
    general boundary residual (which nonlinear forms use)."""
    from nmm.forms import boundary as bc

    rng = np.random.default_rng(n + 10 * dim)
    S = jnp.asarray(rng.standard_normal((n, dim, n, 1 + dim)))
    s0 = jnp.asarray(rng.standard_normal((n, dim)))
    flux = lambda z: s0 + jnp.einsum("cdeb,eb->cd", S, z)  # noqa: E731
    z = jnp.asarray(rng.standard_normal((n, 1 + dim)))
    normal = jnp.asarray(rng.standard_normal(dim))
    g, h = jnp.asarray(rng.standard_normal(n)), jnp.asarray(rng.standard_normal(n))
    m = jnp.asarray(rng.integers(0, 2, n), dtype=float).at[0].set(1.0)
    r1 = bc.weak(flux, z, normal, g, m, h, 3.0, nitsche)
    T1 = jax.jacfwd(lambda zz: bc.weak(flux, zz, normal, g, m, h, 3.0, nitsche))(z)
    r2, T2 = bc.weak_linear(flux(z), jax.jacfwd(flux)(z), z, normal, g, m, h, 3.0, nitsche)
    np.testing.assert_allclose(r2, r1, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(T2, T1, rtol=1e-13, atol=1e-13)
    # and the residual is the derivative of the boundary energy, the tangent its Hessian
    energy = lambda zz: bc.energy(flux, zz, normal, g, m, h, 3.0, nitsche)  # noqa: E731
    np.testing.assert_allclose(jax.grad(energy)(z), r1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jax.hessian(energy)(z), T1, rtol=1e-12, atol=1e-12)


def test_linearity_is_never_claimed_for_a_nonlinear_residual():
    """The affine analysis of the residual's jaxpr: loops, stop_gradient, padding with the state
    and casts of the state are nonlinear (or opaque), so these forms go to Newton."""

    def delayed(u):  # u passed through a loop
        return jax.lax.fori_loop(0, 2, lambda i, c: (c[0], c[0], c[1]), (u, 0 * u, 1 + 0 * u))[2]

    residuals = {
        "loop": lambda u, du: (50 * delayed(u) ** 3 - 10, du),
        "stop_gradient": lambda u, du: (50 * jax.lax.stop_gradient(u) ** 3 - 10, du),
        "pad": lambda u, du: (5 * jnp.sum(jnp.pad(jnp.zeros(2), 1, constant_values=u) ** 2), du),
        "cast": lambda u, du: (u.astype(int) * 1.0, du),
        "product": lambda u, du: (0 * u, u * du),
    }
    for name, fn in residuals.items():

        class F(nmm.Form):
            def residual(self, x, u, du, params, fn=fn):
                return fn(u, du)

        k = bind(F(), None, 1, 2)
        assert not k.linear, name
    assert bind(ConvectionDiffusion(), None, 1, 2).linear

    # padding with the state is not a zero block (the pad value is the state)
    class Pad(nmm.Form):
        def residual(self, x, u, du, params):
            return 5 * jnp.sum(jnp.pad(jnp.zeros(2), 1, constant_values=u) ** 2), du

    assert "uu" in bind(Pad(), None, 1, 2).blocks


def test_boundary_data_only_where_their_condition_holds():
    """log(x) as Dirichlet data on the edge x = 1 is NaN at x = 0, where it does not hold: it
    must not reach the solve (nor the Ritz task)."""
    from nmm_nn import Task

    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, 0.25, offset=(0.05, 0.1)), dom, degree=1)
    right = nmm.Dirichlet(lambda x: jnp.log(x[0]) + x[1], on=lambda p: p[:, 0] > 1 - 1e-9)
    left = nmm.Dirichlet(lambda x: x[1], on=lambda p: p[:, 0] < 1e-9)
    form = nmm.Poisson(dirichlet=[right, left], neumann=lambda x, n: n[1])  # u = y
    u = nmm.solve(V, form)
    assert int(u.info.result) == 0
    np.testing.assert_allclose(u(jnp.array([[0.5, 0.3], [0.2, 0.9]])), [0.3, 0.9], atol=1e-10)
    assert np.isfinite(float(Task.pde(form, V).loss(lambda x: x[1])))


def test_a_clamped_edge_that_is_one_boundary_piece_fixes_rigid_motions():
    plate = nmm.Domain.polygon([(0, 0), (4, 0), (4, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.grid(plate, 2.0), plate, degree=1, components=2)
    clamp = nmm.Dirichlet(jnp.zeros(2), on=lambda p: p[:, 0] < 1e-9)
    u = nmm.solve(V, nmm.Elasticity(dirichlet=clamp, neumann=lambda x, n: jnp.array([0.0, 1e-3])))
    assert int(u.info.result) == 0
    with pytest.raises(ValueError, match="dirichlet_on applies to plain Dirichlet data"):
        nmm.solve(V, nmm.Elasticity(dirichlet=clamp, dirichlet_on=lambda p: p[:, 0] < 1e-9))


@pytest.mark.parametrize(
    "k",
    [2.5, np.array([[2.0, 0.3], [0.3, 1.0]]), lambda x: jnp.array([[1.0 + x[0], 0.4], [-0.2, 2.0]])],
)
def test_poisson_residual_is_the_gradient_of_its_energy(k):
    """Poisson's closed-form residual (it skips autodiff of the energy to trace less) equals the
    energy's gradient, for a scalar, a symmetric matrix and a non-symmetric callable k, whose
    energy sees only the symmetric part."""
    prob = nmm.Poisson(k=k, c=lambda x: 0.5 + x[1] ** 2, f=lambda x: jnp.sin(3 * x[0]))
    rng = np.random.default_rng(4)
    for _ in range(5):
        x, u, du = jnp.asarray(rng.random(2)), jnp.asarray(rng.random()), jnp.asarray(rng.random(2))
        got = prob.residual(x, u, du, None)
        want = jax.grad(prob.energy, argnums=(1, 2))(x, u, du, None)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-14, atol=1e-15)
    assert prob.is_symmetric and prob.is_variational


@pytest.mark.parametrize(
    "k",
    [
        2.5,
        np.array([[2.0, 0.3], [0.3, 1.0]]),
        lambda x: jnp.array([[1.0 + x[0], 0.4], [-0.2, 2.0]]),
        lambda x: jnp.array([[1.0 + x[0], 0.4], [-0.2, 2.0]], jnp.float32),
    ],
)
def test_poisson_penalty_scale_is_the_engines_bound(k):
    """Poisson's closed-form penalty scale (no jacfwd in its boundary kernel) is the bound the
    engine takes otherwise: Gershgorin's on the symmetric part of ∂σ/∂∇u, to the last bit (a
    float32 k included: the bound is taken in the point's precision, as the default does)."""
    prob = nmm.Poisson(k=k)
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = jnp.asarray(rng.random(2))
        d = jax.jacfwd(lambda g, x=x: prob.residual(x, jnp.asarray(0.0), g, None)[1])(jnp.zeros(2))
        d = 0.5 * (d + d.T)
        want = jnp.max(jnp.diagonal(d) + jnp.sum(jnp.abs(d), axis=1) - jnp.abs(jnp.diagonal(d)))
        assert float(prob.penalty_scale(x, None)) == float(want)


def test_poisson_subclasses_keep_their_own_physics():
    """A subclass that overrides the energy gets that energy's gradient (not Poisson's closed
    form), and one that overrides the residual is not declared symmetric."""
    from nmm.forms.data import value

    class DoubleReaction(nmm.Poisson):
        def energy(self, x, u, du, params):
            return super().energy(x, u, du, params) + 0.5 * value(self.c, x, params) * u * u

    class Convected(nmm.Poisson):
        def residual(self, x, u, du, params):
            r0, r1 = super().residual(x, u, du, params)
            return r0 + du[0], r1

    x, u, du = jnp.array([0.2, 0.3]), jnp.asarray(0.7), jnp.array([0.1, -0.4])
    sub = DoubleReaction(c=3.0, f=1.0)
    want = jax.grad(sub.energy, argnums=(1, 2))(x, u, du, None)
    np.testing.assert_allclose(float(sub.residual(x, u, du, None)[0]), float(want[0]), rtol=1e-14)
    assert sub.is_symmetric
    assert not Convected().is_symmetric and nmm.Poisson().is_symmetric
    # their penalty scale is the engine's bound on their own tangent, not Poisson's k
    assert sub.penalty_scale(x, None) is None and Convected().penalty_scale(x, None) is None
