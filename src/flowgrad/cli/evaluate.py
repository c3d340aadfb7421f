"""``flowgrad evaluate RUN``: test accuracy, per-class accuracy and a confusion-matrix picture."""

from __future__ import annotations

import argparse
import json

from flowgrad.cli import CLIError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder written by flowgrad train")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="where confusion.png goes: a folder (created if its parent "
                        "exists), or a file ending in .png (default: the run folder)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="where the MNIST-style test files are, if not where training "
                        "found them")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON (accuracy, per class, confusion "
                        "matrix, picture)")


def run(args: argparse.Namespace) -> int:
    from flowgrad.training import DataUnavailable, RunError, evaluate

    try:
        result = evaluate(args.run, out=args.out, data_dir=args.data_dir)
    except (RunError, DataUnavailable, ImportError) as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:  # --out names neither a folder nor a .png file
        raise CLIError(str(exc).replace("out:", "--out:", 1)) from None
    except OSError as exc:
        message = str(exc).replace("out:", "--out:", 1)
        raise CLIError(message if message.startswith("--out") else
                       f"cannot write the confusion matrix: {exc}") from None
    correct = int(result.confusion.trace())
    per_class = [None if a != a else round(float(a), 6) for a in result.per_class_accuracy]
    if args.json:
        print(json.dumps({
            "run": str(args.run), "samples": result.samples, "accuracy": result.accuracy,
            "loss": result.loss, "classes": list(result.classes),
            "per_class_accuracy": per_class, "confusion": result.confusion.tolist(),
            "confusion_png": str(result.confusion_path)}, indent=2))
        return 0
    print(f"test accuracy {100 * result.accuracy:.2f}% ({correct}/{result.samples}), "
          f"loss {result.loss:.4f}")
    support = result.confusion.sum(axis=1)
    cells = [(name, acc, int(result.confusion[k, k]), int(support[k]))
             for k, (name, acc) in enumerate(zip(result.classes, per_class))]
    if max(len(name) for name in result.classes) <= 2:
        print("per class: " + "  ".join(
            f"{name}: {'-' if acc is None else f'{100 * acc:.1f}%'}" for name, acc, _, _ in cells))
    else:
        width = max(len(name) for name in result.classes)
        print("per class:")
        for name, acc, hit, total in cells:
            shown = "-" if acc is None else f"{100 * acc:5.1f}%"
            print(f"  {name:<{width}}  {shown}  ({hit}/{total})")
    print(f"confusion matrix: {result.confusion_path}")
    return 0
