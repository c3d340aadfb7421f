"""``flowgrad evaluate RUN``: test accuracy, per-class accuracy and a confusion matrix."""

from __future__ import annotations

import argparse

from flowgrad.cli import CLIError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder written by flowgrad train")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="confusion-matrix picture (default: RUN/confusion.png)")


def run(args: argparse.Namespace) -> int:
    from flowgrad.training import RunError, evaluate

    try:
        report = evaluate(args.run, args.out)
    except RunError as exc:
        raise CLIError(str(exc)) from None
    print(f"test accuracy {100 * report['accuracy']:.2f}%")
    print("per class: " + "  ".join(f"{k}: {100 * a:.1f}%"
                                    for k, a in enumerate(report["per_class"])))
    print(f"confusion matrix: {report['picture']}")
    return 0
