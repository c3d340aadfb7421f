"""``flowgrad predict RUN IMAGE...``: classify image files of handwritten digits."""

from __future__ import annotations

import argparse
import json

from flowgrad.cli import CLIError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder written by flowgrad train")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (any size; dark or light background)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from flowgrad.training import RunError, predict

    try:
        results = predict(args.run, args.images)
    except RunError as exc:
        raise CLIError(str(exc)) from None
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        probs = " ".join(f"{k}:{p:.2f}" for k, p in enumerate(r["probabilities"]))
        print(f"{r['image']}: class {r['class']} "
              f"(p={r['probabilities'][r['class']]:.3f})  [{probs}]")
    return 0
