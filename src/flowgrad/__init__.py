"""flowgrad: gradients you can see. Reverse-mode automatic differentiation on NumPy.

    >>> import flowgrad as fg
    >>> w = fg.tensor(0.5, requires_grad=True)
    >>> loss = fg.sigmoid(w * 2.0 - 1.0)
    >>> loss.backward()
    >>> w.grad.item()   # sigmoid'(0) * 2
    0.5
"""

# First: in the flowgrad command, Ctrl-C while NumPy is still importing is one line.
from flowgrad import _interrupt  # noqa: F401

# isort: split
import importlib
from typing import Any

from flowgrad import graph, methods  # noqa: F401  (methods installs Tensor's methods)
from flowgrad._backend import (
    bool_,
    device,
    float32,
    float64,
    get_default_device,
    int64,
    set_default_device,
)
from flowgrad.anomaly import (
    AnomalyError,
    detect_anomaly,
    is_anomaly_check_nan_enabled,
    is_anomaly_enabled,
    set_detect_anomaly,
)
from flowgrad.creation import (
    arange,
    eye,
    full,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from flowgrad.errors import DtypeError, ShapeError
from flowgrad.gradcheck import GradcheckError, gradcheck, gradcheck_nodes  # noqa: I001
from flowgrad.graph import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from flowgrad.ops.arithmetic import (
    add,
    bmm,
    div,
    dot,
    eq,
    ge,
    gt,
    le,
    lt,
    matmul,
    mm,
    mul,
    mv,
    ne,
    neg,
    outer,
    pow,
    reciprocal,
    sub,
)
from flowgrad.ops.elementwise import (
    abs,
    ceil,
    clamp,
    cos,
    elu,
    erf,
    exp,
    expm1,
    floor,
    gelu,
    isfinite,
    isinf,
    isnan,
    leaky_relu,
    log,
    log1p,
    maximum,
    minimum,
    nan_to_num,
    relu,
    rsqrt,
    sigmoid,
    sign,
    silu,
    sin,
    softplus,
    sqrt,
    square,
    step,
    tanh,
    trunc,
    where,
)
from flowgrad.ops.elementwise import round_ as round
from flowgrad.ops.nn import binary_cross_entropy_with_logits, cross_entropy, linear
from flowgrad.ops.reduction import all_ as all
from flowgrad.ops.reduction import (
    amax,
    amin,
    cumsum,
    log_softmax,
    logsumexp,
    mean,
    norm,
    prod,
    softmax,
    std,
    sum,
    var,
)
from flowgrad.ops.reduction import any_ as any
from flowgrad.ops.registry import op
from flowgrad.ops.selection import argmax, argmin, argsort, max, min, sort, topk
from flowgrad.ops.shape import (
    broadcast_to,
    cat,
    chunk,
    clone,
    einsum,
    expand,
    flatten,
    flip,
    gather,
    getitem,
    index_add,
    index_put,
    index_select,
    masked_fill,
    permute,
    repeat,
    reshape,
    split,
    squeeze,
    stack,
    sum_to,
    transpose,
    tril,
    triu,
    unbind,
    unsqueeze,
)
from flowgrad.tensor import Tensor
from flowgrad.transforms import grad, hessian, jacobian, jvp, value_and_grad, vjp

__version__ = "0.1.0"

_SUBMODULES = {"nn", "optim", "data", "viz", "engine", "serialize", "training", "distributed",
               "profiler", "cuda"}


def __getattr__(name: str) -> Any:
    # Submodules load on first use, so `import flowgrad` needs NumPy only and stays fast.
    if name in _SUBMODULES:
        return importlib.import_module(f"flowgrad.{name}")
    if name in ("save", "load"):
        return getattr(importlib.import_module("flowgrad.serialize"), name)
    raise AttributeError(f"module 'flowgrad' has no attribute {name!r}")
