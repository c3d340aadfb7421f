"""Train, evaluate and use the reference network ``softmax(W2 relu(W1 x + b1) + b2)`` or a
small CNN.

This is the library behind ``flowgrad train``, ``flowgrad evaluate`` and ``flowgrad
predict``. The default network is :func:`build_reference_model`, a ``Linear -> ReLU ->
Linear`` stack whose softmax is folded into the cross-entropy loss (the fused, stable
``log_softmax``), so the model outputs logits and :func:`predict` applies the softmax.
``model="cnn"`` trains :func:`build_cnn` instead: two conv-ReLU-pool blocks and a linear
head, on the same flattened inputs.

A training run writes a *run folder*:

* ``model.npz``   the checkpoint, ``fg.save({"model": ..., "optimizer": ..., "epoch": n})``,
  rewritten after every epoch, so an interrupted run keeps its last finished epoch;
* ``config.json`` every option (with the learning rate actually used), the dataset's shapes
  and class names, the architecture and the versions of flowgrad, NumPy and Python;
* ``metrics.csv`` one row per epoch: train loss and accuracy (averaged over the epoch's
  batches while training), test loss and accuracy (after the epoch), seconds;
* ``curves.png``  loss and accuracy against epoch.

Reproducibility: ``fg.manual_seed(seed)`` fixes the initial weights and the DataLoader gets
the same ``seed`` for its shuffling, so the same configuration on the same machine gives the
same metrics, bit for bit (only the ``seconds`` column differs).

The package, one concern per module (every name below is importable from here):

* :mod:`.config`     :class:`TrainConfig`, the dataset/optimizer/schedule names, default rates;
* :mod:`.datasets`   :func:`load_dataset` (flattened splits), :class:`DataUnavailable`;
* :mod:`.model`      :func:`build_reference_model`, :func:`build_cnn`, :func:`make_optimizer`,
  :func:`predict_logits`;
* :mod:`.loop`       :func:`train`, :func:`benchmark_epoch`, :func:`format_epoch`;
* :mod:`.rundir`     the run folder's files, :func:`load_run`, :func:`read_metrics`;
* :mod:`.evaluation` :func:`evaluate`, :func:`confusion_matrix`, :func:`predict`;
* :mod:`.plots`      :func:`plot_curves`, :func:`plot_confusion`.

Image preprocessing lives beside the data code, in :mod:`flowgrad.data.images`
(:func:`preprocess_image` and :class:`ImageError` are re-exported here).

Example:
    >>> from flowgrad.training import TrainConfig, train
    >>> result = train(TrainConfig(epochs=5, out="runs/quick"), progress=False)  # doctest: +SKIP
    >>> round(result.test_accuracy, 2)  # doctest: +SKIP
    0.96
"""

from flowgrad.training.config import (
    CNN_CHANNELS,
    DATASETS,
    DEFAULT_LR,
    DEFAULT_LR_28X28,
    DEFAULT_LR_CNN,
    DEFAULT_LR_CNN_28X28,
    MODELS,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    default_lr,
    resolve_device,
)
from flowgrad.training.datasets import DatasetSplits, DataUnavailable, load_dataset
from flowgrad.training.evaluation import (
    Evaluation,
    Prediction,
    confusion_matrix,
    evaluate,
    predict,
)
from flowgrad.training.loop import RunResult, benchmark_epoch, format_epoch, train
from flowgrad.training.model import (
    build_cnn,
    build_model,
    build_reference_model,
    describe_model,
    make_optimizer,
    predict_logits,
)
from flowgrad.training.plots import plot_confusion, plot_curves
from flowgrad.training.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    CONFUSION_FILE,
    CURVES_FILE,
    METRIC_COLUMNS,
    METRICS_FILE,
    EpochMetrics,
    Run,
    RunError,
    load_run,
    read_metrics,
)

__all__ = [
    # config
    "CNN_CHANNELS", "DATASETS", "DEFAULT_LR", "DEFAULT_LR_28X28", "DEFAULT_LR_CNN",
    "DEFAULT_LR_CNN_28X28", "MODELS", "OPTIMIZERS", "SCHEDULES", "TrainConfig", "default_lr",
    "resolve_device",
    # datasets
    "DataUnavailable", "DatasetSplits", "load_dataset",
    # model
    "build_reference_model", "build_cnn", "build_model", "describe_model", "make_optimizer",
    "predict_logits",
    # loop
    "RunResult", "benchmark_epoch", "format_epoch", "train",
    # run folder
    "CHECKPOINT_FILE", "CONFIG_FILE", "CONFUSION_FILE", "CURVES_FILE", "METRICS_FILE",
    "METRIC_COLUMNS", "EpochMetrics", "Run", "RunError", "load_run", "read_metrics",
    # evaluation
    "Evaluation", "Prediction", "confusion_matrix", "evaluate", "predict",
    # plots
    "plot_confusion", "plot_curves",
    # images (flowgrad.data.images)
    "ImageError", "preprocess_image",
]


def __getattr__(name: str) -> object:
    # The image names load flowgrad.data (and, for files, Pillow) on first use, so that
    # importing flowgrad.training stays as light as the network and the loop need.
    if name in ("ImageError", "preprocess_image"):
        from flowgrad.data import images

        return getattr(images, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
