"""The reverse sweep: depth, accumulation, graph lifetime, grad modes, the graph walk, memory."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import flowgrad as fg
from flowgrad.graph import walk

# Also run on array-api-strict's simulated device: python -m pytest --backend strict
pytestmark = pytest.mark.portable

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def default_recursion_limit():
    """Run at CPython's default limit (never above it), whatever the session set."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(min(old, 1000))
    yield sys.getrecursionlimit()
    assert sys.getrecursionlimit() == min(old, 1000), "the engine changed the recursion limit"
    sys.setrecursionlimit(old)


# ---------------------------------------------------------------- depth


@pytest.mark.parametrize("depth", [20_000, 100_000])
def test_deep_chain_backward(default_recursion_limit, depth):
    c = 1.0 + 1.0 / depth
    x = fg.tensor(1.0, dtype=fg.float64, requires_grad=True)
    y = x
    for _ in range(depth):
        y = y * c
    assert y.item() == pytest.approx(c**depth, rel=1e-9)
    y.backward()
    assert x.grad.item() == pytest.approx(c**depth, rel=1e-9)  # about e


def test_deep_chain_of_mixed_ops(default_recursion_limit):
    x = fg.tensor([0.5, -0.25], dtype=fg.float64, requires_grad=True)
    y = x
    for _ in range(3_000):
        y = ((y * 0.5).sin() * 2.0).exp().log()
    y.sum().backward()
    # the same recurrence and its derivative by hand
    v, d = np.array([0.5, -0.25]), np.ones(2)
    for _ in range(3_000):
        d = d * np.cos(v * 0.5)
        v = np.log(np.exp(np.sin(v * 0.5) * 2.0))
    np.testing.assert_allclose(y.numpy(), v, rtol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), d, rtol=1e-9)


def test_dropping_a_deep_unbackwarded_graph_does_not_crash():
    # A separate interpreter: a C-stack overflow while freeing would kill pytest itself.
    code = textwrap.dedent(
        """
        import gc, sys
        import flowgrad as fg
        assert sys.getrecursionlimit() <= 1000
        x = fg.tensor(1.0, requires_grad=True)
        y = x
        for _ in range(100_000):
            y = y * 1.0
        del y
        gc.collect()
        z = x
        for _ in range(100_000):
            z = (z + 1.0) * 0.5
        z = None
        gc.collect()
        print("ok")
        """
    )
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


# ---------------------------------------------------------------- accumulation


def test_fan_out_accumulates():
    x = fg.tensor(2.0, dtype=fg.float64, requires_grad=True)
    (x + x + x).backward()
    assert x.grad.item() == 3.0

    x = fg.tensor(2.0, dtype=fg.float64, requires_grad=True)
    a, b = x * 2.0, x * 3.0
    (a * b).backward()  # 6 x^2
    assert x.grad.item() == pytest.approx(24.0)


def test_diamond_through_a_shared_intermediate():
    x = fg.tensor([0.5, -1.0], dtype=fg.float64, requires_grad=True)
    h = x.exp()
    (h * h + h).sum().backward()
    e = np.exp([0.5, -1.0])
    np.testing.assert_allclose(x.grad.numpy(), (2 * e + 1) * e, rtol=1e-12)


def test_accumulates_into_existing_grad():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 5.0])
    assert x.grad.dtype == np.float32


def test_leaf_without_requires_grad_gets_no_grad():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    c = fg.tensor([3.0, 4.0])
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])


# ---------------------------------------------------------------- graph lifetime and errors


def test_second_backward_without_retain_graph_raises():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])  # 2 * 2x


def test_non_scalar_backward_needs_gradient():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError):
        y.backward()
    y.backward(gradient=fg.tensor([1.0, 10.0, 100.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 20.0, 200.0])


def test_gradient_of_the_wrong_shape_raises():
    x = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2.0
    with pytest.raises((ValueError, RuntimeError), match=r"\(3,\)|\(2,\)|shape"):
        y.backward(gradient=fg.tensor([1.0, 1.0]))


def test_backward_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError):
        fg.tensor(1.0).backward()


def test_graph_is_freed_after_backward():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 3.0).exp()
    loss = y.sum()
    nodes = walk(loss)
    assert all(n.value is not None for n in nodes)
    loss.backward()
    assert all(n.value is None for n in nodes)


def test_create_graph_gives_differentiable_grads():
    x = fg.tensor([1.0, -2.0], dtype=fg.float64, requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    gx = x.grad
    np.testing.assert_allclose(gx.numpy(), [3.0, 12.0])
    assert gx.requires_grad and gx.grad_fn is not None
    x.grad = None
    gx.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, -12.0])  # 6x


def test_plain_backward_grads_are_not_recorded():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    (x**2).sum().backward()
    assert x.grad.grad_fn is None and not x.grad.requires_grad


# ---------------------------------------------------------------- grad modes


def test_no_grad_context_records_nothing():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    with fg.no_grad():
        y = (x * 2.0).exp()
    assert y.grad_fn is None and not y.requires_grad
    z = x * 2.0  # recording resumes afterwards
    assert z.grad_fn is not None and z.requires_grad


def test_no_grad_decorator_records_nothing():
    @fg.no_grad()
    def double(t):
        return t * 2.0

    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = double(x)
    np.testing.assert_array_equal(y.numpy(), [2.0, 4.0])
    assert y.grad_fn is None and not y.requires_grad
    assert (x * 2.0).grad_fn is not None


