"""Linear elasticity: patch tests on a cut, cracked domain with a hole; the Timoshenko cantilever;
a manufactured convergence study; the Kirsch plate (formulas: REFERENCES.md, Elasticity)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nmm

EPS = 1e-9  # boundary masks are evaluated at midpoints of boundary pieces


def traction(form, exact):
    """t(x, n) = σ(∇u_exact) n with the form's own constitutive law."""
    return lambda x, n: form.stress(x, jax.jacfwd(exact)(x), None) @ n


def divergence(stress):
    """x -> div σ (2,) of a stress field x -> (2, 2), by autodiff."""
    return lambda x: jnp.trace(jax.jacfwd(stress)(x), axis1=1, axis2=2)


def vmap(fn, in_axes=0):
    """jit(vmap(fn)): the exact-field checks run compiled, not op by op."""
    return jax.jit(jax.vmap(fn, in_axes=in_axes))


def slope(errs, hs):
    return float(np.diff(np.log(errs))[-1] / np.diff(np.log(hs))[-1])


# ------------------------------------------------------------------------------ patch test

LIN_A = jnp.array([0.1, -0.2])
LIN_B = jnp.array([[0.3, -0.15], [0.25, -0.1]])  # not symmetric: strain and a rotation


def linear(x):
    return LIN_A + LIN_B @ x


def patch_cases():
    """Every cover, p, boundary-condition set and plane; the fast suite runs each (cover, p) once,
    the boundary-condition sets and planes alternating, so that both sets and both planes run."""
    fast = {
        ("triangles", 0, "whole", "strain"),
        ("triangles", 1, "side", "stress"),
        ("grid", 0, "side", "stress"),
        ("grid", 1, "whole", "strain"),
    }
    for kind in ("triangles", "grid"):
        for p in (0, 1):
            for bcs in ("whole", "side"):
                for plane in ("strain", "stress"):
                    marks = () if (kind, p, bcs, plane) in fast else (pytest.mark.slow,)
                    yield pytest.param(kind, p, bcs, plane, marks=marks)


@pytest.mark.parametrize("kind, p, bcs, plane", list(patch_cases()))
def test_patch_linear_displacement(dom2d, kind, p, bcs, plane):
    """A linear displacement (constant stress) is reproduced to round-off on the cracked L-shape
    with a hole, cover not aligned with the boundary: Dirichlet on all of ∂Ω (hole included), or
    on the side x = 0 only with the exact traction on the rest (hole included). The crack faces
    carry the exact traction σ n (they are not traction free for this field)."""
    base = nmm.Elasticity(E=1000.0, nu=0.3, plane=plane)
    t = traction(base, linear)
    if bcs == "whole":
        form = nmm.Elasticity(E=1000.0, nu=0.3, plane=plane, dirichlet=linear, crack_neumann=t)
    else:
        left = nmm.Dirichlet(linear, on=lambda q: q[:, 0] < EPS)
        form = nmm.Elasticity(E=1000.0, nu=0.3, plane=plane, dirichlet=left, neumann=t, crack_neumann=t)
    V = nmm.ManifoldSpace(
        getattr(nmm.MathCover, kind)(dom2d, 0.23, offset=(0.3, 0.2)), dom2d, degree=p, components=2
    )
    u = nmm.solve(V, form)
    assert int(u.info.result) == 0
    err = nmm.errors(u, linear)
    assert err["L2"] < 1e-10 and err["max"] < 1e-10, err


# ------------------------------------------------------------------------------ Timoshenko beam

BEAM_L, BEAM_D, BEAM_E, BEAM_NU, BEAM_P = 4.0, 1.0, 1000.0, 0.3, 1.0
BEAM_I = BEAM_D**3 / 12
BEAM = nmm.Elasticity(E=BEAM_E, nu=BEAM_NU, plane="stress")


def timoshenko(x):
    """Timoshenko & Goodier cantilever, plane stress, end shear P at x = L (REFERENCES.md)."""
    X, Y = x[0], x[1]
    L, D, E, nu, P, I = BEAM_L, BEAM_D, BEAM_E, BEAM_NU, BEAM_P, BEAM_I
    ux = -P * Y / (6 * E * I) * ((6 * L - 3 * X) * X + (2 + nu) * (Y**2 - D**2 / 4))
    uy = P / (6 * E * I) * (3 * nu * Y**2 * (L - X) + (4 + 5 * nu) * D**2 * X / 4 + (3 * L - X) * X**2)
    return jnp.stack([ux, uy])


