"""Debugging gradients: anomaly mode, localising gradcheck, the profiler, highlighted graphs.

* ``fg.detect_anomaly`` names the op that *created* a NaN/Inf (forward or in its derivative
  rule), on both engine paths, and the test's own line; ops that pass one on are not blamed.
* ``fg.gradcheck`` names the first node whose own rule is wrong; ``fg.gradcheck_nodes``
  checks every node; kinks (relu at 0, tied maxima) are no false alarms.
* ``fg.profiler.profile`` counts exactly the calls made.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import flowgrad as fg
from flowgrad.graph import walk
from flowgrad.ops import registry


@pytest.fixture(autouse=True, scope="module")
def _unregister_test_ops():
    """Ops registered here are removed afterwards (the op table covers built-ins only)."""
    before = set(registry.OPS)
    yield
    for name in set(registry.OPS) - before:
        registry._OPS.pop(name, None)


def _next_line() -> int:
    """The line number of the caller's next line."""
    return sys._getframe(1).f_lineno + 1


def _t(values, requires_grad=True, dtype=np.float64):
    return fg.tensor(np.array(values, dtype=dtype), requires_grad=requires_grad)


# ---------------------------------------------------------------- anomaly mode: forward


@pytest.mark.parametrize("make, op, kind", [
    (lambda x: fg.log(x - 1.0), "log", "-Inf"),       # log(0)
    (lambda x: fg.log(x - 3.0), "log", "NaN"),        # log(-1)
    (lambda x: fg.sqrt(x - 3.0), "sqrt", "NaN"),      # sqrt(-1)
    (lambda x: x / (x - 1.0), "div", "+Inf"),         # 1 / 0
    (lambda x: (x - 1.0) / (x - 1.0), "div", "NaN"),  # 0 / 0
    (lambda x: (x - 3.0) ** 0.5, "pow", "NaN"),       # (-1) ** 0.5
    (lambda x: (x - 1.0) ** -1.0, "pow", "+Inf"),     # 0 ** -1
    (lambda x: fg.exp(x * 100.0), "exp", "+Inf"),     # exp(200) overflows float32
])
def test_forward_creators_are_named(make, op, kind):
    x = _t([1.0, 2.0], dtype=np.float32)
    with fg.detect_anomaly():
        with pytest.raises(fg.AnomalyError) as info:
            make(x)
    err = info.value
    assert isinstance(err, RuntimeError)
    assert (err.op, err.direction, err.kind) == (op, "forward", kind)
    assert err.node.name == op
    assert f"{op} created {kind} in its forward pass" in str(err)
    assert "hint:" in str(err)


def test_the_report_names_this_line_and_describes_the_inputs():
    x = _t([2.0, 0.0, 3.0, 0.0])
    with fg.detect_anomaly():
        line = _next_line()
        with pytest.raises(fg.AnomalyError) as info:
            fg.log(x)
    err = info.value
    assert err.created_at.file == __file__
    assert err.created_at.line == line + 1
    assert err.created_at.function == "test_the_report_names_this_line_and_describes_the_inputs"
    assert err.created_at.source == "fg.log(x)"
    text = str(err)
    assert f"at {__file__}:{line + 1} in test_the_report" in text
    assert "log created -Inf in its forward pass from finite inputs (2 of 4 elements)" in text
    assert "input 0: shape (4,) float64, min 0, max 3, NaN 0, +Inf 0, -Inf 0" in text
    assert "output:  shape (4,) float64, min -inf, max 1.09861, NaN 0, +Inf 0, -Inf 2" in text
    assert "first offending elements: [1] -inf (input 0 = 0); [3] -inf (input 0 = 0)" in text
    assert "clamp" in err.hint and "where(x > 0, x, 1.0)" in err.hint
    assert err.node.created_at == err.created_at


def test_a_node_records_where_it_was_created_only_inside_the_mode():
    x = _t([1.0, 2.0])
    assert (x * 2.0).grad_fn.created_at is None
    with fg.detect_anomaly(check_nan=False):
        line = _next_line()
        y = x * 2.0
    assert y.grad_fn.created_at.line == line
    assert (x * 3.0).grad_fn.created_at is None  # off again


