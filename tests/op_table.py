"""The one table of differentiable ops that ``test_ops.py`` runs every check over.

Each :class:`OpSpec` names a registered op, a function of the *differentiable* inputs only
(integer indices, masks, class targets and other constants are closed over), the shapes of
those inputs, the domain they are drawn from, the NumPy forward used as the reference, and
the highest derivative order to check.

Domains keep ``log``/``sqrt``/``pow`` bases positive and keep inputs at least 0.2 away from
kinks (``abs``, ``relu``, ``step``, ``clamp`` bounds), so central differences are valid.
Adding an op means adding rows here; ``test_ops.py`` picks them up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

import flowgrad as fg
import flowgrad.nn.functional as F

Interval = tuple[float, float]
Domain = tuple[Interval, ...]

REAL: Domain = ((-2.0, 2.0),)
POS: Domain = ((0.5, 2.0),)
# Off the kink at 0 (abs, relu, leaky_relu, step, division by x, the boolean mask x > 0).
OFF0: Domain = ((-2.0, -0.2), (0.2, 2.0))
# Off the clamp bounds +-0.5 used below: some values clipped, some passed through.
OFFCLAMP: Domain = ((-1.5, -0.7), (-0.3, 0.3), (0.7, 1.5))


@dataclass(frozen=True)
class OpSpec:
    """One row of the op table.

    Attributes:
        name: the registered op name (a key of ``flowgrad.ops.registry.OPS``) this row exercises.
        fn: ``fn(*tensors) -> Tensor`` over the differentiable inputs.
        shapes: one shape per differentiable input.
        domain: the intervals inputs are drawn from, one ``Domain`` for every input or a list
            with one per input.
        reference: the NumPy forward, ``reference(*arrays) -> ndarray``.
        order: the highest derivative order that is checked (1 or 2).
        label: distinguishes rows of the same op in test ids.
    """

    name: str
    fn: Callable
    shapes: tuple[tuple[int, ...], ...]
    domain: Domain | list[Domain]
    reference: Callable
    order: int = 2
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}-{self.label}" if self.label else self.name

    def domain_of(self, i: int) -> Domain:
        return self.domain[i] if isinstance(self.domain, list) else self.domain

    @property
    def size(self) -> int:
        return int(sum(np.prod(s, dtype=np.int64) for s in self.shapes))


def sample(domain: Domain, shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Float64 values drawn uniformly from the union of the domain's intervals."""
    lo = np.array([a for a, _ in domain])
    width = np.array([b - a for a, b in domain])
    which = rng.choice(len(domain), size=tuple(shape), p=width / width.sum())
    return lo[which] + rng.uniform(size=tuple(shape)) * width[which]


def sample_inputs(spec: OpSpec, rng: np.random.Generator) -> list[np.ndarray]:
    return [sample(spec.domain_of(i), s, rng) for i, s in enumerate(spec.shapes)]


# ---------------------------------------------------------------- NumPy references


def _np_logsumexp(x, dim, keepdim=False):
    m = np.max(x, axis=dim, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=dim, keepdims=True)) + m
    return out if keepdim else np.squeeze(out, axis=dim)


def _np_softmax(x, dim):
    e = np.exp(x - np.max(x, axis=dim, keepdims=True))
    return e / np.sum(e, axis=dim, keepdims=True)


def _np_log_softmax(x, dim):
    return x - _np_logsumexp(x, dim, keepdim=True)


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_cross_entropy(z, y, reduction):
    losses = _np_logsumexp(z, 1) - z[np.arange(len(y)), y]
    return {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](losses)


def _np_bce_logits(z, t, reduction):
    losses = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    return {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](losses)


def _np_sum_to(x, shape):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1
    )
    return np.sum(x, axis=axes, keepdims=True).reshape(shape)


def _np_index_add(x, index, src):
    out = x.copy()
    np.add.at(out, index, src)
    return out


def _np_index_put(x, index, value):
    out = x.copy()
    out[index] = value
    return out


def _elsewhere(t):
    """A device other than ``t``'s: the test device from the cpu, else the cpu."""
    return "strict:0" if t.device.type == "cpu" else "cpu"


# Constants closed over by the rows below; fixed so every run sees the same table.
_C = np.random.default_rng(20240601)
IDX_REPEAT = np.array([0, 2, 0, 1, 2])
IDX_PUT = np.array([3, 1])
IDX_PAIR = (np.array([0, 1, 1, 2]), np.array([3, 3, 0, 3]))
NP_MASK = _C.random((3, 4)) > 0.5
NP_MASK[0, 0], NP_MASK[0, 1] = True, False  # never all-False or all-True
COND = _C.random((2, 3)) > 0.5
COND[0, 0], COND[0, 1] = True, False
TARGET = np.array([0, 2, 1, 2], dtype=np.int64)
TARGET_BIG = _C.integers(0, 10, size=64)
# float32 so that a float32 run stays float32 and a float64 run stays float64
BCE_TARGET = np.array([[0.0, 1.0, 0.25], [1.0, 0.5, 0.0]], dtype=np.float32)


