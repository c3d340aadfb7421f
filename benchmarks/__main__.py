"""Run the benchmarks: ``python -m benchmarks [--quick|--smoke] [--cases a,b] [--markdown FILE]``.

See ``python -m benchmarks --help`` and ``docs/benchmarks.md``. ``flowgrad bench`` run from
a checkout starts this same command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import benchmarks  # noqa: F401  (puts the checkout's src first on the path)

PROG = "python -m benchmarks"


class UsageError(Exception):
    """A bad option: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.harness import CASE_NAMES

    parser = argparse.ArgumentParser(
        prog=PROG, description="flowgrad against PyTorch eager and a hand-written NumPy floor"
    )
    parser.add_argument(
        "--quick", action="store_true", help="same sizes, fewer repeats (about a minute)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks that everything runs"
    )
    parser.add_argument(
        "--cases",
        metavar="NAME,...",
        help=f"comma-separated cases (default all): {', '.join(CASE_NAMES)}",
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
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda: the GPU run of the MLP step against PyTorch CUDA "
        '(needs CuPy: pip install "flowgrad[cuda12]")',
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks the parsed options ask for; prints the tables as they come."""
    from benchmarks.harness import CASE_NAMES, cases_for, run_benchmarks
    from benchmarks.report import render_case_text, render_targets_text, update_markdown
    from flowgrad._atomic import write_text

    if args.quick and args.smoke:
        raise UsageError("choose one of --quick and --smoke")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()] if args.cases else None
    unknown = [c for c in cases or () if c not in CASE_NAMES]
    if unknown:
        raise UsageError(f"unknown case {', '.join(unknown)}; choose from {', '.join(CASE_NAMES)}")
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    try:
        mine = cases_for(args.device)
    except RuntimeError as exc:
        raise UsageError(f"--device {args.device}: {exc}") from None
    elsewhere = [c for c in cases or () if c not in mine]
    if elsewhere:
        raise UsageError(f"case {', '.join(elsewhere)} does not run with --device "
                         f"{args.device}; its cases: {', '.join(mine) or 'none'}")
    for option in ("markdown", "json"):
        value = getattr(args, option)
        if value and not Path(value).resolve().parent.is_dir():
            raise UsageError(f"--{option}: folder {Path(value).parent} does not exist")
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    flags = [
        flag
        for flag, on in (
            ("--quick", args.quick),
            ("--smoke", args.smoke),
            (f"--cases {args.cases}", bool(args.cases)),
            (f"--threads {args.threads}", args.threads != 2),
            ("--no-torch", args.no_torch),
            (f"--device {args.device}", args.device != "cpu"),
        )
        if on
    ]

    def start(lines: list[str]) -> None:
        print("flowgrad benchmarks", *("  " + line for line in lines), "", sep="\n", flush=True)

    def show(case) -> None:
        print(render_case_text(case) + "\n", flush=True)

    def log(msg: str) -> None:
        print(f"  ... {msg}", file=sys.stderr, flush=True)

    report = run_benchmarks(
        cases,
        profile=profile,
        threads=args.threads,
        use_torch=not args.no_torch,
        device=args.device,
        command=" ".join([PROG, *flags]),
        log=log,
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
        write_text(args.json, json.dumps(report.to_json(), indent=1, default=str) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks``: returns the exit code (2 for a bad option, no traceback)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0)
    try:
        return run(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