def test_a_forward_anomaly_without_a_recorded_graph_still_has_a_node():
    with fg.no_grad(), fg.detect_anomaly():
        line = _next_line()
        with pytest.raises(fg.AnomalyError) as info:
            fg.sqrt(fg.tensor([-4.0]))
    assert info.value.node.name == "sqrt"
    assert info.value.created_at.line == line + 1


def test_nan_already_in_the_input_is_not_blamed_on_the_op_passing_it_on():
    bad = fg.sqrt(fg.tensor([-1.0, 4.0], requires_grad=True))  # made outside the mode
    w = _t([0.5, np.nan])
    with fg.detect_anomaly():
        y = fg.log(bad * 2.0 + 1.0)   # NaN in, NaN out: passed on, not created
        z = (fg.exp(y) * w).sum()     # the NaN in w is data
        z.backward()                  # gradients with NaN from w and bad: passed on too
    assert np.isnan(z.item())


def test_the_creator_is_named_not_the_ops_after_it():
    x = _t([4.0, 1.0])
    with fg.detect_anomaly():
        y = x - 2.0
        line = _next_line()
        with pytest.raises(fg.AnomalyError) as info:
            z = fg.sqrt(y - 1.0) * 3.0 + 1.0  # sqrt(-2) is NaN; mul and add would pass it on
            del z
    assert info.value.op == "sqrt" and info.value.created_at.line == line + 1


def test_arguments_that_are_infinite_are_inputs_too():
    # masked_fill(value=-inf): the infinity comes from the argument, not from the op.
    scores = _t([[1.0, 2.0, 3.0], [0.5, 0.1, 0.2]])
    mask = fg.tensor(np.array([[False, True, False], [False, False, True]]))
    with fg.detect_anomaly():
        p = fg.softmax(scores.masked_fill(mask, float("-inf")), dim=1)
        (p * fg.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])).sum().backward()
    assert np.isfinite(scores.grad.numpy()).all()


def test_check_inf_false_and_allow_let_intended_infinities_through():
    x = _t([0.0, 1.0])
    with fg.detect_anomaly(check_inf=False):
        assert fg.log(x).numpy()[0] == -np.inf
        with pytest.raises(fg.AnomalyError):
            fg.log(x - 2.0)  # NaN is still an anomaly
    with fg.detect_anomaly(allow=("log",)):
        assert fg.log(x).numpy()[0] == -np.inf
        with pytest.raises(fg.AnomalyError) as info:
            fg.log(x - 2.0)
        assert info.value.kind == "NaN"
        with pytest.raises(fg.AnomalyError):
            fg.exp(x * 1000.0)  # other ops are still checked for Inf


def test_check_nan_false_checks_nothing():
    x = _t([0.0, -1.0])
    with fg.detect_anomaly(check_nan=False):
        y = fg.log(x)
        y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [np.inf, -1.0])  # 1/0 went through
    assert fg.is_anomaly_enabled() is False


# ---------------------------------------------------------------- anomaly mode: backward


@pytest.mark.parametrize("create_graph", [False, True], ids=["fast", "recorded"])
@pytest.mark.parametrize("make, op, kind, which", [
    (lambda x: fg.sqrt(x), "sqrt", "+Inf", 0),                       # 1/(2 sqrt 0)
    (lambda x: x ** 0.5, "pow", "+Inf", 0),                          # 0.5 * 0**-0.5
    (lambda x: fg.where(x > 0, fg.log(x), 0.0), "log", "NaN", 0),    # 0 * (1/0)
    (lambda x: fg.where(x != 0, 1.0 / x, 0.0), "div", "NaN", 1),     # 0 * (-1/0²)
    (lambda x: fg.where(x < 50, fg.exp(x * 20.0), 0.0), "exp", "NaN", 0),  # 0 * exp(1000)
])
def test_backward_creators_are_named_on_both_engine_paths(make, op, kind, which, create_graph):
    x = _t([0.0, 1.0, 50.0])
    # The forward infinities (log(0), 1/0, exp(1000)) are the intended, masked kind.
    with fg.detect_anomaly(allow=("log", "div", "exp")):
        y = make(x)
        with pytest.raises(fg.AnomalyError) as info:
            (y * 2.0).sum().backward(create_graph=create_graph)
    err = info.value
    assert (err.op, err.direction, err.kind, err.input_index) == (op, "backward", kind, which)
    # The code that applied the op: the lambda, on its own line above.
    assert err.created_at.line == make.__code__.co_firstlineno
    assert (err.created_at.file, err.created_at.function) == (__file__, "<lambda>")
    assert f"the derivative rule of {op}" in str(err)
    assert "from a finite upstream gradient and finite saved values" in str(err)


