"""The PyTorch competitors, written as a PyTorch user writes them (eager CPU, defaults).

Every function takes the ``torch`` module as its first argument, so nothing here imports
PyTorch at module load and the benchmarks run without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np  # noqa: TID251 -- inputs arrive as NumPy arrays shared with the other sides


def mlp_batches(torch: Any, xs: list[np.ndarray], ys: list[np.ndarray],
                device: str = "cpu") -> list[tuple]:
    """The NumPy batches as PyTorch tensors (``from_numpy``: shared memory, no copy; on a GPU
    copied there once)."""
    return [(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
            for x, y in zip(xs, ys)]


def make_mlp_trainer(torch: Any, params: dict[str, np.ndarray], lr: float,
                     device: str = "cpu") -> Callable:
    """``step(x, y) -> loss`` for 784 -> 256 -> ReLU -> 10, ``CrossEntropyLoss``, ``optim.SGD``,
    on ``device`` (on a GPU each step waits for the device before it returns)."""
    nn = torch.nn
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    with torch.no_grad():
        for p, key in zip(model.parameters(), ("w1", "b1", "w2", "b2")):
            p.copy_(torch.from_numpy(params[key]))
    model.to(device)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def step_synchronized(x: Any, y: Any) -> Any:
        loss = step(x, y)
        torch.cuda.synchronize()
        return loss

    trainer = step if str(device) == "cpu" else step_synchronized
    trainer.params = tuple(model.parameters())  # type: ignore[attr-defined]
    return trainer


def op_expression(torch: Any, x: np.ndarray, y: np.ndarray) -> tuple[Callable, Callable]:
    """``(full, forward)`` callables for ``((x*y)+x).sum()`` with and without ``backward()``."""
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.tensor(y, requires_grad=True)

    def full() -> Any:
        # Start from no gradient each time, as a fresh step would; accumulation is not measured.
        tx.grad = None
        ty.grad = None
        out = ((tx * ty) + tx).sum()
        out.backward()
        return out

    def forward() -> Any:
        return ((tx * ty) + tx).sum()

    full.inputs = (tx, ty)  # type: ignore[attr-defined]
    return full, forward


def chain(torch: Any, x: np.ndarray, length: int, factor: float) -> Callable[[], dict]:
    """A callable building ``length`` chained multiplications, then calling ``backward()``."""
    import time

    def run() -> dict:
        tx = torch.tensor(x, requires_grad=True)
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
            "grad": tx.grad.numpy().copy(),
        }

    return run


def hessian_inputs(torch: Any, theta: np.ndarray, x: np.ndarray, t: np.ndarray) -> tuple:
    return torch.from_numpy(theta.copy()), torch.from_numpy(x), torch.from_numpy(t)


def small_net_loss(torch: Any, x: Any, t: Any) -> Callable[[Any], Any]:
    """The 50-parameter loss of :func:`benchmarks.cases.small_net_loss`, in PyTorch."""

    def f(theta: Any) -> Any:
        w1 = theta[0:30].reshape(10, 3)
        b1 = theta[30:40]
        w2 = theta[40:50].reshape(1, 10)
        h = torch.tanh(x @ w1.T + b1)
        r = h @ w2.T - t
        return (r * r).mean()

    return f


def make_cnn_trainer(torch: Any, params: dict[str, np.ndarray], lr: float) -> Callable:
    """``step(x, y) -> loss`` for the same CNN in PyTorch (eager, oneDNN convolutions)."""
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    with torch.no_grad():
        for p, key in zip(model.parameters(), ("c1w", "c1b", "c2w", "c2b", "fw", "fb")):
            p.copy_(torch.from_numpy(params[key]))
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step.params = tuple(model.parameters())  # type: ignore[attr-defined]
    return step