def test_enable_grad_inside_no_grad():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    with fg.no_grad():
        with fg.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.grad_fn is not None
    assert z.grad_fn is None
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_no_grad_restores_mode_after_an_exception():
    x = fg.tensor([1.0], requires_grad=True)
    with pytest.raises(KeyError):
        with fg.no_grad():
            raise KeyError("boom")
    assert (x * 2.0).grad_fn is not None


# ---------------------------------------------------------------- the public walk and node fields


def test_walk_is_topological_and_nodes_hold_the_right_values():
    x = fg.tensor(np.array([0.5, -1.0]), requires_grad=True)
    w = fg.tensor(np.array([2.0, 3.0]), requires_grad=True)
    a = x * w
    b = a.exp()
    c = a + b
    d = c.sum()
    nodes = walk(d)
    assert [n.name for n in nodes][-1] == "sum"
    assert nodes[-1] is d.grad_fn
    assert len(nodes) == len({id(n) for n in nodes}) == 4
    assert {n.name for n in nodes} == {"mul", "exp", "add", "sum"}
    position = {id(n): i for i, n in enumerate(nodes)}
    for n in nodes:
        for inp in n.inputs:
            if isinstance(inp, fg.Tensor) and inp.grad_fn is not None:
                assert position[id(inp.grad_fn)] < position[id(n)]
    seqs = [n.seq for n in nodes]
    assert len(set(seqs)) == 4

    mul, exp, add = a.grad_fn, b.grad_fn, c.grad_fn
    assert mul.inputs[0] is x and mul.inputs[1] is w
    av = np.array([1.0, -3.0])
    np.testing.assert_allclose(mul.output().numpy(), av)
    np.testing.assert_allclose(exp.output().numpy(), np.exp(av))
    np.testing.assert_allclose(add.output().numpy(), av + np.exp(av))
    assert d.grad_fn.output().item() == pytest.approx(float(np.sum(av + np.exp(av))))
    np.testing.assert_allclose(exp.output().numpy(), np.exp(av))
    assert d.grad_fn.params.get("dim") is None

    d.backward(retain_graph=True)
    np.testing.assert_allclose(add.grad.numpy(), [1.0, 1.0])
    np.testing.assert_allclose(exp.grad.numpy(), [1.0, 1.0])
    np.testing.assert_allclose(exp.input_grads[0].numpy(), np.exp(av))
    np.testing.assert_allclose(mul.grad.numpy(), 1 + np.exp(av))  # two paths summed
    np.testing.assert_allclose(mul.input_grads[0].numpy(), (1 + np.exp(av)) * [2.0, 3.0])
    np.testing.assert_allclose(mul.input_grads[1].numpy(), (1 + np.exp(av)) * [0.5, -1.0])
    np.testing.assert_allclose(x.grad.numpy(), mul.input_grads[0].numpy())


def test_node_vjp_gives_local_derivatives():
    x = fg.tensor(2.0, dtype=fg.float64, requires_grad=True)
    y = fg.tensor(5.0, dtype=fg.float64, requires_grad=True)
    z = x * y
    dx, dy = z.grad_fn.vjp(1.0)
    assert dx.item() == 5.0 and dy.item() == 2.0
    s = x.sin()
    assert s.grad_fn.vjp(1.0)[0].item() == pytest.approx(np.cos(2.0))


def test_walk_records_params_and_broadcast_input_grads():
    x = fg.tensor(np.ones((2, 3)), requires_grad=True)
    b = fg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    s = (x + b).sum(dim=1, keepdim=True)
    assert s.grad_fn.name == "sum"
    assert s.grad_fn.params["dim"] in (1, (1,))
    assert s.grad_fn.params["keepdim"] is True
    s.backward(gradient=fg.tensor(np.ones((2, 1))), retain_graph=True)
    add = s.grad_fn.inputs[0].grad_fn
    assert add.input_grads[1].shape == (3,)  # already summed to b's shape
    np.testing.assert_array_equal(add.input_grads[1].numpy(), [2.0, 2.0, 2.0])


# ---------------------------------------------------------------- memory


def test_training_loop_memory_is_flat():
    rng = np.random.default_rng(0)
    x = fg.tensor(rng.standard_normal((16, 8)).astype(np.float32))
    y = fg.tensor(rng.integers(0, 3, size=16))
    params = [
        fg.tensor(rng.standard_normal(s).astype(np.float32) * 0.3, requires_grad=True)
        for s in ((12, 8), (12,), (3, 12), (3,))
    ]

    def step():
        w1, b1, w2, b2 = params
        loss = fg.cross_entropy(fg.linear(fg.linear(x, w1, b1).relu(), w2, b2), y)
        loss.backward()
        with fg.no_grad():
            for p in params:
                p.data -= 0.1 * p.grad.data
                p.grad = None
        return loss.item()

    first = step()
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(300):
            last = step()
            if i == 49:
                gc.collect()
                after_50 = tracemalloc.get_traced_memory()[0]
        gc.collect()
        after_300 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert last < first  # it trained
    # 8 KiB over 250 iterations is about 30 bytes each: one leaked object per step shows.
    assert after_300 - after_50 < 8 * 1024, (after_50, after_300)


def test_post_accumulate_grad_hook_sees_the_accumulated_grad_and_can_be_removed():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    (w * 3.0).sum().backward()
    (w * 3.0).sum().backward()
    assert [s.tolist() for s in seen] == [[3.0, 3.0], [6.0, 6.0]]
    handle.remove()
    (w * 3.0).sum().backward()
    assert len(seen) == 2
    with pytest.raises(RuntimeError, match="leaves"):
        (w * 2).register_post_accumulate_grad_hook(print)