def test_the_where_log_pattern_gets_its_hint():
    x = _t([2.0, 0.0])
    with fg.detect_anomaly(check_inf=False):
        y = fg.where(x > 0, fg.log(x), 0.0)
        with pytest.raises(fg.AnomalyError) as info:
            y.sum().backward()
    err = info.value
    assert err.op == "log" and err.kind == "NaN"
    assert "where(x > 0, log(x), 0)" in err.hint and "fg.log(fg.where(x > 0, x, 1.0))" in err.hint
    assert "[1] nan (upstream 0, input 0 = 0)" in str(err)
    # The fix: a safe input, and the gradient is finite.
    x.grad = None
    with fg.detect_anomaly():
        fg.where(x > 0, fg.log(fg.where(x > 0, x, 1.0)), 0.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 0.0])


def test_a_custom_op_is_named_forward_and_backward():
    @fg.op()
    def shaky(xp, x):
        return xp.log(x) * x  # x log x: 0 * -inf = NaN at 0

    @shaky.rule
    def _(g, x):
        return g * (fg.log(x) + 1.0)

    with fg.detect_anomaly():
        with pytest.raises(fg.AnomalyError) as info:
            shaky(_t([0.0, 1.0]))
    assert info.value.op == "shaky" and info.value.kind == "NaN"

    x = _t([1.0, 0.5])

    @fg.op()
    def wrong(xp, x):
        return x * 2.0

    @wrong.rule
    def _(g, x):
        return g / (x - x)  # a rule that divides by zero

    with fg.detect_anomaly():
        y = wrong(x)
        with pytest.raises(fg.AnomalyError) as info:
            y.sum().backward()
    assert (info.value.op, info.value.direction) == ("wrong", "backward")
    assert "fg.gradcheck_nodes" in info.value.hint


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes need Python 3.11")
def test_an_error_in_a_rule_mentions_where_the_node_was_made():
    @fg.op("dbg_broken")
    def broken(xp, x):
        return x + 1.0

    @broken.rule
    def _(g, x):
        raise ValueError("this rule is broken")

    x = _t([1.0, 2.0])
    with fg.detect_anomaly():
        line = _next_line()
        y = broken(x)
        with pytest.raises(ValueError) as info:
            y.sum().backward()
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "in the derivative rule of dbg_broken" in notes and f":{line} in test_an" in notes


def test_an_in_place_error_names_the_line_that_made_the_node():
    x = _t([1.0, 2.0])
    with fg.detect_anomaly():
        y = x * 2.0
        line = _next_line()
        loss = (y * y).sum()
        y.add_(1.0)  # changes a value the second mul's rule needs
        with pytest.raises(RuntimeError, match="modified by an in-place operation") as info:
            loss.backward()
    assert f"created at {__file__}:{line} in test_an_in_place" in str(info.value)


# ---------------------------------------------------------------- the mode itself