def timoshenko_stress(x):
    """σ_xx = −P(L − x)y/I, σ_yy = 0, σ_xy = +P(D²/4 − y²)/(2I): with the displacement above the
    end load P points in +y (many papers write σ_xy with a minus sign for a downward load)."""
    X, Y = x[0], x[1]
    sxx = -BEAM_P * (BEAM_L - X) * Y / BEAM_I
    sxy = BEAM_P / (2 * BEAM_I) * (BEAM_D**2 / 4 - Y**2)
    return jnp.array([[sxx, sxy], [sxy, 0.0]])


def beam_stress_of_displacement(x):
    return BEAM.stress(x, jax.jacfwd(timoshenko)(x), None)


def test_timoshenko_exact_field():
    """Sign conventions of the beam field: its stress (autodiff + plane-stress law) is
    Timoshenko's, it is in equilibrium without body force, the top and bottom are traction free,
    and the x = L face carries a net shear P and no axial force or moment."""
    rng = np.random.default_rng(0)
    pts = jnp.asarray(rng.uniform([0, -BEAM_D / 2], [BEAM_L, BEAM_D / 2], size=(50, 2)))
    s = vmap(beam_stress_of_displacement)(pts)
    np.testing.assert_allclose(s, vmap(timoshenko_stress)(pts), rtol=0, atol=1e-12 * BEAM_P / BEAM_I)
    div = vmap(divergence(beam_stress_of_displacement))(pts)
    assert float(jnp.max(jnp.abs(div))) < 1e-11 * BEAM_P / BEAM_I
    xs = jnp.linspace(0, BEAM_L, 9)
    for y, n in ((BEAM_D / 2, [0.0, 1.0]), (-BEAM_D / 2, [0.0, -1.0])):
        side = jnp.stack([xs, jnp.full_like(xs, y)], 1)
        t = vmap(traction(BEAM, timoshenko), in_axes=(0, None))(side, jnp.array(n))
        assert float(jnp.max(jnp.abs(t))) < 1e-12 * BEAM_P / BEAM_I
    # resultants on the loaded end: Gauss–Legendre, exact for these polynomials
    g, w = np.polynomial.legendre.leggauss(4)
    ys = jnp.asarray(g * BEAM_D / 2)
    end = vmap(lambda y: traction(BEAM, timoshenko)(jnp.array([BEAM_L, y]), jnp.array([1.0, 0.0])))(ys)
    wts = jnp.asarray(w * BEAM_D / 2)
    np.testing.assert_allclose(wts @ end, [0.0, BEAM_P], atol=1e-12)
    assert abs(float(wts @ (end[:, 0] * ys))) < 1e-12
    # the root x = 0 carries the bending moment P L (σ_xx y integrates to −P L)
    root = vmap(lambda y: beam_stress_of_displacement(jnp.array([0.0, y]))[0, 0])(ys)
    np.testing.assert_allclose(float(wts @ (root * ys)), -BEAM_P * BEAM_L, rtol=1e-12)


def beam_domain():
    return nmm.Domain.polygon(
        [(0, -BEAM_D / 2), (BEAM_L, -BEAM_D / 2), (BEAM_L, BEAM_D / 2), (0, BEAM_D / 2)]
    )


def beam_problem():
    """The exact displacement (both components) at x = 0, the exact tractions on the other three
    sides (zero on top and bottom, Timoshenko's parabolic shear at x = L)."""
    return nmm.Elasticity(
        E=BEAM_E,
        nu=BEAM_NU,
        plane="stress",
        dirichlet=nmm.Dirichlet(timoshenko, on=lambda q: q[:, 0] < EPS),
        neumann=traction(BEAM, timoshenko),
    )


def beam_errors(p, hs, kind="triangles", offset=(0.37, 0.21)):
    dom, form = beam_domain(), beam_problem()
    out = []
    for h in hs:
        mc = getattr(nmm.MathCover, kind)(dom, h, offset=offset)
        u = nmm.solve(nmm.ManifoldSpace(mc, dom, degree=p, components=2), form)
        assert int(u.info.result) == 0
        out.append(nmm.errors(u, timoshenko))
    return out


