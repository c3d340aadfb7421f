"""``conv_train``: one training step of the CNN of ``flowgrad train --model cnn`` on MNIST-sized
images, flowgrad against PyTorch eager and the hand-written NumPy floor.

The network: Conv(1 -> 16, 3x3, padding 1) - ReLU - MaxPool 2 - Conv(16 -> 32, 3x3, padding 1)
- ReLU - MaxPool 2 - Flatten - Linear(32·7·7 -> 10), cross-entropy, SGD lr 0.1, on synthetic
(N, 1, 28, 28) float32 batches. One step = ``zero_grad``, forward, ``backward``, update.
PyTorch runs its oneDNN convolution kernels; flowgrad and the floor run im2col (a copy out of
a strided view) and one BLAS product per convolution.

Memory: the peak (tracemalloc) of a training step, against the bytes of the im2col matrices
the step needs (both convolutions' columns, float32), the issue's yardstick (at most 2x).

Before timing, the case lets glibc keep freed memory mapped
(``flowgrad._allocator.retain_freed_memory``), for every competitor in the process:
otherwise
each NumPy step faults its ~30 MB of fresh arrays in again (about 7,000 page faults, a
third of the floor's step time), which PyTorch's allocator avoids.
"""

from __future__ import annotations

from typing import Any

import numpy as np  # noqa: TID251 -- the benchmarks compare against raw NumPy

from benchmarks import floor, torch_impl
from benchmarks.cases import (
    LR,
    SIDES,
    Context,
    _as_float,
    _cell,
    _check,
    _cycling,
    _error_notes,
    _noise_note,
    case,
)
from benchmarks.memory import traced_training_memory
from benchmarks.report import COMPETITOR_LABELS, CaseResult, Check, Table, fmt_bytes, fmt_x
from benchmarks.timing import compare, describe_error, paired_ratio


def _sides(ctx: Context) -> dict[str, tuple]:
    """name -> (to_native(xs, ys) -> batches, make_step(params, lr) -> step)."""
    import flowgrad as fg
    from benchmarks import fg_impl

    sides: dict[str, tuple] = {
        "flowgrad": (lambda xs, ys: [(fg.tensor(x), fg.tensor(y)) for x, y in zip(xs, ys)],
                     fg_impl.make_cnn_trainer),
    }
    if ctx.torch is not None:
        torch = ctx.torch
        sides["pytorch"] = (
            lambda xs, ys: [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in zip(xs, ys)],
            lambda params, lr: torch_impl.make_cnn_trainer(torch, params, lr),
        )
    sides["numpy"] = (lambda xs, ys: list(zip(xs, ys)), floor.make_cnn_trainer)
    return sides


