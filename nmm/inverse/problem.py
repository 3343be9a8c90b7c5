"""An inverse problem: a forward map, observations of its state and a regulariser.

    J(θ) = ½ Σ_k |r_k(θ)|² + Σ_j R_j(θ),   r_k = (O_k(forward(θ)) − d_k) / σ_k

The forward map is any JAX function of the parameters, typically a differentiable solve
(``nmm.solve``, ``nmm.integrate``): its gradient is the adjoint (one transpose solve with the
forward factorisation), its Jacobian m adjoint products batched into one program.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from ..field import Field
from .observations import Observations


class InverseProblem(eqx.Module):
    """What to identify and from which data.

    Attributes:
        forward: ``forward(theta) -> state``: an :class:`nmm.Field`, a callable of one point, the
            predictions, or — with several observation sets — a tuple of one state per set.
            Solve with ``throw=False`` inside it: a trial step that makes the problem ill-posed
            (a conductivity ≤ 0) then gives a NaN objective and is rejected, where ``throw=True``
            would stop the whole inversion.
        observations: one :class:`Observations` or a tuple of them.
        regularisation: a regulariser (``R(theta) -> number``, e.g. :class:`Tikhonov`,
            :class:`H1`, :class:`TotalVariation`) or a tuple of them (summed); ``()`` for none.
    """

    forward: Callable = eqx.field(static=True)
    observations: tuple
    regularisation: tuple

    def __init__(self, forward, observations, regularisation=()):
        if not callable(forward):
            raise TypeError(f"forward must be a callable theta -> state, got {type(forward).__name__}")
        obs = observations if isinstance(observations, tuple | list) else (observations,)
        for i, o in enumerate(obs):
            if not isinstance(o, Observations):
                raise TypeError(
                    f"observations[{i}] must be an nmm.inverse.Observations, got {type(o).__name__}"
                )
        if len(obs) == 0:
            raise ValueError("observations: give at least one set of observations")
        regs = regularisation if isinstance(regularisation, tuple | list) else (regularisation,)
        for i, r in enumerate(regs):
            if not callable(r):
                raise TypeError(
                    f"regularisation[{i}] must be callable theta -> number, got {type(r).__name__}"
                )
        self.forward = forward
        self.observations = tuple(obs)
        self.regularisation = tuple(regs)

    @property
    def size(self) -> int:
        """Number of data m (all observation sets)."""
        return sum(o.size for o in self.observations)

    def states(self, theta) -> tuple:
        state = self.forward(theta)
        if len(self.observations) == 1:
            return (state,)
        if not (isinstance(state, tuple | list) and len(state) == len(self.observations)):
            raise ValueError(
                f"forward must return one state per observation set ({len(self.observations)}), "
                f"got {type(state).__name__}"
            )
        return tuple(state)

    def residual(self, theta) -> jax.Array:
        """The whitened residual r(θ), ``(m,)``."""
        return self.residual_of(self.states(theta))

    def residual_of(self, states: tuple) -> jax.Array:
        """The whitened residual of given forward states (one per observation set)."""
        parts = []
        for o, s in zip(self.observations, states, strict=True):
            r = o.whitened(s)
            if isinstance(s, Field):  # a failed solve (throw=False) is no prediction: J is NaN
                r = jnp.where(s.info.ok, r, jnp.nan)
            parts.append(r)
        return jnp.concatenate(parts)

    def penalty(self, theta) -> jax.Array:
        """Σ_j R_j(θ)."""
        return sum((jnp.asarray(R(theta), float) for R in self.regularisation), jnp.zeros(()))

    def objective(self, theta) -> jax.Array:
        """½|r(θ)|² + Σ_j R_j(θ)."""
        r = self.residual(theta)
        return 0.5 * r @ r + self.penalty(theta)

    def with_data(self, *values) -> InverseProblem:
        """The same problem with other data (one array per observation set; same shapes, no
        recompilation; ``jax.vmap`` over it inverts many data sets)."""
        if len(values) != len(self.observations):
            raise ValueError(f"with_data takes {len(self.observations)} array(s), got {len(values)}")
        obs = tuple(o.with_values(v) for o, v in zip(self.observations, values, strict=True))
        return eqx.tree_at(lambda p: p.observations, self, obs)
