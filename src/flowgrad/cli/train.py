"""``flowgrad train``: train the reference network and write a run folder.

Defaults train ``softmax(W2 relu(W1 x + b1) + b2)`` (64-128-10) on the embedded 8x8 digits
with plain SGD (lr 0.5, cosine decay, batch 32, 30 epochs) in a couple of seconds. The run
folder gets ``model.npz``, ``config.json``, ``metrics.csv`` and ``curves.png``.
"""

from __future__ import annotations

import argparse
import shlex
import time

from flowgrad.cli import CLIError


def configure(parser: argparse.ArgumentParser) -> None:
    from flowgrad.training import config

    d = config.TrainConfig()
    lrs = ", ".join(f"{k} {v:g}/{config.DEFAULT_LR_28X28[k]:g}"
                    for k, v in config.DEFAULT_LR.items())
    parser.add_argument("--dataset", choices=config.DATASETS, default=d.dataset,
                        help="digits: embedded 8x8 digits, fixed held-out split; mnist, "
                        "fashion-mnist: the standard IDX files (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="folder of the IDX files, also torchvision's DIR/MNIST/raw "
                        "layout (default: $FLOWGRAD_CACHE or ~/.cache/flowgrad)")
    parser.add_argument("--download", action="store_true",
                        help="fetch missing MNIST/Fashion-MNIST files into --data-dir, "
                        "verified by SHA-256")
    parser.add_argument("--hidden", type=int, default=d.hidden, metavar="N",
                        help="hidden units (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=d.epochs, metavar="N",
                        help="passes over the training set (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, metavar="N",
                        help="samples per gradient step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate; the default depends on --optimizer and is "
                        f"tuned for digits/for mnist and fashion-mnist: {lrs}")
    parser.add_argument("--optimizer", choices=config.OPTIMIZERS, default=d.optimizer,
                        help="sgd is plain SGD; momentum and nesterov are SGD with "
                        "(Nesterov) momentum 0.9; the rest as in torch.optim "
                        "(default: %(default)s)")
    parser.add_argument("--schedule", choices=config.SCHEDULES, default=d.schedule,
                        help="learning rate over the epochs: cosine decays it to 0 "
                        "(CosineAnnealingLR), constant keeps it (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed,
                        help="initial weights and shuffling; same seed, same metrics "
                        "(default: %(default)s)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="run folder, created if needed; files in it are replaced "
                        "(default: runs/<dataset>-<YYYYmmdd-HHMMSS>)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (it only shows when stderr is a terminal)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar and no line per epoch; only the summary")


def run(args: argparse.Namespace) -> int:
    from flowgrad.training import DataUnavailable, TrainConfig, train

    started = time.perf_counter()
    try:
        config = TrainConfig(dataset=args.dataset, data_dir=args.data_dir,
                             download=args.download, hidden=args.hidden, epochs=args.epochs,
                             batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                             schedule=args.schedule, seed=args.seed, out=args.out)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    try:
        result = train(config, progress=not (args.no_progress or args.quiet),
                       log=None if args.quiet else print)
    except (DataUnavailable, FloatingPointError, ImportError) as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        raise CLIError(f"cannot write the run folder: {exc}") from None
    last = result.metrics[-1]
    correct = round(last.test_accuracy * result.test_samples)
    print(f"test accuracy {100 * last.test_accuracy:.2f}% ({correct}/{result.test_samples}) "
          f"after {len(result.metrics)} epochs; {time.perf_counter() - started:.1f} s")
    names = " ".join(path.name for path in result.files.values())
    print(f"run folder: {result.run_dir}  ({names})")
    quoted = shlex.quote(str(result.run_dir))
    print(f"next: flowgrad evaluate {quoted}   |   flowgrad predict {quoted} IMAGE.png")
    return 0
