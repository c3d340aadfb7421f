"""``flowgrad train``: train the reference network and write a run folder.

Defaults train ``softmax(W2 · relu(W1 · x + b1) + b2)`` on the embedded 8x8 digits with
plain SGD in a few seconds. The run folder holds ``model.npz``, ``config.json``,
``metrics.csv`` and ``curves.png``.
"""

from __future__ import annotations

import argparse

from flowgrad.cli import CLIError


def configure(parser: argparse.ArgumentParser) -> None:
    from flowgrad.training import DATASETS, DEFAULT_LR, OPTIMIZERS, TrainConfig

    d = TrainConfig()
    lrs = ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
    parser.add_argument("--dataset", choices=DATASETS, default=d.dataset,
                        help="digits is embedded; mnist/fashion-mnist read IDX files "
                        "(default: %(default)s)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="folder of the IDX files (default: ~/.cache/flowgrad or "
                        "$FLOWGRAD_CACHE)")
    parser.add_argument("--download", action="store_true",
                        help="fetch missing MNIST files (verified by SHA-256)")
    parser.add_argument("--hidden", type=int, default=d.hidden, metavar="N",
                        help="hidden units (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=d.epochs, metavar="N",
                        help="passes over the training set (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, metavar="N",
                        help="samples per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"learning rate (default per optimizer: {lrs})")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                        help="momentum and nesterov are SGD with momentum 0.9 "
                        "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed,
                        help="same seed, same run (default: %(default)s)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="run folder (default: runs/<dataset>-<time>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--quiet", action="store_true", help="print only the final summary")


def run(args: argparse.Namespace) -> int:
    from flowgrad.training import DataUnavailable, TrainConfig, train

    try:
        config = TrainConfig(dataset=args.dataset, data_dir=args.data_dir,
                             download=args.download, hidden=args.hidden, epochs=args.epochs,
                             batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                             seed=args.seed, out=args.out)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    log = (lambda line: None) if args.quiet else print
    progress = False if (args.no_progress or args.quiet) else None
    try:
        result = train(config, progress=progress, log=log)
    except (DataUnavailable, FloatingPointError) as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        raise CLIError(f"cannot write the run folder: {exc}") from None
    total = sum(m["seconds"] for m in result.metrics)
    print(f"test accuracy {100 * result.test_accuracy:.2f}% after {config.epochs} epochs "
          f"({total:.1f}s); run folder: {result.run_dir}")
    return 0
