"""fg.nn: module registration, state dicts, Linear, activations, losses, init helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import flowgrad as fg
import flowgrad.nn.functional as F
from flowgrad import nn
from flowgrad.nn import init

# Also run on array-api-strict's simulated device: python -m pytest --backend strict
pytestmark = pytest.mark.portable


class MLP(nn.Module):
    def __init__(self, n_in: int = 4, hidden: int = 5, n_out: int = 3):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, n_out)
        self.note = "plain attributes are not registered"
        self.scale = fg.ones(1)  # a plain Tensor is not a parameter

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# -- registration and traversal --------------------------------------------------------------
def test_attribute_assignment_registers_parameters_and_modules():
    net = MLP()
    assert [n for n, _ in net.named_parameters()] == \
        ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert list(net._modules) == ["fc1", "act", "fc2"]
    assert [type(m).__name__ for m in net.children()] == ["Linear", "ReLU", "Linear"]
    assert [type(m).__name__ for m in net.modules()] == ["MLP", "Linear", "ReLU", "Linear"]
    assert net.note.startswith("plain") and net.scale.shape == (1,)
    assert all(isinstance(p, nn.Parameter) and p.requires_grad and p.is_leaf
               for p in net.parameters())
    assert net.fc1.weight is dict(net.named_parameters())["fc1.weight"]


def test_nested_sequential_names_are_pytorchs():
    net = nn.Sequential(
        nn.Linear(3, 4), nn.Tanh(),
        nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(0.1), nn.Linear(4, 2, bias=False)),
    )
    assert [n for n, _ in net.named_parameters()] == \
        ["0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.2.weight"]
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.0.weight", "2.0.bias",
                                      "2.2.weight"]
    assert net[2][2].bias is None
    assert [n for n, _ in net.named_modules()] == ["", "0", "1", "2", "2.0", "2.1", "2.2"]


def test_shared_parameter_is_listed_once():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(net.parameters())) == 2
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias"]


def test_reassignment_and_deletion():
    net = MLP()
    net.fc2 = nn.Identity()
    assert [n for n, _ in net.named_parameters()] == ["fc1.weight", "fc1.bias"]
    net.fc1.bias = None
    assert [n for n, _ in net.named_parameters()] == ["fc1.weight"]
    with pytest.raises(TypeError, match="parameter 'weight'"):
        net.fc1.weight = fg.zeros(5, 4)  # a Tensor where a Parameter lives
    del net.fc2
    assert "fc2" not in dict(net.named_children())
    with pytest.raises(AttributeError, match="no attribute 'fc2'"):
        _ = net.fc2


def test_assigning_before_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(fg.zeros(2))

    with pytest.raises(AttributeError, match=r"before Broken.__init__\(\) has called super"):
        Broken()


def test_zero_grad_train_eval():
    net = MLP()
    net(fg.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(TypeError, match="bool"):
        net.train("no")


def test_call_runs_forward_and_base_forward_is_missing():
    net = MLP()
    x = fg.randn(2, 4)
    np.testing.assert_array_equal(net(x).numpy(), net.forward(x).numpy())
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(x)


def test_repr_looks_like_pytorchs():
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(),
                        nn.Sequential(nn.Linear(32, 10), nn.Softmax(dim=1)))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=64, out_features=32, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Linear(in_features=32, out_features=10, bias=True)\n"
        "    (1): Softmax(dim=1)\n"
        "  )\n"
        ")")
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.CrossEntropyLoss(reduction="sum")) == "CrossEntropyLoss(reduction='sum')"
    assert repr(nn.Parameter(fg.zeros(2))).startswith("Parameter containing:\ntensor(")


# -- Parameter ---------------------------------------------------------------------------------
@pytest.mark.numpy_only  # host memory sharing
def test_parameter_shares_float_data_and_converts_the_rest():
    t = fg.tensor([1.0, 2.0])
    p = nn.Parameter(t)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    assert np.shares_memory(p.numpy(), t.numpy())
    q = nn.Parameter(fg.tensor([1, 2, 3]))
    assert q.dtype == np.float32 and q.requires_grad
    ro = np.broadcast_to(np.float32(1.0), (3,))
    r = nn.Parameter(ro)
    assert r.numpy().flags.writeable and not np.shares_memory(r.numpy(), ro)
    frozen = nn.Parameter(fg.zeros(2), requires_grad=False)
    assert not frozen.requires_grad
    # Ops on parameters give plain Tensors.
    assert type(p * 2) is fg.Tensor and type(p.detach()) is fg.Tensor


# -- state dicts -------------------------------------------------------------------------------
@pytest.mark.numpy_only  # host memory sharing
def test_state_dict_is_detached_and_shares_arrays():
    net = MLP()
    sd = net.state_dict()
    assert list(sd) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert all(not v.requires_grad for v in sd.values())
    assert np.shares_memory(sd["fc1.weight"].numpy(), net.fc1.weight.numpy())


def test_state_dict_round_trip_through_save(tmp_path):
    fg.manual_seed(1)
    a = MLP()
    fg.manual_seed(2)
    b = MLP()
    x = fg.randn(3, 4)
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    fg.save(a.state_dict(), tmp_path / "m.npz")
    weight_array = b.fc1.weight.data
    result = b.load_state_dict(fg.load(tmp_path / "m.npz"))
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    # Copied in place: the same arrays (an optimizer holding them keeps working).
    assert b.fc1.weight.data is weight_array
    assert not np.shares_memory(b.fc1.weight.numpy(), a.fc1.weight.numpy())


def test_load_state_dict_accepts_arrays_and_casts():
    net = nn.Linear(2, 3)
    net.load_state_dict({"weight": np.ones((3, 2)), "bias": [1.0, 2.0, 3.0]})
    assert net.weight.dtype == np.float32
    np.testing.assert_array_equal(net.bias.numpy(), [1, 2, 3])


def test_load_state_dict_missing_key():
    net = MLP()
    sd = net.state_dict()
    del sd["fc2.bias"]
    with pytest.raises(RuntimeError, match=r"(?s)missing key\(s\).*'fc2\.bias'"):
        MLP().load_state_dict(sd)
    assert MLP().load_state_dict(sd, strict=False).missing_keys == ["fc2.bias"]


def test_load_state_dict_unexpected_key():
    sd = MLP().state_dict()
    sd["fc3.weight"] = fg.zeros(2, 2)
    with pytest.raises(RuntimeError, match=r"unexpected key\(s\) in state_dict: 'fc3\.weight'"):
        MLP().load_state_dict(sd)
    assert MLP().load_state_dict(sd, strict=False).unexpected_keys == ["fc3.weight"]


def test_load_state_dict_shape_mismatch_names_key_and_both_shapes():
    sd = MLP(hidden=7).state_dict()
    target = MLP(hidden=5)
    before = target.fc2.bias.numpy().copy()
    with pytest.raises(fg.ShapeError, match=r"'fc1\.weight'.*\(7, 4\).*\(5, 4\)"):
        target.load_state_dict(sd)
    with pytest.raises(fg.ShapeError):
        target.load_state_dict(sd, strict=False)  # shapes are checked even when not strict
    # Nothing was half-loaded: fc2.bias has a matching shape but was left alone.
    np.testing.assert_array_equal(target.fc2.bias.numpy(), before)


# -- Linear and Sequential ---------------------------------------------------------------------
def test_linear_shapes_bounds_and_seed():
    fg.manual_seed(0)
    layer = nn.Linear(100, 200)
    assert layer.weight.shape == (200, 100) and layer.bias.shape == (200,)
    assert layer.weight.dtype == np.float32
    bound = 1 / math.sqrt(100)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # Uniform over the whole interval: reaches near the edges, variance bound²/3.
    assert np.abs(w).max() > 0.99 * bound and np.abs(b).max() > 0.9 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert abs(w.mean()) < 0.05 * bound
    fg.manual_seed(0)
    again = nn.Linear(100, 200)
    np.testing.assert_array_equal(again.weight.numpy(), w)
    np.testing.assert_array_equal(again.bias.numpy(), b)
    assert not np.array_equal(nn.Linear(100, 200).weight.numpy(), w)


def test_linear_forward_and_gradients_match_numpy(rng):
    layer = nn.Linear(3, 2)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    out = layer(fg.tensor(x))
    w, b = layer.weight.numpy(), layer.bias.numpy()
    np.testing.assert_allclose(out.numpy(), x @ w.T + b, rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), np.ones((5, 2)).T @ x, rtol=1e-6)
    np.testing.assert_allclose(layer.bias.grad.numpy(), [5.0, 5.0])
    no_bias = nn.Linear(3, 2, bias=False)
    np.testing.assert_allclose(no_bias(fg.tensor(x)).numpy(), x @ no_bias.weight.numpy().T,
                               rtol=1e-6)


def test_linear_rejects_bad_sizes():
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(-1, 2)
    with pytest.raises(TypeError, match="out_features"):
        nn.Linear(2, 2.5)
    with pytest.raises(fg.ShapeError, match=r"\(2, 5\)"):
        nn.Linear(3, 2)(fg.zeros(2, 5))


def test_sequential_container_protocol():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and list(seq) == [a, b, c]
    assert seq[0] is a and seq[-1] is c
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert [n for n, _ in sub.named_parameters()] == ["2.weight", "2.bias"]
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(a, lambda x: x)
    x = fg.randn(4, 2)
    np.testing.assert_allclose(seq(x).numpy(), c(b(a(x))).numpy())
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and "3" in seq._modules


# -- activations -------------------------------------------------------------------------------
def test_activation_modules_match_numpy(rng):
    x = rng.normal(size=(3, 4)).astype(np.float32) * 3
    t = fg.tensor(x)
    e = np.exp(x - x.max(axis=0, keepdims=True))
    cases = [
        (nn.ReLU(), np.maximum(x, 0)),
        (nn.Sigmoid(), 1 / (1 + np.exp(-x))),
        (nn.Tanh(), np.tanh(x)),
        (nn.Identity(7, key="ignored"), x),
        (nn.LeakyReLU(), np.where(x > 0, x, 0.01 * x)),
        (nn.LeakyReLU(negative_slope=0.2), np.where(x > 0, x, 0.2 * x)),
        (nn.Softmax(dim=0), e / e.sum(axis=0, keepdims=True)),
        (nn.LogSoftmax(dim=1), np_log_softmax(x)),
        (nn.Flatten(0), x.reshape(-1)),
    ]
    for module, expected in cases:
        np.testing.assert_allclose(module(t).numpy(), expected, rtol=1e-5, atol=1e-6,
                                   err_msg=repr(module))


def test_functional_reexports_core_ops():
    assert F.sigmoid is fg.sigmoid and F.tanh is fg.tanh
    # relu alone is a thin wrapper, for PyTorch's inplace= argument; the same op underneath.
    assert F.relu(fg.tensor([-1.0, 2.0]), inplace=False).grad_fn is None
    x = fg.tensor([-1.0, 2.0], requires_grad=True)
    assert F.relu(x).grad_fn.op is fg.relu(x).grad_fn.op
    assert F.softmax is fg.softmax and F.log_softmax is fg.log_softmax
    assert F.linear is fg.linear


# -- losses ------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_each_reduction(reduction, rng):
    a = rng.normal(size=(4, 3)).astype(np.float32)
    b = rng.normal(size=(4, 3)).astype(np.float32)
    x = fg.tensor(a, requires_grad=True)
    loss = nn.MSELoss(reduction=reduction)(x, fg.tensor(b))
    sq = (a - b) ** 2
    expected = {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)
    assert loss.shape == (() if reduction != "none" else (4, 3))
    loss.backward(None if reduction != "none" else np.ones((4, 3), np.float32))
    scale = 1 / a.size if reduction == "mean" else 1.0
    np.testing.assert_allclose(x.grad.numpy(), 2 * (a - b) * scale, rtol=1e-5)


def test_mse_loss_keeps_float32_and_checks_shapes():
    x = fg.zeros(3)
    assert F.mse_loss(x, np.ones(3)).dtype == np.float32  # a float64 target doesn't upcast
    with pytest.raises(fg.ShapeError, match=r"\(3, 1\).*\(3,\)"):
        F.mse_loss(x, np.ones((3, 1)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_each_reduction(reduction, rng):
    z = rng.normal(size=(6, 4)).astype(np.float32) * 2
    y = rng.integers(0, 4, size=6)
    logits = fg.tensor(z, requires_grad=True)
    loss = nn.CrossEntropyLoss(reduction=reduction)(logits, fg.tensor(y))
    per = -np_log_softmax(z.astype(np.float64))[np.arange(6), y]
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    assert loss.shape == (() if reduction != "none" else (6,))
    loss.backward(None if reduction != "none" else np.ones(6, np.float32))
    soft = np.exp(np_log_softmax(z.astype(np.float64)))
    onehot = np.eye(4)[y]
    scale = 1 / 6 if reduction == "mean" else 1.0
    np.testing.assert_allclose(logits.grad.numpy(), (soft - onehot) * scale, rtol=1e-5,
                               atol=1e-7)


def test_cross_entropy_is_stable_for_huge_logits():
    z = fg.tensor([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], requires_grad=True)
    loss = F.cross_entropy(z, fg.tensor([0, 0]))
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx(5e3, rel=1e-6)
    loss.backward()
    assert np.all(np.isfinite(z.grad.numpy()))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_each_reduction(reduction, rng):
    z = rng.normal(size=(5,)).astype(np.float32) * 3
    t = (rng.random(5) > 0.5).astype(np.float32)
    loss = F.binary_cross_entropy_with_logits(fg.tensor(z), fg.tensor(t), reduction=reduction)
    p = 1 / (1 + np.exp(-z.astype(np.float64)))
    per = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(
        nn.BCEWithLogitsLoss(reduction=reduction)(fg.tensor(z), fg.tensor(t)).numpy(),
        expected, rtol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_weight_and_pos_weight_by_hand(reduction, rng):
    z = rng.normal(size=(4, 3)) * 3
    z[0, 0] = 0.0  # the kink of max(x, 0) and |x|: the derivative must still be exact
    t = (rng.random((4, 3)) > 0.5).astype(np.float64)
    t[1, 1] = 0.25  # soft targets are allowed
    weight, pos_weight = rng.random(3) + 0.5, rng.random(3) * 3
    loss = F.binary_cross_entropy_with_logits(fg.tensor(z), fg.tensor(t), fg.tensor(weight),
                                              reduction, fg.tensor(pos_weight))
    p = 1 / (1 + np.exp(-z))
    per = -weight * (pos_weight * t * np.log(p) + (1 - t) * np.log(1 - p))
    expected = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)
    module = nn.BCEWithLogitsLoss(fg.tensor(weight), reduction, pos_weight=fg.tensor(pos_weight))
    np.testing.assert_allclose(module(fg.tensor(z), fg.tensor(t)).numpy(), expected, rtol=1e-12)
    # d/dx = weight·[(pos_weight·t + 1 - t)·σ(x) - pos_weight·t], at x = 0 too
    x = fg.tensor(z, requires_grad=True)
    F.binary_cross_entropy_with_logits(x, t, fg.tensor(weight), "sum",
                                       fg.tensor(pos_weight)).backward()
    np.testing.assert_allclose(
        x.grad.numpy(), weight * ((pos_weight * t + 1 - t) * p - pos_weight * t), rtol=1e-12)
    assert fg.gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(
        a, b, fg.tensor(weight), reduction, fg.tensor(pos_weight)),
        [fg.tensor(z, requires_grad=True), fg.tensor(t, requires_grad=True)])
    with pytest.raises(fg.ShapeError, match=r"\(4, 3\).*\(4, 2\)|\(4, 2\).*\(4, 3\)"):
        F.binary_cross_entropy_with_logits(fg.tensor(z), t[:, :2], pos_weight=fg.tensor(2.0))


def test_bce_with_logits_weights_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    z, t = rng.normal(size=(6, 2)) * 4, (rng.random((6, 2)) > 0.5).astype(np.float64)
    weight, pos_weight = rng.random(2) + 0.1, rng.random(2) * 4
    x = fg.tensor(z, requires_grad=True)
    nn.BCEWithLogitsLoss(fg.tensor(weight), pos_weight=fg.tensor(pos_weight))(x, t).backward()
    tx = torch.tensor(z, requires_grad=True)
    torch.nn.BCEWithLogitsLoss(torch.tensor(weight), pos_weight=torch.tensor(pos_weight))(
        tx, torch.tensor(t)).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_bad_reduction_names_the_allowed_values():
    for make in (lambda: nn.MSELoss(reduction="avg"),
                 lambda: nn.CrossEntropyLoss(reduction="avg"),
                 lambda: F.mse_loss(fg.zeros(2), fg.zeros(2), reduction="avg")):
        with pytest.raises(ValueError, match="'mean', 'sum', 'none'.*'avg'"):
            make()


# -- init helpers ------------------------------------------------------------------------------
def test_init_helpers_fill_in_place():
    fg.manual_seed(0)
    w = nn.Parameter(fg.zeros(300, 200))
    arr = w.data
    assert init.uniform_(w, -2.0, 3.0) is w and w.data is arr
    assert w.numpy().min() >= -2.0 and w.numpy().max() < 3.0
    assert w.numpy().mean() == pytest.approx(0.5, abs=0.02)
    init.normal_(w, mean=1.0, std=0.5)
    assert w.numpy().mean() == pytest.approx(1.0, abs=0.01)
    assert w.numpy().std() == pytest.approx(0.5, rel=0.01)
    init.zeros_(w)
    assert not w.numpy().any() and w.data is arr and w.dtype == np.float32
    init.kaiming_uniform_(w)  # a=0, leaky_relu gain sqrt(2): bound = sqrt(6 / fan_in)
    bound = math.sqrt(6 / 200)
    assert np.abs(w.numpy()).max() <= bound
    assert w.numpy().std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    init.xavier_uniform_(w, gain=2.0)
    bound = 2.0 * math.sqrt(6 / (200 + 300))
    assert np.abs(w.numpy()).max() <= bound and np.abs(w.numpy()).max() > 0.99 * bound
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="at least 2 dims"):
        init.xavier_uniform_(nn.Parameter(fg.zeros(3)))


# -- end to end --------------------------------------------------------------------------------
def test_reference_network_learns(rng):
    # softmax(W2 · relu(W1 · x + b1) + b2) with cross-entropy and plain SGD.
    centers = rng.normal(size=(3, 8)) * 3
    y = rng.integers(0, 3, size=120)
    x = (centers[y] + rng.normal(size=(120, 8))).astype(np.float32)
    fg.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = fg.optim.SGD(net.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn(net(fg.tensor(x)), fg.tensor(y))
        loss.backward()
        opt.step()
    accuracy = (net(fg.tensor(x)).numpy().argmax(axis=1) == y).mean()
    assert accuracy > 0.95 and loss.item() < 0.2


# -- optional PyTorch oracle -------------------------------------------------------------------
def test_linear_and_cross_entropy_against_pytorch(rng):
    torch = pytest.importorskip("torch")
    layer = nn.Linear(5, 4)
    tlayer = torch.nn.Linear(5, 4)
    with torch.no_grad():
        tlayer.weight.copy_(torch.tensor(layer.weight.numpy()))
        tlayer.bias.copy_(torch.tensor(layer.bias.numpy()))
    x = rng.normal(size=(7, 5)).astype(np.float32) * 4
    y = rng.integers(0, 4, size=7)
    for reduction in ("mean", "sum"):
        layer.zero_grad()
        tlayer.zero_grad()
        loss = nn.CrossEntropyLoss(reduction=reduction)(layer(fg.tensor(x)), fg.tensor(y))
        tloss = torch.nn.CrossEntropyLoss(reduction=reduction)(tlayer(torch.tensor(x)),
                                                               torch.tensor(y))
        loss.backward()
        tloss.backward()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-5)
        np.testing.assert_allclose(layer.weight.grad.numpy(), tlayer.weight.grad.numpy(),
                                   rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(layer.bias.grad.numpy(), tlayer.bias.grad.numpy(),
                                   rtol=1e-4, atol=1e-6)
    z = rng.normal(size=(6, 3)).astype(np.float32)
    t = rng.normal(size=(6, 3)).astype(np.float32)
    assert F.mse_loss(fg.tensor(z), fg.tensor(t)).item() == pytest.approx(
        torch.nn.functional.mse_loss(torch.tensor(z), torch.tensor(t)).item(), rel=1e-6)


def test_linear_init_distribution_matches_pytorch_bounds():
    torch = pytest.importorskip("torch")
    t = torch.nn.Linear(50, 40)
    ours = nn.Linear(50, 40)
    # Same scheme: both within 1/sqrt(50), with the same spread.
    for a, b in ((ours.weight.numpy(), t.weight.detach().numpy()),
                 (ours.bias.numpy(), t.bias.detach().numpy())):
        assert np.abs(a).max() <= 1 / math.sqrt(50) and np.abs(b).max() <= 1 / math.sqrt(50)
    assert ours.weight.numpy().std() == pytest.approx(t.weight.detach().numpy().std(), rel=0.1)
