"""Batches sharded over devices (nmm.parallel): the same numbers as one device, padding, errors.

The sharded cases run in a subprocess with four forced host devices: the device count is fixed
when JAX starts, and this test process has already started it with one.
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nmm
from nmm.parallel import chunked_vmap, sharded_vmap

# the batch both subprocess scripts solve: k = 1 + θ₀x + θ₁y, values at three points. The host
# solver (solver="direct"): the path whose callbacks must run per device. (With the default
# dense LU of this 75-unknown system, four forced host devices on two busy cores let one device
# lag 40 s behind the others at the all-gather of the result, and XLA ends the process: seen
# under the parallel test run.)
PROBLEM = textwrap.dedent(
    """
    import jax.numpy as jnp
    import nmm
    from nmm.parallel import sharded_vmap

    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=1 / 4), dom, degree=1)
    prob = nmm.Poisson(k=lambda x, th: 1.0 + th[0] * x[0] + th[1] * x[1], f=1.0, dirichlet=0.0)
    pts = jnp.array([[0.3, 0.4], [0.5, 0.5], [0.77, 0.21]])
    values = lambda t: nmm.solve(V, prob, params=t, solver="direct")(pts)
    """
)

SCRIPT = PROBLEM + textwrap.dedent(
    """
    import jax
    assert len(jax.devices()) == 4, jax.devices()
    th = jax.random.uniform(jax.random.PRNGKey(0), (6, 2))  # 6 members over 4 devices: padded

    one = jax.jit(jax.vmap(values))(th)
    many = sharded_vmap(values)(th)
    print("values", float(jnp.max(jnp.abs(many - one))))

    fields = sharded_vmap(lambda t: nmm.solve(V, prob, params=t, solver="direct"))(th[:4])
    assert isinstance(fields, nmm.Field), type(fields)
    print("field", float(jnp.max(jnp.abs(jax.vmap(lambda f: f(pts))(fields) - one[:4]))))

    g_one = jax.grad(lambda t: jnp.sum(jax.vmap(values)(t) ** 2))(th[:4])
    g_many = jax.grad(lambda t: jnp.sum(sharded_vmap(values)(t) ** 2))(th[:4])
    print("grad", float(jnp.max(jnp.abs(g_many - g_one))), float(jnp.max(jnp.abs(g_one))))

    try:
        sharded_vmap(values, pad=False)(th)
    except ValueError as e:
        print("nopad", e)
    """
)


def test_sharded_batch_on_four_host_devices_matches_one_device():
    env = dict(
        os.environ, XLA_FLAGS=_xla_flags("--xla_force_host_platform_device_count=4"), JAX_PLATFORMS="cpu"
    )
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in run.stdout.strip().splitlines())
    assert float(lines["values"]) < 1e-12
    assert float(lines["field"]) < 1e-12
    g_diff, g_size = map(float, lines["grad"].split())
    assert g_size > 1e-3 and g_diff < 1e-10 * g_size
    assert "6 does not divide over 4 devices" in lines["nopad"]


LARGE = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp
    import nmm
    from nmm.parallel import sharded_vmap

    assert len(jax.devices()) == 2, jax.devices()
    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=1 / 60), dom, degree=0)
    prob = nmm.Poisson(k=lambda x, th: 1.0 + th[0] * x[0] + th[1] * x[1], f=1.0, dirichlet=0.0)
    solve = lambda t: nmm.solve(V, prob, params=t, solver="direct").coeffs
    th = jax.random.uniform(jax.random.PRNGKey(0), (16, 2))
    many = sharded_vmap(solve)(th)
    print("devices", sorted({d.id for d in many.devices()}), flush=True)
    print("diff", float(jnp.max(jnp.abs(many - jax.jit(jax.vmap(solve))(th)))), flush=True)
    """
)


def test_host_solves_with_large_operands_on_as_many_host_devices_as_cores():
    """3 721 unknowns, 8 members a device: the SuperLU callback's operands are over a megabyte.
    One multi-device CPU program (shard_map) hung here on two host devices of the 2-core machine
    (every XLA thread held by a callback waiting for its operands' copy); the eager CPU path runs
    the devices' shares one after another on the first device."""
    env = dict(
        os.environ, XLA_FLAGS=_xla_flags("--xla_force_host_platform_device_count=2"), JAX_PLATFORMS="cpu"
    )
    run = subprocess.run(
        [sys.executable, "-c", LARGE], env=env, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in run.stdout.strip().splitlines())
    assert lines["devices"] == "[0]"  # joined on the first device
    assert float(lines["diff"]) < 1e-12


