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
