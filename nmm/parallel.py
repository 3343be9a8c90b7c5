"""Batches sharded over devices: ``sharded_vmap(fn)(batch)`` is ``jax.vmap(fn)(batch)`` with the
batch split over every local device (or the ones given).

It is ``jax.shard_map`` of ``jax.vmap`` over a one-axis mesh ``("batch",)``: each device runs the
vmapped function on its slice, so host callbacks (the SuperLU path) run once per device on that
device's members, in parallel, instead of being gathered onto one device as the automatic SPMD
partitioner does with ``pure_callback``. A batch that the device count does not divide is padded
by repeating its last member (``pad=True``, the default; the padding is cut from the result) or
refused with a clear error (``pad=False``).

Arguments mapped with ``in_axes=None`` are closed over (every device sees all of them); mapped
arguments must hold arrays only (a pytree of arrays whose mapped axis has the batch's length).
The output may hold non-array parts (a ``Field``'s space): they come back unchanged.

Past one process: start every process with ``jax.distributed.initialize(...)`` (on CPU, first
``jax.config.update("jax_cpu_collectives_implementation", "gloo")``) and call
``sharded_vmap(fn, devices="all")`` with the same whole batch in every process: each process's
devices solve their shards (host callbacks in that process), and the result, gathered, comes back
to every process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "batch"


def _devices(devices) -> list:
    if devices is None:
        return list(jax.local_devices())
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"devices={devices!r}: give None, 'all', a count or a list of devices")
        return list(jax.devices())  # every process's devices (jax.distributed)
    if isinstance(devices, int):
        local = jax.local_devices()
        if not 1 <= devices <= len(local):
            raise ValueError(
                f"devices={devices}: this process has {len(local)} local device(s) "
                f"({local[0].platform}); on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
                "before importing jax gives N host devices"
            )
        return list(local[:devices])
    devices = list(devices)
    if not devices:
        raise ValueError("devices=[]: give at least one device, or None for all local devices")
    return devices


def _batch_size(args, in_axes) -> int:
    sizes = set()
    for i, (a, ax) in enumerate(zip(args, in_axes, strict=True)):
        if ax is None:
            continue
        for leaf in jax.tree_util.tree_leaves(a):
            if not eqx.is_array(leaf) and not isinstance(leaf, np.ndarray):
                raise TypeError(
                    f"sharded_vmap: argument {i} is mapped (in_axes={ax}) but holds a "
                    f"{type(leaf).__name__}; mapped arguments must be arrays (pass in_axes=None "
                    "for arguments every member shares)"
                )
            if jnp.ndim(leaf) == 0:
                raise ValueError(f"sharded_vmap: argument {i} has a scalar leaf, nothing to map")
            sizes.add(jnp.shape(leaf)[0])
    if not sizes:
        raise ValueError("sharded_vmap: in_axes maps no argument (all None)")
    if len(sizes) > 1:
        raise ValueError(f"sharded_vmap: mapped arguments have different batch sizes {sorted(sizes)}")
    return sizes.pop()


def _pad(a, total: int, xp=jnp):
    """``a`` with its last member repeated up to ``total`` members (``xp``: numpy for host data)."""
    extra = total - a.shape[0]
    if extra == 0:
        return a
    return xp.concatenate([a, xp.repeat(a[-1:], extra, axis=0)], axis=0)


def sharded_vmap(
    fn: Callable,
    in_axes: int | None | Sequence[int | None] = 0,
    *,
    devices=None,
    pad: bool = True,
) -> Callable:
    """``jax.vmap(fn, in_axes)`` with the batch sharded over ``devices`` (default: every local
    device; an int takes the first that many; ``"all"``: every device of every process, after
    ``jax.distributed.initialize`` — each process then passes the whole batch and gets the whole
    result). Mapped axes must be 0 (move yours with ``jnp.moveaxis``). The batch is padded to a
    multiple of the device count by repeating its last member unless ``pad=False``, which makes an
    indivisible batch an error."""
    devs = _devices(devices)
    mesh = Mesh(np.array(devs), (AXIS,))

    @functools.wraps(fn)
    def mapped(*args):
        axes = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        if len(axes) != len(args):
            raise ValueError(
                f"sharded_vmap: in_axes={in_axes!r} has {len(axes)} entries for {len(args)} arguments"
            )
        bad = [ax for ax in axes if ax not in (0, None)]
        if bad:
            raise ValueError(f"sharded_vmap: in_axes entries must be 0 or None, got {bad[0]!r}")
        size = _batch_size(args, axes)
        n_dev = len(devs)
        total = -(-size // n_dev) * n_dev
        if total != size and not pad:
            raise ValueError(
                f"sharded_vmap: the batch of {size} does not divide over {n_dev} devices; pass "
                f"pad=True (repeat the last member up to {total}) or a multiple of {n_dev} members"
            )
        if all(d.process_index == jax.process_index() for d in devs):
            return _run(fn, mesh, axes, size, total, args)
        return _run_processes(fn, mesh, axes, size, total, args)

    return mapped


def _run_processes(fn, mesh, axes, size, total, args):
    """Across processes (``jax.distributed``): every process passes the whole batch, its devices
    solve their shards, and every process gets the whole result back (an all-gather)."""
    sharding = NamedSharding(mesh, PartitionSpec(AXIS))

    def place(a):
        a = _pad(np.asarray(a), total, np)
        return jax.make_array_from_callback(a.shape, sharding, lambda idx: a[idx])

    placed = tuple(
        jax.tree_util.tree_map(place, a) if ax is not None else a
        for a, ax in zip(args, axes, strict=True)
    )
    dyn, static = eqx.partition(_run(fn, mesh, axes, total, total, placed), eqx.is_array)
    dyn = multihost_utils.process_allgather(dyn, tiled=True)
    return eqx.combine(jax.tree_util.tree_map(lambda a: jnp.asarray(a[:size]), dyn), static)


@eqx.filter_jit
def _run(fn, mesh, axes, size, total, args):
    # filter_jit: arrays are traced, everything else (fn, mesh, axes, sizes, a space) is static,
    # so a second call with the same structure reuses the compiled program
    mapped_idx = [i for i, ax in enumerate(axes) if ax is not None]
    batched = [
        jax.tree_util.tree_map(lambda a: _pad(jnp.asarray(a), total), args[i]) for i in mapped_idx
    ]
    static_out = []

    def body(*local):
        full = list(args)
        for i, a in zip(mapped_idx, local, strict=True):
            full[i] = a
        out = jax.vmap(fn, in_axes=axes)(*full)
        dyn, static = eqx.partition(out, eqx.is_array)
        static_out.append(static)
        return dyn

    spec = PartitionSpec(AXIS)
    run = jax.shard_map(
        body, mesh=mesh, in_specs=tuple(spec for _ in mapped_idx), out_specs=spec, check_vma=False
    )
    dyn = run(*batched)
    if total != size:
        dyn = jax.tree_util.tree_map(lambda a: a[:size], dyn)
    return eqx.combine(dyn, static_out[-1])
