"""Timing competitors fairly: warm-up, alternating order, median of repeats.

Each competitor is a zero-argument callable doing one unit of work (one training step, one
expression forward and backward). All competitors of a row run in the same process, in turns,
so a change in machine load during the run hits them alike. The garbage collector stays on,
because a library whose graph makes reference cycles pays for them in real training too.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TimingPlan:
    """How long and how often to time.

    Attributes:
        warmup: untimed calls per competitor before timing (caches, lazy initialisation).
        repeats: timed blocks per competitor; the median block is reported.
        min_time: a block runs the callable enough times to last at least this many seconds.
        max_number: upper bound on calls per block.
        settle: seconds to sleep before each block, so helper threads that spin after the
            previous block (OpenBLAS, OpenMP) go idle first; 0 to skip.
    """

    warmup: int = 3
    repeats: int = 7
    min_time: float = 0.2
    max_number: int = 1_000_000
    settle: float = 0.0


def calibrate(fn: Callable[[], object], min_time: float, max_number: int) -> int:
    """Calls per block so that one block takes at least ``min_time`` seconds (timeit's rule)."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or number >= max_number:
            return number
        # Aim a little past min_time so the next block is the last.
        if elapsed <= 0:
            number *= 10
        else:
            number = min(max_number, max(number * 2, int(number * 1.2 * min_time / elapsed) + 1))


def describe_error(exc: BaseException) -> str:
    """One line naming an exception, for a table cell."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > 120:
        text = text[:117] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def compare(
    competitors: dict[str, Callable[[], object]], plan: TimingPlan
) -> tuple[dict[str, dict[str, float | int | list[float]]], dict[str, str]]:
    """Time each competitor, alternating between them, and return per-call seconds.

    Args:
        competitors: name -> callable doing one unit of work.
        plan: warm-up, repeats and block length.

    Returns:
        ``(timings, errors)``: timings maps name ->
        ``{"median": s, "min": s, "times": [s per call, one per block], "number": calls per
        block}``; errors maps the name of each competitor that raised to a one-line reason
        (such a competitor drops out of the remaining blocks).
    """
    numbers: dict[str, int] = {}
    errors: dict[str, str] = {}
    for name, fn in competitors.items():
        try:
            for _ in range(plan.warmup):
                fn()
            numbers[name] = calibrate(fn, plan.min_time, plan.max_number)
        except Exception as exc:  # a failing competitor must not sink the others
            errors[name] = describe_error(exc)
    names = [name for name in competitors if name not in errors]
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(plan.repeats):
        # Rotate the order so no competitor always runs right after the same neighbour.
        order = names[rep % len(names) :] + names[: rep % len(names)] if names else []
        for name in order:
            if name in errors:
                continue
            fn, number = competitors[name], numbers[name]
            gc.collect()
            if plan.settle:
                time.sleep(plan.settle)
            try:
                start = time.perf_counter()
                for _ in range(number):
                    fn()
                times[name].append((time.perf_counter() - start) / number)
            except Exception as exc:
                errors[name] = describe_error(exc)
    timings = {
        name: {
            "median": statistics.median(ts),
            "min": min(ts),
            "times": ts,
            "number": numbers[name],
        }
        for name, ts in times.items()
        if name not in errors
    }
    return timings, errors


def time_once(fn: Callable[[], object]) -> float:
    """Seconds for one call of ``fn`` (for work long enough that one call is the unit)."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired_ratio(timings: dict[str, dict], a: str, b: str, *, rate: bool = False) -> float | None:
    """The median over rounds of ``a``'s time divided by ``b``'s time in the same round.

    Blocks of one round run back to back, so a slow spell of the machine (other processes,
    a noisy neighbour on a shared host) hits both sides of each pair alike and cancels in the
    ratio; a ratio of the two medians would not cancel it. With ``rate=True`` the ratio is
    of rates (samples/s), the inverse: ``b``'s time over ``a``'s.

    Returns:
        The ratio, or None when either side has no timings.
    """
    if a not in timings or b not in timings:
        return None
    ta, tb = timings[a]["times"], timings[b]["times"]
    pairs = [(x / y) if not rate else (y / x) for x, y in zip(ta, tb) if x > 0 and y > 0]
    return statistics.median(pairs) if pairs else None


def spread(timings: dict[str, dict]) -> float:
    """The largest interquartile range of block times relative to the median, over sides.

    Near 0 on an idle machine; tens of percent mean something else competed for the CPUs.
    """
    worst = 0.0
    for t in timings.values():
        times = sorted(t["times"])
        if len(times) < 4 or t["median"] <= 0:
            continue
        q = statistics.quantiles(times, n=4)
        worst = max(worst, (q[2] - q[0]) / t["median"])
    return worst
