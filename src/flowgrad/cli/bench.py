"""``flowgrad bench``: the benchmarks against PyTorch and a hand-written NumPy floor."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="same sizes, fewer repeats (about a minute)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks that everything runs"
    )
    parser.add_argument(
        "--cases",
        metavar="NAME,...",
        help="comma-separated cases (default all): mlp_train, op_overhead, deep_chain, "
        "hessian, train_digits, import_time",
    )
    parser.add_argument(
        "--markdown", metavar="FILE", help="write the tables into FILE (e.g. benchmarks/RESULTS.md)"
    )
    parser.add_argument("--json", metavar="FILE", help="write every number as JSON to FILE")
    parser.add_argument(
        "--threads", type=int, default=2, help="threads for NumPy and PyTorch alike (default 2)"
    )
    parser.add_argument(
        "--no-torch", action="store_true", help="leave PyTorch out even if it is installed"
    )


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from flowgrad._atomic import write_text
    from flowgrad.bench import CASE_NAMES, _stderr_log, run_benchmarks
    from flowgrad.bench.report import (
        render_case_text,
        render_targets_text,
        update_markdown,
    )
    from flowgrad.cli import CLIError

    if args.quick and args.smoke:
        raise CLIError("choose one of --quick and --smoke")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()] if args.cases else None
    unknown = [c for c in cases or () if c not in CASE_NAMES]
    if unknown:
        raise CLIError(f"unknown case {', '.join(unknown)}; choose from {', '.join(CASE_NAMES)}")
    if args.threads < 1:
        raise CLIError(f"--threads must be at least 1, got {args.threads}")
    for option in ("markdown", "json"):
        value = getattr(args, option)
        if value and not Path(value).resolve().parent.is_dir():
            raise CLIError(f"--{option}: folder {Path(value).parent} does not exist")
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    flags = [
        flag
        for flag, on in (
            ("--quick", args.quick),
            ("--smoke", args.smoke),
            (f"--cases {args.cases}", bool(args.cases)),
            (f"--threads {args.threads}", args.threads != 2),
            ("--no-torch", args.no_torch),
        )
        if on
    ]
    command = " ".join([getattr(args, "bench_command", "flowgrad bench"), *flags])

    def start(lines: list[str]) -> None:
        print("flowgrad benchmarks", *("  " + line for line in lines), "", sep="\n", flush=True)

    def show(case) -> None:
        print(render_case_text(case) + "\n", flush=True)

    report = run_benchmarks(
        cases,
        profile=profile,
        threads=args.threads,
        use_torch=not args.no_torch,
        command=command,
        log=_stderr_log,
        on_start=start,
        on_case=show,
    )
    targets = render_targets_text(report)
    if targets:
        print(targets, flush=True)
    print(report.facts_lines[-1], flush=True)  # the load average at the end
    if args.markdown:
        update_markdown(Path(args.markdown), report)
        print(f"wrote {args.markdown}", file=sys.stderr)
    if args.json:
        write_text(Path(args.json), json.dumps(report.to_json(), indent=1, default=str) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
