"""Derivatives at the edges: every registered op's rules at 0, at ±inf, at the boundaries of
its domain, at ties and at extreme values, as PyTorch gives them.

One table, :data:`CASES`, drives the sweep. For each case the forward value, the first
derivative from both rules (the fast array rule, used when ``create_graph=False``, and the
Tensor rule, used when it is True) and the second derivative are computed; with PyTorch
installed they are compared with PyTorch's: forward and first derivatives everywhere
(NaN equal to NaN, inf to inf), second derivatives where PyTorch's is finite. The
hand-computed tests below the table pin the same conventions without PyTorch.

Deliberate differences from PyTorch are listed in :data:`DIFFERENCES` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

import flowgrad as fg
import flowgrad.nn.functional as F
from flowgrad.engine import grad as engine_grad
from flowgrad.graph import walk
from flowgrad.ops.registry import OPS

inf, nan = math.inf, math.nan

# Points every unary elementwise op is swept over.
EDGES = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1e-300, -1e-300, 1e-8, -1e-8,
                  20.0, -20.0, 30.0, -30.0, 50.0, -50.0, 700.0, -700.0, 800.0, -800.0,
                  1e30, -1e30, 1e308, -1e308, inf, -inf])


@dataclass
class Case:
    """One sweep row.

    Attributes:
        id: the test id.
        ours: ``ours(*tensors) -> Tensor``.
        torch: ``torch_fn(torch, *tensors) -> tensor`` (None: no PyTorch counterpart; the
            hand-computed tests cover it).
        inputs: the differentiable inputs (float64 arrays).
        order2: also compare second derivatives.
        rtol: forward and first-derivative tolerance.
    """

    id: str
    ours: Callable
    torch: Callable | None
    inputs: tuple
    order2: bool = True
    rtol: float = 1e-10
    atol: float = 0.0
    skip_first: list = field(default_factory=list)


def _a(*values) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _grid(a, b):
    """All pairs of two 1-D arrays, as two flat arrays (for binary ops)."""
    x, y = np.meshgrid(a, b, indexing="ij")
    return x.ravel().copy(), y.ravel().copy()


PAIR = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.5, 0.5, inf, -inf, 1e308])
PX, PY = _grid(PAIR, PAIR)
POW_BASE = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, inf, -inf])
POW_EXP = np.array([0.0, 1.0, 2.0, 3.0, -1.0, -2.0, 0.5, -0.5, 1.5, inf, -inf])
BX, BY = _grid(POW_BASE, POW_EXP)


def _unary(name, ours, torch_fn, points=EDGES, **kw):
    return Case(name, ours, torch_fn, (points.copy(),), **kw)


def _both(name, fn, *inputs):
    """A case whose function reads the same on flowgrad and PyTorch tensors (methods)."""
    return Case(name, fn, lambda t, *xs: fn(*xs), inputs)


def _power(p):
    return _unary(f"pow-scalar{p}", lambda x: x ** p, lambda t, x: x ** p, POW_BASE)


def _rpower(b):
    return Case(f"rpow-scalar{b}", lambda y: b ** y, lambda t, y: b ** y, (POW_EXP.copy(),))


def _norm(p):
    return Case(f"norm-p{p}-zero", lambda x: fg.norm(x, p=p, dim=1),
                lambda t, x: t.linalg.vector_norm(x, ord=p, dim=1),
                (_a(0, 0, 0, 3, -4, 0, 2, -2, 1, inf, 1, 0).reshape(4, 3),))


CASES: list[Case] = [
    # ---------------------------------------------------------------- elementwise
    _unary("exp", fg.exp, lambda t, x: t.exp(x)),
    _unary("log", fg.log, lambda t, x: t.log(x)),
    _unary("sqrt", fg.sqrt, lambda t, x: t.sqrt(x)),
    _unary("rsqrt", fg.rsqrt, lambda t, x: t.rsqrt(x)),
    _unary("abs", fg.abs, lambda t, x: t.abs(x)),
    _unary("sin", fg.sin, lambda t, x: t.sin(x)),
    _unary("cos", fg.cos, lambda t, x: t.cos(x)),
    _unary("tanh", fg.tanh, lambda t, x: t.tanh(x)),
    _unary("sigmoid", fg.sigmoid, lambda t, x: t.sigmoid(x)),
    _unary("relu", fg.relu, lambda t, x: t.relu(x)),
    _unary("leaky_relu", lambda x: fg.leaky_relu(x, negative_slope=0.2),
           lambda t, x: t.nn.functional.leaky_relu(x, 0.2)),
    _unary("neg", fg.neg, lambda t, x: -x),
    _unary("square", fg.square, lambda t, x: t.square(x)),
    _unary("log1p", fg.log1p, lambda t, x: t.log1p(x), _a(0.0, -1.0, -2.0, -0.5, 1.0, 1e-300,
                                                         -1e-300, 1e308, inf, -inf)),
    _unary("expm1", fg.expm1, lambda t, x: t.expm1(x)),
    _unary("softplus", fg.softplus, lambda t, x: t.nn.functional.softplus(x),
           np.concatenate([EDGES, _a(19.999, 20.0, 20.0001)])),
    _unary("softplus-beta", lambda x: fg.softplus(x, beta=2.0, threshold=10.0),
           lambda t, x: t.nn.functional.softplus(x, beta=2.0, threshold=10.0),
           np.concatenate([EDGES, _a(4.999, 5.0, 5.0001)])),
    _unary("silu", fg.silu, lambda t, x: t.nn.functional.silu(x)),
    _unary("gelu", fg.gelu, lambda t, x: t.nn.functional.gelu(x),
           np.concatenate([EDGES, _a(6.0, -6.0, 10.0, -10.0, 40.0, -40.0)]), rtol=1e-9,
           atol=1e-300),
    _unary("gelu-tanh", lambda x: fg.gelu(x, approximate="tanh"),
           lambda t, x: t.nn.functional.gelu(x, approximate="tanh"),
           np.concatenate([EDGES, _a(6.0, -6.0, 10.0, -10.0, 40.0, -40.0)]), rtol=1e-9,
           atol=1e-300),
    _unary("elu", fg.elu, lambda t, x: t.nn.functional.elu(x)),
    _unary("elu-alpha", lambda x: fg.elu(x, alpha=0.5),
           lambda t, x: t.nn.functional.elu(x, alpha=0.5)),
    _unary("erf", fg.erf, lambda t, x: t.erf(x),
           np.concatenate([EDGES, _a(2.0, 5.9, 6.0, 6.1, -6.0, 27.0, -27.0)]), rtol=1e-9,
           atol=1e-300),
    _unary("clamp", lambda x: fg.clamp(x, min=-1.0, max=1.0), lambda t, x: t.clamp(x, -1.0, 1.0)),
    _unary("clamp-min", lambda x: fg.clamp(x, min=0.0), lambda t, x: t.clamp(x, min=0.0)),
    _unary("clamp-max", lambda x: fg.clamp(x, max=0.5), lambda t, x: t.clamp(x, max=0.5)),
    _unary("clamp-empty", lambda x: fg.clamp(x, min=1.0, max=-1.0),
           lambda t, x: t.clamp(x, 1.0, -1.0)),
    _unary("cast", lambda x: x.to(fg.float32).to(fg.float64),
           lambda t, x: x.to(t.float32).to(t.float64), order2=True),
    # ---------------------------------------------------------------- binary
    Case("add", fg.add, lambda t, x, y: x + y, (PX, PY)),
    Case("sub", fg.sub, lambda t, x, y: x - y, (PX, PY)),
    Case("mul", fg.mul, lambda t, x, y: x * y, (PX, PY)),
    Case("div", fg.div, lambda t, x, y: x / y, (PX, PY)),
    Case("maximum", fg.maximum, lambda t, x, y: t.maximum(x, y), (PX, PY)),
    Case("minimum", fg.minimum, lambda t, x, y: t.minimum(x, y), (PX, PY)),
    Case("pow", fg.pow, lambda t, x, y: t.pow(x, y), (BX, BY)),
    *[_power(p) for p in (0, 1, 2, 3, 0.5, -1, -0.5, 1.5, 0.0, 1.0, 2.0)],
    *[_rpower(b) for b in (0.0, 1.0, 2.0, 0.5)],
    Case("where", lambda x, y: fg.where(fg.tensor([True, False] * 5), x, y),
         lambda t, x, y: t.where(t.tensor([True, False] * 5), x, y),
         (_a(inf, -inf, nan, 0, 1, 2, 3, 4, 5, 6), _a(nan, inf, -inf, 1, 2, 3, 4, 5, 6, 7))),
    Case("matmul", fg.matmul, lambda t, x, y: x @ y,
         (_a(0, 1, 1e308, -2).reshape(2, 2), _a(inf, 0, 1, 2).reshape(2, 2))),
    Case("matmul-vec", fg.matmul, lambda t, x, y: x @ y, (_a(0, 1e300, 2), _a(1e300, 0, -1))),
    Case("bmm", fg.bmm, lambda t, x, y: t.bmm(x, y),
         (_a(0, 1, 2, -3, 0, 0, 0, 0).reshape(2, 2, 2),
          _a(inf, 0, 1, 2, 0, 0, 1, 1).reshape(2, 2, 2))),
    Case("linear", lambda x, w, b: F.linear(x, w, b),
         lambda t, x, w, b: t.nn.functional.linear(x, w, b),
         (_a(0, 1, 1e200, -2).reshape(2, 2), _a(0, 1e200, 1, 0, 0, 3).reshape(3, 2),
          _a(0, inf, 1))),
    # ---------------------------------------------------------------- reductions
    Case("sum", lambda x: fg.sum(x, dim=1), lambda t, x: x.sum(1),
         (_a(inf, -inf, 0, 1, nan, 2).reshape(2, 3),)),
    Case("mean", lambda x: fg.mean(x, dim=0), lambda t, x: x.mean(0),
         (_a(inf, -inf, 0, 1, 2, 2).reshape(2, 3),)),
    Case("mean-empty", lambda x: fg.mean(x, dim=0), lambda t, x: x.mean(0), (np.zeros((0, 3)),)),
    Case("amax-ties", lambda x: fg.amax(x, dim=1), lambda t, x: t.amax(x, 1),
         (_a(1, 3, 3, 3, 0, 0, 0, 0, inf, 2, inf, -inf, -inf, -inf, -inf, 1).reshape(4, 4),)),
    Case("amin-ties", lambda x: fg.amin(x, dim=(0, 1)), lambda t, x: t.amin(x, (0, 1)),
         (_a(1, -3, -3, 5, -3, 0).reshape(2, 3),)),
    Case("amax-all", fg.amax, lambda t, x: t.amax(x), (_a(2, 2, 1, 2),)),
    Case("max-all-ties", fg.max, lambda t, x: t.max(x), (_a(2, 2, 1, 2),)),
    Case("min-all-ties", fg.min, lambda t, x: t.min(x), (_a(-inf, 0, -inf, 1),)),
    Case("max-dim-ties", lambda x: fg.max(x, dim=1).values, lambda t, x: t.max(x, 1).values,
         (_a(1, 3, 3, 0, 0, 0, inf, inf, 2).reshape(3, 3),)),
    Case("min-dim-ties", lambda x: fg.min(x, dim=0, keepdim=True).values,
         lambda t, x: t.min(x, 0, keepdim=True).values,
         (_a(1, 0, 1, 0, -inf, -inf).reshape(3, 2),)),
    Case("logsumexp-masks", lambda x: fg.logsumexp(x, dim=1), lambda t, x: t.logsumexp(x, 1),
         (_a(0, -inf, 1, -inf, -inf, -inf, inf, 0, 1, inf, inf, 0, 1e308, 1e308, 0)
          .reshape(5, 3),)),
    Case("softmax-masks", lambda x: fg.softmax(x, dim=1), lambda t, x: t.softmax(x, 1),
         (_a(0, -inf, 1, -inf, -inf, -inf, 1e4, -1e4, 0, 2, 2, 2).reshape(4, 3),)),
    Case("log_softmax-masks", lambda x: fg.log_softmax(x, dim=1),
         lambda t, x: t.log_softmax(x, 1),
         (_a(0, -inf, 1, -inf, -inf, -inf, 1e4, -1e4, 0, 2, 2, 2).reshape(4, 3),)),
    Case("prod-zeros", lambda x: fg.prod(x, dim=1), lambda t, x: t.prod(x, 1),
         (_a(2, 3, 4, 0, 3, 4, 0, 0, 4, 0, 0, 0, -2, 0.5, 1e200).reshape(5, 3),)),
    Case("prod-all", fg.prod, lambda t, x: t.prod(x), (_a(0, 2, 3, -1),)),
    Case("prod-inf", lambda x: fg.prod(x, dim=1), lambda t, x: t.prod(x, 1),
         (_a(inf, 2, 0, inf).reshape(2, 2),)),
    Case("var-one", lambda x: fg.var(x, dim=1), lambda t, x: t.var(x, 1),
         (_a(2, 3).reshape(2, 1),)),
    Case("var-one-c0", lambda x: fg.var(x, dim=1, correction=0),
         lambda t, x: t.var(x, 1, correction=0), (_a(2, 3).reshape(2, 1),)),
    Case("var-const", lambda x: fg.var(x, dim=1), lambda t, x: t.var(x, 1),
         (_a(2, 2, 2, 1, 2, 3).reshape(2, 3),)),
    Case("var-c2", lambda x: fg.var(x, dim=0, correction=2), lambda t, x: t.var(x, 0, correction=2),
         (_a(1, 2, 3, 4).reshape(2, 2),)),
    Case("std-one", lambda x: fg.std(x, dim=1), lambda t, x: t.std(x, 1),
         (_a(2, 3).reshape(2, 1),)),
    Case("std-one-c0", lambda x: fg.std(x, dim=1, correction=0),
         lambda t, x: t.std(x, 1, correction=0), (_a(2, 3).reshape(2, 1),)),
    Case("std-const", lambda x: fg.std(x, dim=1), lambda t, x: t.std(x, 1),
         (_a(2, 2, 2, 1, 2, 3).reshape(2, 3),)),
    Case("std-all", fg.std, lambda t, x: t.std(x), (_a(1, 2, 4),)),
    *[_norm(p) for p in (1, 2, inf, 3, 0.5)],
    Case("norm-all", fg.norm, lambda t, x: t.linalg.vector_norm(x), (_a(0.0, 0.0),)),
    Case("cumsum", lambda x: fg.cumsum(x, dim=1), lambda t, x: t.cumsum(x, 1),
         (_a(1, inf, 2, -inf, 0, 1e308, 1e308, 0).reshape(2, 4),)),
    # ---------------------------------------------------------------- losses
    Case("cross_entropy-extreme", lambda z: fg.nn.functional.cross_entropy(z, fg.tensor([0, 1, 2])),
         lambda t, z: t.nn.functional.cross_entropy(z, t.tensor([0, 1, 2])),
         (_a(1e4, -1e4, 0, 1e4, -1e4, 0, 1e308, -1e308, 0).reshape(3, 3),)),
    Case("cross_entropy-masked", lambda z: fg.nn.functional.cross_entropy(z, fg.tensor([0, 2])),
         lambda t, z: t.nn.functional.cross_entropy(z, t.tensor([0, 2])),
         (_a(0, -inf, 1, 5, -inf, 0).reshape(2, 3),)),
    Case("cross_entropy-none", lambda z: fg.nn.functional.cross_entropy(
        z, fg.tensor([1, 0]), reduction="none"),
        lambda t, z: t.nn.functional.cross_entropy(z, t.tensor([1, 0]), reduction="none"),
        (_a(-inf, 0, 1e4, 1e4).reshape(2, 2),)),
    Case("cross_entropy-sum", lambda z: fg.nn.functional.cross_entropy(
        z, fg.tensor([1]), reduction="sum"),
        lambda t, z: t.nn.functional.cross_entropy(z, t.tensor([1]), reduction="sum"),
        (_a(800, -800).reshape(1, 2),)),
    Case("bce_logits-extreme", lambda z, y: F.binary_cross_entropy_with_logits(z, y),
         lambda t, z, y: t.nn.functional.binary_cross_entropy_with_logits(z, y),
         (_a(1e4, -1e4, 0, 800, -800, 1e308, 37, -37), _a(0, 1, 0.5, 1, 0, 1, 0, 1))),
    Case("bce_logits-none", lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="none"),
         lambda t, z, y: t.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none"),
         (_a(inf, -inf, 0), _a(1, 0, 1))),
    # ---------------------------------------------------------------- nn layers
    Case("conv2d", lambda x, w, b: F.conv2d(x, w, b, padding=1),
         lambda t, x, w, b: t.nn.functional.conv2d(x, w, b, padding=1),
         (np.linspace(-1, 1, 18).reshape(1, 2, 3, 3), np.linspace(0, 1, 36).reshape(2, 2, 3, 3),
          _a(0, 1e300))),
    Case("conv1d", lambda x, w: F.conv1d(x, w, stride=2, dilation=2),
         lambda t, x, w: t.nn.functional.conv1d(x, w, stride=2, dilation=2),
         (np.linspace(-1, 1, 14).reshape(1, 2, 7), np.linspace(0, 1, 12).reshape(3, 2, 2))),
    Case("max_pool2d-ties", lambda x: F.max_pool2d(x, 2, stride=1),
         lambda t, x: t.nn.functional.max_pool2d(x, 2, stride=1),
         (_a(1, 1, 1, 1, 1, 1, 0, 2, 2).reshape(1, 1, 3, 3),)),
    Case("max_pool2d-inf", lambda x: F.max_pool2d(x, 2, padding=1),
         lambda t, x: t.nn.functional.max_pool2d(x, 2, padding=1),
         (_a(-inf, -inf, -inf, 1, inf, 0, 2, 2, 2).reshape(1, 1, 3, 3),)),
    Case("avg_pool2d", lambda x: F.avg_pool2d(x, 2, padding=1, count_include_pad=False),
         lambda t, x: t.nn.functional.avg_pool2d(x, 2, padding=1, count_include_pad=False),
         (np.linspace(-1, 1, 9).reshape(1, 1, 3, 3),)),
    Case("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, 2),
         lambda t, x: t.nn.functional.adaptive_avg_pool2d(x, 2),
         (np.linspace(-1, 1, 25).reshape(1, 1, 5, 5),)),
    Case("embedding", lambda w: F.embedding(fg.tensor([0, 2, 0, 1]), w, padding_idx=1),
         lambda t, w: t.nn.functional.embedding(t.tensor([0, 2, 0, 1]), w, padding_idx=1),
         (_a(0, inf, 1, 2, 3, -inf).reshape(3, 2),)),
    Case("unfold", lambda x: F.unfold(x, 2, padding=1),
         lambda t, x: t.nn.functional.unfold(x, 2, padding=1),
         (np.linspace(-1, 1, 18).reshape(1, 2, 3, 3),)),
    Case("fold", lambda x: F.fold(x, (3, 3), 2), lambda t, x: t.nn.functional.fold(x, (3, 3), 2),
         (np.linspace(-1, 1, 16).reshape(1, 4, 4),)),
    # ---------------------------------------------------------------- shape and indexing
    _both("reshape", lambda x: x.reshape(3, 2), _a(inf, 0, nan, 1, 2, 3).reshape(2, 3)),
    _both("transpose", lambda x: x.transpose(0, 1), _a(inf, 0, 1, 2).reshape(2, 2)),
    _both("permute", lambda x: x.permute(2, 0, 1), np.arange(24.0).reshape(2, 3, 4)),
    Case("getitem-repeat", lambda x: x[np.array([0, 0, 2])],
         lambda t, x: x[t.tensor([0, 0, 2])], (_a(inf, 1, 2),)),
    _both("getitem-mask", lambda x: x[x > 0], _a(-1, 2, inf, 0)),
    _both("getitem-basic", lambda x: x[1:, ::2], np.arange(12.0).reshape(3, 4)),
    Case("cat", lambda x, y: fg.cat([x, y, x], dim=1), lambda t, x, y: t.cat([x, y, x], 1),
         (_a(1, 2).reshape(2, 1), _a(3, inf).reshape(2, 1))),
    Case("stack", lambda x, y: fg.stack([x, y], dim=-1), lambda t, x, y: t.stack([x, y], -1),
         (_a(1, 2), _a(3, inf))),
    _both("squeeze", lambda x: x.squeeze(1), _a(1, 2).reshape(2, 1)),
    _both("unsqueeze", lambda x: x.unsqueeze(-1), _a(1, 2)),
    _both("flatten", lambda x: x.flatten(1), np.arange(8.0).reshape(2, 2, 2)),
    _both("broadcast-sum_to", lambda x, y: x * y, _a(1, 2).reshape(2, 1), _a(3, 4, 0)),
    _both("flip", lambda x: x.flip(0, 1), np.arange(6.0).reshape(2, 3)),
    _both("expand", lambda x: x.expand(3, 2, -1), _a(1, 2).reshape(1, 2)),
    _both("repeat", lambda x: x.repeat(2, 3), _a(1, 2)),
    Case("gather", lambda x: x.gather(1, fg.tensor([[0, 0], [1, 0]])),
         lambda t, x: x.gather(1, t.tensor([[0, 0], [1, 0]])), (_a(1, 2, 3, 4).reshape(2, 2),)),
    Case("index_select", lambda x: x.index_select(0, fg.tensor([1, 1, 0])),
         lambda t, x: x.index_select(0, t.tensor([1, 1, 0])), (_a(1, 2, 3, 4).reshape(2, 2),)),
    Case("masked_fill", lambda x: x.masked_fill(fg.tensor([True, False, True]), -inf),
         lambda t, x: x.masked_fill(t.tensor([True, False, True]), -inf), (_a(inf, 2, 3),)),
    _both("tril", lambda x: x.tril(-1), np.arange(9.0).reshape(3, 3)),
    _both("triu", lambda x: x.triu(1), np.arange(9.0).reshape(3, 3)),
    Case("einsum", lambda x, y: fg.einsum("ij,jk->ik", x, y),
         lambda t, x, y: t.einsum("ij,jk->ik", x, y),
         (_a(0, 1, 2, 3).reshape(2, 2), _a(1, 0, inf, 1).reshape(2, 2))),
    Case("einsum-trace", lambda x: fg.einsum("ii->", x), lambda t, x: t.einsum("ii->", x),
         (_a(1, 2, 3, 4).reshape(2, 2),)),
    _both("clone", lambda x: x.clone(), _a(1, inf)),
    # To the array-api-strict test device and back: the gradient moves back unchanged.
    Case("to_device", lambda x: x.to("strict:0").to(x.device) * 1.0, lambda t, x: x * 1.0,
         (_a(1, -inf, inf, 0),)),
    Case("index_put", lambda x, v: _index_put(x, v), lambda t, x, v: _index_put(x, v),
         (_a(1, 2, 3), _a(5.0))),
    # ---------------------------------------------------------------- PyTorch's tensor methods
    _unary("floor", fg.floor, lambda t, x: t.floor(x)),
    _unary("ceil", fg.ceil, lambda t, x: t.ceil(x)),
    _unary("trunc", fg.trunc, lambda t, x: t.trunc(x)),
    _unary("round", fg.round, lambda t, x: t.round(x),
           np.concatenate([EDGES, _a(0.5, 1.5, 2.5, -0.5, -2.5)])),
    _unary("round-decimals", lambda x: fg.round(x, decimals=2),
           lambda t, x: t.round(x, decimals=2), np.concatenate([EDGES, _a(0.125, 0.135)])),
    _unary("round-negative-decimals", lambda x: x.round(decimals=-1),
           lambda t, x: t.round(x, decimals=-1), np.concatenate([EDGES, _a(15.0, 25.0)])),
    _unary("nan_to_num", fg.nan_to_num, lambda t, x: t.nan_to_num(x),
           np.concatenate([EDGES, _a(nan, -nan)])),
    _unary("nan_to_num-values", lambda x: x.nan_to_num(nan=1.0, posinf=2.0, neginf=-3.0),
           lambda t, x: t.nan_to_num(x, nan=1.0, posinf=2.0, neginf=-3.0),
           np.concatenate([EDGES, _a(nan)])),
    _unary("reciprocal", fg.reciprocal, lambda t, x: t.reciprocal(x)),
    Case("outer", fg.outer, lambda t, x, y: t.outer(x, y), (_a(0, inf, 1, -0.0), _a(2, 0, -inf))),
    Case("mm", lambda x, y: x.mm(y), lambda t, x, y: x.mm(y),
         (_a(0, 1, 1e308, -2, 3, 4).reshape(2, 3), _a(inf, 0, 1, 2, 0, 1).reshape(3, 2))),
    # Ties keep their order in a stable sort (PyTorch's with stable=True); NaN sorts last.
    _both("sort-ties", lambda x: x.sort(dim=1, stable=True).values,
          _a(1, 3, 3, 1, inf, -inf, inf, 0, 2, 2, 2, 2).reshape(3, 4)),
    _both("sort-descending-ties", lambda x: x.sort(descending=True, stable=True)[0],
          _a(1, 3, 3, 1, inf, -inf, inf, 0)),
    _both("sort-nan", lambda x: x.sort(dim=0, descending=True, stable=True).values,
          _a(nan, 1, inf, nan, -inf, 0).reshape(6, 1)),
    _both("topk", lambda x: x.topk(2, dim=1).values,
          _a(1, 3, 0, -1, inf, -inf, 5, 4).reshape(2, 4)),
    _both("topk-smallest", lambda x: x.topk(1, dim=0, largest=False).values,
          _a(1, 3, 0, -1, inf, -inf, 5, 4).reshape(4, 2)),
    _both("unbind", lambda x: x.unbind(1)[1] * 2.0, _a(1, inf, 3, 4).reshape(2, 2)),
]


def _index_put(x, v):
    y = x * 1.0
    y[1] = v[0] * 2.0
    return y


# Deliberate differences from PyTorch: case id -> why (the sweep skips them).
DIFFERENCES: dict[str, str] = {}
# Not differences in numbers, but worth saying:
# * var/std with N - correction <= 0 give PyTorch's inf/nan, but without its UserWarning:
#   no op warns from inside (tests/test_messages.py sweeps that).
# * NaN inputs are not swept: PyTorch's max_pool2d routes a window's gradient to its last
#   NaN, flowgrad's to none (NaN == NaN is false); both give NaN outputs.


# ---------------------------------------------------------------- the comparison


def _weights(shape) -> np.ndarray:
    # Fixed, non-zero, distinct weights: a zero weight would hide a NaN (0·inf).
    n = int(np.prod(shape))
    return (1.0 + 0.25 * (np.arange(n) % 7)).reshape(shape)


def _ours(case: Case, create_graph: bool):
    xs = [fg.tensor(a, requires_grad=True) for a in case.inputs]
    out = case.ours(*xs)
    # Recorded, the upstream gradient is a leaf too, so the rules' own ops (linear in it,
    # such as max_pool2d_backward) are recorded and differentiated: d/dw is the jvp.
    w = fg.tensor(_weights(out.shape), requires_grad=create_graph)
    grads = engine_grad(out, xs, grad_outputs=w, create_graph=create_graph)
    return xs + [w], out, grads


def _as_np(g, like):
    if g is None:
        return np.zeros(like.shape)
    return np.asarray(g.numpy() if hasattr(g, "numpy") else g, dtype=np.float64)


def _second(leaves, grads):
    """d/d(leaves) of Σ v·grad for fixed weights v: Hessian-vector products (and, for the
    upstream-gradient leaf, the Jacobian-vector product)."""
    total = None
    for g, x in zip(grads, leaves):
        if g is None or not g.requires_grad:
            continue
        term = (g * fg.tensor(_weights(x.shape)[::-1].copy())).sum()
        total = term if total is None else total + term
    if total is None:
        return [np.zeros(x.shape) for x in leaves]
    return [_as_np(h, x) for h, x in zip(engine_grad(total, leaves), leaves)]


def _torch_np(t, like):
    # PyTorch answers "all zeros" with a ZeroTensor that refuses .numpy().
    if t is None or t._is_zerotensor():
        return np.zeros(tuple(like.shape))
    return t.detach().numpy()


def _torch_all(case: Case, torch):
    txs = [torch.tensor(a, requires_grad=True) for a in case.inputs]
    out = case.torch(torch, *txs)
    w = torch.tensor(_weights(tuple(out.shape)), requires_grad=True)
    grads = torch.autograd.grad(out, txs, grad_outputs=w, create_graph=True, allow_unused=True)
    leaves = txs + [w]
    total = None
    for g, x in zip(grads, txs):
        if g is None or not g.requires_grad:
            continue
        term = (g * torch.tensor(_weights(tuple(x.shape))[::-1].copy())).sum()
        total = term if total is None else total + term
    if total is None:
        second = [np.zeros(tuple(x.shape)) for x in leaves]
    else:
        hs = torch.autograd.grad(total, leaves, allow_unused=True)
        second = [_torch_np(h, x) for h, x in zip(hs, leaves)]
    first = [_torch_np(g, a) for g, a in zip(grads, case.inputs)]
    return out.detach().numpy(), first, second


def _same(got, want, what, case: Case, finite_only=False):
    """Equal as PyTorch's: NaN where NaN, ±inf where ±inf, else within tolerance.

    First derivatives allow ``case.atol`` plus 1e-14 (the rounding of a sum of terms of
    size 1, such as softmax's g - s·Σg); second derivatives, compared where PyTorch's is
    finite, allow a relative 1e-6 (their formulas cancel differently) and 1e-14 absolute.
    """
    rtol, atol = (1e-6, 1e-14) if finite_only else (case.rtol, case.atol + 1e-14)
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{case.id} {what}: shape {got.shape} vs {want.shape}"
    mask = np.isfinite(want) if finite_only else np.ones(want.shape, dtype=bool)
    g, w = got[mask], want[mask]
    where = np.flatnonzero(mask)
    with np.errstate(all="ignore"):
        close = np.abs(g - w) <= atol + rtol * np.abs(w)
    bad = ~((np.isnan(g) & np.isnan(w)) | (g == w) | (np.isfinite(g) & np.isfinite(w) & close))
    if bad.any():
        idx = where[bad][:6]
        inputs = [a.ravel()[idx] if a.size == got.size else "..." for a in case.inputs]
        raise AssertionError(f"{case.id} {what}: at flat {idx.tolist()} (inputs {inputs}) got "
                             f"{got.ravel()[idx].tolist()}, PyTorch {want.ravel()[idx].tolist()}")


@pytest.mark.filterwarnings("ignore::UserWarning")  # PyTorch's own, for var with dof <= 0
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_against_pytorch(case):
    torch = pytest.importorskip("torch")
    if case.id in DIFFERENCES:
        pytest.skip(DIFFERENCES[case.id])
    t_out, t_first, t_second = _torch_all(case, torch)
    xs, out, fast = _ours(case, create_graph=False)
    _same(out.numpy(), t_out, "forward", case)
    for i, (g, tg) in enumerate(zip(fast, t_first)):
        _same(_as_np(g, xs[i]), tg, f"d/dx{i} (fast rule)", case)
    leaves, out, rule = _ours(case, create_graph=True)
    for i, (g, tg) in enumerate(zip(rule, t_first)):
        _same(_as_np(g, leaves[i]), tg, f"d/dx{i} (Tensor rule)", case)
    if case.order2:
        for i, (h, th) in enumerate(zip(_second(leaves, rule), t_second)):
            what = "jvp (d/d upstream)" if i == len(leaves) - 1 else f"d2/dx{i}"
            _same(h, th, what, case, finite_only=True)


def test_the_sweep_covers_every_differentiable_op():
    seen: set[str] = set()
    for case in CASES:
        xs, out, grads = _ours(case, create_graph=True)
        seen.update(node.op.name for node in walk(out))
        for g in grads:
            if g is not None and g.grad_fn is not None:
                seen.update(node.op.name for node in walk(g))
    wanted = {name for name, op in OPS.items() if op.differentiable}
    assert sorted(wanted - seen) == [], f"not swept: {sorted(wanted - seen)}"


# ---------------------------------------------------------------- hand-computed, always run


def _t(*values):
    return fg.tensor(np.array(values, dtype=np.float64), requires_grad=True)


def _grad(f, *values, cotangent=None):
    """d/dx of f at x, through both rules: (fast rule, Tensor rule)."""
    results = []
    for create_graph in (False, True):
        x = _t(*values)
        y = f(x)
        gy = fg.ones_like(y) if cotangent is None else fg.tensor(cotangent)
        (gx,) = engine_grad(y, [x], grad_outputs=gy, create_graph=create_graph)
        results.append(gx.numpy().tolist())
    assert results[0] == pytest.approx(results[1], nan_ok=True), results
    return results[0]


def _d2(f, value):
    return fg.grad(fg.grad(f))(fg.tensor(value, dtype=fg.float64)).item()


def test_powers_zero_and_one_at_zero():
    assert _grad(lambda x: x ** 0, 0.0, -0.0, 2.0) == [0.0, 0.0, 0.0]
    assert _grad(lambda x: x ** 1, 0.0, -0.0) == [1.0, 1.0]
    assert _grad(lambda x: x ** 2, 0.0) == [0.0]
    assert _d2(lambda x: x ** 1, 0.0) == 0.0
    assert _d2(lambda x: x ** 2, 0.0) == 2.0
    assert _d2(lambda x: x ** 0, 0.0) == 0.0
    assert _d2(lambda x: x ** 3, 0.0) == 0.0


def test_pow_at_the_edge_of_its_domain():
    assert _grad(lambda x: x ** 0.5, 0.0, -0.0, 4.0) == [math.inf, -math.inf, 0.25]
    assert np.isnan(_grad(lambda x: x ** 0.5, -1.0)[0])
    assert _grad(lambda x: x ** -1, 0.0) == [-math.inf]
    # d(b^y)/dy = b^y·log(b): 0 at b = 0 for y >= 0 (the limit), ±inf for y < 0.
    assert _grad(lambda y: fg.pow(0.0, y), 0.0, 1.0, 2.0, -1.0) == [0.0, 0.0, 0.0, -math.inf]
    assert fg.pow(fg.tensor([-0.0, 4.0]), -0.5).tolist() == [-math.inf, 0.5]


def test_division_by_zero_and_by_huge_numbers():
    assert _grad(lambda x: 1.0 / x, 0.0, -0.0) == [-math.inf, -math.inf]
    x, y = _t(1e308, 3.0), _t(1e200, 1e300)
    (x / y).sum().backward()
    # (x/y)/y, not x/(y·y) (which overflows to inf): a finite 1e-92 and -3e-600 -> -0.0
    assert y.grad.tolist() == [pytest.approx(-1e-92), -0.0]
    assert x.grad.tolist() == [pytest.approx(1e-200), pytest.approx(1e-300)]


def test_kinks_follow_pytorchs_conventions():
    assert _grad(fg.relu, 0.0, -0.0) == [0.0, 0.0]
    assert _grad(fg.abs, 0.0, -0.0) == [0.0, 0.0]
    assert _grad(lambda x: fg.clamp(x, min=-1.0, max=1.0), -1.0, 1.0, 1.5) == [1.0, 1.0, 0.0]
    assert _grad(lambda x: fg.maximum(x, fg.tensor([1.0, 0.0])), 1.0, 2.0) == [0.5, 1.0]
    assert _grad(lambda x: fg.amax(x), 3.0, 1.0, 3.0, 3.0) == [1 / 3, 0.0, 1 / 3, 1 / 3]
    assert _grad(lambda x: fg.max(x, dim=0).values, 3.0, 1.0, 3.0) == [1.0, 0.0, 0.0]
    assert _grad(fg.step, 0.0, 1.0) == [0.0, 0.0]
    assert _d2(fg.elu, 0.0) == 0.0 and _d2(fg.elu, -1.0) == pytest.approx(math.exp(-1))


def test_norms_at_zero_and_at_ties():
    assert _grad(lambda x: fg.norm(x), 0.0, 0.0) == [0.0, 0.0]
    assert _grad(lambda x: fg.norm(x, p=0.5), 0.0, 0.0) == [0.0, 0.0]
    assert _grad(lambda x: fg.norm(x, p=0.5), 0.0, 4.0) == [0.0, 1.0]
    assert _grad(lambda x: fg.norm(x, p=1), 0.0, -3.0) == [0.0, -1.0]
    assert _grad(lambda x: fg.norm(x, p=math.inf), -2.0, 2.0, 1.0) == [-0.5, 0.5, 0.0]


def test_variance_of_one_element_and_of_constants():
    assert math.isnan(fg.var(fg.tensor([2.0])).item())
    assert math.isnan(_grad(fg.var, 2.0)[0])
    assert fg.var(fg.tensor([1.0, 3.0]), correction=2).item() == math.inf
    assert _grad(fg.std, 2.0, 2.0, 2.0) == [0.0, 0.0, 0.0]
    assert _grad(lambda x: fg.std(x, correction=0), 5.0) == [0.0]


def test_softplus_at_its_threshold():
    sig20 = 1 / (1 + math.exp(-20.0))
    assert _grad(fg.softplus, 20.0, 20.5, -800.0) == [pytest.approx(sig20), 1.0, 0.0]
    assert _d2(fg.softplus, 20.0) == 0.0  # PyTorch: σ'(z) only where z < threshold
    assert _d2(fg.softplus, 19.0) == pytest.approx(math.exp(-19) / (1 + math.exp(-19)) ** 2)


def test_gelu_and_erf_far_out():
    assert _grad(fg.gelu, 40.0, -40.0, 0.0) == [1.0, 0.0, 0.5]
    assert _grad(fg.erf, 30.0, -30.0, math.inf) == [0.0, 0.0, 0.0]
    assert _grad(lambda x: fg.gelu(x, approximate="tanh"), 40.0, -40.0) == [1.0, 0.0]


def test_prod_with_zeros_to_second_order():
    assert _grad(fg.prod, 0.0, 3.0, 4.0) == [12.0, 0.0, 0.0]
    assert _grad(fg.prod, 0.0, 0.0, 4.0) == [0.0, 0.0, 0.0]
    hessian = fg.hessian(fg.prod)
    assert hessian(fg.tensor([0.0, 3.0, 4.0], dtype=fg.float64)).tolist() == \
        [[0.0, 4.0, 3.0], [4.0, 0.0, 0.0], [3.0, 0.0, 0.0]]
    assert hessian(fg.tensor([0.0, 0.0, 4.0], dtype=fg.float64)).tolist() == \
        [[0.0, 4.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    # A zero elsewhere in the tensor: the exclusive products, so inf·2 gives d/dx = 2.
    assert _grad(lambda x: fg.prod(x.reshape(2, 2), dim=1), math.inf, 2.0, 0.0, 5.0) == \
        [2.0, math.inf, 5.0, 0.0]


def test_cumsum_gradient_is_the_reversed_cumsum():
    assert _grad(lambda x: fg.cumsum(x, dim=0), 1.0, math.inf, 2.0,
                 cotangent=np.array([1.0, 2.0, 3.0])) == [6.0, 5.0, 3.0]


def test_masks_of_minus_inf_in_softmax_logsumexp_and_losses():
    x = fg.tensor([[0.0, -math.inf], [0.0, 1.0]], dtype=fg.float64, requires_grad=True)
    lse = fg.logsumexp(x, dim=1)
    lse.sum().backward()
    assert lse.tolist() == [0.0, pytest.approx(1.31326169)]
    assert x.grad.tolist()[0] == [1.0, 0.0]
    g = _grad(lambda x: (fg.softmax(x, dim=0) * fg.tensor([1.0, 2.0, 3.0])).sum(),
              0.0, -math.inf, 1.0)
    assert g[1] == 0.0 and g[0] == pytest.approx(-g[2])
    # A row of nothing but -inf: -inf forward; NaN gradient, as PyTorch.
    assert np.isnan(_grad(lambda x: fg.logsumexp(x, dim=0), -math.inf, -math.inf)).all()
    z = fg.tensor([[1e4, -1e4], [1e4, -1e4]], dtype=fg.float64, requires_grad=True)
    loss = F.cross_entropy(z, fg.tensor([0, 1]), reduction="none")
    loss.sum().backward()
    assert loss.tolist() == [0.0, 20000.0]
    assert z.grad.tolist() == [[0.0, 0.0], [1.0, -1.0]]


def test_max_pool_window_of_minus_inf_picks_its_first_real_element():
    x = fg.tensor(np.full((1, 1, 2, 2), -math.inf), requires_grad=True)
    y = F.max_pool2d(x, 2, padding=1)
    y.sum().backward()
    assert y.numpy().ravel().tolist() == [-math.inf] * 4
    assert x.grad.numpy().ravel().tolist() == [1.0, 1.0, 1.0, 1.0]
