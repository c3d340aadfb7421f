"""``flowgrad train``: train the reference network (or ``--model cnn``) and write a run folder.

Defaults train ``softmax(W2 relu(W1 x + b1) + b2)`` (64-128-10) on the embedded 8x8 digits
with plain SGD (lr 0.5, cosine decay, batch 32, 30 epochs) in a couple of seconds;
``--model cnn`` trains two conv-ReLU-pool blocks and a linear head instead (SGD lr 0.3). The
run folder gets ``model.npz``, ``config.json``, ``metrics.csv`` and ``curves.png``.
``--profile`` prints where the first epoch's time went, per op (docs/debugging.md).

Data-parallel: under ``mpiexec -n N`` (or with ``--nproc N``, which starts ``mpiexec``) every
process trains a replica on its share of each batch and the gradients are averaged, so the
run equals a one-process run with the same ``--batch-size``; only rank 0 prints and writes
the run folder. See docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from flowgrad.cli import CLIError


def configure(parser: argparse.ArgumentParser) -> None:
    from flowgrad.training import config

    d = config.TrainConfig()
    lrs = ", ".join(f"{k} {v:g}/{config.DEFAULT_LR_28X28[k]:g}"
                    for k, v in config.DEFAULT_LR.items())
    cnn_lrs = ", ".join(f"{k} {v:g}/{config.DEFAULT_LR_CNN_28X28[k]:g}"
                        for k, v in config.DEFAULT_LR_CNN.items())
    parser.add_argument("--dataset", choices=config.DATASETS, default=d.dataset,
                        help="digits: embedded 8x8 digits, fixed held-out split; mnist, "
                        "fashion-mnist: the standard IDX files (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="folder of the IDX files, also torchvision's DIR/MNIST/raw "
                        "layout (default: $FLOWGRAD_CACHE or ~/.cache/flowgrad)")
    parser.add_argument("--download", action="store_true",
                        help="fetch missing MNIST/Fashion-MNIST files into --data-dir, "
                        "verified by SHA-256")
    parser.add_argument("--model", choices=config.MODELS, default=d.model,
                        help="mlp: the reference network Linear-ReLU-Linear; cnn: two "
                        "conv3x3-ReLU-maxpool blocks (16 and 32 channels) and a linear head "
                        "(default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=d.hidden, metavar="N",
                        help="hidden units of the mlp (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=d.epochs, metavar="N",
                        help="passes over the training set (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, metavar="N",
                        help="samples per gradient step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate; the default depends on --optimizer and is "
                        f"tuned for digits/for mnist and fashion-mnist: {lrs}; with --model "
                        f"cnn: {cnn_lrs}")
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
                        help="run folder, created if needed (with its parents); one that "
                        "already holds a run is refused unless --overwrite "
                        "(default: runs/<dataset>-<YYYYmmdd-HHMMSS>, always new)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run in --out: its run files are deleted first, so "
                        "two runs never mix")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (it only shows when stderr is a terminal)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar and no line per epoch; only the summary")
    parser.add_argument("--profile", action="store_true",
                        help="profile the first epoch (training steps and test evaluation) "
                        "and print, per op, calls, forward and backward time and bytes "
                        "produced, as fg.profiler.profile().table() does")
    parser.add_argument("--device", default=d.device, metavar="DEVICE",
                        help="where to train: cpu (default), cuda, cuda:N, or auto (cuda when "
                        'a GPU is available); cuda needs CuPy: pip install "flowgrad[cuda12]"')
    parser.add_argument("--nproc", type=int, default=None, metavar="N",
                        help="train data-parallel on N processes of this machine by starting "
                        "`mpiexec -n N flowgrad train ...` (needs flowgrad[distributed]); "
                        "each process gets cores/N BLAS threads")


def run(args: argparse.Namespace) -> int:
    from flowgrad import distributed as dist
    from flowgrad.training import DataUnavailable, TrainConfig, resolve_device, train
    from flowgrad.training.parallel import PeerFailed, agreed

    started = time.perf_counter()
    if args.nproc is not None and args.nproc < 1:
        raise CLIError(f"--nproc must be at least 1, got {args.nproc}")
    under_mpi = dist.launched_by_mpi()
    if args.nproc is not None and args.nproc > 1 and not under_mpi:
        return _launch(args)
    # Under mpiexec every process runs this; errors found before the processes talk to each
    # other happen on all of them alike, so only rank 0 reports them.
    quiet_rank = under_mpi and dist.launcher_rank() != 0
    try:
        config = TrainConfig(dataset=args.dataset, data_dir=args.data_dir,
                             download=args.download, model=args.model, hidden=args.hidden,
                             epochs=args.epochs,
                             batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                             schedule=args.schedule, seed=args.seed, out=args.out,
                             overwrite=args.overwrite, device=args.device)
        device = resolve_device(config.device)  # a missing GPU is said before any work
        if device.type != "cpu" and (under_mpi or (args.nproc or 1) > 1):
            raise ValueError(f"--device {args.device}: data-parallel training (--nproc, "
                             "mpiexec) runs on the cpu")
    except (ValueError, RuntimeError) as exc:
        if quiet_rank:
            return 2
        raise CLIError(str(exc)) from None
    if under_mpi:
        try:
            dist.init_process_group()
        except RuntimeError as exc:
            if quiet_rank:
                return 2
            raise CLIError(str(exc)) from None
        dist.limit_blas_threads()
    rank = dist.get_rank() if under_mpi else 0
    try:
        result = train(config, progress=not (args.no_progress or args.quiet) and rank == 0,
                       log=None if args.quiet or rank != 0 else print, profile=args.profile)
    except PeerFailed:
        return 2  # the process that failed has said why
    except (DataUnavailable, FloatingPointError, ImportError, OSError, MemoryError) as exc:
        message = str(exc)
        if isinstance(exc, FileExistsError):
            message = str(exc).replace("(--overwrite)", "with --overwrite")
        elif isinstance(exc, MemoryError):
            message = (f"out of memory building or training the network (--hidden "
                       f"{args.hidden}, --batch-size {args.batch_size}); try smaller sizes")
        elif isinstance(exc, OSError) and not isinstance(exc, DataUnavailable):
            message = f"cannot write the run folder: {exc}"
        if under_mpi and dist.get_world_size() > 1 and not agreed(exc):
            # The other processes may be waiting for this one in a collective: end them all.
            print(f"flowgrad train: error: [rank {rank}] {message}", file=sys.stderr)
            dist.abort(2)
        raise CLIError(message) from None
    if rank != 0:
        return 0
    if result.profile is not None:
        print(f"profile of epoch 1 (per op, sorted by total time):\n"
              f"{result.profile.table(sort_by='total')}")
    last = result.metrics[-1]
    correct = round(last.test_accuracy * result.test_samples)
    print(f"test accuracy {100 * last.test_accuracy:.2f}% ({correct}/{result.test_samples}) "
          f"after {len(result.metrics)} epochs; {time.perf_counter() - started:.1f} s")
    names = " ".join(path.name for path in result.files.values())
    print(f"run folder: {result.run_dir}  ({names})")
    quoted = shlex.quote(str(result.run_dir))
    print(f"next: flowgrad evaluate {quoted}   |   flowgrad predict {quoted} IMAGE.png")
    return 0


def _launch(args: argparse.Namespace) -> int:
    """``flowgrad train --nproc N ...``: run the same command as N MPI processes."""
    import flowgrad
    from flowgrad import distributed as dist

    argv = _without_nproc(getattr(args, "_argv", None) or sys.argv[1:])
    try:
        cmd, env = dist.mpiexec_command(args.nproc, [sys.executable, "-m", "flowgrad", *argv])
    except RuntimeError as exc:
        raise CLIError(str(exc)) from None
    # The processes import this same flowgrad, installed or not.
    package_root = str(Path(flowgrad.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    print(f"starting {args.nproc} processes: {shlex.join(cmd[:3])} flowgrad "
          f"{shlex.join(argv)}", file=sys.stderr, flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except OSError as exc:
        raise CLIError(f"cannot start {cmd[0]}: {exc}") from None


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--nproc":
            skip = True
        elif not word.startswith("--nproc="):
            out.append(word)
    return out
