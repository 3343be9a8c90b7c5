"""Observations: data d ≈ O(state) + ε with Gaussian noise ε ~ N(0, σ²), and the whitened
residual r = (O(state) − d) / σ that every inversion minimises (½|r|² is the misfit).

``O`` is the values of a field at points (the common case), or any functional of the forward
state (a flux, a mean, values of a time history). The forward map of an inverse problem returns
that state: an :class:`nmm.Field`, a callable of one point, or the predictions themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..checks import real_array
from ..field import Field


def _concrete(a) -> bool:
    return not isinstance(a, jax.core.Tracer)


class Observations(eqx.Module):
    """Noisy data of a forward state.

    Attributes:
        values: ``(m,)`` data (``(m, n)`` for an n-component field; flattened in the residual).
        noise: the noise's standard deviation σ > 0, one number or ``(m,)`` / ``values``-shaped.
        points: ``(m, dim)`` observation points, or None when ``functional`` is given.
        functional: ``functional(state) -> values``-shaped predictions (static), or None for
            point values.

    Build with :meth:`at_points` or :meth:`of`; :func:`synthetic` makes noisy data of a known
    state. Checked on construction (when concrete): finite values and points, σ > 0, points
    inside ``domain`` when one is given (else the first inversion checks them against the
    forward field, which is NaN outside its domain).
    """

    values: jax.Array
    noise: jax.Array
    points: jax.Array | None = None
    functional: Callable | None = eqx.field(static=True, default=None)

    @classmethod
    def at_points(cls, points, values, noise, *, domain=None) -> Observations:
        """Values of the forward field at ``points (m, dim)`` (1D also ``(m,)``)."""
        pts = points if isinstance(points, jax.Array) else jnp.asarray(real_array(points, "points"))
        if pts.ndim == 1:
            pts = pts[:, None]
        if pts.ndim != 2 or pts.shape[0] == 0:
            raise ValueError(f"points must have shape (m, dim) with m >= 1, got {tuple(pts.shape)}")
        if _concrete(pts) and not bool(jnp.all(jnp.isfinite(pts))):
            bad = int(np.argmax(~np.all(np.isfinite(np.asarray(pts)), axis=1)))
            raise ValueError(
                f"points: not finite at observation {bad} ({np.asarray(pts)[bad].tolist()})"
            )
        if domain is not None and _concrete(pts):
            inside = domain.contains(np.asarray(pts))
            if not np.all(inside):
                first = int(np.argmin(inside))
                raise ValueError(
                    f"points: {int(np.sum(~inside))} of {len(inside)} observation points lie "
                    f"outside the domain (first: {np.asarray(pts)[first].tolist()})"
                )
        obs = cls(_values(values, pts.shape[0]), _noise(noise, values), pts.astype(float), None)
        return obs

    @classmethod
    def of(cls, functional: Callable, values, noise) -> Observations:
        """Data of ``functional(state)`` (any function of the forward state, e.g. a boundary
        flux or the values of a time history)."""
        if not callable(functional):
            raise TypeError(f"functional must be callable, got {type(functional).__name__}")
        vals = _values(values, None)
        return cls(vals, _noise(noise, vals), None, functional)

    @property
    def size(self) -> int:
        """Number of data, m."""
        return int(np.prod(self.values.shape))

    def predict(self, state) -> jax.Array:
        """The predictions ``O(state)``, flattened to ``(m,)``."""
        if self.functional is not None:
            out = self.functional(state)
        elif isinstance(state, Field) or callable(state):
            out = state(self.points) if isinstance(state, Field) else jax.vmap(state)(self.points)
        else:  # the forward map computed the predictions itself
            out = state
        out = jnp.asarray(out)
        if out.size != self.values.size:
            raise ValueError(
                f"the forward state gives {out.size} predictions for {self.values.size} data "
                f"(shape {tuple(out.shape)} against values {tuple(self.values.shape)})"
            )
        return out.reshape(-1)

    def whitened(self, state) -> jax.Array:
        """r = (O(state) − d) / σ, ``(m,)``."""
        sigma = jnp.broadcast_to(self.noise, self.values.shape).reshape(-1)
        return (self.predict(state) - self.values.reshape(-1)) / sigma

    def with_values(self, values) -> Observations:
        """The same observations with other data (same shape: no recompilation; vmap over it
        for batches of data sets)."""
        values = jnp.asarray(values, dtype=float)
        if values.shape != self.values.shape:
            raise ValueError(
                f"values must have shape {tuple(self.values.shape)}, got {tuple(values.shape)}"
            )
        return eqx.tree_at(lambda o: o.values, self, values)

    @property
    def discrepancy(self) -> float:
        """√m: the expected |r| at the truth (E|r|² = m for Gaussian noise of level σ)."""
        return float(np.sqrt(self.size))


def _values(values, m) -> jax.Array:
    vals = values if isinstance(values, jax.Array) else jnp.asarray(real_array(values, "values"))
    vals = vals.astype(float)
    if vals.ndim == 0 or (m is not None and vals.shape[0] != m):
        raise ValueError(
            f"values must have one entry per observation point ({m}), got shape {tuple(vals.shape)}"
            if m is not None
            else f"values must be an array of data, got shape {tuple(vals.shape)}"
        )
    if _concrete(vals) and not bool(jnp.all(jnp.isfinite(vals))):
        bad = int(np.argmax(~np.isfinite(np.asarray(vals).reshape(-1))))
        raise ValueError(f"values: not finite at datum {bad} ({np.asarray(vals).reshape(-1)[bad]})")
    return vals


def _noise(noise, values) -> jax.Array:
    if noise is None:
        raise ValueError("noise must be given: the standard deviation σ > 0 of the data's noise")
    sig = noise if isinstance(noise, jax.Array) else jnp.asarray(real_array(noise, "noise"))
    sig = sig.astype(float)
    shape = np.shape(values)
    if sig.ndim and sig.shape != tuple(shape) and sig.shape != tuple(shape[:1]):
        raise ValueError(
            f"noise must be a number or have the shape of values {tuple(shape)}, got {tuple(sig.shape)}"
        )
    if sig.ndim == 1 and len(shape) == 2:
        sig = sig[:, None]
    if _concrete(sig) and not bool(jnp.all(jnp.isfinite(sig) & (sig > 0))):
        bad = np.asarray(sig).reshape(-1)
        first = bad[np.argmax(~(np.isfinite(bad) & (bad > 0)))]
        raise ValueError(f"noise must be positive and finite (the standard deviation σ), got {first}")
    return sig


def synthetic(truth, points, noise, key, *, domain=None) -> Observations:
    """Noisy point data of a known state: ``truth(points) + σ·N(0, 1)`` (``truth`` a callable of
    one point or an :class:`nmm.Field`), drawn with the PRNG ``key``."""
    pts = jnp.asarray(real_array(points, "points"), dtype=float)
    pts = pts[:, None] if pts.ndim == 1 else pts
    clean = truth(pts) if isinstance(truth, Field) else jax.vmap(truth)(pts)
    sigma = _noise(noise, clean)
    draw = jax.random.normal(key, clean.shape, clean.dtype)
    return Observations.at_points(pts, clean + sigma * draw, sigma, domain=domain)
