"""Devices: where a tensor lives, moving between devices, the errors, and the proof on CPU.

``strict`` is array-api-strict's simulated device (``strict:0`` and ``strict:1``): it stands
in for a GPU here, so every device rule is checked on a machine without one. The tests marked
``portable`` also run with ``--backend strict`` (the default device then being ``strict:0``);
those under ``cuda`` run only where ``fg.cuda.is_available()``.
"""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import flowgrad as fg
from flowgrad import _backend, nn

PKG = Path(__file__).resolve().parents[1] / "src" / "flowgrad"

CUDA = pytest.mark.skipif(not fg.cuda.is_available(), reason="no CUDA GPU (CuPy) here")


def _other() -> str:
    """A device never the default one: array-api-strict's second simulated device, or the
    cpu when the default is a GPU (with --backend cuda)."""
    return "cpu" if fg.get_default_device().type == "cuda" else "strict:1"


def _home() -> fg.device:
    """The default device: cpu, or strict:0 with --backend strict."""
    return fg.get_default_device()


def _on(t: fg.Tensor, device) -> bool:
    return t.device == fg.device(device)


# ---------------------------------------------------------------- the device object


def test_device_objects_print_and_compare_as_pytorchs():
    assert str(fg.device("cpu")) == "cpu" and repr(fg.device("cpu")) == "device(type='cpu')"
    assert str(fg.device("cuda:1")) == "cuda:1"
    assert repr(fg.device("cuda", 1)) == "device(type='cuda', index=1)"
    assert fg.device("cuda", 0) == "cuda:0" and fg.device("cuda:0") != fg.device("cuda")
    assert fg.device(fg.device("strict:1")).index == 1
    assert fg.tensor([1.0], device="cpu").device == "cpu"
    assert str(fg.tensor([1.0], device="cpu").device) == "cpu"
    for bad in ("gpu", "cuda:x", "cuda:-1", "cpu:1"):
        with pytest.raises(RuntimeError):
            fg.device(bad)


@pytest.mark.portable
def test_every_creation_function_takes_device():
    there = _other()
    made = [fg.tensor([1.0, 2.0], device=there), fg.zeros(2, 3, device=there),
            fg.ones(2, device=there), fg.full((2,), 7.0, device=there),
            fg.arange(4, device=there), fg.linspace(0.0, 1.0, 5, device=there),
            fg.eye(3, device=there), fg.randn(2, device=there), fg.rand(2, device=there),
            fg.zeros_like(fg.ones(2), device=there), fg.ones_like(fg.ones(2), device=there)]
    for t in made:
        assert _on(t, _other()), t
    assert str(made[0].device) == str(fg.device(_other()))
    np.testing.assert_array_equal(made[4].cpu().numpy(), [0, 1, 2, 3])
    assert made[4].dtype == fg.int64 and made[0].dtype == fg.float32
    # *_like keep the device of their argument; a tensor made from a tensor keeps its device.
    assert _on(fg.zeros_like(made[1]), _other()) and _on(fg.tensor(made[0]), _other())
    assert fg.tensor(made[0]).data is not made[0].data


@pytest.mark.portable
def test_one_seed_gives_the_same_numbers_on_every_device():
    fg.manual_seed(0)
    here = fg.randn(3, 4).cpu().numpy()
    fg.manual_seed(0)
    there = fg.randn(3, 4, device=_other()).cpu().numpy()
    np.testing.assert_array_equal(here, there)
    fg.manual_seed(0)
    a = nn.Linear(5, 3).to(_other())
    fg.manual_seed(0)
    b = nn.Linear(5, 3)
    np.testing.assert_array_equal(a.weight.cpu().numpy(), b.weight.cpu().numpy())


# ---------------------------------------------------------------- moving tensors