def test_modes_nest_and_restore():
    assert not fg.is_anomaly_enabled()
    with fg.detect_anomaly(check_nan=False):
        assert fg.is_anomaly_enabled() and not fg.is_anomaly_check_nan_enabled()
        with fg.detect_anomaly():
            assert fg.is_anomaly_check_nan_enabled()
            with fg.set_detect_anomaly(False):
                assert not fg.is_anomaly_enabled()
                fg.log(fg.tensor([0.0]))  # not checked
            with pytest.raises(fg.AnomalyError):
                fg.log(fg.tensor([0.0]))
        assert not fg.is_anomaly_check_nan_enabled()
        fg.log(fg.tensor([0.0]))
    assert not fg.is_anomaly_enabled()


def test_an_exception_inside_restores_the_mode():
    with pytest.raises(ValueError):
        with fg.detect_anomaly():
            raise ValueError("boom")
    assert not fg.is_anomaly_enabled()
    with pytest.raises(fg.AnomalyError):
        with fg.detect_anomaly():
            fg.sqrt(fg.tensor([-1.0]))
    assert not fg.is_anomaly_enabled()
    fg.sqrt(fg.tensor([-1.0]))  # off: no error


def test_decorator_and_set_detect_anomaly_as_a_function():
    @fg.detect_anomaly()
    def step(x):
        assert fg.is_anomaly_enabled()
        return fg.log(x)

    with pytest.raises(fg.AnomalyError):
        step(fg.tensor([0.0]))
    assert not fg.is_anomaly_enabled()
    fg.set_detect_anomaly(True)
    try:
        assert fg.is_anomaly_enabled()
        with pytest.raises(fg.AnomalyError):
            fg.log(fg.tensor([0.0]))
    finally:
        fg.set_detect_anomaly(False)
    assert not fg.is_anomaly_enabled()


def test_the_mode_belongs_to_the_thread_that_set_it():
    seen = []
    with fg.detect_anomaly():
        thread = threading.Thread(target=lambda: seen.append(fg.is_anomaly_enabled()))
        thread.start()
        thread.join()
        assert fg.is_anomaly_enabled()
    assert seen == [False]


# ---------------------------------------------------------------- localising gradcheck


def _make_wrong_softplus(name: str, factor: float):
    @fg.op(name)
    def forward(xp, x):
        return xp.logaddexp(0.0, x)

    @forward.rule
    def _(g, x):
        return g * fg.sigmoid(x * factor)  # right only for factor 1

    return forward


_RNG = np.random.default_rng(7)
W1, W2, W3 = (fg.tensor(_RNG.standard_normal(s)) for s in [(4, 5), (5, 5), (5, 3)])


@pytest.fixture(scope="module")
def softpluses():
    """Three softplus ops: right (factor 1) and wrong (2, 0.5) derivative rules."""
    return (_make_wrong_softplus("dbg_good_softplus", 1.0),
            _make_wrong_softplus("dbg_bad_softplus", 2.0),
            _make_wrong_softplus("dbg_bad_softplus_b", 0.5))


def test_gradcheck_names_the_wrong_custom_op_in_the_middle_of_an_mlp(softpluses):
    good_softplus, bad_softplus, _ = softpluses
    line = _next_line()

    def mlp(x):
        h = fg.tanh(x @ W1)
        h = bad_softplus(h @ W2)  # the wrong rule, line + 3
        return (fg.tanh(h @ W3) ** 2).sum()

    with pytest.raises(fg.GradcheckError) as info:
        fg.gradcheck(mlp, [_RNG.standard_normal((2, 4))])
    err = info.value
    assert err.node.name == "dbg_bad_softplus"
    assert err.node.created_at.line == line + 3 and err.node.created_at.file == __file__
    text = str(err)
    assert "first wrong derivative rule, in forward order: dbg_bad_softplus" in text
    assert "h = bad_softplus(h @ W2)" in text and "inputs: (2, 5) float64" in text
    assert [c.name for c in err.checks if not c.passed] == ["dbg_bad_softplus"]
    assert fg.gradcheck(lambda x: good_softplus(x @ W1).sum(), [_RNG.standard_normal((2, 4))])