def _chunk_problem():
    ns = {}
    exec(PROBLEM, ns)
    th = jax.random.uniform(jax.random.PRNGKey(0), (7, 2))  # 7 members, chunks of 3: 3 + 3 + 1
    return ns, th, jax.vmap(ns["values"])(th)


def test_chunked_vmap_is_vmap_in_chunks():
    """chunked_vmap (and sharded_vmap's chunk) give vmap's numbers: values, a batch that the
    chunk does not divide, the gradient."""
    ns, th, one = _chunk_problem()
    values = ns["values"]
    assert jnp.max(jnp.abs(chunked_vmap(values, chunk=3)(th) - one)) < 1e-12
    assert jnp.max(jnp.abs(sharded_vmap(values, chunk=3)(th) - one)) < 1e-12
    loss = lambda m: lambda t: jnp.sum(m(values)(t) ** 2)  # noqa: E731
    g_one = jax.grad(loss(jax.vmap))(th)
    g_chunk = jax.grad(loss(lambda f: chunked_vmap(f, chunk=3)))(th)
    assert jnp.max(jnp.abs(g_one)) > 1e-4
    assert jnp.max(jnp.abs(g_chunk - g_one)) < 1e-10 * jnp.max(jnp.abs(g_one))
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="chunk must be a positive integer"):
            chunked_vmap(values, chunk=bad)
    with pytest.raises(ValueError, match="chunk must be a positive integer or None, got 0"):
        sharded_vmap(values, chunk=0)


@pytest.mark.slow
def test_chunked_vmap_fields_forward_mode_and_under_vmap():
    """A Field with its empty parts, jacfwd, and chunked_vmap under vmap."""
    ns, th, one = _chunk_problem()
    values, V, prob = ns["values"], ns["V"], ns["prob"]
    fields = chunked_vmap(lambda t: nmm.solve(V, prob, params=t, solver="direct"), chunk=3)(th)
    assert isinstance(fields, nmm.Field) and fields.coeffs.shape == (7, V.n_dofs)
    assert jnp.max(jnp.abs(jax.vmap(lambda f: f(ns["pts"]))(fields) - one)) < 1e-12
    j_one = jax.jacfwd(jax.vmap(values))(th[:4])
    j_chunk = jax.jacfwd(chunked_vmap(values, chunk=3))(th[:4])
    assert jnp.max(jnp.abs(j_chunk - j_one)) < 1e-10 * jnp.max(jnp.abs(j_one))
    nested = jax.vmap(chunked_vmap(values, chunk=2))(th[:6].reshape(2, 3, 2))
    assert jnp.max(jnp.abs(nested.reshape(6, 3) - one[:6])) < 1e-12


def test_sharded_vmap_bad_input_is_named():
    f = lambda t: t * 2.0  # noqa: E731
    n = len(jax.local_devices())
    with pytest.raises(ValueError, match=f"devices={n + 1}: this process has {n} local device"):
        sharded_vmap(f, devices=n + 1)
    with pytest.raises(ValueError, match="in_axes entries must be 0 or None, got 1"):
        sharded_vmap(f, in_axes=1)(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="different batch sizes"):
        sharded_vmap(lambda a, b: a + b)(jnp.ones(3), jnp.ones(4))
    with pytest.raises(TypeError, match="argument 0 is mapped .* holds a str"):
        sharded_vmap(f)(["a"])
    assert jnp.allclose(sharded_vmap(f)(jnp.arange(3.0)), 2.0 * jnp.arange(3.0))
    assert jnp.allclose(
        sharded_vmap(lambda a, b: a * b, in_axes=(0, None))(jnp.arange(3.0), 2.0), 2.0 * jnp.arange(3.0)
    )
    assert nmm  # the import switches on float64, as users get it


TWO_PROCESSES = (
    textwrap.dedent(
        """
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{sys.argv[2]}", num_processes=2, process_id=int(sys.argv[1]))
    """
    )
    + PROBLEM
    + textwrap.dedent(
        """
    th = jax.random.uniform(jax.random.PRNGKey(0), (5, 2))  # 5 members over 2 processes: padded
    many = sharded_vmap(values, devices="all")(th)
    one = jax.jit(jax.vmap(values))(th)
    print("diff", float(jnp.max(jnp.abs(many - one))), jax.process_count(), flush=True)
    """
    )
)


