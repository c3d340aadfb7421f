"""The ``flowgrad`` command line: ``main(argv) -> int``, one thin module per subcommand.

Each subcommand module defines ``configure(parser)`` (adds its arguments) and
``run(args) -> int``. Modules import their heavy dependencies inside ``run`` so that
``flowgrad --help`` stays fast. A subcommand reports a user error by raising
:class:`CLIError`; ``main`` prints it as one line and returns exit code 2. A module that sets
``PASS_THROUGH = True`` receives the arguments it does not define, unparsed, as
``args.passed`` (``flowgrad bench`` hands them to ``python -m benchmarks``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, str] = {
    "train": "train the reference network (defaults: embedded 8x8 digits, plain SGD)",
    "evaluate": "accuracy and confusion matrix of a trained run folder",
    "predict": "classify image files of handwritten digits with a trained run",
    "graph": "draw the reference network's dataflow graph after one training step",
    "explain": "spell out the chain rule for a formula, e.g. 'sigmoid(w*x + b)' w=0.5 x=2 b=-1",
    "descent": "draw gradient-descent paths for learning rates and optimizers",
    "derivatives": "plot f, f' and f'' of activation functions computed by autodiff",
    "explore": "the graph, the chain rule, descent and training live in the browser",
    "bench": "run the benchmarks (from a source checkout: python -m benchmarks)",
}


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowgrad",
        description="flowgrad: gradients you can see. Reverse-mode autodiff on NumPy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"flowgrad.cli.{name}")
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``flowgrad`` command line and return its exit code."""
    parser = build_parser()
    try:
        args, passed = parser.parse_known_args(argv)
        if passed and not getattr(args._module, "PASS_THROUGH", False):
            parser.error(f"unrecognized arguments: {' '.join(passed)}")  # as parse_args does
        args.passed = passed
        # The words as typed, for subcommands that start themselves again (train --nproc).
        args._argv = list(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0)
    try:
        return int(args._module.run(args) or 0)
    except CLIError as exc:
        print(f"flowgrad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
