"""Domains and covers: validation, and the topology of cutting (elements, physical covers)."""

import numpy as np
import pytest

import nmm
from nmm.topology import cut

SQUARE = [(0, 0), (1, 0), (1, 1), (0, 1)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(outer=[(0, 0), (1, 1), (1, 0), (0, 1)]), "outer: polygon is self-intersecting"),
        (
            dict(outer=[(0, 0), (1, 0), (2, 0)]),
            "outer: polygon is self-intersecting or has zero area",
        ),
        (
            dict(outer=SQUARE, holes=[[(2, 2), (3, 2), (3, 3)]]),
            r"holes\[0\] is not strictly inside",
        ),
        (dict(outer=SQUARE, holes=[[(0.5, 0.5), (1.5, 0.5), (0.5, 0.7)]]), r"holes\[0\] is not"),
        (dict(outer=SQUARE, cracks=[[(2, 2), (3, 3)]]), r"cracks\[0\] lies outside the domain"),
        (dict(outer=SQUARE, cracks=[[(0.5, 0.5)]]), r"cracks\[0\] must be a polyline"),
        (dict(outer=[(0, 0), (1, 0), (np.nan, 1)]), "outer contains non-finite"),
        (dict(outer=[(0, 0), (1, 0)]), r"outer must be an array of shape \(n >= 3, 2\)"),
    ],
)
def test_bad_polygons(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nmm.Domain.polygon(**kwargs)


def test_bad_interval_and_covers():
    with pytest.raises(ValueError, match=r"a < b, got a=1.0, b=0.0"):
        nmm.Domain.interval(1, 0)
    with pytest.raises(ValueError, match=r"cracks: point 3.0 is not inside"):
        nmm.Domain.interval(0, 1, cracks=[3.0])
    dom = nmm.Domain.polygon(SQUARE)
    with pytest.raises(ValueError, match=r"h=5.0 is larger than the domain"):
        nmm.MathCover.triangles(dom, h=5.0)
    with pytest.raises(ValueError, match=r"h must be a positive number, got -0.1"):
        nmm.MathCover.grid(dom, h=-0.1)
    with pytest.raises(ValueError, match=r"needs a 1D domain"):
        nmm.MathCover.intervals(dom, n=3)
    with pytest.raises(ValueError, match=r"n must be a positive integer, got 0"):
        nmm.MathCover.intervals(nmm.Domain.interval(0, 1), n=0)
    with pytest.raises(ValueError, match=r"triangles\[0\] = \[0, 1, 2\] is degenerate"):
        nmm.MathCover.from_mesh([(0, 0), (1, 0), (2, 0), (0, 1)], [[0, 1, 2], [0, 1, 3]])
    mc = nmm.MathCover.triangles(dom, 0.5)
    with pytest.raises(ValueError, match=r"degree must be an integer >= 0, got -1"):
        nmm.ManifoldSpace(mc, dom, degree=-1)
    with pytest.raises(ValueError, match=r"basis must be one of .* got 'chebyshev'"):
        nmm.ManifoldSpace(mc, dom, degree=1, basis="chebyshev")


def test_cover_must_cover_domain():
    dom = nmm.Domain.polygon([(0, 0), (2, 0), (2, 2), (0, 2)])
    mc = nmm.MathCover.from_mesh([(0, 0), (1, 0), (0, 1)], [[0, 1, 2]])
    with pytest.raises(ValueError, match="cover does not cover the domain"):
        nmm.ManifoldSpace(mc, dom)


def test_elements_tile_the_domain(dom2d):
    for mc in (
        nmm.MathCover.triangles(dom2d, 0.13, offset=(0.3, 0.2)),
        nmm.MathCover.grid(dom2d, 0.13, offset=(0.3, 0.2)),
    ):
        topo = cut(mc, dom2d)
        area = sum(g.area for g in topo.elem_geom)
        assert abs(area - dom2d.measure) < 1e-12 * dom2d.measure
        t = topo.simplices
        tri_area = 0.5 * np.abs(
            (t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1])
            - (t[:, 1, 1] - t[:, 0, 1]) * (t[:, 2, 0] - t[:, 0, 0])
        )
        assert abs(tri_area.sum() - dom2d.measure) < 1e-12 * dom2d.measure
        # boundary pieces: outer perimeter + hole + both faces of the crack
        seg = np.linalg.norm(topo.bnd[:, 1] - topo.bnd[:, 0], axis=1)
        perimeter = dom2d.shape.length
        assert abs(seg[~topo.bnd_crack].sum() - perimeter) < 1e-12 * perimeter
        # crack faces come in pairs; the parts inside the two tip cells are not faces
        faces = seg[topo.bnd_crack].sum()
        assert 2 * (0.9 - 2 * np.sqrt(2) * mc.diameter) < faces < 2 * 0.9


