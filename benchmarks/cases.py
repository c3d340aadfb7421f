"""The benchmark cases. Each takes a :class:`Context` and returns a :class:`CaseResult`.

A case is a function decorated with :func:`case`; it is registered under its name in
:data:`CASES`, which is what ``--cases`` accepts and what a full run goes through, in the
order of definition. To add one, see "Adding a case" in ``docs/benchmarks.md``.

Every case runs flowgrad, PyTorch (when installed) and a hand-written NumPy floor on the same
float32 inputs, checks that they compute the same numbers, then times them alternately
(:func:`benchmarks.timing.compare`). Ratios are always flowgrad's figure divided by the
competitor's, in the case's own unit, so whether above or below 1 is good depends on the unit
(samples/s: higher is better; seconds and microseconds: lower is better); each table says which.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np  # noqa: TID251 -- the benchmarks compare against raw NumPy

from benchmarks import floor, torch_impl
from benchmarks.memory import LEAK_TOLERANCE_BYTES, run_rss_probe, traced_training_memory
from benchmarks.report import (
    COMPETITOR_LABELS,
    CaseResult,
    Check,
    Table,
    fmt_bytes,
    fmt_number,
    fmt_ratio,
    fmt_x,
)
from benchmarks.timing import TimingPlan, compare, describe_error, paired_ratio, spread

LR = 0.1
SIDES = ("flowgrad", "pytorch", "numpy")
NOISY = 0.10  # interquartile range of block times above 10% of the median: a busy machine


@dataclass(frozen=True)
class Settings:
    """Sizes and repeat counts for one run (see :data:`PROFILES`).

    ``full_size`` is False for reduced sizes; the issue's targets are then reported as n/a.
    """

    timing: TimingPlan = TimingPlan(warmup=3, repeats=11, min_time=0.15, settle=0.05)
    hessian_timing: TimingPlan = TimingPlan(warmup=1, repeats=7, min_time=0.1, settle=0.05)
    op_timing: TimingPlan = TimingPlan(warmup=3, repeats=11, min_time=0.08, settle=0.02)
    batches: tuple[int, ...] = (32, 128, 512)
    conv_batches: tuple[int, ...] = (32, 128)
    pool_batches: int = 8
    mem_steps: int = 20
    rss: bool = True
    op_sizes: tuple[int, ...] = (1, 16)
    chain_length: int = 100_000
    chain_size: int = 16
    chain_repeats: int = 3
    digits_repeats: int = 3
    digits_overrides: dict[str, Any] = field(default_factory=dict)
    import_repeats: int = 5
    ddp_batch: int = 512
    ddp_steps: int = 60
    ddp_warmup: int = 5
    ddp_rounds: int = 3
    gpu_batches: tuple[int, ...] = (128, 1024, 8192)
    full_size: bool = True


PROFILES: dict[str, Settings] = {
    "full": Settings(),
    "quick": Settings(
        timing=TimingPlan(warmup=2, repeats=5, min_time=0.05, settle=0.02),
        hessian_timing=TimingPlan(warmup=1, repeats=3, min_time=0.02, settle=0.02),
        op_timing=TimingPlan(warmup=2, repeats=5, min_time=0.03, settle=0.01),
        mem_steps=5,
        chain_repeats=1,
        digits_repeats=1,
        import_repeats=3,
    ),
    # Tiny sizes: exercises every code path in seconds; the numbers mean nothing.
    "smoke": Settings(
        timing=TimingPlan(warmup=1, repeats=2, min_time=0.0, max_number=1),
        hessian_timing=TimingPlan(warmup=0, repeats=1, min_time=0.0, max_number=1),
        op_timing=TimingPlan(warmup=1, repeats=2, min_time=0.0, max_number=1),
        batches=(16,),
        conv_batches=(4,),
        gpu_batches=(16,),
        pool_batches=2,
        mem_steps=2,
        rss=False,
        chain_length=300,
        chain_repeats=1,
        digits_overrides={"epochs": 1},
        digits_repeats=1,
        import_repeats=1,
        ddp_batch=16,
        ddp_steps=2,
        ddp_warmup=1,
        ddp_rounds=1,
        full_size=False,
    ),
}


@dataclass
class Context:
    """What every case needs: the settings, PyTorch (or None), the thread count and the
    device the run is for (``cpu``, or ``cuda`` with ``--device cuda``)."""

    settings: Settings
    torch: Any | None
    threads: int
    log: Callable[[str], None] = lambda msg: None
    device: str = "cpu"


CaseFn = Callable[[Context], CaseResult]

#: Every case by name, in the order a full run goes through them (the order of definition).
CASES: dict[str, CaseFn] = {}


def case(fn: CaseFn | None = None, *, devices: tuple[str, ...] = ("cpu",)) -> Any:
    """Register ``fn`` as the benchmark case named ``fn.__name__``: ``@case``, or
    ``@case(devices=("cuda",))`` for a case that a ``--device cuda`` run takes (a run takes
    the cases of its device).

    A case takes the :class:`Context` and returns a :class:`~benchmarks.report.CaseResult`
    (tables, notes, checks against the targets, raw numbers in ``data``); an exception it
    raises is reported as that case's error without stopping the others.
    """

    def register(fn: CaseFn) -> CaseFn:
        if fn.__name__ in CASES:
            raise ValueError(f"benchmark case {fn.__name__!r} is defined twice")
        fn.devices = devices  # type: ignore[attr-defined]
        CASES[fn.__name__] = fn
        return fn

    return register if fn is None else register(fn)


def _missing(ctx: Context, name: str, errors: dict[str, str]) -> str:
    """The table cell for a competitor without a number."""
    if name == "pytorch" and ctx.torch is None:
        return "not installed"
    if name in errors:
        return "error (see notes)"
    return "-"


def _cell(ctx: Context, name: str, values: dict[str, float], errors: dict[str, str]) -> str:
    return fmt_number(values[name]) if name in values else _missing(ctx, name, errors)


def _error_notes(errors: dict[str, str], where: str) -> list[str]:
    return [f"{COMPETITOR_LABELS[k]} failed ({where}): {v}" for k, v in errors.items()]


def _noise_note(timings: dict[str, dict], where: str) -> list[str]:
    worst = spread(timings)
    if worst <= NOISY:
        return []
    return [
        f"noisy ({where}): block times varied by up to {100 * worst:.0f}% (interquartile "
        "range / median); something else was using the CPUs, rerun on an idle machine"
    ]


def _check(ok_if: bool, full_size: bool) -> bool | None:
    return ok_if if full_size else None


def _cycling(step: Callable, batches: list[tuple]) -> Callable[[], object]:
    it = itertools.cycle(batches)
    return lambda: step(*next(it))


# --- mlp_train ------------------------------------------------------------------------------


def _mlp_sides(ctx: Context) -> dict[str, tuple[Callable, Callable]]:
    """name -> (to_native(xs, ys) -> batches, make_step(params, lr) -> step)."""
    from benchmarks import fg_impl

    sides: dict[str, tuple[Callable, Callable]] = {
        "flowgrad": (fg_impl.mlp_batches, fg_impl.make_mlp_trainer)
    }
    if ctx.torch is not None:
        torch = ctx.torch
        sides["pytorch"] = (
            lambda xs, ys: torch_impl.mlp_batches(torch, xs, ys),
            lambda params, lr: torch_impl.make_mlp_trainer(torch, params, lr),
        )
    sides["numpy"] = (lambda xs, ys: list(zip(xs, ys)), floor.make_mlp_trainer)
    return sides


def _as_float(value: Any) -> float:
    if hasattr(value, "item"):
        return float(value.item())
    return float(value)


def _mlp_cross_check(
    ctx: Context, params: dict[str, np.ndarray], sides: dict, rng: np.random.Generator
) -> tuple[list[str], list[Check], dict[str, str]]:
    """Three SGD steps per side from the same weights and batches; the losses must agree."""
    xs, ys = floor.synthetic_mnist(rng, 64, 3)
    losses: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    for name, (to_native, make_step) in sides.items():
        try:
            step = make_step(params, LR)
            losses[name] = [_as_float(step(*b)) for b in to_native(xs, ys)]
        except Exception as exc:
            errors[name] = describe_error(exc)
    notes: list[str] = []
    checks: list[Check] = []
    if "numpy" in losses:
        ref = np.array(losses["numpy"])
        for name, values in losses.items():
            if name == "numpy":
                continue
            rel = float(np.max(np.abs(np.array(values) - ref) / np.abs(ref)))
            checks.append(
                Check(
                    f"{COMPETITOR_LABELS[name]} computes the floor's losses over 3 SGD steps",
                    f"max relative difference {rel:.1e}",
                    rel < 1e-4,
                )
            )
        shown = ", ".join(f"{v:.5f}" for v in ref)
        notes.append(f"cross-check: losses over 3 SGD steps (batch 64) of the floor: {shown}")
    return notes, checks, errors


@case
def mlp_train(ctx: Context) -> CaseResult:
    s = ctx.settings
    res = CaseResult(
        "mlp_train",
        "784 -> Linear 256 -> ReLU -> Linear 10 -> cross-entropy, SGD lr 0.1, synthetic "
        "MNIST-shaped float32 batches; one step = zero_grad, forward, backward, update",
    )
    rng = np.random.default_rng(0)
    params = floor.init_mlp_params(rng)
    sides = _mlp_sides(ctx)
    notes, checks, errors = _mlp_cross_check(ctx, params, sides, rng)
    res.notes += notes + _error_notes(errors, "cross-check")
    res.checks += checks

    speed_rows, traced_rows, rss_rows = [], [], []
    data: dict[str, Any] = {}
    for batch in s.batches:
        ctx.log(f"mlp_train: batch {batch}")
        xs, ys = floor.synthetic_mnist(rng, batch, s.pool_batches)
        native: dict[str, list] = {}
        steps: dict[str, Callable] = {}
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
            [str(batch), *(_cell(ctx, k, sps, errs) for k in SIDES), fmt_x(r_pt), fmt_x(r_np)]
        )
        res.notes += _error_notes(errs, f"batch {batch}")
        checks_speed = [
            (r_pt, 1.0, f"flowgrad >= 1.0x PyTorch samples/s at batch {batch}"),
            (r_np, 0.95, f"flowgrad >= 0.95x the NumPy floor's samples/s at batch {batch}"),
        ]
        for ratio, need, text in checks_speed:
            if ratio is not None:
                res.checks.append(Check(text, f"{ratio:.2f}x", _check(ratio >= need, s.full_size)))

        # Memory: tracemalloc for the NumPy-backed sides, RSS probes for all three.
        traced: dict[str, dict[str, int]] = {}
        for name in ("flowgrad", "numpy"):
            if name not in native or name in errs:
                continue
            to_native, make_step = sides[name]
            batches = native[name]
            try:
                traced[name] = traced_training_memory(
                    lambda make_step=make_step, batches=batches: _cycling(
                        make_step(params, LR), batches
                    ),
                    s.mem_steps,
                )
            except Exception as exc:
                errs[name] = describe_error(exc)
        tf, tn = traced.get("flowgrad"), traced.get("numpy")
        traced_rows.append(
            [
                str(batch),
                fmt_bytes(tf["peak"]) if tf else "-",
                fmt_bytes(tn["peak"]) if tn else "-",
                fmt_ratio(tf["peak"], tn["peak"]) if tf and tn else "-",
                f"{tf['growth'] / 1024:+.1f} KiB" if tf else "-",
                f"{tn['growth'] / 1024:+.1f} KiB" if tn else "-",
            ]
        )
        if tf and tn:
            ratio = tf["peak"] / tn["peak"]
            res.checks.append(
                Check(
                    f"peak memory (tracemalloc) <= 1.3x the floor's at batch {batch}",
                    f"{ratio:.2f}x",
                    _check(ratio <= 1.3, s.full_size),
                )
            )
        if tf:
            res.checks.append(
                Check(
                    f"memory flat across iterations at batch {batch} (retained growth over "
                    f"{s.mem_steps} steps < {LEAK_TOLERANCE_BYTES // 1024} KiB)",
                    f"{tf['growth'] / 1024:+.1f} KiB",
                    abs(tf["growth"]) < LEAK_TOLERANCE_BYTES,
                )
            )
        rss: dict[str, dict[str, Any]] = {}
        if s.rss:
            for name in SIDES:
                if name == "pytorch" and ctx.torch is None:
                    continue
                rss[name] = run_rss_probe(name, batch, s.mem_steps + 2, ctx.threads)
            peaks = {k: v["rss_peak"] for k, v in rss.items() if "rss_peak" in v}
            for k, v in rss.items():
                if "error" in v:
                    res.notes.append(f"RSS probe for {COMPETITOR_LABELS[k]}: {v['error']}")

            def rss_cell(k: str, peaks: dict[str, int] = peaks) -> str:
                if k in peaks:
                    return fmt_bytes(peaks[k])
                return "not installed" if k == "pytorch" and ctx.torch is None else "-"

            rss_rows.append(
                [
                    str(batch),
                    *(rss_cell(k) for k in SIDES),
                    fmt_ratio(peaks.get("flowgrad"), peaks.get("pytorch")),
                    fmt_ratio(peaks.get("flowgrad"), peaks.get("numpy")),
                ]
            )
        data[str(batch)] = {
            "samples_per_s": sps,
            "ratios": {"pytorch": r_pt, "numpy": r_np},
            "timings": timings,
            "errors": errs,
            "traced": traced,
            "rss": rss,
        }

    labels = [COMPETITOR_LABELS[k] for k in SIDES]
    res.tables.append(
        Table(
            "training throughput, samples/s (higher is better)",
            ["batch", *labels, "flowgrad/PyTorch", "flowgrad/floor"],
            speed_rows,
        )
    )
    res.tables.append(
        Table(
            f"peak memory, tracemalloc (parameters + gradients + activations + temporaries, "
            f"over {s.mem_steps} steps; PyTorch's allocator is invisible to tracemalloc)",
            [
                "batch",
                "flowgrad",
                "NumPy floor",
                "flowgrad/floor",
                "flowgrad retained growth",
                "floor retained growth",
            ],
            traced_rows,
        )
    )
    if rss_rows:
        res.tables.append(
            Table(
                f"peak RSS growth in a fresh process (model build + {s.mem_steps + 2} steps, "
                "data excluded; includes allocator caches and one-time buffers)",
                ["batch", *labels, "flowgrad/PyTorch", "flowgrad/floor"],
                rss_rows,
            )
        )
    res.notes.append(
        f"timing: median of {s.timing.repeats} blocks per side, sides alternating; ratios are "
        "the median over rounds of the ratio within a round (cancels machine-load drift), "
        f"{s.pool_batches} distinct batches cycled, batches converted to each library's type "
        "before timing (PyTorch shares the NumPy memory; flowgrad copies once)"
    )
    res.data = data
    return res


# --- op_overhead ----------------------------------------------------------------------------

OPS_PER_EXPRESSION = 3  # mul, add, sum


@case
def op_overhead(ctx: Context) -> CaseResult:
    from benchmarks import fg_impl

    s = ctx.settings
    res = CaseResult(
        "op_overhead",
        "((x*y)+x).sum() forward + backward on tiny float32 tensors (x, y require grad); "
        f"microseconds per op = expression time / {OPS_PER_EXPRESSION} (mul, add, sum)",
    )
    rng = np.random.default_rng(1)
    rows, split_rows = [], []
    data: dict[str, Any] = {}
    for size in s.op_sizes:
        ctx.log(f"op_overhead: {size} elements")
        x = rng.random(size, dtype=np.float32) + 0.5
        y = rng.random(size, dtype=np.float32) + 0.5
        full: dict[str, Callable] = {}
        fwd: dict[str, Callable] = {}
        errs: dict[str, str] = {}
        try:
            full["flowgrad"], fwd["flowgrad"] = fg_impl.op_expression(x, y)
            full["flowgrad"]()
            gx, gy = (t.grad.numpy() for t in full["flowgrad"].inputs)
            if not (np.allclose(gx, y + 1, rtol=1e-6) and np.allclose(gy, x, rtol=1e-6)):
                errs["flowgrad"] = "wrong gradients (expected d/dx = y + 1, d/dy = x)"
                full.pop("flowgrad")
                fwd.pop("flowgrad")
        except Exception as exc:
            errs["flowgrad"] = describe_error(exc)
            full.pop("flowgrad", None)
            fwd.pop("flowgrad", None)
        if ctx.torch is not None:
            full["pytorch"], fwd["pytorch"] = torch_impl.op_expression(ctx.torch, x, y)
        full["numpy"] = lambda x=x, y=y: floor.op_expression(x, y)
        fwd["numpy"] = lambda x=x, y=y: floor.op_expression_forward(x, y)
        t_full, e1 = compare(full, s.op_timing)
        t_fwd, e2 = compare(fwd, s.op_timing)
        errs.update(e1)
        errs.update({k: v for k, v in e2.items() if k not in errs})
        res.notes += _noise_note(t_full, f"{size} elements")
        per_op = {k: t["median"] / OPS_PER_EXPRESSION * 1e6 for k, t in t_full.items()}
        r_pt = paired_ratio(t_full, "flowgrad", "pytorch")
        r_np = paired_ratio(t_full, "flowgrad", "numpy")
        rows.append(
            [str(size), *(_cell(ctx, k, per_op, errs) for k in SIDES), fmt_x(r_pt), fmt_x(r_np)]
        )
        split = []
        for k in SIDES:
            if k in t_full and k in t_fwd:
                f_us = t_fwd[k]["median"] * 1e6
                b_us = max(t_full[k]["median"] * 1e6 - f_us, 0.0)
                split += [fmt_number(f_us), fmt_number(b_us)]
            else:
                split += [_missing(ctx, k, errs)] * 2
        split_rows.append([str(size), *split])
        res.notes += _error_notes(errs, f"{size} elements")
        if "flowgrad" in per_op:
            res.checks.append(
                Check(
                    f"flowgrad at most 5 us per op ({size} elements)",
                    f"{per_op['flowgrad']:.2f} us",
                    _check(per_op["flowgrad"] <= 5.0, s.full_size),
                )
            )
        if r_pt is not None:
            res.checks.append(
                Check(
                    f"flowgrad us/op <= 0.25x PyTorch's ({size} elements)",
                    f"{r_pt:.2f}x",
                    _check(r_pt <= 0.25, s.full_size),
                )
            )
        if r_np is not None:
            res.checks.append(
                Check(
                    f"flowgrad us/op within 3x of raw NumPy ({size} elements)",
                    f"{r_np:.2f}x",
                    _check(r_np <= 3.0, s.full_size),
                )
            )
        data[str(size)] = {
            "us_per_op": per_op,
            "ratios": {"pytorch": r_pt, "numpy": r_np},
            "full": t_full,
            "forward": t_fwd,
            "errors": errs,
        }
    labels = [COMPETITOR_LABELS[k] for k in SIDES]
    labels[2] = "raw NumPy"
    res.tables.append(
        Table(
            "forward + backward, microseconds per op (lower is better)",
            ["elements", *labels, "flowgrad/PyTorch", "flowgrad/NumPy"],
            rows,
        )
    )
    res.tables.append(
        Table(
            "split, microseconds per expression: forward alone; backward = (forward+backward) "
            "- forward",
            ["elements", *(f"{lab} {part}" for lab in labels for part in ("fwd", "bwd"))],
            split_rows,
        )
    )
    res.notes.append(
        "raw NumPy computes s = (x*y + x).sum(), then g = ones_like(x), dx = g*y + g, dy = g*x "
        "(the same arithmetic, no graph); each flowgrad/PyTorch call first sets x.grad and "
        "y.grad to None so accumulation is not timed"
    )
    res.data = data
    return res


# --- deep_chain -----------------------------------------------------------------------------


@case
def deep_chain(ctx: Context) -> CaseResult:
    from benchmarks import fg_impl

    s = ctx.settings
    n = s.chain_length
    factor = math.exp(1.0 / n)  # the chain multiplies by e overall: d(sum y)/dx = e
    res = CaseResult(
        "deep_chain",
        f"y = x * {factor:.8f}, {n:,} times on a {s.chain_size}-element float32 tensor, "
        "then y.sum().backward(); seconds for forward + backward + freeing the graph",
    )
    x = np.random.default_rng(2).random(s.chain_size, dtype=np.float32) + 0.5
    makers: dict[str, Callable[[int], Callable[[], dict]]] = {
        "flowgrad": lambda length: fg_impl.chain(x, length, factor),
    }
    if ctx.torch is not None:
        makers["pytorch"] = lambda length: torch_impl.chain(ctx.torch, x, length, factor)

    def numpy_chain(length: int) -> Callable[[], dict]:
        def run() -> dict:
            t0 = time.perf_counter()
            _, g = floor.chain(x, length, factor)
            return {"forward": time.perf_counter() - t0, "backward": 0.0, "free": 0.0, "grad": g}

        return run

    makers["numpy"] = numpy_chain
    errs: dict[str, str] = {}
    for name, make in makers.items():  # warm-up on a short chain
        try:
            make(min(n, 1000))()
        except Exception as exc:
            errs[name] = describe_error(exc)
    runs = {k: make(n) for k, make in makers.items() if k not in errs}
    totals: dict[str, list[float]] = {k: [] for k in runs}
    parts: dict[str, dict[str, list[float]]] = {
        k: {"forward": [], "backward": [], "free": []} for k in runs
    }
    names = list(runs)
    for rep in range(s.chain_repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            if name in errs:
                continue
            ctx.log(f"deep_chain: {COMPETITOR_LABELS[name]} {rep + 1}/{s.chain_repeats}")
            gc.collect()
            try:
                t0 = time.perf_counter()
                out = runs[name]()
                totals[name].append(time.perf_counter() - t0)
            except Exception as exc:  # a RecursionError here is a finding, not a crash
                errs[name] = describe_error(exc)
                continue
            for key in parts[name]:
                parts[name][key].append(out[key])
            expected = factor**n
            if not np.allclose(out["grad"], expected, rtol=1e-2):
                errs[name] = f"wrong gradient {out['grad'][:2]} (expected {expected:.4f})"
    seconds = {k: statistics.median(v) for k, v in totals.items() if v and k not in errs}
    paired = {k: {"times": v} for k, v in totals.items() if k in seconds}
    r_pt = paired_ratio(paired, "flowgrad", "pytorch")
    r_np = paired_ratio(paired, "flowgrad", "numpy")
    res.tables.append(
        Table(
            "seconds, forward + backward + free (lower is better)",
            ["ops", *(COMPETITOR_LABELS[k] for k in SIDES), "flowgrad/PyTorch", "flowgrad/floor"],
            [
                [
                    f"{n:,}",
                    *(_cell(ctx, k, seconds, errs) for k in SIDES),
                    fmt_x(r_pt),
                    fmt_x(r_np),
                ]
            ],
        )
    )
    split_rows = []
    for k in SIDES:
        if k in seconds:
            med = {p: statistics.median(v) for p, v in parts[k].items()}
            split_rows.append([COMPETITOR_LABELS[k], *(fmt_number(med[p]) for p in med)])
    res.tables.append(Table("split, seconds", ["side", "forward", "backward", "free"], split_rows))
    res.notes += _error_notes(errs, f"{n:,}-op chain")
    res.notes.append(
        f"median of {s.chain_repeats} run(s) per side, sides alternating; the NumPy floor "
        "multiplies forward, then multiplies the seed gradient backward (its time is all under "
        f"'forward'); Python's recursion limit left at {sys.getrecursionlimit()}"
    )
    full = s.full_size and n >= 100_000
    fg_err = errs.get("flowgrad")
    res.checks.append(
        Check(f"no recursion error at {n:,} ops", fg_err or "ran", _check(fg_err is None, full))
    )
    if r_pt is not None:
        res.checks.append(
            Check("deep_chain time <= PyTorch's", f"{r_pt:.2f}x", _check(r_pt <= 1.0, full))
        )
    res.data = {"seconds": seconds, "parts": parts, "errors": errs, "length": n}
    return res


# --- hessian --------------------------------------------------------------------------------


@case
def hessian(ctx: Context) -> CaseResult:
    import flowgrad as fg
    from benchmarks import fg_impl

    s = ctx.settings
    res = CaseResult(
        "hessian",
        "full 50x50 Hessian of a 50-parameter scalar loss (3 -> 10 tanh -> 1 network, MSE on "
        "32 samples, float32); seconds per Hessian",
    )
    rng = np.random.default_rng(3)
    theta = rng.normal(0, 0.5, 50).astype(np.float32)
    xb = rng.normal(0, 1, (32, 3)).astype(np.float32)
    tb = rng.normal(0, 1, (32, 1)).astype(np.float32)
    funcs: dict[str, Callable[[], Any]] = {}
    errs: dict[str, str] = {}
    results: dict[str, np.ndarray] = {}
    try:
        f = fg_impl.small_net_loss(xb, tb)
        hess = fg.hessian(f)
        theta_fg = fg.tensor(theta)
        funcs["flowgrad"] = lambda: hess(theta_fg)
        results["flowgrad"] = np.asarray(funcs["flowgrad"]().numpy())
    except Exception as exc:
        errs["flowgrad"] = describe_error(exc)
        funcs.pop("flowgrad", None)
    torch = ctx.torch
    if torch is not None:
        theta_t, x_t, t_t = torch_impl.hessian_inputs(torch, theta, xb, tb)
        f_t = torch_impl.small_net_loss(torch, x_t, t_t)
        funcs["pytorch"] = lambda: torch.autograd.functional.hessian(f_t, theta_t)
        funcs["pytorch_func"] = lambda: torch.func.hessian(f_t)(theta_t)
        results["pytorch"] = funcs["pytorch"]().numpy()
    ctx.log("hessian: timing")
    timings, terrs = compare(funcs, s.hessian_timing)
    errs.update(terrs)
    res.notes += _noise_note(timings, "Hessian")
    sec = {k: t["median"] for k, t in timings.items()}
    labels = {
        "flowgrad": "flowgrad fg.hessian",
        "pytorch": "PyTorch autograd.functional.hessian",
        "pytorch_func": "PyTorch torch.func.hessian",
    }
    cols = list(labels)

    def cell(k: str) -> str:
        if k.startswith("pytorch") and torch is None:
            return "not installed"
        return fmt_number(sec[k]) if k in sec else ("error (see notes)" if k in errs else "-")

    res.tables.append(
        Table(
            "seconds per Hessian (lower is better)",
            [labels[k] for k in cols] + ["flowgrad/PyTorch", "flowgrad/torch.func"],
            [
                [
                    *(cell(k) for k in cols),
                    fmt_x(paired_ratio(timings, "flowgrad", "pytorch")),
                    fmt_x(paired_ratio(timings, "flowgrad", "pytorch_func")),
                ]
            ],
        )
    )
    for k, v in errs.items():
        res.notes.append(f"{labels.get(k, k)} failed: {v}")
    if "flowgrad" in results:
        h = results["flowgrad"]
        asym = float(np.max(np.abs(h - h.T)) / max(np.max(np.abs(h)), 1e-30))
        res.notes.append(f"flowgrad Hessian shape {h.shape}, relative asymmetry {asym:.1e}")
        if "pytorch" in results:
            diff = float(
                np.max(np.abs(h - results["pytorch"]))
                / max(np.max(np.abs(results["pytorch"])), 1e-30)
            )
            res.checks.append(
                Check(
                    "flowgrad's Hessian equals PyTorch's (float32 tolerance)",
                    f"max relative difference {diff:.1e}",
                    diff < 1e-4,
                )
            )
    res.notes.append(
        "no NumPy floor: a hand-derived Hessian is a different computation, not a floor; "
        "autograd.functional.hessian takes one reverse-over-reverse pass per row (its default, "
        "vectorize=False), torch.func.hessian is forward-over-reverse with vmap"
    )
    res.data = {"seconds": sec, "errors": errs}
    return res


# --- train_digits ---------------------------------------------------------------------------


@case
def train_digits(ctx: Context) -> CaseResult:
    s = ctx.settings
    res = CaseResult(
        "train_digits",
        "the `flowgrad train` default run (flowgrad.training.train(TrainConfig()): reference "
        "network on the embedded 8x8 digits); wall seconds and held-out test accuracy",
    )
    try:
        from flowgrad import training
    except ImportError as exc:
        res.error = f"flowgrad.training is not available ({describe_error(exc)})"
        return res
    config = training.TrainConfig()
    if s.digits_overrides:
        import dataclasses

        config = dataclasses.replace(config, **s.digits_overrides)
    walls: list[float] = []
    accs: list[float | None] = []
    for rep in range(s.digits_repeats):
        ctx.log(f"train_digits: run {rep + 1}/{s.digits_repeats}")
        with tempfile.TemporaryDirectory(prefix="flowgrad-bench-") as tmp:
            import dataclasses

            run_config = dataclasses.replace(config, out=str(Path(tmp) / "run"))
            gc.collect()
            t0 = time.perf_counter()
            try:
                result, plotted = _call_train(training.train, run_config)
            except Exception as exc:
                res.error = describe_error(exc)
                return res
            walls.append(time.perf_counter() - t0)
        accs.append(_test_accuracy(result))
    wall = statistics.median(walls)
    acc = accs[-1]
    described = ", ".join(
        f"{k}={getattr(config, k)}"
        for k in ("dataset", "hidden", "epochs", "batch_size", "optimizer", "lr", "seed")
        if hasattr(config, k)
    )
    res.tables.append(
        Table(
            "flowgrad train, default configuration",
            ["configuration", "runs", "wall seconds (median)", "test accuracy"],
            [[described, str(len(walls)), fmt_number(wall), "-" if acc is None else f"{acc:.4f}"]],
        )
    )
    overrides = ", ".join(f"{k}={v}" for k, v in s.digits_overrides.items())
    res.notes.append(
        ("defaults" if not overrides else f"defaults except {overrides}")
        + " (lr None means the optimizer's default); the wall time covers everything "
        "`flowgrad train` does: data loading, the epochs, per-epoch evaluation, checkpoints "
        "and metrics files, the curves picture; no PyTorch counterpart (the case times the "
        "command, not a kernel)"
    )
    if not plotted:
        res.notes.append("matplotlib is not installed: ran with plot=False (no curves.png)")
    res.data = {"wall_seconds": walls, "accuracy": accs, "config": described, "plotted": plotted}
    return res


def _call_train(train: Callable, config: Any) -> tuple[Any, bool]:
    """``train(config)`` without progress bars or log lines.

    Returns:
        ``(result, plotted)``; the curves picture is skipped (``plot=False``) when
        matplotlib is missing, since the command's default run would fail for that reason
        alone.
    """
    import importlib.util
    import inspect

    params = inspect.signature(train).parameters
    kwargs: dict[str, Any] = {}
    if "progress" in params:
        kwargs["progress"] = False
    if "log" in params:
        kwargs["log"] = None if params["log"].default is None else (lambda line: None)
    plotted = True
    if "plot" in params and importlib.util.find_spec("matplotlib") is None:
        kwargs["plot"] = False
        plotted = False
    return train(config, **kwargs), plotted


def _test_accuracy(result: Any) -> float | None:
    value = getattr(result, "test_accuracy", None)
    if value is None:
        metrics = getattr(result, "metrics", None) or []
        if metrics:
            last = metrics[-1]
            value = (
                last.get("test_accuracy")
                if isinstance(last, dict)
                else getattr(last, "test_accuracy", None)
            )
    return None if value is None else float(value)


# --- import_time ----------------------------------------------------------------------------


@case
def import_time(ctx: Context) -> CaseResult:
    s = ctx.settings
    res = CaseResult(
        "import_time",
        "seconds to import the library in a fresh interpreter (interpreter start-up excluded)",
    )
    import flowgrad

    env = dict(os.environ)
    src = str(Path(flowgrad.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    modules = {"flowgrad": "flowgrad", "numpy": "numpy"}
    if ctx.torch is not None:
        modules["pytorch"] = "torch"

    def measure(module: str) -> float:
        code = (
            "import time; t = time.perf_counter(); import "
            + module
            + "; print(time.perf_counter() - t)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        return float(out.stdout.strip().splitlines()[-1])

    times: dict[str, list[float]] = {k: [] for k in modules}
    errs: dict[str, str] = {}
    for name, module in modules.items():  # warm the file cache
        try:
            measure(module)
        except Exception as exc:
            errs[name] = describe_error(exc)
    names = [k for k in modules if k not in errs]
    for rep in range(s.import_repeats):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            times[name].append(measure(modules[name]))
    sec = {k: statistics.median(v) for k, v in times.items() if v}
    res.tables.append(
        Table(
            "import seconds (lower is better; median of fresh interpreters)",
            ["import flowgrad", "import numpy", "import torch", "flowgrad - numpy"],
            [
                [
                    _cell(ctx, "flowgrad", sec, errs),
                    _cell(ctx, "numpy", sec, errs),
                    _cell(ctx, "pytorch", sec, errs),
                    fmt_number(sec["flowgrad"] - sec["numpy"])
                    if {"flowgrad", "numpy"} <= set(sec)
                    else "-",
                ]
            ],
        )
    )
    res.notes += _error_notes(errs, "import")
    if "flowgrad" in sec:
        res.checks.append(
            Check("import flowgrad under 0.3 s", f"{sec['flowgrad']:.3f} s", sec["flowgrad"] < 0.3)
        )
    res.data = {"seconds": sec, "errors": errs}
    return res


# Cases in their own modules register on import (after the ones above, in this order).
from benchmarks import conv_train, ddp_mlp, gpu_mlp  # noqa: E402, F401