OP_TABLE: list[OpSpec] = [
    # ---------------------------------------------------------------- arithmetic
    OpSpec("add", lambda a, b: a + b, ((3, 1), (1, 4)), REAL, lambda a, b: a + b, label="bcast"),
    OpSpec("add", lambda a, b: fg.add(a, b), ((2, 3), (3,)), REAL, np.add, label="fn-row"),
    OpSpec("add", lambda a: a + 1.5, ((2, 3),), REAL, lambda a: a + 1.5, label="scalar"),
    OpSpec("add", lambda a: 2.5 + a, ((3,),), REAL, lambda a: 2.5 + a, label="rscalar"),
    OpSpec("add", lambda a, b: a + b, ((), (2, 3)), REAL, np.add, label="0d"),
    OpSpec("sub", lambda a, b: a - b, ((3, 1), (1, 4)), REAL, np.subtract, label="bcast"),
    OpSpec("sub", lambda a: 3.0 - a, ((2, 3),), REAL, lambda a: 3.0 - a, label="rscalar"),
    OpSpec("sub", lambda a, b: fg.sub(a, b), ((4,), (2, 1, 4)), REAL, np.subtract, label="fn"),
    OpSpec("mul", lambda a, b: a * b, ((3, 1), (1, 4)), REAL, np.multiply, label="bcast"),
    OpSpec("mul", lambda a, b: a * b, ((2, 3), (2, 3)), REAL, np.multiply, label="same"),
    OpSpec("mul", lambda a: a * 0.5, ((2, 3),), REAL, lambda a: a * 0.5, label="scalar"),
    OpSpec("mul", lambda a, b: fg.mul(a, b), ((2, 3), ()), REAL, np.multiply, label="0d"),
    OpSpec("div", lambda a, b: a / b, ((3, 1), (1, 4)), [REAL, OFF0], np.divide, label="bcast"),
    OpSpec("div", lambda a: 1.0 / a, ((2, 3),), OFF0, lambda a: 1.0 / a, label="rscalar"),
    OpSpec("div", lambda a: fg.div(a, 4.0), ((5,),), REAL, lambda a: a / 4.0, label="scalar"),
    OpSpec("pow", lambda a: a**3, ((2, 3),), REAL, lambda a: a**3, label="cube"),
    OpSpec("pow", lambda a: a**0.5, ((4,),), POS, np.sqrt, label="half"),
    OpSpec("pow", lambda a: a**-1.5, ((4,),), POS, lambda a: a**-1.5, label="negexp"),
    OpSpec("pow", lambda a, b: a**b, ((2, 3), (2, 3)), [POS, REAL], np.power, label="tensor"),
    OpSpec("pow", lambda a, b: fg.pow(a, b), ((3, 1), (4,)), [POS, REAL], np.power, label="bcast"),
    OpSpec("pow", lambda b: 2.0**b, ((3,),), REAL, lambda b: 2.0**b, label="rscalar"),
    OpSpec("neg", lambda a: -a, ((2, 3),), REAL, np.negative),
    OpSpec("neg", lambda a: fg.neg(a), ((),), REAL, np.negative, label="0d"),
    # matmul: 1-D/2-D combinations, batched and broadcast batches
    OpSpec("matmul", lambda a, b: a @ b, ((4,), (4,)), REAL, np.matmul, label="1d1d"),
    OpSpec("matmul", lambda a, b: a @ b, ((4,), (4, 3)), REAL, np.matmul, label="1d2d"),
    OpSpec("matmul", lambda a, b: a @ b, ((3, 4), (4,)), REAL, np.matmul, label="2d1d"),
    OpSpec("matmul", lambda a, b: fg.matmul(a, b), ((3, 4), (4, 2)), REAL, np.matmul, label="2d"),
    OpSpec("matmul", lambda a, b: a @ b, ((2, 3, 4), (4, 2)), REAL, np.matmul, label="batch"),
    OpSpec(
        "matmul", lambda a, b: a @ b, ((2, 1, 2, 3), (3, 3, 2)), REAL, np.matmul, label="bcast"
    ),
    OpSpec("matmul", lambda a, b: a @ b, ((4,), (2, 4, 3)), REAL, np.matmul, label="1d3d"),
    OpSpec("matmul", lambda a, b: a @ b, ((24, 20), (20, 16)), REAL, np.matmul, label="large"),
    # ---------------------------------------------------------------- elementwise
    OpSpec("exp", lambda a: a.exp(), ((2, 3),), REAL, np.exp),
    OpSpec("exp", lambda a: fg.exp(a), ((30, 20),), REAL, np.exp, label="large"),
    OpSpec("log", lambda a: a.log(), ((2, 3),), POS, np.log),
    OpSpec("sqrt", lambda a: fg.sqrt(a), ((2, 3),), POS, np.sqrt),
    OpSpec("abs", lambda a: a.abs(), ((2, 3),), OFF0, np.abs),
    OpSpec("sin", lambda a: fg.sin(a), ((2, 3),), REAL, np.sin),
    OpSpec("cos", lambda a: a.cos(), ((2, 3),), REAL, np.cos),
    OpSpec("tanh", lambda a: a.tanh(), ((2, 3),), REAL, np.tanh),
    OpSpec("sigmoid", lambda a: fg.sigmoid(a), ((2, 3),), REAL, _np_sigmoid),
    OpSpec("relu", lambda a: a.relu(), ((2, 3),), OFF0, lambda a: np.maximum(a, 0)),
    OpSpec(
        "leaky_relu",
        lambda a: fg.leaky_relu(a),
        ((2, 3),),
        OFF0,
        lambda a: np.where(a > 0, a, 0.01 * a),
    ),
    OpSpec(
        "leaky_relu",
        lambda a: fg.leaky_relu(a, negative_slope=0.2),
        ((2, 3),),
        OFF0,
        lambda a: np.where(a > 0, a, 0.2 * a),
        label="slope",
    ),
    OpSpec("step", lambda a: fg.step(a), ((2, 3),), OFF0, lambda a: (a > 0).astype(a.dtype)),
    OpSpec(
        "clamp",
        lambda a: fg.clamp(a, min=-0.5, max=0.5),
        ((3, 4),),
        OFFCLAMP,
        lambda a: np.clip(a, -0.5, 0.5),
        label="both",
    ),
    OpSpec(
        "clamp", lambda a: a.clamp(min=-0.5), ((3, 4),), OFFCLAMP,
        lambda a: np.maximum(a, -0.5), label="min",
    ),
    OpSpec(
        "clamp", lambda a: fg.clamp(a, max=0.5), ((3, 4),), OFFCLAMP,
        lambda a: np.minimum(a, 0.5), label="max",
    ),
    OpSpec("maximum", lambda a, b: fg.maximum(a, b), ((3, 1), (1, 4)), REAL, np.maximum,
           label="bcast"),
    OpSpec("maximum", lambda a, b: fg.maximum(a, b), ((2, 3), (2, 3)), REAL, np.maximum),
    OpSpec("minimum", lambda a, b: fg.minimum(a, b), ((2, 3), (3,)), REAL, np.minimum,
           label="bcast"),
    OpSpec(
        "where",
        lambda a, b: fg.where(fg.tensor(COND), a, b),
        ((2, 3), (3,)),
        REAL,
        lambda a, b: np.where(COND, a, b),
        label="bcast",
    ),
    OpSpec(
        "where",
        lambda a: fg.where(a > 0, a, a * a),
        ((2, 3),),
        OFF0,
        lambda a: np.where(a > 0, a, a * a),
        label="selfmask",
    ),
    # ---------------------------------------------------------------- reductions
    OpSpec("sum", lambda a: a.sum(), ((2, 3, 4),), REAL, np.sum, label="all"),
    OpSpec("sum", lambda a: fg.sum(a, dim=1), ((2, 3, 4),), REAL, lambda a: a.sum(1), label="d1"),
    OpSpec(
        "sum", lambda a: a.sum(dim=-1, keepdim=True), ((2, 3, 4),), REAL,
        lambda a: a.sum(-1, keepdims=True), label="neg-keep",
    ),
    OpSpec(
        "sum", lambda a: fg.sum(a, dim=(0, -1)), ((2, 3, 4),), REAL,
        lambda a: a.sum((0, 2)), label="tuple",
    ),
    OpSpec(
        "sum", lambda a: a.sum(dim=None, keepdim=True), ((2, 3),), REAL,
        lambda a: a.sum(keepdims=True), label="none-keep",
    ),
    OpSpec("sum", lambda a: a.sum(dim=0), ((40, 30),), REAL, lambda a: a.sum(0), label="large"),
    OpSpec("mean", lambda a: a.mean(), ((2, 3, 4),), REAL, np.mean, label="all"),
    OpSpec(
        "mean", lambda a: fg.mean(a, dim=(1, 2), keepdim=True), ((2, 3, 4),), REAL,
        lambda a: a.mean((1, 2), keepdims=True), label="tuple-keep",
    ),
    OpSpec("mean", lambda a: a.mean(dim=-2), ((2, 3, 4),), REAL, lambda a: a.mean(-2),
           label="neg"),
    OpSpec("amax", lambda a: a.amax(), ((3, 4),), REAL, np.max, label="all"),
    OpSpec("amax", lambda a: fg.amax(a, dim=1), ((3, 4),), REAL, lambda a: a.max(1), label="d1"),
    OpSpec(
        "amax", lambda a: a.amax(dim=(0, -1), keepdim=True), ((2, 3, 4),), REAL,
        lambda a: a.max((0, 2), keepdims=True), label="tuple-keep",
    ),
    OpSpec("amin", lambda a: fg.amin(a), ((3, 4),), REAL, np.min, label="all"),
    OpSpec(
        "amin", lambda a: a.amin(dim=-1, keepdim=True), ((3, 4),), REAL,
        lambda a: a.min(-1, keepdims=True), label="neg-keep",
    ),
    OpSpec(
        "logsumexp", lambda a: fg.logsumexp(a, dim=-1), ((3, 4),), REAL,
        lambda a: _np_logsumexp(a, -1), label="neg",
    ),
    OpSpec(
        "logsumexp", lambda a: a.logsumexp(dim=(0, 1), keepdim=True), ((2, 3, 4),), REAL,
        lambda a: _np_logsumexp(a, (0, 1), keepdim=True), label="tuple-keep",
    ),
    OpSpec("softmax", lambda a: fg.softmax(a, dim=-1), ((3, 4),), REAL,
           lambda a: _np_softmax(a, -1), label="neg"),
    OpSpec("softmax", lambda a: a.softmax(dim=0), ((3, 4),), REAL,
           lambda a: _np_softmax(a, 0), label="d0"),
    OpSpec("softmax", lambda a: fg.softmax(a, dim=1), ((16, 25),), REAL,
           lambda a: _np_softmax(a, 1), label="large"),
    OpSpec("log_softmax", lambda a: fg.log_softmax(a, dim=1), ((3, 4),), REAL,
           lambda a: _np_log_softmax(a, 1)),
    OpSpec("log_softmax", lambda a: a.log_softmax(dim=-1), ((2, 2, 3),), REAL,
           lambda a: _np_log_softmax(a, -1), label="3d"),
    # ---------------------------------------------------------------- shape
    OpSpec("reshape", lambda a: a.reshape(2, -1), ((2, 3, 2),), REAL,
           lambda a: a.reshape(2, -1), label="neg1"),
    OpSpec("reshape", lambda a: fg.reshape(a, (3, 4)), ((2, 6),), REAL,
           lambda a: a.reshape(3, 4), label="tuple"),
    OpSpec("transpose", lambda a: fg.transpose(a, 0, -1), ((2, 3, 4),), REAL,
           lambda a: np.swapaxes(a, 0, -1)),
    OpSpec("transpose", lambda a: a.T, ((2, 3),), REAL, lambda a: a.T, label="T"),
    OpSpec("transpose", lambda a: a.mT, ((2, 3, 4),), REAL, lambda a: np.swapaxes(a, -1, -2),
           label="mT"),
    OpSpec("permute", lambda a: fg.permute(a, 2, 0, 1), ((2, 3, 4),), REAL,
           lambda a: a.transpose(2, 0, 1)),
    OpSpec("getitem", lambda a: a[1:3, ::2], ((4, 5),), REAL, lambda a: a[1:3, ::2],
           label="slice"),
    OpSpec("getitem", lambda a: a[..., -1], ((2, 3, 4),), REAL, lambda a: a[..., -1],
           label="ellipsis"),
    OpSpec("getitem", lambda a: a[None, 1], ((3, 4),), REAL, lambda a: a[None, 1],
           label="newaxis"),
    OpSpec("getitem", lambda a: a[IDX_REPEAT], ((3, 4),), REAL, lambda a: a[IDX_REPEAT],
           label="int-repeat"),
    OpSpec("getitem", lambda a: a[[0, 2, 0]], ((3, 4),), REAL, lambda a: a[[0, 2, 0]],
           label="list-repeat"),
    OpSpec("getitem", lambda a: a[fg.tensor(IDX_REPEAT)], ((3, 2),), REAL,
           lambda a: a[IDX_REPEAT], label="tensor-repeat"),
    OpSpec("getitem", lambda a: a[IDX_PAIR], ((3, 4),), REAL, lambda a: a[IDX_PAIR],
           label="pair-repeat"),
    OpSpec("getitem", lambda a: a[:, IDX_REPEAT], ((2, 3),), REAL, lambda a: a[:, IDX_REPEAT],
           label="slice-int"),
    OpSpec("getitem", lambda a: a[a > 0], ((3, 4),), OFF0, lambda a: a[a > 0],
           label="tensor-mask"),
    OpSpec("getitem", lambda a: a[NP_MASK], ((3, 4),), REAL, lambda a: a[NP_MASK],
           label="np-mask"),
    OpSpec("getitem", lambda a: a[TARGET_BIG], ((12, 30),), REAL, lambda a: a[TARGET_BIG],
           label="large"),
    OpSpec("cat", lambda a, b: fg.cat([a, b], dim=-1), ((2, 3), (2, 2)), REAL,
           lambda a, b: np.concatenate([a, b], axis=-1), label="neg"),
    OpSpec("cat", lambda a, b, c: fg.cat([a, b, c]), ((1, 3), (2, 3), (1, 3)), REAL,
           lambda a, b, c: np.concatenate([a, b, c]), label="d0"),
    OpSpec("stack", lambda a, b, c: fg.stack([a, b, c], dim=-1), ((2, 3),) * 3, REAL,
           lambda a, b, c: np.stack([a, b, c], axis=-1), label="neg"),
    OpSpec("stack", lambda a, b: fg.stack((a, b)), ((3,), (3,)), REAL,
           lambda a, b: np.stack([a, b]), label="d0"),
    OpSpec("squeeze", lambda a: a.squeeze(), ((1, 3, 1),), REAL, np.squeeze, label="all"),
    OpSpec("squeeze", lambda a: fg.squeeze(a, 1), ((2, 1, 3),), REAL,
           lambda a: a.squeeze(1), label="d1"),
    OpSpec("unsqueeze", lambda a: a.unsqueeze(-1), ((2, 3),), REAL,
           lambda a: a[..., None], label="neg"),
    OpSpec("unsqueeze", lambda a: fg.unsqueeze(a, 0), ((3,),), REAL, lambda a: a[None]),
    OpSpec("flatten", lambda a: a.flatten(), ((2, 3, 2),), REAL, lambda a: a.reshape(-1)),
    OpSpec("flatten", lambda a: fg.flatten(a, 1), ((2, 3, 2),), REAL,
           lambda a: a.reshape(2, -1), label="start1"),
    OpSpec("flatten", lambda a: fg.flatten(a, start_dim=0, end_dim=1), ((2, 3, 2),), REAL,
           lambda a: a.reshape(6, 2), label="0to1"),
    OpSpec("sum_to", lambda a: fg.sum_to(a, (3, 1)), ((2, 3, 4),), REAL,
           lambda a: _np_sum_to(a, (3, 1))),
    OpSpec("broadcast_to", lambda a: fg.broadcast_to(a, (2, 3, 4)), ((3, 1),), REAL,
           lambda a: np.broadcast_to(a, (2, 3, 4))),
    OpSpec(
        "index_add",
        lambda a, s: fg.index_add(a, s, index=IDX_REPEAT),
        ((3, 2), (5, 2)),
        REAL,
        lambda a, s: _np_index_add(a, IDX_REPEAT, s),
    ),
    OpSpec("clone", lambda a: a.clone() * 1.0, ((2, 3),), REAL, lambda a: a.copy()),
    # To another device and back (cpu <-> array-api-strict's simulated device): the
    # gradient moves back along both copies.
    OpSpec("to_device", lambda a: a.to(_elsewhere(a)).to(a.device) * 1.0, ((2, 3),), REAL,
           lambda a: a.copy(), label="roundtrip"),
    OpSpec(
        "index_put",
        lambda a, v: fg.index_put(a, v, index=(slice(None), IDX_PUT)),
        ((3, 4), (3, 2)),
        REAL,
        lambda a, v: _np_index_put(a, (slice(None), IDX_PUT), v),
    ),
    OpSpec(
        "index_put",
        lambda a: fg.index_put(a, 2.5, index=NP_MASK),
        ((3, 4),),
        REAL,
        lambda a: _np_index_put(a, NP_MASK, 2.5),
        label="mask-scalar",
    ),
    OpSpec("cast", lambda a: a.astype(fg.float64), ((2, 3),), REAL, lambda a: a.astype(np.float64)),
    # ---------------------------------------------------------------- fused NN ops
    OpSpec("linear", lambda x, w, b: fg.linear(x, w, b), ((4, 3), (2, 3), (2,)), REAL,
           lambda x, w, b: x @ w.T + b),
    OpSpec("linear", lambda x, w: fg.linear(x, w), ((4, 3), (2, 3)), REAL,
           lambda x, w: x @ w.T, label="nobias"),
    OpSpec("linear", lambda x, w, b: fg.linear(x, w, b), ((2, 4, 3), (2, 3), (2,)), REAL,
           lambda x, w, b: x @ w.T + b, label="batch"),
    OpSpec(
        "cross_entropy", lambda z: fg.cross_entropy(z, fg.tensor(TARGET)), ((4, 3),), REAL,
        lambda z: _np_cross_entropy(z, TARGET, "mean"), label="mean",
    ),
    OpSpec(
        "cross_entropy", lambda z: fg.cross_entropy(z, fg.tensor(TARGET), reduction="sum"),
        ((4, 3),), REAL, lambda z: _np_cross_entropy(z, TARGET, "sum"), label="sum",
    ),
    OpSpec(
        "cross_entropy", lambda z: fg.cross_entropy(z, fg.tensor(TARGET), reduction="none"),
        ((4, 3),), REAL, lambda z: _np_cross_entropy(z, TARGET, "none"), label="none",
    ),
    OpSpec(
        "cross_entropy", lambda z: fg.cross_entropy(z, fg.tensor(TARGET_BIG)), ((64, 10),), REAL,
        lambda z: _np_cross_entropy(z, TARGET_BIG, "mean"), label="large",
    ),
    OpSpec(
        "binary_cross_entropy_with_logits",
        lambda z: fg.binary_cross_entropy_with_logits(z, fg.tensor(BCE_TARGET)),
        ((2, 3),), REAL, lambda z: _np_bce_logits(z, BCE_TARGET, "mean"), label="mean",
    ),
    OpSpec(
        "binary_cross_entropy_with_logits",
        lambda z: fg.binary_cross_entropy_with_logits(z, fg.tensor(BCE_TARGET), reduction="sum"),
        ((2, 3),), REAL, lambda z: _np_bce_logits(z, BCE_TARGET, "sum"), label="sum",
    ),
    OpSpec(
        "binary_cross_entropy_with_logits",
        lambda z: fg.binary_cross_entropy_with_logits(z, fg.tensor(BCE_TARGET), reduction="none"),
        ((2, 3),), REAL, lambda z: _np_bce_logits(z, BCE_TARGET, "none"), label="none",
    ),
]

