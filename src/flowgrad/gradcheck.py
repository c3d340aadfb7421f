"""Finite-difference gradient checks: analytic (reverse mode) against central differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from flowgrad import engine, graph
from flowgrad.tensor import Tensor


class GradcheckError(AssertionError):
    """Analytic and numerical derivatives disagree; the message names the input."""


def _as_float64_leaf(x) -> Tensor:
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    return Tensor._make(np.array(data, dtype=np.float64), True, None)


def _flat_output(f: Callable, xs: list[Tensor]) -> np.ndarray:
    with graph.no_grad():
        out = f(*xs)
    return np.array(out.data if isinstance(out, Tensor) else out, dtype=np.float64).ravel()


def gradcheck(f: Callable, inputs: Sequence | Tensor, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3) -> bool:
    """Check ``f``'s reverse-mode Jacobian against central finite differences in float64.

    Args:
        f: a function of Tensors returning a Tensor (any shape).
        inputs: a Tensor/array or a sequence of them; each is converted to a float64 leaf.
        eps: the finite-difference step.
        atol, rtol: tolerances, as in ``numpy.allclose``.

    Returns:
        True when every input's Jacobian matches.

    Raises:
        GradcheckError (an AssertionError): naming the input index, the element and the
            largest mismatch.

    Example:
        >>> import flowgrad as fg
        >>> fg.gradcheck(lambda x: fg.tanh(x) * x, [fg.randn(3)])
        True
    """
    if isinstance(inputs, (Tensor, np.ndarray)):
        inputs = [inputs]
    xs = [_as_float64_leaf(x) for x in inputs]
    with graph.enable_grad():
        out = f(*xs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: f must return a Tensor, got {type(out).__name__}")
    n_out = out.data.size
    analytic = [np.zeros((n_out, x.data.size)) for x in xs]
    if out.requires_grad:
        for k in range(n_out):
            basis = np.zeros(n_out)
            basis[k] = 1.0
            ct = Tensor._make(basis.reshape(out.shape).astype(out.dtype), False, None)
            grads = engine.grad(out, xs, grad_outputs=ct, retain_graph=True)
            for a, g in zip(analytic, grads):
                if g is not None:
                    a[k] = np.asarray(g.data, dtype=np.float64).ravel()
    for i, x in enumerate(xs):
        numeric = np.zeros_like(analytic[i])
        flat = x.data.reshape(-1)
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = _flat_output(f, xs)
            flat[j] = original - eps
            minus = _flat_output(f, xs)
            flat[j] = original
            numeric[:, j] = (plus - minus) / (2 * eps)
        if not np.allclose(analytic[i], numeric, atol=atol, rtol=rtol, equal_nan=False):
            diff = np.abs(analytic[i] - numeric)
            k, j = np.unravel_index(np.nanargmax(diff), diff.shape)
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}): analytic and numerical derivatives "
                f"differ; largest mismatch {diff[k, j]:.3g} at output element {k}, input element "
                f"{j}: analytic {analytic[i][k, j]:.6g} vs numerical {numeric[k, j]:.6g}")
    return True