def test_the_first_of_two_wrong_ops_is_named(softpluses):
    _, bad_softplus, bad_softplus_b = softpluses

    def net(x):
        h = bad_softplus_b(x @ W1)
        return bad_softplus(h @ W2).sum()

    x = _RNG.standard_normal((3, 4))
    with pytest.raises(fg.GradcheckError) as info:
        fg.gradcheck(net, [x])
    assert info.value.node.name == "dbg_bad_softplus_b"
    assert "also wrong: dbg_bad_softplus" in str(info.value)
    checks = fg.gradcheck_nodes(net, [x])
    assert isinstance(checks, list)
    assert [(c.name, c.passed) for c in checks] == [
        ("matmul", True), ("dbg_bad_softplus_b", False), ("matmul", True),
        ("dbg_bad_softplus", False), ("sum", True)]
    assert [c.name for c in checks.failed] == ["dbg_bad_softplus_b", "dbg_bad_softplus"]
    worst = checks.failed[0]
    assert worst.max_error > 1e-3 and worst.input == 0 and worst.rule == "rule"
    assert all(c.max_error < 1e-6 for c in checks if c.passed)
    assert str(worst).startswith("FAIL  dbg_bad_softplus_b")


def test_a_wrong_fast_rule_is_told_apart_from_the_tensor_rule():
    @fg.op("dbg_cube")
    def cube(xp, x):
        return x * x * x

    @cube.rule
    def _(g, x):
        return g * 3.0 * x * x

    @cube.fast
    def _(xp, g, x):
        return g * 3.0 * x  # wrong

    x = _RNG.standard_normal(4)
    with pytest.raises(fg.GradcheckError) as info:
        fg.gradcheck(lambda t: cube(t).sum(), [x])
    assert "unrecorded (fast rules)" in str(info.value)
    (check,) = [c for c in info.value.checks if c.name == "dbg_cube"]
    assert not check.passed and check.rule == "fast rule"


def test_a_graph_that_is_not_f_names_no_node():
    def detached(a):
        return (a.detach() * a).sum()  # the graph misses one factor

    with pytest.raises(fg.GradcheckError) as info:
        fg.gradcheck(detached, [np.array([1.0, 2.0])])
    assert info.value.node is None
    assert "every node's own derivative rule agrees" in str(info.value)


@pytest.mark.parametrize("f, x", [
    (lambda t: fg.relu(t).sum(), [0.0, 1.5, -2.0]),
    (lambda t: (fg.relu(t) * t).sum(), [0.0, 0.0, 1.0]),
    (lambda t: fg.abs(t).sum(), [0.0, -1.0]),
    (lambda t: fg.max(t), [2.0, 2.0, -1.0]),
    (lambda t: fg.amax(t.reshape(2, 2), 1).sum(), [3.0, 3.0, 1.0, 2.0]),
    (lambda t: fg.maximum(t, t * 0.0 + 1.0).sum(), [1.0, 2.0]),
    (lambda t: fg.clamp(t, min=0.0, max=1.0).sum(), [0.0, 1.0, 0.5]),
], ids=["relu0", "relu0-product", "abs0", "max-tie", "amax-tie", "maximum-tie", "clamp-ends"])
def test_no_false_alarm_at_kinks(f, x):
    x = np.array(x)
    assert fg.gradcheck(f, [x]) is True
    checks = fg.gradcheck_nodes(f, [x])
    assert not checks.failed, str(checks)


def test_a_kink_reports_the_elements_on_it():
    checks = fg.gradcheck_nodes(lambda t: (fg.relu(t) * fg.tensor([1.0, 2.0, 3.0])).sum(),
                                [np.array([0.0, 1.0, 0.0])])
    relu = checks[0]
    assert relu.name == "relu" and relu.passed and relu.kinks == 2


def test_random_ops_are_skipped_not_failed():
    fg.manual_seed(0)
    dropout = fg.nn.Dropout(0.5)
    dropout.train()
    checks = fg.gradcheck_nodes(lambda t: dropout(t * 2.0).sum(), [np.ones(50)])
    skipped = [c for c in checks if c.skipped is not None]
    assert not checks.failed
    assert all("does not give back its saved output" in c.skipped for c in skipped)


# ---------------------------------------------------------------- profiler


