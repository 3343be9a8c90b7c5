"""Full-batch training of an MLP on a :class:`Task` (optax), in jitted ``lax.scan`` chunks.

The step is compiled once per chunk length, ahead of time (so compile time is measured apart from
run time), and run ``chunk`` steps at a time inside ``lax.scan``; between chunks the host updates
the progress bar, records errors and writes checkpoints. Training is deterministic: the same
network (the same ``key``) and settings give the same history, bit for bit on one machine, and a
run resumed from a checkpoint continues the same curve.

A checkpoint records what it belongs to — the task's fingerprint (``Task.fingerprint``: its
points, data and form), the network's shapes and activation, a hash of the initial network (its
PRNG key's weights, frozen Fourier features), the optimiser — and is refused, with the entries
that differ, by any other run; ``resume=False`` starts afresh (overwriting it). A checkpoint that
cannot be read or written is a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import optax
from tqdm.auto import tqdm

import nmm

from .mlp import MLP, EnrichmentFeatures, trainable
from .task import Task, _array_bytes

OPTIMIZERS = ("adam", "lbfgs")
_AFRESH = "pass resume=False to start afresh (the file is overwritten), or use another checkpoint path"


class CheckpointError(ValueError):
    """A checkpoint that belongs to another run, or that cannot be read or written (the message
    names the file and says how to start afresh)."""


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
        net: the :class:`MLP` (input size = the task's dimension, a scalar output for a scalar
            task and one output per component for a vector one, e.g. elasticity), or an
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
            an existing checkpoint is loaded and training continues from it. It records the
            task's fingerprint, the network's shapes, a hash of the initial network (``net`` as
            passed: the same PRNG key) and the optimiser: a checkpoint of another run is refused
            (:class:`CheckpointError`), as is one that cannot be read or written.
        resume: ``False``: ignore an existing checkpoint and start afresh (it is overwritten).
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
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be True or False, got {resume!r}")
    opt, line_search = make_optimizer(optimizer, learning_rate)

    params, static = eqx.partition(net, spec)
    state = opt.init(params)
    history = History(errors={"L2": [], "H1": []} if task.has_exact else {})
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None:
        _check_writable(path)
        meta = {
            **meta,
            "task": task.fingerprint(),
            "init": _digest(net),
            "optimizer": optimizer if isinstance(optimizer, str) else "optax transformation",
            "learning_rate": _describe_rate(learning_rate),
        }
        if not isinstance(optimizer, str):  # an optax transformation: its state's structure
            meta["optimizer_state"] = _digest(str(jax.tree_util.tree_structure(state)))
        if resume and path.exists():
            params, state, history, meta["init"] = _load(path, params, state, static, meta)
    if history.steps > steps:
        raise CheckpointError(
            f"steps={steps} is fewer than the {history.steps} steps already in checkpoint "
            f"{str(path)!r}; ask for more steps, or {_AFRESH}"
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
    wanted = "scalar" if task.components == 1 else task.components
    if net.out_size != wanted:
        raise ValueError(
            f"net.out_size={net.out_size!r} does not match the task's {task.components} "
            f"component(s): use out_size={wanted!r}"
        )
    meta = {
        "model": "MLP",
        "in_size": int(net.in_size),
        "out_size": net.out_size,
        "widths": list(net.widths),
        "activation": net.activation,
        "fourier_features": 0 if net.fourier is None else int(net.fourier.shape[0]),
    }
    if net.features is not None:
        f = net.features  # a stable description (a function's repr holds its address)
        name = (
            repr(f)
            if isinstance(f, EnrichmentFeatures)
            else getattr(f, "__qualname__", type(f).__name__)
        )
        meta["features"] = f"{name} ({net.n_features})"
    if net.output_transform is not None:
        t = net.output_transform
        meta["output_transform"] = getattr(t, "__qualname__", type(t).__name__)
    if net.activation == "sin":
        meta["omega0"] = float(net.omega0)
    return trainable(net), meta


def _digest(tree) -> str:
    """A hash of a pytree's arrays (their paths, shapes and values) or of a string."""
    h = hashlib.sha256()
    if isinstance(tree, str):
        h.update(tree.encode())
    else:
        for p, leaf in jax.tree_util.tree_leaves_with_path(eqx.filter(tree, eqx.is_array)):
            h.update(jax.tree_util.keystr(p).encode())
            h.update(_array_bytes(leaf))
    return h.hexdigest()[:16]