@pytest.mark.slow
def _xla_flags(flag: str) -> str:
    """``flag`` added to the caller's XLA flags (``make test`` compiles at optimisation level 0:
    the subprocesses too)."""
    return f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def test_two_processes_by_jax_distributed():
    """The multi-host path, tried with two local processes (gloo collectives on CPU)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_PROCESSES, str(i), port],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        line = next(x for x in out.splitlines() if x.startswith("diff"))
        diff, count = line.split()[1:]
        assert float(diff) < 1e-12 and count == "2"


def test_one_by_one_under_vmap_is_vmap():
    """Members one after another under vmap: the values of vmap, with unbatched and non-array
    arguments, nested vmaps, and outside any vmap."""
    from nmm.parallel import one_by_one_under_vmap

    def f(x, a, scale):
        return {"y": jnp.sin(x) * a + scale, "s": jnp.sum(x * a)}

    g = one_by_one_under_vmap(f)
    x = jnp.arange(12.0).reshape(4, 3)
    a = jnp.array([1.0, 2.0, 3.0])
    assert jax.tree.all(
        jax.tree.map(lambda p, q: bool(jnp.allclose(p, q)), g(x[0], a, 0.5), f(x[0], a, 0.5))
    )
    want = jax.vmap(f, in_axes=(0, None, None))(x, a, 0.5)
    got = jax.jit(jax.vmap(g, in_axes=(0, None, None)), static_argnums=2)(x, a, 0.5)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-15)
    xx = jnp.stack([x, 2 * x])
    nested = jax.vmap(jax.vmap(g, in_axes=(0, None, None)), in_axes=(0, None, None))(xx, a, 0.5)
    np.testing.assert_allclose(nested["y"][1], jax.vmap(f, in_axes=(0, None, None))(2 * x, a, 0.5)["y"])


def test_in_chunks_under_vmap_is_vmap():
    """Members in chunks under vmap: the values of vmap for a batch within one chunk, a batch of
    whole chunks, and one with a remainder, with an empty output (rebuilt outside the loop) and
    an unbatched one."""
    from nmm.parallel import _chunk_size, in_chunks_under_vmap

    def f(x, a):
        return {"y": jnp.sin(x) * a, "s": jnp.sum(x * a), "empty": jnp.zeros((0,)), "c": a[0]}

    g = in_chunks_under_vmap(f, 4)
    a = jnp.array([1.0, 2.0, 3.0])
    assert (_chunk_size(9, 4), _chunk_size(7, 4), _chunk_size(3, 1)) == (3, 4, None)
    for n in (3, 8, 9, 7):  # one chunk; chunks of 4; of 3; of 4 and a remainder of 3
        x = jnp.arange(3.0 * n).reshape(n, 3)
        want = jax.vmap(f, in_axes=(0, None))(x, a)
        got = jax.jit(jax.vmap(g, in_axes=(0, None)))(x, a)
        assert got["empty"].shape == (n, 0) and got["c"].shape == (n,)
        for k in ("y", "s"):
            np.testing.assert_allclose(got[k], want[k], rtol=1e-15)


def test_batched_p0_solves_with_member_by_member_assembly_match_the_loop():
    """A p = 0 space over the one-by-one threshold (vmap assembles member by member, the fused
    SuperLU call factors and solves each member): values and vmap(grad) equal the loop's, and a
    member with NaN data is named."""
    from nmm.drivers import ONE_BY_ONE_MIN_CELLS

    dom = nmm.Domain.polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    V = nmm.ManifoldSpace(nmm.MathCover.triangles(dom, h=1 / 20), dom, degree=0)
    assert nmm.buckets.solve_view(V).q_points.shape[0] >= ONE_BY_ONE_MIN_CELLS
    prob = nmm.Poisson(
        k=lambda x, th: 1 + th[0] * x[0], f=lambda x, th: th[1], dirichlet=lambda x, th: 0.0
    )
    pts = jnp.array([[0.2, 0.8], [0.6, 0.3]])

    def loss(th):
        return jnp.sum(nmm.solve(V, prob, params=th, solver="direct")(pts) ** 2)

    ths = jnp.array([[0.1, 1.0], [0.5, 2.0], [0.9, 3.0]])  # (jacfwd under vmap: test_forward_mode)
    loop_v = np.array([loss(t) for t in ths])
    loop_g = np.stack([jax.grad(loss)(t) for t in ths])
    np.testing.assert_allclose(jax.vmap(loss)(ths), loop_v, rtol=1e-13)
    np.testing.assert_allclose(jax.vmap(jax.grad(loss))(ths), loop_g, rtol=1e-12)
    codes = jax.vmap(lambda t: nmm.solve(V, prob, params=t, solver="direct", throw=False).info.result)(
        ths.at[1, 1].set(jnp.nan)
    )
    assert int(codes[0]) == int(codes[2]) == 0 and int(codes[1]) >= nmm.RESULTS.nonfinite_data
