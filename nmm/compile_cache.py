"""JAX's persistent compilation cache, on by default for nmm users.

A new space or problem compiles new programs (1-2 s for a small high-order solve whose run
takes milliseconds); with the cache on, the second run of a script reads from disk the ones JAX
could write. :func:`configure` runs when ``nmm`` is imported:

* ``NMM_COMPILATION_CACHE=0`` leaves JAX's settings alone (no cache unless you set one);
* ``NMM_COMPILATION_CACHE=/some/dir`` puts the cache there;
* unset: ``$XDG_CACHE_HOME/nmm/jax`` (``~/.cache/nmm/jax``), unless JAX already has a cache
  directory (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``), which is then kept.

Programs that compile in under ``NMM_COMPILATION_CACHE_MIN_S`` seconds (default 0.1) are not
written; the directory is capped at ``NMM_COMPILATION_CACHE_MB`` (default 2048 MB, least recently
used entries go first). JAX does not write programs that call back to the host, so an eager
``nmm.solve`` keeps its host work out of its programs: the dense LU (the default up to 512
unknowns) is JAX alone, and an eager SuperLU solve compiles its assembly and residuals and
factors, solves and refines in Python (``drivers._host_solve``; ``tests/test_compile_cache.py``:
the second run compiles nothing). What still calls back from inside its program, and so compiles
in every run: any solve under the caller's ``jit``, ``vmap`` or ``grad``, Newton, ``nmm.fit`` to
samples or on stable spaces, and PETSc.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        v = float(raw)
    except ValueError:
        v = -1.0
    if v < 0:
        raise ValueError(f"{name}={raw!r}: expected a non-negative number")
    return v


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nmm" / "jax"


def configure() -> Path | None:
    """Switch the cache on as described in the module docstring; return its directory (None when
    nmm left JAX's settings alone)."""
    setting = os.environ.get("NMM_COMPILATION_CACHE", "")
    if setting == "0":
        return None
    if not setting and jax.config.jax_compilation_cache_dir:
        return None  # the user's own JAX cache wins
    path = Path(setting).expanduser() if setting else default_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(
            f"NMM_COMPILATION_CACHE: cannot create the compilation cache directory {path} ({err}); "
            "set NMM_COMPILATION_CACHE to a writable directory, or to 0 to switch the cache off"
        ) from err
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update(
        "jax_persistent_cache_min_compile_time_secs", _number("NMM_COMPILATION_CACHE_MIN_S", 0.1)
    )
    jax.config.update(
        "jax_compilation_cache_max_size", int(_number("NMM_COMPILATION_CACHE_MB", 2048) * 2**20)
    )
    return path
