"""The tensor methods a PyTorch user reaches for on day one: products (mm, mv, dot, outer),
logical reductions (all, any), special values (isnan, isinf, isfinite, nan_to_num),
sorting (sort, argsort, topk), unbind, rounding (reciprocal, floor, ceil, round, trunc),
conversions (view_as, reshape_as, expand_as, type_as, bool, int, half) and new tensors like
an existing one (new_zeros, new_ones, new_full, new_tensor).

Hand-computed values first (also on the strict test backend), then errors, then the same
calls against PyTorch (skipped without it). Gradients at orders 1 and 2 are checked by the
op table (tests/op_table.py) and at the edges by tests/test_edge_derivatives.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import flowgrad as fg

inf, nan = math.inf, math.nan
portable = pytest.mark.portable


def _grad(fn, x):
    """d sum(fn(x))/dx for a float64 leaf holding ``x``."""
    t = fg.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    out = fn(t)
    out.sum().backward()
    return t.grad.numpy()


# ---------------------------------------------------------------- products


@portable
def test_mm_mv_dot_outer_values_and_gradients():
    a = fg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    b = fg.tensor([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]], requires_grad=True)
    v = fg.tensor([1.0, -1.0], requires_grad=True)
    assert a.mm(b).tolist() == [[5.0, 2.0, -1.0], [11.0, 4.0, -3.0], [17.0, 6.0, -5.0]]
    assert fg.mm(a, b).shape == (3, 3)
    assert a.mv(v).tolist() == [-1.0, -1.0, -1.0]
    assert fg.mv(a, v).shape == (3,)
    d = v.dot(fg.tensor([3.0, 5.0]))
    assert d.shape == () and d.item() == -2.0
    assert fg.dot(v, v).item() == 2.0
    o = fg.outer(fg.tensor([1.0, 2.0]), fg.tensor([3.0, 4.0, 5.0]))
    assert o.tolist() == [[3.0, 4.0, 5.0], [6.0, 8.0, 10.0]]
    assert v.outer(v).tolist() == [[1.0, -1.0], [-1.0, 1.0]]
    # d sum(a @ b)/da = ones @ b^T: row sums of b in every row.
    a.mm(b).sum().backward()
    assert a.grad.tolist() == [[0.0, 3.0]] * 3
    assert b.grad.tolist() == [[9.0] * 3, [12.0] * 3]
    two = fg.tensor([1.0, 2.0], dtype=fg.float64)
    assert _grad(lambda x: fg.outer(x, two), [3.0, 4.0]).tolist() == [3.0, 3.0]


@portable
def test_products_of_integers_stay_integers():
    m = fg.tensor([[1, 2], [3, 4]])
    assert m.mm(m).dtype == fg.int64 and m.mm(m).tolist() == [[7, 10], [15, 22]]
    assert fg.tensor([1, 2]).dot(fg.tensor([3, 4])).item() == 11
    assert fg.outer(fg.tensor([1, 2]), fg.tensor([3])).tolist() == [[3], [6]]


@pytest.mark.parametrize("call, shapes, words", [
    (lambda: fg.zeros(2, 3).mm(fg.zeros(4, 5)), "(2, 3) and (4, 5)", "cannot be multiplied"),
    (lambda: fg.zeros(2, 3).mm(fg.zeros(3)), "(2, 3) and (3,)", "2-D"),
    (lambda: fg.zeros(2, 3).mv(fg.zeros(4)), "(2, 3) and (4,)", "cannot be multiplied"),
    (lambda: fg.mv(fg.zeros(3), fg.zeros(3)), "(3,) and (3,)", "1-D vector"),
    (lambda: fg.zeros(3).dot(fg.zeros(4)), "(3,) and (4,)", "different numbers"),
    (lambda: fg.zeros(2, 2).dot(fg.zeros(2, 2)), "(2, 2) and (2, 2)", "1-D"),
    (lambda: fg.outer(fg.zeros(2, 1), fg.zeros(3)), "(2, 1) and (3,)", "1-D"),
])
def test_product_shape_errors_name_both_shapes(call, shapes, words):
    with pytest.raises(fg.ShapeError) as info:
        call()
    assert shapes in str(info.value) and words in str(info.value)
    assert isinstance(info.value, RuntimeError)  # what PyTorch raises


# ---------------------------------------------------------------- logical reductions


@portable
def test_all_and_any_with_dim_and_keepdim():
    x = fg.tensor([[1.0, 0.0, 2.0], [3.0, 4.0, 5.0]], requires_grad=True)
    assert x.all().item() is False and x.any().item() is True
    assert x.all(dim=1).tolist() == [False, True]
    assert fg.any(x == 0, dim=0).tolist() == [False, True, False]
    assert x.all(dim=0, keepdim=True).tolist() == [[True, False, True]]
    assert fg.all(x, dim=(0, 1)).shape == ()
    assert x.any(dim=-1, keepdim=True).shape == (2, 1)
    for out in (x.all(), fg.any(x, 1)):
        assert out.dtype == fg.bool_ and out.requires_grad is False and out.grad_fn is None
    assert fg.tensor([1, 2, 0]).all().item() is False  # integers: nonzero is true
    assert fg.tensor([True, True]).all().item() is True
    assert fg.zeros(0).all().item() is True and fg.zeros(0).any().item() is False
    assert fg.tensor([nan]).all().item() is True  # NaN is nonzero


# ---------------------------------------------------------------- special values


@portable
def test_isnan_isinf_isfinite():
    x = fg.tensor([1.0, nan, inf, -inf, 0.0])
    assert x.isnan().tolist() == [False, True, False, False, False]
    assert fg.isinf(x).tolist() == [False, False, True, True, False]
    assert x.isfinite().tolist() == [True, False, False, False, True]
    ints = fg.tensor([[1, 2]])
    assert ints.isnan().tolist() == [[False, False]] and fg.isinf(ints).tolist() == [[False, False]]
    assert ints.isfinite().tolist() == [[True, True]]
    assert fg.tensor([True]).isfinite().tolist() == [True]
    assert x.isnan().dtype == fg.bool_


@portable
def test_nan_to_num_values_and_gradient():
    x = fg.tensor([1.0, nan, inf, -inf], dtype=fg.float64, requires_grad=True)
    big = float(np.finfo(np.float64).max)
    assert x.nan_to_num().tolist() == [1.0, 0.0, big, -big]
    assert fg.nan_to_num(x, nan=2.0, posinf=3.0, neginf=-4.0).tolist() == [1.0, 2.0, 3.0, -4.0]
    assert fg.tensor([inf], dtype=fg.float32).nan_to_num().item() == float(np.finfo(np.float32).max)
    # The gradient passes where the value was finite, 0 where it was replaced.
    (x.nan_to_num(posinf=1.0) * fg.tensor([5.0, 6.0, 7.0, 8.0], dtype=fg.float64)).sum().backward()
    assert x.grad.tolist() == [5.0, 0.0, 0.0, 0.0]
    assert fg.tensor([1, 2]).nan_to_num().tolist() == [1, 2]


# ---------------------------------------------------------------- sorting


@portable
def test_sort_returns_values_and_indices_as_a_named_tuple():
    x = fg.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    result = x.sort()
    values, indices = result  # unpacks like PyTorch's torch.return_types.sort
    assert result.values is values and result.indices is indices
    assert result[0] is values and len(result) == 2
    assert values.tolist() == [[1.0, 2.0, 3.0], [-1.0, 0.0, 5.0]]
    assert indices.tolist() == [[1, 2, 0], [2, 0, 1]] and indices.dtype == fg.int64
    down = fg.sort(x, dim=0, descending=True)
    assert down.values.tolist() == [[3.0, 5.0, 2.0], [0.0, 1.0, -1.0]]
    assert down.indices.tolist() == [[0, 1, 0], [1, 0, 1]]
    assert x.argsort().tolist() == indices.tolist()
    assert fg.argsort(x, dim=0, descending=True).tolist() == down.indices.tolist()


@portable
def test_sort_is_stable_and_puts_nan_last():
    x = fg.tensor([2.0, 1.0, 2.0, nan, 1.0, 2.0])
    assert x.sort().indices.tolist() == [1, 4, 0, 2, 5, 3]
    # Descending and stable: equal values still first-index-first; NaN comes first.
    assert x.sort(descending=True).indices.tolist() == [3, 0, 2, 5, 1, 4]
    assert x.argsort(descending=True, stable=True).tolist() == [3, 0, 2, 5, 1, 4]
    b = fg.tensor([True, False, True])
    assert b.sort().indices.tolist() == [1, 0, 2] and b.sort().values.dtype == fg.bool_


@portable
def test_sort_and_topk_gradients_go_back_to_the_chosen_positions():
    w = fg.tensor([10.0, 20.0, 30.0], dtype=fg.float64)
    g = _grad(lambda t: t.sort(descending=True).values * w, [1.0, 3.0, 2.0])
    assert g.tolist() == [30.0, 10.0, 20.0]
    g = _grad(lambda t: fg.topk(t, 2).values * w[:2], [1.0, 3.0, 2.0, 0.0])
    assert g.tolist() == [0.0, 10.0, 20.0, 0.0]
    g = _grad(lambda t: t.topk(1, dim=0, largest=False).values, [[1.0, 5.0], [0.0, 7.0]])
    assert g.tolist() == [[0.0, 1.0], [1.0, 0.0]]


@portable
def test_topk_values_indices_and_ties():
    x = fg.tensor([[1.0, 3.0, 3.0, 2.0], [4.0, 0.0, 4.0, 4.0]])
    top = x.topk(2)
    assert top.values.tolist() == [[3.0, 3.0], [4.0, 4.0]]
    assert top.indices.tolist() == [[1, 2], [0, 2]]  # ties: the first ones (stable)
    low = fg.topk(x, 3, dim=1, largest=False)
    assert low.values.tolist() == [[1.0, 2.0, 3.0], [0.0, 4.0, 4.0]]
    assert low.indices.tolist() == [[0, 3, 1], [1, 0, 2]]
    assert x.topk(1, dim=0, sorted=False).indices.tolist() == [[1, 0, 1, 1]]
    assert x.topk(0).values.shape == (2, 0)
    assert fg.tensor(5.0).topk(1).values.item() == 5.0


@pytest.mark.parametrize("k", [5, -1])
def test_topk_k_out_of_range_says_so(k):
    with pytest.raises(fg.ShapeError, match=rf"topk: k={k} is out of range.*\(2, 4\) has 4"):
        fg.zeros(2, 4).topk(k)
    with pytest.raises(RuntimeError):  # as PyTorch's error
        fg.zeros(2, 4).topk(k)


# ---------------------------------------------------------------- unbind


@portable
def test_unbind_gives_views_whose_gradients_go_back():
    x = fg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    rows = x.unbind()
    assert isinstance(rows, tuple) and [r.tolist() for r in rows] == [[1.0, 2.0, 3.0],
                                                                      [4.0, 5.0, 6.0]]
    cols = fg.unbind(x, dim=-1)
    assert len(cols) == 3 and cols[1].tolist() == [2.0, 5.0]
    (cols[0] * 2.0 + cols[2]).sum().backward()
    assert x.grad.tolist() == [[2.0, 0.0, 1.0], [2.0, 0.0, 1.0]]
    with pytest.raises(IndexError):
        fg.tensor(1.0).unbind()
    with pytest.raises(IndexError):
        x.unbind(2)


# ---------------------------------------------------------------- rounding


@portable
def test_reciprocal_and_its_gradient():
    x = fg.tensor([2.0, -4.0, 0.0])
    assert x.reciprocal().tolist() == [0.5, -0.25, inf]
    assert fg.reciprocal(fg.tensor([2, 4])).dtype == fg.float32  # integers: default float
    assert _grad(fg.reciprocal, [2.0, -0.5]).tolist() == [-0.25, -4.0]


@portable
def test_floor_ceil_round_trunc_values_and_zero_gradient():
    values = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 1.7, -1.7]
    x = fg.tensor(values)
    assert x.floor().tolist() == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 1.0, -2.0]
    assert fg.ceil(x).tolist() == [-2.0, -1.0, -0.0, 1.0, 2.0, 3.0, 2.0, -1.0]
    assert x.trunc().tolist() == [-2.0, -1.0, -0.0, 0.0, 1.0, 2.0, 1.0, -1.0]
    assert x.round().tolist() == [-2.0, -2.0, -0.0, 0.0, 2.0, 2.0, 2.0, -2.0]  # halves to even
    assert fg.round(fg.tensor([1.2345, -15.0, 25.0], dtype=fg.float64), decimals=2).tolist() \
        == [1.23, -15.0, 25.0]
    assert fg.tensor([15.0, 25.0, 1234.0]).round(decimals=-1).tolist() == [20.0, 20.0, 1230.0]
    ints = fg.tensor([1, -2])
    for name in ("floor", "ceil", "round", "trunc"):
        out = getattr(ints, name)()
        assert out.dtype == fg.int64 and out.tolist() == [1, -2], name
        g = _grad(getattr(fg, name), [0.3, 1.5, -2.7])
        assert g.tolist() == [0.0, 0.0, 0.0], name
    with pytest.raises(TypeError, match="decimals=1 needs a floating-point tensor"):
        ints.round(decimals=1)


# ---------------------------------------------------------------- conversions


@portable
def test_view_as_reshape_as_expand_as():
    x = fg.arange(6.0, requires_grad=True)
    like = fg.zeros(2, 3)
    assert x.view_as(like).shape == (2, 3) and x.reshape_as(like).shape == (2, 3)
    row = fg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    e = row.expand_as(like)
    assert e.shape == (2, 3) and e.tolist() == [[1.0, 2.0, 3.0]] * 2
    e.sum().backward()
    assert row.grad.tolist() == [[2.0, 2.0, 2.0]]
    x.reshape_as(like).sum().backward()
    assert x.grad.tolist() == [1.0] * 6


def test_view_as_shares_memory():
    x = fg.zeros(6)
    v = x.view_as(fg.zeros(3, 2))
    v[0, 0] = 7.0
    assert x[0].item() == 7.0
    with pytest.raises(RuntimeError, match="not possible without a copy"):
        fg.zeros(2, 3).T.view_as(fg.zeros(6))


@portable
def test_type_as_bool_int_conversions():
    x = fg.tensor([1.5, 0.0, -2.7], requires_grad=True)
    assert x.type_as(fg.tensor([1])).dtype == fg.int64
    assert x.type_as(fg.tensor([1.0])) is x  # already that dtype and device
    d = x.type_as(fg.zeros(1, dtype=fg.float64))
    assert d.dtype == fg.float64 and d.grad_fn is not None  # float to float: differentiable
    assert x.bool().tolist() == [True, False, True] and x.bool().dtype == fg.bool_
    assert x.int().tolist() == [1, 0, -2] and x.int().dtype == np.int32
    assert x.int().requires_grad is False


def test_half_is_float16_and_differentiable():
    x = fg.tensor([1.5, 0.1], requires_grad=True)
    h = x.half()
    assert h.dtype == np.float16
    h.float().sum().backward()
    assert x.grad.tolist() == [1.0, 1.0] and x.grad.dtype == fg.float32


@portable
def test_new_tensors_take_dtype_and_device_from_self():
    x = fg.tensor([[1, 2]])  # int64
    z = x.new_zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == fg.int64 and z.device == x.device
    assert x.new_zeros((1, 2)).shape == (1, 2)
    o = x.new_ones([3], dtype=fg.float64)
    assert o.dtype == fg.float64 and o.tolist() == [1.0, 1.0, 1.0]
    f = x.new_full((2,), 7)
    assert f.dtype == fg.int64 and f.tolist() == [7, 7]
    # new_tensor keeps self's dtype even for float data, as PyTorch does.
    t = x.new_tensor([1.5, 2.5])
    assert t.dtype == fg.int64 and t.tolist() == [1, 2]
    y = fg.ones(2, dtype=fg.float64)
    w = y.new_tensor([0.5], requires_grad=True)
    assert w.dtype == fg.float64 and w.requires_grad and w.is_leaf
    assert y.new_full([1, 1], 0.25, requires_grad=True).requires_grad
    assert y.new_zeros(0).shape == (0,)


def test_new_tensor_copies():
    data = np.array([1.0, 2.0], dtype=np.float32)
    t = fg.zeros(1).new_tensor(data)
    data[0] = 9.0
    assert t.tolist() == [1.0, 2.0]


# ---------------------------------------------------------------- against PyTorch

_X = np.array([[0.3, -1.2, 2.5, 0.5], [1.5, -0.5, -2.5, 0.7], [4.0, -3.3, 0.0, 1.0]])
_Y = np.array([[1.0, 2.0], [-1.0, 0.5], [0.25, -3.0], [2.0, 1.0]])
_V = np.array([0.5, -1.0, 2.0, 3.0])
_SPECIAL = np.array([1.0, nan, inf, -inf, -0.0, 1e308])

# name -> (function of the inputs, written once for both libraries, and the inputs).
ORACLE = {
    "mm": (lambda t, x, y: x.mm(y), (_X, _Y)),
    "mv": (lambda t, x, v: x.mv(v), (_X, _V)),
    "dot": (lambda t, v, w: v.dot(w), (_V, _V[::-1].copy())),
    "outer": (lambda t, v, w: t.outer(v, w), (_V, _V[:3].copy())),
    "outer-method": (lambda t, v, w: v.outer(w), (_V[:2].copy(), _V)),
    "all": (lambda t, x: x.all(), (_X,)),
    "all-dim": (lambda t, x: t.all(x, dim=1), (_X,)),
    "any-keepdim": (lambda t, x: (x > 1).any(dim=0, keepdim=True), (_X,)),
    "isnan": (lambda t, x: x.isnan(), (_SPECIAL,)),
    "isinf": (lambda t, x: t.isinf(x), (_SPECIAL,)),
    "isfinite": (lambda t, x: x.isfinite(), (_SPECIAL,)),
    "nan_to_num": (lambda t, x: x.nan_to_num(), (_SPECIAL,)),
    "nan_to_num-args": (lambda t, x: t.nan_to_num(x, nan=1.0, posinf=2.0), (_SPECIAL,)),
    "sort": (lambda t, x: x.sort(), (_X,)),
    "sort-dim0-descending": (lambda t, x: t.sort(x, dim=0, descending=True), (_X,)),
    "sort-special": (lambda t, x: x.sort(stable=True), (_SPECIAL,)),
    "argsort": (lambda t, x: x.argsort(dim=0), (_X,)),
    "argsort-descending": (lambda t, x: t.argsort(x, descending=True), (_X,)),
    "topk": (lambda t, x: x.topk(2), (_X,)),
    "topk-smallest-dim0": (lambda t, x: t.topk(x, 2, dim=0, largest=False), (_X,)),
    "unbind": (lambda t, x: x.unbind(1), (_X,)),
    "unbind-fn": (lambda t, x: t.unbind(x), (_X,)),
    "reciprocal": (lambda t, x: x.reciprocal(), (_X,)),
    "floor": (lambda t, x: x.floor(), (_X,)),
    "ceil": (lambda t, x: t.ceil(x), (_X,)),
    "round": (lambda t, x: x.round(), (_X,)),
    "round-decimals": (lambda t, x: t.round(x * 1.2345, decimals=2), (_X,)),
    "round-negative": (lambda t, x: (x * 100).round(decimals=-1), (_X,)),
    "trunc": (lambda t, x: x.trunc(), (_X,)),
    "view_as": (lambda t, x, y: x.view_as(y), (_X, _X.reshape(2, 6).copy())),
    "reshape_as": (lambda t, x, y: x.reshape_as(y.T), (_X, _X)),
    "expand_as": (lambda t, v, x: v.expand_as(x), (_V, _X)),
    "type_as": (lambda t, x, y: x.type_as(y.float()), (_X, _X)),
    "bool": (lambda t, x: x.bool(), (_X,)),
    "int": (lambda t, x: x.int(), (_X,)),
    "half": (lambda t, x: x.half(), (_X,)),
    "new_zeros": (lambda t, x: x.new_zeros(2, 3), (_X,)),
    "new_ones": (lambda t, x: x.new_ones((3,)), (_X,)),
    "new_full": (lambda t, x: x.new_full((2, 2), 1.5), (_X,)),
    "new_tensor": (lambda t, x: x.new_tensor([[1.0, 2.0]]), (_X,)),
}


def _leaves(lib, arrays):
    if lib is fg:
        return [fg.tensor(a, requires_grad=True) for a in arrays]
    return [lib.tensor(a, requires_grad=True) for a in arrays]


def _flat(out):
    """The tensors of a result: one, or those of a tuple (values, indices or unbind)."""
    return list(out) if isinstance(out, tuple) else [out]


def _np(t):
    return t.detach().numpy() if hasattr(t, "detach") else t.numpy()


@pytest.mark.parametrize("name", sorted(ORACLE))
def test_against_pytorch(name):
    torch = pytest.importorskip("torch")
    fn, arrays = ORACLE[name]
    ours = _flat(fn(fg, *_leaves(fg, arrays)))
    theirs_leaves = _leaves(torch, arrays)
    theirs = _flat(fn(torch, *theirs_leaves))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert tuple(a.shape) == tuple(b.shape), name
        assert str(a.dtype) == str(b.dtype).replace("torch.", ""), name
        np.testing.assert_allclose(_np(a).astype(np.float64), _np(b).astype(np.float64),
                                   rtol=1e-12, atol=0, err_msg=name)
    # The gradient of a weighted sum of the floating outputs, when there is one.
    float_pairs = [(a, b) for a, b in zip(ours, theirs) if b.dtype.is_floating_point
                   and b.requires_grad]
    assert [a.requires_grad for a, _ in float_pairs] == [True] * len(float_pairs)
    if not float_pairs:
        assert all(not a.requires_grad for a in ours), name
        return
    our_leaves = _leaves(fg, arrays)
    ours = _flat(fn(fg, *our_leaves))
    ours = [a for a, b in zip(ours, theirs) if b.dtype.is_floating_point and b.requires_grad]
    total_ours = sum((a.double() * fg.tensor(_weights(a.shape))).sum() for a in ours)
    total_theirs = sum((b.double() * torch.tensor(_weights(tuple(b.shape)))).sum()
                       for _, b in float_pairs)
    total_ours.backward()
    total_theirs.backward()
    for mine, yours in zip(our_leaves, theirs_leaves):
        want = np.zeros(mine.shape) if yours.grad is None else yours.grad.numpy()
        got = np.zeros(mine.shape) if mine.grad is None else mine.grad.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=name)


def _weights(shape):
    n = int(np.prod(shape))
    return (1.0 + 0.25 * (np.arange(n) % 7)).reshape(shape)


def test_topk_ties_may_differ_from_pytorch_but_values_agree():
    # PyTorch's topk leaves the order of tied elements to its kernel; flowgrad's is the
    # stable one (first index first). The values are the same either way.
    torch = pytest.importorskip("torch")
    data = [1.0, 3.0, 3.0, 2.0, 3.0, 1.0]
    ours, theirs = fg.tensor(data).topk(3), torch.tensor(data).topk(3)
    assert ours.values.tolist() == theirs.values.tolist()
    assert ours.indices.tolist() == [1, 2, 4]
    assert sorted(theirs.indices.tolist()) == [1, 2, 4]