def check_p1_rates(errs, hs):
    """p = 1 (the space reproduces quadratics; the beam field is cubic): L2 slope at least
    p + 2 = 3 less the usual 0.3, H1 slope p + 1 = 2 ± 0.3.

    The L2 bound is one-sided because the measured slope is above 3 on these covers and only
    drifts down slowly (h = 0.5 … 0.0625: 3.66, 3.74, 3.55 on triangles; 3.49, 3.49, 3.31 on
    the grid), a pre-asymptotic higher-order term; the errors stay far above round-off, so the
    slope measures convergence, not an exactly reproduced field."""
    l2 = [e["L2"] for e in errs]
    h1 = [e["H1"] for e in errs]
    assert min(l2) > 1e-8, l2
    assert slope(l2, hs) > 2.7, (l2, slope(l2, hs))
    assert abs(slope(h1, hs) - 2) < 0.3, (h1, slope(h1, hs))


@pytest.mark.slow  # fast: test_manufactured_convergence, test_timoshenko_reproduced_for_p_ge_2
def test_timoshenko_p1_converges():
    hs = [0.25, 0.125]
    check_p1_rates(beam_errors(1, hs), hs)


@pytest.mark.parametrize("p", [2, 3])
def test_timoshenko_reproduced_for_p_ge_2(p):
    """The Timoshenko displacement is a cubic polynomial and hats × P_p reproduce degree p + 1:
    for p ≥ 2 the beam is solved to round-off (a higher-order patch test with traction
    boundaries), so there is no L2 slope p + 2 to measure here: see the manufactured study."""
    (err,) = beam_errors(p, [0.5])
    assert err["L2"] < 1e-10 and err["max"] < 1e-10 and err["H1"] < 1e-10, err


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["triangles", "grid"])
def test_timoshenko_refinement_study(kind):
    hs = [0.5, 0.25, 0.125, 0.0625]
    errs = beam_errors(1, hs, kind=kind)
    for i in range(1, len(hs)):
        check_p1_rates(errs[i - 1 : i + 1], hs[i - 1 : i + 1])
    for p in (2, 3):
        for err in beam_errors(p, [0.5, 0.25], kind=kind, offset=(0.11, 0.43)):
            assert err["L2"] < 1e-10 and err["max"] < 1e-10, err


# ------------------------------------------------------------------------------ manufactured


def smooth_displacement(x):
    return 0.01 * jnp.stack(
        [
            jnp.sin(2 * x[0] + 0.5) * jnp.cos(1.5 * x[1]),
            jnp.exp(0.3 * x[0] * x[1]) - 0.5 * jnp.cos(x[0] - 2 * x[1]),
        ]
    )


@pytest.mark.parametrize(
    "p, hs",
    [
        pytest.param(1, [0.4, 0.2, 0.1], marks=pytest.mark.slow, id="1"),
        pytest.param(2, [0.4, 0.2, 0.1], marks=pytest.mark.slow, id="2"),
        pytest.param(3, [0.4, 0.2, 0.13], marks=pytest.mark.slow, id="3"),
        pytest.param(3, [0.4, 0.2], id="3-fast"),
    ],
)
def test_manufactured_convergence(dom2d, p, hs):
    """A smooth non-polynomial displacement with its body force b = −div σ on the cracked L-shape
    with a hole: Dirichlet on the outer boundary, the exact traction on the hole and on the crack
    faces. L2 slope p + 2 and H1 slope p + 1 (± 0.3) for p = 1, 2, 3, which the cubic beam
    cannot show for p ≥ 2 (measured last slopes 3.13, 4.02, 5.00; p = 3 on two levels 5.06).

    The outer boundary is Dirichlet on purpose: the crack of this domain reaches the top of the
    right arm and cuts off a flap; loaded by tractions all round, that flap makes the L2 error
    constant depend (by about 2×) on where the cover sits relative to the crack tip, so these
    non-self-similar cover sequences give erratic L2 slopes (p = 2, h = 0.2, 0.1, 0.07, 0.05: 2.9,
    6.1, 2.2), while the H1 slopes stay at p + 1 and self-similar covers (h = 0.1, 0.05, 0.025,
    same offsets) give 4.2, 4.3."""
    base = nmm.Elasticity(E=1000.0, nu=0.3)
    sigma = lambda x: base.stress(x, jax.jacfwd(smooth_displacement)(x), None)  # noqa: E731
    t = traction(base, smooth_displacement)
    body = lambda x: -divergence(sigma)(x)  # noqa: E731
    outer = nmm.Dirichlet(smooth_displacement, on=lambda q: np.hypot(q[:, 0] - 0.5, q[:, 1] - 0.5) > 0.3)
    form = nmm.Elasticity(E=1000.0, nu=0.3, body_force=body, dirichlet=outer, neumann=t, crack_neumann=t)
    l2, h1 = [], []
    for h in hs:
        mc = nmm.MathCover.triangles(dom2d, h, offset=(0.37, 0.21))
        u = nmm.solve(nmm.ManifoldSpace(mc, dom2d, degree=p, components=2), form)
        e = nmm.errors(u, smooth_displacement)
        l2.append(e["L2"])
        h1.append(e["H1"])
    assert abs(slope(l2, hs) - (p + 2)) < 0.3, (l2, slope(l2, hs))
    assert abs(slope(h1, hs) - (p + 1)) < 0.3, (h1, slope(h1, hs))


