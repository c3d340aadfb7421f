"""Tensor creation, dtypes, attributes and methods, as API.md states them."""

from __future__ import annotations

import numpy as np
import pytest

import flowgrad as fg

# ---------------------------------------------------------------- fg.tensor and dtypes


def test_dtype_objects():
    assert np.dtype(fg.float32) == np.float32
    assert np.dtype(fg.float64) == np.float64
    assert np.dtype(fg.int64) == np.int64
    assert np.dtype(fg.bool_) == np.bool_


@pytest.mark.parametrize(
    "data, dtype",
    [
        (1.5, np.float32),
        ([1.0, 2.0], np.float32),
        ([[1, 2.5], [3, 4]], np.float32),
        (3, np.int64),
        ([1, 2, 3], np.int64),
        (True, np.bool_),
        (np.arange(3, dtype=np.int32), np.int32),
        (np.ones(2, dtype=np.float64), np.float64),
        (np.ones(2, dtype=np.float16), np.float16),
    ],
)
def test_tensor_dtype_inference(data, dtype):
    t = fg.tensor(data)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))


def test_tensor_dtype_and_requires_grad_kwargs():
    t = fg.tensor([1, 2], dtype=fg.float64, requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad and t.is_leaf
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
    assert not fg.tensor([1.0]).requires_grad


def test_tensor_of_array_copies():
    a = np.array([1.0, 2.0])
    t = fg.tensor(a)
    a[0] = 99.0
    assert t.numpy()[0] == 1.0


def test_tensor_of_tensor_copies_and_is_a_fresh_leaf():
    src = fg.tensor([1.0, 2.0], requires_grad=True)
    y = src * 2.0
    t = fg.tensor(y)
    assert t.is_leaf and t.grad_fn is None and not t.requires_grad
    src.data[0] = 50.0
    c = fg.tensor(src)
    src.data[1] = 60.0
    np.testing.assert_array_equal(c.numpy(), [50.0, 2.0])
    np.testing.assert_array_equal(t.numpy(), [2.0, 4.0])
    assert fg.tensor(src, dtype=fg.float64).dtype == np.float64


def test_requires_grad_on_integer_or_bool_raises():
    with pytest.raises((TypeError, ValueError, RuntimeError), match="(?i)float|dtype|int"):
        fg.tensor([1, 2]).requires_grad_()
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        fg.tensor([1, 2], requires_grad=True)
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        fg.tensor([True, False]).requires_grad_(True)
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        fg.zeros(3, dtype=fg.int64, requires_grad=True)


def test_requires_grad_flag_method():
    t = fg.tensor([1.0])
    assert t.requires_grad_() is t and t.requires_grad
    t.requires_grad_(False)
    assert not t.requires_grad
    fg.tensor([1, 2]).requires_grad_(False)  # turning it off is always fine


# ---------------------------------------------------------------- creation functions


@pytest.mark.parametrize("make", [fg.zeros, fg.ones])
def test_zeros_ones(make):
    fill = 0.0 if make is fg.zeros else 1.0
    for t in (make(2, 3), make((2, 3))):
        assert t.shape == (2, 3) and t.dtype == np.float32
        np.testing.assert_array_equal(t.numpy(), np.full((2, 3), fill))
    assert make(4).shape == (4,)
    t = make(2, dtype=fg.float64, requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad
    assert make(3, dtype=fg.int64).dtype == np.int64


def test_full_and_likes():
    t = fg.full((2, 2), 7.0)
    assert t.shape == (2, 2) and t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), np.full((2, 2), 7.0))
    assert fg.full((3,), 2.0, dtype=fg.float64).dtype == np.float64
    src = fg.tensor(np.ones((3, 1), dtype=np.float64))
    z, o = fg.zeros_like(src), fg.ones_like(src)
    assert z.shape == o.shape == (3, 1)
    assert z.dtype == o.dtype == np.float64
    np.testing.assert_array_equal(z.numpy(), 0.0)
    np.testing.assert_array_equal(o.numpy(), 1.0)
    assert fg.zeros_like(src, requires_grad=True).requires_grad
    assert fg.ones_like(fg.tensor([1, 2])).dtype == np.int64


