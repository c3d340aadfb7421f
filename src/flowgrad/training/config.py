"""What defines a training run: :class:`TrainConfig`, the datasets, optimizers and
schedules it accepts, and the default learning rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from flowgrad._backend import as_device, device
from flowgrad.optim import catalogue

__all__ = [
    "CNN_CHANNELS",
    "DATASETS",
    "DEFAULT_LR",
    "DEFAULT_LR_28X28",
    "DEFAULT_LR_CNN",
    "DEFAULT_LR_CNN_28X28",
    "MODELS",
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainConfig",
    "default_lr",
    "resolve_device",
]


DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")
#: ``mlp``: the reference network Linear-ReLU-Linear; ``cnn``: two conv-ReLU-max-pool
#: blocks and a linear head (:func:`flowgrad.training.model.build_cnn`).
MODELS: tuple[str, ...] = ("mlp", "cnn")
#: The CNN's channels: Conv(1 -> 16, 3x3) and Conv(16 -> 32, 3x3), each padded to keep the
#: image size and followed by ReLU and 2x2 max pooling.
CNN_CHANNELS: tuple[int, int] = (16, 32)
#: The optimizer names (:data:`flowgrad.optim.catalogue.OPTIMIZERS`).
OPTIMIZERS: tuple[str, ...] = tuple(catalogue.OPTIMIZERS)
SCHEDULES: tuple[str, ...] = ("constant", "cosine")

#: The learning rate each optimizer gets on the digits when none is given. Tuned on the
#: defaults (hidden 128, batch 32, 30 epochs, cosine decay) over ten seeds; momentum's 0.05
#: is sgd's 0.5 over the momentum sum's gain 1 / (1 - 0.9).
DEFAULT_LR: dict[str, float] = {
    "sgd": 0.5,
    "momentum": 0.05,
    "nesterov": 0.05,
    "adagrad": 0.05,
    "rmsprop": 0.003,
    "adam": 0.003,
    "adamw": 0.003,
}

#: The same for MNIST and Fashion-MNIST. Their 784 inputs carry about 8x the squared norm
#: of the digits' 64, which scales the first layer's steps, so the rates are the usual
#: MNIST ones, 3-5x smaller (0.5 diverges for small hidden layers).
DEFAULT_LR_28X28: dict[str, float] = {
    "sgd": 0.1,
    "momentum": 0.01,
    "nesterov": 0.01,
    "adagrad": 0.02,
    "rmsprop": 0.001,
    "adam": 0.001,
    "adamw": 0.001,
}


#: The same for the CNN, on the digits over seeds 0-7 (each mean final test accuracy):
#: sgd 0.3 (99.16%), momentum/nesterov 0.03 (99.16/99.23%), adagrad 0.1 (98.40%; 0.05 gave
#: 98.12%), rmsprop 0.002 (98.75%; 0.004 gave 98.71%), adam/adamw 0.004 (98.89/98.85%;
#: 0.002 gave 98.64/98.61%, 0.001 97.88%).
DEFAULT_LR_CNN: dict[str, float] = {
    "sgd": 0.3,
    "momentum": 0.03,
    "nesterov": 0.03,
    "adagrad": 0.1,
    "rmsprop": 0.002,
    "adam": 0.004,
    "adamw": 0.004,
}

DEFAULT_LR_CNN_28X28: dict[str, float] = {
    "sgd": 0.1,
    "momentum": 0.01,
    "nesterov": 0.01,
    "adagrad": 0.02,
    "rmsprop": 0.001,
    "adam": 0.001,
    "adamw": 0.001,
}


def default_lr(optimizer: str, dataset: str = "digits", model: str = "mlp") -> float:
    """The learning rate ``flowgrad train`` uses for ``optimizer`` on ``dataset`` with
    ``model``."""
    if model == "cnn":
        return (DEFAULT_LR_CNN if dataset == "digits" else DEFAULT_LR_CNN_28X28)[optimizer]
    return (DEFAULT_LR if dataset == "digits" else DEFAULT_LR_28X28)[optimizer]


#: Suffixes that name a file, never a run folder (``--out model.npz`` is a mistake).
FILE_SUFFIXES = (".npz", ".npy", ".png", ".svg", ".pdf", ".json", ".csv", ".txt", ".gif",
                 ".jpg", ".jpeg", ".dot", ".gv", ".pt", ".pth", ".pkl", ".zip", ".gz")


@dataclass
class TrainConfig:
    """Everything that defines a training run (the options of ``flowgrad train``).

    Attributes:
        dataset: ``"digits"`` (embedded 8x8 digits, fixed held-out split), ``"mnist"`` or
            ``"fashion-mnist"`` (28x28, their standard train/test files).
        data_dir: where MNIST-style files are looked for and downloaded to; ``None`` means
            the cache folder (``$FLOWGRAD_CACHE`` or ``~/.cache/flowgrad``). Unused for
            digits.
        download: fetch missing MNIST-style files (verified) into ``data_dir``.
        model: ``"mlp"``, the reference network, or ``"cnn"``, the small convolutional
            network (see :data:`MODELS`).
        hidden: width of the MLP's hidden layer (unused by the CNN).
        epochs: passes over the training set.
        batch_size: samples per gradient step.
        lr: learning rate; ``None`` means ``default_lr(optimizer, dataset, model)``
            (:data:`DEFAULT_LR` for digits, :data:`DEFAULT_LR_28X28` for the others, and
            the ``DEFAULT_LR_CNN`` tables for the CNN).
        optimizer: one of :data:`OPTIMIZERS`; ``"momentum"`` is SGD with momentum 0.9 and
            ``"nesterov"`` SGD with Nesterov momentum 0.9.
        schedule: ``"cosine"`` anneals the learning rate to 0 over the epochs
            (``CosineAnnealingLR``, stepped once per epoch); ``"constant"`` keeps it.
        seed: seeds the initial weights (``fg.manual_seed``) and the shuffling.
        out: the run folder; ``None`` means ``runs/<dataset>-<YYYYmmdd-HHMMSS>``. It is
            created with any missing parent folders; one that already holds a run is
            refused unless ``overwrite``.
        overwrite: replace the run in ``out`` (its run files are removed first, so two runs
            never mix).
        device: where the model trains: ``"cpu"``, ``"cuda"`` (``"cuda:N"``), or ``"auto"``
            (``cuda`` when a GPU is available, else ``cpu``); see :func:`resolve_device`.
            The weights are the same on every device for a seed (one host generator).
    """

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    model: str = "mlp"
    hidden: int = 128
    epochs: int = 30
    batch_size: int = 32
    lr: float | None = None
    optimizer: str = "sgd"
    schedule: str = "cosine"
    seed: int = 0
    out: str | None = None
    overwrite: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        # Paths may come as Path objects; the config is written as JSON.
        self.out = None if self.out is None else str(self.out)
        self.data_dir = None if self.data_dir is None else str(self.data_dir)
        self.validate()

    def validate(self) -> TrainConfig:
        """Check every field; returns ``self``.

        Raises:
            ValueError: an unknown dataset or optimizer, a non-positive size, or a learning
                rate that is not a positive finite number; the message names the option.
        """
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of "
                             f"{', '.join(DATASETS)}")
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of "
                             f"{', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of "
                             f"{', '.join(SCHEDULES)}")
        for name in ("hidden", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.lr is not None and not (isinstance(self.lr, (int, float))
                                        and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or \
                not 0 <= self.seed <= 2**64 - 1:
            raise ValueError(f"seed must be an integer from 0 to 2**64 - 1, got {self.seed!r}")
        if not isinstance(self.device, str) or (self.device != "auto"
                                                 and not _is_device_name(self.device)):
            raise ValueError(f"device must be cpu, cuda, cuda:N or auto, got {self.device!r}")
        if self.out is not None:
            if not self.out.strip():
                raise ValueError("out: the run folder name is empty")
            suffix = Path(self.out).suffix.lower()
            if suffix in FILE_SUFFIXES:
                raise ValueError(f"out: {self.out!r} is a file name ({suffix}), but out is the "
                                 f"run folder (for example runs/{Path(self.out).stem})")
        return self

    @property
    def learning_rate(self) -> float:
        """The learning rate used: ``lr``, or :func:`default_lr` when ``lr`` is None."""
        return float(self.lr) if self.lr is not None else default_lr(self.optimizer,
                                                                      self.dataset, self.model)


def _is_device_name(name: str) -> bool:
    try:
        device(name)
    except (RuntimeError, TypeError):
        return False
    return True


def resolve_device(name: str) -> device:
    """The device a run with ``device=name`` trains on: ``"auto"`` is ``cuda`` when
    ``fg.cuda.is_available()``, else ``cpu``.

    Raises:
        RuntimeError: ``cuda`` was asked for where CuPy or a GPU is missing (the message
            says which and how to install).
    """
    from flowgrad import cuda

    if name == "auto":
        name = "cuda" if cuda.is_available() else "cpu"
    return as_device(name)
