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
* An optional **fast rule** (``@mul.fast``) is the same derivative on plain arrays:
  ``(xp, g, *input_arrays, [out], [saved], [needs], **params)`` returning arrays. The engine
  uses it when the backward pass is not recorded (``create_graph=False``), which is every
  training step; the Tensor rule stays the one that differentiates again, and gradcheck
  checks both.
* Broadcasting is undone centrally: each returned gradient is summed back to its input's
  shape here, never inside a rule.

``op`` creates the public function ``fg.NAME`` and, with ``method=True``, ``Tensor.NAME``.
Besides the ops' own methods, this module installs Tensor's Python operators from the one
table :data:`OPERATORS` (see :func:`bind_operators`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from flowgrad import _backend
from flowgrad.errors import ShapeError
from flowgrad.graph import Node, grad_enabled, observer
from flowgrad.ops._dims import sum_to_shape
from flowgrad.tensor import Tensor

_OPS: dict[str, OpDef] = {}
#: Every registered op by name (read-only; register new ones with :func:`op`).
OPS: Mapping[str, OpDef] = MappingProxyType(_OPS)

_ndarray = _backend.ndarray
_xp = _backend.xp
_np_asarray = _xp.asarray
_quiet, _loud = _backend.quiet, _backend.loud
_make = Tensor._make
_SCALARS = (int, float, bool)
_EXTRAS = ("out", "saved", "needs")
# Set, for good, the first time any debugging mode (flowgrad.anomaly) is entered in this
# process; until then apply skips even the context-variable read. Which contexts are
# watched is still the context variable's business (graph.observer()).
_watched = False


# ---------------------------------------------------------------- dtype promotion (PyTorch's)


def _category(dtype: Any) -> int:
    kind = dtype.kind
    return 2 if kind in "fc" else (0 if kind == "b" else 1)


def _promote_pair(a: Any, b: Any) -> Any:
    """PyTorch's promoteTypes: across categories the higher category's dtype wins as is."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    ca, cb = _category(a), _category(b)
    if ca != cb:
        return a if ca > cb else b
    return _backend.result_type(a, b)


def _combine(higher: Any, lower: Any) -> Any:
    # PyTorch's combine_categories: a lower tier (0-d tensors, then Python scalars) only
    # counts when it brings a higher category.
    if higher is None:
        return lower
    if lower is None or _category(higher) == 2:
        return higher
    if _category(higher) == 0 or _category(lower) == 2:
        return _promote_pair(higher, lower)
    return higher


def result_type(*operands: Any) -> Any:
    """The dtype PyTorch gives an elementwise op on these operands (arrays or scalars).

    Dimensioned tensors outrank 0-d tensors, which outrank Python scalars, unless the lower
    tier is of a higher category (bool < integer < floating): ``int64 + 0.5`` is float32
    (the default float), ``float32 + float64 0-d`` stays float32, ``int64 + float32`` is
    float32.
    """
    dims = zero = scalar = None
    for x in operands:
        if isinstance(x, _array_types()):
            dtype = _backend.host_dtype(x.dtype)
            if x.ndim:
                dims = _promote_pair(dims, dtype)
            else:
                zero = _promote_pair(zero, dtype)
        elif isinstance(x, bool):
            scalar = _promote_pair(scalar, _backend.bool_)
        elif isinstance(x, int):
            scalar = _promote_pair(scalar, _backend.int64)
        elif isinstance(x, float):
            scalar = _promote_pair(scalar, _backend.default_float)
    return _combine(dims, _combine(zero, scalar))


def _array_types() -> Any:
    return _backend.array_types  # grows as device backends load


def _cast_all(arrays: list, dtype: Any, skip: int = 0) -> list:
    kinds = _array_types()
    return arrays[:skip] + [_backend.astype(a, dtype) if isinstance(a, kinds)
                            and _backend.host_dtype(a.dtype) != dtype else a
                            for a in arrays[skip:]]


def promote_elementwise(arrays: list, skip: int = 0) -> list:
    """Cast the operands (after the first ``skip``) to their PyTorch result type.

    The common cases (same-dtype arrays; a floating array with a Python number; any array
    with a Python int) return at once.
    """
    if len(arrays) - skip == 2:
        a, b = arrays[skip], arrays[skip + 1]
        if type(a) is _ndarray:
            da = a.dtype
            if type(b) is _ndarray:
                if b.dtype is da:
                    return arrays
            elif type(b) is int or (type(b) is float and da.kind == "f"):
                return arrays
        elif type(b) is _ndarray and (type(a) is int or (type(a) is float
                                                          and b.dtype.kind == "f")):
            return arrays
    target = result_type(*arrays[skip:])
    kinds = _array_types()
    if target is None or all(not isinstance(a, kinds) or _backend.host_dtype(a.dtype) == target
                             for a in arrays[skip:]):
        return arrays
    return _cast_all(arrays, target, skip)


def promote_to_float(arrays: list) -> list:
    """Integer and bool inputs become the default float (``exp`` of an int tensor: float32)."""
    kinds = _array_types()
    if all(not isinstance(a, kinds) or _backend.host_dtype(a.dtype).kind == "f"
           for a in arrays):
        return arrays
    return [_backend.astype(a, _backend.default_float) if isinstance(a, kinds)
            and _backend.host_dtype(a.dtype).kind != "f" else a for a in arrays]


def promote_divide(arrays: list) -> list:
    """True division: the elementwise result type, and float32 when that is integral."""
    arrays = promote_elementwise(arrays)
    return promote_to_float(arrays)


def promote_counts(arrays: list) -> list:
    """``sum`` of a bool tensor counts (int64, as PyTorch; the array API standard sums only
    numbers). Floating inputs never get here (the registry skips promotion for them)."""
    return [_backend.astype(a, _backend.int64) if isinstance(a, _array_types())
            and _backend.host_dtype(a.dtype) == _backend.bool_ else a for a in arrays]


def promote_values(arrays: list) -> list:
    """``where(cond, x, y)``: promote x and y, leave the condition."""
    return promote_elementwise(arrays, skip=1)


# ---------------------------------------------------------------- op definitions


class OpDef:
    """A registered operation: its forward, its derivative rules and how to call them."""

    def __init__(self, name: str, forward: Callable, *, saves: bool, differentiable: bool,
                 variadic: bool, varargs: str | None, promote: Callable | None,
                 view: bool | Callable[[dict], bool], saves_inputs: bool):
        self.name = name
        self.forward = forward
        self._rule: Callable | None = None
        self._fast: Callable | None = None
        self.differentiable = differentiable
        self.saves = saves
        self.variadic = variadic
        self.promote = promote
        # Gradients may need summing to a broadcast input's shape or casting back to a
        # promoted input's dtype: true for ops that promote (the elementwise ones, which
        # also broadcast). Others return gradients of their inputs' shapes and dtypes.
        self.reshapes_grads = promote is not None and promote is not promote_counts
        self.view = view
        self.saves_inputs = saves_inputs
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
        self._input_names = frozenset(p.name for p in input_params)
        self.param_names = tuple(names)
        self.defaults = defaults
        self.vararg = varargs
        # Plain ops (inputs only, no arguments) take a shorter call path.
        self.simple = not (variadic or varargs or names)
        self._rule_extras: tuple[str, ...] = ()
        self._fast_extras: tuple[str, ...] = ()
        self.reads_out = False

    def rule(self, rule: Callable) -> Callable:
        """Decorator attaching the derivative rule (on Tensors) to this op."""
        wanted = inspect.signature(rule).parameters
        self._rule_extras = tuple(k for k in _EXTRAS if k in wanted)
        self.reads_out = self.reads_out or "out" in wanted
        self._rule = rule
        return rule

    def fast(self, rule: Callable) -> Callable:
        """Decorator attaching the first-order rule on plain arrays (``xp`` first)."""
        wanted = inspect.signature(rule).parameters
        self._fast_extras = tuple(k for k in _EXTRAS if k in wanted)
        self.reads_out = self.reads_out or "out" in wanted
        self._fast = rule
        return rule

    @property
    def has_fast_rule(self) -> bool:
        return self._fast is not None

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        """Apply the op (as ``fg.NAME`` does): inputs first, then its arguments."""
        if len(args) == self.n_inputs and not self.variadic and self.vararg is None:
            if self.simple and not kwargs:
                return apply(self, args, kwargs)
            if not kwargs:
                return apply(self, args, self.defaults.copy())
            if kwargs.keys().isdisjoint(self._input_names):
                return apply(self, args, {**self.defaults, **kwargs})
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

    def _missing_input(self, param: inspect.Parameter, kwargs: dict) -> Any:
        if param.name in kwargs:
            return kwargs.pop(param.name)
        if param.default is not param.empty:
            return param.default
        raise TypeError(f"{self.name}() is missing the input {param.name!r}")

    def vjp(self, node: Node, g: Tensor) -> tuple:
        """The Tensor rule at ``node``: gradients per input, summed to the inputs' shapes.

        Recorded when grad mode is on, so the result can be differentiated again.
        """
        if self._rule is None:
            raise RuntimeError(f"op {self.name!r} has no derivative rule; attach one with "
                               f"@{self.name}.rule")
        inputs = node.inputs
        needs = tuple([isinstance(x, Tensor) and x.requires_grad for x in inputs])
        if self._rule_extras:
            extras: dict[str, Any] = {}
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
        self._check_count(grads, inputs)
        result: list[Tensor | None] = []
        for x, need, gx in zip(inputs, needs, grads):
            if not need or gx is None:
                result.append(None)
                continue
            if not isinstance(gx, Tensor):
                gx = _make(_backend.asarray(gx, device=_backend.device_of(x.data)), False, None)
            # Broadcasting is undone here, once, for every op.
            data, target = gx.data, x.data
            if data.shape != target.shape:
                gx = apply(_OPS["sum_to"], (gx,), {"shape": target.shape})
            if data.dtype != target.dtype:
                gx = apply(_OPS["cast"], (gx,), {"dtype": target.dtype})
            result.append(gx)
        return tuple(result)

    def vjp_arrays(self, node: Node, g: Any) -> tuple:
        """The first-order rule at ``node`` on plain arrays (the engine's unrecorded path).

        Uses the fast rule when the op has one, else the Tensor rule (run unrecorded).
        Gradients for inputs that need none may come back as computed: the engine skips
        them.
        """
        fast = self._fast
        if fast is None:
            return tuple([None if gx is None else gx.data
                          for gx in self.vjp(node, _make(g, False, None))])
        arrays = node.arrays
        extras_wanted = self._fast_extras
        if extras_wanted == ("needs",):  # the common case, spelled out: this runs per node
            needs = tuple([isinstance(x, Tensor) and x.requires_grad for x in node.inputs])
            grads = fast(node.xp, g, *arrays, needs=needs, **node.params)
        elif extras_wanted:
            extras: dict[str, Any] = {}
            for key in self._fast_extras:
                extras[key] = (node.value if key == "out" else node.saved if key == "saved"
                               else tuple([isinstance(x, Tensor) and x.requires_grad
                                           for x in node.inputs]))
            grads = fast(node.xp, g, *arrays, **extras, **node.params)
        elif node.params:
            grads = fast(node.xp, g, *arrays, **node.params)
        else:
            grads = fast(node.xp, g, *arrays)
        if type(grads) is not tuple:
            grads = (grads,)
        if len(grads) != len(arrays):
            self._check_count(grads, node.inputs)
        if not (self.reshapes_grads and node.reshapes):
            return grads
        result: list[Any] = []
        for x, gx in zip(node.inputs, grads):
            if gx is not None and isinstance(x, Tensor):
                target = x.data
                if gx.shape != target.shape:
                    gx = sum_to_shape(node.xp, gx, target.shape)
                if gx.dtype != target.dtype:
                    gx = node.xp.astype(gx, target.dtype)
            result.append(gx)
        return tuple(result)

    def _check_count(self, grads: tuple, inputs: tuple) -> None:
        if len(grads) != len(inputs):
            raise RuntimeError(f"the derivative rule of {self.name!r} returned {len(grads)} "
                               f"gradient(s) for {len(inputs)} input(s)")

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def apply(op: OpDef, inputs: tuple, params: dict) -> Tensor:
    """Run ``op`` forward on ``inputs`` and, when a gradient will be needed, record a Node.

    This is the cpu (NumPy) path; an input on another device hands the op to
    :func:`_apply_on_device` (one type check per tensor input is all the cpu pays).
    """
    if _watched:  # a debugging mode was entered somewhere: is one on in this context?
        watcher = observer()
        if watcher is not None:  # yes: it runs the op (see flowgrad.anomaly)
            return watcher.apply(op, inputs, params)
    arrays = []
    needs_grad = versioned = False
    dtype = None
    uniform = True  # every array input has one floating dtype: no promotion to do
    for x in inputs:
        if isinstance(x, Tensor):
            data = x.data
            if type(data) is not _ndarray:
                return _apply_on_device(op, inputs, params)
            arrays.append(data)
            if x.requires_grad:
                needs_grad = True
            if x._vc is not None:
                versioned = True
            if dtype is None:
                dtype = data.dtype
            elif data.dtype is not dtype:
                uniform = False
        elif x is None or type(x) in _SCALARS:
            arrays.append(x)
        elif isinstance(x, _ndarray):
            arrays.append(x)
            uniform = False
        elif isinstance(x, _backend.generic):
            arrays.append(x.item())  # host: a NumPy scalar acts as a Python number (PyTorch)
        elif _backend.is_array(x):
            return _apply_on_device(op, inputs, params)  # an array of another device
        else:
            arrays.append(_backend.asarray(x))
            uniform = False
    if op.promote is not None and not (uniform and dtype is not None and dtype.kind == "f"):
        arrays = op.promote(arrays)
    xp = _xp
    token = _quiet()
    try:
        out = op.forward(xp, *arrays, **params)
    except ShapeError:
        raise
    except ValueError as exc:
        raise _forward_error(op, exc) from None
    finally:
        _loud(token)
    saved = None
    if op.saves:
        out, saved = out
    if type(out) is not _ndarray:
        # A NumPy scalar from a full reduction (an array of a device, from to_device, stays).
        out = out if isinstance(out, _backend.array_types) else _np_asarray(out)
    if needs_grad and op.differentiable and grad_enabled():
        versions = None
        if versioned and op.saves_inputs:
            versions = tuple([x._version for x in inputs if isinstance(x, Tensor)])
        node = Node(op, inputs, arrays, params, out, saved, versions, xp)
        if op.reshapes_grads and uniform:
            # Every tensor input has the output's shape and dtype: its gradient will too.
            shape = out.shape
            node.reshapes = False
            for a in arrays:
                if type(a) is _ndarray and a.shape != shape:
                    node.reshapes = True
                    break
    else:
        node = None
    # Tensor._make, inlined: this line runs once per op.
    result = _make(out, node is not None, node)
    view = op.view
    if view and (view is True or view(params)):
        # A view shares its input's memory, so it shares the in-place version counter.
        base = inputs[0]
        result._vc = base._shared_version()
        result._base = base if base._base is None else base._base
    return result


def _forward_error(op: OpDef, exc: ValueError) -> Exception:
    """A forward's ValueError as flowgrad's: a ShapeError when about shapes, named by op."""
    message = str(exc)
    kind = ShapeError if "shape" in message or "broadcast" in message else ValueError
    if not message.startswith(f"{op.name}:"):
        message = f"{op.name}: {message}"
    return kind(message)


def _apply_on_device(op: OpDef, inputs: tuple, params: dict) -> Tensor:
    """:func:`apply` when an input lives on another device than the cpu: the same steps,
    with the namespace of that device, resolved once for the op."""
    arrays: list = []
    needs_grad = versioned = False
    dtype = None
    uniform = True
    for x in inputs:
        if isinstance(x, Tensor):
            data = x.data
            arrays.append(data)
            needs_grad = needs_grad or x.requires_grad
            versioned = versioned or x._vc is not None
            if dtype is None:
                dtype = data.dtype
            elif data.dtype is not dtype:
                uniform = False
        elif x is None or type(x) in _SCALARS:
            arrays.append(x)
        elif isinstance(x, _backend.generic):
            arrays.append(x.item())  # host: a NumPy scalar acts as a Python number (PyTorch)
        else:
            arrays.append(x if _backend.is_array(x) else _backend.asarray(x))
            uniform = False
    xp, params = _device_namespace(op, inputs, arrays, params)
    dtype = None if dtype is None else _backend.host_dtype(dtype)
    if op.promote is not None and not (uniform and dtype is not None and dtype.kind == "f"):
        arrays = op.promote(arrays)
    token = _quiet()
    try:
        out = op.forward(xp, *arrays, **params)
    except ShapeError:
        raise
    except ValueError as exc:
        raise _forward_error(op, exc) from None
    finally:
        _loud(token)
    saved = None
    if op.saves:
        out, saved = out
    node = None
    if needs_grad and op.differentiable and grad_enabled():
        versions = None
        if versioned and op.saves_inputs:
            versions = tuple([x._version for x in inputs if isinstance(x, Tensor)])
        node = Node(op, inputs, arrays, params, out, saved, versions, xp)
        if op.reshapes_grads and uniform:
            node.reshapes = any(_backend.is_array(a) and a.shape != out.shape for a in arrays)
    result = _make(out, node is not None, node)
    view = op.view
    if view and (view is True or view(params)):
        base = inputs[0]
        result._vc = base._shared_version()
        result._base = base if base._base is None else base._base
    return result


def _device_namespace(op: OpDef, inputs: tuple, arrays: list, params: dict
                      ) -> tuple[Any, dict]:
    """The namespace of the device the op's tensors are on, and the op's arguments with
    host arrays in them (indices, masks) copied there. Arrays given as constants (not
    tensors) are copied to that device too; tensors on two devices are an error, as in
    PyTorch."""
    first: Any = None
    for x, a in zip(inputs, arrays):
        if isinstance(x, Tensor) or (_backend.is_array(a) and type(a) is not _ndarray):
            if first is None:
                first, where = a, a.device
            elif a.device != where:  # NumPy's "cpu", a CuPy Device, an array-api-strict one
                raise RuntimeError(f"{op.name}: expected all tensors to be on the same device, "
                                   f"but found at least two devices, "
                                   f"{_backend.device_of(first)} and {_backend.device_of(a)}")
    module = _backend.backend_of(first)
    module.use(module.device_index(first))
    if any([type(a) is _ndarray for a in arrays]) or params and any(
            [_holds_host_array(v) for v in params.values()]):
        found = _backend.device_of(first)
        for i, a in enumerate(arrays):
            if type(a) is _ndarray:
                arrays[i] = _backend.from_host(a, found)
        params = {k: _to(v, found) for k, v in params.items()}
    return module.xp, params


def _holds_host_array(value: Any) -> bool:
    if isinstance(value, tuple):
        return any(_holds_host_array(v) for v in value)
    return type(value) is _ndarray or isinstance(value, Tensor)


def _to(value: Any, device: Any) -> Any:
    """An op argument with its host arrays (and tensors' arrays) on ``device``."""
    if isinstance(value, tuple):
        return tuple(_to(v, device) for v in value)
    if isinstance(value, Tensor):
        value = value.data
    if type(value) is _ndarray:
        return _backend.from_host(value, device)
    return value


def op(name: str | None = None, *, method: bool = False, saves: bool = False,
       differentiable: bool = True, variadic: bool = False, varargs: str | None = None,
       promote: Callable[[list], list] | None = None,
       view: bool | Callable[[dict], bool] = False,
       saves_inputs: bool = True) -> Callable[[Callable], OpDef]:
    """Register a forward function as op ``name``; see the module docstring.

    Args:
        name: the op's name (default: the forward's name).
        method: also install it as ``Tensor.NAME``.
        saves: the forward returns ``(output, saved)``.
        differentiable: False for ops without a gradient (comparisons); never recorded.
        variadic: the inputs come as one sequence (``cat(tensors, dim)``).
        varargs: the keyword parameter that collects extra positional arguments
            (``reshape(x, 2, 3)`` gives ``shape=(2, 3)``).
        promote: how input dtypes are reconciled before the forward runs
            (:func:`promote_elementwise`, :func:`promote_to_float`, ...; None: as given).
        view: the output shares the first input's memory (reshape, transpose), so in-place
            changes to one are seen by the other's version counter; or a predicate on the
            op's arguments saying when it does (basic indexing does, fancy indexing copies).
        saves_inputs: False when the rule reads only the inputs' shapes and dtypes, never
            their values (add, reshape, sum): changing such an input in place afterwards
            does not invalidate the gradient.

    Example:
        >>> import flowgrad as fg
        >>> @fg.op()
        ... def softclip(xp, x):
        ...     return xp.tanh(x) * 2.0
        >>> @softclip.rule
        ... def _(g, x, out):
        ...     return g * (1.0 - (out / 2.0) ** 2) * 2.0
        >>> fg.gradcheck(softclip, [fg.randn(3)])
        True
    """

    def register(forward: Callable) -> OpDef:
        op_name = name or forward.__name__
        if op_name in _OPS:
            raise ValueError(f"op {op_name!r} is already registered")
        opdef = OpDef(op_name, forward, saves=saves, differentiable=differentiable,
                      variadic=variadic, varargs=varargs, promote=promote, view=view,
                      saves_inputs=saves_inputs)
        _OPS[op_name] = opdef
        if method:
            if op_name in Tensor.__dict__:
                raise ValueError(f"Tensor already has an attribute {op_name!r}")
            setattr(Tensor, op_name, _as_method(opdef))
        return opdef

    return register


def _as_method(opdef: OpDef) -> Callable:
    def method(self, *args, **kwargs):
        if args or kwargs or opdef.n_inputs != 1 or opdef.variadic or opdef.vararg:
            return opdef(self, *args, **kwargs)
        return apply(opdef, (self,), opdef.defaults.copy())  # x.relu(), x.sum(): the short way

    method.__name__ = opdef.name
    method.__doc__ = opdef.__doc__
    return method


# Python operators, by the name of the op they call; "r" marks reflected operands.
OPERATORS = {
    "__add__": "add", "__radd__": "r add", "__sub__": "sub", "__rsub__": "r sub",
    "__mul__": "mul", "__rmul__": "r mul", "__truediv__": "div", "__rtruediv__": "r div",
    "__pow__": "pow", "__rpow__": "r pow", "__matmul__": "matmul", "__rmatmul__": "r matmul",
    "__neg__": "neg", "__abs__": "abs",
    "__lt__": "lt", "__le__": "le", "__gt__": "gt", "__ge__": "ge", "__eq__": "eq", "__ne__": "ne",
}


def bind_operators() -> None:
    """Install the Python operators on Tensor, each calling its registered op."""
    for dunder, spec in OPERATORS.items():
        reflected, _, name = spec.rpartition(" ")
        opdef = _OPS[name]
        method = (_reflected(opdef) if reflected else
                  _unary(opdef) if opdef.n_inputs == 1 else _binary(opdef))
        method.__name__ = dunder
        setattr(Tensor, dunder, method)


def _unary(opdef: OpDef) -> Callable:
    def method(self: Tensor) -> Tensor:
        return apply(opdef, (self,), {})

    return method


def _binary(opdef: OpDef) -> Callable:
    def method(self: Tensor, other: Any) -> Tensor:
        return apply(opdef, (self, other), {})

    return method


def _reflected(opdef: OpDef) -> Callable:
    def method(self: Tensor, other: Any) -> Tensor:
        return apply(opdef, (other, self), {})

    return method