def test_profiler_counts_equal_the_calls_made():
    w = fg.randn(8, 4, requires_grad=True)
    x = fg.randn(5, 8)
    with fg.profiler.profile() as prof:
        for _ in range(3):
            h = fg.tanh(x @ w)
            loss = (h * h).sum()
            loss.backward()
        with fg.no_grad():
            x @ w  # forward only
    stats = {s.name: s for s in prof.key_averages()}
    assert {n: (s.calls, s.backward_calls) for n, s in stats.items()} == {
        "matmul": (4, 3), "tanh": (3, 3), "mul": (3, 3), "sum": (3, 3)}
    assert stats["matmul"].bytes == 4 * 5 * 4 * 4  # four float32 outputs of 5x4
    assert all(s.forward_time > 0 and s.total_time >= s.forward_time for s in stats.values())
    table = prof.table(sort_by="calls")
    lines = table.splitlines()
    assert lines[1].split() == ["Name", "Calls", "Forward", "Bwd", "calls", "Backward", "Total",
                                "Total", "%", "Avg/call", "Bytes"]
    assert lines[3].split()[:2] == ["matmul", "4"]
    assert lines[-1].startswith("Ops total:") and "in 13 calls" in lines[-1]
    assert prof.table(sort_by="name").splitlines()[3].startswith("matmul")
    with pytest.raises(ValueError, match="sort_by must be one of"):
        prof.table(sort_by="speed")
    (x @ w).sum()  # outside: not counted
    assert stats["matmul"].calls == 4


def test_profiler_counts_views_as_no_bytes_and_skips_ops_inside_rules():
    x = fg.randn(6, requires_grad=True)
    with fg.profiler.profile() as prof:
        y = fg.sin(x.reshape(2, 3)).sum()
        (g,) = fg.engine.grad(y, [x], create_graph=True)  # rules' ops belong to backward
    stats = {s.name: s for s in prof.key_averages()}
    assert stats["reshape"].bytes == 0
    assert stats["sin"].calls == 1 and stats["sin"].backward_calls == 1
    assert "cos" not in stats and "mul" not in stats


def test_profiler_and_anomaly_mode_combine():
    with fg.profiler.profile() as prof, fg.detect_anomaly():
        with pytest.raises(fg.AnomalyError):
            fg.log(fg.tensor([1.0]) - 1.0)
    assert [(s.name, s.calls) for s in prof.key_averages()] in (
        [("sub", 1), ("log", 1)], [("log", 1), ("sub", 1)])
    assert not fg.is_anomaly_enabled()


# ---------------------------------------------------------------- graph highlight


def test_draw_graph_highlights_the_culprit_and_what_it_fed():
    x = _t([1.0, 0.0])
    w = _t([2.0, 3.0])
    with fg.detect_anomaly(check_inf=False):
        loss = (fg.where(x > 0, fg.log(x), 0.0) * w).sum()
        with pytest.raises(fg.AnomalyError) as info:
            loss.backward(retain_graph=True)
    source = fg.viz.draw_graph(loss, {"x": x, "w": w}, highlight=info.value).source
    styles = {line.split()[0]: line for line in source.splitlines()
              if line.startswith("  op") and "->" not in line}
    names = [n.name for n in walk(loss)]
    assert names == ["log", "where", "mul", "sum"]
    assert 'fillcolor="#ec7063"' in styles["op0"]  # log: red
    assert all('fillcolor="#f5b041"' in styles[k] for k in ("op1", "op2", "op3"))  # orange
    assert "red: log" in source
    with pytest.raises(ValueError, match="not a node of this graph"):
        fg.viz.draw_graph(loss, highlight=(x * 2.0).grad_fn)


# ---------------------------------------------------------------- command line


