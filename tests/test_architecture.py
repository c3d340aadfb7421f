"""The core's shape: imports in one direction, and a Tensor surface that tools can see.

* The core modules import each other without a cycle (backend seam, errors, tensor, graph,
  creation, registry, op families, engine, methods, transforms), every import at the top.
* The ``TYPE_CHECKING`` declarations in ``tensor.py`` list exactly what the registry and
  ``methods.py`` install on Tensor at import time, with the same parameter names.
* A newcomer's script type-checks clean with mypy.
"""

from __future__ import annotations

import ast
import inspect
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import flowgrad as fg
from flowgrad.ops.registry import OPERATORS, OPS
from flowgrad.tensor import Tensor

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "flowgrad"
CORE = ["_backend", "errors", "tensor", "graph", "creation", "engine", "methods",
        "transforms", "anomaly", "gradcheck"] + [f"ops.{p.stem}" for p in (PKG / "ops").glob("*.py")
                                      if p.stem != "__init__"] + ["ops"]


def _path(module: str) -> Path:
    p = PKG.joinpath(*module.split("."))
    return p / "__init__.py" if p.is_dir() else p.with_suffix(".py")


def _runtime_imports(module: str) -> set[str]:
    """The flowgrad modules ``module`` imports at run time (not under TYPE_CHECKING)."""
    tree = ast.parse(_path(module).read_text())
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom) and node.module \
                    and node.module.startswith("flowgrad"):
                base = node.module.removeprefix("flowgrad").lstrip(".")
                for alias in node.names:
                    sub = f"{base}.{alias.name}" if base else alias.name
                    found.add(sub if sub in CORE else base)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("flowgrad."):
                        found.add(alias.name.removeprefix("flowgrad."))
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)

    visit(tree.body)
    return {m for m in found if m in CORE and m != module}


def test_core_imports_have_no_cycle():
    edges = {m: _runtime_imports(m) for m in CORE}
    # Depth-first search with colours; report the cycle if there is one.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import cycle in the core: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in CORE:
        if m not in state:
            visit(m)
    # The order the architecture promises, spot-checked.
    assert "tensor" in edges["graph"] and "graph" not in edges["tensor"]
    assert "engine" not in edges["ops.registry"]
    assert edges["_backend"] == set() and edges["errors"] == set()


def test_core_modules_import_only_at_the_top():
    for m in CORE + ["__init__"]:
        tree = ast.parse(_path(m).read_text() if m != "__init__"
                         else (PKG / "__init__.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
                assert not inner, f"{m}.{node.name} imports inside a function"


def _declared() -> dict[str, ast.FunctionDef]:
    tree = ast.parse((PKG / "tensor.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Tensor")
    block = next(n for n in cls.body if isinstance(n, ast.If)
                 and "TYPE_CHECKING" in ast.unparse(n.test))
    return {n.name: n for n in block.body if isinstance(n, ast.FunctionDef)}


def _defined_in_class_body() -> set[str]:
    tree = ast.parse((PKG / "tensor.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Tensor")
    names = set()
    for n in cls.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(n.name)
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_type_declarations_match_what_is_installed_on_tensor():
    installed = set(vars(Tensor)) - _defined_in_class_body() - {
        "__module__", "__doc__", "__slots__", "__dict__", "__weakref__", "data",
        "requires_grad", "grad_fn", "__annotations__", "grad", "_vc", "_base"}
    declared = set(_declared())
    assert installed - declared == set(), "installed on Tensor but not declared in tensor.py"
    assert declared - installed == set(), "declared in tensor.py but never installed"
    assert set(OPERATORS) <= declared


def test_declared_op_methods_have_the_ops_parameter_names():
    declared = _declared()
    for name, opdef in OPS.items():
        method = vars(Tensor).get(name)
        if method is None or getattr(method, "__name__", None) != name:
            continue
        params = [a.arg for a in declared[name].args.args[1:]]
        params += [a.arg for a in declared[name].args.kwonlyargs]
        if declared[name].args.vararg is not None:
            params.append(declared[name].args.vararg.arg)
        expected = [p.name for p in opdef.input_params[1:]] + list(opdef.param_names)
        assert params == expected, f"Tensor.{name}: declared {params}, op takes {expected}"


def test_operator_methods_call_their_ops():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    for dunder, spec in OPERATORS.items():
        name = spec.split()[-1]
        args = () if OPS[name].n_inputs == 1 else (fg.tensor([3.0, 4.0]),)
        out = getattr(x, dunder)(*args)
        if OPS[name].differentiable:
            assert out.grad_fn is not None and out.grad_fn.name == name, dunder


@pytest.mark.skipif(shutil.which("mypy") is None and not any(
    (Path(p) / "mypy").exists() for p in sys.path), reason="mypy is not installed")
def test_a_newcomers_script_type_checks_clean(tmp_path):
    script = tmp_path / "first_steps.py"
    script.write_text(textwrap.dedent("""
        import flowgrad as fg

        w = fg.tensor([0.5, -1.0], requires_grad=True)
        x = fg.tensor([2.0, 3.0])
        loss = (w * x + 1.0).sum() ** 2 / 2 - x @ w
        loss.backward()
        grad: fg.Tensor | None = w.grad
        assert grad is not None
        print(grad.numpy(), loss.item(), w.shape, (w > 0).tolist())
        with fg.no_grad():
            w -= 0.1 * grad
    """))
    env = {**os.environ, "MYPYPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
         "--python-version", "3.10", str(script)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


def test_public_op_decorator_is_the_registry_one():
    assert fg.op is inspect.unwrap(fg.ops.registry.op)
    with pytest.raises(TypeError):
        fg.ops.OPS["add"] = fg.ops.OPS["sub"]  # read-only
    assert not hasattr(fg, "OPS")
