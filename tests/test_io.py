"""nmm.io: VTU files (meshio round trip) and matplotlib plots, on smooth and cracked fields."""

import io as stdio

import equinox as eqx
import jax.numpy as jnp
import matplotlib.axes
import matplotlib.collections
import meshio
import numpy as np
import pytest
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import nmm
from nmm import io

# a through crack, slightly inclined so that it follows no cover line, and a 24-gon hole
CRACK = np.array([[-0.1, 0.43], [1.1, 0.55]])
JUMP = 2.0


def _side(x):
    """+1 above the crack line, 0 below (x of one point)."""
    (ax, ay), (bx, by) = CRACK
    return jnp.where((bx - ax) * (x[1] - ay) - (by - ay) * (x[0] - ax) > 0, 1.0, 0.0)


def _target(x):
    """Linear on each side of the crack, jump JUMP across it: exact in a degree >= 1 space."""
    return 1.0 + x[0] + 0.5 * x[1] + JUMP * _side(x)


@eqx.filter_jit
def _u_at(u, x):
    return u(x)


@eqx.filter_jit
def _u_in(u, elems, x):
    return u.in_elements(elems, x)[0]


@pytest.fixture(scope="module")
def cracked():
    t = np.linspace(0.0, 2.0 * np.pi, 24, endpoint=False)
    hole = np.c_[0.7 + 0.12 * np.cos(t), 0.75 + 0.12 * np.sin(t)]
    dom = nmm.Domain.polygon([[0, 0], [1, 0], [1, 1], [0, 1]], holes=[hole], cracks=[CRACK])
    mc = nmm.MathCover.triangles(dom, h=0.25, offset=(0.37, 0.21))
    space = nmm.ManifoldSpace(mc, dom, degree=1)
    return nmm.fit(space, _target)


@pytest.fixture(scope="module")
def line():
    dom = nmm.Domain.interval(0.0, 1.0, cracks=[0.43])
    space = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, n=5), dom, degree=2)
    return nmm.fit(space, lambda x: jnp.sin(3.0 * x[0]) + jnp.where(x[0] > 0.43, 1.0, 0.0))


def _crack_distance(points):
    return shapely.distance(shapely.LineString(CRACK), shapely.points(points[:, :2]))


# ------------------------------------------------------------------------------------ VTU


def test_vtu_round_trip(cracked, tmp_path):
    u = cracked
    topo = u.space.host.topology
    path = io.write_vtu(u, tmp_path / "u.vtu", refine=1)
    assert path == tmp_path / "u.vtu" and path.is_file()
    m = meshio.read(path)

    tris = m.cells_dict["triangle"]
    assert len(tris) == 4 * len(topo.simplices)
    assert set(m.cells_dict) == {"triangle"}
    pts = m.points
    assert pts.shape == (len(topo.simplices) * 6, 3) and np.all(pts[:, 2] == 0)

    elem = m.cell_data["element"][0]
    cell = m.cell_data["cell"][0]
    assert elem.min() >= 0 and elem.max() < u.space.n_elements
    np.testing.assert_array_equal(np.unique(elem), np.arange(u.space.n_elements))
    np.testing.assert_array_equal(cell, topo.elem_cell[elem])
    # every refined triangle lies in the element it is tagged with
    centroids = pts[tris].mean(axis=1)[:, :2]
    geoms = np.asarray(topo.elem_geom, dtype=object)[elem]
    assert np.all(shapely.covers(geoms, shapely.points(centroids)))

    # point data: u at the points, evaluated independently (point location) off the crack ...
    vals, grad = m.point_data["u"], m.point_data["grad_u"]
    assert vals.shape == (len(pts),) and grad.shape == (len(pts), 3)
    off = _crack_distance(pts) > 1e-9
    assert off.sum() > 0.8 * len(pts)
    located = np.asarray(_u_at(u, pts[off, :2]))
    np.testing.assert_allclose(vals[off], located, rtol=0, atol=1e-12)
    # ... and against the exact target everywhere, with the side taken from the tagged element
    point_elem = np.zeros(len(pts), np.int64)
    point_elem[tris.reshape(-1)] = np.repeat(elem, 3)
    elem_side = np.array(
        [float(_side(np.asarray(g.representative_point().coords[0]))) for g in topo.elem_geom]
    )
    expected = 1.0 + pts[:, 0] + 0.5 * pts[:, 1] + JUMP * elem_side[point_elem]
    np.testing.assert_allclose(vals, expected, atol=1e-8)
    np.testing.assert_allclose(grad, np.broadcast_to([1.0, 0.5, 0.0], grad.shape), atol=1e-7)


