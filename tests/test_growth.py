"""Crack growth (issue 10): the local re-cut equals a whole cut, the hoop-stress kink, straight
mode-I growth, a crack that meets a hole stops there, bad input is named."""

import numpy as np
import pytest
import shapely

import nmm
from experiments.cracks import griffith, inclined_crack, tension_strip
from nmm.fracture import kink_angle
from nmm.topology import cut, recut


def canonical(topo):
    """Elements by (cell, centroid); covers as the partition of (element, vertex) incidences;
    integration area and boundary length (domain / crack) per element."""
    keys = [
        (int(c), round(g.centroid.x, 9), round(g.centroid.y, 9))
        for c, g in zip(topo.elem_cell, topo.elem_geom, strict=False)
    ]
    groups = {}
    for e, k in enumerate(keys):
        for slot, c in enumerate(topo.elem_covers[e]):
            groups.setdefault(int(c), []).append((k, slot))
    d1 = topo.simplices[:, 1] - topo.simplices[:, 0]
    d2 = topo.simplices[:, 2] - topo.simplices[:, 0]
    area = np.bincount(
        topo.simplex_elem, 0.5 * np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]), topo.n_elem
    )
    blen = {}
    for s, e, cr in zip(topo.bnd, topo.bnd_elem, topo.bnd_crack, strict=False):
        blen[(keys[e], bool(cr))] = blen.get((keys[e], bool(cr)), 0.0) + np.linalg.norm(s[1] - s[0])
    return (
        sorted(keys),
        sorted(tuple(sorted(v)) for v in groups.values()),
        {k: round(a, 12) for k, a in zip(keys, area, strict=False)},
        {k: round(v, 10) for k, v in blen.items()},
    )


@pytest.mark.parametrize("kind", ["triangles", "grid"])
def test_recut_equals_a_whole_cut(kind):
    """A crack extended by a kinked segment (through the cell of its old tip), a hole beside it:
    re-cutting only the cells along the new segment gives the elements, physical covers,
    triangles and boundary pieces of cutting the whole cover again."""
    hole = [(0.7, 0.2), (0.7, 0.3), (0.8, 0.3), (0.8, 0.2)]
    c0 = [(0.0, 0.5), (0.43, 0.52)]
    dom0 = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)], holes=[hole], cracks=[c0])
    mc = getattr(nmm.MathCover, kind)(dom0, 0.05, offset=(0.3, 0.2))
    new = (0.43 + 0.13 * np.cos(0.3), 0.52 + 0.13 * np.sin(0.3))
    dom1 = nmm.Domain.polygon(dom0.outer, holes=dom0.holes, cracks=[c0 + [new]])
    local = recut(cut(mc, dom0), mc, dom1, shapely.LineString([c0[-1], new]))
    whole = cut(mc, dom1)
    assert local.n_cover == whole.n_cover and local.n_elem == whole.n_elem
    assert canonical(local) == canonical(whole)


def test_growth_into_a_hole_stops_there_and_says_so(tmp_path):
    """An edge crack aimed at a hole, steps longer than the gap: the crack ends on the hole and
    the history names it; the VTU series, the history and the path figure are written."""
    hole = [(0.6, -0.1), (0.6, 0.1), (0.8, 0.1), (0.8, -0.1)]
    dom, form = tension_strip([(0.0, 0.0), (0.4, 0.0)], height=1.0, holes=[hole])
    mc = nmm.MathCover.triangles(dom, 0.2, offset=(0.013, 0.021))
    hist = nmm.grow(dom, form, mc, step=0.35, n_steps=3, out=tmp_path, progress=False)
    assert "reached hole 0" in hist.reason, hist.reason
    tip = hist.domain.cracks[0][-1]
    assert abs(tip[0] - 0.6) <= 1e-9 and abs(tip[1]) <= 0.1, tip
    assert len(hist.steps) == 1
    assert (tmp_path / "step_000.vtu").exists() and (tmp_path / "history.json").exists()
    assert (tmp_path / "paths.png").exists()


@pytest.mark.slow
def test_inclined_crack_kinks_at_the_criterion_angle():
    """β = 45°: the first step turns by the hoop-stress angle of the exact K (-53.1°) within 1°."""
    beta = np.pi / 4
    dom, _, form, (k1, k2) = inclined_crack(beta)
    mc = nmm.MathCover.triangles(dom, 0.2, offset=(0.03, 0.05))
    hist = nmm.grow(dom, form, mc, step=0.2, n_steps=1, degree=1, progress=False)
    want = np.degrees(kink_angle(k1, k2))
    for rec in hist.steps:
        assert abs(rec["kink_deg"] - want) <= 1.0, (rec, want)


@pytest.mark.slow
def test_mode_one_crack_grows_straight():
    """Westergaard's mode-I Griffith crack (τ = 0, symmetric): both tips grow along y = 0."""
    dom, _, form, _ = griffith(tau=0.0)
    mc = nmm.MathCover.triangles(dom, 0.125, offset=(0.03, 0.05))
    hist = nmm.grow(dom, form, mc, step=0.15, n_steps=2, progress=False)
    for rec in hist.steps:
        assert abs(rec["kink_deg"]) <= 1.0, rec
    for path in hist.paths.values():
        assert np.max(np.abs(np.asarray(path)[:, 1])) <= 0.01 * 0.3, path


def test_bad_growth_input_is_named():
    dom, _, form, _ = griffith()
    mc = nmm.MathCover.triangles(dom, 0.5)
    with pytest.raises(ValueError, match="step must be a positive length, got 0.0"):
        nmm.grow(dom, form, mc, step=0.0, n_steps=1)
    with pytest.raises(ValueError, match="n_steps"):
        nmm.grow(dom, form, mc, step=0.1, n_steps=0)
    with pytest.raises(TypeError, match="form must be an nmm.Elasticity"):
        nmm.grow(dom, nmm.Poisson(k=1.0), mc, step=0.1, n_steps=1)
    edge = nmm.Domain.polygon(dom.outer, cracks=[[(-1.0, 0.0), (0.0, 0.0)]])
    with pytest.raises(ValueError, match="end 0 of cracks\\[0\\]"):  # on the boundary: no tip
        nmm.grow(edge, form, mc, step=0.1, n_steps=1, tips=[(0, 0)])
    with pytest.raises(ValueError, match="cracks\\[0\\] lies outside the domain"):
        nmm.Domain.polygon(dom.outer, cracks=[[(2.0, 2.0), (3.0, 3.0)]])
