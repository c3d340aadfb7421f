"""Function transforms: grad, value_and_grad, vjp, jvp, jacobian, hessian.

They take functions of Tensors and compose: ``grad(grad(f))`` is the second derivative.
A transform differentiates at fresh leaves when its inputs are plain data, and through the
inputs themselves (recording its backward pass) when they already carry a graph, which is
what lets an outer transform differentiate an inner one.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flowgrad import _backend, engine, graph
from flowgrad.creation import zeros
from flowgrad.ops.shape import stack
from flowgrad.tensor import Tensor, to_array

# How many transforms are running their function right now (per thread, as grad mode).
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("transform_depth", default=0)


@contextlib.contextmanager
def _running() -> Iterator[None]:
    """Mark the span in which a transform runs its function (and may nest others)."""
    token = _DEPTH.set(_DEPTH.get() + 1)
    try:
        with graph.enable_grad():
            yield
    finally:
        _DEPTH.reset(token)


def _as_input(x) -> tuple[Tensor, bool]:
    """A Tensor to differentiate at, and whether it is nested inside an outer transform."""
    if isinstance(x, Tensor):
        if x.requires_grad and graph.is_grad_enabled():
            return x, True
        data = x.data
        if not _backend.is_floating(data.dtype):
            data = _backend.astype(data, _backend.default_float)
        return Tensor._make(data, True, None), False
    data = to_array(x, None)
    if not _backend.is_floating(data.dtype):
        data = _backend.astype(data, _backend.default_float)
    return Tensor._make(data, True, None), False


def _prepare(arguments: tuple, argnums: int | Sequence[int]
             ) -> tuple[list, tuple[int, ...], bool]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    args = list(arguments)
    # Inside another transform, the outer one may differentiate through anything this one
    # computes (other arguments, closed-over tensors), so the backward pass is recorded.
    nested = _DEPTH.get() > 0 and graph.is_grad_enabled()
    for i in nums:
        args[i], inner = _as_input(args[i])
        nested = nested or inner
    return args, nums, nested


def _zeros_if_none(g, like: Tensor) -> Tensor:
    if g is None:
        return zeros(like.shape, dtype=like.dtype, device=like.device)
    return g


def _check_scalar(out, name: str) -> Tensor:
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}: the function must return a Tensor, got {type(out).__name__}")
    if out.data.size != 1:
        raise ValueError(f"{name}: the function must return a scalar (one element), got shape "
                         f"{out.shape}")
    return out


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """A function returning ``(f(*args), gradient)`` for scalar ``f``.

    The gradient is w.r.t. argument ``argnums`` (a tuple of them for a tuple argnums).

    Example:
        >>> import flowgrad as fg
        >>> value, g = fg.value_and_grad(lambda x: (x ** 2).sum())(fg.tensor([1.0, 2.0]))
        >>> value.item(), g.numpy().tolist()
        (5.0, [2.0, 4.0])
    """

    def wrapped(*arguments: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        with graph.enable_grad():
            args, nums, nested = _prepare(arguments, argnums)
            with _running():
                out = _check_scalar(f(*args, **kwargs), "grad")
            xs = [args[i] for i in nums]
            found: Sequence[Tensor | None] = (
                engine.grad(out, xs, create_graph=nested, retain_graph=nested)
                if out.requires_grad else [None] * len(xs))
            grads = tuple(_zeros_if_none(g, x) for g, x in zip(found, xs))
        value = out if nested else out.detach()
        return value, (grads[0] if isinstance(argnums, int) else grads)

    return wrapped


def grad(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """A function returning the gradient of scalar ``f`` w.r.t. argument(s) ``argnums``.

    Example:
        >>> import flowgrad as fg
        >>> d2 = fg.grad(fg.grad(lambda x: x ** 3))   # 6x
        >>> d2(fg.tensor(2.0, dtype=fg.float64)).item()
        12.0
    """
    vg = value_and_grad(f, argnums)

    def wrapped(*args, **kwargs):
        return vg(*args, **kwargs)[1]

    return wrapped


def vjp(f: Callable, *primals) -> tuple[Tensor, Callable]:
    """``(f(*primals), vjp_fn)`` where ``vjp_fn(cotangent)`` is a tuple, one gradient per primal.

    ``vjp_fn`` computes cotangentᵀ·J (the reverse mode) and may be called more than once.
    """
    with graph.enable_grad():
        xs, _, nested = _prepare(primals, tuple(range(len(primals))))
        with _running():
            out = f(*xs)

    def vjp_fn(cotangent) -> tuple:
        with graph.enable_grad():
            ct = cotangent if isinstance(cotangent, Tensor) else Tensor._make(
                _backend.asarray(cotangent, dtype=out.dtype, device=out.device), False, None)
            record = nested or ct.requires_grad
            if not out.requires_grad:
                return tuple(_zeros_if_none(None, x) for x in xs)
            grads = engine.grad(out, xs, grad_outputs=ct, retain_graph=True,
                                create_graph=record)
            return tuple(_zeros_if_none(g, x) for g, x in zip(grads, xs))

    return (out if nested else out.detach()), vjp_fn


def jvp(f: Callable, primals: Sequence, tangents: Sequence) -> tuple[Tensor, Tensor]:
    """``(f(*primals), J·tangents)``: the forward-mode derivative along ``tangents``.

    Computed by the double-vjp trick: the vjp ``u -> Jᵀu`` is linear in ``u``, so its own vjp
    at cotangent ``v`` is ``J·v``. For a scalar ``f`` the tangent out is the directional
    derivative ``∇f · v``; among unit directions it is largest along the gradient itself.

    Example:
        >>> import flowgrad as fg
        >>> f = lambda p: (p[0] ** 2 + 3 * p[1]).sum()
        >>> p = fg.tensor([1.0, 2.0])
        >>> g = fg.grad(f)(p)                       # ∇f = (2, 3)
        >>> fg.jvp(f, (p,), (fg.tensor([1.0, 0.0]),))[1].item()   # along x: 2
        2.0
        >>> unit = g / (g * g).sum().sqrt()
        >>> round(fg.jvp(f, (p,), (unit,))[1].item(), 4)   # along ∇f: |∇f| = sqrt(13), the max
        3.6056
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    with graph.enable_grad():
        xs, _, nested = _prepare(primals, tuple(range(len(primals))))
        with _running():
            out = f(*xs)
        vs = [t if isinstance(t, Tensor) else Tensor._make(to_array(t, x.dtype, x.device),
                                                           False, None)
              for t, x in zip(tangents, xs)]
        for v, x in zip(vs, xs):
            if v.shape != x.shape:
                raise ValueError(f"jvp: tangent shape {v.shape} differs from primal shape "
                                 f"{x.shape}")
        if not out.requires_grad:
            return out, _zeros_if_none(None, out)
        u = zeros(out.shape, dtype=out.dtype, device=out.device, requires_grad=True)
        grads = engine.grad(out, xs, grad_outputs=u, create_graph=True, retain_graph=True)
        pairs = [(g, v) for g, v in zip(grads, vs) if g is not None and g.requires_grad]
        if not pairs:
            return (out if nested else out.detach()), _zeros_if_none(None, out)
        (tangent_out,) = engine.grad([g for g, _ in pairs], u, grad_outputs=[v for _, v in pairs],
                                     create_graph=nested, retain_graph=nested)
    tangent_out = _zeros_if_none(tangent_out, out)
    return (out if nested else out.detach()), tangent_out


