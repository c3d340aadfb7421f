"""Run every benchmark: ``python -m benchmarks [--quick] [--cases a,b] [--markdown FILE]``.

The same as ``flowgrad bench`` (one implementation, :mod:`flowgrad.cli.bench`); see
``python -m benchmarks --help``.
"""

from __future__ import annotations

import argparse
import sys

import benchmarks  # noqa: F401  (puts the checkout's src on the path when needed)


def main(argv: list[str] | None = None) -> int:
    from flowgrad.cli import CLIError, bench

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="flowgrad against PyTorch eager and a hand-written NumPy floor",
    )
    bench.configure(parser)
    parser.set_defaults(bench_command="python -m benchmarks")
    args = parser.parse_args(argv)
    try:
        return bench.run(args)
    except CLIError as exc:
        print(f"python -m benchmarks: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
