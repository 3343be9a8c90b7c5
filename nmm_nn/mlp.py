"""Multi-layer perceptrons as equinox Modules, with the structure the bridge to covers needs.

Layers are kept as plain ``weights[l] (n_out, n_in)`` and ``biases[l] (n_out,)`` arrays (not
``eqx.nn.Linear``): the region and cover code reads them layer by layer, and ``from_arrays`` builds
exact networks (tent maps, NMM fields) from given numbers.

Activations:
* ``relu``; ``hat`` (``max(0, 1 - |z|)``, the NMM hat weight of a reference patch: three kinks at
  z = -1, 0, 1); both piecewise linear, so ``nmm_nn.covers`` can compute their exact regions;
* ``tanh``;
* ``sin``: a SIREN (Sitzmann et al. 2020): ``sin(omega0 * z)`` with first-layer weights
  ``U(-1/n, 1/n)`` and hidden weights ``U(-sqrt(6/n)/omega0, sqrt(6/n)/omega0)``.
Other activations initialise weights and biases ``U(-1/sqrt(n), 1/sqrt(n))`` (equinox's Linear).

An optional Fourier-feature input layer (Tancik et al. 2020) maps ``x`` to
``[sin(2π B x), cos(2π B x)]`` with ``B ~ N(0, scale²)`` drawn once and frozen: it is not trained
(``trainable`` marks it) and does not count as a parameter.

Optional input ``features`` are appended to the input (after the Fourier layer, if any): a callable
of one point, or cut-off ``nmm.Enrichment`` objects, whose functions times their cut-off are the
features — the near-tip functions of a crack, which a network of x alone cannot form (they jump
across the crack): the "enriched" deep energy method of fracture (``benchmarks/fracture.py``).
An optional ``output_transform(x, y)`` maps the last layer's output ``y`` to the network's value
at ``x``: the hard-constraint ansatz ``g̃(x) + d(x) y`` of PINNs and the deep energy method, which
meets Dirichlet data exactly (Lagaris et al. 1998; DeepXDE's ``apply_output_transform``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import nmm  # float64, as in the engine; nmm.Field is a trainable model too

ACTIVATIONS = ("relu", "tanh", "sin", "hat")
PIECEWISE_LINEAR = ("relu", "hat")
KINKS = {"relu": (0.0,), "hat": (-1.0, 0.0, 1.0)}  # where each piecewise-linear activation bends


def _hat(z):
    return jnp.maximum(0.0, 1.0 - jnp.abs(z))


def _check_size(value, name: str, allow_scalar: bool = False) -> None:
    if allow_scalar and value == "scalar":
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        extra = " or 'scalar'" if allow_scalar else ""
        raise ValueError(f"{name} must be a positive integer{extra}, got {value!r}")


class MLP(eqx.Module):
    """A fully connected network ``R^in_size -> R^out_size``.

    Args:
        in_size: input dimension (1 or 2 for the problems of nmm).
        out_size: output dimension, or ``"scalar"`` (the default) for a scalar output.
        width: hidden width, or a sequence of hidden widths (then ``depth`` must be None or match).
        depth: number of hidden layers.
        activation: ``"relu" | "tanh" | "sin" | "hat"``.
        key: a ``jax.random`` key (required: initialisation is explicit).
        fourier_features: number m of random Fourier frequencies of the input layer (0 = none).
        fourier_scale: standard deviation of the frequencies.
        omega0: SIREN frequency (``activation="sin"`` only).
        features: extra inputs: a pure JAX callable of one point ``x (in_size,) -> (k,)``, or a
            sequence of ``nmm.Enrichment`` with a ``radius`` (their functions times the cut-off,
            as the NMM space carries them, e.g. the crack-tip functions).
            Not trained; they make the network a function of x and of the features.
        output_transform: a pure JAX callable ``(x, y) -> value`` of one point and the last
            layer's output (shape ``()`` for a scalar network, ``(out_size,)`` otherwise), of the
            same shape as ``y``.

    ``net(x)`` takes one point ``x`` of shape ``(in_size,)`` and returns a scalar or
    ``(out_size,)``; vmap it over points.
    """

    weights: tuple[jax.Array, ...]
    biases: tuple[jax.Array, ...]
    fourier: jax.Array | None
    features: Callable | None = eqx.field(static=True)
    output_transform: Callable | None = eqx.field(static=True)
    n_features: int = eqx.field(static=True)
    in_size: int = eqx.field(static=True)
    out_size: int | str = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    omega0: float = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int | str = "scalar",
        width: int | Sequence[int] = 64,
        depth: int | None = 3,
        activation: str = "tanh",
        *,
        key,
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        omega0: float = 30.0,
        features=None,
        output_transform=None,
    ):
        _check_size(in_size, "in_size")
        _check_size(out_size, "out_size", allow_scalar=True)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        widths = _hidden_widths(width, depth)
        if isinstance(fourier_features, bool) or not isinstance(fourier_features, int | np.integer):
            raise ValueError(
                f"fourier_features must be a non-negative integer, got {fourier_features!r}"
            )
        if fourier_features < 0:
            raise ValueError(
                f"fourier_features must be a non-negative integer, got {fourier_features!r}"
            )
        if not (np.isfinite(fourier_scale) and fourier_scale > 0):
            raise ValueError(f"fourier_scale must be a positive number, got {fourier_scale!r}")
        if not (np.isfinite(omega0) and omega0 > 0):
            raise ValueError(f"omega0 must be a positive number, got {omega0!r}")
        if not (isinstance(key, jax.Array) and key.shape in ((2,), ())):
            raise TypeError(f"key must be a jax.random key, got {key!r}")

        key, fkey = jr.split(key)
        if fourier_features:
            self.fourier = fourier_scale * jr.normal(fkey, (int(fourier_features), in_size), float)
            n_in = 2 * int(fourier_features)
        else:
            self.fourier = None
            n_in = in_size
        self.features, self.n_features = _feature_map(features, in_size)
        n_in += self.n_features
        n_out = 1 if out_size == "scalar" else int(out_size)
        sizes = [n_in, *widths, n_out]
        weights, biases = [], []
        for layer, k in enumerate(jr.split(key, len(sizes) - 1)):
            fan_in, fan_out = sizes[layer], sizes[layer + 1]
            if activation == "sin":
                bound = 1.0 / fan_in if layer == 0 else np.sqrt(6.0 / fan_in) / omega0
            else:
                bound = 1.0 / np.sqrt(fan_in)
            kw, kb = jr.split(k)
            weights.append(jr.uniform(kw, (fan_out, fan_in), float, -bound, bound))
            biases.append(jr.uniform(kb, (fan_out,), float, -bound, bound))
        self.weights, self.biases = tuple(weights), tuple(biases)
        self.in_size, self.out_size = int(in_size), out_size
        self.activation, self.omega0 = activation, float(omega0)
        self.output_transform = _check_transform(output_transform, in_size, out_size)

    @classmethod
    def from_arrays(cls, weights, biases, activation: str = "relu", out_size="scalar") -> MLP:
        """A network with the given layers (``weights[l] (n_{l+1}, n_l)``, ``biases[l]``)."""
        weights = [jnp.asarray(w, dtype=float) for w in weights]
        biases = [jnp.asarray(b, dtype=float) for b in biases]
        if len(weights) < 2 or len(weights) != len(biases):
            raise ValueError(
                f"weights and biases must be equally long lists of >= 2 layers, got "
                f"{len(weights)} and {len(biases)}"
            )
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise ValueError(f"layer {i}: weights {w.shape} and biases {b.shape} do not match")
            if i and w.shape[1] != weights[i - 1].shape[0]:
                raise ValueError(
                    f"layer {i}: weights take {w.shape[1]} inputs but layer {i - 1} has "
                    f"{weights[i - 1].shape[0]} outputs"
                )
        n_out = weights[-1].shape[0]
        if out_size == "scalar" and n_out != 1:
            raise ValueError(f"out_size='scalar' needs a last layer with 1 output, got {n_out}")
        template = cls(
            weights[0].shape[1],
            out_size,
            [w.shape[0] for w in weights[:-1]],
            None,
            activation,
            key=jr.PRNGKey(0),
        )
        return eqx.tree_at(lambda n: (n.weights, n.biases), template, (tuple(weights), tuple(biases)))

    # ------------------------------------------------------------------ structure

    @property
    def widths(self) -> tuple[int, ...]:
        """Hidden widths."""
        return tuple(int(w.shape[0]) for w in self.weights[:-1])

    @property
    def depth(self) -> int:
        return len(self.weights) - 1

    @property
    def n_params(self) -> int:
        """Trainable parameters (weights and biases; frozen Fourier frequencies excluded)."""
        return int(sum(w.size + b.size for w, b in zip(self.weights, self.biases, strict=True)))

    def act(self, z):
        if self.activation == "relu":
            return jax.nn.relu(z)
        if self.activation == "tanh":
            return jnp.tanh(z)
        if self.activation == "sin":
            return jnp.sin(self.omega0 * z)
        return _hat(z)

    # ------------------------------------------------------------------ evaluation

    def _input(self, x):
        x = jnp.asarray(x, dtype=self.weights[0].dtype)
        if self.in_size == 1 and x.ndim == 0:
            x = x.reshape(1)
        if x.shape != (self.in_size,):
            raise ValueError(
                f"x must be one point of shape ({self.in_size},), got shape {x.shape}; "
                "use jax.vmap(net) for many points"
            )
        if self.fourier is not None:
            t = 2 * jnp.pi * (jax.lax.stop_gradient(self.fourier) @ x)
            h = jnp.concatenate([jnp.sin(t), jnp.cos(t)])
        else:
            h = x
        if self.features is not None:
            h = jnp.concatenate([h, jnp.reshape(self.features(x), (self.n_features,))])
        return h

    def preactivations(self, x) -> list[jax.Array]:
        """Pre-activations of every hidden layer at one point (their signs are the activation
        pattern)."""
        h, out = self._input(x), []
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            z = w @ h + b
            out.append(z)
            h = self.act(z)
        return out

    def hidden(self, x):
        """Outputs of the last hidden layer at one point: the network's cover functions."""
        return self.act(self.preactivations(x)[-1])

    def __call__(self, x):
        y = self.weights[-1] @ self.hidden(x) + self.biases[-1]
        y = y[0] if self.out_size == "scalar" else y
        if self.output_transform is not None:
            y = self.output_transform(jnp.asarray(x, dtype=y.dtype).reshape(self.in_size), y)
        return y