def jacobian(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """A function returning the Jacobian of ``f``, shaped ``out.shape + in.shape``.

    One reverse sweep per output element; for a tuple ``argnums`` a tuple of Jacobians.
    """
    def wrapped(*arguments: Any, **kwargs: Any) -> Any:
        with graph.enable_grad():
            args, nums, nested = _prepare(arguments, argnums)
            with _running():
                out = f(*args, **kwargs)
            xs = [args[i] for i in nums]
            n_out = out.data.size
            rows: list[list[Tensor]] = [[] for _ in xs]
            for k in range(n_out):
                basis = _backend.xp.zeros(n_out, dtype=out.dtype)
                basis[k] = 1
                ct = Tensor._make(_backend.from_host(basis.reshape(out.shape), out.device),
                                  False, None)
                grads: Sequence[Tensor | None] = (
                    engine.grad(out, xs, grad_outputs=ct, retain_graph=True,
                                create_graph=nested)
                    if out.requires_grad else [None] * len(xs))
                for row, g, x in zip(rows, grads, xs):
                    row.append(_zeros_if_none(g, x))
            jacs = []
            for row, x in zip(rows, xs):
                if not row:
                    jacs.append(zeros(out.shape + x.shape, dtype=x.dtype, device=x.device))
                    continue
                jac = stack(row).reshape(out.shape + x.shape)
                jacs.append(jac if nested else jac.detach())
        return jacs[0] if isinstance(argnums, int) else tuple(jacs)

    return wrapped


def hessian(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """A function returning the Hessian of scalar ``f``, shaped ``in.shape + in.shape``.

    It is ``jacobian(grad(f))``: the gradient's own derivative, through the recorded
    backward pass.
    """
    if not isinstance(argnums, int):
        raise TypeError("hessian: argnums must be one int")
    inner = grad(f, argnums)

    def wrapped(*args, **kwargs):
        out = jacobian(inner, argnums)(*args, **kwargs)
        x = args[argnums]
        shape = tuple(x.shape) if hasattr(x, "shape") else ()
        return out.reshape(shape + shape)

    return wrapped
