"""The learning-rate schedulers beyond StepLR/Cosine: hand-computed sequences (always run),
state-dict round trips through fg.save, argument checks, and PyTorch as an optional oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest

import flowgrad as fg
from flowgrad.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    StepLR,
)


def two_groups(cls=fg.optim.SGD, **kw):
    a, b = fg.zeros(1, requires_grad=True), fg.zeros(1, requires_grad=True)
    kw = kw or dict(lr=0.1, momentum=0.9)
    return cls([{"params": [a]}, {"params": [b], "lr": 0.3}], **kw)


def rates(sched, opt, steps: int) -> list[list[float]]:
    out = []
    for _ in range(steps):
        out.append(list(sched.get_last_lr()))
        opt.step()
        sched.step()
    return out


def test_exponential_lr():
    opt = two_groups()
    got = rates(ExponentialLR(opt, gamma=0.5), opt, 6)
    assert got == [[0.1 * 0.5 ** e, 0.3 * 0.5 ** e] for e in range(6)]


def test_multistep_lr_counts_each_milestone_once_and_repeats_twice():
    opt = two_groups()
    got = [r[0] for r in rates(MultiStepLR(opt, milestones=[2, 4, 4], gamma=0.1), opt, 7)]
    want = [0.1, 0.1, 0.01, 0.01, 0.0001, 0.0001, 0.0001]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_linear_lr_warm_up_then_constant():
    opt = two_groups()
    got = rates(LinearLR(opt, start_factor=0.25, end_factor=1.0, total_iters=3), opt, 6)
    for e, (a, b) in enumerate(got):
        factor = 0.25 + 0.75 * min(e, 3) / 3
        assert a == pytest.approx(0.1 * factor, rel=1e-12)
        assert b == pytest.approx(0.3 * factor, rel=1e-12)


def test_lambda_lr_one_function_per_group():
    opt = two_groups()
    sched = LambdaLR(opt, lr_lambda=[lambda e: 1.0 / (e + 1), lambda e: 0.5 ** e])
    got = rates(sched, opt, 4)
    assert got == [[0.1 / (e + 1), 0.3 * 0.5 ** e] for e in range(4)]


def test_one_cycle_lr_closed_form_and_momentum():
    opt = fg.optim.SGD([fg.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=10)
    lrs, moms = [], []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step() if len(lrs) < 10 else None
    # Phase 1 ends at step pct_start * total - 1 = 2: a half cosine from 1/25 up to 1.
    up, down = 2.0, 9.0
    for t, (lr, m) in enumerate(zip(lrs, moms)):
        if t <= up:
            pct, lo, hi, m0, m1 = t / up, 0.04, 1.0, 0.95, 0.85
        else:
            pct, lo, hi, m0, m1 = (t - up) / (down - up), 1.0, 0.04 / 1e4, 0.85, 0.95
        cos = (math.cos(math.pi * pct) + 1) / 2
        assert lr == pytest.approx(hi + (lo - hi) * cos, rel=1e-12), t
        assert m == pytest.approx(m1 + (m0 - m1) * cos, rel=1e-12), t
    assert lrs[2] == 1.0 and moms[2] == pytest.approx(0.85)
    with pytest.raises(ValueError, match="total_steps=10"):
        sched.step()
        sched.step()


def test_one_cycle_cycles_adams_beta1():
    opt = fg.optim.Adam([fg.zeros(1, requires_grad=True)], lr=1.0, betas=(0.9, 0.99))
    OneCycleLR(opt, max_lr=0.5, epochs=2, steps_per_epoch=5, anneal_strategy="linear")
    assert opt.param_groups[0]["betas"] == (0.95, 0.99)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)


def test_reduce_on_plateau_waits_patience_then_cools_down():
    opt = two_groups()
    sched = ReduceLROnPlateau(opt, patience=1, factor=0.5, cooldown=1, min_lr=[0.0, 0.2])
    seen = []
    for loss in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.5]:
        sched.step(fg.tensor(loss))
        seen.append(sched.get_last_lr())
    # Bad epochs: 0.95 x2 -> reduce (0.05; group b floored at 0.2), then one cooldown
    # epoch, then two more bad ones -> reduce again.
    assert seen == [[0.1, 0.3], [0.1, 0.3], [0.1, 0.3], [0.05, 0.2], [0.05, 0.2],
                    [0.05, 0.2], [0.025, 0.2], [0.025, 0.2]]
    assert sched.best == 0.5 and sched.num_bad_epochs == 0


def test_reduce_on_plateau_max_mode_and_abs_threshold():
    opt = two_groups()
    sched = ReduceLROnPlateau(opt, mode="max", patience=0, threshold=0.1,
                              threshold_mode="abs")
    for acc in [0.5, 0.55, 0.7]:
        sched.step(acc)
    # 0.55 is not 0.1 better than 0.5: one bad epoch > patience 0, so a reduction.
    assert sched.get_last_lr() == pytest.approx([0.01, 0.03])
    assert sched.best == 0.7


def _lambda_object():
    class Warmup:
        def __init__(self):
            self.scale = 2.0

        def __call__(self, epoch):
            return self.scale * (epoch + 1)

    return Warmup()


FACTORIES = {
    "ExponentialLR": lambda opt: ExponentialLR(opt, gamma=0.9),
    "MultiStepLR": lambda opt: MultiStepLR(opt, milestones=[1, 3, 3], gamma=0.5),
    "LinearLR": lambda opt: LinearLR(opt, start_factor=0.5, total_iters=4),
    "LambdaLR": lambda opt: LambdaLR(opt, lr_lambda=_lambda_object()),
    "OneCycleLR": lambda opt: OneCycleLR(opt, max_lr=[0.5, 1.0], total_steps=12,
                                         three_phase=True),
    "StepLR": lambda opt: StepLR(opt, step_size=2),
    "CosineAnnealingLR": lambda opt: CosineAnnealingLR(opt, T_max=5),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_dict_round_trips_through_a_checkpoint(name, tmp_path):
    opt = two_groups()
    sched = FACTORIES[name](opt)
    if name == "LambdaLR":
        sched.lr_lambdas[0].scale = 3.0
    rates(sched, opt, 4)
    fg.save({"sched": sched.state_dict(), "optim": opt.state_dict()}, tmp_path / "s.npz")
    rest = rates(sched, opt, 5)

    opt2 = two_groups()
    sched2 = FACTORIES[name](opt2)
    back = fg.load(tmp_path / "s.npz")
    opt2.load_state_dict(back["optim"])
    sched2.load_state_dict(back["sched"])
    assert rates(sched2, opt2, 5) == rest
    if name == "LambdaLR":
        assert sched2.lr_lambdas[0].scale == 3.0


def test_reduce_on_plateau_state_round_trips(tmp_path):
    opt = two_groups()
    sched = ReduceLROnPlateau(opt, patience=1)
    sd0 = sched.state_dict()
    assert sd0["best"] == math.inf
    for loss in [3.0, 2.0, 2.5]:
        sched.step(loss)
    fg.save(sched.state_dict(), tmp_path / "p.npz")
    opt2 = two_groups()
    sched2 = ReduceLROnPlateau(opt2, patience=1)
    sched2.load_state_dict(fg.load(tmp_path / "p.npz"))
    assert (sched2.best, sched2.num_bad_epochs, sched2.last_epoch) == (2.0, 1, 3)
    sched2.step(2.5)
    assert sched2.get_last_lr() == pytest.approx([0.01, 0.03])


def test_lambda_lr_does_not_save_code():
    opt = two_groups()
    sd = LambdaLR(opt, lr_lambda=lambda e: 1.0).state_dict()
    assert sd["lr_lambdas"] == [None, None]


@pytest.mark.parametrize("make, match", [
    (lambda o: MultiStepLR(o, milestones=[3, 1]), "increasing"),
    (lambda o: MultiStepLR(o, milestones=[1.5]), "ints"),
    (lambda o: LinearLR(o, start_factor=0.0), "start_factor"),
    (lambda o: LinearLR(o, end_factor=1.5), "end_factor"),
    (lambda o: LambdaLR(o, lr_lambda=[lambda e: 1.0]), "expected 2 lr_lambdas"),
    (lambda o: LambdaLR(o, lr_lambda=3), "callable"),
    (lambda o: OneCycleLR(o, max_lr=1.0), "total_steps"),
    (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=0), "total_steps"),
    (lambda o: OneCycleLR(o, max_lr=[1.0], total_steps=5), "max_lr must have the same"),
    (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=5, pct_start=1.5), "pct_start"),
    (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=5, anneal_strategy="exp"), "anneal"),
    (lambda o: ReduceLROnPlateau(o, factor=1.0), "factor"),
    (lambda o: ReduceLROnPlateau(o, mode="lowest"), "mode"),
    (lambda o: ReduceLROnPlateau(o, threshold_mode="pct"), "threshold_mode"),
    (lambda o: ReduceLROnPlateau(o, min_lr=[0.1]), "min_lr must have the same"),
])
def test_bad_arguments_name_themselves(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make(two_groups())


def test_one_cycle_needs_momentum_to_cycle():
    opt = fg.optim.Adagrad([fg.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        OneCycleLR(opt, max_lr=1.0, total_steps=4)
    OneCycleLR(opt, max_lr=1.0, total_steps=4, cycle_momentum=False)


# ---------------------------------------------------------------- PyTorch as an oracle

ORACLE = [
    ("ExponentialLR", dict(gamma=0.8)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.6, total_iters=7)),
    ("OneCycleLR", dict(max_lr=[0.4, 1.5], total_steps=20)),
    ("OneCycleLR", dict(max_lr=0.9, epochs=4, steps_per_epoch=5, pct_start=0.25,
                        anneal_strategy="linear", three_phase=True, div_factor=10.0)),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.97 ** e + 0.01 * e)),
]


def _torch_two_groups(torch, cls="SGD", **kw):
    ps = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
    kw = kw or dict(lr=0.1, momentum=0.9)
    return getattr(torch.optim, cls)([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.3}],
                                     **kw)


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("name, kwargs", ORACLE, ids=[f"{n}-{i}" for i, (n, _) in
                                                      enumerate(ORACLE)])
def test_rates_and_momenta_match_pytorch(name, kwargs, optimizer):
    torch = pytest.importorskip("torch")
    kw = dict(lr=0.1, momentum=0.9) if optimizer == "SGD" else dict(lr=0.1, betas=(0.9, 0.99))
    topt = _torch_two_groups(torch, optimizer, **kw)
    opt = two_groups(getattr(fg.optim, optimizer), **kw)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    sched = getattr(fg.optim.lr_scheduler, name)(opt, **kwargs)
    key = "momentum" if optimizer == "SGD" else "betas"
    for _ in range(19):
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)
        np.testing.assert_allclose([g[key] for g in opt.param_groups],
                                   [g[key] for g in topt.param_groups], rtol=1e-12)
        topt.step()
        tsched.step()
        opt.step()
        sched.step()


def test_reduce_on_plateau_matches_pytorch():
    torch = pytest.importorskip("torch")
    metrics = [1.0, 0.8, 0.8, 0.81, 0.79, 0.8, 0.8, 0.8, 0.5, 0.5, 0.5, 0.5, 0.49995, 0.4]
    for kw in (dict(patience=1), dict(patience=2, cooldown=2, factor=0.5, min_lr=0.02),
               dict(mode="max", patience=0, threshold=0.01, threshold_mode="abs",
                    min_lr=[0.001, 0.05])):
        topt, opt = _torch_two_groups(torch), two_groups()
        tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
        sched = ReduceLROnPlateau(opt, **kw)
        for m in metrics:
            tsched.step(m)
            sched.step(m)
            assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)
            assert sched.num_bad_epochs == tsched.num_bad_epochs
        assert sorted(sched.state_dict()) == sorted(tsched.state_dict())


@pytest.mark.parametrize("name", ["ExponentialLR", "MultiStepLR", "LinearLR", "LambdaLR",
                                  "OneCycleLR"])
def test_state_dict_keys_match_pytorch(name):
    torch = pytest.importorskip("torch")
    kwargs = dict(ORACLE[[n for n, _ in ORACLE].index(name)][1])
    ours = getattr(fg.optim.lr_scheduler, name)(two_groups(), **kwargs).state_dict()
    theirs = getattr(torch.optim.lr_scheduler, name)(_torch_two_groups(torch),
                                                     **kwargs).state_dict()
    assert sorted(ours) == sorted(k for k in theirs if k != "_get_lr_called_within_step")
