"""flowgrad's benchmarks: flowgrad against PyTorch eager and a hand-written NumPy floor.

Run them with ``flowgrad bench`` or, from a source checkout, ``python -m benchmarks``
(same options). PyTorch is optional; without it its columns say "not installed".

    >>> from flowgrad.bench import run_benchmarks
    >>> report = run_benchmarks(["op_overhead"], profile="smoke")  # doctest: +SKIP
    >>> print(render_text(report))                                 # doctest: +SKIP

Cases live in :mod:`flowgrad.bench.cases`, the floors in :mod:`flowgrad.bench.floor`, the
PyTorch side in :mod:`flowgrad.bench.torch_impl`, the flowgrad side in
:mod:`flowgrad.bench.fg_impl`. See ``docs/benchmarks.md`` for the method.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from flowgrad.bench.report import CaseResult, Report, render_text, update_markdown

__all__ = ["CASE_NAMES", "run_benchmarks", "render_text", "update_markdown", "Report"]

CASE_NAMES = ("mlp_train", "op_overhead", "deep_chain", "hessian", "train_digits", "import_time")


def run_benchmarks(
    cases: Sequence[str] | None = None,
    *,
    profile: str = "full",
    threads: int = 2,
    use_torch: bool = True,
    command: str = "python -m benchmarks",
    log: Callable[[str], None] | None = None,
    on_start: Callable[[list[str]], None] | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
) -> Report:
    """Run the named cases (all by default) and return the report.

    Args:
        cases: case names from :data:`CASE_NAMES`, run in the order given.
        profile: ``"full"`` (the published numbers), ``"quick"`` (same sizes, fewer repeats)
            or ``"smoke"`` (tiny sizes: checks the harness, the numbers mean nothing).
        threads: thread count for NumPy's BLAS/OpenMP and PyTorch alike.
        use_torch: False skips PyTorch even when it is installed.
        command: the command line recorded in the report.
        log: receives one-line progress messages.
        on_start: called with the machine-fact lines before the first case.
        on_case: called with each case's result as soon as it is done.

    Returns:
        The :class:`~flowgrad.bench.report.Report`.

    Raises:
        ValueError: an unknown case or profile name, or ``threads`` < 1.
    """
    from flowgrad.bench.cases import CASES, PROFILES, Context
    from flowgrad.bench.machine import (
        format_facts,
        limit_threads,
        load_average,
        machine_facts,
        torch_module,
    )
    from flowgrad.bench.timing import describe_error

    names = list(cases) if cases else list(CASE_NAMES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    settings = PROFILES[profile]
    torch = torch_module() if use_torch else None
    results: list[CaseResult] = []
    with limit_threads(threads, torch):
        facts = machine_facts(torch, threads)
        facts_lines = format_facts(facts)
        if on_start is not None:
            on_start(facts_lines)
        ctx = Context(settings, torch, threads, log or (lambda msg: None))
        for name in names:
            start = time.perf_counter()
            try:
                result = CASES[name](ctx)
            except Exception as exc:  # one broken case must not hide the others' numbers
                result = CaseResult(
                    name, "failed before producing results", error=describe_error(exc)
                )
            result.seconds = time.perf_counter() - start
            results.append(result)
            if on_case is not None:
                on_case(result)
    end_load = load_average()
    if end_load is not None:
        facts["load_average_end"] = end_load
        facts_lines.append(
            f"load average at end (1, 5, 15 min): {end_load[0]}, {end_load[1]}, {end_load[2]}"
        )
    settings_dict: dict[str, Any] = {"profile": profile, "threads": threads, "use_torch": use_torch}
    return Report(facts, facts_lines, settings_dict, command, results)


def _stderr_log(msg: str) -> None:
    print(f"  ... {msg}", file=sys.stderr, flush=True)