# ------------------------------------------------------------------------------ Kirsch plate

KIRSCH_A, KIRSCH_W, KIRSCH_S = 1.0, 5.0, 1.0  # hole radius, outer half-width, remote σ_xx
KIRSCH_E, KIRSCH_NU = 1000.0, 0.3
KIRSCH_N = 256  # sides of the polygonal hole


def kirsch_polar(x):
    """(θ, σ_rr, σ_θθ, σ_rθ) of the infinite plate with a hole of radius a under remote σ along x
    (Kirsch 1898; e.g. Timoshenko & Goodier §35)."""
    r2 = x @ x
    th = jnp.arctan2(x[1], x[0])
    q = KIRSCH_A**2 / r2
    c2, s2, S = jnp.cos(2 * th), jnp.sin(2 * th), KIRSCH_S
    srr = S / 2 * (1 - q) + S / 2 * (1 - 4 * q + 3 * q**2) * c2
    stt = S / 2 * (1 + q) - S / 2 * (1 + 3 * q**2) * c2
    srt = -S / 2 * (1 + 2 * q - 3 * q**2) * s2
    return th, srr, stt, srt


def kirsch_stress(x):
    """Cartesian σ = R σ_polar Rᵀ, R = [e_r e_θ]."""
    th, srr, stt, srt = kirsch_polar(x)
    c, s = jnp.cos(th), jnp.sin(th)
    R = jnp.array([[c, -s], [s, c]])
    return R @ jnp.array([[srr, srt], [srt, stt]]) @ R.T


def kirsch_displacement(x, kappa, mu):
    """The displacement of the Kirsch field (with κ of the plane, μ the shear modulus)."""
    r = jnp.sqrt(x @ x)
    th = jnp.arctan2(x[1], x[0])
    a, k = KIRSCH_A, kappa
    ux = (r / a) * (k + 1) * jnp.cos(th) + 2 * (a / r) * ((1 + k) * jnp.cos(th) + jnp.cos(3 * th))
    ux = ux - 2 * (a / r) ** 3 * jnp.cos(3 * th)
    uy = (r / a) * (k - 3) * jnp.sin(th) + 2 * (a / r) * ((1 - k) * jnp.sin(th) + jnp.sin(3 * th))
    uy = uy - 2 * (a / r) ** 3 * jnp.sin(3 * th)
    return a * KIRSCH_S / (8 * mu) * jnp.stack([ux, uy])


KIRSCH_MU = KIRSCH_E / (2 * (1 + KIRSCH_NU))
KIRSCH_KAPPA = 3 - 4 * KIRSCH_NU  # plane strain


def kirsch_u(x):
    return kirsch_displacement(x, KIRSCH_KAPPA, KIRSCH_MU)


