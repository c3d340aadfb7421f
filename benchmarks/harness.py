"""Running the benchmark cases: thread limits, machine facts, one case after another.

    >>> from benchmarks.harness import run_benchmarks
    >>> report = run_benchmarks(["op_overhead"], profile="smoke")  # doctest: +SKIP
    >>> print(render_text(report))                                 # doctest: +SKIP

Cases live in :mod:`benchmarks.cases`, the floors in :mod:`benchmarks.floor`, the
PyTorch side in :mod:`benchmarks.torch_impl`, the flowgrad side in
:mod:`benchmarks.fg_impl`. See ``docs/benchmarks.md`` for the method.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.cases import CASES, PROFILES, Context
from benchmarks.machine import (
    format_facts,
    limit_threads,
    load_average,
    machine_facts,
    torch_module,
)
from benchmarks.report import CaseResult, Report, render_text, update_markdown
from benchmarks.timing import describe_error

__all__ = ["CASE_NAMES", "run_benchmarks", "render_text", "update_markdown", "Report"]

#: The registered cases (:data:`benchmarks.cases.CASES`), in the order a full run takes.
CASE_NAMES = tuple(CASES)


def cases_for(device: str) -> list[str]:
    """The cases a run on ``device`` takes (registered with ``@case(devices=...)``).

    Raises:
        RuntimeError: ``device`` is not a device name, or names a GPU where CuPy or a GPU is
            missing (the message says which).
    """
    import flowgrad as fg

    kind = fg.device(device).type
    if kind == "cpu":
        return [n for n, fn in CASES.items() if "cpu" in getattr(fn, "devices", ("cpu",))]
    fg.zeros(1, device=device)  # the RuntimeError that says what is missing, if anything
    # The GPU cases; the test device (strict) runs them too, to check them without a GPU.
    return [n for n, fn in CASES.items() if "cuda" in getattr(fn, "devices", ("cpu",))]


def describe_device(device: str) -> str:
    """``cuda:0 (NVIDIA H200), CuPy 14.2.0``, or what the test device is."""
    import flowgrad as fg

    d = fg.device(device)
    if d.type == "cuda":
        import cupy

        return f"{device} ({fg.cuda.get_device_name(d)}), CuPy {cupy.__version__}"
    return f"{device} (array-api-strict's simulated device, on the CPU: not a timing of a GPU)"


def run_benchmarks(
    cases: Sequence[str] | None = None,
    *,
    profile: str = "full",
    threads: int = 2,
    use_torch: bool = True,
    device: str = "cpu",
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
        device: ``"cpu"`` or ``"cuda"``: a run takes the cases registered for its device
            (``@case(devices=...)``); ``cuda`` needs ``fg.cuda.is_available()``.
        command: the command line recorded in the report.
        log: receives one-line progress messages.
        on_start: called with the machine-fact lines before the first case.
        on_case: called with each case's result as soon as it is done.

    Returns:
        The :class:`~benchmarks.report.Report`.

    Raises:
        ValueError: an unknown case or profile name, a case not made for ``device``, or
            ``threads`` < 1.
        RuntimeError: ``device`` is ``cuda`` where CuPy or a GPU is missing.
    """
    mine = cases_for(device)
    names = list(cases) if cases else mine
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    elsewhere = [n for n in names if n not in mine]
    if elsewhere:
        raise ValueError(f"case(s) {', '.join(elsewhere)} do not run on {device}; the "
                         f"{device} cases: {', '.join(mine) or 'none'}")
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
        if device != "cpu":
            facts["device"] = describe_device(device)
            facts_lines.append(f"device: {facts['device']}")
        if on_start is not None:
            on_start(facts_lines)
        ctx = Context(settings, torch, threads, log or (lambda msg: None), device)
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
    settings_dict: dict[str, Any] = {"profile": profile, "threads": threads, "use_torch": use_torch,
                                     "device": device}
    return Report(facts, facts_lines, settings_dict, command, results)
