"""Machine facts printed above every benchmark table, and the thread limit all competitors share.

Numbers from one machine mean little without the machine: the CPU, the BLAS NumPy calls and how
many threads it may use, PyTorch's build and threads, and the OpenBLAS variables that change
which kernels OpenBLAS picks.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Environment variables that change OpenBLAS's kernel choice or threading; printed as set/unset.
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def torch_module() -> Any | None:
    """PyTorch if it is installed, else None (PyTorch is an optional competitor)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


@contextlib.contextmanager
def limit_threads(threads: int, torch: Any | None) -> Iterator[None]:
    """Run the block with NumPy's BLAS/OpenMP pools and PyTorch's intra-op pool at ``threads``.

    threadpoolctl reaches every loaded native pool (OpenBLAS, MKL, OpenMP), including the ones
    PyTorch brings; ``torch.set_num_threads`` sets ATen's own pool, which threadpoolctl cannot.
    """
    previous_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limiter: contextlib.AbstractContextManager = contextlib.nullcontext()
    else:
        limiter = threadpool_limits(limits=threads)
    try:
        with limiter:
            yield
    finally:
        if torch is not None and previous_torch is not None:
            torch.set_num_threads(previous_torch)


def _blas_info() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {
            "user_api": pool.get("user_api"),
            "internal_api": pool.get("internal_api"),
            "version": pool.get("version"),
            "num_threads": pool.get("num_threads"),
            "architecture": pool.get("architecture"),
            "library": Path(str(pool.get("filepath", ""))).name,
        }
        for pool in threadpool_info()
    ]


def _git_commit() -> str | None:
    # The source checkout's commit, when flowgrad runs from one; an installed wheel has none.
    root = Path(__file__).resolve().parents[3]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_facts(torch: Any | None, threads: int) -> dict[str, Any]:
    """Collect the facts a reader needs to interpret the numbers.

    Call it inside :func:`limit_threads` so the reported thread counts are the ones in force.

    Args:
        torch: the PyTorch module, or None when it is not installed.
        threads: the thread count requested for every competitor.

    Returns:
        A JSON-serialisable dict (CPU, Python, NumPy and BLAS, PyTorch, environment, date).
    """
    import numpy as np  # noqa: TID251 -- reporting NumPy's own version

    import flowgrad

    facts: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "usable_cpus": usable_cpus(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "flowgrad": getattr(flowgrad, "__version__", "unknown"),
        "flowgrad_commit": _git_commit(),
        "numpy": np.__version__,
        "threads_requested": threads,
        "native_pools": _blas_info(),
        "env": {name: os.environ.get(name) for name in OPENBLAS_VARS + THREAD_VARS},
        "load_average": load_average(),
    }
    if torch is None:
        facts["torch"] = None
    else:
        facts["torch"] = {
            "version": torch.__version__,
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
        }
    return facts


def format_facts(facts: dict[str, Any]) -> list[str]:
    """The facts as ``key: value`` lines, for the console and for RESULTS.md."""
    lines = [
        f"date: {facts['date']}",
        f"CPU: {facts['cpu']} ({facts['usable_cpus']} usable CPUs), {facts['platform']}",
        f"Python {facts['python']}, flowgrad {facts['flowgrad']}"
        + (f" (commit {facts['flowgrad_commit']})" if facts.get("flowgrad_commit") else ""),
        f"NumPy {facts['numpy']}",
    ]
    pools = facts["native_pools"]
    if not pools:
        lines.append("native thread pools: unknown (threadpoolctl not installed)")
    for pool in pools:
        arch = f", {pool['architecture']}" if pool.get("architecture") else ""
        version = f" {pool['version']}" if pool.get("version") else ""
        lines.append(
            f"  {pool['user_api']} pool: {pool['internal_api']}{version}{arch}, "
            f"num_threads={pool['num_threads']} ({pool['library']})"
        )
    torch = facts["torch"]
    if torch is None:
        lines.append("PyTorch: not installed")
    else:
        lines.append(
            f"PyTorch {torch['version']}: threads={torch['threads']}, "
            f"interop threads={torch['interop_threads']}"
        )
    env = facts["env"]
    lines.append(
        "environment: "
        + ", ".join(f"{k}={v}" if v is not None else f"{k} unset" for k, v in env.items())
    )
    lines.append(f"threads per competitor: {facts['threads_requested']}")
    load = facts.get("load_average")
    if load is not None:
        lines.append(
            f"load average at start (1, 5, 15 min): {load[0]}, {load[1]}, {load[2]} "
            f"(other work on the machine makes the numbers noisier)"
        )
    return lines
