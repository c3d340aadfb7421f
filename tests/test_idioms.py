"""What a PyTorch user types on day one: promotion, in-place updates, views, NumPy interop,
pickling and grad mode per thread, each as the user would hit it."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

import flowgrad as fg

# ---------------------------------------------------------------- type promotion

I64 = np.array([1, 2, 3], dtype=np.int64)
I32 = np.array([1, 2, 3], dtype=np.int32)
F32 = np.array([1.0, 2.0, 3.0], dtype=np.float32)
F64 = np.array([1.0, 2.0, 3.0], dtype=np.float64)
B = np.array([True, False, True])

# (left, right, op, expected dtype) as PyTorch gives them.
PROMOTION = [
    (I64, 0.5, "add", "float32"),
    (I64, 2, "mul", "int64"),
    (I32, 2, "mul", "int32"),
    (I64, I64, "div", "float32"),
    (I64, 2, "div", "float32"),
    (I64, F32, "add", "float32"),
    (I32, F64, "mul", "float64"),
    (F32, F64, "add", "float64"),
    (F32, np.float64(2.0), "add", "float32"),  # a NumPy scalar acts as a Python number
    (I64, np.float64(2.5), "add", "float32"),
    (F32, np.array(2.0), "mul", "float32"),   # 0-d float64 does not widen a float32 tensor
    (I64, np.array(2.5), "add", "float64"),   # ... but brings float to an integer one
    (F32, 2.0, "pow", "float32"),
    (I64, 0.5, "pow", "float32"),
    (B, 1, "add", "int64"),
    (B, 1.5, "add", "float32"),
    (B, B, "add", "bool"),
    (F32, 1e300, "add", "float32"),  # a Python scalar never widens a floating tensor
    (I64, F32, "maximum", "float32"),
]


def _operand(v):
    return fg.tensor(v) if isinstance(v, np.ndarray) and v.ndim else v


@pytest.mark.parametrize("left,right,name,expected", PROMOTION,
                         ids=[f"{np.asarray(a).dtype}-{type(b).__name__}-{n}"
                              for a, b, n, _ in PROMOTION])
def test_binary_ops_promote_as_pytorch(left, right, name, expected):
    out = getattr(fg, name)(fg.tensor(left), _operand(right))
    assert out.dtype == np.dtype(expected)


@pytest.mark.parametrize("left,right,name,expected", PROMOTION[:14])
def test_promotion_table_agrees_with_pytorch(left, right, name, expected):
    torch = pytest.importorskip("torch")
    tl = torch.from_numpy(np.asarray(left))
    r = right
    if isinstance(right, np.ndarray):
        r = torch.from_numpy(right)
    assert str(getattr(torch, name)(tl, r).dtype).removeprefix("torch.") == expected


def test_unary_float_functions_of_int_tensors_give_float32():
    x = fg.tensor([1, 4, 9])
    for f in (fg.exp, fg.log, fg.sqrt, fg.sin, fg.tanh, fg.sigmoid):
        assert f(x).dtype == np.float32, f.name
    assert fg.mean(x).dtype == np.float32
    np.testing.assert_allclose(fg.sqrt(x).numpy(), [1, 2, 3])
    assert fg.relu(x).dtype == np.int64 and fg.sum(x).dtype == np.int64


def test_an_int_batch_fed_to_linear_gives_the_layers_float32():
    fg.manual_seed(0)
    layer = fg.nn.Linear(3, 2)
    out = layer(fg.tensor([[1, 2, 3]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), layer(fg.tensor([[1.0, 2.0, 3.0]])).numpy())


def test_promoted_gradients_come_back_in_the_leafs_dtype():
    w = fg.tensor([1.0, 2.0], requires_grad=True)           # float32
    x = fg.tensor(np.array([3.0, 4.0]))                       # float64
    y = w * x
    assert y.dtype == np.float64
    y.sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 4.0])


# ---------------------------------------------------------------- in-place updates


def test_the_manual_sgd_loop_updates_the_same_leaf():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    x = fg.tensor([3.0, 4.0])
    memory = w.data
    for _ in range(3):
        loss = (w * x).sum()
        loss.backward()
        with fg.no_grad():
            w -= 0.1 * w.grad
        w.grad = None
    assert w.data is memory and w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.numpy(), [1.0 - 0.9, 2.0 - 1.2], rtol=1e-6)


def test_in_place_on_a_leaf_that_requires_grad_is_refused_outside_no_grad():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad.*no_grad"):
        w += 1
    with pytest.raises(RuntimeError, match="leaf"):
        w.zero_()
    with pytest.raises(RuntimeError, match="leaf"):
        w[0] = 5.0


def test_a_saved_input_changed_in_place_makes_backward_refuse():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    x = fg.tensor([3.0, 4.0])
    loss = (w * x).sum()
    x.mul_(2)  # mul saved x for w's gradient
    with pytest.raises(RuntimeError, match=r"modified by an in-place operation: input 1 of mul"):
        loss.backward()


def test_an_input_whose_values_the_rule_ignores_may_change():
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    x = fg.tensor([3.0, 4.0])
    loss = (w + x).sum()  # add's rule reads no values
    x.add_(1)
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])


def test_a_saved_output_changed_under_no_grad_makes_backward_refuse():
    a = fg.tensor([0.5, 1.0], requires_grad=True)
    y = a.exp()
    with fg.no_grad():
        y.add_(1)
    with pytest.raises(RuntimeError, match="the output of exp"):
        y.sum().backward()


def test_recorded_in_place_ops_differentiate_like_their_out_of_place_forms():
    a = fg.tensor([0.5, 1.0, -2.0], requires_grad=True, dtype=fg.float64)
    y = a.exp()
    y.mul_(a)       # y = exp(a) * a, recorded
    y += 1
    y.clamp_(max=3.0)
    assert y.grad_fn is not None and y.grad_fn.name == "clamp"
    y.sum().backward()
    x = a.detach().numpy()
    inside = np.exp(x) * x + 1 <= 3.0
    np.testing.assert_allclose(a.grad.numpy(), np.where(inside, np.exp(x) * (1 + x), 0.0))
    np.testing.assert_allclose(y.numpy(), np.minimum(np.exp(x) * x + 1, 3.0))


def test_item_assignment_is_recorded_and_routes_gradients():
    b = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = fg.tensor(5.0, requires_grad=True)
    z = b * 2
    z[1] = v * 3
    z.sum().backward()
    np.testing.assert_array_equal(z.numpy(), [2.0, 15.0, 6.0])
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 0.0, 2.0])
    assert v.grad.item() == 3.0


def test_fill_zero_and_copy_cut_the_gradient_to_the_old_values():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    src = fg.tensor([7.0, 8.0], requires_grad=True)
    y = a * 1.0
    y.copy_(src)
    (y * 2).sum().backward()
    np.testing.assert_array_equal(src.grad.numpy(), [2.0, 2.0])
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.0])
    t = fg.ones(3)
    t.fill_(4.0)
    t.zero_()
    np.testing.assert_array_equal(t.numpy(), [0.0, 0.0, 0.0])


def test_in_place_cannot_change_an_int_tensor_to_float():
    t = fg.tensor([1, 2, 3])
    with pytest.raises(RuntimeError, match="can't be cast"):
        t += 0.5
    t += 2
    np.testing.assert_array_equal(t.numpy(), [3, 4, 5])
    assert t.dtype == np.int64


def test_views_share_memory_and_the_version_counter():
    t = fg.arange(6).float()
    v = t.view(2, 3)
    row = t[2:4]
    v[0, 0] = 100.0
    row.mul_(10)
    np.testing.assert_array_equal(t.numpy(), [100, 1, 20, 30, 4, 5])
    assert t._version == v._version == row._version == 2
    with pytest.raises(RuntimeError, match="use .reshape"):
        fg.arange(6).float().view(2, 3).T.view(6)


def test_a_view_changed_in_place_invalidates_what_its_base_saved():
    a = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = fg.tensor([1.0, 1.0, 1.0])
    loss = (a * x).sum()
    x[0:2].add_(1.0)  # x, saved by mul, changes through its view
    with pytest.raises(RuntimeError, match="in-place"):
        loss.backward()


def test_clone_is_recorded_and_has_its_own_memory():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    c = a.clone()
    assert c.data is not a.data and c.grad_fn.name == "clone"
    (c * 3).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 3.0])


# ---------------------------------------------------------------- NumPy interop and friends


def test_numpy_array_copies_and_asarray_shares():
    t = fg.tensor([1.0, 2.0])
    snapshot = np.array(t)
    snapshot[0] = 99.0
    assert t.numpy()[0] == 1.0
    shared = np.asarray(t)
    shared[0] = 7.0
    assert t.numpy()[0] == 7.0
    w = fg.tensor([1.0, 2.0], requires_grad=True)
    np.testing.assert_array_equal(np.array(w), [1.0, 2.0])
    assert np.asarray(t, dtype=np.float64).dtype == np.float64


def test_python_conversions():
    assert [10, 20, 30][fg.tensor(1)] == 20
    assert fg.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert fg.tensor(2.5).tolist() == 2.5
    assert len(fg.zeros(4, 2)) == 4
    assert [r.tolist() for r in fg.tensor([[1, 2], [3, 4]])] == [[1, 2], [3, 4]]
    with pytest.raises(TypeError, match="integer tensors of a single element"):
        [1, 2][fg.tensor(1.0)]
    with pytest.raises(TypeError, match="0-d"):
        len(fg.tensor(1.0))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(fg.tensor([1.0, 2.0]))
    assert fg.ones(2, 3).size() == (2, 3) and fg.ones(2, 3).size(-1) == 3
    assert fg.tensor([1, 2]).to(fg.float64).dtype == np.float64
    x = fg.ones(2)
    assert x.to(fg.float32) is x
    assert x.long().dtype == np.int64 and x.double().dtype == np.float64


def test_a_leaf_pickles_as_its_values_and_a_graph_tensor_refuses():
    t = fg.tensor([1.0, 2.0], requires_grad=True)
    back = pickle.loads(pickle.dumps(t))
    assert back.requires_grad and back.tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match=r"detach\(\)"):
        pickle.dumps(t * 2)


# ---------------------------------------------------------------- grad mode per thread


def test_no_grad_in_one_thread_does_not_change_another():
    w = fg.tensor([1.0], requires_grad=True)
    inside = threading.Event()
    done = threading.Event()
    seen = {}

    def quiet():
        with fg.no_grad():
            inside.set()
            seen["quiet"] = (w * 2).requires_grad
            done.wait(5)

    def recording():
        inside.wait(5)
        seen["mode"] = fg.is_grad_enabled()
        seen["recording"] = (w * 2).requires_grad
        done.set()

    threads = [threading.Thread(target=quiet), threading.Thread(target=recording)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert seen == {"quiet": False, "mode": True, "recording": True}
    assert fg.is_grad_enabled()


def test_overlapping_no_grad_blocks_in_two_threads_leave_grad_mode_on():
    barrier = threading.Barrier(2)

    def work(delay_first: bool):
        with fg.no_grad():
            barrier.wait(5)
            if delay_first:
                barrier.wait(5)
        if not delay_first:
            barrier.wait(5)

    threads = [threading.Thread(target=work, args=(flag,)) for flag in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert fg.is_grad_enabled()
    assert (fg.tensor([1.0], requires_grad=True) * 2).requires_grad


def test_set_grad_enabled_works_as_call_and_as_context():
    with fg.set_grad_enabled(False):
        assert not fg.is_grad_enabled()
    assert fg.is_grad_enabled()
    fg.set_grad_enabled(False)
    try:
        assert not fg.is_grad_enabled()
    finally:
        fg.set_grad_enabled(True)

    @fg.no_grad()
    def f():
        return fg.is_grad_enabled()

    assert f() is False and fg.is_grad_enabled()


def test_leaf_gradients_are_private_arrays():
    a = fg.tensor([1.0, 2.0], requires_grad=True)
    b = fg.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.mul_(10)  # must not change b.grad
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])
    assert a.grad.data.flags.writeable and b.grad.data.flags.writeable


def test_relu_in_place_as_pytorch():
    # The CNN idiom nn.ReLU(inplace=True) / F.relu(x, inplace=True): same values and
    # gradients as the out-of-place form, the same tensor object returned.
    from flowgrad import nn
    from flowgrad.nn import functional as F

    x = fg.tensor([-1.5, 0.0, 2.0, -0.25, 3.0], requires_grad=True)
    h = x * 2.0
    out = h.relu_()
    assert out is h and h.tolist() == [0.0, 0.0, 4.0, 0.0, 6.0]
    (out * fg.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 6.0, 0.0, 10.0]  # 2 * upstream where x > 0
    with pytest.raises(RuntimeError, match="leaf"):
        fg.tensor([1.0], requires_grad=True).relu_()

    fg.manual_seed(0)
    plain = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    fg.manual_seed(0)
    inplace = nn.Sequential(nn.Linear(4, 3), nn.ReLU(inplace=True), nn.Linear(3, 2))
    data = fg.tensor(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    for model in (plain, inplace):
        model(data).square().sum().backward()
    for a, b in zip(plain.parameters(), inplace.parameters()):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    assert repr(inplace[1]) == "ReLU(inplace=True)" and repr(plain[1]) == "ReLU()"

    with fg.no_grad():
        t = fg.tensor([-2.0, 1.0])
        memory = t.data
        assert F.relu(t, inplace=True) is t and t.data is memory and t.tolist() == [0.0, 1.0]
        assert F.relu_(fg.tensor([-1.0])).tolist() == [0.0]


def _activations():
    from flowgrad import nn
    from flowgrad.nn import functional as F

    return {
        "leaky_relu": (lambda inplace: nn.LeakyReLU(0.2, inplace=inplace),
                       lambda h, inplace: F.leaky_relu(h, 0.2, inplace=inplace)),
        "elu": (lambda inplace: nn.ELU(0.5, inplace=inplace),
                lambda h, inplace: F.elu(h, 0.5, inplace=inplace)),
        "silu": (lambda inplace: nn.SiLU(inplace=inplace),
                 lambda h, inplace: F.silu(h, inplace=inplace)),
        "relu": (lambda inplace: nn.ReLU(inplace=inplace),
                 lambda h, inplace: F.relu(h, inplace=inplace)),
    }


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "silu", "relu"])
def test_activation_inplace_matches_out_of_place(name):
    layer, functional = _activations()[name]
    data = np.random.default_rng(1).standard_normal((6, 4))
    results = []
    for inplace in (False, True):
        x = fg.tensor(data, requires_grad=True)
        h = x * 1.5
        out = layer(inplace)(h)
        assert (out is h) == inplace
        (out * out).sum().backward()
        results.append((out.numpy().copy(), x.grad.numpy()))
        with fg.no_grad():
            h2 = fg.tensor(data * 1.5)
            y = functional(h2, inplace)
            assert (y is h2) == inplace
            np.testing.assert_array_equal(y.numpy(), out.numpy())
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-15)