NON_DIFFERENTIABLE = ("lt", "le", "gt", "ge", "eq", "ne", "sign")


# ---------------------------------------------------------------- the op library of real models
_np_erf = np.vectorize(math.erf, otypes=[np.float64])


def _erf_ref(a):
    return _np_erf(a).astype(a.dtype)


def _gelu_ref(a):
    return (a * 0.5 * (1.0 + _np_erf(a / math.sqrt(2.0)))).astype(a.dtype)


def _gelu_tanh_ref(a):
    return 0.5 * a * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (a + 0.044715 * a**3)))


def _softplus_ref(a, beta=1.0, threshold=20.0):
    return np.where(a * beta > threshold, a, np.log1p(np.exp(a * beta)) / beta).astype(a.dtype)


def _np_norm(a, p, axis=None, keepdims=False):
    if p == np.inf:
        return np.max(np.abs(a), axis=axis, keepdims=keepdims)
    return np.sum(np.abs(a) ** p, axis=axis, keepdims=keepdims) ** (1.0 / p)


def _np_select(a, axis, keepdims, pick):
    idx = np.expand_dims(pick(a, axis=axis), axis)
    out = np.take_along_axis(a, idx, axis=axis)
    return out if keepdims else np.squeeze(out, axis)


def _np_repeat(a, sizes):
    return np.tile(a, sizes)


