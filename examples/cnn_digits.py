"""A convolutional network on the 8x8 handwritten digits that ship with flowgrad.

Two conv-batchnorm-ReLU-pool blocks, dropout and a linear head, trained with SGD and
momentum under a cosine schedule, written as one would write it in PyTorch: a Module, a
DataLoader, ``train()``/``eval()`` (which switch batch normalisation and dropout), and a
state dict saved at the end.

    python examples/cnn_digits.py                 # a few seconds
    python examples/cnn_digits.py --epochs 2 --save cnn.npz

Uses only flowgrad's public API.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import flowgrad as fg
import flowgrad.nn.functional as F
from flowgrad import nn


class DigitsCNN(nn.Module):
    def __init__(self, dropout: float = 0.25):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(32 * 2 * 2, 10))

    def forward(self, x: fg.Tensor) -> fg.Tensor:
        return self.classifier(self.features(x))


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with fg.no_grad():
        predicted = model(fg.tensor(x)).argmax(dim=1).numpy()
    return float((predicted == y).mean())


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--train-limit", type=int, default=None,
                        help="train on the first N training images only (for quick checks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, metavar="FILE.npz",
                        help="write the trained weights (and batch-norm statistics) here")
    args = parser.parse_args(argv)

    fg.manual_seed(args.seed)
    x_train, y_train = fg.data.load_digits("train")
    x_test, y_test = fg.data.load_digits("test")
    # (N, 8, 8) pixels in [0, 1] -> (N, 1, 8, 8): one input channel.
    x_train, x_test = x_train[:, None], x_test[:, None]
    if args.train_limit:
        x_train, y_train = x_train[:args.train_limit], y_train[:args.train_limit]
    loader = fg.data.DataLoader(fg.data.TensorDataset(x_train, y_train),
                                batch_size=args.batch_size, shuffle=True, seed=args.seed)

    model = DigitsCNN()
    opt = fg.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    sched = fg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    print(model)
    print(f"{sum(p.numel() for p in model.parameters())} parameters, "
          f"{len(x_train)} training and {len(x_test)} test images")
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
            seen += len(yb)
        sched.step()
        acc = accuracy(model, x_test, y_test)
        print(f"epoch {epoch:2d}  train loss {total / seen:.4f}  test accuracy {100 * acc:6.2f}%"
              f"  {time.perf_counter() - started:5.1f} s")
    acc = accuracy(model, x_test, y_test)
    print(f"test accuracy {100 * acc:.2f}% ({round(acc * len(y_test))}/{len(y_test)})")
    if args.save:
        fg.save(model.state_dict(), args.save)
        print(f"saved {args.save}")
    return acc


if __name__ == "__main__":
    main()
