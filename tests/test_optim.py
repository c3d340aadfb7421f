"""Optimizers and schedulers against hand computations of their update rules.

The references below are written from the formulas (textbook order, float64 NumPy), not
from the optimizer code, and the optimizers run in float32; three steps on a tiny problem
whose gradient changes with the parameters, so every buffer matters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import flowgrad as fg
from flowgrad.optim import SGD, Adagrad, Adam, AdamW, RMSprop
from flowgrad.optim.lr_scheduler import CosineAnnealingLR, StepLR

# Also run on array-api-strict's simulated device: python -m pytest --backend strict
pytestmark = pytest.mark.portable

# -- the tiny problem ------------------------------------------------------------------------
# loss(w, M) = Σ c·w² + Σ d·w + Σ (M @ x - y)²
C = np.array([0.5, 1.5, 2.0])
D = np.array([0.3, -0.2, 0.1])
X = np.array([1.0, -2.0, 0.5])
Y = np.array([0.4, -0.7])
W0 = np.array([1.0, -2.0, 0.5])
M0 = np.array([[0.2, -0.1, 0.4], [0.3, 0.8, -0.5]])


def np_grads(w: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = m @ X - Y
    return 2 * C * w + D, 2 * np.outer(r, X)


def make_params():
    w = fg.tensor(W0.astype(np.float32), requires_grad=True)
    m = fg.tensor(M0.astype(np.float32), requires_grad=True)
    return w, m


def fg_loss(w, m):
    c, d = fg.tensor(C.astype(np.float32)), fg.tensor(D.astype(np.float32))
    x, y = fg.tensor(X.astype(np.float32)), fg.tensor(Y.astype(np.float32))
    r = fg.matmul(m, x) - y
    return (c * w * w).sum() + (d * w).sum() + (r * r).sum()


def run(opt, params, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        fg_loss(*params).backward()
        opt.step()


# -- reference update rules, one function per optimizer, state in a dict per parameter --------
def ref_sgd(p, g, s, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    g = g + weight_decay * p
    if momentum:
        s["buf"] = g.copy() if "buf" not in s else momentum * s["buf"] + (1 - dampening) * g
        g = g + momentum * s["buf"] if nesterov else s["buf"]
    return p - lr * g


def ref_adagrad(p, g, s, lr=0.01, lr_decay=0.0, weight_decay=0.0,
                initial_accumulator_value=0.0, eps=1e-10):
    s["t"] = s.get("t", 0) + 1
    g = g + weight_decay * p
    s["sum"] = s.get("sum", np.full_like(p, initial_accumulator_value)) + g * g
    clr = lr / (1 + (s["t"] - 1) * lr_decay)
    return p - clr * g / (np.sqrt(s["sum"]) + eps)


def ref_rmsprop(p, g, s, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                centered=False):
    g = g + weight_decay * p
    s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g * g
    v = s["v"]
    if centered:
        s["gavg"] = alpha * s.get("gavg", 0.0) + (1 - alpha) * g
        v = v - s["gavg"] ** 2
    step = g / (np.sqrt(v) + eps)
    if momentum:
        s["buf"] = momentum * s.get("buf", 0.0) + step
        step = s["buf"]
    return p - lr * step


def ref_adam(p, g, s, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
             amsgrad=False, decoupled=False):
    b1, b2 = betas
    s["t"] = s.get("t", 0) + 1
    t = s["t"]
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    m_hat = s["m"] / (1 - b1 ** t)
    v = s["v"]
    if amsgrad:
        s["vmax"] = np.maximum(s.get("vmax", 0.0), v)
        v = s["vmax"]
    v_hat = v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def ref_adamw(p, g, s, weight_decay=0.01, **kw):
    return ref_adam(p, g, s, weight_decay=weight_decay, decoupled=True, **kw)


CASES = [
    ("sgd", SGD, ref_sgd, dict(lr=0.1)),
    ("sgd-wd", SGD, ref_sgd, dict(lr=0.1, weight_decay=0.05)),
    ("sgd-momentum", SGD, ref_sgd, dict(lr=0.05, momentum=0.9)),
    ("sgd-dampening", SGD, ref_sgd, dict(lr=0.05, momentum=0.9, dampening=0.3,
                                         weight_decay=0.01)),
    ("sgd-nesterov", SGD, ref_sgd, dict(lr=0.05, momentum=0.8, nesterov=True,
                                        weight_decay=0.02)),
    ("adagrad", Adagrad, ref_adagrad, dict(lr=0.1)),
    ("adagrad-all", Adagrad, ref_adagrad, dict(lr=0.1, lr_decay=0.5, weight_decay=0.1,
                                               initial_accumulator_value=0.2, eps=1e-6)),
    ("rmsprop", RMSprop, ref_rmsprop, dict(lr=0.01)),
    ("rmsprop-momentum-wd", RMSprop, ref_rmsprop, dict(lr=0.01, alpha=0.9, momentum=0.5,
                                                       weight_decay=0.1)),
    ("rmsprop-centered", RMSprop, ref_rmsprop, dict(lr=0.01, alpha=0.8, centered=True,
                                                    momentum=0.3, eps=1e-6)),
    ("adam", Adam, ref_adam, dict(lr=0.1)),
    ("adam-l2", Adam, ref_adam, dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1,
                                     eps=1e-3)),
    ("adam-amsgrad", Adam, ref_adam, dict(lr=0.05, amsgrad=True)),
    ("adamw", AdamW, ref_adamw, dict(lr=0.1)),
    ("adamw-amsgrad", AdamW, ref_adamw, dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
]
IDS = [c[0] for c in CASES]


def reference_trajectory(ref, kwargs, steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    w, m = W0.copy(), M0.copy()
    sw, sm = {}, {}
    out = []
    for _ in range(steps):
        gw, gm = np_grads(w, m)
        w, m = ref(w, gw, sw, **kwargs), ref(m, gm, sm, **kwargs)
        out.append((w, m))
    return out


@pytest.mark.parametrize("name, cls, ref, kwargs", CASES, ids=IDS)
def test_three_steps_match_the_formula(name, cls, ref, kwargs):
    params = make_params()
    opt = cls(list(params), **kwargs)
    expected = reference_trajectory(ref, kwargs, 3)
    for step in range(3):
        run(opt, params, 1)
        w_exp, m_exp = expected[step]
        np.testing.assert_allclose(params[0].numpy(), w_exp, rtol=2e-5, atol=1e-6,
                                   err_msg=f"{name}, step {step + 1}, w")
        np.testing.assert_allclose(params[1].numpy(), m_exp, rtol=2e-5, atol=1e-6,
                                   err_msg=f"{name}, step {step + 1}, M")
    # Moved away from the start; parameters and buffers stayed float32.
    assert not np.allclose(params[0].numpy(), W0)
    for p in params:
        assert p.dtype == np.float32
        for buf in opt.state.get(p, {}).values():
            if isinstance(buf, np.ndarray):
                assert buf.dtype == np.float32


@pytest.mark.parametrize("name, cls, ref, kwargs", CASES, ids=IDS)
def test_zero_dim_parameter(name, cls, ref, kwargs):
    # 0-d arrays turn into NumPy scalars under arithmetic; buffers must stay arrays.
    w = fg.tensor(np.float32(1.5), requires_grad=True)
    opt = cls([w], **{**kwargs, "maximize": True})
    p, state = np.float64(1.5), {}
    for _ in range(3):
        opt.zero_grad()
        (-(w * w * 0.7 + w * 0.2)).backward()  # maximize -loss: the same steps as minimizing
        opt.step()
        p = ref(p, 1.4 * p + 0.2, state, **kwargs)
        assert w.item() == pytest.approx(p, rel=2e-5, abs=1e-6), name
    assert w.shape == () and w.dtype == np.float32


# Worked by hand on loss = w², g = 2w, w0 = 1, lr = 0.1 (see the SGD docstring's rule).
@pytest.mark.parametrize("kwargs, expected", [
    (dict(), [0.8, 0.64, 0.512]),
    # buf = 2 | 0.9·2 + 1.6 = 3.4 | 0.9·3.4 + 0.92 = 3.98
    (dict(momentum=0.9), [0.8, 0.46, 0.062]),
    # first step undamped: buf = 2 | 0.9·2 + 0.5·1.6 = 2.6 | 0.9·2.6 + 0.5·1.08 = 2.88
    (dict(momentum=0.9, dampening=0.5), [0.8, 0.54, 0.252]),
    # g + 0.9·buf: 2 + 1.8 = 3.8 | 1.24 + 0.9·3.04 = 3.976 | 0.4448 + 0.9·3.1808 = 3.30752
    (dict(momentum=0.9, nesterov=True), [0.62, 0.2224, -0.108352]),
], ids=["plain", "momentum", "dampening", "nesterov"])
def test_sgd_by_hand(kwargs, expected):
    w = fg.tensor(1.0, requires_grad=True)
    opt = SGD([w], lr=0.1, **kwargs)
    got = []
    for _ in range(3):
        opt.zero_grad()
        (w * w).backward()
        opt.step()
        got.append(w.item())
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_adam_first_step_is_lr_times_sign():
    # Bias correction makes step 1 exactly m̂/√v̂ = g/|g| = sign(g), up to eps.
    w = fg.tensor([3.0, -0.001, 50.0], requires_grad=True)
    opt = Adam([w], lr=0.01)
    (w * w).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.numpy(), [2.99, 0.009, 49.99], rtol=1e-5, atol=1e-6)


def test_adamw_decay_is_decoupled_from_the_gradient():
    # With a zero gradient Adam's L2 decay still moves by ~lr (through m/√v), AdamW's
    # decoupled decay multiplies by exactly (1 - lr·wd).
    w1 = fg.tensor([2.0], requires_grad=True)
    w2 = fg.tensor([2.0], requires_grad=True)
    adam, adamw = Adam([w1], lr=0.1, weight_decay=0.5), AdamW([w2], lr=0.1, weight_decay=0.5)
    for w, opt in ((w1, adam), (w2, adamw)):
        w.grad = fg.zeros(1)
        opt.step()
    np.testing.assert_allclose(w1.numpy(), [1.9], rtol=1e-6)
    np.testing.assert_allclose(w2.numpy(), [2.0 * (1 - 0.1 * 0.5)], rtol=1e-6)


def test_maximize_ascends():
    w = fg.tensor([1.0], requires_grad=True)
    opt = SGD([w], lr=0.1, maximize=True)
    (w * w).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.numpy(), [1.2], rtol=1e-6)


# -- state dicts -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls, ref, kwargs", CASES, ids=IDS)
def test_resume_from_state_dict_equals_uninterrupted(name, cls, ref, kwargs, tmp_path):
    straight = make_params()
    opt = cls(list(straight), **kwargs)
    run(opt, straight, 6)

    first = make_params()
    opt1 = cls(list(first), **kwargs)
    run(opt1, first, 3)
    fg.save({"params": [p.detach() for p in first], "optim": opt1.state_dict()},
            tmp_path / "ckpt.npz")
    run(opt1, first, 2)  # the saved state must not follow later training

    saved = fg.load(tmp_path / "ckpt.npz")
    resumed = tuple(fg.tensor(np.asarray(p), requires_grad=True) for p in saved["params"])
    opt2 = cls(list(resumed), **kwargs)
    opt2.load_state_dict(saved["optim"])
    run(opt2, resumed, 3)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.numpy_only  # reads raw state arrays with NumPy
def test_state_dict_layout_is_pytorchs():
    w, m = make_params()
    extra = fg.zeros(2, requires_grad=True)
    opt = Adam([{"params": [w, m]}, {"params": [extra], "lr": 0.5}], lr=0.1, amsgrad=True)
    run(opt, (w, m), 2)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert sd["param_groups"][0]["params"] == [0, 1]
    assert sd["param_groups"][1]["params"] == [2]
    assert sd["param_groups"][0]["lr"] == 0.1 and sd["param_groups"][1]["lr"] == 0.5
    assert sd["param_groups"][1]["betas"] == (0.9, 0.999)
    # `extra` never had a gradient: no state for it.
    assert set(sd["state"]) == {0, 1}
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert sd["state"][1]["step"] == 2
    assert sd["state"][1]["exp_avg"].shape == (2, 3)
    # A snapshot: copies, not the live buffers.
    assert not np.shares_memory(sd["state"][0]["exp_avg"], opt.state[w]["exp_avg"])


def test_sgd_state_has_momentum_buffer_only_with_momentum():
    w, m = make_params()
    plain = SGD([w, m], lr=0.1)
    run(plain, (w, m), 1)
    assert plain.state_dict()["state"] == {}
    mom = SGD([w, m], lr=0.1, momentum=0.9)
    run(mom, (w, m), 1)
    assert set(mom.state_dict()["state"][0]) == {"momentum_buffer"}


@pytest.mark.numpy_only  # reads raw state arrays with NumPy
def test_adagrad_state_exists_before_the_first_step():
    w, m = make_params()
    opt = Adagrad([w, m], initial_accumulator_value=0.25)
    state = opt.state_dict()["state"]
    assert state[0]["step"] == 0
    np.testing.assert_array_equal(state[1]["sum"], np.full((2, 3), 0.25, np.float32))


@pytest.mark.numpy_only  # reads raw state arrays with NumPy
def test_load_state_dict_restores_hyperparameters_and_copies():
    w, m = make_params()
    opt = SGD([w, m], lr=0.1, momentum=0.9)
    run(opt, (w, m), 1)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.01
    w2, m2 = make_params()
    opt2 = SGD([w2, m2], lr=0.5, momentum=0.9)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.01
    assert opt2.param_groups[0]["params"][0] is w2
    buf = opt2.state[w2]["momentum_buffer"]
    assert not np.shares_memory(buf, sd["state"][0]["momentum_buffer"])
    assert buf.flags.writeable and buf.dtype == np.float32


def test_load_state_dict_errors():
    w, m = make_params()
    opt = Adam([w, m], lr=0.1)
    run(opt, (w, m), 1)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="parameter group"):
        Adam([{"params": [w]}, {"params": [m]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="has 2 parameter"):
        Adam([w]).load_state_dict(sd)
    sd["state"][0]["exp_avg"] = np.zeros(7, np.float32)
    with pytest.raises(ValueError, match=r"'exp_avg' has shape \(7,\).*shape \(3,\)"):
        Adam([w, m]).load_state_dict(sd)
    with pytest.raises(KeyError, match="param_groups"):
        Adam([w, m]).load_state_dict({"state": {}})


# -- behaviour around the rule -----------------------------------------------------------------
def test_params_without_grad_are_skipped_and_zero_grad_sets_none():
    w, m = make_params()
    unused = fg.tensor([5.0, 6.0], requires_grad=True)
    opt = RMSprop([w, m, unused], lr=0.1)
    run(opt, (w, m), 2)
    np.testing.assert_array_equal(unused.numpy(), [5.0, 6.0])
    assert unused not in opt.state
    assert w.grad is not None
    opt.zero_grad()
    assert w.grad is None and m.grad is None
    fg_loss(w, m).backward()
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros(3))


@pytest.mark.numpy_only  # read-only NumPy views
def test_read_only_shared_gradient_is_never_aliased_or_written():
    w = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    shared = np.broadcast_to(np.float32(0.5), (3,))  # read-only, like a broadcast gradient
    w.grad = fg.Tensor._make(shared, False, None)
    opt = SGD([w], lr=0.1, momentum=0.9, weight_decay=0.1)
    opt.step()
    opt.step()
    buf = opt.state[w]["momentum_buffer"]
    assert not np.shares_memory(buf, shared)
    np.testing.assert_array_equal(shared, [0.5, 0.5, 0.5])
    for cls in (Adam, AdamW, RMSprop, Adagrad):
        w2 = fg.tensor([1.0, 2.0, 3.0], requires_grad=True)
        w2.grad = fg.Tensor._make(shared, False, None)
        cls([w2]).step()


def test_gradient_from_backward_through_broadcast():
    # A bias broadcast over a batch: its .grad comes out of the engine's sum_to.
    b = fg.zeros(3, requires_grad=True)
    opt = Adam([b], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        ((fg.ones(4, 3) + b) ** 2).sum().backward()
        opt.step()
    assert np.all(b.numpy() < 0)


def test_param_groups_use_their_own_lr():
    a = fg.tensor([1.0], requires_grad=True)
    b = fg.tensor([1.0], requires_grad=True)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    (a * a + b * b).sum().backward()
    opt.step()
    np.testing.assert_allclose([a.item(), b.item()], [0.8, 0.0], atol=1e-7)
    c = fg.tensor([1.0], requires_grad=True)
    opt.add_param_group({"params": c, "momentum": 0.9})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["momentum"] == 0.9


def test_closure_is_called_and_its_loss_returned():
    w = fg.tensor([2.0], requires_grad=True)
    opt = SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(4.0)
    assert w.item() == pytest.approx(1.6)


@pytest.mark.parametrize("make, match", [
    (lambda p: SGD(p, lr=-0.1), "learning rate"),
    (lambda p: SGD(p), "required"),
    (lambda p: SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: SGD(p, lr=0.1, weight_decay=-1), "weight decay"),
    (lambda p: SGD(p, lr=0.1, nesterov=True), "Nesterov"),
    (lambda p: SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (lambda p: Adagrad(p, lr_decay=-1), "lr_decay"),
    (lambda p: Adagrad(p, eps=-1), "epsilon"),
    (lambda p: RMSprop(p, alpha=-0.1), "alpha"),
    (lambda p: RMSprop(p, lr=float("nan")), "learning rate"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), "beta parameter at index 0"),
    (lambda p: Adam(p, betas=(0.9, -0.1)), "beta parameter at index 1"),
    (lambda p: AdamW(p, eps=-1e-8), "epsilon"),
    (lambda p: Adam([], lr=0.1), "empty parameter list"),
])
def test_invalid_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make([fg.zeros(2, requires_grad=True)])


def test_invalid_params():
    w = fg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([w * 2], lr=0.1)
    with pytest.raises(TypeError, match="set"):
        SGD({w}, lr=0.1)
    with pytest.raises(TypeError, match="one Tensor"):
        SGD(w, lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [w]}, {"params": [w]}], lr=0.1)
    with pytest.raises(TypeError, match="Tensors"):
        SGD([np.zeros(2)], lr=0.1)


def test_trains_a_small_network_with_every_optimizer():
    fg.manual_seed(0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # XOR of the signs: needs the hidden layer
    for cls, kw in [(SGD, dict(lr=0.5, momentum=0.9)), (Adam, dict(lr=0.05)),
                    (AdamW, dict(lr=0.05)), (RMSprop, dict(lr=0.01)), (Adagrad, dict(lr=0.3))]:
        fg.manual_seed(0)
        net = fg.nn.Sequential(fg.nn.Linear(2, 16), fg.nn.Tanh(), fg.nn.Linear(16, 2))
        opt = cls(net.parameters(), **kw)
        loss_fn = fg.nn.CrossEntropyLoss()
        first = None
        for _ in range(150):
            opt.zero_grad()
            loss = loss_fn(net(fg.tensor(x)), fg.tensor(y))
            loss.backward()
            opt.step()
            first = loss.item() if first is None else first
        assert loss.item() < 0.5 * first, cls.__name__


# -- schedulers --------------------------------------------------------------------------------
def collect_lrs(sched, opt, epochs: int) -> list[list[float]]:
    out = []
    for _ in range(epochs):
        out.append(sched.get_last_lr())
        opt.step()
        sched.step()
    return out


def two_group_sgd():
    a, b = fg.zeros(1, requires_grad=True), fg.zeros(1, requires_grad=True)
    return SGD([{"params": [a]}, {"params": [b], "lr": 0.3}], lr=0.1)


def test_step_lr_matches_closed_form():
    opt = two_group_sgd()
    lrs = collect_lrs(StepLR(opt, step_size=3, gamma=0.5), opt, 12)
    for epoch, (lr_a, lr_b) in enumerate(lrs):
        assert lr_a == pytest.approx(0.1 * 0.5 ** (epoch // 3), rel=1e-12)
        assert lr_b == pytest.approx(0.3 * 0.5 ** (epoch // 3), rel=1e-12)
    assert opt.param_groups[0]["initial_lr"] == 0.1


@pytest.mark.parametrize("eta_min", [0.0, 0.01])
def test_cosine_matches_closed_form_beyond_t_max(eta_min):
    opt = two_group_sgd()
    T = 7
    lrs = collect_lrs(CosineAnnealingLR(opt, T_max=T, eta_min=eta_min), opt, 3 * T + 2)
    for t, (lr_a, lr_b) in enumerate(lrs):
        for base, got in ((0.1, lr_a), (0.3, lr_b)):
            want = eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / T)) / 2
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), t
    assert lrs[T][0] == pytest.approx(eta_min, abs=1e-12)


def test_scheduler_state_dict_resumes():
    opt = two_group_sgd()
    sched = CosineAnnealingLR(opt, T_max=10)
    collect_lrs(sched, opt, 4)
    sd = sched.state_dict()
    opt_sd = opt.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 4
    rest = collect_lrs(sched, opt, 5)

    opt2 = two_group_sgd()
    sched2 = CosineAnnealingLR(opt2, T_max=10)
    opt2.load_state_dict(opt_sd)
    sched2.load_state_dict(sd)
    assert collect_lrs(sched2, opt2, 5) == rest


def test_step_lr_state_dict_through_save(tmp_path):
    opt = two_group_sgd()
    sched = StepLR(opt, step_size=2)
    collect_lrs(sched, opt, 3)
    fg.save({"sched": sched.state_dict(), "optim": opt.state_dict()}, tmp_path / "s.npz")
    rest = collect_lrs(sched, opt, 4)
    back = fg.load(tmp_path / "s.npz")
    opt2 = two_group_sgd()
    sched2 = StepLR(opt2, step_size=2)
    opt2.load_state_dict(back["optim"])
    sched2.load_state_dict(back["sched"])
    assert collect_lrs(sched2, opt2, 4) == rest


def test_scheduler_validation():
    opt = two_group_sgd()
    with pytest.raises(ValueError, match="step_size"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max"):
        CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(two_group_sgd(), step_size=2, last_epoch=3)
    with pytest.raises(TypeError, match="not an Optimizer"):
        StepLR(object(), step_size=2)


# -- optional PyTorch oracle -------------------------------------------------------------------
ORACLE = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.2)),
    ("Adam", dict(lr=0.05, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.05, weight_decay=0.2)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.05, initial_accumulator_value=0.1)),
]


@pytest.mark.parametrize("name, kwargs", ORACLE, ids=[f"{n}-{i}" for i, (n, _) in
                                                      enumerate(ORACLE)])
def test_against_pytorch(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    inits = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(3,)).astype(np.float32)]
    grads = [[rng.normal(size=a.shape).astype(np.float32) for a in inits] for _ in range(5)]
    ours = [fg.tensor(a, requires_grad=True) for a in inits]
    theirs = [torch.tensor(a, requires_grad=True) for a in inits]
    opt = getattr(fg.optim, name)(ours, **kwargs)
    topt = getattr(torch.optim, name)(theirs, **kwargs)
    for step_grads in grads:
        for p, tp, g in zip(ours, theirs, step_grads):
            # The gradient depends on the parameter too, so the trajectories must agree.
            p.grad = fg.tensor(g + 0.5 * p.numpy())
            tp.grad = torch.tensor(g) + 0.5 * tp.detach().clone()
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_schedulers_against_pytorch():
    torch = pytest.importorskip("torch")
    for ours_cls, kw in ((StepLR, dict(step_size=3, gamma=0.3)),
                         (CosineAnnealingLR, dict(T_max=6, eta_min=0.001))):
        opt = two_group_sgd()
        tparams = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
        topt = torch.optim.SGD([{"params": [tparams[0]]}, {"params": [tparams[1]], "lr": 0.3}],
                               lr=0.1)
        tsched = getattr(torch.optim.lr_scheduler, ours_cls.__name__)(topt, **kw)
        expected = []
        for _ in range(20):
            expected.append(tsched.get_last_lr())
            topt.step()
            tsched.step()
        got = collect_lrs(ours_cls(opt, **kw), opt, 20)
        np.testing.assert_allclose(got, expected, rtol=1e-12)


# -- parameter groups, as PyTorch ---------------------------------------------------------------
GROUPS = [
    ("SGD", dict(lr=0.1, momentum=0.9), [dict(lr=0.02, nesterov=True), dict(weight_decay=0.1,
                                                                             dampening=0.3)]),
    ("Adagrad", dict(lr=0.1), [dict(lr=0.05, weight_decay=0.1), dict(lr_decay=0.2)]),
    ("RMSprop", dict(lr=0.01), [dict(momentum=0.5), dict(lr=0.003, centered=True)]),
    ("Adam", dict(lr=0.05), [dict(amsgrad=True), dict(betas=(0.8, 0.9), weight_decay=0.1)]),
    ("AdamW", dict(lr=0.05, amsgrad=True), [dict(weight_decay=0.3), dict(lr=0.01,
                                                                          amsgrad=False)]),
]


@pytest.mark.numpy_only  # reads raw state arrays with NumPy
@pytest.mark.parametrize("name, defaults, groups", GROUPS, ids=[g[0] for g in GROUPS])
def test_parameter_groups_against_pytorch(name, defaults, groups):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    inits = [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(4,)).astype(np.float32),
             rng.normal(size=(2,)).astype(np.float32)]
    ours = [fg.tensor(a, requires_grad=True) for a in inits]
    theirs = [torch.tensor(a, requires_grad=True) for a in inits]
    opt = getattr(fg.optim, name)([{"params": ours[:2], **groups[0]},
                                   {"params": ours[2:], **groups[1]}], **defaults)
    topt = getattr(torch.optim, name)([{"params": theirs[:2], **groups[0]},
                                       {"params": theirs[2:], **groups[1]}], **defaults)
    for _ in range(4):
        g = [rng.normal(size=a.shape).astype(np.float32) for a in inits]
        for p, tp, gi in zip(ours, theirs, g):
            p.grad = fg.tensor(gi + 0.3 * p.numpy())
            tp.grad = torch.tensor(gi) + 0.3 * tp.detach().clone()
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert list(sd) == ["state", "param_groups"]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sorted(sd["state"]) == sorted(tsd["state"]) == [0, 1, 2]
    for group, tgroup in zip(sd["param_groups"], tsd["param_groups"]):
        for key in ("lr", "weight_decay", "params"):
            assert group[key] == tgroup[key], key
        assert set(group) <= set(tgroup) | {"decoupled_weight_decay"}
    for idx, buffers in sd["state"].items():
        tbuffers = tsd["state"][idx]
        assert set(buffers) == set(tbuffers), (buffers.keys(), tbuffers.keys())
        for key, value in buffers.items():
            np.testing.assert_allclose(np.asarray(value, dtype=np.float64),
                                       np.asarray(tbuffers[key], dtype=np.float64),
                                       rtol=1e-5, atol=1e-7)
