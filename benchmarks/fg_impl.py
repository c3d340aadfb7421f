"""The flowgrad side of each case, written as a flowgrad user writes it (public API only)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np  # noqa: TID251 -- inputs arrive as NumPy arrays shared with the other sides

import flowgrad as fg


def mlp_batches(xs: list[np.ndarray], ys: list[np.ndarray],
                device: str = "cpu") -> list[tuple[fg.Tensor, fg.Tensor]]:
    """The NumPy batches as flowgrad tensors on ``device``, made once, outside the timed
    steps."""
    return [(fg.tensor(x, device=device), fg.tensor(y, device=device)) for x, y in zip(xs, ys)]


def make_mlp_trainer(params: dict[str, np.ndarray], lr: float, device: str = "cpu") -> Callable:
    """``step(x, y) -> loss`` for 784 -> 256 -> ReLU -> 10, ``CrossEntropyLoss``, ``optim.SGD``,
    on ``device`` (on a GPU each step waits for the device before it returns)."""
    import flowgrad.nn as nn
    import flowgrad.optim as optim

    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    for p, key in zip(model.parameters(), ("w1", "b1", "w2", "b2")):
        if p.shape != params[key].shape:
            raise ValueError(
                f"parameter {key}: flowgrad has shape {p.shape}, expected {params[key].shape}"
            )
        p.data = params[key].copy()
    model.to(device)
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=lr)
    where = fg.device(device)

    def step(x: fg.Tensor, y: fg.Tensor) -> fg.Tensor:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def step_synchronized(x: fg.Tensor, y: fg.Tensor) -> fg.Tensor:
        loss = step(x, y)
        fg.cuda.synchronize(where)
        return loss

    trainer = step_synchronized if where.type == "cuda" else step
    trainer.params = tuple(model.parameters())  # type: ignore[attr-defined]
    return trainer


def op_expression(x: np.ndarray, y: np.ndarray) -> tuple[Callable, Callable]:
    """``(full, forward)`` callables for ``((x*y)+x).sum()`` with and without ``backward()``."""
    tx = fg.tensor(x, requires_grad=True)
    ty = fg.tensor(y, requires_grad=True)

    def full() -> fg.Tensor:
        # Start from no gradient each time, as a fresh step would; accumulation is not measured.
        tx.grad = None
        ty.grad = None
        out = ((tx * ty) + tx).sum()
        out.backward()
        return out

    def forward() -> fg.Tensor:
        return ((tx * ty) + tx).sum()

    full.inputs = (tx, ty)  # type: ignore[attr-defined]
    return full, forward


def chain(x: np.ndarray, length: int, factor: float) -> Callable[[], dict[str, Any]]:
    """A callable building ``length`` chained multiplications, then calling ``backward()``."""

    def run() -> dict[str, Any]:
        tx = fg.tensor(x, requires_grad=True)
        t0 = time.perf_counter()
        y = tx
        for _ in range(length):
            y = y * factor
        s = y.sum()
        t1 = time.perf_counter()
        s.backward()
        t2 = time.perf_counter()
        del y, s
        t3 = time.perf_counter()
        return {
            "forward": t1 - t0,
            "backward": t2 - t1,
            "free": t3 - t2,
            "grad": np.array(tx.grad.numpy(), copy=True),
        }

    return run


def small_net_loss(x: np.ndarray, t: np.ndarray) -> Callable[[fg.Tensor], fg.Tensor]:
    """A 50-parameter loss: 3 -> 10 tanh -> 1, mean squared error on a fixed batch.

    ``theta`` packs ``w1`` (10x3 = 30), ``b1`` (10) and ``w2`` (1x10 = 10).
    """
    tx = fg.tensor(x)
    tt = fg.tensor(t)

    def f(theta: fg.Tensor) -> fg.Tensor:
        w1 = theta[0:30].reshape(10, 3)
        b1 = theta[30:40]
        w2 = theta[40:50].reshape(1, 10)
        h = fg.tanh(tx @ w1.T + b1)
        r = h @ w2.T - tt
        return (r * r).mean()

    return f


def make_cnn_trainer(params: dict[str, np.ndarray], lr: float) -> Callable:
    """``step(x, y) -> loss`` for the CNN of ``flowgrad train --model cnn`` on (N, 1, 28, 28)
    images: ``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.Linear``, ``CrossEntropyLoss``, ``SGD``."""
    import flowgrad.nn as nn
    import flowgrad.optim as optim

    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    for p, key in zip(model.parameters(), ("c1w", "c1b", "c2w", "c2b", "fw", "fb")):
        p.data = params[key].copy()
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=lr)

    def step(x: fg.Tensor, y: fg.Tensor) -> fg.Tensor:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step.params = tuple(model.parameters())  # type: ignore[attr-defined]
    return step
