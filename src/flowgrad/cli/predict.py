"""``flowgrad predict RUN IMAGE...``: classify image files of handwritten digits."""

from __future__ import annotations

import argparse
import json

from flowgrad.cli import CLIError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder written by flowgrad train")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files of one handwritten digit each (PNG, JPEG, ...; any "
                        "size; dark ink on light paper or light on dark)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list: image, class, name, probability, "
                        "probabilities by class")


def run(args: argparse.Namespace) -> int:
    from flowgrad.training import ImageError, RunError, load_run, predict

    try:
        trained = load_run(args.run)
        predictions = predict(trained, args.images)
    except (RunError, ImageError, ImportError) as exc:
        raise CLIError(str(exc)) from None
    if args.json:
        print(json.dumps([p.as_dict(trained.classes) for p in predictions], indent=2))
        return 0
    digits = all(name.isdigit() for name in trained.classes)
    for p in predictions:
        guess = p.name if digits else f"{p.name} (class {p.label})"
        probs = " ".join(f"{name}:{q:.2f}" for name, q in zip(trained.classes,
                                                               p.probabilities))
        print(f"{p.source}: {guess}  p={p.probabilities[p.label]:.3f}  [{probs}]")
    return 0
