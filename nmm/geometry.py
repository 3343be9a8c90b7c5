"""Physical domains: an interval in 1D; a polygon with polygon holes and crack polylines in 2D.

Host-side only (numpy + shapely). Shapely (GEOS) is used for validity checks and, in
``topology.py``, for clipping cover cells against the domain: robust polygon clipping is exactly
what it is built and tested for, and writing it again by hand would only add bugs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString, Polygon

from .checks import real_array


def _as_points(value, name: str, min_len: int) -> np.ndarray:
    arr = real_array(value, name)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < min_len:
        raise ValueError(f"{name} must be an array of shape (n >= {min_len}, 2), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite coordinates: {arr.tolist()}")
    if np.allclose(arr[0], arr[-1]) and arr.shape[0] > min_len:
        arr = arr[:-1]  # accept closed rings
    return arr


def _ccw(ring: np.ndarray, ccw: bool) -> np.ndarray:
    x, y = ring[:, 0], ring[:, 1]
    area2 = np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    return ring if (area2 > 0) == ccw else ring[::-1].copy()


@dataclass(frozen=True, eq=False)
class Domain:
    """A physical domain.

    Build it with :meth:`interval` (1D) or :meth:`polygon` (2D). In 2D the outer ring is stored
    counter-clockwise and holes clockwise; cracks are open polylines that may end inside the domain
    (crack tips), reach the boundary (edge crack) or cross it (through crack). In 1D cracks are
    points where the field may jump.
    """

    dim: int
    outer: np.ndarray  # 1D: (2,) = (a, b); 2D: (n, 2)
    holes: tuple[np.ndarray, ...] = ()
    cracks: tuple[np.ndarray, ...] = ()  # 1D: scalars; 2D: (m, 2) polylines
    shape: object = field(default=None, repr=False)  # shapely Polygon (2D)

    @classmethod
    def interval(cls, a: float, b: float, cracks=()) -> Domain:
        """The interval [a, b]; ``cracks`` are interior points where the field may jump."""
        a, b = float(real_array(a, "a").reshape(-1)[0]), float(real_array(b, "b").reshape(-1)[0])
        if not (np.isfinite(a) and np.isfinite(b)) or not b > a:
            raise ValueError(f"interval needs finite a < b, got a={a!r}, b={b!r}")
        cr = tuple(float(c) for c in np.atleast_1d(real_array(cracks, "cracks")).reshape(-1))
        for c in cr:
            if not a < c < b:
                raise ValueError(f"cracks: point {c!r} is not inside the interval ({a}, {b})")
        return cls(dim=1, outer=np.array([a, b]), cracks=tuple(sorted(cr)))

    @classmethod
    def polygon(cls, outer, holes=(), cracks=()) -> Domain:
        """A polygon with optional polygon holes and crack polylines.

        Args:
            outer: ``(n, 2)`` vertices of the outer boundary (either orientation, open or closed).
            holes: sequence of ``(m, 2)`` vertex arrays, each strictly inside ``outer``.
            cracks: sequence of ``(k, 2)`` polylines (k >= 2) that intersect the domain.

        Raises:
            ValueError: self-intersecting or zero-area rings, holes outside the domain or touching
                each other, cracks that miss the domain, non-finite coordinates.
        """
        ring = _ccw(_as_points(outer, "outer", 3), ccw=True)
        hole_rings = []
        for k, hole in enumerate(holes):
            hole_rings.append(_ccw(_as_points(hole, f"holes[{k}]", 3), ccw=False))
        outer_poly = Polygon(ring)
        if not outer_poly.is_valid or outer_poly.area <= 0.0:
            raise ValueError(
                f"outer: polygon is self-intersecting or has zero area "
                f"({shapely.is_valid_reason(outer_poly)}, area={outer_poly.area:g})"
            )
        for k, hole in enumerate(hole_rings):
            hp = Polygon(hole)
            if not hp.is_valid or hp.area <= 0.0:
                raise ValueError(
                    f"holes[{k}]: polygon is self-intersecting or has zero area "
                    f"({shapely.is_valid_reason(hp)}, area={hp.area:g})"
                )
            if not outer_poly.contains_properly(hp):
                raise ValueError(f"holes[{k}] is not strictly inside the outer polygon: {hole.tolist()}")
        shape = Polygon(ring, hole_rings)
        if not shape.is_valid:
            raise ValueError(f"holes overlap or touch each other: {shapely.is_valid_reason(shape)}")
        crack_lines = []
        for k, crack in enumerate(cracks):
            c = real_array(crack, f"cracks[{k}]")
            if c.ndim != 2 or c.shape[1] != 2 or c.shape[0] < 2:
                raise ValueError(
                    f"cracks[{k}] must be a polyline of shape (k >= 2, 2), got shape {c.shape}"
                )
            if not np.all(np.isfinite(c)):
                raise ValueError(f"cracks[{k}] contains non-finite coordinates: {c.tolist()}")
            line = LineString(c)
            if line.length <= 0 or not line.is_simple:
                raise ValueError(f"cracks[{k}] has zero length or intersects itself: {c.tolist()}")
            if shape.intersection(line).length <= 1e-12 * line.length:
                raise ValueError(f"cracks[{k}] lies outside the domain: {c.tolist()}")
            crack_lines.append(c)
        return cls(dim=2, outer=ring, holes=tuple(hole_rings), cracks=tuple(crack_lines), shape=shape)

    @property
    def bounds(self) -> np.ndarray:
        """``(2, dim)`` array: lower and upper corner of the bounding box."""
        if self.dim == 1:
            return self.outer.reshape(2, 1)
        return np.stack([self.outer.min(axis=0), self.outer.max(axis=0)])

    @property
    def measure(self) -> float:
        """Length (1D) or area (2D)."""
        return float(self.outer[1] - self.outer[0]) if self.dim == 1 else float(self.shape.area)

    @property
    def crack_lines(self) -> MultiLineString | None:
        """The cracks clipped to the closed domain, as one shapely geometry (2D), or None."""
        if self.dim == 1 or not self.cracks:
            return None
        clipped = MultiLineString([LineString(c) for c in self.cracks]).intersection(self.shape)
        parts = [g for g in shapely.get_parts(clipped) if g.geom_type == "LineString" and g.length > 0]
        return MultiLineString(parts)

    def contains(self, points) -> np.ndarray:
        """Boolean mask of the points that lie in the closed domain."""
        pts = real_array(points, "points")
        if self.dim == 1:
            x = pts.reshape(-1)
            return (x >= self.outer[0]) & (x <= self.outer[1])
        pts = pts.reshape(-1, 2)
        return shapely.covers(self.shape, shapely.points(pts))
