"""A one-layer causal transformer learns to copy: the second half of each sequence repeats
the first, so once it has seen the first half it can predict the rest exactly.

Each sequence is ``L`` random tokens followed by the same ``L`` tokens again. The model reads
it left to right (a causal attention mask hides the future) and predicts every next token;
the first half is unpredictable noise, the second half is a copy, and the accuracy printed
is on the second half. To copy, position t must attend to position t + 1 - L: one attention
head can learn that fixed offset from the position embeddings.

    python examples/transformer_copy.py            # about ten seconds
    python examples/transformer_copy.py --steps 50 --length 4

Uses only flowgrad's public API: nn.Embedding, nn.MultiheadAttention, nn.LayerNorm,
nn.Linear, nn.GELU, F.cross_entropy, optim.AdamW, nn.utils.clip_grad_norm_.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import flowgrad as fg
import flowgrad.nn.functional as F
from flowgrad import nn


class CopyTransformer(nn.Module):
    """Token and position embeddings, one pre-norm attention block with an MLP, a head."""

    def __init__(self, vocab: int, length: int, width: int, heads: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(length, width)
        self.norm1 = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))
        self.norm3 = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        # True above the diagonal: position t may not look at positions after t.
        self.register_buffer("future", fg.triu(fg.ones(length, length), diagonal=1) > 0,
                             persistent=False)

    def forward(self, x: fg.Tensor) -> fg.Tensor:
        steps = x.shape[1]
        h = self.tokens(x) + self.positions(fg.arange(steps))
        a = self.norm1(h)
        mask = self.future[:steps, :steps]
        h = h + self.attention(a, a, a, attn_mask=mask, need_weights=False)[0]
        h = h + self.mlp(self.norm2(h))
        return self.head(self.norm3(h))


def batch(rng: np.random.Generator, size: int, length: int, vocab: int) -> np.ndarray:
    first = rng.integers(0, vocab, (size, length))
    return np.concatenate([first, first], axis=1)


def second_half_accuracy(model: nn.Module, seqs: np.ndarray, length: int) -> float:
    """How often the model predicts the copied tokens (positions L .. 2L-1) right."""
    with fg.no_grad():
        logits = model(fg.tensor(seqs[:, :-1])).numpy()
    predicted = logits[:, length - 1:].argmax(-1)
    return float((predicted == seqs[:, length:]).mean())


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=10, help="distinct tokens (default 10)")
    parser.add_argument("--length", type=int, default=8, help="tokens to copy (default 8)")
    parser.add_argument("--width", type=int, default=32, help="model width (default 32)")
    parser.add_argument("--heads", type=int, default=2, help="attention heads (default 2)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per step")
    parser.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    fg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    length = args.length
    model = CopyTransformer(args.vocab, 2 * length, args.width, args.heads)
    opt = fg.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = fg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
    test = batch(rng, 512, length, args.vocab)
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        seqs = batch(rng, args.batch_size, length, args.vocab)
        logits = model(fg.tensor(seqs[:, :-1]))
        # Next-token prediction over the whole sequence; only the second half can be learnt.
        loss = F.cross_entropy(logits.reshape(-1, args.vocab), fg.tensor(seqs[:, 1:].reshape(-1)))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(args.steps // 8, 1) == 0 or step == args.steps:
            model.eval()
            acc = second_half_accuracy(model, test, length)
            model.train()
            print(f"step {step:4d}  loss {loss.item():.3f}  second-half accuracy "
                  f"{100 * acc:5.1f}%  {time.perf_counter() - started:5.1f} s")
    model.eval()
    accuracy = second_half_accuracy(model, test, length)
    print(f"copy accuracy on the second half: {100 * accuracy:.1f}% "
          f"(chance {100 / args.vocab:.0f}%)")
    return accuracy


if __name__ == "__main__":
    main()
