"""``flowgrad bench``: starts the benchmarks, which live in flowgrad's source checkout.

The benchmark harness is the top-level ``benchmarks`` package of a checkout (run as
``python -m benchmarks``), not part of the installed library. When this flowgrad is imported
from a checkout (an editable install, or ``PYTHONPATH=src``), ``flowgrad bench OPTIONS`` runs
``python -m benchmarks OPTIONS`` there, with this interpreter, and returns its exit code.
Otherwise it prints one line saying where the benchmarks are, exit code 2.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from flowgrad.cli import CLIError, check_output

#: The options are the benchmarks' own; ``main`` passes them through unparsed.
PASS_THROUGH = True


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = "flowgrad bench [OPTIONS of python -m benchmarks]"
    parser.epilog = (
        "From a source checkout this runs `python -m benchmarks OPTIONS` (see "
        "`python -m benchmarks --help`: --quick, --smoke, --cases, --markdown, --json, "
        "--threads, --no-torch). An installed flowgrad does not include the benchmarks."
    )


def checkout_root() -> Path | None:
    """The source checkout this flowgrad is imported from, if it holds the benchmarks."""
    import flowgrad

    root = Path(flowgrad.__file__).resolve().parents[2]  # <root>/src/flowgrad/__init__.py
    return root if (root / "benchmarks" / "__main__.py").is_file() else None


#: The harness's options that name a file it writes at the end of a run of minutes.
OUTPUT_OPTIONS = ("--markdown", "--json")


def _outputs(words: list[str]) -> list[tuple[str, str]]:
    """(option, file) for each output option in the pass-through words."""
    found = []
    for i, word in enumerate(words):
        option, eq, value = word.partition("=")
        if option in OUTPUT_OPTIONS:
            if eq:
                found.append((option, value))
            elif i + 1 < len(words):
                found.append((option, words[i + 1]))
    return found


def run(args: argparse.Namespace) -> int:
    # Checked before minutes of measuring, not after (the harness checks again).
    for option, path in _outputs(args.passed):
        check_output(path, option)
    root = checkout_root()
    if root is None:
        raise CLIError("the benchmarks are not installed with flowgrad; they live in its source "
                       "checkout: run `python -m benchmarks` there (see docs/benchmarks.md)")
    # A child process: `-m` with the checkout as working folder finds its `benchmarks`, never
    # another package of that name, and the harness owns its options, help and errors.
    return subprocess.call([sys.executable, "-m", "benchmarks", *args.passed], cwd=root)