def test_vtu_keeps_jump_across_crack(cracked, tmp_path):
    m = meshio.read(io.write_vtu(cracked, tmp_path / "jump.vtu"))
    pts, vals = m.points, m.point_data["u"]
    on = _crack_distance(pts) <= 1e-9
    assert on.sum() >= 10
    # points on the crack come in coincident groups from both faces: values differ by the jump
    keys = np.round(pts[on, :2], 9)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    v = vals[on]
    spread = np.array([np.ptp(v[group == g]) for g in range(group.max() + 1) if np.sum(group == g) >= 2])
    assert len(spread) >= 5
    # the two faces differ by the jump wherever both faces are present
    assert np.max(spread) == pytest.approx(JUMP, abs=1e-7)
    assert np.median(spread) == pytest.approx(JUMP, abs=1e-7)


def test_vtu_1d(line, tmp_path):
    topo = line.space.host.topology
    m = meshio.read(io.write_vtu(line, tmp_path / "line.vtu", refine=2))
    seg = m.cells_dict["line"]
    assert len(seg) == 4 * len(topo.simplices)
    x = m.points[:, 0]
    assert np.all(m.points[:, 1:] == 0)
    elem = m.cell_data["element"][0]
    assert elem.min() >= 0 and elem.max() < line.space.n_elements
    point_elem = np.zeros(len(x), np.int64)
    point_elem[seg.reshape(-1)] = np.repeat(elem, 2)
    val = _u_in(line, jnp.asarray(point_elem), jnp.asarray(x[:, None]))
    np.testing.assert_allclose(m.point_data["u"], np.asarray(val), atol=1e-12)
    off = np.abs(x - 0.43) > 1e-9  # off the crack, point location must agree
    np.testing.assert_allclose(m.point_data["u"][off], np.asarray(_u_at(line, x[off])), atol=1e-12)
    # the crack point appears twice, once per side, with values one apart
    at_crack = np.abs(x - 0.43) < 1e-12
    assert at_crack.sum() == 2
    assert np.ptp(m.point_data["u"][at_crack]) == pytest.approx(1.0, abs=1e-3)