GATHER_IDX = np.array([[0, 2, 2, 1], [1, 1, 0, 0]])  # repeats within rows
SELECT_IDX = np.array([2, 0, 2])
MASK_34 = NP_MASK
# Away from the softplus threshold kink at beta·x = threshold (x = 0.75 for beta 2, th 1.5).
OFFSOFT: Domain = ((-2.0, 0.6), (0.9, 2.0))

OP_TABLE += [
    # ---------------------------------------------------------------- elementwise
    OpSpec("log1p", lambda a: fg.log1p(a), ((2, 3),), ((-0.5, 2.0),), np.log1p),
    OpSpec("expm1", lambda a: a.expm1(), ((2, 3),), REAL, np.expm1),
    OpSpec("square", lambda a: fg.square(a), ((2, 3),), REAL, np.square),
    OpSpec("rsqrt", lambda a: a.rsqrt(), ((2, 3),), POS, lambda a: 1 / np.sqrt(a)),
    OpSpec("softplus", lambda a: fg.softplus(a), ((2, 3),), REAL, _softplus_ref),
    OpSpec("softplus", lambda a: fg.softplus(a, beta=2.0, threshold=1.5), ((3, 4),), OFFSOFT,
           lambda a: _softplus_ref(a, 2.0, 1.5), label="threshold"),
    OpSpec("silu", lambda a: fg.silu(a), ((2, 3),), REAL, lambda a: a / (1 + np.exp(-a))),
    OpSpec("gelu", lambda a: fg.gelu(a), ((2, 3),), ((-3.0, 3.0),), _gelu_ref),
    OpSpec("gelu", lambda a: a.gelu(approximate="tanh"), ((2, 3),), ((-3.0, 3.0),),
           _gelu_tanh_ref, label="tanh"),
    OpSpec("elu", lambda a: fg.elu(a), ((2, 3),), OFF0,
           lambda a: np.where(a > 0, a, np.expm1(a))),
    OpSpec("elu", lambda a: fg.elu(a, alpha=0.5), ((2, 3),), OFF0,
           lambda a: np.where(a > 0, a, 0.5 * np.expm1(a)), label="alpha"),
    OpSpec("erf", lambda a: fg.erf(a), ((3, 4),), ((-3.0, 3.0),), _erf_ref),
    OpSpec("erf", lambda a: a.erf(), ((20, 15),), ((-7.0, 7.0),), _erf_ref, label="large"),
    # ---------------------------------------------------------------- reductions
    OpSpec("prod", lambda a: fg.prod(a), ((2, 3),), OFF0, np.prod, label="all"),
    OpSpec("prod", lambda a: a.prod(dim=1), ((3, 4),), OFF0, lambda a: a.prod(1), label="d1"),
    OpSpec("prod", lambda a: a.prod(dim=-1, keepdim=True), ((2, 3),), OFF0,
           lambda a: a.prod(-1, keepdims=True), label="keep"),
    OpSpec("var", lambda a: fg.var(a), ((3, 4),), REAL, lambda a: np.var(a, ddof=1),
           label="all"),
    OpSpec("var", lambda a: a.var(dim=1, correction=0), ((3, 4),), REAL,
           lambda a: np.var(a, axis=1), label="d1-biased"),
    OpSpec("var", lambda a: fg.var(a, dim=(0, 2), keepdim=True), ((2, 3, 4),), REAL,
           lambda a: np.var(a, axis=(0, 2), ddof=1, keepdims=True), label="tuple-keep"),
    OpSpec("std", lambda a: fg.std(a), ((3, 4),), REAL, lambda a: np.std(a, ddof=1),
           label="all"),
    OpSpec("std", lambda a: a.std(dim=-1, keepdim=True), ((3, 4),), REAL,
           lambda a: np.std(a, axis=-1, ddof=1, keepdims=True), label="keep"),
    OpSpec("std", lambda a: fg.std(a, dim=0, correction=0), ((3, 4),), REAL,
           lambda a: np.std(a, axis=0), label="biased"),
    OpSpec("norm", lambda a: fg.norm(a), ((3, 4),), REAL, lambda a: _np_norm(a, 2),
           label="2-all"),
    OpSpec("norm", lambda a: a.norm(dim=1, keepdim=True), ((3, 4),), REAL,
           lambda a: _np_norm(a, 2, 1, True), label="2-keep"),
    OpSpec("norm", lambda a: fg.norm(a, p=1, dim=-1), ((3, 4),), OFF0,
           lambda a: _np_norm(a, 1, -1), label="1"),
    OpSpec("norm", lambda a: fg.norm(a, float("inf"), dim=0), ((3, 4),), REAL,
           lambda a: _np_norm(a, np.inf, 0), label="inf"),
    OpSpec("norm", lambda a: fg.norm(a, p=3, dim=(0, 1)), ((3, 4),), OFF0,
           lambda a: _np_norm(a, 3, (0, 1)), label="3"),
    OpSpec("cumsum", lambda a: fg.cumsum(a, dim=1), ((3, 4),), REAL, lambda a: a.cumsum(1)),
    OpSpec("cumsum", lambda a: a.cumsum(dim=-1), ((2, 3, 4),), REAL,
           lambda a: a.cumsum(-1), label="neg"),
    # ---------------------------------------------------------------- selections
    OpSpec("max", lambda a: fg.max(a), ((3, 4),), REAL, np.max, label="all"),
    OpSpec("max", lambda a: fg.max(a, 1).values, ((3, 4),), REAL,
           lambda a: _np_select(a, 1, False, np.argmax), label="d1"),
    OpSpec("max", lambda a: a.max(dim=0, keepdim=True)[0], ((3, 4),), REAL,
           lambda a: _np_select(a, 0, True, np.argmax), label="keep"),
    OpSpec("min", lambda a: a.min(), ((3, 4),), REAL, np.min, label="all"),
    OpSpec("min", lambda a: fg.min(a, dim=-1).values, ((2, 3, 4),), REAL,
           lambda a: _np_select(a, -1, False, np.argmin), label="neg"),
    # ---------------------------------------------------------------- shape and indexing
    OpSpec("flip", lambda a: fg.flip(a, (0, 2)), ((2, 3, 4),), REAL,
           lambda a: np.flip(a, (0, 2))),
    OpSpec("flip", lambda a: a.flip(-1), ((3, 4),), REAL, lambda a: a[:, ::-1], label="method"),
    OpSpec("expand", lambda a: a.expand(2, -1, 4), ((3, 1),), REAL,
           lambda a: np.broadcast_to(a, (2, 3, 4))),
    OpSpec("expand", lambda a: fg.expand(a, (3, 4)), ((4,),), REAL,
           lambda a: np.broadcast_to(a, (3, 4)), label="tuple"),
    OpSpec("repeat", lambda a: a.repeat(2, 3), ((2, 3),), REAL, lambda a: np.tile(a, (2, 3))),
    OpSpec("repeat", lambda a: fg.repeat(a, (2, 1, 2)), ((3,),), REAL,
           lambda a: np.tile(a, (2, 1, 2)), label="newdims"),
    OpSpec("gather", lambda a: fg.gather(a, 1, fg.tensor(GATHER_IDX)), ((2, 3),), REAL,
           lambda a: np.take_along_axis(a, GATHER_IDX, 1)),
    OpSpec("gather", lambda a: a.gather(0, GATHER_IDX[:, :3].T[:, :1] % 3), ((3, 2),), REAL,
           lambda a: np.take_along_axis(a[:, :1], GATHER_IDX[:, :3].T[:, :1] % 3, 0),
           label="smaller"),
    OpSpec("index_select", lambda a: fg.index_select(a, 0, SELECT_IDX), ((3, 4),), REAL,
           lambda a: a[SELECT_IDX]),
    OpSpec("index_select", lambda a: a.index_select(-1, fg.tensor(SELECT_IDX)), ((2, 3),),
           REAL, lambda a: a[:, SELECT_IDX], label="neg"),
    OpSpec("masked_fill", lambda a: fg.masked_fill(a, fg.tensor(MASK_34), -1.5), ((3, 4),), REAL,
           lambda a: np.where(MASK_34, -1.5, a)),
    OpSpec("masked_fill", lambda a, v: a.masked_fill(fg.tensor(MASK_34[0]), v), ((3, 4), ()),
           REAL, lambda a, v: np.where(MASK_34[0], v, a), label="tensor-value"),
    OpSpec("tril", lambda a: fg.tril(a), ((3, 4),), REAL, np.tril),
    OpSpec("tril", lambda a: a.tril(diagonal=-1), ((2, 3, 3),), REAL,
           lambda a: np.tril(a, -1), label="batch"),
    OpSpec("triu", lambda a: fg.triu(a, 1), ((4, 3),), REAL, lambda a: np.triu(a, 1)),
    OpSpec("einsum", lambda a, b: fg.einsum("ij,jk->ik", a, b), ((2, 3), (3, 4)), REAL,
           lambda a, b: np.einsum("ij,jk->ik", a, b), label="matmul"),
    OpSpec("einsum", lambda a, b: fg.einsum("bij,bjk", [a, b]), ((2, 2, 3), (2, 3, 2)), REAL,
           lambda a, b: np.einsum("bij,bjk", a, b), label="implicit"),
    OpSpec("einsum", lambda a: fg.einsum("ii->i", a), ((3, 3),), REAL,
           lambda a: np.einsum("ii->i", a), label="diag"),
    OpSpec("einsum", lambda a, b: fg.einsum("...ij,j->...", a, b), ((2, 1, 3, 4), (4,)), REAL,
           lambda a, b: np.einsum("...ij,j->...", a, b), label="ellipsis"),
    OpSpec("einsum", lambda a, b: fg.einsum("...ij,...jk->...ik", a, b),
           ((2, 1, 2, 3), (3, 3, 2)), REAL,
           lambda a, b: np.einsum("...ij,...jk->...ik", a, b), label="bcast"),
    OpSpec("einsum", lambda a, b, c: fg.einsum("i,j,k->ijk", a, b, c), ((2,), (3,), (2,)),
           REAL, lambda a, b, c: np.einsum("i,j,k->ijk", a, b, c), label="outer3"),
    OpSpec("einsum", lambda a: fg.einsum("ijk->", a), ((2, 3, 2),), REAL,
           lambda a: np.einsum("ijk->", a), label="sum"),
    OpSpec("bmm", lambda a, b: fg.bmm(a, b), ((2, 3, 4), (2, 4, 2)), REAL, np.matmul),
]