def quarter_points(n, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.uniform(KIRSCH_A, KIRSCH_W, n)
    th = rng.uniform(0, np.pi / 2, n)
    return jnp.asarray(np.c_[r * np.cos(th), r * np.sin(th)])


def test_kirsch_exact_field():
    """The polar formulas, turned Cartesian, give the textbook Cartesian form; they are in
    equilibrium, free on r = a with σ_θθ = σ(1 − 2 cos 2θ), tend to σ e_x ⊗ e_x far away, and
    derive (plane strain law) from the Kirsch displacement, which satisfies the symmetry
    rollers."""
    pts = quarter_points(50)
    s = vmap(kirsch_stress)(pts)
    r2 = jnp.sum(pts**2, 1)
    th = jnp.arctan2(pts[:, 1], pts[:, 0])
    q, q2 = KIRSCH_A**2 / r2, KIRSCH_A**4 / r2**2
    c2, c4, s2, s4 = jnp.cos(2 * th), jnp.cos(4 * th), jnp.sin(2 * th), jnp.sin(4 * th)
    cart = KIRSCH_S * jnp.stack(
        [
            1 - q * (1.5 * c2 + c4) + 1.5 * q2 * c4,
            -q * (0.5 * c2 - c4) - 1.5 * q2 * c4,
            -q * (0.5 * s2 + s4) + 1.5 * q2 * s4,
        ],
        1,
    )
    np.testing.assert_allclose(s[:, 0, 0], cart[:, 0], atol=1e-13)
    np.testing.assert_allclose(s[:, 1, 1], cart[:, 1], atol=1e-13)
    np.testing.assert_allclose(s[:, 0, 1], cart[:, 2], atol=1e-13)
    assert float(jnp.max(jnp.abs(vmap(divergence(kirsch_stress))(pts)))) < 1e-12
    ang = jnp.linspace(0, np.pi / 2, 7)
    er = jnp.stack([jnp.cos(ang), jnp.sin(ang)], 1)
    et = jnp.stack([-jnp.sin(ang), jnp.cos(ang)], 1)
    on_hole = vmap(kirsch_stress)(KIRSCH_A * er)
    assert float(jnp.max(jnp.abs(jnp.einsum("mij,mj->mi", on_hole, er)))) < 1e-13
    stt = jnp.einsum("mi,mij,mj->m", et, on_hole, et)
    np.testing.assert_allclose(stt, KIRSCH_S * (1 - 2 * jnp.cos(2 * ang)), atol=1e-13)
    np.testing.assert_allclose(on_hole[-1, 0, 0], 3 * KIRSCH_S, rtol=1e-14)
    far = vmap(kirsch_stress)(1e4 * er)
    np.testing.assert_allclose(
        far, jnp.broadcast_to(jnp.diag(jnp.array([KIRSCH_S, 0.0])), far.shape), atol=1e-7
    )
    form = nmm.Elasticity(E=KIRSCH_E, nu=KIRSCH_NU, plane="strain")
    from_u = vmap(lambda x: form.stress(x, jax.jacfwd(kirsch_u)(x), None))(pts)
    np.testing.assert_allclose(from_u, s, atol=1e-12)
    ys = jnp.linspace(KIRSCH_A, KIRSCH_W, 5)
    assert float(jnp.max(jnp.abs(vmap(kirsch_u)(jnp.stack([0 * ys, ys], 1))[:, 0]))) < 1e-15
    assert float(jnp.max(jnp.abs(vmap(kirsch_u)(jnp.stack([ys, 0 * ys], 1))[:, 1]))) < 1e-15


def kirsch_quarter(n=KIRSCH_N):
    """Quarter plate [0, W]² minus a regular n-gon (n divisible by 4) whose vertices lie on the
    circle r = a at θ = (k + ½)·2π/n: the axes then cross the hole at mid-edges, at radius
    a cos(π/n), square to the symmetry lines, so the corners at (a_c, 0) and (0, a_c) are
    right angles and the point of the maximum stress is not a polygon vertex (whose slightly
    re-entrant angle π + 2π/n makes the exact stress there weakly singular, ~ r^(−4/n))."""
    m = n // 4
    phi = (np.arange(m) + 0.5) * 2 * np.pi / n
    ac = KIRSCH_A * np.cos(np.pi / n)
    arc = np.c_[KIRSCH_A * np.cos(phi), KIRSCH_A * np.sin(phi)][::-1]
    corner = [[ac, 0], [KIRSCH_W, 0], [KIRSCH_W, KIRSCH_W], [0, KIRSCH_W], [0, ac]]
    return nmm.Domain.polygon(np.vstack([corner, arc])), ac


def kirsch_problem():
    """Rollers u_x = 0 on x = 0 and u_y = 0 on y = 0, the exact Kirsch traction on x = W and
    y = W, the hole free (no condition: natural)."""
    zero = jnp.zeros(2)
    return nmm.Elasticity(
        E=KIRSCH_E,
        nu=KIRSCH_NU,
        plane="strain",
        dirichlet=[
            nmm.Dirichlet(zero, on=lambda q: q[:, 0] < EPS, components=(0,)),
            nmm.Dirichlet(zero, on=lambda q: q[:, 1] < EPS, components=(1,)),
        ],
        neumann=nmm.Neumann(
            lambda x, n: kirsch_stress(x) @ n,
            on=lambda q: np.maximum(q[:, 0], q[:, 1]) > KIRSCH_W - EPS,
        ),
    )


def test_kirsch_stress_concentration():
    """σ_xx(0, a) = 3σ within 0.5 %, and σ_θθ = σ(1 − 2 cos 2θ) along the hole within 0.5 % of the
    peak, p = 3 on a uniform h = 0.25 cover of the W = 5 quarter plate (256-gon hole).

    The stresses are read off u.grad at the mid-edge points of the polygon at θ ≈ 0°, 30°, 45°,
    60°, 90°, pushed 1e-9 into the material (the points themselves lie on the boundary, where
    the field is not located); the cover functions are polynomials there, so this is their limit
    to O(1e-9). W does not change the exact answer (the tractions are Kirsch's, so the exact
    solution is the infinite-plate field restricted to the quarter); W = 5 keeps the outer
    boundary where the perturbation a²/r² of the remote field is 4 %, as in the usual benchmark.

    Measured: σ_xx(0, a)/3σ − 1 = 1.7e-5 with this cover (1.5e-3 with offset (0.11, 0.43): the
    tiny value here is partly luck), σ_θθ within 4e-3 σ at the other angles, |σ n| on the hole
    below 5e-3 σ, displacement L2 2.3e-5 and H1 2.3e-4.

    Geometry: the 256-gon lies within a(1 − cos(π/256)) = 7.5e-5 a of the circle. At a fixed
    discretisation σ_xx(0, a)/3σ − 1 was −1.1e-3 (128-gon), −2.4e-5 (256), 6e-6 (512), −8e-7
    (1024) with p = 4, h = 0.25, and −1.4e-4 (256) against −1.9e-6 (512) with p = 3, h = 0.125:
    the polygon costs about 1e-4 at n = 256 (1e-3 at n = 128), well inside the tolerance."""
    dom, ac = kirsch_quarter()
    form = kirsch_problem()
    mc = nmm.MathCover.triangles(dom, 0.25, offset=(0.37, 0.21))
    u = nmm.solve(nmm.ManifoldSpace(mc, dom, degree=3, components=2), form)
    assert int(u.info.result) == 0
    targets = np.array([0, 1 / 12, 1 / 8, 1 / 6, 1 / 4])  # of a turn
    th = np.round(targets * KIRSCH_N) * 2 * np.pi / KIRSCH_N  # mid-edge angles
    th = th + np.array([EPS, 0, 0, 0, -EPS])  # off the symmetry lines
    pts = ac * (1 + EPS) * np.c_[np.cos(th), np.sin(th)]
    sig = vmap(lambda d: form.stress(None, d, None))(u.grad(pts))
    peak = float(sig[-1, 0, 0])
    assert abs(peak / (3 * KIRSCH_S) - 1) < 5e-3, peak
    et = np.c_[-np.sin(th), np.cos(th)]
    er = np.c_[np.cos(th), np.sin(th)]
    stt = np.einsum("mi,mij,mj->m", et, sig, et)
    np.testing.assert_allclose(stt, KIRSCH_S * (1 - 2 * np.cos(2 * th)), rtol=0, atol=0.015 * KIRSCH_S)
    # the hole is free only weakly (natural condition): σ n is small, not zero
    free = np.einsum("mij,mj->mi", sig, er)
    assert np.max(np.abs(free)) < 0.015 * KIRSCH_S, free
    err = nmm.errors(u, kirsch_u)
    assert err["L2"] < 1e-4 and err["H1"] < 1e-3, err