def test_sample_in_chunks_matches_one_call(cracked, monkeypatch):
    whole = io.sample(cracked, refine=1)
    monkeypatch.setattr(io, "_CHUNK", 100)  # many chunks, the last one padded
    chunked = io.sample(cracked, refine=1)
    assert len(whole["values"]) > 300 and len(whole["values"]) % 100 != 0
    np.testing.assert_allclose(chunked["values"], whole["values"], rtol=0, atol=1e-13)
    np.testing.assert_allclose(chunked["grads"], whole["grads"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(chunked["element"], whole["element"])


def test_vtu_bad_path(cracked, tmp_path):
    missing = tmp_path / "no_such_dir" / "u.vtu"
    with pytest.raises(ValueError, match="no_such_dir"):
        io.write_vtu(cracked, missing)
    with pytest.raises(ValueError, match="u.txt"):
        io.write_vtu(cracked, tmp_path / "u.txt")
    (tmp_path / "d.vtu").mkdir()
    with pytest.raises(ValueError, match="d.vtu"):
        io.write_vtu(cracked, tmp_path / "d.vtu")
    with pytest.raises(ValueError, match="refine"):
        io.write_vtu(cracked, tmp_path / "u.vtu", refine=-1)
    with pytest.raises(TypeError, match="nmm.Field"):
        io.write_vtu(np.zeros(3), tmp_path / "u.vtu")


# ------------------------------------------------------------------------------------ plots


def _png_bytes(ax) -> bytes:
    buf = stdio.BytesIO()
    ax.figure.savefig(buf, format="png", dpi=40)
    return buf.getvalue()


def test_plot_2d_cracked(cracked):
    ax = io.plot(cracked, refine=1, title="cracked")
    assert isinstance(ax, matplotlib.axes.Axes)
    assert ax.get_title() == "cracked"
    n_points = len(cracked.space.host.topology.simplices) * 6
    shaded = [c for c in ax.collections if c.get_array() is not None]
    assert len(shaded) == 1 and len(shaded[0].get_array()) == n_points
    lines = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    assert len(lines) == 3  # element outlines, boundary (outer + hole), crack
    assert len(ax.figure.axes) == 2  # the plot and its colour bar
    assert ax.get_aspect() == 1.0
    assert _png_bytes(ax).startswith(b"\x89PNG")


def test_plot_into_given_axes_without_elements(cracked):
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    out = io.plot(cracked, ax=ax, refine=0, cmap="magma", show_elements=False)
    assert out is ax
    lines = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    assert len(lines) == 2  # no element outlines
    assert _png_bytes(ax).startswith(b"\x89PNG")


def test_plot_1d_breaks_at_crack(line):
    ax = io.plot(line)
    assert isinstance(ax, matplotlib.axes.Axes)
    curves = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    segs = curves[0].get_segments()
    assert len(segs) == len(line.space.host.topology.simplices)
    left = next(s for s in segs if abs(s[-1, 0] - 0.43) < 1e-12)
    right = next(s for s in segs if abs(s[0, 0] - 0.43) < 1e-12)
    assert right[0, 1] - left[-1, 1] == pytest.approx(1.0, abs=1e-3)
    assert _png_bytes(ax).startswith(b"\x89PNG")


def test_plot_rejects_bad_input(line):
    with pytest.raises(TypeError, match="nmm.Field"):
        io.plot("not a field")
    with pytest.raises(ValueError, match="refine"):
        io.plot(line, refine=1.5)


# ------------------------------------------------------------------- vector fields, derived

G = np.array([[0.2, -0.3], [0.05, 0.4]])  # the displacement gradient of _linear (∂u_i/∂x_j)
E, NU = 200.0, 0.3


def _linear(x):
    """A linear displacement: the elasticity patch test, exact in a degree-1 space."""
    return jnp.array([0.1, -0.2]) + jnp.asarray(G) @ x


@pytest.fixture(scope="module")
def elastic():
    t = np.linspace(0.0, 2.0 * np.pi, 33)[:-1]
    hole = np.c_[0.7 + 0.2 * np.cos(t), 0.5 + 0.2 * np.sin(t)]
    dom = nmm.Domain.polygon([(0, 0), (2, 0), (2, 1), (0, 1)], holes=[hole])
    # offset chosen so that no manifold element is a sliver: on a sliver (area 1e-6 h²) the
    # solved gradient carries ~1e-9 of round-off (a solver matter, not an output one)
    mc = nmm.MathCover.triangles(dom, 0.23, offset=(0.05, 0.1))
    space = nmm.ManifoldSpace(mc, dom, degree=1, components=2)
    form = nmm.Elasticity(E=E, nu=NU, dirichlet=_linear)
    return nmm.solve(space, form), form


def _exact_stress(plane="strain"):
    """[s_xx, s_yy, s_xy] of the constant gradient G and von Mises from the principal form."""
    s = np.asarray(nmm.Elasticity(E=E, nu=NU, plane=plane).stress(jnp.zeros(2), jnp.asarray(G), None))
    sxx, syy, sxy = s[0, 0], s[1, 1], s[0, 1]
    szz = NU * (sxx + syy) if plane == "strain" else 0.0
    vm = np.sqrt(sxx**2 + syy**2 + szz**2 - sxx * syy - syy * szz - szz * sxx + 3 * sxy**2)
    return np.array([sxx, syy, sxy]), vm


def _assert_stress(actual, exact, scale=None):
    """|actual - exact| <= 1e-9 |σ| at every point, |σ| the norm of the exact [s_xx, s_yy, s_xy]:
    relative to the stress, not per component (the solve leaves ~3e-10 relative error in ∇u at a
    few points of the cut elements at the hole, 2e-9 of the smallest component s_xy)."""
    scale = np.linalg.norm(_exact_stress()[0]) if scale is None else scale
    err = np.max(np.abs(np.asarray(actual) - exact))
    assert err <= 1e-9 * scale, f"max error {err:.3g} > 1e-9 |σ| = {1e-9 * scale:.3g}"


def _point_elements(m):
    tris = m.cells_dict["triangle"]
    point_elem = np.zeros(len(m.points), np.int64)
    point_elem[tris.reshape(-1)] = np.repeat(m.cell_data["element"][0], 3)
    return point_elem


def test_vtu_vector_field(elastic, tmp_path):
    u, _ = elastic
    m = meshio.read(io.write_vtu(u, tmp_path / "disp.vtu", refine=1))
    pts = m.points
    vals, grad = m.point_data["u"], m.point_data["grad_u"]
    assert vals.shape == (len(pts), 3) and grad.shape == (len(pts), 9)
    assert np.all(vals[:, 2] == 0)  # a 2D displacement padded as ParaView expects vectors
    # both components equal the field in each point's own element ...
    own = np.asarray(_u_in(u, jnp.asarray(_point_elements(m)), jnp.asarray(pts[:, :2])))
    assert own.shape == (len(pts), 2)
    np.testing.assert_allclose(vals[:, :2], own, rtol=0, atol=1e-13)
    # ... and with point location, and the linear displacement (patch test)
    np.testing.assert_allclose(vals[:, :2], np.asarray(_u_at(u, pts[:, :2])), rtol=0, atol=1e-12)
    exact = np.array([0.1, -0.2]) + pts[:, :2] @ G.T
    np.testing.assert_allclose(vals[:, :2], exact, rtol=0, atol=1e-9)
    # the gradient tensor ∂u_i/∂x_j, row-major, padded to 3 x 3
    full = np.zeros((3, 3))
    full[:2, :2] = G
    np.testing.assert_allclose(
        grad.reshape(-1, 3, 3), np.broadcast_to(full, (len(pts), 3, 3)), atol=1e-9
    )
    s = io.sample(u, refine=1)
    assert s["values"].shape == (len(pts), 2) and s["grads"].shape == (len(pts), 2, 2)
    assert s["derived"] == {}


def test_vtu_derived_stress_exact(elastic, tmp_path):
    u, form = elastic
    stress, vm = _exact_stress()
    m = meshio.read(io.write_vtu(u, tmp_path / "stress.vtu", derived=form))
    n = len(m.points)
    assert set(m.point_data) == {"u", "grad_u", "stress", "von_mises"}
    assert m.point_data["stress"].shape == (n, 3) and m.point_data["von_mises"].shape == (n,)
    _assert_stress(m.point_data["stress"], stress)
    _assert_stress(m.point_data["von_mises"], vm)
    # point by point it is Hooke's law of the written gradient (plane strain), to round-off
    grad = m.point_data["grad_u"].reshape(n, 3, 3)[:, :2, :2]
    eps = 0.5 * (grad + grad.transpose(0, 2, 1))
    lam, mu = E * NU / ((1 + NU) * (1 - 2 * NU)), E / (2 * (1 + NU))
    hooke = lam * np.trace(eps, axis1=1, axis2=2)[:, None, None] * np.eye(2) + 2 * mu * eps
    voigt = np.stack([hooke[:, 0, 0], hooke[:, 1, 1], hooke[:, 0, 1]], axis=1)
    np.testing.assert_allclose(m.point_data["stress"], voigt, rtol=0, atol=1e-12 * np.max(vm))
    # the form given is the form evaluated: plane stress (s_zz = 0) differs from plane strain
    stress_ps, vm_ps = _exact_stress("stress")
    s = io.sample(u, refine=0, derived=nmm.Elasticity(E=E, nu=NU, plane="stress"))
    assert abs(vm_ps - vm) > 1.0
    _assert_stress(s["derived"]["stress"], stress_ps, np.linalg.norm(stress_ps))
    _assert_stress(s["derived"]["von_mises"], vm_ps, np.linalg.norm(stress_ps))


def test_derived_with_params_in_chunks(elastic, monkeypatch):
    u, _ = elastic
    form = nmm.Elasticity(E=lambda x, p: p["E"], nu=NU)
    whole = io.sample(u, refine=0, derived=form, params={"E": jnp.asarray(E / 2)})
    monkeypatch.setattr(io, "_CHUNK", 100)  # many chunks, the last one padded
    chunked = io.sample(u, refine=0, derived=form, params={"E": jnp.asarray(E / 2)})
    n = len(whole["points"])
    assert n > 300 and n % 100 != 0
    stress, vm = _exact_stress()  # stress is linear in E
    _assert_stress(whole["derived"]["stress"], stress / 2, np.linalg.norm(stress / 2))
    for key in ("stress", "von_mises"):
        np.testing.assert_allclose(chunked["derived"][key], whole["derived"][key], rtol=0, atol=1e-12)
    np.testing.assert_allclose(chunked["values"], whole["values"], rtol=0, atol=1e-13)


def _shaded(ax):
    (img,) = [c for c in ax.collections if c.get_array() is not None]
    return np.asarray(img.get_array()), img.colorbar.ax.get_ylabel()


def test_plot_vector_field(elastic):
    u, form = elastic
    s = io.sample(u, refine=0)
    ax = io.plot(u, refine=0)
    assert isinstance(ax.figure, Figure) and len(ax.figure.axes) == 2
    vals, label = _shaded(ax)
    assert label == "|u|"
    np.testing.assert_allclose(vals, np.linalg.norm(s["values"], axis=1), rtol=1e-12)
    assert _shaded(io.plot(u, refine=0, component="magnitude"))[1] == "|u|"
    vals, label = _shaded(io.plot(u, refine=0, component=1))
    assert label == "u[1]"
    np.testing.assert_allclose(vals, s["values"][:, 1], rtol=1e-12)
    stress, vm = _exact_stress()
    vals, label = _shaded(io.plot(u, refine=0, derived=form, quantity="von_mises"))
    assert label == "von_mises"
    _assert_stress(vals, vm)
    ax = io.plot(u, refine=0, derived=form, quantity="stress", component=2)
    vals, label = _shaded(ax)
    assert label == "stress[2]"
    _assert_stress(vals, stress[2])
    assert _png_bytes(ax).startswith(b"\x89PNG")


def test_vector_field_1d(tmp_path):
    dom = nmm.Domain.interval(0.0, 1.0, cracks=[0.43])
    space = nmm.ManifoldSpace(nmm.MathCover.intervals(dom, n=5), dom, degree=1, components=2)
    step = lambda x: jnp.where(x[0] > 0.43, 1.0, 0.0)  # noqa: E731
    u = nmm.fit(space, lambda x: jnp.array([1.0 + x[0], 2.0 * x[0] - 1.0 + step(x)]))
    ax = io.plot(u, refine=1)
    assert ax.get_ylabel() == "|u|"
    segs = ax.collections[0].get_segments()
    assert len(segs) == len(space.host.topology.simplices)
    for seg in segs:  # each element's curve is the magnitude of its own side's vector
        x, side = seg[:, 0], float(np.mean(seg[:, 0]) > 0.43)
        np.testing.assert_allclose(seg[:, 1], np.hypot(1.0 + x, 2.0 * x - 1.0 + side), atol=1e-9)
    ax = io.plot(u, component=0)
    assert ax.get_ylabel() == "u[0]"
    m = meshio.read(io.write_vtu(u, tmp_path / "line.vtu", refine=1))
    x, vals = m.points[:, 0], m.point_data["u"]
    assert vals.shape == (len(x), 3) and np.all(vals[:, 2] == 0)
    np.testing.assert_allclose(vals[:, 0], 1.0 + x, atol=1e-9)
    off = np.abs(x - 0.43) > 1e-9
    np.testing.assert_allclose(vals[off, 1], 2.0 * x[off] - 1.0 + (x[off] > 0.43), atol=1e-9)


class _NoDerived(nmm.Form):
    components = 2

    def energy(self, x, u, du, params):
        return 0.5 * jnp.sum(du**2)


class _NotADict:
    def derived(self, x, u, du, params):
        return du


class _Tensors:
    def derived(self, x, u, du, params):
        return {"grad": du}


class _Clash:
    def derived(self, x, u, du, params):
        return {"u": u}


def test_vector_and_derived_bad_arguments(elastic, cracked, tmp_path, monkeypatch):
    u, form = elastic

    def evaluated(*args):
        raise AssertionError("evaluated before the arguments were checked")

    monkeypatch.setattr(io, "_point_data", evaluated)
    with pytest.raises(ValueError, match=r"component=2 does not exist: u has 2 components"):
        io.plot(u, component=2)
    with pytest.raises(
        ValueError, match="component must be None, 'magnitude' or an integer index, got 'norm'"
    ):
        io.plot(u, component="norm")
    with pytest.raises(TypeError, match="component must be .* got 1.5"):
        io.plot(u, component=1.5)
    with pytest.raises(ValueError, match="component=1 does not exist: u has 1 component "):
        io.plot(cracked, component=1)
    with pytest.raises(
        ValueError, match=r"quantity must be one of \['stress', 'von_mises'\].* got 'vm'"
    ):
        io.plot(u, derived=form, quantity="vm")
    with pytest.raises(ValueError, match="quantity must be one of .* got None"):
        io.plot(u, derived=form)
    with pytest.raises(ValueError, match="quantity='von_mises' needs derived"):
        io.plot(u, quantity="von_mises")
    with pytest.raises(ValueError, match="component must be given for quantity='stress'"):
        io.plot(u, derived=form, quantity="stress")
    with pytest.raises(ValueError, match="component=3 does not exist: 'stress' has 3 components"):
        io.plot(u, derived=form, quantity="stress", component=3)
    with pytest.raises(ValueError, match="component=0: 'von_mises' is a scalar quantity"):
        io.plot(u, derived=form, quantity="von_mises", component=0)
    with pytest.raises(TypeError, match="derived must be a form with a derived.* got 3"):
        io.write_vtu(u, tmp_path / "u.vtu", derived=3)
    with pytest.raises(TypeError, match="derived must be a form .* got <class"):
        io.sample(u, derived=nmm.Elasticity)
    with pytest.raises(
        ValueError, match="derived=Elasticity is a form for 2-component fields, but u has 1"
    ):
        io.write_vtu(cracked, tmp_path / "u.vtu", derived=form)
    with pytest.raises(ValueError, match="derived=_NoDerived defines no derived quantities"):
        io.sample(u, derived=_NoDerived())
    with pytest.raises(TypeError, match=r"_NotADict: .* must return a dict .* got ShapeDtypeStruct"):
        io.sample(u, derived=_NotADict())
    with pytest.raises(ValueError, match=r"quantity name 'u' must be a str other than \('u'"):
        io.write_vtu(u, tmp_path / "u.vtu", derived=_Clash())
    with pytest.raises(ValueError, match=r"quantity='grad' has shape \(2, 2\): only scalars"):
        io.plot(u, derived=_Tensors(), quantity="grad")
    with pytest.raises(ValueError, match="params is given but derived is None"):
        io.sample(u, params={"E": 1.0})
    assert not (tmp_path / "u.vtu").exists()