@pytest.mark.portable
def test_to_cpu_and_dtype_conversions():
    t = fg.tensor([1.5, -2.0])
    assert t.to(t.device) is t and t.to(fg.float32) is t  # already there: itself
    moved = t.to(_other())
    assert _on(moved, _other()) and moved.dtype == fg.float32
    assert _on(moved.cpu(), "cpu") and moved.cpu().numpy().tolist() == [1.5, -2.0]
    both = t.to(_other(), fg.float64)
    assert _on(both, _other()) and both.dtype == fg.float64
    like = fg.zeros(1, dtype=fg.float64, device=_other())
    assert _on(t.to(like), _other()) and t.to(like).dtype == fg.float64  # dtype and device
    assert t.to(device=_other(), dtype=fg.int64).dtype == fg.int64
    assert t.to(t.device, copy=True) is not t


@pytest.mark.portable
def test_moving_is_differentiable_both_ways():
    w = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (w.to(_other()) * fg.tensor([2.0, 3.0, 4.0], device=_other())).sum()
    assert _on(y, _other()) and y.grad_fn.name == "sum"
    y.backward()
    assert _on(w.grad, w.device)
    np.testing.assert_allclose(w.grad.numpy(), [2.0, 3.0, 4.0])
    # Second order through a move (the Tensor rule moves the gradient back too).
    x = fg.tensor(1.5, dtype=fg.float64, requires_grad=True)
    d2 = fg.grad(fg.grad(lambda v: (v.to(_other()) ** 3).to(x.device)))(x)
    assert d2.item() == pytest.approx(9.0)


@pytest.mark.portable
def test_two_devices_in_one_op_is_an_error_naming_both():
    a = fg.ones(2)
    b = fg.ones(2, device=_other())
    with pytest.raises(RuntimeError, match=f"two devices, {a.device} and {fg.device(_other())}"):
        a + b
    with pytest.raises(RuntimeError, match="same device"):
        fg.matmul(b, a)
    with pytest.raises(RuntimeError, match="two devices"):
        a.add_(b)
    # A constant (NumPy data, not a tensor) goes where the tensors are.
    np.testing.assert_allclose((b + np.array([1.0, 2.0])).cpu().numpy(), [2.0, 3.0])


def test_numpy_on_another_device_points_to_cpu():
    # (Not portable: with --backend strict the tests themselves may read values back.)
    t = fg.ones(2, device="strict")
    with pytest.raises(TypeError, match=r"Tensor\.cpu\(\)"):
        t.numpy()
    with pytest.raises(TypeError, match="strict:0"):
        np.asarray(t)
    assert t.cpu().numpy().tolist() == [1.0, 1.0] and t.tolist() == [1.0, 1.0]
    assert float(t.sum()) == 2.0 and t.sum().item() == 2.0  # explicit reads are fine
    assert "device='strict:0'" in repr(t)


def test_default_device_makes_new_tensors_there():
    fg.set_default_device("strict:1")
    try:
        assert _on(fg.zeros(2), _other()) and _on(fg.tensor([1, 2]), _other())
        assert _on(nn.Linear(2, 2).weight, _other())  # layers make their weights there
        assert _on(nn.BatchNorm1d(2).running_mean, _other())
        assert fg.get_default_device() == "strict:1"
    finally:
        fg.set_default_device("cpu")
    assert fg.zeros(1).device == "cpu"


# ---------------------------------------------------------------- cuda: errors without it


def _forget_cuda(monkeypatch):
    """Make the seam import the cuda backend afresh (and forget one loaded before)."""
    monkeypatch.delitem(sys.modules, "flowgrad.backends.cupy_backend", raising=False)
    monkeypatch.delitem(_backend._LOADED, "cuda", raising=False)


