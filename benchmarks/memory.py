"""Peak memory of a training loop, measured two ways that complement each other.

* **tracemalloc** (in process, exact): NumPy reports its array buffers to tracemalloc, so the
  traced peak covers flowgrad and the NumPy floor completely (arrays plus Python objects such as
  graph nodes). PyTorch allocates through its own C++ allocator, which tracemalloc cannot see,
  and PyTorch keeps no CPU allocator statistics, so this method has no PyTorch column.
* **RSS high-water mark** (one fresh subprocess per competitor, Linux only): the same method for
  all three. After the data exists the probe resets the kernel's peak-RSS counter
  (``/proc/self/clear_refs``), builds the model, trains, and reports ``VmHWM`` minus the RSS at
  the reset. It includes what the C allocators keep cached and any one-time buffers (BLAS
  workspace, PyTorch's first-backward set-up), so it is coarser but covers PyTorch.

Run as ``python -m benchmarks.memory COMPETITOR BATCH STEPS THREADS`` the module is that
probe and prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

LEAK_TOLERANCE_BYTES = 64 * 1024


def traced_training_memory(
    build: Callable[[], Callable[[], object]], steps: int, warmup: int = 2
) -> dict[str, int]:
    """tracemalloc figures for a training loop.

    Args:
        build: makes the model and returns ``step()``; called with tracing on, so the model's
            parameters count toward the peak (its set-up transients do not: the peak is reset
            after it).
        steps: measured steps after the warm-up.
        warmup: steps before the retained-memory baseline (first-step caches settle).

    Returns:
        ``peak``: the highest traced bytes during warm-up and steps, above what existed before
        ``build`` (parameters, gradients, activations, temporaries); ``model``: bytes retained
        by ``build``; ``growth``: bytes still retained after the last step beyond those after
        the warm-up, both measured after ``gc.collect()`` (a leak shows here).
    """
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        step = build()
        gc.collect()
        model = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.reset_peak()
        for _ in range(warmup):
            step()
        gc.collect()
        after_warmup = tracemalloc.get_traced_memory()[0]
        for _ in range(steps):
            step()
        peak = tracemalloc.get_traced_memory()[1]
        gc.collect()
        after_steps = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return {"peak": peak - base, "model": model, "growth": after_steps - after_warmup}


def _proc_status() -> dict[str, int]:
    values = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def rss_probe(competitor: str, batch: int, steps: int, threads: int) -> dict[str, Any]:
    """Peak RSS growth of ``steps`` training steps of ``mlp_train`` (run in a fresh process).

    Returns:
        ``{"rss_peak": bytes}``, or ``{"error": reason}``.
    """
    import numpy as np  # noqa: TID251

    from benchmarks import floor
    from benchmarks.machine import limit_threads, torch_module

    torch = torch_module() if competitor == "pytorch" else None
    if competitor == "pytorch" and torch is None:
        return {"error": "not installed"}
    rng = np.random.default_rng(0)
    params = floor.init_mlp_params(rng)
    xs, ys = floor.synthetic_mnist(rng, batch, 4)
    with limit_threads(threads, torch):
        if competitor == "flowgrad":
            from benchmarks import fg_impl

            batches = fg_impl.mlp_batches(xs, ys)
            builder = fg_impl.make_mlp_trainer
        elif competitor == "pytorch":
            from benchmarks import torch_impl

            batches = torch_impl.mlp_batches(torch, xs, ys)

            def builder(p, lr):
                return torch_impl.make_mlp_trainer(torch, p, lr)
        else:
            batches = list(zip(xs, ys))
            builder = floor.make_mlp_trainer
        gc.collect()
        if not _reset_peak_rss():
            return {"error": "cannot reset the peak-RSS counter (/proc/self/clear_refs)"}
        base = _proc_status()["VmRSS"]
        step = builder(params, 0.1)
        for i in range(steps):
            step(*batches[i % len(batches)])
        peak = _proc_status()["VmHWM"]
    return {"rss_peak": peak - base}


def run_rss_probe(competitor: str, batch: int, steps: int, threads: int) -> dict[str, Any]:
    """Run :func:`rss_probe` in a fresh interpreter so earlier work cannot mask the peak."""
    if not Path("/proc/self/clear_refs").exists():
        return {"error": "needs Linux /proc"}
    import flowgrad

    # The probe imports this checkout's benchmarks and the flowgrad being measured.
    src = str(Path(flowgrad.__file__).resolve().parents[1])
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, src, *filter(None, [env.get("PYTHONPATH")])])
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        competitor,
        str(batch),
        str(steps),
        str(threads),
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "probe timed out"}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"probe failed: {tail}"}
    return json.loads(lines[-1])


if __name__ == "__main__":
    name, batch_s, steps_s, threads_s = sys.argv[1:5]
    print(json.dumps(rss_probe(name, int(batch_s), int(steps_s), int(threads_s))))
