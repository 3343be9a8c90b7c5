"""Full-batch training of an MLP on a :class:`Task` (optax), in jitted ``lax.scan`` chunks.

The step is compiled once per chunk length, ahead of time (so compile time is measured apart from
run time), and run ``chunk`` steps at a time inside ``lax.scan``; between chunks the host updates
the progress bar, records errors and writes checkpoints. Training is deterministic: the same
network (the same ``key``) and settings give the same history, bit for bit on one machine, and a
run resumed from a checkpoint continues the same curve.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import optax
from tqdm.auto import tqdm

import nmm

from .mlp import MLP, trainable
from .task import Task

OPTIMIZERS = ("adam", "lbfgs")


@dataclass
class History:
    """What happened during training.

    Attributes:
        loss: ``(steps,)`` the functional before each step.
        step: chunk ends (steps done), with ``wall`` the run time in seconds at each (compile
            time excluded) and ``errors`` the relative L2/H1 errors there (when the task has an
            exact solution).
        compile_time: seconds spent compiling the chunk functions (summed over resumed runs).
    """

    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    step: list[int] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    errors: dict[str, list[float]] = field(default_factory=dict)
    compile_time: float = 0.0

    @property
    def steps(self) -> int:
        return int(self.loss.size)

    def to_json(self) -> dict:
        return {
            "loss": self.loss.tolist(),
            "step": self.step,
            "wall": self.wall,
            "errors": self.errors,
            "compile_time": self.compile_time,
        }

    @classmethod
    def from_json(cls, d: dict) -> History:
        return cls(
            np.asarray(d["loss"], float),
            list(d["step"]),
            list(d["wall"]),
            {k: list(v) for k, v in d["errors"].items()},
            float(d["compile_time"]),
        )


def make_optimizer(optimizer, learning_rate):
    """An optax transformation from a name (``"adam" | "lbfgs"``) or the transformation itself.
    ``learning_rate`` is a number or an optax schedule (Adam); L-BFGS uses its line search."""
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer, False
    if optimizer == "adam":
        if not callable(learning_rate) and not (np.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(
                f"learning_rate must be a positive number or an optax schedule, got {learning_rate!r}"
            )
        return optax.adam(learning_rate), False
    if optimizer == "lbfgs":
        return optax.lbfgs(), True
    raise ValueError(
        f"optimizer must be one of {OPTIMIZERS} or an optax.GradientTransformation, got {optimizer!r}"
    )


def _chunk_fn(static, task_static, opt, line_search: bool, length: int):
    def run(params, state, task_arrays):
        task = eqx.combine(task_arrays, task_static)  # the form's callables are static

        def loss_fn(p):
            return task.loss(eqx.combine(p, static))

        def step(carry, _):
            p, s = carry
            if line_search:
                value, grad = optax.value_and_grad_from_state(loss_fn)(p, state=s)
                updates, s = opt.update(grad, s, p, value=value, grad=grad, value_fn=loss_fn)
            else:
                value, grad = jax.value_and_grad(loss_fn)(p)
                updates, s = opt.update(grad, s, p)
            return (optax.apply_updates(p, updates), s), value

        (params, state), losses = jax.lax.scan(step, (params, state), None, length=length)
        return params, state, losses

    return jax.jit(run)


def train(
    net: MLP | nmm.Field,
    task,
    space=None,
    *,
    steps: int,
    optimizer="adam",
    learning_rate=1e-3,
    chunk: int = 200,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    callback=None,
) -> tuple[MLP, History]:
    """Minimise ``task``'s functional over the network's weights and biases.

    Args:
        net: the :class:`MLP` (scalar output, input size = the task's dimension), or an
            :class:`nmm.Field` whose cover-function coefficients are trained (the NMM space
            with the network's optimiser: it separates the optimiser from the representation).
        task: a :class:`Task` (``Task.fit`` or ``Task.pde``), or what ``nmm`` solves: an
            ``nmm.Form`` (``nmm.Poisson``, ...) or a fit target (callable or ``(points, values)``),
            made into a task on ``space``'s quadrature with ``Task.of`` (Ritz form; exact = the target).
        space: the :class:`nmm.ManifoldSpace` whose quadrature defines the functional (only when
            ``task`` is not a Task).
        steps: total number of optimiser steps (a resumed run counts the steps already done).
        optimizer: ``"adam"`` (default), ``"lbfgs"`` or any ``optax.GradientTransformation``
            (for L-BFGS-like transformations that need the loss, use ``"lbfgs"``).
        learning_rate: Adam's step size, a number or an optax schedule.
        chunk: steps per jitted ``lax.scan`` call (errors and checkpoints at chunk ends).
        checkpoint: file path: network, optimiser state and history are written there after
            every chunk (one ``.npz`` file, leaves serialised by equinox); with ``resume=True``
            an existing checkpoint is loaded and training continues from it.
        progress: show a tqdm progress bar.
        callback: ``callback(step, model, history)`` after every chunk (to record anything over
            training without re-entering ``train``, which would compile again).

    Returns:
        ``(trained network, History)``.
    """
    task = Task.of(task, space)
    spec, meta = _model_spec(net, task)
    for name, value in (("steps", steps), ("chunk", chunk)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    opt, line_search = make_optimizer(optimizer, learning_rate)

    params, static = eqx.partition(net, spec)
    state = opt.init(params)
    history = History(errors={"L2": [], "H1": []} if task.has_exact else {})
    path = Path(checkpoint) if checkpoint is not None else None
    meta = {
        **meta,
        "optimizer": optimizer if isinstance(optimizer, str) else "optax transformation",
        "learning_rate": learning_rate if not callable(learning_rate) else "schedule",
    }
    if path is not None and resume and path.exists():
        params, state, history = _load(path, params, state, meta)
    if history.steps > steps:
        raise ValueError(
            f"steps={steps} is fewer than the {history.steps} steps already in the checkpoint"
        )

    task_arrays, task_static = eqx.partition(task, eqx.is_array)
    compiled: dict[int, object] = {}
    run_time = history.wall[-1] if history.wall else 0.0
    bar = tqdm(total=steps, initial=history.steps, disable=not progress, desc="train", unit="step")
    done = history.steps
    while done < steps:
        n = min(chunk, steps - done)
        if n not in compiled:
            t0 = time.perf_counter()
            fn = _chunk_fn(static, task_static, opt, line_search, n)
            compiled[n] = fn.lower(params, state, task_arrays).compile()
            history.compile_time += time.perf_counter() - t0
        t0 = time.perf_counter()
        params, state, chunk_losses = compiled[n](params, state, task_arrays)
        chunk_losses = np.asarray(jax.block_until_ready(chunk_losses))
        run_time += time.perf_counter() - t0
        if not np.all(np.isfinite(chunk_losses)):
            bad = done + int(np.argmin(np.isfinite(chunk_losses)))
            bar.close()
            raise FloatingPointError(
                f"the loss became non-finite at step {bad} (learning_rate={learning_rate!r} too "
                "large?); the last checkpoint, if any, holds the run before this chunk"
            )
        done += n
        history.loss = np.concatenate([history.loss, chunk_losses])
        history.step.append(done)
        history.wall.append(run_time)
        model = eqx.combine(params, static)
        if task.has_exact:
            errs = task.errors(model)
            for name in history.errors:
                history.errors[name].append(errs[name])
        if path is not None:
            _save(path, params, state, history, meta)
        if callback is not None:
            callback(done, model, history)
        bar.update(n)
        bar.set_postfix(loss=f"{chunk_losses[-1]:.3e}")
    bar.close()
    return eqx.combine(params, static), history


def _model_spec(net, task: Task):
    """Trainable-leaf filter and checkpoint identity of a model (an MLP or an nmm.Field)."""
    if isinstance(net, nmm.Field):
        if net.space.dim != task.dim:
            raise ValueError(f"net: the field is {net.space.dim}D but the task is {task.dim}D")
        meta = {"model": "nmm.Field", "n_dofs": int(net.space.n_dofs), "degree": net.space.degree}
        return trainable(net), meta
    if not isinstance(net, MLP):
        raise TypeError(f"net must be an nmm_nn.MLP or an nmm.Field, got {type(net).__name__}")
    if net.in_size != task.dim:
        raise ValueError(f"net.in_size={net.in_size} does not match the task's dimension {task.dim}")
    if net.out_size != "scalar":
        raise ValueError(f"net must have a scalar output (out_size='scalar'), got {net.out_size!r}")
    return trainable(net), {"widths": list(net.widths), "activation": net.activation}


def _save(path: Path, params, state, history: History, meta: dict) -> None:
    # one file (equinox-serialised leaves + history JSON), written beside the target and renamed:
    # a run killed mid-write never leaves a torn or inconsistent checkpoint
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, (params, state))
    text = json.dumps({"meta": meta, "history": history.to_json()}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(
            fh, leaves=np.frombuffer(buf.getvalue(), np.uint8), history=np.frombuffer(text, np.uint8)
        )
    os.replace(tmp, path)


def _load(path: Path, params, state, meta: dict):
    with np.load(path) as data:
        saved = json.loads(data["history"].tobytes().decode())
        leaves = data["leaves"].tobytes()
    if saved["meta"] != json.loads(json.dumps(meta)):
        raise ValueError(
            f"checkpoint {str(path)!r} was written for {saved['meta']}, not for this run {meta}; "
            "use another path or resume=False"
        )
    params, state = eqx.tree_deserialise_leaves(io.BytesIO(leaves), (params, state))
    return params, state, History.from_json(saved["history"])