def _covers_of_node(topo, node):
    return int(np.sum(topo.cover_node == node))


def test_through_crack_splits_patch_and_tip_does_not():
    dom = nmm.Domain.polygon([(0, 0), (4, 0), (4, 4), (0, 4)], cracks=[[(-1.0, 2.3), (2.5, 2.3)]])
    mc = nmm.MathCover.grid(dom, 1.0)
    topo = cut(mc, dom)
    node = lambda x, y: int(np.argmin(np.linalg.norm(mc.nodes - [x, y], axis=1)))  # noqa: E731
    # an edge crack from the left boundary to a tip at x = 2.5
    # patch of node (2, 2) spans [1, 3]^2: the crack enters at x=1 and stops at x=2.5 inside it
    assert _covers_of_node(topo, node(2, 2)) == 1
    # patch of node (1, 2) spans [0, 2] x [1, 3]: crossed completely -> two physical covers
    assert _covers_of_node(topo, node(1, 2)) == 2
    # patch of node (3, 2) spans [2, 4]: holds the tip, stays whole
    assert _covers_of_node(topo, node(3, 2)) == 1

    # the cell [2, 3] x [2, 3] holding the tip is one element; [1, 2] x [2, 3] is split in two
    def cell_of(x, y):
        return int(np.nonzero(np.all(np.abs(mc.cell_data[:, :2] - [x, y]) < 1e-12, axis=1))[0][0])

    assert np.sum(topo.elem_cell == cell_of(2, 2)) == 1
    assert np.sum(topo.elem_cell == cell_of(1, 2)) == 2


def test_edge_crack_and_1d_crack():
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)], cracks=[[(0, 0.55), (0.6, 0.55)]])
    topo = cut(nmm.MathCover.triangles(dom, 0.2, offset=(0.1, 0.1)), dom)
    faces = np.linalg.norm(topo.bnd[topo.bnd_crack, 1] - topo.bnd[topo.bnd_crack, 0], axis=1)
    # the lattice has x = -0.02 + 0.2 k: the tip cell starts at x = 0.58, so each face is 0.58 long
    assert abs(faces.sum() - 2 * 0.58) < 1e-12
    d1 = nmm.Domain.interval(-1, 1, cracks=[0.1])
    t1 = cut(nmm.MathCover.intervals(d1, n=7), d1)
    # the crack lies in one cell: both of its nodes get two physical covers
    assert np.bincount(t1.cover_node).tolist() == [1, 1, 1, 2, 2, 1, 1, 1]
    assert t1.bnd_crack.sum() == 2


def test_points_on_the_right_and_top_sides_are_located():
    """The domain is closed: points on x = 1 or y = 1 (the bucket grid's upper edge) lie in an
    element (they were NaN once, and so were coefficients evaluated at Nitsche points there)."""
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.grid(dom, h=0.25), dom, degree=2)
    u = nmm.fit(V, lambda x: x[0] + 2 * x[1])
    edge = np.array([[1.0, 1.0], [1.0, 0.3], [0.4, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(u(edge), edge[:, 0] + 2 * edge[:, 1], atol=1e-10)
    assert np.all(np.isnan(u(np.array([[1.0 + 1e-6, 0.5], [0.5, -1e-6]]))))
