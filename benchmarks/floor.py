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


# --- conv_train: the CNN of `flowgrad train --model cnn` on 1x28x28 images -----------------

CNN_CHANNELS = (16, 32)
CNN_IMAGE = 28


def init_cnn_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """float32 parameters of Conv(1->16, 3x3) - Conv(16->32, 3x3) - Linear(32*7*7 -> 10),
    uniform in (-1/sqrt(fan_in), 1/sqrt(fan_in)) as PyTorch initialises them."""
    c1, c2 = CNN_CHANNELS
    shapes = {"c1w": (c1, 1, 3, 3), "c1b": (c1,), "c2w": (c2, c1, 3, 3), "c2b": (c2,),
              "fw": (10, c2 * 7 * 7), "fb": (10,)}
    fans = {"c1": 9, "c2": c1 * 9, "f": c2 * 7 * 7}
    return {k: rng.uniform(-1, 1, s).astype(np.float32) / np.float32(math.sqrt(fans[k[:-1]]))
            for k, s in shapes.items()}


def synthetic_images(
    rng: np.random.Generator, batch: int, n_batches: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(batch, 1, 28, 28) float32 pixels in [0, 1) and int64 labels 0-9."""
    xs = [rng.random((batch, 1, CNN_IMAGE, CNN_IMAGE), dtype=np.float32)
          for _ in range(n_batches)]
    ys = [rng.integers(0, 10, size=batch, dtype=np.int64) for _ in range(n_batches)]
    return xs, ys


def cnn_im2col_bytes(batch: int) -> int:
    """Bytes of the im2col matrices one training step of the CNN needs (both convolutions,
    float32): C·3·3 rows by N·H·W columns each."""
    c1, _ = CNN_CHANNELS
    return 4 * batch * (1 * 9 * CNN_IMAGE ** 2 + c1 * 9 * (CNN_IMAGE // 2) ** 2)


def _im2col3x3(x: np.ndarray) -> np.ndarray:
    """x (N, C, H, W), any strides -> col (C·9, N·H·W) for a 3x3 kernel, padding 1."""
    n, c, h, w = x.shape
    padded = np.zeros((c, n, h + 2, w + 2), dtype=x.dtype)
    padded[:, :, 1:-1, 1:-1] = x.transpose(1, 0, 2, 3)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    col = np.empty((c, 3, 3, n, h, w), dtype=x.dtype)
    col[...] = windows.transpose(0, 4, 5, 1, 2, 3)
    return col.reshape(c * 9, n * h * w)


def _col2im3x3(col: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    n, c, h, w = shape
    out = np.zeros((c, n, h + 2, w + 2), dtype=col.dtype)
    parts = col.reshape(c, 3, 3, n, h, w)
    for i in range(3):
        for j in range(3):
            out[:, :, i:i + h, j:j + w] += parts[:, i, j]
    return out[:, :, 1:-1, 1:-1].transpose(1, 0, 2, 3)


def _conv3x3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    col = _im2col3x3(x)
    out = w.reshape(w.shape[0], -1) @ col
    out += b[:, None]
    n, _, h, wd = x.shape
    return out.reshape(w.shape[0], n, h, wd).transpose(1, 0, 2, 3), col


def _pool2x2(x: np.ndarray) -> np.ndarray:
    out = np.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2])
    np.maximum(out, x[:, :, 1::2, 0::2], out=out)
    np.maximum(out, x[:, :, 1::2, 1::2], out=out)
    return out


def _pool2x2_backward(g: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """g to the first maximum of each 2x2 window (PyTorch's choice)."""
    gx = np.empty_like(x)
    taken = np.zeros(out.shape, dtype=bool)
    for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)):
        hit = x[:, :, i::2, j::2] == out
        hit &= ~taken
        taken |= hit
        np.multiply(g, hit, out=gx[:, :, i::2, j::2])
    return gx


def make_cnn_trainer(
    params: dict[str, np.ndarray], lr: float
) -> Callable[[np.ndarray, np.ndarray], np.floating]:
    """One SGD step of the CNN, by hand: im2col + one matmul per convolution (the columns
    kept for the weight gradient), col2im for the input gradient, pooling on strided views.

    Returns ``step(x, y) -> loss`` updating the weights in place.
    """
    p = {k: v.copy() for k, v in params.items()}

    def step(x: np.ndarray, y: np.ndarray) -> np.floating:
        n = x.shape[0]
        rows = np.arange(n)
        a1, col1 = _conv3x3(x, p["c1w"], p["c1b"])
        r1 = np.maximum(a1, 0)
        q1 = _pool2x2(r1)
        a2, col2 = _conv3x3(q1, p["c2w"], p["c2b"])
        r2 = np.maximum(a2, 0)
        q2 = _pool2x2(r2)
        f = q2.reshape(n, -1)
        z = f @ p["fw"].T
        z += p["fb"]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = (np.log(s[:, 0]) - z[rows, y]).mean()
        e /= s
        e[rows, y] -= 1
        e *= 1.0 / n
        grads = {"fw": e.T @ f, "fb": e.sum(axis=0)}
        dq2 = (e @ p["fw"]).reshape(q2.shape)
        da2 = _pool2x2_backward(dq2, r2, q2)
        da2 *= a2 > 0
        g2 = da2.transpose(1, 0, 2, 3).reshape(da2.shape[1], -1)
        grads["c2w"] = (g2 @ col2.T).reshape(p["c2w"].shape)
        grads["c2b"] = g2.sum(axis=1)
        dq1 = _col2im3x3(p["c2w"].reshape(g2.shape[0], -1).T @ g2, q1.shape)
        da1 = _pool2x2_backward(dq1, r1, q1)
        da1 *= a1 > 0
        g1 = da1.transpose(1, 0, 2, 3).reshape(da1.shape[1], -1)
        grads["c1w"] = (g1 @ col1.T).reshape(p["c1w"].shape)
        grads["c1b"] = g1.sum(axis=1)
        for k, g in grads.items():
            g *= lr
            p[k] -= g
        return loss

    step.params = p  # type: ignore[attr-defined]
    return step
