"""Cracked elastic bodies with exact or handbook stress intensity factors (issue 10's benchmarks).

* ``scalar_edge_crack``: √r sin(θ/2) plus a flux-free smooth part around an edge crack (Poisson).
* ``near_tip``: a square with an edge crack to an interior tip, the Williams field of given K_I,
  K_II imposed on its outer boundary: the exact solution is the Williams field (REFERENCES.md).
* ``griffith``: a centre crack of half-length a in an infinite plate under remote biaxial σ and
  shear τ (Westergaard), cut to a square whose boundary carries the exact displacements:
  K_I = σ√(πa), K_II = τ√(πa) at both tips.
* ``collinear``: two equal collinear cracks (b < |x| < c) in an infinite plate under remote biaxial
  σ (Westergaard's function for two cracks), cut to a square with the exact displacements on its
  boundary: four tips, two K's in closed form (elliptic integrals).
* Tada's edge-crack and centre-crack factors, and the inclined-crack formulas.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ellipe, ellipk

import nmm
from nmm.fracture import kappa, williams

E, NU = 1000.0, 0.3


def frame(point, angle):
    """x -> local coordinates of the tip frame, and the rotation local -> global."""
    c, s = np.cos(angle), np.sin(angle)
    R = jnp.array([[c, -s], [s, c]])
    p = jnp.asarray(point, dtype=float)
    return (lambda x: R.T @ (x - p)), R


def scalar_edge_crack(tip_point, radius=10.0, inner=0.5):
    """``(domain, tip, exact, problem)``: [-1, 1]² with an edge crack from (-1, 0) to
    ``tip_point``, u = √r sin(θ/2) + 0.3 x_l + 0.2 x_l² (x_l along the crack, so both parts are
    flux free on its faces), -Δu = -0.4, u on ∂Ω; ``tip`` the scalar crack-tip enrichment (by
    default a cut-off plateau over the whole square: u is then in the enriched space)."""
    dom = nmm.Domain.polygon([(-1, -1), (1, -1), (1, 1), (-1, 1)], cracks=[[(-1, 0), tip_point]])
    tip = nmm.Enrichment.crack_tip(dom, functions="scalar", radius=radius, inner=inner)

    def exact(x):
        r, t = tip.polar(x)
        xl = r * jnp.cos(t)
        return jnp.sqrt(r) * jnp.sin(0.5 * t) + 0.3 * xl + 0.2 * xl**2

    return dom, tip, exact, nmm.Poisson(k=1.0, f=-0.4, dirichlet=exact)


def near_tip(tip_point, k1, k2, plane="strain", E=E, nu=NU):
    """Square [-1, 1]² with an edge crack from (-1, 0) to ``tip_point``; returns ``(domain,
    exact, form)`` with the Williams field of (k1, k2) as Dirichlet data on the outer boundary
    (the crack faces are traction free for it)."""
    dom = nmm.Domain.polygon([(-1, -1), (1, -1), (1, 1), (-1, 1)], cracks=[[(-1, 0), tip_point]])
    t = np.asarray(tip_point, float) - np.array([-1.0, 0.0])
    local, R = frame(tip_point, float(np.arctan2(t[1], t[0])))
    mu, kap = E / (2 * (1 + nu)), kappa(nu, plane)

    def exact(x):
        return R @ williams(local(x), k1, k2, mu, kap)

    return dom, exact, nmm.Elasticity(E=E, nu=nu, plane=plane, dirichlet=exact)


def westergaard(a, sigma, tau, plane="strain", E=E, nu=NU):
    """The displacement x -> ``(2,)`` around a crack (-a, a) × {0} in an infinite plate under
    remote σ_xx = σ_yy = σ and σ_xy = τ. With Z = z / √(z² − a²) (the branch cut on the crack) and
    Zb = √(z² − a²) its primitive:
    2μ u = σ [(κ−1)/2 Re Zb − y Im Z, (κ+1)/2 Im Zb − y Re Z]
         + τ [(κ+1)/2 Im Zb + y Re Z, −(κ−1)/2 Re Zb − y Im Z]."""
    mu, kap = E / (2 * (1 + nu)), kappa(nu, plane)

    def u(x):
        z = x[0] + 1j * x[1]
        zb = jnp.sqrt(z - a) * jnp.sqrt(z + a)
        zz = z / zb
        y = x[1]
        ux = sigma * (0.5 * (kap - 1) * zb.real - y * zz.imag) + tau * (
            0.5 * (kap + 1) * zb.imag + y * zz.real
        )
        uy = sigma * (0.5 * (kap + 1) * zb.imag - y * zz.real) + tau * (
            -0.5 * (kap - 1) * zb.real - y * zz.imag
        )
        return jnp.stack([ux, uy]) / (2 * mu)

    return u


def griffith(a=0.3, half_width=1.0, sigma=1.0, tau=0.5, plane="strain", E=E, nu=NU):
    """``(domain, exact, form, (K_I, K_II))``: the square of half-width ``half_width`` around the
    Griffith crack, Westergaard's displacements on its boundary."""
    w = half_width
    dom = nmm.Domain.polygon([(-w, -w), (w, -w), (w, w), (-w, w)], cracks=[[(-a, 0.0), (a, 0.0)]])
    exact = westergaard(a, sigma, tau, plane, E, nu)
    form = nmm.Elasticity(E=E, nu=nu, plane=plane, dirichlet=exact)
    return dom, exact, form, (sigma * np.sqrt(np.pi * a), tau * np.sqrt(np.pi * a))


