"""What every benchmark script shares: the provenance line of its results, and writing them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path


def git_state() -> str:
    """Commit of the nmm checkout, and whether nmm/ had local changes (others edit it too)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "nmm"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + local changes in nmm/" if dirty else "")


def run_meta() -> dict:
    """The machine, JAX's version, nmm's commit and the load average at the start of a run."""
    import jax

    return {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "jax": jax.__version__,
        "nmm_git": git_state(),
        "loadavg_start": os.getloadavg(),
    }


def write_result(result: dict, tables: str, out: str) -> None:
    """Print the run's tables and write its raw results as JSON to ``out``."""
    print(tables)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=float))
    print(f"Wrote {path}")
