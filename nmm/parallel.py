"""Batches sharded over devices: ``sharded_vmap(fn)(batch)`` is ``jax.vmap(fn)(batch)`` with the
batch split over every local device (or the ones given).

It is ``jax.shard_map`` of ``jax.vmap`` over a one-axis mesh ``("batch",)``: each device runs the
vmapped function on its slice, so host callbacks (the SuperLU path) run once per device on that
device's members, in parallel, instead of being gathered onto one device as the automatic SPMD
partitioner does with ``pure_callback``. A batch that the device count does not divide is padded
by repeating its last member (``pad=True``, the default; the padding is cut from the result) or
refused with a clear error (``pad=False``).

``chunk=c`` evaluates each device's members ``c`` at a time (``jax.lax.map`` with
``batch_size=c``: a loop over chunks, each chunk one ``vmap``), and ``chunked_vmap(fn, chunk=8)``
is that on one device. A ``vmap`` of many solves holds every member's element matrices and
operator at once, and on a CPU the batch then runs at the speed of memory, not of the cores:
measured on the 2-core machine (``benchmarks/batch_solve.py``), 64 p = 8 solves of 1 125 unknowns
took 2.5–3.4 s as one ``vmap`` and 1.7–1.9 s in chunks of 8, three times faster than a Python
loop. Chunks of 4–8 were best for p = 8 and for AMG at p = 0, 16–32 for SuperLU at p = 0 (1e4
unknowns: 0.81–0.99 s for 64 members in chunks of 32 against 1.7–2.3 s for a loop, since SuperLU's
host kernels hold BLAS to one thread and forward solves factor and solve in one host call).

Arguments mapped with ``in_axes=None`` are closed over (every device sees all of them); mapped
arguments must hold arrays only (a pytree of arrays whose mapped axis has the batch's length).
The output may hold non-array parts (a ``Field``'s space): they come back unchanged.

On CPU devices (forced host devices, ``XLA_FLAGS=--xla_force_host_platform_device_count=N``) an
eager call runs instead the devices' shares one after another on the first device (``lax.map``
over shares, each share one ``vmap``: the numbers of a ``vmap``). One multi-device CPU program
can hang: every device's host callback holds one of XLA's intra-op threads while
``pure_callback`` copies its operands onto the CPU device, and a copy over ~1 MB waits for a free
thread of the same pool; with as many devices as cores none is left (measured on this 2-core
machine: a 1e4-unknown SuperLU batch on two host devices never returned). Host devices share
the same cores, so there is no speed to lose: the devices' programs run from two threads at once
were no faster than one device's ``vmap`` (a 64-member batch, 1.73 against 1.47 s), and they hung
in the pure-JAX dense LU; run one after another on their own devices, each device compiled the
program anew. Under a transformation (``grad``, an outer ``jit``) the arguments are traced and
the ``shard_map`` program is used on every platform; on CPU keep its host-callback operands
small, or call it eagerly.

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


def _axes(in_axes, args) -> tuple:
    axes = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
    if len(axes) != len(args):
        raise ValueError(
            f"sharded_vmap: in_axes={in_axes!r} has {len(axes)} entries for {len(args)} arguments"
        )
    bad = [ax for ax in axes if ax not in (0, None)]
    if bad:
        raise ValueError(f"sharded_vmap: in_axes entries must be 0 or None, got {bad[0]!r}")
    return axes


def _check_chunk(chunk) -> None:
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be a positive integer or None, got {chunk!r}")


def _map(fn, axes, chunk):
    """``jax.vmap(fn, axes)``, or with ``chunk`` the same ``chunk`` members at a time; outputs may
    hold non-array parts (kept from the traced member)."""
    if chunk is None:
        return jax.vmap(fn, in_axes=axes)
    mapped_idx = [i for i, ax in enumerate(axes) if ax is not None]

    def run(*args):
        static_out, empty_out = [], []
        xs = tuple(args[i] for i in mapped_idx)
        n = jax.tree_util.tree_leaves(xs)[0].shape[0]

        def member(xs):
            full = list(args)
            for i, x in zip(mapped_idx, xs, strict=True):
                full[i] = x
            dyn, static = eqx.partition(fn(*full), eqx.is_array)
            static_out.append(static)
            # lax.map cannot stack empty arrays (a Field's unused parts): they are made below
            empty = lambda a: a.size == 0  # noqa: E731
            filled, hollow = eqx.partition(dyn, lambda a: not empty(a))
            empty_out.append(hollow)
            return filled

        filled = jax.lax.map(member, xs, batch_size=chunk)
        hollow = jax.tree_util.tree_map(lambda a: jnp.zeros((n, *a.shape), a.dtype), empty_out[-1])
        return eqx.combine(filled, hollow, static_out[-1])

    return run


def in_chunks_under_vmap(fn: Callable, chunk: int) -> Callable:
    """``fn`` unchanged, except that under ``jax.vmap`` on a CPU its members run ``chunk`` at a
    time (``jax.lax.map`` with ``batch_size=chunk``: a loop over chunks, each chunk one ``vmap``;
    ``chunk=1``: one after another) instead of as one batched program.

    On a CPU a batched program is not faster per member than one member's (the cores are used
    either way) and can be slower: XLA transposes the batch into the element contractions, and
    a batch of solves holds every member's matrices at once and runs at the speed of memory.
    Measured on the 2-core machine, the p = 0 assembly of 1e4 unknowns for 64 parameter sets:
    0.36–0.38 s as one ``vmap``, 0.22 s member by member. Accelerators keep the batched program.

    For code that is not differentiated (a ``custom_vmap`` rule has no derivative): the primal
    side of a ``custom_jvp``. Every array output comes back batched."""

    @functools.wraps(fn)
    def wrapped(*args):
        if jax.default_backend() != "cpu":
            return fn(*args)
        dyn, static = eqx.partition(args, eqx.is_array)
        leaves, treedef = jax.tree_util.tree_flatten(dyn)

        def call(*leaves):
            return fn(*eqx.combine(jax.tree_util.tree_unflatten(treedef, list(leaves)), static))

        batched_call = jax.custom_batching.custom_vmap(call)

        @batched_call.def_vmap
        def rule(axis_size, in_batched, *leaves):
            mapped = [leaf for leaf, b in zip(leaves, in_batched, strict=True) if b]
            hollow = []

            def member(slices):
                it = iter(slices)
                out = call(
                    *[next(it) if b else leaf for leaf, b in zip(leaves, in_batched, strict=True)]
                )
                # lax.map in batches cannot stack empty arrays (a solve's empty history): made below
                filled, empty = eqx.partition(out, lambda a: a.size > 0)
                hollow.append(empty)
                return filled

            if 1 < chunk and axis_size <= chunk:  # one chunk: the batched program itself
                filled = jax.vmap(member)(mapped)
            else:
                filled = jax.lax.map(member, mapped, batch_size=_chunk_size(axis_size, chunk))
            batch = lambda a: jnp.zeros((axis_size, *a.shape), a.dtype)  # noqa: E731
            out = eqx.combine(filled, jax.tree_util.tree_map(batch, hollow[-1]))
            return out, jax.tree_util.tree_map(lambda _: True, out)

        return batched_call(*leaves)

    return wrapped


def _chunk_size(n: int, chunk: int) -> int | None:
    """``lax.map``'s ``batch_size`` for ``n`` members in chunks of at most ``chunk``: the largest
    divisor of ``n`` from ``chunk / 2`` up, else ``chunk`` (a remainder is a second program to
    compile); ``None`` (one by one) for chunks of one."""
    if chunk == 1:
        return None
    fits = [d for d in range(chunk, max(chunk // 2, 1) - 1, -1) if n % d == 0]
    return fits[0] if fits else chunk


def one_by_one_under_vmap(fn: Callable) -> Callable:
    """:func:`in_chunks_under_vmap` with chunks of one member."""
    return in_chunks_under_vmap(fn, 1)


def chunked_vmap(fn: Callable, in_axes: int | None | Sequence[int | None] = 0, *, chunk: int = 8):
    """``jax.vmap(fn, in_axes)`` evaluated ``chunk`` members at a time on one device (module
    docstring: faster than one ``vmap`` of a large batch of solves on a CPU). Differentiable and
    batchable like ``vmap``; the batch need not divide by ``chunk``."""
    _check_chunk(chunk)

    @functools.wraps(fn)
    def mapped(*args):
        axes = _axes(in_axes, args)
        _batch_size(args, axes)
        return _chunked(fn, axes, chunk, args)

    return mapped


@eqx.filter_jit
def _chunked(fn, axes, chunk, args):
    # jitted (fn, axes and chunk static): an eager call compiles the loop over chunks once
    return _map(fn, axes, chunk)(*args)


def sharded_vmap(
    fn: Callable,
    in_axes: int | None | Sequence[int | None] = 0,
    *,
    devices=None,
    pad: bool = True,
    chunk: int | None = None,
) -> Callable:
    """``jax.vmap(fn, in_axes)`` with the batch sharded over ``devices`` (default: every local
    device; an int takes the first that many; ``"all"``: every device of every process, after
    ``jax.distributed.initialize`` — each process then passes the whole batch and gets the whole
    result). Mapped axes must be 0 (move yours with ``jnp.moveaxis``). The batch is padded to a
    multiple of the device count by repeating its last member unless ``pad=False``, which makes an
    indivisible batch an error. ``chunk``: each device evaluates its members that many at a time
    (default: all at once, one ``vmap``)."""
    _check_chunk(chunk)
    devs = _devices(devices)
    mesh = Mesh(np.array(devs), (AXIS,))

    @functools.wraps(fn)
    def mapped(*args):
        axes = _axes(in_axes, args)
        size = _batch_size(args, axes)
        n_dev = len(devs)
        total = -(-size // n_dev) * n_dev
        if total != size and not pad:
            raise ValueError(
                f"sharded_vmap: the batch of {size} does not divide over {n_dev} devices; pass "
                f"pad=True (repeat the last member up to {total}) or a multiple of {n_dev} members"
            )
        if all(d.process_index == jax.process_index() for d in devs):
            if _host_devices(devs, args):
                return _chunked(fn, axes, chunk or total // n_dev, args)
            return _run(fn, mesh, axes, size, total, args, chunk)
        return _run_processes(fn, mesh, axes, size, total, args, chunk)

    return mapped


def _host_devices(devs, args) -> bool:
    """The CPU path (module docstring): several CPU devices and concrete arguments."""
    if len(devs) < 2 or any(d.platform != "cpu" for d in devs):
        return False
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(args))


def _run_processes(fn, mesh, axes, size, total, args, chunk):
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
    dyn, static = eqx.partition(_run(fn, mesh, axes, total, total, placed, chunk), eqx.is_array)
    dyn = multihost_utils.process_allgather(dyn, tiled=True)
    return eqx.combine(jax.tree_util.tree_map(lambda a: jnp.asarray(a[:size]), dyn), static)


@eqx.filter_jit
def _run(fn, mesh, axes, size, total, args, chunk):
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
        out = _map(fn, axes, chunk)(*full)
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
