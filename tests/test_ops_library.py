"""The op library beyond the MLP's: conventions by hand, PyTorch as an optional oracle.

The op table (``op_table.py``) checks every op's derivatives numerically; here are the cases a
numerical check cannot pin down: ties, zeros, masks and repeated indices, which follow
PyTorch's conventions, and the errors for bad input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import flowgrad as fg


def _grad(f, *arrays):
    xs = [fg.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    f(*xs).sum().backward()
    return [x.grad.numpy() for x in xs]


# ---------------------------------------------------------------- conventions, by hand


def test_prod_gradient_with_zeros():
    # One zero: only it gets the product of the others; two zeros: nothing gets anything.
    np.testing.assert_array_equal(_grad(fg.prod, [0.0, 2.0, 3.0])[0], [6.0, 0.0, 0.0])
    np.testing.assert_array_equal(_grad(fg.prod, [0.0, 2.0, 0.0])[0], [0.0, 0.0, 0.0])
    g = _grad(lambda x: x.prod(dim=1), [[2.0, 0.0], [3.0, 4.0]])[0]
    np.testing.assert_array_equal(g, [[0.0, 2.0], [4.0, 3.0]])


def test_std_and_norm_gradients_are_zero_at_zero_spread():
    np.testing.assert_array_equal(_grad(fg.std, [1.0, 1.0, 1.0])[0], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(_grad(fg.norm, [0.0, 0.0])[0], [0.0, 0.0])


def test_var_std_by_hand():
    x = fg.tensor([1.0, 2.0, 3.0, 4.0])
    assert fg.var(x).item() == pytest.approx(5 / 3)
    assert fg.var(x, correction=0).item() == pytest.approx(1.25)
    assert x.std().item() == pytest.approx(math.sqrt(5 / 3))
    # d var/dx = 2 (x - mean) / (N - 1)
    np.testing.assert_allclose(_grad(fg.var, [1.0, 2.0, 3.0, 4.0])[0], [-1.0, -1 / 3, 1 / 3, 1.0])


def test_max_with_dim_sends_the_gradient_to_the_first_tie():
    x = fg.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    values, indices = fg.max(x, dim=1)
    np.testing.assert_array_equal(values.numpy(), [3.0, 2.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    assert indices.dtype == np.int64 and not indices.requires_grad
    values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])


def test_max_of_all_splits_ties_evenly():
    np.testing.assert_array_equal(_grad(fg.max, [1.0, 3.0, 3.0])[0], [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(_grad(fg.min, [1.0, 1.0, 3.0])[0], [0.5, 0.5, 0.0])


def test_max_min_forms():
    x = fg.tensor([[1.0, 5.0], [7.0, 2.0]])
    assert fg.max(x).item() == 7.0 and x.min().item() == 1.0
    out = x.max(1, keepdim=True)
    assert out.values.shape == (2, 1) and out.indices.tolist() == [[1], [0]]
    assert x.min(dim=0).indices.tolist() == [0, 1]
    # A tensor as second argument: the elementwise maximum, as torch.max(a, b).
    np.testing.assert_array_equal(fg.max(x, fg.tensor([3.0, 3.0])).numpy(), [[3, 5], [7, 3]])


def test_argmax_argmin():
    x = fg.tensor([[1.0, 3.0, 3.0], [4.0, 0.0, 4.0]])
    assert fg.argmax(x).item() == 3  # in the flattened tensor, the first of the ties
    assert fg.argmax(x, keepdim=True).shape == (1, 1)
    assert x.argmax(1).tolist() == [1, 0]
    assert fg.argmin(x, dim=0, keepdim=True).tolist() == [[0, 1, 0]]
    assert x.argmax().dtype == np.int64 and not fg.tensor([1.0], requires_grad=True).argmax(
    ).requires_grad


def test_gather_and_index_select_accumulate_repeated_indices():
    g = _grad(lambda x: fg.gather(x, 1, fg.tensor([[0, 0, 1]])), [[1.0, 2.0, 3.0]])[0]
    np.testing.assert_array_equal(g, [[2.0, 1.0, 0.0]])
    g = _grad(lambda x: fg.index_select(x, 0, np.array([1, 1, 0])), [[1.0], [2.0]])[0]
    np.testing.assert_array_equal(g, [[1.0], [2.0]])


def test_masked_fill_gradients():
    mask = fg.tensor([True, False, True])
    gx, gv = _grad(lambda x, v: x.masked_fill(mask, v) * fg.tensor([1.0, 2.0, 3.0]),
                   [5.0, 6.0, 7.0], 0.5)
    np.testing.assert_array_equal(gx, [0.0, 2.0, 0.0])
    assert gv == pytest.approx(4.0)
    out = fg.masked_fill(fg.zeros(2, 2), fg.tensor([[True, False]]), -math.inf)
    assert out.tolist() == [[-math.inf, 0.0], [-math.inf, 0.0]]


def test_split_chunk_cumsum_flip_by_hand():
    x = fg.arange(10.0)
    assert [p.shape for p in x.split(4)] == [(4,), (4,), (2,)]
    assert [p.tolist() for p in fg.split(x, [2, 8])][0] == [0.0, 1.0]
    assert [p.shape for p in fg.chunk(x, 3)] == [(4,), (4,), (2,)]
    assert [p.shape for p in fg.arange(6.0).chunk(4)] == [(2,), (2,), (2,)]  # as PyTorch
    assert fg.cumsum(fg.tensor([1.0, 2.0, 3.0]), 0).tolist() == [1.0, 3.0, 6.0]
    np.testing.assert_array_equal(_grad(lambda x: fg.cumsum(x, 0) * fg.tensor([1.0, 2.0, 3.0]),
                                        [0.0, 0.0, 0.0])[0], [6.0, 5.0, 3.0])
    assert fg.flip(fg.tensor([[1, 2], [3, 4]]), [0, 1]).tolist() == [[4, 3], [2, 1]]


def test_expand_repeat_tril_shapes():
    x = fg.tensor([[1.0], [2.0]])
    assert x.expand(3, -1, 4).shape == (3, 2, 4)
    assert x.repeat(2, 3).tolist() == [[1, 1, 1], [2, 2, 2], [1, 1, 1], [2, 2, 2]]
    np.testing.assert_array_equal(_grad(lambda t: t.repeat(2, 3), [[1.0], [2.0]])[0], [[6], [6]])
    np.testing.assert_array_equal(_grad(lambda t: t.expand(2, 3), [[1.0], [2.0]])[0], [[3], [3]])
    assert fg.tril(fg.ones(2, 3)).tolist() == [[1, 0, 0], [1, 1, 0]]
    assert fg.triu(fg.ones(3, 2), diagonal=1).tolist() == [[0, 1], [0, 0], [0, 0]]


def test_tensor_conversion_methods():
    x = fg.tensor([[1.5, -2.0]], requires_grad=True)
    assert x.to(fg.float64).dtype == np.float64 and x.to(fg.float64).requires_grad
    assert x.to("cpu") is x and x.to(fg.float32) is x
    assert x.double().dtype == np.float64 and x.float().dtype == np.float32
    long = x.long()
    assert long.dtype == np.int64 and long.tolist() == [[1, -2]] and not long.requires_grad
    assert x.view(2).shape == (2,) and x.view(-1, 1).shape == (2, 1)
    assert x.size() == (1, 2) and x.size(1) == 2
    assert x.tolist() == [[1.5, -2.0]]
    with pytest.raises(RuntimeError, match="cuda"):
        x.to("cuda")


def test_elementwise_values_by_hand():
    assert fg.erf(fg.tensor(0.5, dtype=fg.float64)).item() == pytest.approx(math.erf(0.5),
                                                                           rel=1e-15)
    assert fg.erf(fg.tensor([math.inf, -math.inf])).tolist() == [1.0, -1.0]
    assert math.isnan(fg.erf(fg.tensor(math.nan)).item())
    assert fg.gelu(fg.tensor(1.0)).item() == pytest.approx(0.5 * (1 + math.erf(2**-0.5)))
    assert fg.softplus(fg.tensor(30.0)).item() == 30.0  # linear above the threshold
    assert fg.softplus(fg.tensor(-100.0, dtype=fg.float64)).item() == pytest.approx(
        math.exp(-100.0))
    assert fg.elu(fg.tensor(-1.0), alpha=2.0).item() == pytest.approx(2 * (math.exp(-1) - 1))
    assert fg.rsqrt(fg.tensor(4.0)).item() == 0.5
    np.testing.assert_array_equal(_grad(fg.elu, [0.0])[0], [1.0])  # alpha·exp(0) at 0


def test_einsum_forms():
    a, b = fg.ones(2, 3), fg.ones(3, 4)
    assert fg.einsum("ij,jk", a, b).shape == (2, 4)
    assert fg.einsum("ij,jk->ki", [a, b]).shape == (4, 2)
    assert fg.einsum("i,i->", fg.ones(3), fg.ones(3)).item() == 3.0
    assert fg.einsum("...,...->...", fg.ones(2, 1), fg.ones(3)).shape == (2, 3)
    assert fg.einsum("ij->ji", fg.ones(2, 3)).shape == (3, 2)
    x = fg.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    fg.einsum("ii", x).backward()  # the trace: gradient is the identity
    np.testing.assert_array_equal(x.grad.numpy(), np.eye(3))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, kind, match", [
    (lambda: fg.gather(fg.ones(2, 3), 1, fg.tensor([[0, 3]])), IndexError, r"\[0, 3\).*max 3"),
    (lambda: fg.gather(fg.ones(2, 3), 1, fg.tensor([0, 1])), ValueError, r"\(2,\).*\(2, 3\)"),
    (lambda: fg.gather(fg.ones(2, 3), 1, fg.tensor([[0.5]])), TypeError, "integers"),
    (lambda: fg.index_select(fg.ones(2, 3), 0, [2]), IndexError, r"\[0, 2\)"),
    (lambda: fg.masked_fill(fg.ones(2), fg.tensor([1, 0]), 0.0), TypeError, "bool"),
    (lambda: fg.masked_fill(fg.ones(2), fg.tensor([[True], [False]]), 0.0), ValueError,
     r"\(2, 1\).*\(2,\)"),
    (lambda: fg.expand(fg.ones(2, 3), 4, 3), ValueError, r"\(2, 3\).*\(4, 3\)"),
    (lambda: fg.repeat(fg.ones(2, 3), 2), ValueError, r"\(2, 3\)"),
    (lambda: fg.bmm(fg.ones(2, 3, 4), fg.ones(3, 4, 5)), ValueError, r"\(2, 3, 4\).*\(3, 4, 5\)"),
    (lambda: fg.bmm(fg.ones(3, 4), fg.ones(4, 5)), ValueError, "3-D"),
    (lambda: fg.einsum("ij,jk->ik", fg.ones(2, 3), fg.ones(4, 5)), ValueError,
     r"\(2, 3\), \(4, 5\)"),
    (lambda: fg.einsum("ij,jk", fg.ones(2, 3)), ValueError, "2 operand"),
    (lambda: fg.einsum("ijk", fg.ones(2, 3)), ValueError, "3 dims"),
    (lambda: fg.split(fg.ones(5), [2, 2]), ValueError, r"\[2, 2\].*5"),
    (lambda: fg.chunk(fg.ones(5), 0), ValueError, "positive"),
    (lambda: fg.norm(fg.ones(3), p=0), ValueError, "positive"),
    (lambda: fg.norm(fg.ones(3), p="nuc"), ValueError, "'nuc'"),
    (lambda: fg.gelu(fg.ones(3), approximate="fast"), ValueError, "'fast'"),
    (lambda: fg.max(fg.ones(0)), ValueError, "empty"),
    (lambda: fg.argmax(fg.ones(2, 3), dim=2), IndexError, "out of range"),
])
def test_bad_input_is_one_clear_error(call, kind, match):
    with pytest.raises(kind, match=match):
        call()


# ---------------------------------------------------------------- PyTorch as an oracle

ORACLE = [
    ("log1p", lambda m, x: m.log1p(x), ((2, 3),), 0.0),
    ("expm1", lambda m, x: m.expm1(x), ((2, 3),), None),
    ("square", lambda m, x: m.square(x), ((2, 3),), None),
    ("rsqrt", lambda m, x: m.rsqrt(x), ((2, 3),), 0.5),
    ("softplus", lambda m, x: (m.nn.functional if m.__name__ == "torch" else m).softplus(
        x, beta=2.0, threshold=1.0), ((3, 4),), None),
    ("silu", lambda m, x: (m.nn.functional if m.__name__ == "torch" else m).silu(x), ((2, 3),),
     None),
    ("gelu", lambda m, x: (m.nn.functional if m.__name__ == "torch" else m).gelu(x), ((2, 3),),
     None),
    ("gelu-tanh", lambda m, x: (m.nn.functional if m.__name__ == "torch" else m).gelu(
        x, approximate="tanh"), ((2, 3),), None),
    ("elu", lambda m, x: (m.nn.functional if m.__name__ == "torch" else m).elu(x, alpha=1.5),
     ((2, 3),), None),
    ("erf", lambda m, x: m.erf(x * 3), ((4, 5),), None),
    ("prod", lambda m, x: m.prod(x, 1), ((3, 4),), None),
    ("var", lambda m, x: m.var(x, dim=1, correction=0), ((3, 4),), None),
    ("std", lambda m, x: m.std(x, dim=(0, 1), keepdim=True), ((3, 4),), None),
    ("norm-2", lambda m, x: m.norm(x, 2, 1), ((3, 4),), None),
    ("norm-1", lambda m, x: m.norm(x, p=1, dim=0, keepdim=True), ((3, 4),), None),
    ("norm-inf", lambda m, x: m.norm(x.round() if m.__name__ == "torch" else fg.tensor(
        np.round(x.numpy()), requires_grad=True), float("inf"), 1), ((3, 4),), None),
    ("norm-3", lambda m, x: m.norm(x, 3), ((3, 4),), None),
    ("cumsum", lambda m, x: m.cumsum(x, -1), ((3, 4),), None),
    ("max", lambda m, x: m.max(x, 1).values, ((3, 4),), None),
    ("min", lambda m, x: m.min(x, 0, keepdim=True)[0], ((3, 4),), None),
    ("flip", lambda m, x: m.flip(x, (1,)), ((3, 4),), None),
    ("tril", lambda m, x: m.tril(x, 1), ((3, 4),), None),
    ("triu", lambda m, x: m.triu(x, -1), ((3, 4),), None),
    ("repeat", lambda m, x: x.repeat(2, 1, 3), ((3, 4),), None),
    ("expand", lambda m, x: x[:, :1].expand(2, 3, 5), ((3, 4),), None),
    ("einsum", lambda m, x: m.einsum("ij,kj->ik", x, x), ((3, 4),), None),
    ("einsum-diag", lambda m, x: m.einsum("ii->i", x[:, :3]), ((3, 4),), None),
    ("bmm", lambda m, x: m.bmm(x.reshape(2, 3, 2), x.reshape(2, 2, 3)), ((3, 4),), None),
]


@pytest.mark.parametrize("name, f, shapes, low", ORACLE, ids=[o[0] for o in ORACLE])
def test_against_pytorch(name, f, shapes, low):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    arrays = [rng.uniform(0.1 if low is not None else -2.0, 2.0, size=s) for s in shapes]
    ours = [fg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, tout = f(fg, *ours), f(torch, *theirs)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12, atol=1e-12)
    w = rng.standard_normal(out.shape)
    (out * fg.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for x, tx in zip(ours, theirs):
        if tx.grad is not None and x.grad is not None:
            np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10,
                                       atol=1e-12)


def test_ties_masks_and_zeros_against_pytorch():
    torch = pytest.importorskip("torch")
    cases = [
        (lambda m, x: m.max(x, dim=1)[0], [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]),
        (lambda m, x: m.min(x, dim=0)[0], [[1.0, 3.0, 0.0], [1.0, 2.0, 0.0]]),
        (lambda m, x: m.max(x), [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]),
        (lambda m, x: m.norm(x, float("inf"), 1), [[1.0, -3.0, 3.0], [2.0, 2.0, 0.0]]),
        (lambda m, x: m.prod(x, 1), [[0.0, 2.0, 3.0], [0.0, 0.0, 1.0]]),
        (lambda m, x: m.prod(x), [[0.0, 2.0, 3.0], [4.0, 5.0, 1.0]]),
        (lambda m, x: m.std(x, 1), [[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]]),
        (lambda m, x: m.norm(x, dim=1), [[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]]),
        (lambda m, x: m.gather(x, 1, (m.tensor if m is torch else fg.tensor)(
            [[0, 0], [2, 2]])), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
        (lambda m, x: x.masked_fill((m.tensor if m is torch else fg.tensor)(
            [True, False, True]), 0.0), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
        (lambda m, x: m.nn.functional.relu(x) if m is torch else fg.relu(x), [[0.0, -1.0, 1.0]]),
        (lambda m, x: m.nn.functional.elu(x) if m is torch else fg.elu(x), [[0.0, -1.0, 1.0]]),
        (lambda m, x: m.nn.functional.softplus(x, threshold=1.0) if m is torch else
         fg.softplus(x, threshold=1.0), [[1.0, -1.0, 2.0]]),
    ]
    for f, data in cases:
        x = fg.tensor(np.array(data), requires_grad=True)
        tx = torch.tensor(np.array(data), requires_grad=True)
        out, tout = f(fg, x), f(torch, tx)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12)
        out.sum().backward()
        tout.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=0)


def test_retain_freed_memory_is_idempotent_and_harmless():
    from flowgrad import _allocator

    first = _allocator.retain_freed_memory()
    assert isinstance(first, bool) and _allocator.retain_freed_memory() == first
    a = fg.ones(1000, 1000)  # allocation and freeing still work as before
    assert float(fg.sum(a)) == 1e6
