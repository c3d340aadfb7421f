"""fg.nn beyond the MLP: convolution, pooling, normalisation, dropout, embedding, attention,
containers, losses and gradient clipping.

Hand-computed cases always run; where PyTorch is installed, each layer is also compared with
its PyTorch twin holding the same weights (copied through ``state_dict``), forward and
backward.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import flowgrad as fg
import flowgrad.nn.functional as F
from flowgrad import nn

# Also run on array-api-strict's simulated device: python -m pytest --backend strict
pytestmark = pytest.mark.portable


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _copy_from_torch(ours: nn.Module, theirs) -> None:
    state = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    ours.load_state_dict(state)


def _compare(ours, theirs, inputs, torch, rtol=1e-5, atol=1e-6, call=None):
    """Same output and same gradients (inputs and parameters) for a weighted-sum loss."""
    call = call or (lambda m, *xs: m(*xs))
    xs = [fg.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    txs = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    out, tout = call(ours, *xs), call(theirs, *txs)
    if isinstance(out, tuple):
        out, tout = out[0], tout[0]
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=rtol, atol=atol)
    w = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
    (out * fg.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for x, tx in zip(xs, txs):
        if tx.grad is not None:
            np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol)
    theirs_params = dict(theirs.named_parameters()) if hasattr(theirs, "named_parameters") \
        else {}
    for name, p in (ours.named_parameters() if hasattr(ours, "named_parameters") else []):
        tp = theirs_params[name]
        if tp.grad is not None:
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=name)


# ---------------------------------------------------------------- convolution and pooling


def test_conv2d_by_hand():
    # A 2x2 all-ones kernel sums each 2x2 window; the bias is added once.
    x = fg.tensor(np.arange(9.0, dtype=np.float32).reshape(1, 1, 3, 3), requires_grad=True)
    w = fg.ones(1, 1, 2, 2, requires_grad=True)
    out = F.conv2d(x, w, fg.tensor([0.5]))
    assert out.tolist() == [[[[8.5, 12.5], [20.5, 24.5]]]]
    out.sum().backward()
    # Each pixel's gradient counts the windows it is in; each weight sums its pixels.
    assert x.grad.tolist() == [[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]]
    assert w.grad.tolist() == [[[[8, 12], [20, 24]]]]


def test_conv_layers_shapes_init_and_repr():
    fg.manual_seed(0)
    conv = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=2)
    assert conv.weight.shape == (6, 2, 3, 2) and conv.bias.shape == (6,)
    bound = 1 / math.sqrt(2 * 3 * 2)  # fan_in = in_channels/groups * kernel
    assert np.abs(conv.weight.numpy()).max() <= bound and np.abs(conv.bias.numpy()).max() <= bound
    assert conv(fg.zeros(5, 4, 9, 8)).shape == (5, 6, 5, 5)
    assert repr(conv) == ("Conv2d(4, 6, kernel_size=(3, 2), stride=(2, 2), padding=(1, 1), "
                          "groups=2)")
    assert nn.Conv1d(3, 5, 4, bias=False)(fg.zeros(2, 3, 10)).shape == (2, 5, 7)
    assert nn.Conv2d(1, 2, 3, padding="same")(fg.zeros(1, 9, 9)).shape == (2, 9, 9)
    assert [n for n, _ in nn.Conv2d(1, 2, 3).named_parameters()] == ["weight", "bias"]


def test_pool_layers_by_hand():
    x = fg.tensor(np.arange(16.0, dtype=np.float32).reshape(1, 1, 4, 4), requires_grad=True)
    out = nn.MaxPool2d(2)(x)
    assert out.tolist() == [[[[5, 7], [13, 15]]]]
    out.sum().backward()
    assert x.grad.numpy()[0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0],
                                             [0, 1, 0, 1]]
    assert nn.AvgPool2d(2)(x).tolist() == [[[[2.5, 4.5], [10.5, 12.5]]]]
    assert nn.AdaptiveAvgPool2d(1)(x).tolist() == [[[[7.5]]]]
    assert nn.AdaptiveAvgPool2d((None, 2))(x).shape == (1, 1, 4, 2)
    assert nn.MaxPool1d(2)(fg.tensor([[[1.0, 3.0, 2.0, 0.0]]])).tolist() == [[[3.0, 2.0]]]
    assert nn.AvgPool1d(2)(fg.tensor([[[1.0, 3.0, 2.0, 0.0]]])).tolist() == [[[2.0, 1.0]]]
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx.tolist() == [[[[5, 7], [13, 15]]]] and idx.dtype == np.int64


def test_unfold_fold_round_trip():
    x = fg.randn(2, 3, 5, 4)
    cols = F.unfold(x, (2, 3), padding=1)
    assert cols.shape == (2, 3 * 2 * 3, 6 * 4)
    # fold(unfold(x)) multiplies each pixel by the number of windows covering it.
    ones = F.fold(F.unfold(fg.ones(2, 3, 5, 4), (2, 3), padding=1), (5, 4), (2, 3), padding=1)
    np.testing.assert_allclose(F.fold(cols, (5, 4), (2, 3), padding=1).numpy(),
                               (x * ones).numpy(), rtol=1e-6)


def test_conv_second_derivatives_gradcheck():
    rng = np.random.default_rng(3)
    x = fg.tensor(rng.standard_normal((1, 2, 4, 4)), requires_grad=True)
    w = fg.tensor(rng.standard_normal((2, 1, 2, 2)), requires_grad=True)

    def loss(x, w):
        h = F.conv2d(x, w, stride=1, padding=1, groups=2)
        return (fg.tanh(F.max_pool2d(h, 2)) ** 2).sum()

    assert fg.gradcheck(lambda x, w: fg.grad(loss, argnums=(0, 1))(x, w)[1].sum(), (x, w))
    assert fg.gradcheck(loss, (x, w))


@pytest.mark.filterwarnings("ignore::UserWarning")  # PyTorch's note on even 'same' kernels
def test_conv_and_pool_against_pytorch(rng):
    torch = pytest.importorskip("torch")
    cases = [
        (nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 3, padding=1), (2, 3, 6, 5)),
        (nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
         torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                         groups=2), (2, 4, 7, 8)),
        (nn.Conv2d(2, 2, 4, padding="same", bias=False),
         torch.nn.Conv2d(2, 2, 4, padding="same", bias=False), (1, 2, 6, 6)),
        (nn.Conv1d(3, 4, 3, stride=2, padding=1), torch.nn.Conv1d(3, 4, 3, stride=2, padding=1),
         (2, 3, 9)),
        (nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1), (2, 3, 7, 7)),
        (nn.MaxPool2d(2, ceil_mode=True), torch.nn.MaxPool2d(2, ceil_mode=True), (2, 3, 5, 7)),
        (nn.AvgPool2d(3, 2, 1, count_include_pad=False),
         torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 7, 6)),
        (nn.AdaptiveAvgPool2d((3, 2)), torch.nn.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5)),
        (nn.MaxPool1d(3, 2), torch.nn.MaxPool1d(3, 2), (2, 3, 9)),
        (nn.AvgPool1d(2), torch.nn.AvgPool1d(2), (2, 3, 9)),
    ]
    for ours, theirs, shape in cases:
        theirs = theirs.double()
        ours.to(fg.float64)
        if list(theirs.parameters()):
            _copy_from_torch(ours, theirs)
        _compare(ours, theirs, [rng.standard_normal(shape)], torch, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- normalisation


def test_batchnorm_train_and_eval_by_hand():
    bn = nn.BatchNorm1d(2)
    x = fg.tensor([[1.0, 10.0], [3.0, 30.0]])
    out = bn(x)
    # Batch mean (2, 20), biased variance (1, 100): each column becomes (-1, 1) (up to eps).
    np.testing.assert_allclose(out.numpy(), [[-1, -1], [1, 1]], atol=1e-4)
    # Running stats: 0.9·(0, 0) + 0.1·mean; 0.9·(1, 1) + 0.1·unbiased variance (2, 200).
    np.testing.assert_allclose(bn.running_mean.numpy(), [0.2, 2.0], rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), [1.1, 20.9], rtol=1e-6)
    assert bn.num_batches_tracked.item() == 1
    bn.eval()
    out = bn(x)
    np.testing.assert_allclose(out.numpy(), (x.numpy() - [0.2, 2.0]) / np.sqrt(
        np.array([1.1, 20.9]) + 1e-5), rtol=1e-5)
    assert bn.num_batches_tracked.item() == 1  # eval leaves the statistics alone


def test_batchnorm_state_dict_round_trip_with_buffers(tmp_path):
    bn = nn.BatchNorm2d(3)
    bn(fg.randn(4, 3, 2, 2) * 3 + 1)
    path = tmp_path / "bn.npz"
    fg.save(bn.state_dict(), path)
    fresh = nn.BatchNorm2d(3)
    fresh.load_state_dict(fg.load(path))
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key].numpy(), value.numpy())
    assert fresh.num_batches_tracked.dtype == np.int64
    x = fg.randn(2, 3, 2, 2)
    np.testing.assert_array_equal(bn.eval()(x).numpy(), fresh.eval()(x).numpy())


def test_batchnorm_momentum_none_is_a_cumulative_average():
    bn = nn.BatchNorm1d(1, momentum=None)
    for batch in ([[0.0], [2.0]], [[4.0], [6.0]]):
        bn(fg.tensor(batch))
    np.testing.assert_allclose(bn.running_mean.numpy(), [3.0])  # the mean of 1 and 5
    assert nn.BatchNorm1d(2, track_running_stats=False).eval()(fg.tensor(
        [[1.0, 2.0], [3.0, 4.0]])).shape == (2, 2)


def test_layernorm_by_hand_and_second_order():
    ln = nn.LayerNorm(4)
    x = fg.tensor([[1.0, 2.0, 3.0, 4.0]])
    expected = (np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25 + 1e-5)
    np.testing.assert_allclose(ln(x).numpy()[0], expected, rtol=1e-5)
    xs = fg.tensor(np.random.default_rng(0).standard_normal((2, 3)), requires_grad=True)
    assert fg.gradcheck(lambda t: (F.layer_norm(t, (3,)) ** 3).sum(), (xs,))
    assert fg.gradcheck(lambda t: fg.grad(lambda u: (F.layer_norm(u, 3) ** 3).sum())(t).sum(),
                        (xs,))


def test_normalisation_against_pytorch(rng):
    torch = pytest.importorskip("torch")
    for ours, theirs, shape in [
        (nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3), (5, 3)),
        (nn.BatchNorm1d(3, momentum=0.3), torch.nn.BatchNorm1d(3, momentum=0.3), (4, 3, 6)),
        (nn.BatchNorm2d(2, affine=False), torch.nn.BatchNorm2d(2, affine=False), (3, 2, 4, 4)),
        (nn.LayerNorm((3, 4)), torch.nn.LayerNorm((3, 4)), (2, 5, 3, 4)),
        (nn.LayerNorm(4, elementwise_affine=False), torch.nn.LayerNorm(
            4, elementwise_affine=False), (2, 4)),
    ]:
        theirs = theirs.double()
        ours.to(fg.float64)
        with torch.no_grad():
            for p in theirs.parameters():
                p.uniform_(0.5, 1.5)
        _copy_from_torch(ours, theirs)
        for _ in range(2):  # training, twice: running statistics must follow
            _compare(ours, theirs, [rng.standard_normal(shape) * 2 + 1], torch, rtol=1e-9,
                     atol=1e-10)
        for key, value in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), rtol=1e-12)
        ours.eval()
        theirs.eval()
        _compare(ours, theirs, [rng.standard_normal(shape)], torch, rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------- dropout, embedding, one_hot


def test_dropout_is_seeded_scaled_and_off_in_eval():
    drop = nn.Dropout(0.25)
    fg.manual_seed(5)
    a = drop(fg.ones(2000)).numpy()
    fg.manual_seed(5)
    b = drop(fg.ones(2000)).numpy()
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.75)}
    assert 0.2 < (a == 0).mean() < 0.3
    x = fg.ones(50, requires_grad=True)
    y = drop(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # the same mask, scaled
    drop.eval()
    y = fg.ones(3)
    assert drop(y) is y
    assert F.dropout(y, 0.0) is y and F.dropout(y, 0.5, training=False) is y


def test_embedding_gradients_accumulate_and_skip_padding():
    emb = nn.Embedding(4, 2, padding_idx=0)
    assert emb.weight.numpy()[0].tolist() == [0.0, 0.0]
    out = emb(fg.tensor([[1, 1, 0], [3, 1, 0]]))
    assert out.shape == (2, 3, 2)
    out.sum().backward()
    assert emb.weight.grad.numpy()[:, 0].tolist() == [0.0, 3.0, 0.0, 1.0]
    frozen = nn.Embedding.from_pretrained(fg.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert not frozen.weight.requires_grad and frozen(fg.tensor([1])).tolist() == [[3.0, 4.0]]


def test_one_hot():
    out = F.one_hot(fg.tensor([0, 2, 1]))
    assert out.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]] and out.dtype == np.int64
    assert F.one_hot(fg.tensor([[1], [0]]), num_classes=4).shape == (2, 1, 4)


# ---------------------------------------------------------------- attention


def test_sdpa_by_hand_and_masks():
    q = fg.tensor([[[1.0, 0.0]]])
    k = fg.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    v = fg.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    weights = np.exp([1 / math.sqrt(2), 0.0])
    weights /= weights.sum()
    np.testing.assert_allclose(F.scaled_dot_product_attention(q, k, v).numpy()[0, 0],
                               weights @ v.numpy()[0], rtol=1e-6)
    # A bool mask: True may attend. Masking the second key leaves the first one's value.
    mask = fg.tensor([[True, False]])
    assert F.scaled_dot_product_attention(q, k, v, attn_mask=mask).tolist() == [[[1.0, 2.0]]]
    causal = F.scaled_dot_product_attention(k, k, v, is_causal=True)
    assert causal.numpy()[0, 0].tolist() == [1.0, 2.0]  # the first token sees only itself


def test_multihead_attention_parameters_and_shapes():
    mha = nn.MultiheadAttention(8, 2)
    assert [n for n, _ in mha.named_parameters()] == ["in_proj_weight", "in_proj_bias",
                                                      "out_proj.weight", "out_proj.bias"]
    assert mha.in_proj_bias.numpy().tolist() == [0.0] * 24
    assert np.abs(mha.in_proj_weight.numpy()).max() <= math.sqrt(6 / (8 + 24))
    x = fg.randn(3, 5, 8)
    out, weights = mha(x, x, x)
    assert out.shape == (3, 5, 8) and weights.shape == (3, 5, 5)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, rtol=1e-5)
    out, none = mha(x[0], x[0], x[0], need_weights=False)
    assert out.shape == (5, 8) and none is None
    assert mha(x, x, x, average_attn_weights=False)[1].shape == (3, 2, 5, 5)
    assert nn.MultiheadAttention(8, 2, batch_first=False)(x, x, x)[0].shape == (3, 5, 8)


def test_attention_against_pytorch(rng):
    torch = pytest.importorskip("torch")
    causal = np.triu(np.ones((4, 4), dtype=bool), 1)
    float_mask = rng.standard_normal((4, 6))
    padding = np.zeros((2, 6), dtype=bool)
    padding[1, 4:] = True
    cases = [
        (dict(batch_first=True), (2, 4, 8), (2, 6, 8), {}),
        (dict(batch_first=True), (2, 4, 8), (2, 4, 8), {"attn_mask": causal}),
        (dict(batch_first=True, bias=False), (2, 4, 8), (2, 6, 8), {"attn_mask": float_mask}),
        (dict(batch_first=True), (2, 4, 8), (2, 6, 8), {"key_padding_mask": padding}),
        (dict(batch_first=True), (2, 4, 8), (2, 6, 8), {"need_weights": False}),
        (dict(batch_first=True), (2, 4, 8), (2, 6, 8), {"average_attn_weights": False}),
        (dict(batch_first=False), (4, 2, 8), (6, 2, 8), {}),
        (dict(batch_first=True), (4, 8), (6, 8), {}),
    ]
    for kwargs, qshape, kshape, call_kwargs in cases:
        ours = nn.MultiheadAttention(8, 2, **kwargs).to(fg.float64)
        theirs = torch.nn.MultiheadAttention(8, 2, **kwargs).double()
        _copy_from_torch(ours, theirs)
        q, kv = rng.standard_normal(qshape), rng.standard_normal(kshape)

        weights_ref: list = []

        def call(m, q, k, v, call_kwargs=call_kwargs, theirs=theirs, weights_ref=weights_ref):
            extra = {}
            for key, value in call_kwargs.items():
                if isinstance(value, np.ndarray):
                    value = torch.tensor(value) if m is theirs else fg.tensor(value)
                extra[key] = value
            out, weights = m(q, k, v, **extra)
            if weights is not None:
                weights_ref.append(weights)
            return out

        _compare(ours, theirs, [q, kv, kv * 0.5], torch, rtol=1e-9, atol=1e-10, call=call)
        if weights_ref:
            np.testing.assert_allclose(weights_ref[0].numpy(), weights_ref[1].detach().numpy(),
                                       rtol=1e-9, atol=1e-12)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    bool_mask = rng.random((5, 5)) > 0.3
    np.fill_diagonal(bool_mask, True)
    for kwargs in ({}, {"is_causal": True}, {"attn_mask": bool_mask},
                   {"attn_mask": rng.standard_normal((5, 5))}, {"scale": 0.3}):
        ours = F.scaled_dot_product_attention(
            *(fg.tensor(a) for a in (q, k, v)),
            **{key: fg.tensor(val) if isinstance(val, np.ndarray) else val
               for key, val in kwargs.items()})
        theirs = torch.nn.functional.scaled_dot_product_attention(
            *(torch.tensor(a) for a in (q, k, v)),
            **{key: torch.tensor(val) if isinstance(val, np.ndarray) else val
               for key, val in kwargs.items()})
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- activations and containers


def test_activation_modules_against_functional():
    x = fg.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
    for module, fn in [(nn.GELU(), F.gelu), (nn.SiLU(), F.silu), (nn.ELU(), F.elu),
                       (nn.Softplus(), F.softplus), (nn.LogSoftmax(0), lambda t: F.log_softmax(
                           t, dim=0))]:
        np.testing.assert_array_equal(module(x).numpy(), fn(x).numpy())
    np.testing.assert_array_equal(nn.GELU("tanh")(x).numpy(),
                                  F.gelu(x, approximate="tanh").numpy())
    assert repr(nn.ELU(alpha=0.5)) == "ELU(alpha=0.5)"


def test_activation_modules_against_pytorch():
    torch = pytest.importorskip("torch")
    x = np.linspace(-4, 4, 17)
    for ours, theirs in [(nn.GELU(), torch.nn.GELU()), (nn.GELU("tanh"), torch.nn.GELU("tanh")),
                         (nn.SiLU(), torch.nn.SiLU()), (nn.ELU(0.7), torch.nn.ELU(0.7)),
                         (nn.Softplus(2, 3), torch.nn.Softplus(2, 3))]:
        _compare(ours, theirs, [x], torch, rtol=1e-12, atol=1e-12)


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(2, 3), nn.ReLU()])
    layers.append(nn.Linear(3, 1))
    assert len(layers) == 3 and isinstance(layers[-1], nn.Linear)
    assert [n for n, _ in layers.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                         "2.bias"]
    layers.insert(1, nn.Tanh())
    assert [type(m).__name__ for m in layers] == ["Linear", "Tanh", "ReLU", "Linear"]
    del layers[1]
    assert [type(m).__name__ for m in layers[1:]] == ["ReLU", "Linear"]
    heads = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.Linear(2, 1)})
    heads["c"] = nn.Identity()
    assert list(heads) == ["a", "b", "c"] and "b" in heads and len(heads) == 3
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight",
                                                        "b.bias"]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))

    assert list(Net().state_dict()) == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
                                        "blocks.1.bias"]


@pytest.mark.numpy_only  # checks that 'cuda' is refused
def test_module_to_apply_named_modules_and_buffers():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    opt = fg.optim.SGD(net.parameters(), lr=0.1)
    weight = net[0].weight
    assert net.to(fg.float64) is net and net[0].weight is weight
    assert weight.dtype == np.float64 and net[1].running_mean.dtype == np.float64
    assert net[1].num_batches_tracked.dtype == np.int64
    assert net.to("cpu") is net and net.float()[0].weight.dtype == np.float32
    with pytest.raises(RuntimeError, match="cuda"):
        net.to("cuda")
    net(fg.randn(4, 2)).sum().backward()
    opt.step()  # the optimizer still holds the converted parameters
    assert [name for name, _ in net.named_modules()] == ["", "0", "1"]
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "BatchNorm1d", "Sequential"]

    class WithBuffers(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("kept", fg.zeros(2))
            self.register_buffer("scratch", fg.ones(2), persistent=False)

    m = WithBuffers()
    assert list(m.state_dict()) == ["kept"]
    assert [n for n, _ in m.named_buffers()] == ["kept", "scratch"]
    m.load_state_dict({"kept": np.array([1.0, 2.0])})
    assert m.kept.tolist() == [1.0, 2.0]


# ---------------------------------------------------------------- losses


def test_losses_by_hand():
    x, t = fg.tensor([0.0, 2.0, -1.0]), fg.tensor([0.5, 0.0, -1.0])
    assert F.l1_loss(x, t).item() == pytest.approx(2.5 / 3)
    assert nn.L1Loss(reduction="sum")(x, t).item() == pytest.approx(2.5)
    # smooth L1 with beta 1: 0.5·0.5² = 0.125, 2 - 0.5 = 1.5, 0
    assert F.smooth_l1_loss(x, t, reduction="none").tolist() == [0.125, 1.5, 0.0]
    logp = fg.log_softmax(fg.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]), dim=1)
    nll = F.nll_loss(logp, fg.tensor([2, -100]))
    assert nll.item() == pytest.approx(-logp.numpy()[0, 2])  # the ignored sample counts not
    z = fg.tensor([[0.0, 0.0]])
    assert F.cross_entropy(z, fg.tensor([0]), label_smoothing=0.2).item() == \
        pytest.approx(math.log(2))


def test_losses_against_pytorch(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    z4 = rng.standard_normal((6, 4))
    zk = rng.standard_normal((3, 4, 2, 2))
    y = np.array([0, 3, 1, -100, 2, 3])
    yk = rng.integers(0, 4, (3, 2, 2))
    yk[0, 0, 0] = -100
    probs = rng.random((6, 4))
    probs /= probs.sum(1, keepdims=True)
    w = np.array([0.5, 2.0, 1.0, 1.5])
    cases = [
        ("ce-ignore", lambda m, z: m.cross_entropy(z, T(m, y))),
        ("ce-smooth", lambda m, z: m.cross_entropy(z, T(m, y), label_smoothing=0.1)),
        ("ce-weight", lambda m, z: m.cross_entropy(z, T(m, y), weight=T(m, w))),
        ("ce-weight-smooth", lambda m, z: m.cross_entropy(z, T(m, y), weight=T(m, w),
                                                          label_smoothing=0.3)),
        ("ce-smooth-sum", lambda m, z: m.cross_entropy(z, T(m, y), label_smoothing=0.2,
                                                       reduction="sum")),
        ("ce-none", lambda m, z: m.cross_entropy(z, T(m, y), reduction="none",
                                                 label_smoothing=0.1)),
        ("ce-probs", lambda m, z: m.cross_entropy(z, T(m, probs))),
        ("ce-probs-smooth-w", lambda m, z: m.cross_entropy(z, T(m, probs), weight=T(m, w),
                                                           label_smoothing=0.2)),
        ("ce-1d", lambda m, z: m.cross_entropy(z[0], T(m, np.array(2)))),
        ("nll", lambda m, z: m.nll_loss(m.log_softmax(z, dim=1), T(m, y))),
        ("nll-weight", lambda m, z: m.nll_loss(m.log_softmax(z, dim=1), T(m, y), weight=T(m, w),
                                               reduction="sum")),
        ("l1", lambda m, z: m.l1_loss(z, T(m, probs))),
        ("smooth-l1", lambda m, z: m.smooth_l1_loss(z, T(m, probs) * 3, beta=0.5)),
        ("smooth-l1-0", lambda m, z: m.smooth_l1_loss(z, T(m, probs), beta=0.0)),
        ("mse", lambda m, z: m.mse_loss(z, T(m, probs), reduction="sum")),
    ]

    def T(m, a):
        return torch.tensor(a) if m is tf else fg.tensor(a)

    for name, f in cases:
        ours = fg.tensor(z4, requires_grad=True)
        theirs = torch.tensor(z4, requires_grad=True)
        out, tout = f(F, ours), f(tf, theirs)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, err_msg=name)
        out.sum().backward()
        tout.sum().backward()
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=name)
    for kwargs in ({}, {"label_smoothing": 0.1}, {"reduction": "none"}):
        ours = fg.tensor(zk, requires_grad=True)
        theirs = torch.tensor(zk, requires_grad=True)
        out = F.cross_entropy(ours, fg.tensor(yk), **kwargs)
        tout = tf.cross_entropy(theirs, torch.tensor(yk), **kwargs)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10)
        out.sum().backward()
        tout.sum().backward()
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-9)
    loss = nn.CrossEntropyLoss(ignore_index=3, label_smoothing=0.05)
    tloss = torch.nn.CrossEntropyLoss(ignore_index=3, label_smoothing=0.05)
    np.testing.assert_allclose(loss(fg.tensor(z4), fg.tensor(np.abs(y) % 4)).item(),
                               tloss(torch.tensor(z4), torch.tensor(np.abs(y) % 4)).item())


# ---------------------------------------------------------------- gradient clipping


def test_clip_grad_norm_and_value():
    a = fg.tensor([3.0, 0.0], requires_grad=True)
    b = fg.tensor([[4.0]], requires_grad=True)
    a.grad, b.grad = fg.tensor([3.0, 0.0]), fg.tensor([[4.0]])
    total = nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), [[0.8]], rtol=1e-5)
    assert nn.utils.clip_grad_norm_(a, 10.0).item() == pytest.approx(0.6, rel=1e-5)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0.0], rtol=1e-5)  # below: unchanged
    b.grad = fg.tensor([[-3.0]])
    assert nn.utils.clip_grad_norm_([a, b], 1.0, norm_type=float("inf")).item() == 3.0
    nn.utils.clip_grad_value_([a, b], 0.1)
    assert b.grad.item() == pytest.approx(-0.1) and a.grad.numpy().max() <= 0.1
    b.grad = fg.tensor([[math.inf]])
    with pytest.raises(RuntimeError, match="inf"):
        nn.utils.clip_grad_norm_([b], 1.0, error_if_nonfinite=True)


def test_clip_grad_norm_against_pytorch(rng):
    torch = pytest.importorskip("torch")
    grads = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(
        5).astype(np.float32)]
    for norm_type in (2.0, 1.0, float("inf"), 3.0):
        ours = [fg.tensor(np.zeros_like(g), requires_grad=True) for g in grads]
        theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
        for p, tp, g in zip(ours, theirs, grads):
            p.grad, tp.grad = fg.tensor(g), torch.tensor(g)
        total = nn.utils.clip_grad_norm_(ours, 0.5, norm_type)
        ttotal = torch.nn.utils.clip_grad_norm_(theirs, 0.5, norm_type)
        np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-5)
        for p, tp in zip(ours, theirs):
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, kind, match", [
    (lambda: F.conv2d(fg.ones(1, 3, 5, 5), fg.ones(4, 2, 3, 3)), ValueError,
     r"\(1, 3, 5, 5\) has 3 channels.*\(4, 2, 3, 3\).*expects 2"),
    (lambda: F.conv2d(fg.ones(1, 1, 2, 2), fg.ones(1, 1, 3, 3)), ValueError,
     r"kernel size \(3, 3\).*larger than the padded input \(2, 2\)"),
    (lambda: F.conv2d(fg.ones(1, 4, 5, 5), fg.ones(3, 2, 3, 3), groups=2), ValueError,
     "groups=2 does not divide the 3 output channels"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "in_channels=3 must be divisible"),
    (lambda: F.conv2d(fg.ones(5, 5), fg.ones(1, 1, 3, 3)), ValueError, r"\(5, 5\)"),
    (lambda: F.conv2d(fg.ones(1, 1, 5, 5), fg.ones(1, 1, 3, 3), stride=0), ValueError,
     "stride must be >= 1"),
    (lambda: F.conv2d(fg.ones(1, 1, 5, 5), fg.ones(1, 1, 3, 3), padding="same", stride=2),
     ValueError, "strided"),
    (lambda: F.conv1d(fg.ones(1, 2, 5), fg.ones(1, 3, 3)), ValueError, "2 channels"),
    (lambda: F.max_pool2d(fg.ones(1, 1, 4, 4), 2, padding=2), ValueError, "at most half"),
    (lambda: F.max_pool2d(fg.ones(1, 1, 1, 1), 2), ValueError, "larger than the padded"),
    (lambda: nn.Dropout(1.0), ValueError, r"\[0, 1\), got 1.0"),
    (lambda: F.dropout(fg.ones(2), -0.1), ValueError, r"got -0.1"),
    (lambda: F.one_hot(fg.tensor([1, 2]), num_classes=-3), ValueError, "-3"),
    (lambda: F.one_hot(fg.tensor([1, 5]), num_classes=3), ValueError, "num_classes=3.*5"),
    (lambda: nn.Embedding(3, 2)(fg.tensor([0, 3])), IndexError, r"\[0, 3\).*max 3"),
    (lambda: nn.Embedding(3, 2)(fg.tensor([-1])), IndexError, "min -1"),
    (lambda: nn.LayerNorm(4)(fg.ones(2, 3)), ValueError,
     r"normalized_shape \(4,\).*\(2, 3\)"),
    (lambda: nn.BatchNorm2d(3)(fg.ones(2, 4, 2, 2)), ValueError, "4 channels.*num_features=3"),
    (lambda: nn.BatchNorm1d(3)(fg.ones(2, 3, 2, 2)), ValueError, "expected 2D or 3D"),
    (lambda: nn.BatchNorm1d(3)(fg.ones(1, 3)), ValueError, "more than 1 value per channel"),
    (lambda: nn.MultiheadAttention(6, 4), ValueError, "embed_dim=6.*num_heads=4"),
    (lambda: nn.MultiheadAttention(4, 2)(fg.ones(2, 3, 5), fg.ones(2, 3, 5), fg.ones(2, 3, 5)),
     ValueError, "embed_dim=4"),
    (lambda: F.cross_entropy(fg.ones(2, 3), fg.tensor([0, 3])), ValueError, r"\[0, 3\)"),
    (lambda: F.cross_entropy(fg.ones(2, 3), fg.tensor([0, 7]), label_smoothing=0.1),
     IndexError, r"\[0, 3\).*max 7"),
    (lambda: F.cross_entropy(fg.ones(2, 3), fg.tensor([0, 1]), label_smoothing=1.5),
     ValueError, "1.5"),
    (lambda: F.nll_loss(fg.ones(2, 3), fg.tensor([0, 1, 2])), ValueError, r"\(2,\).*\(3,\)"),
    (lambda: F.scaled_dot_product_attention(fg.ones(2, 3), fg.ones(2, 4), fg.ones(2, 4)),
     ValueError, r"\(2, 3\).*\(2, 4\)"),
])
@pytest.mark.numpy_only  # index values are checked on the host only
def test_bad_input_is_one_clear_error(call, kind, match):
    with pytest.raises(kind, match=match):
        call()


def test_conv_backward_twice_with_retain_graph_recomputes_the_columns():
    fg.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = fg.randn(2, 2, 5, 5, requires_grad=True)
    loss = (conv(x) ** 2).sum()
    loss.backward(retain_graph=True)
    first_w, first_x = conv.weight.grad.numpy().copy(), x.grad.numpy().copy()
    loss.backward()  # the saved columns were handed to the first pass: recomputed here
    np.testing.assert_allclose(conv.weight.grad.numpy(), 2 * first_w, rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), 2 * first_x, rtol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(stride=2, dilation=2, padding=2),
                                    dict(groups=2, padding=(0, 1))])
def test_conv_input_gradient_by_offsets_equals_col2im(monkeypatch, kwargs):
    from flowgrad.ops import conv as conv_ops

    rng = np.random.default_rng(4)
    x_np, w_np = rng.standard_normal((3, 4, 7, 6)), rng.standard_normal((6, 4 // kwargs.get(
        "groups", 1), 3, 3))

    def grads():
        x = fg.tensor(x_np, requires_grad=True)
        w = fg.tensor(w_np, requires_grad=True)
        (F.conv2d(x, w, **kwargs) ** 2).sum().backward()
        return x.grad.numpy(), w.grad.numpy()

    whole = grads()
    monkeypatch.setattr(conv_ops, "_SMALL_COLUMNS", 0)  # large-problem path: per offset
    by_offset = grads()
    for a, b in zip(whole, by_offset):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_batchnorm_bias_false_scales_without_a_shift():
    # PyTorch's keyword bias=False: a weight but no bias parameter (and no state-dict key).
    bn = fg.nn.BatchNorm1d(3, bias=False)
    assert bn.bias is None and bn.weight is not None
    assert list(bn.state_dict()) == ["weight", "running_mean", "running_var",
                                     "num_batches_tracked"]
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    with fg.no_grad():
        bn.weight.mul_(fg.tensor([1.0, 2.0, 3.0]))
    y = bn(fg.tensor(x)).numpy()
    normed = (x - x.mean(0)) / np.sqrt(x.var(0) + bn.eps)
    np.testing.assert_allclose(y, normed * [1.0, 2.0, 3.0], rtol=1e-5, atol=1e-6)
