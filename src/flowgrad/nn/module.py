"""``Module`` and ``Parameter``: the containers that hold a network's weights.

A module registers what is assigned to its attributes: a :class:`Parameter` goes into
``_parameters``, a :class:`Module` into ``_modules`` (both ordered, by assignment), so
``named_parameters()`` and ``state_dict()`` can name every weight with PyTorch's dotted
paths (``"0.weight"``, ``"fc1.bias"``) without any bookkeeping in the subclass.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from flowgrad import _backend
from flowgrad._backend import xp
from flowgrad.errors import ShapeError
from flowgrad.methods import to_arguments
from flowgrad.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad and that a :class:`Module` registers as a weight.

    ``Parameter(t)`` shares ``t``'s array when it is already a writable floating array (as
    PyTorch's ``Parameter`` shares storage), and otherwise holds a float32 copy, so an
    optimizer can always update ``p.data`` in place. A tensor keeps its device; other data
    (NumPy arrays, lists) goes to the default device (see ``fg.set_default_device``), as
    PyTorch's layers create their weights there.

    Args:
        data: a Tensor, NumPy array, nested list or number (default: an empty float32 array).
        requires_grad: whether the parameter takes part in differentiation (default True).

    Example:
        >>> import flowgrad as fg
        >>> w = fg.nn.Parameter(fg.zeros(2, 3))
        >>> w.requires_grad, w.is_leaf, w.shape
        (True, True, (2, 3))
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True):
        if data is None:
            arr = xp.zeros((0,), dtype=_backend.default_float)
        else:
            arr = data.data if isinstance(data, Tensor) else data
            if not _backend.is_array(arr):
                arr = xp.asarray(arr)
            if not _backend.is_floating(arr.dtype):
                arr = _backend.astype(arr, _backend.default_float)
            elif _backend.on_host(arr) and not arr.flags.writeable:
                # Broadcast views and loaded files can be read-only; updates happen in place.
                arr = arr.copy()
        if not isinstance(data, Tensor) and _backend.on_host(arr):
            arr = _backend.to_device(arr, _backend.get_default_device())
        self.data = arr
        self.grad_fn = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _move(t: Tensor, device: Any, dtype: Any) -> None:
    """``t``'s array (and gradient) on ``device`` and in floating ``dtype``, in place."""
    for grad in (False, True):
        holder = t.grad if grad else t
        if holder is None:
            continue
        arr = holder.data
        if device is not None:
            arr = _backend.to_device(arr, device)
        if dtype is not None and _backend.is_floating(arr.dtype) and \
                _backend.host_dtype(arr.dtype) != dtype:
            arr = _backend.astype(arr, dtype)
        if arr is not holder.data:
            if grad:
                t.grad = Tensor._make(arr, False, None)
            else:
                t.data = arr


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` did not match (empty lists when strict)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and network.

    Subclasses call ``super().__init__()`` first, assign parameters and submodules as
    attributes, and define ``forward``; calling the module calls ``forward``.

    Example:
        >>> import flowgrad as fg
        >>> class MLP(fg.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc1 = fg.nn.Linear(4, 8)
        ...         self.fc2 = fg.nn.Linear(8, 2)
        ...     def forward(self, x):
        ...         return self.fc2(fg.relu(self.fc1(x)))
        >>> [name for name, _ in MLP().named_parameters()]
        ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
    """

    training: bool

    def __init__(self) -> None:
        # object.__setattr__ because our own __setattr__ needs these dicts to exist.
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration -----------------------------------------------------------------------
    def _registry(self, kind: str) -> OrderedDict:
        try:
            return self.__dict__[kind]
        except KeyError:
            raise AttributeError(
                f"cannot assign {kind[1:-1]}s before {type(self).__name__}.__init__() has "
                "called super().__init__()") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self._forget(name)
            self._registry("_parameters")[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            self._registry("_modules")[name] = value
        elif name in self.__dict__.get("_parameters", {}):
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(a Parameter or None is expected)")
            self._parameters[name] = None
        elif name in self.__dict__.get("_modules", {}):
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module "
                                f"{name!r} (a Module or None is expected)")
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", {}):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                "(a Tensor or None is expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        """Drop ``name`` from wherever it was, so it lives in exactly one place."""
        self.__dict__.pop(name, None)
        for kind in ("_parameters", "_buffers", "_modules"):
            self.__dict__.get(kind, {}).pop(name, None)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: registered entries live in the dicts.
        d = self.__dict__
        parameters = d.get("_parameters")
        if parameters is not None and name in parameters:
            return parameters[name]
        for kind in ("_buffers", "_modules"):
            if kind in d and name in d[kind]:
                return d[kind][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for kind in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(kind, {}):
                del self.__dict__[kind][name]
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        names = list(super().__dir__())
        for kind in ("_parameters", "_buffers", "_modules"):
            names.extend(self.__dict__.get(kind, {}))
        return sorted(set(names))

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or a placeholder None, as for ``Linear(bias=False)``)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot register {type(param).__name__} as parameter {name!r} "
                            "(a Parameter or None is expected)")
        self._check_name(name)
        self._forget(name)
        self._registry("_parameters")[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None,
                        persistent: bool = True) -> None:
        """Register a non-trainable tensor (e.g. running statistics) under ``name``.

        Buffers move with :meth:`to` and, when ``persistent`` (the default), are saved in
        the state dict, as in PyTorch.
        """
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot register {type(tensor).__name__} as buffer {name!r} "
                            "(a Tensor or None is expected)")
        self._check_name(name)
        self._forget(name)
        self._registry("_buffers")[name] = tensor
        transient = self.__dict__.setdefault("_non_persistent_buffers", set())
        if persistent:
            transient.discard(name)
        else:
            transient.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as child ``name`` (what attribute assignment does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module")
        self._check_name(name)
        self._forget(name)
        self._registry("_modules")[name] = module

    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"invalid name {name!r}: a non-empty string without '.' is needed")

    # -- traversal --------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every submodule (each once), with dotted names; self is ``""``."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        # Explicit stack in pre-order (children pushed reversed), as PyTorch orders them.
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and every submodule."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct submodules with their attribute names."""
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        """The direct submodules."""
        for _, module in self.named_children():
            yield module

    def named_parameters(self, prefix: str = "",
                         recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted name (``"fc1.weight"``, ``"0.bias"``).

        A parameter shared by several modules is listed once, under its first name.
        """
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter, in registration order (what an optimizer takes)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Every registered buffer with its dotted name."""
        for module_name, module in self.named_modules(prefix):
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buf

    def buffers(self) -> Iterator[Tensor]:
        for _, buf in self.named_buffers():
            yield buf

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first) and on self; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- training helpers -------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``.grad = None`` (PyTorch's default), or zeros."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                # A fresh array: the old grad may be a read-only view shared with others.
                p.grad = Tensor._make(_backend.namespace(p.data).zeros_like(p.data), False,
                                      None)

    def train(self, mode: bool = True) -> Module:
        """Set ``training`` on this module and every submodule; returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode) expects a bool, got {type(mode).__name__}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``; returns self."""
        return self.train(False)

    def to(self, *args: Any, dtype: Any = None, device: Any = None) -> Module:
        """Move the parameters and buffers to ``device`` and/or convert the floating ones to
        ``dtype``, in place: the same Parameter objects (their ``.data`` and ``.grad``
        replaced), so an optimizer made before keeps them, as in PyTorch. Integer buffers
        (such as ``num_batches_tracked``) keep their dtype. ``device`` is a string such as
        ``"cuda"``, a :class:`~flowgrad.device`, or a tensor's device.

        Returns:
            self.
        """
        dtype, device = to_arguments(args, dtype, device)
        target = None if device is None else _backend.as_device(device)
        if dtype is not None:
            dtype = xp.dtype(dtype)
            if not _backend.is_floating(dtype):
                raise TypeError(f"Module.to only accepts floating dtypes, got {dtype}")
        for module in self.modules():
            for kind in ("_parameters", "_buffers"):
                for t in module.__dict__[kind].values():
                    if t is not None:
                        _move(t, target, dtype)
        return self

    def cpu(self) -> Module:
        """``to("cpu")``."""
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Module:
        """``to("cuda")`` (or the GPU ``device``, an index)."""
        return self.to("cuda" if device is None else _backend.as_device(
            _backend.device("cuda", device) if isinstance(device, int) else device))

    def float(self) -> Module:
        """``to(float32)``."""
        return self.to(_backend.float32)

    def double(self) -> Module:
        """``to(float64)``."""
        return self.to(_backend.float64)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Switch ``requires_grad`` of every parameter (freeze with False); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Every parameter and buffer by dotted name, as detached Tensors.

        The values share their arrays with the module (as in PyTorch), so copy them (or
        save them with ``fg.save``) to keep a snapshot while training goes on.
        """
        out: OrderedDict[str, Tensor] = OrderedDict()
        for key, t in self._state_items():
            out[key] = t.detach()
        return out

    def _state_items(self) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) of every parameter and persistent buffer."""
        for module_name, module in self._all_named_modules():
            transient = module.__dict__.get("_non_persistent_buffers", ())
            for kind in ("_parameters", "_buffers"):
                for name, t in module.__dict__[kind].items():
                    if t is not None and not (kind == "_buffers" and name in transient):
                        yield (f"{module_name}.{name}" if module_name else name), t

    def _all_named_modules(self) -> Iterator[tuple[str, Module]]:
        # Unlike named_modules, shared submodules appear under every name, as in PyTorch's
        # state_dict, so each path in the state dict can be loaded back.
        stack = [("", self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def load_state_dict(self, state_dict: Mapping[str, Any],
                        strict: bool = True) -> IncompatibleKeys:
        """Copy values from ``state_dict`` into this module's parameters and buffers, in place.

        Nothing is changed unless every check passes.

        Args:
            state_dict: dotted name -> Tensor, array or nested list (as from
                :meth:`state_dict` or ``fg.load``).
            strict: missing and unexpected keys are errors (default); with False they are
                only reported in the result.

        Returns:
            ``IncompatibleKeys(missing_keys, unexpected_keys)``.

        Raises:
            RuntimeError: missing or unexpected keys (strict), naming each key.
            ShapeError: a value whose shape differs from the parameter's, naming the key and
                both shapes (also when not strict).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict expects a mapping of names to tensors, got "
                            f"{type(state_dict).__name__}")
        own: dict[str, Tensor] = dict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        values: dict[str, Any] = {}
        mismatched = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            arr = value.data if isinstance(value, Tensor) else value
            if not _backend.is_array(arr):
                arr = xp.asarray(arr)
            if tuple(arr.shape) != tuple(target.shape):
                mismatched.append(f"size mismatch for {key!r}: copying a value of shape "
                                  f"{tuple(arr.shape)} from the state dict, the shape in the "
                                  f"current model is {tuple(target.shape)}")
            values[key] = arr
        problems = []
        if strict and missing:
            problems.append("missing key(s) in state_dict: " + ", ".join(map(repr, missing)))
        if strict and unexpected:
            problems.append("unexpected key(s) in state_dict: "
                            + ", ".join(map(repr, unexpected)))
        problems.extend(mismatched)
        if problems:
            message = (f"error(s) in loading state_dict for {type(self).__name__}:\n\t"
                       + "\n\t".join(problems))
            if strict and (missing or unexpected):
                raise RuntimeError(message)
            raise ShapeError(message)
        for key, arr in values.items():
            # In place, so optimizers and other references keep pointing at the same arrays.
            target = own[key]
            arr = _backend.to_device(arr, target.device)
            if _backend.host_dtype(arr.dtype) != target.dtype:
                arr = _backend.astype(arr, target.dtype)  # (NumPy would cast on assignment)
            target.data[...] = arr
        return IncompatibleKeys(missing, unexpected)

    # -- calling and printing ---------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Calling a module calls its forward: a class that defines forward gets it as
        # __call__ itself, which saves a Python call per layer per step.
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__ and "__call__" not in cls.__dict__:
            cls.__call__ = cls.forward  # type: ignore[method-assign]

    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (its settings)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        modules = self.__dict__.get("_modules", {})
        for name, module in modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        head = type(self).__name__ + "("
        if not lines:
            return head + ")"
        if len(lines) == 1 and not modules:
            return head + lines[0] + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
