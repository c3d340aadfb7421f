"""Where flowgrad's time goes in a benchmark case: ``python -m benchmarks.profiler CASE``.

Profiles only the flowgrad side of ``mlp_train`` (one SGD step) or ``op_overhead`` (one
``((x*y)+x).sum()`` forward and backward) and prints the top functions by own time and by
cumulative time, as percentages of the profiled total. ``--tool cprofile`` (the default, in the
standard library) counts every call, which inflates cheap Python calls; ``--tool pyinstrument``
(``pip install pyinstrument``) samples instead and prints its call tree.

Examples::

    python -m benchmarks.profiler mlp_train --batch 32
    python -m benchmarks.profiler op_overhead --size 16 --tool pyinstrument
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable

import benchmarks  # noqa: F401  (puts the checkout's src on the path when needed)


def build(case: str, batch: int, size: int) -> Callable[[], object]:
    """The flowgrad callable of ``case`` (one unit of work)."""
    import numpy as np

    from benchmarks import fg_impl, floor

    if case == "mlp_train":
        rng = np.random.default_rng(0)
        params = floor.init_mlp_params(rng)
        xs, ys = floor.synthetic_mnist(rng, batch, 4)
        step = fg_impl.make_mlp_trainer(params, 0.1)
        batches = fg_impl.mlp_batches(xs, ys)
        state = {"i": 0}

        def run() -> object:
            state["i"] += 1
            return step(*batches[state["i"] % len(batches)])

        return run
    if case == "op_overhead":
        rng = np.random.default_rng(1)
        x = rng.random(size, dtype=np.float32) + 0.5
        y = rng.random(size, dtype=np.float32) + 0.5
        return fg_impl.op_expression(x, y)[0]
    raise SystemExit(f"unknown case {case!r}; choose mlp_train or op_overhead")


def top_table(stats: pstats.Stats, top: int) -> str:
    """Top functions by own time, with own and cumulative percentages of the total."""
    rows = []
    total = stats.total_tt or 1e-30
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        short = filename.split("/src/")[-1].split("site-packages/")[-1]
        rows.append((tottime, cumtime, ncalls, f"{short}:{line}({name})"))
    rows.sort(reverse=True)
    lines = [f"{'own %':>6} {'cum %':>6} {'calls':>9}  function"]
    for tottime, cumtime, ncalls, label in rows[:top]:
        lines.append(
            f"{100 * tottime / total:6.1f} {100 * cumtime / total:6.1f} {ncalls:9d}  {label}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiler", description=__doc__)
    parser.add_argument("case", choices=["mlp_train", "op_overhead"])
    parser.add_argument("--batch", type=int, default=32, help="mlp_train batch size")
    parser.add_argument("--size", type=int, default=16, help="op_overhead tensor size")
    parser.add_argument("--seconds", type=float, default=3.0, help="profiled wall time")
    parser.add_argument("--tool", choices=["cprofile", "pyinstrument"], default="cprofile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from benchmarks.machine import limit_threads

    run = build(args.case, args.batch, args.size)
    with limit_threads(args.threads, None):
        for _ in range(20):
            run()
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < 0.5:
            run()
            n += 1
        per_call = (time.perf_counter() - start) / n
        calls = max(1, int(args.seconds / per_call))
        print(f"{args.case}: {per_call * 1e6:.1f} us per call unprofiled; profiling {calls} calls")
        if args.tool == "pyinstrument":
            try:
                from pyinstrument import Profiler
            except ImportError:
                print("pyinstrument is not installed: pip install pyinstrument", file=sys.stderr)
                return 2
            profiler = Profiler(interval=0.0002)
            profiler.start()
            for _ in range(calls):
                run()
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False))
            return 0
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(calls):
            run()
        profile.disable()
    print(top_table(pstats.Stats(profile), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