def _describe_rate(learning_rate):
    """A number, or a schedule's values at a few step counts (two schedules that agree there are
    taken as the same)."""
    if not callable(learning_rate):
        return float(learning_rate)
    return {"schedule": [float(learning_rate(i)) for i in (0, 1, 10, 100, 1000, 10_000, 100_000)]}


def _check_writable(path: Path) -> None:
    """Fail before any compilation if the checkpoint cannot be written."""
    if path.is_dir():
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a directory: give a file path "
            f"(e.g. {str(path / 'run.ckpt')!r})"
        )
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb"):
            pass
        tmp.unlink()
    except OSError as err:
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be written ({err.strerror or err}): use a writable "
            "path, or checkpoint=None to train without one"
        ) from None


def _save(path: Path, params, state, history: History, meta: dict) -> None:
    # one file (equinox-serialised leaves + history JSON), written beside the target and renamed:
    # a run killed mid-write never leaves a torn or inconsistent checkpoint
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, (params, state))
    text = json.dumps({"meta": meta, "history": history.to_json()}).encode()
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                leaves=np.frombuffer(buf.getvalue(), np.uint8),
                history=np.frombuffer(text, np.uint8),
            )
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be written ({err.strerror or err}): use a writable "
            "path, or checkpoint=None to train without one"
        ) from None


def _unreadable(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {str(path)!r} cannot be read: {why}; delete it, or {_AFRESH}")


def _load(path: Path, params, state, static, meta: dict):
    """The checkpoint's params, optimiser state, history and initial-network hash, if it belongs
    to this run: the same meta, and ``net`` either the run's initial network or the one the
    checkpoint holds (continuing from a returned network)."""
    if path.is_file() and not zipfile.is_zipfile(path):
        raise _unreadable(path, "not an nmm_nn checkpoint (not an .npz archive: garbage or truncated)")
    try:
        with np.load(path, allow_pickle=False) as data:
            saved = json.loads(data["history"].tobytes().decode())
            leaves = data["leaves"].tobytes()
        saved_meta = saved["meta"]
        history = History.from_json(saved["history"])
    except (
        OSError,
        EOFError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        zipfile.BadZipFile,
    ) as err:
        # garbage, truncated or foreign files: numpy, zipfile and json errors
        raise _unreadable(path, f"not an nmm_nn checkpoint ({type(err).__name__}: {err})") from None
    if not (
        isinstance(saved_meta, dict)
        and len(history.step) == len(history.wall)
        and (history.step[-1] if history.step else 0) == history.steps
        and all(len(v) == len(history.step) for v in history.errors.values())
    ):
        raise _unreadable(path, "its history is inconsistent")
    want = json.loads(json.dumps(meta))
    diff = [
        k
        for k in sorted(set(want) | set(saved_meta))
        if k != "init" and saved_meta.get(k) != want.get(k)
    ]
    if diff:
        raise CheckpointError(
            f"checkpoint {str(path)!r} belongs to another run: "
            + "; ".join(
                _difference(k, saved_meta.get(k, "<missing>"), want.get(k, "<missing>")) for k in diff
            )
            + f". Resume with the run that wrote it, or {_AFRESH}"
        )
    try:
        params, state = eqx.tree_deserialise_leaves(io.BytesIO(leaves), (params, state))
    except Exception as err:  # truncated or mis-sized leaves: numpy / equinox errors
        raise _unreadable(
            path, f"its network leaves are damaged ({type(err).__name__}: {err})"
        ) from None
    if saved_meta.get("init") != want["init"] and _digest(eqx.combine(params, static)) != want["init"]:
        # neither the initial network of that run nor the network it holds now
        raise CheckpointError(
            f"checkpoint {str(path)!r} belongs to another run: "
            + _difference("init", saved_meta.get("init", "<missing>"), want["init"])
            + f". Resume with the run that wrote it, or {_AFRESH}"
        )
    return params, state, history, saved_meta.get("init")


_WHAT = {
    "task": "the task differs (its form, data, points or exact solution)",
    "init": "the initial network differs (another PRNG key, initialisation or Fourier features)",
}


def _difference(key: str, saved, now) -> str:
    what = _WHAT.get(key, key)
    return f"{what}: checkpoint {saved!r}, this run {now!r}"
