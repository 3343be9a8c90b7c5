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

On CPU devices (forced host devices, ``XLA_FLAGS=--xla_force_host_platform_device_count=N``) an
eager call runs instead one jitted ``vmap`` per device, the devices one after another, each on its
slice placed on that device. One multi-device CPU program can hang: every device's host callback
holds one of XLA's intra-op threads while ``pure_callback`` copies its operands onto the CPU
device, and a copy over ~1 MB waits for a free thread of the same pool; with as many devices as
cores none is left (measured on this 2-core machine: a 1e4-unknown SuperLU batch on two host
devices never returned). Running the devices' programs from two threads at once avoided that but
hung in pure-JAX programs (the dense LU), and gave no speed: host devices share the same cores
(a 64-member batch on two host devices was no faster than one device's ``vmap``). Under a
transformation (``grad``, an outer ``jit``) the arguments are traced and the ``shard_map``
program is used on every platform; on CPU keep its host-callback operands small, or call it
eagerly.

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
    per_device = {}  # axes -> the jitted vmap that the CPU path runs on every device

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
            if _per_device(devs, args):
                if axes not in per_device:
                    per_device[axes] = eqx.filter_jit(jax.vmap(fn, in_axes=axes))
                return _run_per_device(per_device[axes], devs, axes, size, total, args)
            return _run(fn, mesh, axes, size, total, args)
        return _run_processes(fn, mesh, axes, size, total, args)

    return mapped


def _per_device(devs, args) -> bool:
    """The per-device path (module docstring): several CPU devices and concrete arguments."""
    if len(devs) < 2 or any(d.platform != "cpu" for d in devs):
        return False
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(args))


def _run_per_device(vmapped, devs, axes, size, total, args):
    """Each device's slice through ``vmapped`` (a jitted ``vmap(fn)``) with the arguments placed
    on that device, one device after another; the results joined on the first."""
    per = total // len(devs)

    def on_device(k: int):
        dev = devs[k]

        def place(a, mapped: bool):
            if not (eqx.is_array(a) or isinstance(a, np.ndarray)):
                return a
            if mapped:
                a = _pad(a, total, np if isinstance(a, np.ndarray) else jnp)[k * per : (k + 1) * per]
            return jax.device_put(a, dev)

        local = [
            jax.tree_util.tree_map(functools.partial(place, mapped=ax is not None), a)
            for a, ax in zip(args, axes, strict=True)
        ]
        return jax.block_until_ready(vmapped(*local))

    outs = [on_device(k) for k in range(len(devs))]
    parts = [eqx.partition(o, eqx.is_array) for o in outs]
    home = devs[0]
    dyn = jax.tree_util.tree_map(
        lambda *xs: jnp.concatenate([jax.device_put(x, home) for x in xs])[:size],
        *[d for d, _ in parts],
    )
    return eqx.combine(dyn, parts[0][1])


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
