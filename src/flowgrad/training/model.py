"""The networks ``flowgrad train`` trains (the reference MLP ``softmax(W2 relu(W1 x + b1) +
b2)`` and a small CNN), their optimizer, and their logits for a batch of inputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

import flowgrad as fg
from flowgrad.optim import catalogue
from flowgrad.training.config import CNN_CHANNELS, DEFAULT_LR

__all__ = [
    "build_cnn",
    "build_model",
    "build_reference_model",
    "describe_model",
    "make_optimizer",
    "predict_logits",
]


# Large batches for inference: one matmul per few thousand samples amortises the graph-free
# dispatch while keeping the (batch, hidden) activations small.
_EVAL_BATCH = 4096


def build_reference_model(in_features: int, hidden: int, classes: int) -> Any:
    """The reference network ``softmax(W2 relu(W1 x + b1) + b2)`` as an ``fg.nn.Sequential``.

    The softmax is not a layer: the model returns logits and ``F.cross_entropy`` applies a
    fused, numerically stable log-softmax, whose gradient is ``softmax - onehot``.
    Weights are initialised as in PyTorch (``fg.nn.Linear``), from flowgrad's global
    generator, so call ``fg.manual_seed`` first for reproducible weights.

    Args:
        in_features: inputs per sample (64 for 8x8 digits, 784 for MNIST).
        hidden: width of the hidden layer.
        classes: number of classes (outputs).

    Returns:
        ``Sequential(Linear(in_features, hidden), ReLU(), Linear(hidden, classes))``.

    Example:
        >>> import flowgrad as fg
        >>> net = build_reference_model(64, 32, 10)
        >>> net(fg.zeros(5, 64)).shape
        (5, 10)
    """
    from flowgrad import nn

    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def build_cnn(image_shape: tuple[int, int], classes: int,
              channels: tuple[int, int] = CNN_CHANNELS) -> Any:
    """The small CNN: two conv-ReLU-pool blocks and a linear head, on flattened images.

    ``Unflatten(1, (1, H, W))``, then ``Conv2d(1, c1, 3, padding=1)``, ``ReLU``,
    ``MaxPool2d(2)``, ``Conv2d(c1, c2, 3, padding=1)``, ``ReLU``, ``MaxPool2d(2)``,
    ``Flatten``, ``Linear(c2 · H/4 · W/4, classes)`` (sizes rounded down by each pool). It
    takes the same flattened ``(N, H·W)`` inputs as the MLP, so the training loop, the run
    folder and ``predict`` treat both alike. Initialised as in PyTorch from flowgrad's
    generator.

    Args:
        image_shape: ``(H, W)`` of the input images (at least 4x4).
        classes: number of outputs.
        channels: ``(c1, c2)``, the two convolutions' output channels.

    Example:
        >>> import flowgrad as fg
        >>> net = build_cnn((8, 8), 10)
        >>> net(fg.zeros(5, 64)).shape
        (5, 10)
    """
    from flowgrad import nn

    h, w = image_shape
    if h < 4 or w < 4:
        raise ValueError(f"the CNN needs images of at least 4x4 pixels, got {h}x{w}")
    c1, c2 = channels
    return nn.Sequential(
        nn.Unflatten(1, (1, h, w)),
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * (h // 4) * (w // 4), classes))


def build_model(model: str, image_shape: tuple[int, int], hidden: int, classes: int) -> Any:
    """The network named ``model`` (``"mlp"`` or ``"cnn"``) for images of ``image_shape``."""
    if model == "cnn":
        return build_cnn(image_shape, classes)
    if model == "mlp":
        return build_reference_model(image_shape[0] * image_shape[1], hidden, classes)
    raise ValueError(f"unknown model {model!r}; choose mlp or cnn")


def describe_model(model: str, image_shape: tuple[int, int], hidden: int, classes: int) -> str:
    """A short description, e.g. ``64-128-10 network`` or ``CNN 8x8 -> conv 16 -> ...``."""
    if model == "cnn":
        c1, c2 = CNN_CHANNELS
        return (f"CNN {image_shape[0]}x{image_shape[1]} -> conv3x3 {c1} -> pool -> "
                f"conv3x3 {c2} -> pool -> {classes}")
    return f"{image_shape[0] * image_shape[1]}-{hidden}-{classes} network"


def make_optimizer(name: str, params: Iterable[Any], lr: float | None = None) -> Any:
    """Build one of :data:`OPTIMIZERS` over ``params``.

    ``"sgd"`` is plain SGD, ``"momentum"`` SGD with momentum 0.9, ``"nesterov"`` SGD with
    Nesterov momentum 0.9; the others are ``fg.optim``'s Adagrad, RMSprop, Adam and AdamW
    with PyTorch's defaults apart from the learning rate.

    Args:
        name: the optimizer's name.
        params: the parameters to update.
        lr: learning rate; ``None`` means ``DEFAULT_LR[name]``.

    Raises:
        ValueError: an unknown name.
    """
    # The catalogue rejects unknown names; the rate tuned for the digits is the default.
    return catalogue.make_optimizer(name, params, DEFAULT_LR.get(name) if lr is None else lr)


def model_device(model: Any) -> fg.device:
    """The device of a model's parameters (the cpu for a model without any)."""
    for p in model.parameters():
        return p.device
    return fg.device("cpu")


def predict_logits(model: Any, x: np.ndarray, batch_size: int = _EVAL_BATCH) -> np.ndarray:
    """The model's logits for ``x`` (``(N, features)``), computed under ``fg.no_grad`` on the
    model's device.

    Runs in chunks of ``batch_size`` samples; returns a float32 ``(N, classes)`` array.
    """
    outputs = []
    device = model_device(model)
    with fg.no_grad():
        for start in range(0, len(x), batch_size):
            chunk = fg.tensor(x[start:start + batch_size], device=device)
            outputs.append(model(chunk).cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)
