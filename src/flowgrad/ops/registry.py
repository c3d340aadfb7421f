"""Defining an op: one forward and its derivative rule, side by side, registered by name.

An op is written once, in its family file::

    @op(method=True)
    def mul(xp, x, y):
        "d(x*y)/dx = y, d(x*y)/dy = x"
        return xp.multiply(x, y)

    @mul.rule
    def _(g, x, y):
        return g * y, g * x

* The **forward** takes ``xp`` (the array namespace), the input arrays (its positional
  parameters) and the op's non-tensor arguments (its keyword-only parameters), and returns
  the output array, or ``(output, saved)`` when declared with ``saves=True``.
* The **rule** takes the upstream gradient ``g`` and the inputs as Tensors (or the constants
  they were), plus the op's keyword arguments, and returns one gradient per input, written
  with flowgrad ops so that it can itself be differentiated. It may also ask, by parameter
  name, for ``out`` (the output as a Tensor bound to the node), ``saved``, or ``needs`` (which
  inputs want a gradient, to skip work).
* Broadcasting is undone centrally: each returned gradient is summed back to its input's
  shape by the ``sum_to`` op here, never inside a rule.

``op`` creates the public function ``fg.NAME`` and, with ``method=True``, ``Tensor.NAME``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from flowgrad import _backend, graph
from flowgrad._backend import xp
from flowgrad.errors import ShapeError
from flowgrad.graph import Node
from flowgrad.tensor import Tensor

OPS: dict[str, OpDef] = {}

_ndarray = _backend.ndarray
_make = Tensor._make
_SCALARS = (int, float, bool)


class OpDef:
    """A registered operation: its forward, its derivative rule and how to call them."""

    def __init__(self, name: str, forward: Callable, *, saves: bool, differentiable: bool,
                 variadic: bool, varargs: str | None):
        self.name = name
        self.forward = forward
        self._rule = None
        self.differentiable = differentiable
        self.saves = saves
        self.variadic = variadic
        self.__doc__ = forward.__doc__
        n_inputs, names, defaults, input_params = 0, [], {}, []
        for p in list(inspect.signature(forward).parameters.values())[1:]:
            if p.kind is p.POSITIONAL_OR_KEYWORD:
                n_inputs += 1
                input_params.append(p)
            elif p.kind is p.KEYWORD_ONLY:
                names.append(p.name)
                if p.default is not p.empty:
                    defaults[p.name] = p.default
        self.n_inputs = n_inputs
        self.input_params = tuple(input_params)
        self.param_names = tuple(names)
        self.defaults = defaults
        self.vararg = varargs
        # Plain ops (inputs only, no arguments) take a shorter call path.
        self.simple = not (variadic or varargs or names)
        self._rule_extras = ()

    def rule(self, rule: Callable) -> Callable:
        """Decorator attaching the derivative rule to this op."""
        wanted = inspect.signature(rule).parameters
        self._rule_extras = tuple(k for k in ("out", "saved", "needs") if k in wanted)
        self._rule = rule
        return rule

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        """Apply the op (as ``fg.NAME`` does): inputs first, then its arguments."""
        if self.simple and len(args) == self.n_inputs and not kwargs:
            return apply(self, args, kwargs)
        if self.variadic:
            inputs, rest = tuple(args[0]), args[1:]
        else:
            n = self.n_inputs
            inputs, rest = args[:n], args[n:]
            if len(inputs) < n:
                inputs = inputs + tuple(self._missing_input(p, kwargs)
                                        for p in self.input_params[len(inputs):])
        if self.vararg is not None:
            if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
                rest = tuple(rest[0])
            if rest or self.vararg not in kwargs:
                kwargs[self.vararg] = tuple(rest)
        elif rest:
            if len(rest) > len(self.param_names):
                raise TypeError(f"{self.name}() got too many arguments")
            kwargs.update(zip(self.param_names, rest))
        if self.defaults:
            kwargs = {**self.defaults, **kwargs}
        return apply(self, inputs, kwargs)

    def _missing_input(self, param: inspect.Parameter, kwargs: dict):
        if param.name in kwargs:
            return kwargs.pop(param.name)
        if param.default is not param.empty:
            return param.default
        raise TypeError(f"{self.name}() is missing the input {param.name!r}")

    def vjp(self, node: Node, g: Tensor) -> tuple:
        """The rule applied at ``node``: gradients per input, summed to the inputs' shapes."""
        inputs = node.inputs
        needs = tuple([isinstance(x, Tensor) and x.requires_grad for x in inputs])
        if self._rule_extras:
            extras = {}
            for key in self._rule_extras:
                if key == "out":
                    extras["out"] = _make(node.value, True, node)
                elif key == "saved":
                    extras["saved"] = node.saved
                else:
                    extras["needs"] = needs
            grads = self._rule(g, *inputs, **extras, **node.params)
        else:
            grads = self._rule(g, *inputs, **node.params)
        if type(grads) is not tuple:
            grads = (grads,)
        result = []
        for x, need, gx in zip(inputs, needs, grads):
            if not need or gx is None:
                result.append(None)
                continue
            # Broadcasting is undone here, once, for every op.
            data, target = gx.data, x.data
            if data.shape != target.shape:
                gx = _sum_to(gx, shape=target.shape)
            if data.dtype != target.dtype:
                gx = _cast(gx, dtype=target.dtype)
            result.append(gx)
        return tuple(result)

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def apply(op: OpDef, inputs: tuple, params: dict) -> Tensor:
    """Run ``op`` forward on ``inputs`` and, when a gradient will be needed, record a Node."""
    arrays = []
    needs_grad = False
    for x in inputs:
        if isinstance(x, Tensor):
            arrays.append(x.data)
            if x.requires_grad:
                needs_grad = True
        elif x is None or isinstance(x, (_ndarray, *_SCALARS)):
            arrays.append(x)
        else:
            x = _backend.asarray(x)
            arrays.append(x)
    try:
        out = op.forward(xp, *arrays, **params)
    except ShapeError:
        raise
    except ValueError as exc:
        message = str(exc)
        kind = ShapeError if "shape" in message or "broadcast" in message else ValueError
        if not message.startswith(f"{op.name}:"):
            message = f"{op.name}: {message}"
        raise kind(message) from None
    saved = None
    if op.saves:
        out, saved = out
    if type(out) is not _ndarray:
        out = _backend.asarray(out)
    if needs_grad and graph._grad_enabled and op.differentiable:
        return _make(out, True, Node(op, tuple(inputs), params, out, saved))
    return _make(out, False, None)