@case
def conv_train(ctx: Context) -> CaseResult:
    from flowgrad import _allocator

    s = ctx.settings
    tuned = _allocator.retain_freed_memory()
    res = CaseResult(
        "conv_train",
        "Conv 1->16 3x3 - ReLU - MaxPool 2 - Conv 16->32 3x3 - ReLU - MaxPool 2 - Linear "
        "1568->10, cross-entropy, SGD lr 0.1, synthetic 1x28x28 float32 batches; one step = "
        "zero_grad, forward, backward, update",
    )
    rng = np.random.default_rng(0)
    params = floor.init_cnn_params(rng)
    sides = _sides(ctx)

    # Cross-check: three SGD steps from the same weights on the same batches.
    xs, ys = floor.synthetic_images(rng, 16, 3)
    losses: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    for name, (to_native, make_step) in sides.items():
        try:
            step = make_step(params, LR)
            losses[name] = [_as_float(step(*b)) for b in to_native(xs, ys)]
        except Exception as exc:
            errors[name] = describe_error(exc)
    res.notes += _error_notes(errors, "cross-check")
    if "numpy" in losses:
        ref = np.array(losses["numpy"])
        for name, values in losses.items():
            if name != "numpy":
                rel = float(np.max(np.abs(np.array(values) - ref) / np.abs(ref)))
                res.checks.append(Check(
                    f"{COMPETITOR_LABELS[name]} computes the floor's losses over 3 SGD steps",
                    f"max relative difference {rel:.1e}", rel < 1e-4))
        res.notes.append("cross-check: losses over 3 SGD steps (batch 16) of the floor: "
                         + ", ".join(f"{v:.5f}" for v in ref))

    speed_rows, memory_rows = [], []
    data: dict[str, Any] = {}
    for batch in s.conv_batches:
        ctx.log(f"conv_train: batch {batch}")
        xs, ys = floor.synthetic_images(rng, batch, s.pool_batches)
        native: dict[str, list] = {}
        steps: dict[str, Any] = {}
        errs: dict[str, str] = {}
        for name, (to_native, make_step) in sides.items():
            try:
                native[name] = to_native(xs, ys)
                steps[name] = _cycling(make_step(params, LR), native[name])
            except Exception as exc:
                errs[name] = describe_error(exc)
        timings, terrs = compare(steps, s.timing)
        errs.update(terrs)
        res.notes += _noise_note(timings, f"batch {batch}")
        sps = {k: batch / t["median"] for k, t in timings.items()}
        r_pt = paired_ratio(timings, "flowgrad", "pytorch", rate=True)
        r_np = paired_ratio(timings, "flowgrad", "numpy", rate=True)
        speed_rows.append(
            [str(batch), *(_cell(ctx, k, sps, errs) for k in SIDES), fmt_x(r_pt), fmt_x(r_np)])
        res.notes += _error_notes(errs, f"batch {batch}")
        if r_pt is not None and batch >= 128:
            res.checks.append(Check(f"flowgrad >= 0.5x PyTorch samples/s at batch {batch}",
                                    f"{r_pt:.2f}x", _check(r_pt >= 0.5, s.full_size)))

        col_bytes = floor.cnn_im2col_bytes(batch)
        traced: dict[str, dict[str, int]] = {}
        for name in ("flowgrad", "numpy"):
            if name not in native or name in errs:
                continue
            make_step, batches = sides[name][1], native[name]
            try:
                traced[name] = traced_training_memory(
                    lambda make_step=make_step, batches=batches: _cycling(
                        make_step(params, LR), batches), s.mem_steps)
            except Exception as exc:
                errs[name] = describe_error(exc)
        tf, tn = traced.get("flowgrad"), traced.get("numpy")
        memory_rows.append([
            str(batch), fmt_bytes(col_bytes),
            fmt_bytes(tf["peak"]) if tf else "-",
            f"{tf['peak'] / col_bytes:.2f}x" if tf else "-",
            fmt_bytes(tn["peak"]) if tn else "-",
            f"{tn['peak'] / col_bytes:.2f}x" if tn else "-",
        ])
        if tf:
            res.checks.append(Check(
                f"peak memory of a step <= 2x its im2col buffers at batch {batch}",
                f"{tf['peak'] / col_bytes:.2f}x", _check(tf["peak"] <= 2 * col_bytes,
                                                         s.full_size)))
        data[str(batch)] = {"samples_per_s": sps, "ratios": {"pytorch": r_pt, "numpy": r_np},
                            "timings": timings, "errors": errs, "traced": traced,
                            "im2col_bytes": col_bytes}

    labels = [COMPETITOR_LABELS[k] for k in SIDES]
    res.tables.append(Table("training throughput, samples/s (higher is better)",
                            ["batch", *labels, "flowgrad/PyTorch", "flowgrad/floor"],
                            speed_rows))
    res.tables.append(Table(
        f"peak memory of a training step, tracemalloc (over {s.mem_steps} steps), against the "
        "im2col buffers the step needs",
        ["batch", "im2col buffers", "flowgrad", "flowgrad/im2col", "NumPy floor",
         "floor/im2col"], memory_rows))
    res.notes.append(
        f"timing: median of {s.timing.repeats} blocks per side, sides alternating; ratios are "
        "the median over rounds of the ratio within a round, "
        f"{s.pool_batches} distinct batches cycled")
    res.notes.append("malloc keeps freed memory for reuse (retain_freed_memory): "
                     + ("on, for all competitors" if tuned else "not available here (not glibc)"))
    res.data = data
    return res