NON_DIFFERENTIABLE += ("argmax", "argmin")


# ---------------------------------------------------------------- convolution and pooling
def _np_conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Direct convolution, one output pixel at a time (slow and obviously right)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow), dtype=np.result_type(x, w))
    og = o // groups
    for f in range(o):
        grp = f // og
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, grp * cg:(grp + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                           j * sw:j * sw + dw * (kw - 1) + 1:dw]
                out[:, f, i, j] = np.sum(patch * w[f], axis=(1, 2, 3))
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def _np_pool(x, k, s, p, reduce, pad_value):
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=pad_value)
    oh, ow = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
    out = np.empty(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(xp[:, :, i * s:i * s + k, j * s:j * s + k], axis=(2, 3))
    return out


def _np_adaptive(x, oh, ow):
    h, w = x.shape[-2:]
    out = np.empty(x.shape[:-2] + (oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * h // oh, -(-(i + 1) * h // oh))
            cols = slice(j * w // ow, -(-(j + 1) * w // ow))
            out[..., i, j] = x[..., rows, cols].mean(axis=(-2, -1))
    return out


def _np_im2col(x, k, p):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = h + 2 * p - k + 1, w + 2 * p - k + 1
    col = np.empty((c, k, k, n, oh, ow), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            col[:, i, j] = xp[:, :, i:i + oh, j:j + ow].transpose(1, 0, 2, 3)
    return col.reshape(c * k * k, -1)


def _np_col2im(col, shape, k, p):
    n, c, h, w = shape
    oh, ow = h + 2 * p - k + 1, w + 2 * p - k + 1
    out = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=col.dtype)
    parts = col.reshape(c, k, k, n, oh, ow)
    for i in range(k):
        for j in range(k):
            out[:, :, i:i + oh, j:j + ow] += parts[:, i, j].transpose(1, 0, 2, 3)
    return out[:, :, p:p + h, p:p + w]


def _np_max_pool_grad(g, x, k, s):
    """Each window's gradient to its first maximum (row-major), summed over windows."""
    gx = np.zeros(x.shape, dtype=g.dtype)
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            win = x[:, :, i * s:i * s + k, j * s:j * s + k].reshape(x.shape[0], x.shape[1], -1)
            first = win.argmax(-1)
            for a in range(x.shape[0]):
                for b in range(x.shape[1]):
                    r, c = divmod(first[a, b], k)
                    gx[a, b, i * s + r, j * s + c] += g[a, b, i, j]
    return gx


def _np_avg_pool_grad(g, shape, k, s):
    gx = np.zeros(shape, dtype=g.dtype)
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            gx[:, :, i * s:i * s + k, j * s:j * s + k] += g[:, :, i:i + 1, j:j + 1] / (k * k)
    return gx


_C2 = np.random.default_rng(99)
POOL_X = _C2.standard_normal((2, 2, 5, 5))  # a fixed input for the pooling gradients' rows
POOL_OUT = _np_pool(POOL_X, 3, 2, 0, np.max, -np.inf)
EMB_IDX = np.array([[0, 2, 2], [3, 0, 1]])

OP_TABLE += [
    OpSpec("conv2d", lambda x, w, b: F.conv2d(x, w, b), ((2, 3, 5, 4), (4, 3, 3, 2), (4,)),
           REAL, _np_conv2d),
    OpSpec("conv2d", lambda x, w: F.conv2d(x, w, stride=2, padding=1), ((1, 2, 5, 5),
                                                                         (3, 2, 3, 3)), REAL,
           lambda x, w: _np_conv2d(x, w, stride=(2, 2), padding=(1, 1)), label="stride-pad"),
    OpSpec("conv2d", lambda x, w: F.conv2d(x, w, padding=(2, 1), dilation=(2, 1)),
           ((1, 2, 5, 4), (2, 2, 3, 2)), REAL,
           lambda x, w: _np_conv2d(x, w, padding=(2, 1), dilation=(2, 1)), label="dilation"),
    OpSpec("conv2d", lambda x, w, b: F.conv2d(x, w, b, groups=2), ((2, 4, 4, 4), (6, 2, 2, 2),
                                                                    (6,)), REAL,
           lambda x, w, b: _np_conv2d(x, w, b, groups=2), label="groups"),
    OpSpec("conv2d", lambda x, w: F.conv2d(x, w, padding=1), ((2, 4, 4), (3, 2, 3, 3)), REAL,
           lambda x, w: _np_conv2d(x[None], w, padding=(1, 1))[0], label="unbatched"),
    OpSpec("conv2d", lambda x, w, b: F.conv2d(x, w, b, padding=1), ((8, 4, 8, 8), (8, 4, 3, 3),
                                                                     (8,)), REAL,
           lambda x, w, b: _np_conv2d(x, w, b, padding=(1, 1)), label="large"),
    OpSpec("conv1d", lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1),
           ((2, 3, 7), (4, 3, 3), (4,)), REAL,
           lambda x, w, b: _np_conv2d(x[:, :, None], w[:, :, None], b, stride=(1, 2),
                                      padding=(0, 1))[:, :, 0]),
    OpSpec("conv1d", lambda x, w: F.conv1d(x, w, dilation=2, groups=3), ((1, 3, 8), (3, 1, 2)),
           REAL, lambda x, w: _np_conv2d(x[:, :, None], w[:, :, None], dilation=(1, 2),
                                         groups=3)[:, :, 0], label="dilation-groups"),
    OpSpec("im2col", lambda x: fg.ops.conv.im2col(x, kernel_size=(2, 2), stride=(1, 1),
                                                  padding=(1, 1, 1, 1), dilation=(1, 1)),
           ((2, 2, 3, 3),), REAL, lambda x: _np_im2col(x, 2, 1)),
    OpSpec("col2im", lambda c: fg.ops.conv.col2im(c, input_shape=(2, 2, 3, 3), kernel_size=(2, 2),
                                                  stride=(1, 1), padding=(1, 1, 1, 1),
                                                  dilation=(1, 1)),
           ((8, 32),), REAL, lambda c: _np_col2im(c, (2, 2, 3, 3), 2, 1)),
    OpSpec("max_pool2d", lambda x: F.max_pool2d(x, 2), ((2, 3, 4, 6),), REAL,
           lambda x: _np_pool(x, 2, 2, 0, np.max, -np.inf)),
    OpSpec("max_pool2d", lambda x: F.max_pool2d(x, 3, stride=2, padding=1), ((1, 2, 5, 5),),
           REAL, lambda x: _np_pool(x, 3, 2, 1, np.max, -np.inf), label="overlap-pad"),
    OpSpec("max_pool2d", lambda x: F.max_pool2d(x, 2), ((3, 4, 4),), REAL,
           lambda x: _np_pool(x[None], 2, 2, 0, np.max, -np.inf)[0], label="unbatched"),
    OpSpec("max_pool2d_backward",
           lambda g: fg.ops.conv.max_pool2d_backward(g, fg.tensor(POOL_X), fg.tensor(POOL_OUT),
                                                     kernel_size=3, stride=2),
           ((2, 2, 2, 2),), REAL, lambda g: _np_max_pool_grad(g, POOL_X, 3, 2)),
    OpSpec("avg_pool2d", lambda x: F.avg_pool2d(x, 2), ((2, 3, 4, 6),), REAL,
           lambda x: _np_pool(x, 2, 2, 0, np.mean, 0.0)),
    OpSpec("avg_pool2d", lambda x: F.avg_pool2d(x, 3, stride=1, padding=1), ((1, 2, 4, 4),),
           REAL, lambda x: _np_pool(x, 3, 1, 1, np.mean, 0.0), label="overlap-pad"),
    OpSpec("avg_pool2d_backward",
           lambda g: fg.ops.conv.avg_pool2d_backward(g, input_shape=(1, 2, 5, 5),
                                                     kernel_size=3, stride=2),
           ((1, 2, 2, 2),), REAL, lambda g: _np_avg_pool_grad(g, (1, 2, 5, 5), 3, 2)),
    OpSpec("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (3, 2)), ((2, 2, 7, 5),),
           REAL, lambda x: _np_adaptive(x, 3, 2)),
    OpSpec("embedding", lambda w: F.embedding(fg.tensor(EMB_IDX), w), ((4, 3),), REAL,
           lambda w: w[EMB_IDX]),
    # padding_idx's row gets no gradient by convention (finite differences disagree), so the
    # row here only checks that the other rows are untouched; test_nn_layers pins the rest.
    OpSpec("embedding", lambda w: F.embedding(EMB_IDX, w, padding_idx=3) * fg.tensor(
        EMB_IDX[..., None] != 3), ((4, 3),), REAL, lambda w: w[EMB_IDX] * (EMB_IDX[..., None] != 3),
           label="padding"),
]


# ---------------------------------------------------------------- PyTorch's tensor methods
# New ops (nan_to_num, the rounding family) and, under the op they are recorded as, the
# methods composed from existing ops (mm, mv, dot, outer, reciprocal, sort, topk, unbind).
# Rounding jumps at whole numbers (round: at halves), so its domains stay off them.
OFFINT: Domain = ((-1.9, -1.1), (-0.9, -0.1), (0.1, 0.9), (1.1, 1.9))
OFFHALF: Domain = ((-1.4, -1.1), (-0.9, -0.6), (-0.4, -0.1), (0.1, 0.4), (0.6, 0.9))
OFFHUNDREDTHS: Domain = ((0.111, 0.114), (0.221, 0.224), (-0.334, -0.331))  # round(x, 2)
_INF_MASK = _C.random((3, 4)) > 0.5
_INF_MASK[0, 0], _INF_MASK[0, 1] = True, False
_SIGNS = np.where(_C.random((3, 4)) > 0.5, math.inf, -math.inf)
_NANS = np.where(_C.random((3, 4)) > 0.5, _SIGNS, math.nan)


def _np_nan_to_num(a, nan=0.0, posinf=None, neginf=None):
    return np.nan_to_num(a, nan=nan, posinf=posinf, neginf=neginf)


OP_TABLE += [
    OpSpec("nan_to_num", lambda a: fg.nan_to_num(a), ((2, 3),), REAL, np.nan_to_num),
    # Some entries replaced (NaN, +inf, -inf from a constant): no gradient reaches them.
    OpSpec("nan_to_num",
           lambda a: fg.where(fg.tensor(_INF_MASK), a, fg.tensor(_NANS)).nan_to_num(
               nan=1.5, posinf=5.0, neginf=-5.0),
           ((3, 4),), REAL,
           lambda a: _np_nan_to_num(np.where(_INF_MASK, a, _NANS), 1.5, 5.0, -5.0),
           label="replaced"),
    OpSpec("floor", lambda a: fg.floor(a) + a, ((2, 3),), OFFINT, lambda a: np.floor(a) + a),
    OpSpec("ceil", lambda a: a.ceil() * a, ((2, 3),), OFFINT, lambda a: np.ceil(a) * a),
    OpSpec("trunc", lambda a: fg.trunc(a) + a, ((2, 3),), OFFINT, lambda a: np.trunc(a) + a),
    OpSpec("round", lambda a: a.round() * a, ((2, 3),), OFFHALF, lambda a: np.round(a) * a),
    OpSpec("round", lambda a: fg.round(a, decimals=2) + a, ((3,),), OFFHUNDREDTHS,
           lambda a: np.round(a, 2) + a, label="decimals"),
    OpSpec("div", lambda a: a.reciprocal(), ((2, 3),), OFF0, np.reciprocal, label="reciprocal"),
    OpSpec("matmul", lambda a, b: a.mm(b), ((3, 4), (4, 2)), REAL, np.matmul, label="mm"),
    OpSpec("matmul", lambda a, b: fg.mv(a, b), ((3, 4), (4,)), REAL, np.matmul, label="mv"),
    OpSpec("matmul", lambda a, b: a.dot(b), ((4,), (4,)), REAL, np.dot, label="dot"),
    OpSpec("mul", lambda a, b: fg.outer(a, b), ((3,), (4,)), REAL, np.outer, label="outer"),
    OpSpec("gather", lambda a: a.sort(dim=0).values, ((4, 3),), REAL,
           lambda a: np.sort(a, axis=0), label="sort"),
    OpSpec("gather", lambda a: fg.sort(a, descending=True)[0], ((3, 5),), REAL,
           lambda a: -np.sort(-a, axis=-1), label="sort-descending"),
    OpSpec("gather", lambda a: a.topk(2).values, ((3, 5),), REAL,
           lambda a: -np.sort(-a, axis=-1)[:, :2], label="topk"),
    OpSpec("gather", lambda a: fg.topk(a, 3, dim=0, largest=False).values, ((4, 2),), REAL,
           lambda a: np.sort(a, axis=0)[:3], label="topk-smallest"),
    OpSpec("getitem", lambda a: a.unbind(1)[2], ((2, 3),), REAL, lambda a: a[:, 2],
           label="unbind"),
    OpSpec("getitem", lambda a: sum(fg.unbind(a)), ((3, 2),), REAL, lambda a: a.sum(0),
           label="unbind-all"),
]

NON_DIFFERENTIABLE += ("all", "any", "isnan", "isinf", "isfinite", "argsort")
