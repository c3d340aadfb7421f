"""See the gradient: graph drawings, chain-rule explanations and gradient-descent pictures.

* :func:`draw_graph` draws the dataflow graph behind any output (Graphviz DOT, SVG, PNG),
  with the value along each edge and, after ``backward(retain_graph=True)``, the gradient
  flowing back and each chain-rule factor.
* :func:`explain` spells out the chain rule for a formula such as ``"sigmoid(w*x + b)"``.
* :func:`compile_formula` parses the small, safe formula language the tools share.
* The gradient-descent runs (:mod:`flowgrad.viz.descent_runs`, no matplotlib), their
  pictures (:mod:`flowgrad.viz.descent`) and the derivative gallery
  (:mod:`flowgrad.viz.derivatives`): their public names are available here too.
* :mod:`flowgrad.viz.figures` is the one matplotlib helper every picture (training plots
  included) draws and saves through.

Submodules load on first use, so ``import flowgrad`` needs NumPy only and nothing here
imports matplotlib or Graphviz until a picture is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

# `explain` is both a submodule and its main function; binding the function here, at
# package import, keeps `flowgrad.viz.explain` the function even after the submodule loads.
from flowgrad.viz.explain import Explanation, explain, find_anomaly
from flowgrad.viz.formula import Formula, FormulaError, compile_formula, parse

_SUBMODULES = ("graph", "explain", "formula", "descent", "descent_runs", "derivatives",
               "figures", "surfaces")

# name -> submodule for this package's own lazily loaded names.
_LAZY: dict[str, str] = {
    "draw_graph": "graph",
    "GraphDrawing": "graph",
    "graph_source": "graph",
    "GraphFreedError": "graph",
}

# Submodules searched, in order, for any other name (their authors own their exports).
_OTHERS = ("descent_runs", "descent", "derivatives")

__all__ = [
    "Explanation",
    "Formula",
    "FormulaError",
    "GraphDrawing",
    "GraphFreedError",
    "compile_formula",
    "draw_graph",
    "explain",
    "find_anomaly",
    "graph_source",
    "parse",
]


def _import_optional(sub: str) -> Any | None:
    """Import ``flowgrad.viz.<sub>``, or None if that module itself does not exist."""
    full = f"{__name__}.{sub}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name == full:
            return None
        raise


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = _import_optional(name)
        if module is not None:
            return module
    elif not name.startswith("_"):
        for sub in _OTHERS:
            module = _import_optional(sub)
            if module is None:
                continue
            exported = getattr(module, "__all__", None)
            if (exported is None or name in exported) and hasattr(module, name):
                value = getattr(module, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    names = set(__all__) | set(_LAZY) | set(_SUBMODULES)
    for sub in _OTHERS:
        try:
            module = _import_optional(sub)
        except ImportError:  # e.g. a missing optional dependency: dir() should still work
            continue
        if module is not None:
            names.update(getattr(module, "__all__", ()))
    return sorted(names)
