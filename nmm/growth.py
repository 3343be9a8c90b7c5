"""Quasi-static crack growth by the maximum hoop stress criterion on a fixed mathematical cover.

Each step solves the elastic body, takes K_I, K_II at every growing tip (``nmm.stress_intensity``),
turns the tip by the criterion's kink angle θ_c = 2 arctan[(K_I − √(K_I² + 8 K_II²)) / (4 K_II)]
(Erdogan & Sih 1963) and adds a segment of the given length. The mathematical cover is never
changed: only the cells along the new segments are cut again (``nmm.topology.recut``), as the NMM
intends. A tip whose new segment would leave the body stops where it meets the boundary (outer
boundary, a hole, another crack), and the history says so.

Choices (why):
* Every tip inside the body carries the near-tip functions (``terms = p + 1`` orders) on a
  cut-off disc no larger than the straight part of its crack behind it (the functions jump along
  their branch ray, which must run along the crack), or, where that part is shorter than 1.5 cells,
  on its elements' covers only.
* The step is explicit (no predictor-corrector): the path converges with the step length.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from tqdm.auto import tqdm

from .covers import MathCover
from .drivers import solve
from .enrich import Enrichment
from .forms.elasticity import Elasticity
from .fracture import default_radius, kink_angle, stress_intensity
from .geometry import Domain
from .space import ManifoldSpace
from .topology import cut, recut


@dataclass
class GrowthHistory:
    """What a growth run did: ``paths[(crack, end)]`` the tip positions (the first is the initial
    tip), ``steps`` one record per step and tip (K_I, K_II, J, kink angle θ_c in degrees, domain
    radius, the times of the re-cut and of the solve), the final ``domain``, and ``reason``: why it
    stopped."""

    paths: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)
    domain: Domain | None = None
    reason: str = ""
    field: object = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "paths": {f"{c},{e}": np.asarray(p).tolist() for (c, e), p in self.paths.items()},
                "steps": self.steps,
                "reason": self.reason,
            },
            indent=1,
        )

    def plot(self, ax=None, show_domain: bool = True):
        """The crack paths (and the body's boundary) on a matplotlib axis."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 5))
        if show_domain and self.domain is not None:
            for ring in (self.domain.outer, *self.domain.holes):
                r = np.vstack([ring, ring[:1]])
                ax.plot(r[:, 0], r[:, 1], "k-", lw=1)
            for c in self.domain.cracks:
                ax.plot(c[:, 0], c[:, 1], "r-", lw=1.5)
        for p in self.paths.values():
            p = np.asarray(p)
            ax.plot(p[:, 0], p[:, 1], "b.", ms=3)
        ax.set_aspect("equal")
        return ax


def _tips(domain: Domain, tips):
    """The growing tips ``[(crack, end)]``: given, or every crack end inside the body."""
    if tips is None:
        out = []
        for c, line in enumerate(domain.cracks):
            for end in (0, -1):
                pt = shapely.Point(np.asarray(line)[end])
                if domain.shape.contains(pt):
                    out.append((c, end))
        if not out:
            raise ValueError("grow: the domain has no crack tip inside the body")
        return out
    out = []
    for t in tips:
        if not (isinstance(t, tuple | list) and len(t) == 2):
            raise ValueError(f"tips must be (crack, end) pairs, got {t!r}")
        Enrichment.crack_tip(domain, int(t[0]), int(t[1]))  # names a tip outside the body
        out.append((int(t[0]), int(t[1])))
    return out


def _enrichments(domain, cover, degree, terms, radius):
    """Near-tip functions at every tip inside the body (see the module's choices)."""
    out = []
    for c, line in enumerate(domain.cracks):
        for end in (0, -1):
            if not domain.shape.contains(shapely.Point(np.asarray(line)[end])):
                continue
            r = (
                default_radius(domain, c, end)
                if radius is None
                else min(radius, default_radius(domain, c, end))
            )
            r = r if r >= 1.5 * cover.h else None
            out.append(
                Enrichment.crack_tip(
                    domain, c, end, functions="elastic", radius=r, terms=terms if r else 1
                )
            )
    return out


def _advance(domain, tip, direction, step):
    """The new tip: ``tip + step × direction``, or where that segment first meets the boundary or
    another crack (then also what it met)."""
    new = tip + step * direction
    seg = shapely.LineString([tip, new])
    hits = []
    rings = [("the outer boundary", domain.outer)] + [
        (f"hole {k}", h) for k, h in enumerate(domain.holes)
    ]
    for name, ring in rings:
        x = seg.intersection(shapely.LinearRing(ring))
        if not x.is_empty:
            hits.append((name, x))
    for k, other in enumerate(domain.cracks):
        x = seg.intersection(shapely.LineString(other))
        x = x.difference(shapely.Point(tip).buffer(1e-9 * step))
        if not x.is_empty:
            hits.append((f"crack {k}", x))
    if not hits:
        return new, None
    best = None
    for name, x in hits:
        d = shapely.Point(tip).distance(x)
        if best is None or d < best[0]:
            best = (d, name, x)
    d, name, x = best
    # the point of x nearest the tip, on the segment
    return tip + d * direction, name


def grow(
    domain: Domain,
    form: Elasticity,
    cover: MathCover,
    step: float,
    n_steps: int,
    degree: int = 1,
    tips=None,
    radius: float | None = None,
    out=None,
    progress: bool = True,
) -> GrowthHistory:
    """Grow the cracks of ``domain`` ``n_steps`` times by ``step`` under the loads of ``form``.

    Args:
        domain: the cracked body (2D).
        form: an ``nmm.Elasticity`` with its boundary conditions (fixed during the run).
        cover: the mathematical cover (never changed).
        step: the length added at each growing tip per step (> 0).
        n_steps: number of steps (>= 1).
        degree: cover-function order p; the tips carry p + 1 orders of the near-tip expansion.
        tips: ``[(crack, end)]`` the tips that grow (default: every tip inside the body).
        radius: the largest cut-off disc of the near-tip functions (default: as the SIF domain).
        out: a directory: each step's field as ``step_###.vtu`` (ParaView reads the series),
            ``history.json`` after every step (nothing is lost if a run stops), ``paths.png``.
        progress: a progress bar.

    Returns:
        A :class:`GrowthHistory`.
    """
    if not isinstance(domain, Domain) or domain.dim != 2:
        raise TypeError("domain must be a 2D nmm.Domain with cracks")
    if not isinstance(form, Elasticity):
        raise TypeError(f"form must be an nmm.Elasticity, got {type(form).__name__}")
    if not isinstance(cover, MathCover) or cover.dim != 2:
        raise TypeError("cover must be a 2D nmm.MathCover")
    if (
        isinstance(step, bool)
        or not isinstance(step, int | float | np.floating)
        or not np.isfinite(step)
        or step <= 0
    ):
        raise ValueError(f"step must be a positive length, got {step!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    growing = _tips(domain, tips)
    outdir = None
    if out is not None:
        outdir = Path(out)
        outdir.mkdir(parents=True, exist_ok=True)
    cracks = [np.asarray(c, float) for c in domain.cracks]
    hist = GrowthHistory(paths={t: [cracks[t[0]][t[1]].copy()] for t in growing})
    topo = cut(cover, domain)
    bar = tqdm(total=n_steps, disable=not progress, desc="grow", unit="step")
    u = None
    for k in range(n_steps):
        t0 = time.perf_counter()
        enrich = _enrichments(domain, cover, degree, degree + 1, radius)
        V = ManifoldSpace(cover, domain, degree=degree, components=2, enrich=enrich, topology=topo)
        u = solve(V, form)
        t_solve = time.perf_counter() - t0
        if outdir is not None:
            from .io import write_vtu

            write_vtu(u, outdir / f"step_{k:03d}.vtu", derived=form)
        new_segments, stopped = [], []
        for c, end in growing:
            ks = stress_intensity(u, form, c, end)
            theta = kink_angle(ks.K_I, ks.K_II)
            tip = cracks[c][end]
            direction = np.array([np.cos(ks.angle + theta), np.sin(ks.angle + theta)])
            new, met = _advance(domain, tip, direction, step)
            hist.steps.append(
                {
                    "step": k,
                    "crack": c,
                    "end": end,
                    "tip": tip.tolist(),
                    "K_I": ks.K_I,
                    "K_II": ks.K_II,
                    "J": ks.J,
                    "kink_deg": float(np.degrees(theta)),
                    "radius": ks.radius,
                    "solve_s": t_solve,
                }
            )
            if met is not None and np.linalg.norm(new - tip) <= 1e-9 * step:
                stopped.append(((c, end), met))  # already on it: nothing to add
                continue
            cracks[c] = np.vstack([cracks[c], new]) if end == -1 else np.vstack([new, cracks[c]])
            hist.paths[(c, end)].append(new)
            new_segments.append(shapely.LineString([tip, new]))
            if met is not None:
                stopped.append(((c, end), met))
        if new_segments:
            domain = Domain.polygon(domain.outer, holes=domain.holes, cracks=cracks)
            t0 = time.perf_counter()
            topo = recut(topo, cover, domain, shapely.union_all(new_segments))
            t_recut = time.perf_counter() - t0
            for rec in hist.steps:
                if rec["step"] == k:
                    rec["recut_s"] = t_recut
        for t, met in stopped:
            growing.remove(t)
            hist.reason += f"crack {t[0]} end {t[1]} stopped at step {k}: it reached {met}. "
        hist.domain = domain
        if outdir is not None:
            (outdir / "history.json").write_text(hist.to_json())
        bar.update(1)
        if not growing:
            break
    bar.close()
    if growing:
        hist.reason += f"{n_steps} steps done."
    hist.domain, hist.field = domain, u
    if outdir is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = hist.plot()
        ax.figure.savefig(outdir / "paths.png", dpi=120)
        plt.close(ax.figure)
    return hist
