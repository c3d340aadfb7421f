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


def _analytic(f_out: Tensor, xs: list[Tensor], record: bool) -> list[np.ndarray]:
    """The reverse-mode Jacobian, one row per output element, on the engine's recorded
    (``create_graph``, Tensor rules) or unrecorded (fast array rules) path."""
    n_out = f_out.data.size
    analytic = [np.zeros((n_out, x.data.size)) for x in xs]
    if not f_out.requires_grad:
        return analytic
    for k in range(n_out):
        basis = np.zeros(n_out)
        basis[k] = 1.0
        ct = Tensor._make(basis.reshape(f_out.shape).astype(f_out.dtype), False, None)
        grads = engine.grad(f_out, xs, grad_outputs=ct, retain_graph=True, create_graph=record)
        for a, g in zip(analytic, grads):
            if g is not None:
                a[k] = np.asarray(g.data, dtype=np.float64).ravel()
    return analytic


def gradcheck(f: Callable, inputs: Sequence | Tensor, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3) -> bool:
    """Check ``f``'s reverse-mode Jacobian against central finite differences in float64.

    Both of the engine's paths are checked: the unrecorded one every training step takes
    (ops' fast array rules) and the recorded one that ``create_graph`` and higher-order
    derivatives use (ops' Tensor rules).

    Args:
        f: a function of Tensors returning a Tensor (any shape).
        inputs: a Tensor/array or a sequence of them; each is converted to a float64 leaf.
        eps: the finite-difference step.
        atol, rtol: tolerances, as in ``numpy.allclose``.

    Returns:
        True when every input's Jacobian matches.

    Raises:
        GradcheckError (an AssertionError): naming the input index, the element, the
            largest mismatch and the path (recorded or not) that disagrees.

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
    paths = {"unrecorded (fast rules)": _analytic(out, xs, record=False),
             "recorded (create_graph)": _analytic(out, xs, record=True)}
    for i, x in enumerate(xs):
        numeric = np.zeros_like(paths["recorded (create_graph)"][i])
        flat = x.data.reshape(-1)
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            plus = _flat_output(f, xs)
            flat[j] = original - eps
            minus = _flat_output(f, xs)
            flat[j] = original
            numeric[:, j] = (plus - minus) / (2 * eps)
        for path, analytic in paths.items():
            if not np.allclose(analytic[i], numeric, atol=atol, rtol=rtol, equal_nan=False):
                diff = np.abs(analytic[i] - numeric)
                k, j = (int(v) for v in np.unravel_index(np.nanargmax(diff), diff.shape))
                raise GradcheckError(
                    f"gradcheck: input {i} (shape {x.shape}): analytic ({path}) and numerical "
                    f"derivatives differ; largest mismatch {diff[k, j]:.3g} at output element "
                    f"{k}, input element {j}: analytic {analytic[i][k, j]:.6g} vs numerical "
                    f"{numeric[k, j]:.6g}")
    return True