def collinear(b=0.2, c=0.5, half_width=1.0, sigma=1.0, plane="strain", E=E, nu=NU, nodes=64):
    """``(domain, exact, form, K)``: cracks (-c, -b) and (b, c) on y = 0 in a square of
    half-width ``half_width``, the infinite plate under remote σ_xx = σ_yy = σ.

    Westergaard's function Z = σ (z² − λ²) / √((z² − b²)(z² − c²)) (the root the product of the
    four principal roots of z ∓ b, z ∓ c: cuts on the cracks only) with λ² = c² E(k)/K(k),
    k² = 1 − b²/c², the value that closes each crack at both its ends. With Zb = ∫ Z dz,
    2μ u = [(κ−1)/2 Re Zb − y Im Z, (κ+1)/2 Im Zb − y Re Z]. Zb is integrated along the square's
    boundary (Gauss–Legendre with ``nodes`` points from the corner before the point: Z is analytic
    there) and on to the point along a vertical line (which crosses no crack), so ``exact`` is
    the displacement everywhere (up to a rigid translation); its gradient is Z's, exactly.
    ``K[(crack, end)]``, the K of each tip (at ±c the outer, at ±b the inner one):
    K_c = σ √π (c² − λ²) / √(c (c² − b²)),  K_b = σ √π (λ² − b²) / √(b (c² − b²))."""
    m = 1.0 - (b / c) ** 2
    lam2 = c * c * ellipe(m) / ellipk(m)
    mu, kap = E / (2 * (1 + nu)), kappa(nu, plane)
    w = half_width
    dom = nmm.Domain.polygon(
        [(-w, -w), (w, -w), (w, w), (-w, w)], cracks=[[(-c, 0.0), (-b, 0.0)], [(b, 0.0), (c, 0.0)]]
    )
    corners = np.array([-w - 1j * w, w - 1j * w, w + 1j * w, -w + 1j * w])
    gx, gw = np.polynomial.legendre.leggauss(nodes)

    def Z(z):
        root = jnp.sqrt(z - c) * jnp.sqrt(z - b) * jnp.sqrt(z + b) * jnp.sqrt(z + c)
        return sigma * (z * z - lam2) / root

    def integral(z0, z1):  # ∫_{z0}^{z1} Z dz along the segment
        t = 0.5 * (gx + 1)
        return 0.5 * (z1 - z0) * jnp.sum(gw * Z(z0 + t * (z1 - z0)))

    start = [0.0 + 0.0j]
    for k in range(3):
        start.append(start[-1] + complex(integral(corners[k], corners[k + 1])))
    start = jnp.asarray(start)
    corners = jnp.asarray(corners)

    @jax.custom_jvp
    def primitive(x):
        # from the bottom side (y < 0) or the top side (y >= 0) straight up or down: the path
        # stays in one half-plane and never crosses a crack
        z = x[0] + 1j * x[1]
        x0 = jnp.where(z.imag < 0, z.real - 1j * w, z.real + 1j * w)
        zb0 = jnp.where(
            z.imag < 0,
            start[0] + integral(corners[0], x0),
            start[2] + integral(corners[2], x0),
        )
        return zb0 + integral(x0, z)

    @primitive.defjvp
    def _(primals, tangents):  # Zb' = Z exactly (not the derivative of the rule)
        (x,), (dx,) = primals, tangents
        return primitive(x), Z(x[0] + 1j * x[1]) * (dx[0] + 1j * dx[1])

    def u(x):
        z = x[0] + 1j * x[1]
        zb = primitive(x)
        zz = Z(z)
        y = x[1]
        ux = 0.5 * (kap - 1) * zb.real - y * zz.imag
        uy = 0.5 * (kap + 1) * zb.imag - y * zz.real
        return jnp.stack([ux, uy]) / (2 * mu)

    form = nmm.Elasticity(E=E, nu=nu, plane=plane, dirichlet=u)
    k_outer = sigma * np.sqrt(np.pi) * (c * c - lam2) / np.sqrt(c * (c * c - b * b))
    k_inner = sigma * np.sqrt(np.pi) * (lam2 - b * b) / np.sqrt(b * (c * c - b * b))
    # by tip (crack, end): the outer tips are the cracks' far ends
    outer, inner = float(k_outer), float(k_inner)
    return dom, u, form, {(0, 0): outer, (0, -1): inner, (1, 0): inner, (1, -1): outer}