def trainable(net):
    """Filter spec (a pytree of bools) marking the trained leaves: an MLP's weights and biases,
    an ``nmm.Field``'s cover-function coefficients (the NMM model trained by ``nmm_nn.train``)."""
    spec = jax.tree_util.tree_map(lambda _: False, net)
    if isinstance(net, nmm.Field):
        return eqx.tree_at(lambda f: f.coeffs, spec, True)
    return eqx.tree_at(
        lambda n: (n.weights, n.biases),
        spec,
        (tuple(True for _ in net.weights), tuple(True for _ in net.biases)),
    )


class EnrichmentFeatures:
    """x -> the functions of some cut-off ``nmm.Enrichment`` objects at x, times their cut-off
    χ(r), concatenated (as the NMM space carries them)."""

    def __init__(self, enrichments):
        self.enrichments = tuple(enrichments)

    def __call__(self, x):
        return jnp.concatenate([e.values(x) * e.cutoff(x) for e in self.enrichments])

    def __repr__(self) -> str:
        return "EnrichmentFeatures(" + ", ".join(repr(e) for e in self.enrichments) + ")"


def _feature_map(features, in_size: int):
    """``(callable or None, number of features)``, checked on an abstract point."""
    if features is None:
        return None, 0
    if not callable(features):
        try:
            items = tuple(features)
        except TypeError:
            items = None
        if not items or not all(isinstance(e, nmm.Enrichment) for e in items):
            raise TypeError(
                "features must be a callable of one point or a non-empty sequence of "
                f"nmm.Enrichment, got {features!r}"
            )
        if in_size != 2:
            raise ValueError(f"Enrichment features need in_size=2, got {in_size}")
        for e in items:
            if e.radius is None:
                # a crack-tip function jumps along its whole branch ray, on through uncracked
                # material beyond the crack: a network fed with it can cut the body in two
                raise ValueError(
                    f"features: {e!r} has no radius; give each enrichment a cut-off radius no "
                    "longer than its crack (its functions jump along the whole branch ray)"
                )
        features = EnrichmentFeatures(items)
    try:
        out = jax.eval_shape(features, jax.ShapeDtypeStruct((in_size,), jnp.float64))
    except Exception as err:  # noqa: BLE001 - say which argument is at fault
        raise TypeError(
            f"features(x) failed on a point of shape ({in_size},): {type(err).__name__}: {err}"
        ) from err
    if not hasattr(out, "shape") or len(out.shape) > 1 or int(np.prod(out.shape)) == 0:
        raise ValueError(
            f"features(x) must return a non-empty 1-D array, got {getattr(out, 'shape', out)!r}"
        )
    return features, int(np.prod(out.shape))