def op(name: str | None = None, *, method: bool = False, saves: bool = False,
       differentiable: bool = True, variadic: bool = False,
       varargs: str | None = None) -> Callable[[Callable], OpDef]:
    """Register a forward function as op ``name``; see the module docstring.

    Args:
        name: the op's name (default: the forward's name).
        method: also install it as ``Tensor.NAME``.
        saves: the forward returns ``(output, saved)``.
        differentiable: False for ops without a gradient (comparisons); never recorded.
        variadic: the inputs come as one sequence (``cat(tensors, dim)``).
        varargs: the keyword parameter that collects extra positional arguments
            (``reshape(x, 2, 3)`` gives ``shape=(2, 3)``).
    """

    def register(forward: Callable) -> OpDef:
        op_name = name or forward.__name__
        if op_name in OPS:
            raise ValueError(f"op {op_name!r} is already registered")
        opdef = OpDef(op_name, forward, saves=saves, differentiable=differentiable,
                      variadic=variadic, varargs=varargs)
        OPS[op_name] = opdef
        if method:
            setattr(Tensor, op_name, _as_method(opdef))
        return opdef

    return register


def _sum_to(g: Tensor, *, shape: tuple) -> Tensor:
    return apply(OPS["sum_to"], (g,), {"shape": shape})


def _cast(g: Tensor, *, dtype) -> Tensor:
    return apply(OPS["cast"], (g,), {"dtype": dtype})


def _as_method(opdef: OpDef) -> Callable:
    def method(self, *args, **kwargs):
        return opdef(self, *args, **kwargs)

    method.__name__ = opdef.name
    method.__doc__ = opdef.__doc__
    return method