def test_missing_cupy_says_so_and_how_to_install(monkeypatch):
    before = fg.get_default_device()
    _forget_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` fails, as uninstalled
    for make in (lambda: fg.zeros(2, device="cuda"), lambda: fg.ones(2).cuda(),
                 lambda: fg.ones(2).to("cuda:0"), lambda: nn.Linear(2, 2).to("cuda"),
                 lambda: fg.set_default_device("cuda")):
        with pytest.raises(RuntimeError, match="CuPy is not installed") as err:
            make()
        assert 'pip install "flowgrad[cuda12]"' in str(err.value)
    assert fg.cuda.is_available() is False and fg.cuda.device_count() == 0
    assert fg.get_default_device() == before


def _fake_cupy(count):
    """A stand-in CuPy module whose runtime reports ``count`` GPUs (or raises)."""
    fake = types.ModuleType("cupy")
    fake.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})

    class FakeArray:
        pass

    def get_count():
        if isinstance(count, Exception):
            raise count
        return count

    fake.ndarray = FakeArray
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_count))
    return fake


@pytest.mark.parametrize("count, message", [
    (0, "no CUDA GPU"),
    (RuntimeError("cudaErrorInsufficientDriver"), "no CUDA GPU is usable"),
])
def test_cupy_without_a_gpu_says_so(monkeypatch, count, message):
    _forget_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count))
    with pytest.raises(RuntimeError, match=message) as err:
        fg.zeros(2, device="cuda")
    assert "CuPy is installed" in str(err.value) and "device='cpu'" in str(err.value)
    assert not fg.cuda.is_available()


# ---------------------------------------------------------------- modules, optimizers, files


@pytest.mark.portable
def test_module_to_moves_parameters_buffers_and_grads_in_place():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    weight = net[0].weight
    net(fg.randn(5, 3)).sum().backward()
    assert net.to(_other()) is net and net[0].weight is weight
    for t in [*net.parameters(), *net.buffers()]:
        assert _on(t, _other())
    assert _on(weight.grad, _other())
    assert net[1].num_batches_tracked.dtype == fg.int64
    out = net(fg.randn(5, 3, device=_other()))
    assert _on(out, _other())
    net.to(fg.float64)
    assert weight.dtype == fg.float64 and _on(weight, _other())
    assert net.to(_home())[0].weight is weight and _on(weight, _home())


@pytest.mark.portable
@pytest.mark.parametrize("make", [
    lambda ps: fg.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: fg.optim.Adam(ps, lr=0.01, amsgrad=True),
    lambda ps: fg.optim.AdamW(ps, lr=0.01),
    lambda ps: fg.optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    lambda ps: fg.optim.Adagrad(ps, lr=0.1),
])
def test_optimizer_state_lives_on_the_parameters_device_and_moves_with_load(make):
    fg.manual_seed(1)
    net = nn.Linear(3, 2).to(_other())
    opt = make(net.parameters())
    for _ in range(2):
        opt.zero_grad()
        net(fg.randn(4, 3, device=_other())).pow(2).sum().backward()
        opt.step()
    arrays = [v for s in opt.state.values() for v in s.values() if _backend.is_array(v)]
    assert arrays and all(_backend.device_of(a) == _other() for a in arrays)
    # Its state dict loads into an optimizer of parameters on another device.
    twin = nn.Linear(3, 2)
    twin.load_state_dict(net.state_dict())
    assert _on(twin.weight, _home())
    opt2 = make(twin.parameters())
    opt2.load_state_dict(opt.state_dict())
    moved = [v for s in opt2.state.values() for v in s.values() if _backend.is_array(v)]
    assert moved and all(_backend.device_of(a) == _home() for a in moved)
    x = fg.randn(4, 3)
    for o, n, inp in ((opt, net, x.to(_other())), (opt2, twin, x)):
        o.zero_grad()
        n(inp).pow(2).sum().backward()
        o.step()
    np.testing.assert_allclose(twin.weight.cpu().numpy(), net.weight.cpu().numpy(), rtol=1e-6,
                               atol=1e-7)


@pytest.mark.portable
def test_save_on_one_device_load_with_map_location(tmp_path):
    net = nn.Linear(3, 2).to(_other())
    opt = fg.optim.Adam(net.parameters(), lr=0.1)
    net(fg.ones(1, 3, device=_other())).sum().backward()
    opt.step()
    path = tmp_path / "ckpt.npz"
    fg.save({"model": net.state_dict(), "optimizer": opt.state_dict()}, path)
    plain = np.load(path, allow_pickle=False)  # host arrays in an ordinary .npz
    assert plain["model/weight"].shape == (2, 3)
    state = fg.load(path)
    assert _on(state["model"]["weight"], "cpu")  # default: the cpu
    there = fg.load(path, map_location=_home())
    assert _on(there["model"]["weight"], _home()) and _on(there["model"]["bias"], _home())
    np.testing.assert_array_equal(there["model"]["weight"].cpu().numpy(),
                                  net.weight.cpu().numpy())
    assert isinstance(there["optimizer"]["state"][0]["exp_avg"], np.ndarray)
    back = nn.Linear(3, 2)
    back.load_state_dict(state["model"])
    np.testing.assert_array_equal(back.weight.cpu().numpy(), net.weight.cpu().numpy())
    with pytest.raises(RuntimeError, match="gpu"):
        fg.load(path, map_location="gpu")


# ---------------------------------------------------------------- training on any device


def _train_mlp(device, steps=5, optimizer="adam"):
    """A small MLP trained on ``device``; its losses and final weights (on the host)."""
    fg.manual_seed(0)
    rng = np.random.default_rng(0)
    x = fg.tensor(rng.standard_normal((32, 8)).astype(np.float32), device=device)
    y = fg.tensor(rng.integers(0, 3, 32), device=device)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
    net.to(device)
    make = {"adam": lambda ps: fg.optim.Adam(ps, lr=0.01),
            "sgd": lambda ps: fg.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)}
    opt = make[optimizer](net.parameters())
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    with fg.no_grad():
        accuracy = (net.eval()(x).argmax(dim=1) == y).sum().item()
    assert all(_on(p, device) for p in net.parameters())
    return losses, [p.cpu().numpy() for p in net.parameters()], accuracy


@pytest.mark.portable
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_mlp_trains_the_same_on_another_device(optimizer):
    here = _train_mlp(_home(), optimizer=optimizer)
    there = _train_mlp(_other(), optimizer=optimizer)
    assert here[0][-1] < here[0][0]
    np.testing.assert_allclose(there[0], here[0], rtol=1e-5)
    for a, b in zip(there[1], here[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert there[2] == here[2]


def test_train_runs_on_another_device_with_the_same_result(tmp_path):
    from flowgrad.training import TrainConfig, load_run, train

    def run(device, out):
        config = TrainConfig(epochs=2, hidden=16, batch_size=64, device=device,
                             out=str(tmp_path / out))
        return train(config, progress=False, plot=False)

    here, there = run("cpu", "cpu"), run(_other(), "other")
    assert all(_on(p, _other()) for p in there.model.parameters())
    assert there.config.device == _other()
    for a, b in zip(here.metrics, there.metrics):
        assert a.test_accuracy == b.test_accuracy
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5)
    saved = load_run(there.run_dir)  # the run folder reloads on the cpu
    assert _on(next(saved.model.parameters()), "cpu")


def test_train_cli_without_a_gpu_is_one_error_line(monkeypatch, capsys, tmp_path):
    from flowgrad.cli import main

    _forget_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "cupy", None)
    for device in ("cuda", "cuda:1"):
        assert main(["train", "--device", device, "--out", str(tmp_path / "run"),
                     "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("flowgrad train: error: cuda: CuPy is not installed")
        assert 'pip install "flowgrad[cuda12]"' in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
    assert main(["train", "--device", "gpu", "--out", str(tmp_path / "run")]) == 2
    assert "device must be cpu, cuda, cuda:N or auto" in capsys.readouterr().err
    from flowgrad.training import resolve_device

    assert resolve_device("auto") == "cpu"  # no GPU: auto is the cpu


def test_the_gpu_benchmark_case_runs_on_the_test_device():
    """``python -m benchmarks --device cuda`` takes the case mlp_train_cuda; here it runs on
    the strict device (no GPU needed) to check the case itself."""
    sys.path.insert(0, str(PKG.parents[1]))
    try:
        from benchmarks.cases import CASES, PROFILES, Context
        from benchmarks.harness import cases_for
    finally:
        sys.path.remove(str(PKG.parents[1]))
    assert cases_for("cpu") and "mlp_train_cuda" not in cases_for("cpu")
    assert "mlp_train_cuda" in cases_for("strict")  # (a GPU case runs on any non-cpu device)
    result = CASES["mlp_train_cuda"](Context(PROFILES["smoke"], None, 1, device="strict:0"))
    assert result.error is None
    assert result.checks and all(c.ok for c in result.checks), result.checks
    assert result.tables[0].rows[0][0] == "16" and result.data["16"]["samples_per_s"]["flowgrad"]


# ---------------------------------------------------------------- no hidden host round-trips

# Calls that read an array's values back (on a GPU: wait for it, copy to the host).
_READS = {"item", "tolist", "numpy"}
_REDUCTIONS = {"min", "max", "sum", "any", "all", "mean", "prod", "argmax", "argmin"}
# Namespace functions that answer from dtypes and shapes, never from values.
_METADATA = {"isdtype", "can_cast", "result_type", "broadcast_shapes", "finfo", "iinfo"}


def _reads_values(node: ast.AST) -> bool:
    """Whether an expression calls something that reads array values."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute):
            attr, owner = sub.func.attr, sub.func.value
            if attr in _READS or attr in _REDUCTIONS and not (isinstance(owner, ast.Name)
                                                             and owner.id in ("math",)):
                return True
            if isinstance(owner, ast.Name) and owner.id == "xp" and attr not in _METADATA:
                return True
    return False


def _guarded(test: ast.AST) -> bool:
    """``_backend.on_host(arr) and ...``: the value check runs on the host only."""
    return (isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And)
            and isinstance(test.values[0], ast.Call)
            and ast.unparse(test.values[0].func).endswith("on_host"))


def _host_round_trips(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if hasattr(node, "lineno") and "# host" in lines[node.lineno - 1]:
            continue  # documented: a host value by construction
        if isinstance(node, (ast.If, ast.While, ast.IfExp, ast.Assert)):
            if not _guarded(node.test) and _reads_values(node.test):
                found.append(f"{where}: a Python branch on array values")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("float", "int", "bool") and node.args \
                    and _reads_values(node.args[0]):
                found.append(f"{where}: {f.id}() of array values")
            elif isinstance(f, ast.Attribute) and f.attr in _READS:
                found.append(f"{where}: .{f.attr}() reads array values")
    return found


def test_ops_and_engine_never_read_device_values_back():
    files = [*sorted((PKG / "ops").glob("*.py")), PKG / "engine.py", PKG / "graph.py"]
    found = [f for path in files for f in _host_round_trips(path)]
    assert found == [], "hidden host round-trips:\n" + "\n".join(found)


def test_the_round_trip_scan_finds_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(xp, x, t):\n"
                   "    if t.max() >= 3:\n        pass\n"
                   "    n = int(xp.sum(x))\n"
                   "    v = x.item()\n"
                   "    return n if bool(x.any()) else v\n"
                   "def ok(xp, x):\n"
                   "    if _backend.on_host(x) and x.min() < 0:\n        pass\n"
                   "    if xp.isdtype(x.dtype, 'bool') and x.ndim == 2:\n        pass\n"
                   "    return float(max(x.shape)) + x.item()  # host: a NumPy scalar\n")
    assert sorted(f.split(": ", 1)[0] for f in _host_round_trips(bad)) == [
        "bad.py:2", "bad.py:4", "bad.py:5", "bad.py:6", "bad.py:6"]


# ---------------------------------------------------------------- a real GPU, when there is one


@CUDA
def test_cuda_tensors_train_like_the_cpu():
    here = _train_mlp("cpu")
    there = _train_mlp("cuda")
    np.testing.assert_allclose(there[0], here[0], rtol=1e-4)
    for a, b in zip(there[1], here[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@CUDA
def test_cuda_device_semantics():
    t = fg.ones(2, device="cuda")
    assert str(t.device) == "cuda:0" and t.is_cuda and fg.cuda.device_count() >= 1
    with pytest.raises(TypeError, match=r"Tensor\.cpu\(\)"):
        t.numpy()
    with pytest.raises(RuntimeError, match="cuda:0 and cpu"):
        t + fg.ones(2)
    assert t.cpu().numpy().tolist() == [1.0, 1.0] and _on(fg.ones(2).cuda(), "cuda:0")