def _check_transform(transform, in_size: int, out_size):
    """The output transform, checked on abstract arguments (it must keep the output's shape)."""
    if transform is None:
        return None
    if not callable(transform):
        raise TypeError(f"output_transform must be a callable (x, y) -> value, got {transform!r}")
    shape = () if out_size == "scalar" else (int(out_size),)
    try:
        out = jax.eval_shape(
            transform,
            jax.ShapeDtypeStruct((in_size,), jnp.float64),
            jax.ShapeDtypeStruct(shape, jnp.float64),
        )
    except Exception as err:  # noqa: BLE001 - say which argument is at fault
        raise TypeError(
            f"output_transform(x, y) failed on x {(in_size,)}, y {shape}: {type(err).__name__}: {err}"
        ) from err
    if getattr(out, "shape", None) != shape:
        raise ValueError(
            f"output_transform(x, y) must return the shape of y {shape}, "
            f"got {getattr(out, 'shape', out)!r}"
        )
    return transform


def _hidden_widths(width, depth) -> list[int]:
    if isinstance(width, int | np.integer) and not isinstance(width, bool):
        if depth is None or isinstance(depth, bool) or not isinstance(depth, int | np.integer):
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        if depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        _check_size(width, "width")
        return [int(width)] * int(depth)
    try:
        widths = [int(w) for w in width]
    except TypeError:
        raise ValueError(
            f"width must be a positive integer or a sequence of them, got {width!r}"
        ) from None
    if not widths or any(w < 1 for w in widths) or list(width) != widths:
        raise ValueError(f"width must be a positive integer or a sequence of them, got {width!r}")
    if depth is not None and depth != len(widths):
        raise ValueError(f"depth={depth!r} does not match the {len(widths)} widths given")
    return widths
