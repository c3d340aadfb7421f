"""The benchmark harness: every case runs at tiny sizes and reports the expected structure.

No timing is asserted (timings depend on the machine); the tests check that the harness runs,
that the floors compute what flowgrad computes, and that the reporting is right.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from benchmarks import floor
from benchmarks.harness import CASE_NAMES, cases_for, run_benchmarks
from benchmarks.memory import LEAK_TOLERANCE_BYTES, run_rss_probe, traced_training_memory
from benchmarks.report import Check, fmt_number, fmt_ratio, update_markdown
from benchmarks.timing import TimingPlan, compare

import flowgrad as fg

# The CPU run's cases (mlp_train_cuda runs with --device cuda; tests/test_devices.py).
SMOKE_CASES = [c for c in cases_for("cpu") if c != "train_digits"]


@pytest.fixture(scope="module")
def smoke_report():
    # PyTorch left out on purpose: the suite must not depend on it, and its columns must
    # then say "not installed".
    return run_benchmarks(SMOKE_CASES, profile="smoke", use_torch=False)


def test_every_case_runs_and_reports_tables(smoke_report):
    assert [c.name for c in smoke_report.cases] == SMOKE_CASES
    for case in smoke_report.cases:
        assert case.error is None, f"{case.name}: {case.error}"
        assert case.tables, case.name
        for table in case.tables:
            assert table.rows, f"{case.name}: {table.title}"
            for row in table.rows:
                assert len(row) == len(table.columns), f"{case.name}: {table.title}"
        failures = [n for n in case.notes if "failed" in n]
        assert not failures, failures
        assert case.seconds > 0


def test_machine_facts_name_cpu_blas_threads_and_openblas_vars(smoke_report):
    facts = smoke_report.facts
    text = "\n".join(smoke_report.facts_lines)
    assert facts["threads_requested"] == 2
    assert facts["numpy"] == np.__version__
    assert facts["torch"] is None and "PyTorch: not installed" in text
    assert "OPENBLAS_CORETYPE" in text and "OPENBLAS_L2_SIZE" in text
    assert facts["cpu"] in text
    blas = [p for p in facts["native_pools"] if p["user_api"] == "blas"]
    if blas:  # threadpoolctl installed: the limit is in force while the cases run
        assert blas[0]["num_threads"] <= 2


def test_pytorch_columns_say_not_installed(smoke_report):
    mlp = next(c for c in smoke_report.cases if c.name == "mlp_train")
    speed = mlp.tables[0]
    col = speed.columns.index("PyTorch")
    assert all(row[col] == "not installed" for row in speed.rows)
    assert all(row[speed.columns.index("flowgrad/PyTorch")] == "-" for row in speed.rows)


def test_mlp_numbers_and_memory(smoke_report):
    mlp = next(c for c in smoke_report.cases if c.name == "mlp_train")
    batch = mlp.data["16"]
    assert set(batch["samples_per_s"]) == {"flowgrad", "numpy"}
    assert all(v > 0 for v in batch["samples_per_s"].values())
    # Both NumPy-backed sides hold at least the parameters (784*256 + 256 + 256*10 + 10 floats).
    n_params = 784 * 256 + 256 + 256 * 10 + 10
    for side in ("flowgrad", "numpy"):
        assert batch["traced"][side]["peak"] >= 4 * n_params
    ratio = mlp.tables[0].rows[0][-1]
    assert ratio.endswith("x") and float(ratio[:-1]) > 0
    # The cross-check ran the three SGD steps and compared losses with the floor.
    agree = [c for c in mlp.checks if "computes the floor's losses" in c.target]
    assert agree and all(c.ok for c in agree)
    # Reduced sizes: the speed targets are reported but not judged.
    speed_checks = [c for c in mlp.checks if "samples/s" in c.target]
    assert speed_checks and all(c.ok is None for c in speed_checks)


def test_op_overhead_and_chain_report_per_size(smoke_report):
    cases = {c.name: c for c in smoke_report.cases}
    op = cases["op_overhead"]
    assert [r[0] for r in op.tables[0].rows] == ["1", "16"]
    assert set(op.data["1"]["us_per_op"]) == {"flowgrad", "numpy"}
    chain = cases["deep_chain"]
    assert chain.data["length"] == 300
    assert set(chain.data["seconds"]) == {"flowgrad", "numpy"}
    assert any("no recursion error" in c.target and c.measured == "ran" for c in chain.checks)


def test_hessian_case_without_torch(smoke_report):
    hess = next(c for c in smoke_report.cases if c.name == "hessian")
    row = hess.tables[0].rows[0]
    assert row[1] == "not installed" and row[2] == "not installed"
    assert hess.data["seconds"]["flowgrad"] > 0
    assert any("relative asymmetry" in n for n in hess.notes)


def test_ddp_mlp_reports_each_process_count(smoke_report):
    import importlib.util

    import flowgrad.distributed as dist

    ddp = next(c for c in smoke_report.cases if c.name == "ddp_mlp")
    if dist.find_mpiexec() is None or importlib.util.find_spec("mpi4py") is None:
        assert "not installed" in ddp.tables[0].rows[0][1]
        return
    results = ddp.data["results"]
    # One process with every core, one with one core, then two processes.
    assert [(r["processes"], r["batch"]) for r in results] == [(1, 16), (1, 16), (2, 16)]
    assert [r["rows"] for r in results[2]["ranks"]] == [8, 8]
    assert results[2]["allreduce_calls_per_step"] == 1  # all 4 parameters in one bucket
    assert results[2]["bytes_per_step"] == 4 * (784 * 256 + 256 + 256 * 10 + 10)
    assert results[0]["allreduce_calls_per_step"] == 0  # the baseline runs without DDP
    assert [c.ok for c in ddp.checks] == [True]


def test_conv_train_reports_speed_memory_and_the_floor_agrees(smoke_report):
    conv = next(c for c in smoke_report.cases if c.name == "conv_train")
    speed, memory = conv.tables
    assert [row[0] for row in speed.rows] == ["4"]
    assert speed.rows[0][2] == "not installed"
    assert conv.data["4"]["im2col_bytes"] == floor.cnn_im2col_bytes(4) == 4 * 4 * (
        9 * 784 + 16 * 9 * 196)
    assert conv.data["4"]["traced"]["flowgrad"]["peak"] > 0
    cross = [c for c in conv.checks if "losses over 3 SGD steps" in c.target]
    assert [c.ok for c in cross] == [True]  # flowgrad computes the floor's numbers


def test_cnn_floor_step_equals_flowgrad_autodiff():
    from benchmarks import fg_impl

    rng = np.random.default_rng(5)
    params = floor.init_cnn_params(rng)
    xs, ys = floor.synthetic_images(rng, 3, 2)
    ours = floor.make_cnn_trainer(params, 0.1)
    theirs = fg_impl.make_cnn_trainer(params, 0.1)
    for x, y in zip(xs, ys):
        np.testing.assert_allclose(float(ours(x, y)), theirs(fg.tensor(x), fg.tensor(y)).item(),
                                   rtol=1e-5)
    for key, p in zip(("c1w", "c1b", "c2w", "c2b", "fw", "fb"), theirs.params):
        np.testing.assert_allclose(ours.params[key], p.numpy(), rtol=1e-4, atol=1e-6)


def test_train_digits_smoke():
    report = run_benchmarks(["train_digits"], profile="smoke", use_torch=False)
    case = report.cases[0]
    assert case.error is None, case.error
    acc = case.data["accuracy"][0]
    assert acc is not None and 0.1 < acc <= 1.0  # one epoch already beats chance (0.1)
    assert case.data["wall_seconds"][0] > 0


def test_unknown_case_and_profile_raise():
    with pytest.raises(ValueError, match="nope"):
        run_benchmarks(["nope"], profile="smoke")
    with pytest.raises(ValueError, match="profile"):
        run_benchmarks(["op_overhead"], profile="slow")


# --- the floors compute what flowgrad computes ----------------------------------------------


def test_numpy_floor_step_equals_flowgrad_autodiff():
    rng = np.random.default_rng(5)
    params = floor.init_mlp_params(rng)
    (x,), (y,) = floor.synthetic_mnist(rng, 8, 1)
    step = floor.make_mlp_trainer(params, lr=0.1)
    loss = step(x, y)

    w1, b1, w2, b2 = (fg.tensor(params[k], requires_grad=True) for k in ("w1", "b1", "w2", "b2"))
    h = fg.relu(fg.tensor(x) @ w1.T + b1)
    ref = fg.cross_entropy(h @ w2.T + b2, fg.tensor(y))
    ref.backward()
    assert math.isclose(float(loss), ref.item(), rel_tol=1e-5)
    for got, p in zip(step.params, (w1, b1, w2, b2)):
        np.testing.assert_allclose(got, p.data - 0.1 * p.grad.data, rtol=1e-5, atol=1e-7)
        assert got.dtype == np.float32


def test_floor_expression_and_chain_gradients():
    x = np.array([0.5, 2.0], dtype=np.float32)
    y = np.array([3.0, -1.0], dtype=np.float32)
    s, gx, gy = floor.op_expression(x, y)
    assert s == pytest.approx((x * y + x).sum())
    np.testing.assert_allclose(gx, y + 1)
    np.testing.assert_allclose(gy, x)
    total, g = floor.chain(np.ones(3, dtype=np.float32), 1000, math.exp(1e-3))
    np.testing.assert_allclose(g, math.e, rtol=1e-3)
    assert total == pytest.approx(3 * math.e, rel=1e-3)


# --- harness pieces -------------------------------------------------------------------------


def test_compare_times_each_side_and_isolates_failures():
    calls = {"a": 0, "b": 0}

    def a():
        calls["a"] += 1

    def b():
        calls["b"] += 1

    def broken():
        raise ZeroDivisionError("boom")

    plan = TimingPlan(warmup=1, repeats=3, min_time=0.0, max_number=1)
    timings, errors = compare({"a": a, "b": b, "bad": broken}, plan)
    assert set(timings) == {"a", "b"}
    assert errors == {"bad": "ZeroDivisionError: boom"}
    for name in ("a", "b"):
        assert len(timings[name]["times"]) == 3
        assert timings[name]["median"] >= 0
        assert calls[name] == 1 + 1 + 3  # warm-up, calibration, three blocks


def test_traced_memory_sees_numpy_arrays_and_leaks():
    def build_flat():
        def step():
            return np.ones(100_000, dtype=np.float32).sum()

        return step

    kept = []

    def build_leaky():
        def step():
            kept.append(np.ones(50_000, dtype=np.float32))

        return step

    flat = traced_training_memory(build_flat, steps=5)
    assert flat["peak"] >= 400_000  # the 100,000-float temporary
    assert abs(flat["growth"]) < LEAK_TOLERANCE_BYTES
    leaky = traced_training_memory(build_leaky, steps=5)
    assert leaky["growth"] >= 5 * 200_000


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_rss_probe_in_a_fresh_process():
    out = run_rss_probe("numpy", 64, 3, 1)
    if "error" in out and "clear_refs" in out["error"]:
        pytest.skip(out["error"])
    assert "rss_peak" in out, out
    assert out["rss_peak"] > 4 * 784 * 256  # the first layer's weights at least


def test_formatting():
    assert fmt_number(12345.678) == "12,346"
    assert fmt_number(0.0012345) == "0.00123"
    assert fmt_number(None) == "-"
    assert fmt_ratio(3.0, 2.0) == "1.50x"
    assert fmt_ratio(3.0, None) == "-"


def test_markdown_update_keeps_hand_written_text(tmp_path, smoke_report):
    path = tmp_path / "RESULTS.md"
    path.write_text(
        "# Results\n\nIntro by hand.\n\n<!-- bench:op_overhead:begin -->\nold table\n"
        "<!-- bench:op_overhead:end -->\n\nAnalysis by hand.\n",
        encoding="utf-8",
    )
    update_markdown(path, smoke_report)
    text = path.read_text(encoding="utf-8")
    assert "Intro by hand." in text and "Analysis by hand." in text
    assert "old table" not in text
    assert text.count("<!-- bench:op_overhead:begin -->") == 1
    assert "| elements | flowgrad | PyTorch | raw NumPy |" in text
    for name in ("machine", "mlp_train", "deep_chain", "targets"):
        assert f"<!-- bench:{name}:begin -->" in text
    update_markdown(path, smoke_report)  # idempotent structure
    again = path.read_text(encoding="utf-8")
    assert again.count("<!-- bench:mlp_train:begin -->") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RESULTS.md"]  # no temp files left


def test_check_marks_in_targets_block(smoke_report, tmp_path):
    smoke_report.cases[0].checks.append(Check("demo target", "1.00x", False))
    try:
        path = tmp_path / "r.md"
        update_markdown(path, smoke_report)
        assert "| demo target | 1.00x | NOT met |" in path.read_text(encoding="utf-8")
    finally:
        smoke_report.cases[0].checks.pop()


# --- command line ---------------------------------------------------------------------------


def test_python_m_benchmarks_entry(tmp_path, capsys):
    from benchmarks.__main__ import main

    out_json = tmp_path / "bench.json"
    out_md = tmp_path / "RESULTS.md"
    code = main(
        ["--smoke", "--no-torch", "--cases", "op_overhead", "--json", str(out_json),
         "--markdown", str(out_md)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "flowgrad benchmarks" in printed and "== op_overhead" in printed
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert data["settings"]["profile"] == "smoke"
    assert data["command"] == "python -m benchmarks --smoke --cases op_overhead --no-torch"
    assert data["cases"][0]["name"] == "op_overhead"
    assert "<!-- bench:op_overhead:begin -->" in out_md.read_text(encoding="utf-8")


def test_cli_errors_are_one_line(capsys):
    from benchmarks.__main__ import main

    assert main(["--smoke", "--cases", "mlp_train,bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown case bogus" in err and "Traceback" not in err
    assert main(["--smoke", "--quick"]) == 2
    assert main(["--smoke", "--markdown", "/nonexistent-folder/x.md"]) == 2


def test_flowgrad_bench_runs_the_checkouts_benchmarks(capfd):
    from flowgrad.cli import main

    # From a checkout, `flowgrad bench OPTIONS` is `python -m benchmarks OPTIONS` (a child).
    code = main(["bench", "--smoke", "--no-torch", "--cases", "deep_chain", "--threads", "1"])
    assert code == 0
    assert "== deep_chain" in capfd.readouterr().out
    assert main(["bench", "--smoke", "--cases", "bogus"]) == 2
    assert "python -m benchmarks: error: unknown case bogus" in capfd.readouterr().err


def test_flowgrad_bench_outside_a_checkout_says_where_the_benchmarks_are(monkeypatch, capsys):
    from flowgrad.cli import bench, main

    monkeypatch.setattr(bench, "checkout_root", lambda: None)
    assert main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("flowgrad bench: error: the benchmarks are not "
                                                   "installed with flowgrad")
    assert "python -m benchmarks" in err
    assert main(["bench", "--help"]) == 0
    assert "python -m benchmarks" in capsys.readouterr().out


def test_other_commands_still_refuse_unknown_options(capsys):
    from flowgrad.cli import main

    assert main(["train", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_the_library_ships_no_benchmarks():
    import importlib.util

    assert importlib.util.find_spec("flowgrad.bench") is None
    assert not (Path(fg.__file__).parent / "bench").exists()


# --- the case registry ----------------------------------------------------------------------


def test_cases_register_in_order_and_new_ones_run_like_the_others():
    from benchmarks.cases import CASES, case
    from benchmarks.report import CaseResult, Table

    assert CASE_NAMES == tuple(CASES)
    assert CASE_NAMES[:6] == ("mlp_train", "op_overhead", "deep_chain", "hessian",
                              "train_digits", "import_time")

    @case
    def tiny_case(ctx):
        return CaseResult("tiny_case", "a case added by a test",
                          tables=[Table("t", ["profile"], [[str(ctx.settings.full_size)]])])

    try:
        with pytest.raises(ValueError, match="defined twice"):
            case(tiny_case)
        report = run_benchmarks(["tiny_case"], profile="smoke", use_torch=False)
        assert report.cases[0].tables[0].rows == [["False"]]
    finally:
        del CASES["tiny_case"]