def test_arange():
    a = fg.arange(5)
    assert a.dtype == np.int64
    np.testing.assert_array_equal(a.numpy(), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(fg.arange(2, 8, 2).numpy(), [2, 4, 6])
    b = fg.arange(1.0, 2.0, 0.25)
    assert b.dtype == np.float32
    np.testing.assert_allclose(b.numpy(), [1.0, 1.25, 1.5, 1.75])
    assert fg.arange(3, dtype=fg.float64).dtype == np.float64


def test_randn_rand_shapes_and_ranges():
    fg.manual_seed(0)
    r = fg.randn(200, 50)
    assert r.shape == (200, 50) and r.dtype == np.float32
    assert abs(float(r.numpy().mean())) < 0.05 and abs(float(r.numpy().std()) - 1) < 0.05
    u = fg.rand((300, 10))
    assert u.shape == (300, 10) and u.dtype == np.float32
    assert u.numpy().min() >= 0.0 and u.numpy().max() < 1.0
    assert abs(float(u.numpy().mean()) - 0.5) < 0.03
    assert fg.randn(3, dtype=fg.float64).dtype == np.float64
    assert fg.rand(2, requires_grad=True).requires_grad


def test_manual_seed_reproducibility():
    fg.manual_seed(1234)
    a, b = fg.randn(5), fg.rand(2, 2)
    fg.manual_seed(1234)
    c, d = fg.randn(5), fg.rand(2, 2)
    np.testing.assert_array_equal(a.numpy(), c.numpy())
    np.testing.assert_array_equal(b.numpy(), d.numpy())
    fg.manual_seed(1235)
    assert not np.array_equal(fg.randn(5).numpy(), a.numpy())


# ---------------------------------------------------------------- attributes and methods


def test_attributes():
    t = fg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert t.shape == (2, 3) and type(t.shape) is tuple
    assert all(type(n) is int for n in t.shape)
    assert t.ndim == 2 and fg.tensor(1.0).ndim == 0
    assert t.T.shape == (3, 2)
    np.testing.assert_array_equal(t.T.numpy(), np.arange(6.0).reshape(2, 3).T)
    assert t.is_leaf and t.grad_fn is None and t.grad is None
    y = t * 2.0
    assert not y.is_leaf and y.grad_fn is not None and y.requires_grad
    assert fg.tensor(1.0).is_leaf


def test_item_numel_numpy():
    v = fg.tensor(2.5).item()
    assert v == 2.5 and type(v) is float
    assert type(fg.tensor(3).item()) is int
    assert fg.tensor([[4.0]]).item() == 4.0
    with pytest.raises((ValueError, RuntimeError)):
        fg.tensor([1.0, 2.0]).item()
    assert fg.zeros(2, 3, 4).numel() == 24 and fg.tensor(1.0).numel() == 1
    t = fg.tensor([1.0, 2.0])
    assert isinstance(t.numpy(), np.ndarray)
    t.data = np.array([5.0, 6.0], dtype=np.float32)
    np.testing.assert_array_equal(t.numpy(), [5.0, 6.0])


def test_detach():
    x = fg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    d = y.detach()
    assert d.grad_fn is None and not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), [3.0, 6.0])
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 6.0])  # nothing flowed through d


def test_python_scalars_keep_float32():
    t = fg.tensor([1.0, 2.0])
    for out in (t * 2.5, 2.5 * t, t + 1, 1 - t, t / 3.0, 3.0 / t, t**2, 2.0**t, -t, t * 2):
        assert out.dtype == np.float32, out.dtype
    assert (fg.tensor([1.0], dtype=fg.float64) * 2.5).dtype == np.float64


def test_comparisons_give_bool_tensors():
    t = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for out, expected in (
        (t > 1.5, [False, True, True]),
        (t <= 2.0, [True, True, False]),
        (t == fg.tensor([1.0, 0.0, 3.0]), [True, False, True]),
        (t != 2.0, [True, False, True]),
        (t < np.array([2.0, 2.0, 2.0]), [True, False, False]),
        (t >= 3.0, [False, False, True]),
    ):
        assert isinstance(out, fg.Tensor) and out.dtype == np.bool_
        assert not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), expected)


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises((ValueError, RuntimeError)) as info:
        fg.ones(2, 3) @ fg.ones(4, 5)
    message = str(info.value)
    assert "(2, 3)" in message and "(4, 5)" in message, message


def test_ndarray_on_the_left():
    a = np.array([1.0, 2.0, 3.0])
    t = fg.tensor([10.0, 20.0, 30.0], requires_grad=True)
    for out, expected in (
        (a + t, a + 10 * a),
        (a * t, a * 10 * a),
        (a - t, a - 10 * a),
        (a / t, np.full(3, 0.1)),
    ):
        assert isinstance(out, fg.Tensor), type(out)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
        assert out.requires_grad
    m = np.eye(3)
    out = m @ t
    assert isinstance(out, fg.Tensor)
    np.testing.assert_allclose(out.numpy(), [10.0, 20.0, 30.0])
    (a * t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), a)


def test_in_place_data_update_does_not_touch_the_graph():
    p = fg.tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward()
    p.data -= 0.5 * p.grad.numpy()
    np.testing.assert_allclose(p.numpy(), [0.0, 0.0])
    assert p.is_leaf and p.requires_grad
