"""``flowgrad graph``: draw a network's dataflow graph after one training step.

The network is the reference classifier ``Sequential(Linear(64, H), ReLU(), Linear(H, 10))``
(``--model mlp``, the default) or the small CNN of ``flowgrad train --model cnn`` (two
conv-ReLU-pool blocks and a linear head) on a batch of the embedded 8x8 digits, with
cross-entropy loss. The command takes one SGD step, then runs forward and backward again
(keeping the graph) on the same batch and draws that graph: named parameters, the values on
every edge and the gradients flowing back.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from flowgrad.cli import CLIError, check_output, check_seed


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        default="graph.svg",
        metavar="FILE",
        help="picture to write: .svg, .png, .pdf, or .dot for the Graphviz text "
        "(default: graph.svg)",
    )
    parser.add_argument(
        "--model", choices=("mlp", "cnn"), default="mlp",
        help="mlp: Linear-ReLU-Linear; cnn: flowgrad train's CNN (default: mlp)",
    )
    parser.add_argument(
        "--hidden", type=int, default=32, metavar="N", help="hidden units of the mlp "
        "(default: 32)"
    )
    parser.add_argument(
        "--batch", type=int, default=32, metavar="N", help="batch size (default: 32)"
    )
    parser.add_argument(
        "--lr", type=float, default=0.1, help="SGD learning rate of the step (default: 0.1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def _reference_model(hidden: int, model: str = "mlp") -> Any:
    """The network on the 8x8 digits: 64 inputs (``hidden`` units for the mlp), 10 classes."""
    from flowgrad.training import build_model

    return build_model(model, (8, 8), hidden, 10)


def run(args: argparse.Namespace) -> int:
    import flowgrad as fg
    from flowgrad.viz.graph import draw_graph

    out = Path(check_output(args.out, "--out", (".svg", ".png", ".pdf", ".dot", ".gv"),
                            ".svg, .png, .pdf or .dot"))
    if args.hidden < 1:
        raise CLIError(f"--hidden must be at least 1, got {args.hidden}")
    if not 1 <= args.batch <= 1797:
        raise CLIError(f"--batch must be between 1 and 1797, got {args.batch}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise CLIError(f"--lr must be a positive finite number, got {args.lr}")
    check_seed(args.seed)

    fg.manual_seed(args.seed)
    model = _reference_model(args.hidden, args.model)
    images, labels = fg.data.load_digits()
    images = images.reshape(len(images), -1)[: args.batch]
    x = fg.tensor(images)
    y = fg.tensor(labels[: args.batch])
    loss_fn = fg.nn.CrossEntropyLoss()
    optimizer = fg.optim.SGD(model.parameters(), lr=args.lr)

    # The training step.
    optimizer.zero_grad()
    loss_before = loss_fn(model(x), y)
    loss_before.backward()
    optimizer.step()

    # Forward and backward again with the stepped parameters, keeping the graph to draw it.
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward(retain_graph=True)

    names = dict(model.named_parameters())
    names["images"] = x
    names["labels"] = y
    network = (f"reference network 64 → {args.hidden} → 10" if args.model == "mlp" else
               "CNN 8x8 → conv 16 → pool → conv 32 → pool → 10")
    title = (
        f"{network} on {args.batch} digits\n"
        f"after 1 SGD step (lr={args.lr:g}): loss {loss_before.item():.4f} → "
        f"{loss.item():.4f}"
    )
    drawing = draw_graph(loss, params=names, title=title)
    try:
        path = drawing.render(out)
    except RuntimeError as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        raise CLIError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(path)
    return 0
