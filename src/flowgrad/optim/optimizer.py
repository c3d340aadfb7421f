"""The optimizer base class: parameter groups, per-parameter state, and state dicts.

Layout and semantics follow ``torch.optim.Optimizer``:

* ``param_groups`` is a list of dicts, each with ``"params"`` (a list of Tensors) and the
  group's hyperparameters (``"lr"``, ...), filled from ``defaults`` where not given.
* ``state`` maps each parameter to a dict of its buffers (``"step"``, ``"exp_avg"``, ...).
* ``state_dict()`` is ``{"state": {index: {name: value}}, "param_groups": [{..., "params":
  [index, ...]}]}`` with parameters numbered across groups in order, so it can be saved
  with ``fg.save`` and loaded into a fresh optimizer over the same model, and training then
  continues exactly as if it had never stopped.

Subclasses implement one method, ``_update(p, g, state, group)``: the update rule for one
parameter's array ``p`` (changed in place) given its gradient array ``g`` (read only: it
may be a broadcast view shared with other tensors).
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flowgrad import _backend
from flowgrad._backend import xp
from flowgrad.graph import enable_grad
from flowgrad.tensor import Tensor


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class of the optimizers.

    Args:
        params: an iterable of Tensors, or of dicts defining parameter groups (each with a
            ``"params"`` entry and optional per-group hyperparameters).
        defaults: the hyperparameters a group gets when it does not set them.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors (or of dicts), got one "
                            "Tensor; wrap it in a list")
        if isinstance(params, (set, frozenset)):
            raise TypeError("parameters must be an ordered collection (their order numbers the "
                            "optimizer state), not a set; use a list")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines) + "\n)"

    # -- groups -----------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (e.g. a smaller lr).

        Args:
            param_group: ``{"params": tensors, **hyperparameters}``; missing
                hyperparameters come from the optimizer's defaults.

        Raises:
            TypeError: ``params`` is a set (no stable order) or holds non-Tensors.
            ValueError: a non-leaf tensor, a parameter already in another group, a missing
                required hyperparameter, or an invalid hyperparameter value.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group must be a dict, got {type(param_group).__name__}")
        params = param_group.get("params")
        if params is None:
            raise ValueError("a parameter group needs a 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("parameters must be an ordered collection (their order numbers the "
                            "optimizer state), not a set; use a list")
        else:
            params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"an optimizer can only optimize Tensors, got "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor (one computed from others); "
                                 "optimize the leaves it came from")
            if not _backend.is_floating(p.dtype):
                raise ValueError(f"can't optimize a tensor of dtype {p.dtype}: parameters must "
                                 "be floating point")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group holds the same parameter more than once")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group = dict(param_group)
        group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {key!r}")
            group.setdefault(key, default)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError for invalid hyperparameters in ``group`` (subclasses extend)."""
        _check_nonneg(group, "lr", "learning rate")

    # -- stepping ---------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``.grad = None`` (PyTorch's default), or fresh zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad = Tensor._make(_backend.namespace(p.data).zeros_like(p.data),
                                          False, None)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient (those whose ``.grad`` is None are
        skipped), in place.

        Args:
            closure: optional; re-evaluates the model and returns the loss (called first,
                with gradient recording on).

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data if isinstance(p.grad, Tensor) else xp.asarray(p.grad)
                if g.shape != p.data.shape:
                    raise ValueError(f"gradient of shape {g.shape} does not match its "
                                     f"parameter of shape {p.data.shape}")
                state = self.state.get(p)
                if state is None:
                    state = {}
                self._update(p.data, g, state, group)
                if state:
                    self.state[p] = state
        return loss

    def _update(self, p: Any, g: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Apply this optimizer's rule to one parameter array ``p`` in place."""
        raise NotImplementedError

    # -- state dicts ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout, as copies.

        Returns:
            ``{"state": {index: {name: array or number}}, "param_groups": [{hyperparameters,
            "params": [index, ...]}]}``; parameters are numbered 0, 1, ... across the groups
            in order. Buffers are copied, so the result is a snapshot.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for p, buffers in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: _copy_value(v) for k, v in buffers.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (for example after ``fg.load``).

        The parameters are matched by position: this optimizer must have been built over
        the same parameters, in the same groups and order. Buffers are copied (cast to each
        parameter's dtype) and the saved hyperparameters replace the current ones.

        Raises:
            ValueError: the groups or their sizes do not match, or a buffer's shape differs
                from its parameter's.
            KeyError: ``state_dict`` lacks ``"state"`` or ``"param_groups"``.
        """
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise KeyError(f"optimizer state dict has no {key!r} entry")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter group(s), "
                             f"this optimizer has {len(self.param_groups)}")
        by_index: dict[int, Tensor] = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {i} of the loaded state dict has "
                                 f"{len(saved['params'])} parameter(s), this optimizer's has "
                                 f"{len(group['params'])}")
            for idx, p in zip(saved["params"], group["params"]):
                by_index[int(idx)] = p
        new_state: dict[Tensor, dict[str, Any]] = {}
        for idx, buffers in state_dict["state"].items():
            p = by_index.get(int(idx))
            if p is None:
                raise ValueError(f"loaded state dict has state for parameter {idx}, which no "
                                 "parameter group lists")
            new_state[p] = {name: _restore_value(name, v, p) for name, v in buffers.items()}
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            merged = {k: v for k, v in group.items() if k != "params"}
            merged.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
            if isinstance(merged.get("betas"), list):
                merged["betas"] = tuple(merged["betas"])
            merged["params"] = group["params"]
            self._check_group(merged)
            new_groups.append(merged)
        self.state = new_state
        self.param_groups = new_groups


def _copy_value(value: Any) -> Any:
    if isinstance(value, Tensor):
        return _backend.copy(value.data)
    if _backend.is_array(value):
        return _backend.copy(value)
    return copy.deepcopy(value)


def _restore_value(name: str, value: Any, p: Tensor) -> Any:
    if name == "step":
        return int(value.item() if hasattr(value, "item") else value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    arr = value.data if isinstance(value, Tensor) else value
    if not _backend.is_array(arr):
        arr = xp.asarray(arr)
    if tuple(arr.shape) != tuple(p.data.shape):
        raise ValueError(f"state buffer {name!r} has shape {tuple(arr.shape)} but its parameter "
                         f"has shape {tuple(p.shape)}")
    # A private, writable copy in the parameter's dtype, on the parameter's device (as
    # PyTorch's load_state_dict): buffers are updated in place.
    moved = _backend.to_device(arr, p.device)
    return _backend.astype(moved, p.dtype, copy=moved is arr)


def _check_nonneg(group: dict[str, Any], key: str, what: str) -> None:
    value = group[key]
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{what} {key!r} must be a number, got {value!r}")
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"invalid {what}: {key}={value!r} (must be >= 0)")