def tada_edge(a_over_w):
    """Tada's F(a/W) of an edge crack in a long plate under tension (a/W <= 0.6)."""
    r = a_over_w
    return 1.12 - 0.231 * r + 10.55 * r**2 - 21.72 * r**3 + 30.39 * r**4


def tada_centre(a_over_w):
    """Tada's F of a centre crack 2a in a plate of width W: [1 − 0.025α² + 0.06α⁴] √sec(πα/2),
    α = 2a/W."""
    al = 2 * a_over_w
    return (1 - 0.025 * al**2 + 0.06 * al**4) * np.sqrt(1 / np.cos(np.pi * al / 2))


def inclined(beta, a=1.0, sigma=1.0):
    """(K_I, K_II) of a crack of half-length a at angle β to the plane normal to a remote σ."""
    k = sigma * np.sqrt(np.pi * a)
    return k * np.cos(beta) ** 2, k * np.sin(beta) * np.cos(beta)


def uniaxial(s, plane="strain", E=E, nu=NU):
    """x -> displacement ``(2,)`` of a uniform stress σ_xx = s (σ_yy = σ_xy = 0)."""
    form = nmm.Elasticity(E=E, nu=nu, plane=plane)
    lam, mu = form.lame(None, None)
    exx = s * (lam + 2 * mu) / (4 * mu * (lam + mu))
    eyy = -lam / (lam + 2 * mu) * exx
    return lambda x: jnp.stack([exx * x[0], eyy * x[1]])


def inclined_crack(beta, a=0.5, half_width=2.0, sigma=1.0, plane="strain", E=E, nu=NU):
    """``(domain, exact, form, (K_I, K_II))``: a crack of half-length a through the centre of a
    square at angle β to the x-axis, the infinite plate under remote σ_yy = σ (Westergaard in the
    crack's frame, plus the uniform σ_tt − σ_nn along it), exact displacements on the boundary.
    Both tips have K_I = σ√(πa) cos²β, K_II = σ√(πa) sin β cos β."""
    w = half_width
    t = np.array([np.cos(beta), np.sin(beta)])
    crack = [tuple(-a * t), tuple(a * t)]
    dom = nmm.Domain.polygon([(-w, -w), (w, -w), (w, w), (-w, w)], cracks=[crack])
    snn, stn, stt = (
        sigma * np.cos(beta) ** 2,
        sigma * np.sin(beta) * np.cos(beta),
        sigma * np.sin(beta) ** 2,
    )
    crack_field = westergaard(a, snn, stn, plane, E, nu)
    along = uniaxial(stt - snn, plane, E, nu)
    local, R = frame((0.0, 0.0), beta)

    def exact(x):
        xl = local(x)
        return R @ (crack_field(xl) + along(xl))

    form = nmm.Elasticity(E=E, nu=nu, plane=plane, dirichlet=exact)
    return dom, exact, form, inclined(beta, a, sigma)


def tension_strip(crack, width=1.0, height=3.0, sigma=1.0, plane="strain", E=E, nu=NU, holes=()):
    """``(domain, form)``: the plate [0, W] × [-H, H] with ``crack`` (and ``holes``) under
    σ_yy = σ on its top;
    the bottom on rollers (a mirror plane: the strip continues below with the mirrored crack, 2H
    away) and u_x = 0 on its middle tenth (the last rigid motion)."""
    W, H = width, height
    dom = nmm.Domain.polygon([(0, -H), (W, -H), (W, H), (0, H)], holes=holes, cracks=[crack])
    eps = 1e-9 * H

    def bottom(p):
        return p[:, 1] < -H + eps

    def pin(p):
        return bottom(p) & (np.abs(p[:, 0] - 0.5 * W) < 0.05 * W)

    zero = jnp.zeros(2)
    form = nmm.Elasticity(
        E=E,
        nu=nu,
        plane=plane,
        dirichlet=[
            nmm.Dirichlet(zero, on=bottom, components=(1,)),
            nmm.Dirichlet(zero, on=pin, components=(0,)),
        ],
        # σ on the top; every other free boundary (sides, holes) traction free
        neumann=lambda x, n: jnp.stack([0.0 * n[0], jnp.where(x[1] > H - eps, sigma, 0.0)]),
    )
    return dom, form