def test_explain_prints_the_anomaly_report_and_draws_it_highlighted(tmp_path, capsys):
    from flowgrad.cli import main

    out = tmp_path / "g.dot"
    assert main(["explain", "log(x) * y", "x=0", "y=1", "--graph", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("anomaly: log created -Inf in its forward pass from finite inputs")
    assert "  in n1 = log(x)\n" in text and "  input 0: 0 (0-d float64)\n" in text
    assert "hint: log(x) is -inf at x = 0" in text
    assert "Forward pass" in text  # the explanation follows
    dot = out.read_text()
    assert 'label=<<B>log</B><BR/><FONT COLOR="#333333">n1: log(x)</FONT>>' \
           ', shape=ellipse, style="filled,bold", fillcolor="#ec7063"' in dot

    assert main(["explain", "sqrt(x) + y", "x=0", "y=1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("anomaly: the derivative rule of sqrt")
    assert "returned +Inf in the gradient for input 0" in text and "in n1 = sqrt(x)" in text

    assert main(["explain", "x * y", "x=0", "y=1"]) == 0
    assert "anomaly" not in capsys.readouterr().out

    assert main(["explain", "log(x)", "x=0", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("{") and captured.err.startswith("anomaly: log created")


def test_train_profile_prints_the_table_for_one_epoch(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from flowgrad.cli import main

    assert main(["train", "--epochs", "2", "--hidden", "8", "--profile", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert "profile of epoch 1 (per op, sorted by total time):" in text
    table = text.split("profile of epoch 1 (per op, sorted by total time):\n")[1]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[3:6]}
    # 1438 digits in batches of 32: 45 steps; the test split (359) is evaluated once.
    assert rows["linear"][1:2] == ["92"] and rows["relu"][1] == "46"
    assert rows["cross_entropy"][1] == "46"
    assert rows["linear"][3] == "90"  # backward: two linear layers per training step


def test_an_op_applied_through_a_flowgrad_function_names_it_as_via():
    logits = _t([[np.inf, 1.0, 3.0]])
    with fg.detect_anomaly():
        line = _next_line()
        with pytest.raises(fg.AnomalyError) as info:
            fg.nn.functional.cross_entropy(logits, fg.tensor([0]))
    err = info.value
    assert (err.op, err.kind) == ("cross_entropy", "NaN")
    assert err.created_at.line == line + 1
    assert err.created_at.via == "flowgrad.nn.functional.cross_entropy"
    assert "from inputs without NaN" in str(err) and "inf - inf" in err.hint
    assert "arguments: reduction='mean'" in str(err)


def test_numbers_among_the_inputs_are_described():
    with fg.detect_anomaly():
        with pytest.raises(fg.AnomalyError) as info:
            fg.tensor([3e38, 1.0]) * 10.0
    assert "input 1: 10 (a number)" in str(info.value)
    assert "[0] inf (input 0 = 3e+38, input 1 = 10)" in str(info.value)
    assert "overflow" in info.value.hint


def test_gradcheck_nodes_says_why_a_node_was_not_checked_or_failed():
    @fg.op("dbg_crashing_rule")
    def crashing(xp, x):
        return x * 2.0

    @crashing.rule
    def _(g, x):
        raise ValueError("no rule here")

    (check, _) = fg.gradcheck_nodes(lambda t: crashing(t).sum(), [np.ones(3)])
    assert not check.passed and check.raised == "ValueError('no rule here')"
    assert str(check).endswith("its derivative rule raised ValueError('no rule here')")

    checks = fg.gradcheck_nodes(lambda t: (fg.log(t - 1.0) + t).sum(), [np.ones(2)])
    assert [(c.name, c.skipped) for c in checks][1:] == [
        ("log", "its output is not finite at its saved inputs"),
        ("add", "its output is not finite at its saved inputs"),
        ("sum", "its output is not finite at its saved inputs")]

    index = fg.tensor([1, 0])
    checks = fg.gradcheck_nodes(lambda t: (t[index] * 2.0).sum(), [np.arange(3.0)])
    assert not checks.failed and checks[0].skipped is None

    # A float32 cast computes in lower precision: checked with a coarser step, no alarm.
    checks = fg.gradcheck_nodes(lambda t: (t.float() * 2.0).sum(), [np.arange(3.0)])
    assert [c.name for c in checks] == ["cast", "mul", "sum"] and not checks.failed
