"""``mlp_train_cuda``: the ``mlp_train`` step on a GPU, flowgrad (CuPy) against PyTorch eager CUDA.

Run with ``python -m benchmarks --device cuda`` (``flowgrad bench --device cuda``); a CPU run
does not take this case. One step is the ``mlp_train`` step (784 -> Linear 256 -> ReLU ->
Linear 10 -> cross-entropy, SGD lr 0.1, float32) on batches already on the GPU, and every
step ends with a device synchronize on both sides, so a step's time is the time until the
GPU has finished it (what a training loop that reads its loss each step sees). At small
batches both sides are launch-bound: the step's time is the Python and kernel-launch work
per op, which is what flowgrad's per-op overhead decides.

Before timing, three SGD steps from the same weights and batches must give the NumPy
floor's losses on both sides (a GPU computes the same float32 arithmetic, in another order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np  # noqa: TID251 -- the inputs are NumPy arrays shared with the other sides

from benchmarks import floor, torch_impl
from benchmarks.cases import (
    LR,
    Context,
    _check,
    _cycling,
    _mlp_cross_check,
    _noise_note,
    case,
)
from benchmarks.report import CaseResult, Check, Table, fmt_number, fmt_x
from benchmarks.timing import compare, describe_error, paired_ratio

TARGET = 1.2  # flowgrad's samples/s over PyTorch eager CUDA's, at batch 1024
TARGET_BATCH = 1024


def _sides(ctx: Context) -> dict[str, tuple[Callable, Callable]]:
    """name -> (to_native(xs, ys) -> batches on the GPU, make_step(params, lr) -> step)."""
    from benchmarks import fg_impl

    device = ctx.device
    sides: dict[str, tuple[Callable, Callable]] = {
        "flowgrad": (lambda xs, ys: fg_impl.mlp_batches(xs, ys, device),
                     lambda params, lr: fg_impl.make_mlp_trainer(params, lr, device)),
    }
    torch = ctx.torch
    if torch is not None and torch.cuda.is_available():
        sides["pytorch"] = (
            lambda xs, ys: torch_impl.mlp_batches(torch, xs, ys, device),
            lambda params, lr: torch_impl.make_mlp_trainer(torch, params, lr, device),
        )
    return sides


@case(devices=("cuda",))
def mlp_train_cuda(ctx: Context) -> CaseResult:
    s = ctx.settings
    res = CaseResult(
        "mlp_train_cuda",
        "the mlp_train step on the GPU (784 -> Linear 256 -> ReLU -> Linear 10 -> "
        "cross-entropy, SGD lr 0.1, float32 batches on the device): flowgrad on CuPy against "
        "PyTorch eager CUDA, each step ending with a device synchronize",
    )
    rng = np.random.default_rng(0)
    params = floor.init_mlp_params(rng)
    sides = _sides(ctx)
    if "pytorch" not in sides:
        res.notes.append("PyTorch with CUDA is not available here: flowgrad's figures only")
    checked = {**sides, "numpy": (lambda xs, ys: list(zip(xs, ys)), floor.make_mlp_trainer)}
    notes, checks, errors = _mlp_cross_check(ctx, params, checked, rng)
    res.notes += notes + [f"{k} failed (cross-check): {v}" for k, v in errors.items()]
    res.checks += checks

    rows: list[list[str]] = []
    data: dict[str, Any] = {}
    for batch in s.gpu_batches:
        ctx.log(f"mlp_train_cuda: batch {batch}")
        xs, ys = floor.synthetic_mnist(rng, batch, s.pool_batches)
        steps: dict[str, Callable] = {}
        errs: dict[str, str] = {}
        for name, (to_native, make_step) in sides.items():
            try:
                steps[name] = _cycling(make_step(params, LR), to_native(xs, ys))
            except Exception as exc:
                errs[name] = describe_error(exc)
        timings, terrs = compare(steps, s.timing)
        errs.update(terrs)
        res.notes += _noise_note(timings, f"batch {batch}")
        res.notes += [f"{k} failed (batch {batch}): {v}" for k, v in errs.items()]
        sps = {k: batch / t["median"] for k, t in timings.items()}
        ratio = paired_ratio(timings, "flowgrad", "pytorch", rate=True)
        rows.append([str(batch),
                     fmt_number(sps["flowgrad"]) if "flowgrad" in sps else "-",
                     fmt_number(sps["pytorch"]) if "pytorch" in sps else "-",
                     fmt_x(ratio)])
        if batch == TARGET_BATCH and ratio is not None:
            res.checks.append(Check(
                f"flowgrad >= {TARGET}x PyTorch eager CUDA samples/s at batch {batch}",
                f"{ratio:.2f}x", _check(ratio >= TARGET, s.full_size)))
        data[str(batch)] = {"samples_per_s": sps, "ratio_pytorch": ratio, "timings": timings,
                            "errors": errs}
    res.tables.append(Table(
        "samples/s on the GPU (higher is better; flowgrad/PyTorch above 1 is faster)",
        ["batch", "flowgrad (CuPy)", "PyTorch eager CUDA", "flowgrad/PyTorch"], rows))
    res.notes.append(
        f"timing: median of {s.timing.repeats} blocks per side, sides alternating; "
        f"{s.pool_batches} distinct batches cycled, all on the GPU before timing")
    res.data = data
    return res
