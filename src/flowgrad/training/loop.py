"""The training loop behind ``flowgrad train``, and a timing of one epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import flowgrad as fg
from flowgrad import _allocator, _atomic
from flowgrad.nn.parallel import DistributedDataParallel
from flowgrad.training.config import TrainConfig, resolve_device
from flowgrad.training.datasets import load_dataset
from flowgrad.training.evaluation import _evaluate_arrays
from flowgrad.training.model import (
    build_model,
    build_reference_model,
    describe_model,
    make_optimizer,
)
from flowgrad.training.parallel import Replicas
from flowgrad.training.plots import plot_curves
from flowgrad.training.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    CURVES_FILE,
    METRICS_FILE,
    EpochMetrics,
    _config_document,
    _make_run_dir,
    _remove_unfinished,
    _write_epoch,
)

__all__ = [
    "RunResult",
    "benchmark_epoch",
    "format_epoch",
    "train",
]


@dataclass
class RunResult:
    """What :func:`train` returns.

    Attributes:
        run_dir: the run folder.
        config: the configuration, with ``lr`` filled in and ``out`` set to ``run_dir``.
        metrics: one :class:`EpochMetrics` per epoch.
        seconds: wall time of the whole call (data loading, training, writing files).
        model: the trained network (in eval mode).
        optimizer: its optimizer, with the state it ended in.
        files: the files written, by kind (``"checkpoint"``, ``"config"``, ``"metrics"``,
            ``"curves"``).
        train_samples, test_samples: the dataset's sizes.
        profile: with ``train(..., profile=True)``, the ``fg.profiler.profile`` of the
            first epoch (``profile.table()`` prints it); else None.
    """

    run_dir: Path
    config: TrainConfig
    metrics: list[EpochMetrics]
    seconds: float
    model: Any
    optimizer: Any
    files: dict[str, Path] = field(default_factory=dict)
    train_samples: int = 0
    test_samples: int = 0
    profile: Any = None

    @property
    def test_accuracy(self) -> float:
        """Test accuracy after the last epoch (a fraction in [0, 1])."""
        return self.metrics[-1].test_accuracy


def format_epoch(m: EpochMetrics, epochs: int) -> str:
    """The line ``flowgrad train`` prints after each epoch."""
    width = len(str(epochs))
    return (f"epoch {m.epoch:>{width}}/{epochs}  train loss {m.train_loss:.4f}  "
            f"train acc {100 * m.train_accuracy:6.2f}%  test acc {100 * m.test_accuracy:6.2f}%"
            f"  {m.seconds:5.2f} s")


def _progress_bar(iterable: Any, enabled: bool, desc: str) -> Any:
    if not enabled or not sys.stderr.isatty():
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety; training goes on without it
        return iterable
    return tqdm(iterable, desc=desc, total=len(iterable), unit="batch", leave=False,
                file=sys.stderr, dynamic_ncols=True)


def train(config: TrainConfig, progress: bool = True,
          log: Callable[[str], None] | None = None, plot: bool = True,
          on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
          profile: bool = False) -> RunResult:
    """Train the reference network and write a run folder.

    Args:
        config: the run's options; see :class:`TrainConfig`.
        progress: show a tqdm bar per epoch on stderr (only when stderr is a terminal).
        log: called with each line to report (a header, then one line per epoch, as
            :func:`format_epoch`); ``None`` reports nothing. ``flowgrad train`` passes
            ``print``.
        plot: write ``curves.png`` (needs matplotlib, checked before training starts).
        on_epoch: called with each epoch's :class:`EpochMetrics` once its checkpoint and
            metrics are written; returning True stops training there (the run folder and
            the result then hold the epochs so far). ``flowgrad explore`` streams and stops
            its runs with it.
        profile: record the first epoch (training steps and the test evaluation) with
            ``fg.profiler.profile()``; the result's ``profile`` holds it.

    Data-parallel: when a process group of several processes is initialized (``flowgrad
    train`` joins one when started by ``mpiexec``), each process trains a replica on its
    rows of every batch and the result equals one process's run with the same batch size;
    only rank 0 logs and writes the run folder (see :mod:`flowgrad.training.parallel`).

    The run folder never mixes two runs: one that already holds a run is refused unless
    ``config.overwrite`` (then its run files are removed first). A run that fails or is
    interrupted before its first epoch is written removes the files and folders it made;
    after that, each epoch's checkpoint and metrics are written together (Ctrl-C waits for
    both), so the folder always holds one consistent epoch.

    Returns:
        A :class:`RunResult` (on every process).

    Raises:
        ValueError: an invalid option (see :meth:`TrainConfig.validate`).
        FileExistsError: ``config.out`` holds a run and ``config.overwrite`` is False.
        DataUnavailable: (an ``OSError``) the dataset cannot be loaded (see
            :func:`load_dataset`).
        OSError: the run folder cannot be created or written.
        FloatingPointError: the loss became NaN or infinite (learning rate too large).
        ImportError: ``plot`` and matplotlib is not installed.
        RuntimeError: ``config.device`` is ``cuda`` where CuPy or a GPU is missing (the
            message says which); checked before the run folder is made.
    """
    started = time.perf_counter()
    config = dataclasses.replace(config)  # validates; the caller's copy stays untouched
    # Every step allocates the same arrays again; keep their memory mapped between steps.
    _allocator.retain_freed_memory()
    replicas = Replicas()
    if not replicas.is_main:
        log, progress = None, False

    created: list[Path] = []  # folders this run made, removed if it fails before epoch 1

    def set_up() -> tuple[Any, Path | None]:
        if plot:
            from flowgrad.viz.figures import require

            require("matplotlib", "plotting the curves")  # before the work it would draw
        device = resolve_device(config.device)  # a missing GPU is said before any work
        if replicas.active and device.type != "cpu":
            raise ValueError(f"data-parallel training runs on the cpu, not on {device}")
        splits = load_dataset(config.dataset, config.data_dir, config.download)
        return splits, (_make_run_dir(config.out, config.dataset, config.overwrite, created)
                        if replicas.is_main else None)

    metrics: list[EpochMetrics] = []
    files: dict[str, Path] = {}
    try:
        # Checked on every process before any of them waits for the others (parallel.py).
        splits, run_dir = replicas.agree(set_up)
        run_dir = Path(replicas.share(str(run_dir)))
        config = dataclasses.replace(config, lr=config.learning_rate, out=str(run_dir),
                                     device=str(resolve_device(config.device)))
        files.update(checkpoint=run_dir / CHECKPOINT_FILE, config=run_dir / CONFIG_FILE,
                     metrics=run_dir / METRICS_FILE)
        return _train(config, splits, run_dir, files, metrics, replicas, progress, log, plot,
                      on_epoch, started, profile)
    except BaseException:
        if replicas.is_main and not metrics:
            _remove_unfinished(list(files.values()), created)
        raise


def _train(config: TrainConfig, splits: Any, run_dir: Path, files: dict[str, Path],
           metrics: list[EpochMetrics], replicas: Replicas, progress: bool,
           log: Callable[[str], None] | None, plot: bool,
           on_epoch: Callable[[EpochMetrics], bool | None] | None,
           started: float, profile: bool = False) -> RunResult:
    """:func:`train` once the run folder exists: ``metrics`` fills as epochs finish."""
    from flowgrad import data
    from flowgrad.nn import functional as F

    fg.manual_seed(config.seed)
    device = resolve_device(config.device)
    model = build_model(config.model, splits.image_shape, config.hidden, len(splits.classes))
    model.to(device)  # the same initial weights on every device (one host generator)
    described = describe_model(config.model, splits.image_shape, config.hidden,
                               len(splits.classes))
    # Data-parallel: DDP averages the gradients; the plain model is what gets saved.
    net = DistributedDataParallel(model) if replicas.active else model
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr)
    # Every process draws the same global batches (same seed) and takes its rows of each.
    loader = data.DataLoader(data.TensorDataset(splits.x_train, splits.y_train),
                             batch_size=config.batch_size, shuffle=True, seed=config.seed)

    if replicas.is_main:
        document = _config_document(config, splits, model)
        if replicas.active:
            document["processes"] = replicas.size
        _atomic.write_text(files["config"], json.dumps(document, indent=2) + "\n")
    if log is not None:
        processes = f", {replicas.size} processes" if replicas.active else ""
        log(f"training {described} "
            f"on {config.dataset} ({len(splits.x_train)} train / {len(splits.x_test)} test) "
            f"with {config.optimizer} lr {config.lr:g} ({config.schedule}), "
            f"batch {config.batch_size}{processes}, "
            f"{config.epochs} epochs, seed {config.seed}")
        log(f"run folder: {run_dir}")

    scheduler = None
    if config.schedule == "cosine":
        from flowgrad.optim.lr_scheduler import CosineAnnealingLR

        scheduler = CosineAnnealingLR(optimizer, T_max=config.epochs)
    profiler = fg.profiler.profile() if profile else None
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        recording = profiler if profiler is not None and epoch == 1 else contextlib.nullcontext()
        with recording:  # only the first epoch is profiled
            model.train()
            loss_sum, correct, seen = 0.0, 0, 0
            # Overflow warnings would only precede the clear error raised below.
            with np.errstate(over="ignore", invalid="ignore"):
                for xb, yb in _progress_bar(loader, progress, f"epoch {epoch}/{config.epochs}"):
                    # One copy per batch to the model's device (none on the cpu).
                    xb, yb = xb.to(device), yb.to(device)
                    if replicas.active:
                        xb, yb, total = replicas.take_rows(xb, yb)
                        logits = net(xb)
                        # Sum x P / B: DDP's average over the P processes is then the mean
                        # over the global batch of B, whatever the (uneven) shares.
                        batch_sum = F.cross_entropy(logits, yb, reduction="sum")
                        loss = batch_sum * (replicas.size / total)
                        value = batch_sum.item()
                    else:
                        logits = model(xb)
                        loss = F.cross_entropy(logits, yb)
                        value = loss.item() * len(yb)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    if not math.isfinite(value):
                        raise FloatingPointError(
                            f"training diverged in epoch {epoch} (the loss became {value}); "
                            f"try a smaller learning rate than {config.lr:g}")
                    loss_sum += value
                    correct += _correct(logits, yb)
                    seen += len(yb)
            model.eval()
            if replicas.active:
                loss_sum, correct, seen = replicas.sum(loss_sum, correct, seen)
                test_loss, test_acc = replicas.evaluate(model, splits.x_test, splits.y_test)
            else:
                test_loss, test_acc = _evaluate_arrays(model, splits.x_test, splits.y_test)
        m = EpochMetrics(epoch, loss_sum / seen, correct / seen, test_loss, test_acc,
                         time.perf_counter() - t0)
        if replicas.is_main:
            _write_epoch(files["checkpoint"], {"model": model.state_dict(),
                                               "optimizer": optimizer.state_dict(),
                                               "epoch": epoch},
                         files["metrics"], [*metrics, m])
        metrics.append(m)
        if log is not None:
            log(format_epoch(m, config.epochs))
        if scheduler is not None:
            scheduler.step()
        if on_epoch is not None and on_epoch(m):
            break

    if plot and replicas.is_main:
        files["curves"] = plot_curves(
            metrics, run_dir / CURVES_FILE,
            title=(f"{config.dataset}: {described}, {config.optimizer} lr {config.lr:g} "
                   f"({config.schedule}), batch {config.batch_size}"))
    return RunResult(run_dir=run_dir, config=config, metrics=metrics,
                     seconds=time.perf_counter() - started, model=model,
                     optimizer=optimizer, files=files, train_samples=len(splits.x_train),
                     test_samples=len(splits.x_test), profile=profiler)


def _correct(logits: Any, yb: Any) -> int:
    """How many rows of ``logits`` pick their label: in NumPy on the cpu (fewer ops), on
    the device elsewhere (one number read back)."""
    if logits.device.type == "cpu":
        return int((logits.numpy().argmax(axis=1) == yb.numpy()).sum())
    return int((logits.argmax(dim=1) == yb).sum().item())


def benchmark_epoch(n_samples: int = 60_000, in_features: int = 784, hidden: int = 256,
                    classes: int = 10, batch_size: int = 128, optimizer: str = "sgd",
                    lr: float | None = None, seed: int = 0) -> dict[str, float]:
    """Time one training epoch of the reference network on random MNIST-sized data.

    The data are uniform [0, 1) pixels with random labels (the arithmetic, not the
    accuracy, is what is timed); the loop is exactly :func:`train`'s, DataLoader included.

    Args:
        n_samples, in_features, hidden, classes, batch_size: the problem's sizes
            (defaults: 60,000 x 784 inputs, hidden 256, 10 classes, batch 128).
        optimizer, lr: as in :class:`TrainConfig`.
        seed: seeds the data, the weights and the shuffling.

    Returns:
        ``{"samples": n, "batches": b, "seconds": s, "samples_per_second": n / s}``.
    """
    from flowgrad import data
    from flowgrad.nn import functional as F

    rng = np.random.default_rng(seed)
    x = rng.random((n_samples, in_features), dtype=np.float32)
    y = rng.integers(0, classes, n_samples, dtype=np.int64)
    fg.manual_seed(seed)
    model = build_reference_model(in_features, hidden, classes)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                             seed=seed)
    t0 = time.perf_counter()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    return {"samples": float(n_samples), "batches": float(len(loader)), "seconds": seconds,
            "samples_per_second": n_samples / seconds}
