"""The hand-written NumPy floors: the same work as each flowgrad case, without a graph.

No NumPy-backed autodiff library can beat code that calls the same NumPy kernels directly
and skips every bit of bookkeeping, so these set the practical floor. They are written the way
a careful person writes them by hand: whole-array calls, in-place updates where they are
natural, the fused softmax-cross-entropy gradient ``(softmax(z) - onehot(y)) / N``, and no
wasted work (no gradient with respect to the input batch). They do not keep scratch buffers
between steps, which no eager library can do either.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np  # noqa: TID251 -- the floor is raw NumPy by definition

MLP_SIZES = (784, 256, 10)


def init_mlp_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """float32 parameters for 784 -> 256 -> 10, initialised as PyTorch's ``nn.Linear`` does.

    Weights and biases are uniform in ``(-1/sqrt(fan_in), 1/sqrt(fan_in))``; weights are stored
    ``(out, in)`` as in PyTorch and flowgrad.
    """
    n_in, n_hidden, n_out = MLP_SIZES
    params = {}
    for name, (fan_out, fan_in) in (("1", (n_hidden, n_in)), ("2", (n_out, n_hidden))):
        bound = 1.0 / math.sqrt(fan_in)
        params["w" + name] = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        params["b" + name] = rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)
    return params


def synthetic_mnist(
    rng: np.random.Generator, batch: int, n_batches: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """MNIST-shaped batches: float32 pixels in [0, 1) of shape (batch, 784), int64 labels 0-9."""
    xs = [rng.random((batch, MLP_SIZES[0]), dtype=np.float32) for _ in range(n_batches)]
    ys = [rng.integers(0, MLP_SIZES[2], size=batch, dtype=np.int64) for _ in range(n_batches)]
    return xs, ys


def make_mlp_trainer(
    params: dict[str, np.ndarray], lr: float
) -> Callable[[np.ndarray, np.ndarray], np.floating]:
    """One SGD step of 784 -> Linear 256 -> ReLU -> Linear 10 -> mean cross-entropy, by hand.

    Args:
        params: initial ``w1, b1, w2, b2`` (copied).
        lr: the SGD learning rate.

    Returns:
        ``step(x, y) -> loss``: updates the weights in place and returns the batch's mean loss
        (computed before the update, as every training loop reports it).
    """
    w1, b1, w2, b2 = (params[k].copy() for k in ("w1", "b1", "w2", "b2"))

    def step(x: np.ndarray, y: np.ndarray) -> np.floating:
        n = x.shape[0]
        rows = np.arange(n)
        # Forward. BLAS reads the (out, in) weights transposed without a copy.
        h = x @ w1.T
        h += b1
        np.maximum(h, 0, out=h)
        z = h @ w2.T
        z += b2
        # Fused, stable softmax cross-entropy: loss from log-sum-exp, gradient softmax - onehot.
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = (np.log(s[:, 0]) - z[rows, y]).mean()
        e /= s
        e[rows, y] -= 1
        e *= 1.0 / n
        # Backward: layer 2, then through the ReLU into layer 1; nothing toward x.
        gw2 = e.T @ h
        gb2 = e.sum(axis=0)
        dh = e @ w2
        dh *= h > 0
        gw1 = dh.T @ x
        gb1 = dh.sum(axis=0)
        # SGD, in place.
        for p, g in ((w1, gw1), (b1, gb1), (w2, gw2), (b2, gb2)):
            g *= lr
            p -= g
        return loss

    step.params = (w1, b1, w2, b2)  # type: ignore[attr-defined]  # for cross-checks
    return step


def op_expression(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``((x*y)+x).sum()`` and its gradients by hand: the same arithmetic, no graph.

    Returns:
        ``(s, ds/dx, ds/dy)`` with ``ds/dx = y + 1`` and ``ds/dy = x``, computed the way a
        reverse sweep would (seed of ones from the sum, then through add and mul).
    """
    s = (x * y + x).sum()
    g = np.ones_like(x)
    gx = g * y + g
    gy = g * x
    return s, gx, gy


def op_expression_forward(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The forward half of :func:`op_expression`."""
    return (x * y + x).sum()


def chain(x: np.ndarray, length: int, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """``length`` chained multiplications by ``factor``, then the reverse sweep by hand.

    Returns:
        ``(y.sum(), d y.sum() / dx)``.
    """
    y = x
    for _ in range(length):
        y = y * factor
    g = np.ones_like(y)
    for _ in range(length):
        g = g * factor
    return y.sum(), g
