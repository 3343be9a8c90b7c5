"""One training loop for the Deep Manifold experiments: an optax transformation on a batch of
models at once (every leaf of the parameters has a leading model axis), ``stage`` steps per
jitted ``lax.scan``, the loss of every step kept.

The scan is one module-level ``eqx.filter_jit`` program whose static arguments are the loss
function, the optimiser and the chunk length: callers that pass the same loss and optimiser
objects (and shapes) reuse one compiled program across calls, e.g. every degree J of the
bottleneck experiment, with the learning rate and ε held in the optimiser's state
(``optax.inject_hyperparams``).
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import optax


@eqx.filter_jit
def _scan(loss, opt, params, state, data, shared, length: int):
    grad = jax.vmap(jax.value_and_grad(loss), in_axes=(0, 0, None))

    def step(carry, _):
        p, st = carry
        value, g = grad(p, data, shared)
        updates, st = jax.vmap(opt.update)(g, st, p)
        return (optax.apply_updates(p, updates), st), value

    (params, state), values = jax.lax.scan(step, (params, state), None, length=length)
    return params, state, values


def train_batch(
    loss,
    opt,
    params,
    data,
    shared=None,
    *,
    steps: int,
    stage: int,
    state=None,
    measure=None,
    what: str = "training",
):
    """Minimise ``loss(p, d, shared)`` (one model's parameters ``p``, its data ``d``, data common
    to all) for every model of the batch ``params`` / ``data`` by ``opt``.

    ``state``: the batch's optimiser state (default: ``vmap(opt.init)(params)``); ``measure``:
    called on the batch's parameters at step 0 and after every chunk. A non-finite loss is a
    ``FloatingPointError`` naming ``what`` and the steps. Returns ``(params, losses (steps,
    models), records [(step, measure(params)), ...])``.
    """
    state = jax.vmap(opt.init)(params) if state is None else state
    losses, records = [], [] if measure is None else [(0, measure(params))]
    done = 0
    while done < steps:
        n = min(stage, steps - done)
        params, state, values = _scan(loss, opt, params, state, data, shared, n)
        values = np.asarray(values)
        if not np.all(np.isfinite(values)):
            raise FloatingPointError(
                f"{what}: a loss became non-finite in steps {done}..{done + n} (learning rate too "
                "large?)"
            )
        losses.append(values)
        done += n
        if measure is not None:
            records.append((done, measure(params)))
    return params, np.concatenate(losses), records
