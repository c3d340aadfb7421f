"""The ``flowgrad`` command line: ``main(argv) -> int``, one thin module per subcommand.

Each subcommand module defines ``configure(parser)`` (adds its arguments) and
``run(args) -> int``. Modules import their heavy dependencies inside ``run`` so that
``flowgrad --help`` stays fast. A subcommand reports a user error by raising
:class:`CLIError`; ``main`` prints it as one line and returns exit code 2. A module that sets
``PASS_THROUGH = True`` receives the arguments it does not define, unparsed, as
``args.passed`` (``flowgrad bench`` hands them to ``python -m benchmarks``); one that sets
``INTERMIXED = "NAME"`` gets the positional words that follow its options appended to the
list ``args.NAME`` (``flowgrad explain EXPR --json x=1``).
"""

from __future__ import annotations

import argparse
import importlib
import os
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


def check_output(path: str, option: str, suffixes: tuple[str, ...] = (),
                 shown: str = "") -> str:
    """``path`` if a file of one of ``suffixes`` can be written there, before any work.

    Refuses an empty name, another suffix, a folder or other non-regular file, a missing
    or unwritable folder (folders are never created for an output file).
    """
    from flowgrad._atomic import check_writable

    if not path.strip():
        raise CLIError(f"{option}: the file name is empty")
    if suffixes and not path.lower().endswith(suffixes):
        shown = shown or " or ".join(filter(None, [", ".join(suffixes[:-1]), suffixes[-1]]))
        raise CLIError(f"{option} must end in {shown}, got {path!r}")
    try:
        check_writable(path)
    except OSError as exc:
        raise CLIError(f"{option}: {exc}") from None
    return path


def check_seed(seed: int, option: str = "--seed") -> int:
    """``seed`` if it is a valid random seed (0 to 2**64 - 1), else CLIError."""
    if not 0 <= seed <= 2**64 - 1:
        raise CLIError(f"{option} must be between 0 and 2**64 - 1, got {seed}")
    return seed


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
    """Run the ``flowgrad`` command line and return its exit code.

    Whatever happens, the user sees lines meant for them, never a traceback: a bad value is
    ``flowgrad CMD: error: ...`` and exit code 2; Ctrl-C at any moment is ``flowgrad CMD:
    interrupted`` and 130; output into a closed pipe (``flowgrad ... | head``) ends quietly
    with 141, as a program stopped by SIGPIPE; running out of memory is one error line, 2;
    anything unforeseen is one ``internal error`` line and exit code 1 (the traceback is
    shown with ``FLOWGRAD_DEBUG=1``).
    """
    prog = "flowgrad"
    try:
        parser = build_parser()
        try:
            args, passed = parser.parse_known_args(argv)
            positional = getattr(args._module, "INTERMIXED", None)
            if passed and positional:
                # Values after options (explain EXPR --json x=1): argparse stops collecting
                # the positional list at the first option and leaves the rest here.
                words = [w for w in passed if not w.startswith("-") or w[1:2].isdigit()]
                getattr(args, positional).extend(words)
                passed = [w for w in passed if w not in words]
            if passed and not getattr(args._module, "PASS_THROUGH", False):
                parser.error(f"unrecognized arguments: {' '.join(passed)}")  # as parse_args
            args.passed = passed
            # The words as typed, for subcommands that start themselves again (--nproc).
            args._argv = list(sys.argv[1:] if argv is None else argv)
        except SystemExit as exc:  # argparse already printed its one-line usage error
            return int(exc.code or 0)
        prog = f"flowgrad {args.command}"
        code = int(args._module.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except CLIError as exc:
        _say(f"{prog}: error: {exc}")
        return 2
    except KeyboardInterrupt:
        _say(f"{prog}: interrupted")
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except MemoryError as exc:
        _say(f"{prog}: error: out of memory{f' ({exc})' if str(exc) else ''}; try smaller "
             "sizes")
        return 2
    except Exception as exc:
        if os.environ.get("FLOWGRAD_DEBUG"):
            raise
        _say(f"{prog}: internal error: {type(exc).__name__}: {exc} (please report it; "
             "FLOWGRAD_DEBUG=1 shows the traceback)")
        return 1


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (BrokenPipeError, OSError):
        pass


def _quiet_stdout() -> None:
    """After EPIPE: point stdout at /dev/null, so Python's flush at exit raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
