"""Data-parallel training under real MPI: each test starts ``mpiexec -n 2`` (or 3) jobs.

The jobs live in tests/mpi_jobs.py; every rank writes what it saw to a file and the
assertions here compare those values with a one-process reference computed in this
process. Without mpiexec or mpi4py the tests skip, unless FLOWGRAD_REQUIRE_MPI=1 (set by
.ci/run), which turns the skip into a failure so CI cannot pass without running them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import flowgrad.distributed as dist

pytestmark = pytest.mark.mpi

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
JOBS = TESTS / "mpi_jobs.py"


@pytest.fixture(scope="module")
def mpiexec() -> str:
    import importlib.util

    launcher = dist.find_mpiexec()
    missing = []
    if launcher is None:
        missing.append("mpiexec")
    if importlib.util.find_spec("mpi4py") is None:
        missing.append("mpi4py")
    if missing:
        message = (f"{' and '.join(missing)} not installed "
                   "(pip install 'flowgrad[distributed]')")
        if os.environ.get("FLOWGRAD_REQUIRE_MPI") == "1":
            pytest.fail("FLOWGRAD_REQUIRE_MPI=1 but " + message)
        pytest.skip(message)
    return launcher


def launch(launcher: str, nproc: int, argv: list[str], cwd: Path,
           timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``argv`` as ``nproc`` MPI processes; kill the whole job if it outlives timeout."""
    cmd, env = dist.mpiexec_command(nproc, argv, mpiexec=launcher)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = "1"
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"MPI job {argv} hung for {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_job(launcher: str, nproc: int, job: str, tmp_path: Path, *args: str,
            expect_ok: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    res = launch(launcher, nproc, [sys.executable, str(JOBS), job, str(tmp_path), *args],
                 tmp_path, timeout)
    if expect_ok:
        assert res.returncode == 0, f"rc={res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def read(tmp_path: Path, job: str, nproc: int) -> list[dict]:
    return [json.loads((tmp_path / f"{job}.rank{r}.json").read_text()) for r in range(nproc)]


# -- collectives ---------------------------------------------------------------------------
@pytest.mark.parametrize("nproc", [2, 3])
def test_collectives(mpiexec, tmp_path, nproc):
    run_job(mpiexec, nproc, "collectives", tmp_path)
    results = read(tmp_path, "collectives", nproc)
    base = np.array([1.0, -2.0, 3.5])
    scales = np.arange(1, nproc + 1)
    for r, res in enumerate(results):
        assert (res["rank"], res["size"], res["initialized"]) == (r, nproc, True)
        assert "init_process_group" in res["errors"]["before_init"]
        assert "twice" in res["errors"]["twice"]
        assert res["sum"] == (base * scales.sum()).tolist()
        assert np.allclose(res["mean"], base * scales.mean(), rtol=0, atol=1e-15)
        assert res["max"] == [nproc * 1.0, -2.0, nproc * 3.5]
        assert res["min"] == [1.0, -2.0 * nproc, 3.5]
        assert res["sum_same_object"] and res["mean_same_object"]
        assert res["int_sum"] == (np.arange(4) * scales.sum()).tolist()
        assert res["int_dtype"] == "int64"
        assert res["transposed"] == (np.arange(6.0).reshape(2, 3).T * scales.sum()).tolist()
        assert res["broadcast"] == [float(nproc - 1)] * 3
        assert "prod" in res["errors"]["bad_op"]
        assert f"[0, {nproc - 1}]" in res["errors"]["bad_src"]
        assert res["initialized_after_destroy"] is False


# -- DDP -----------------------------------------------------------------------------------
def _reference(opt_name: str, steps: int, batch: int) -> tuple[dict, list[float]]:
    from mpi_jobs import make_data, make_model, make_optimizer, train_steps

    model = make_model(seed=100)  # rank 0's model, which DDP broadcasts
    opt = make_optimizer(opt_name, model.parameters())
    x, y = make_data(batch, steps)
    losses = train_steps(model, opt, x, y)
    return {n: p.numpy() for n, p in model.named_parameters()}, losses


@pytest.mark.parametrize("nproc,opt_name", [(2, "sgd"), (2, "adam"), (3, "adam")])
def test_ddp_equals_one_process_with_the_whole_batch(mpiexec, tmp_path, nproc, opt_name):
    steps, batch = 10, 12
    run_job(mpiexec, nproc, "equivalence", tmp_path, opt_name, str(steps), str(batch))
    ref, ref_losses = _reference(opt_name, steps, batch)
    ranks = [np.load(tmp_path / f"equivalence.rank{r}.npz") for r in range(nproc)]
    infos = read(tmp_path, "equivalence", nproc)
    for r in range(nproc):
        for name, value in ref.items():
            # Identical bits on every rank: all take the same step from the same average.
            assert np.array_equal(ranks[r][name], ranks[0][name]), (r, name)
            np.testing.assert_allclose(ranks[r][name], value, rtol=0, atol=1e-13,
                                       err_msg=f"rank {r} {name}")
        assert infos[r]["steps"] == steps
        # One allreduce per bucket per step (this small model fits in one bucket).
        assert infos[r]["buckets"] == [len(ref)]
        assert infos[r]["allreduce_calls"] == infos[r]["stats_calls"] == steps
    # The one-process loss is the mean of the ranks' losses (equal shares, mean loss).
    mean_losses = np.mean([info["losses"] for info in infos], axis=0)
    np.testing.assert_allclose(mean_losses, ref_losses, rtol=1e-13)


def test_wrap_broadcasts_rank0_parameters_and_buffers(mpiexec, tmp_path):
    run_job(mpiexec, 2, "broadcast", tmp_path)
    r0, r1 = read(tmp_path, "broadcast", 2)
    assert r0["before"] != r1["before"]  # different seeds: the replicas started apart
    assert r1["weight"] == r0["weight"] == r0["before"]
    assert r1["bias"] == r0["bias"]
    assert r0["buffer"] == r1["buffer"] == [0.0] * 4
    assert all(r0["same_params"])
    # PyTorch's keys on the wrapper; the plain module's keys on .module.
    assert r0["state_keys"] == ["module.running", "module.lin.weight", "module.lin.bias"]
    assert r0["module_keys"] == ["running", "lin.weight", "lin.bias"]


def test_gradients_go_in_fused_buckets_one_allreduce_each(mpiexec, tmp_path):
    run_job(mpiexec, 2, "bucketing", tmp_path)
    res = read(tmp_path, "bucketing", 2)[0]
    one, several = res["25.0"], res["0.002"]
    steps = 2
    assert one["params"] == 8 and one["buckets"] == [8]
    assert one["allreduce_calls"] == steps  # one call per step for all 8 parameters
    # 2 kB buckets: the 32x32 weights (8 kB) are alone, the small ones share.
    assert sum(several["buckets"]) == 8
    assert 1 < len(several["buckets"]) < 8
    assert max(several["buckets"]) > 1
    assert several["allreduce_calls"] == steps * len(several["buckets"])
    for size, nbytes in zip(several["buckets"], several["bucket_bytes"]):
        assert size == 1 or nbytes <= 0.002 * 1024 * 1024
    calls, done, sent = several["stats"]
    assert (calls, done) == (steps * len(several["buckets"]), steps)
    assert sent == steps * sum(several["bucket_bytes"])


def test_no_sync_accumulates_locally_then_averages_the_sum(mpiexec, tmp_path):
    run_job(mpiexec, 2, "no_sync", tmp_path)
    r0, r1 = read(tmp_path, "no_sync", 2)
    assert r0["calls_inside"] == 0 and r0["calls_after"] == 1
    assert r0["local"] != r1["local"]  # inside no_sync each rank keeps its own gradient
    assert r0["grads"] == r1["grads"]
    # The synced gradient is the average over ranks of (microbatch 1 + microbatch 2).
    from mpi_jobs import make_data, make_model

    model = make_model(seed=0)
    import flowgrad as fg

    x, y = make_data(8, 2)
    for step in range(2):
        for r in range(2):
            loss = fg.nn.functional.cross_entropy(model(fg.tensor(x[step, r * 4:(r + 1) * 4])),
                                                  fg.tensor(y[step, r * 4:(r + 1) * 4]))
            (loss * 0.5).backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(r0["grads"][name], p.grad.numpy(), rtol=0, atol=1e-14)


def test_unused_parameters_never_hang(mpiexec, tmp_path):
    run_job(mpiexec, 2, "unused", tmp_path, timeout=30)
    r0, r1 = read(tmp_path, "unused", 2)
    assert r0["grads"] == r1["grads"]
    assert r0["grads"]["head_a.weight"] is not None and r0["grads"]["head_b.weight"] is not None
    assert r0["head_b_grad_when_unused_everywhere"] and r1["head_b_grad_when_unused_everywhere"]
    for r in (r0, r1):
        assert "find_unused_parameters=True" in r["strict_error"]
        assert "head_b.weight" in r["strict_error"]


# -- faults --------------------------------------------------------------------------------
def test_model_mismatch_across_ranks_is_a_clear_error(mpiexec, tmp_path):
    res = run_job(mpiexec, 2, "mismatch", tmp_path, expect_ok=False, timeout=30)
    assert res.returncode != 0
    assert "rank 0 and rank 1 differ" in res.stderr
    assert "parameter '0.weight' of shape (4, 3)" in res.stderr
    assert "(5, 3)" in res.stderr


@pytest.mark.parametrize("job,message", [("raise", "ValueError: boom on rank 1"),
                                         ("kill", "")])
def test_a_failing_rank_ends_the_job_fast(mpiexec, tmp_path, job, message):
    t0 = time.monotonic()
    res = run_job(mpiexec, 2, job, tmp_path, expect_ok=False, timeout=30)
    assert res.returncode != 0
    assert time.monotonic() - t0 < 30
    if message:
        assert f"[rank 1] {message}" in res.stderr


# -- flowgrad train under mpiexec ------------------------------------------------------------
def _train_argv(out: Path, *extra: str) -> list[str]:
    return ["train", "--epochs", "2", "--hidden", "16", "--out", str(out), "--no-progress",
            *extra]


def _single_process_run(tmp_path: Path, *extra: str) -> Path:
    from flowgrad.cli import main

    out = tmp_path / "single"
    assert main(_train_argv(out, "-q", *extra)) == 0
    return out


def _assert_same_run(parallel: Path, single: Path, atol: float = 1e-5) -> None:
    import flowgrad as fg
    from flowgrad.training import read_metrics

    ours, theirs = fg.load(parallel / "model.npz"), fg.load(single / "model.npz")
    assert ours["epoch"] == theirs["epoch"]
    for key, value in theirs["model"].items():
        np.testing.assert_allclose(ours["model"][key].numpy(), value.numpy(), rtol=0,
                                   atol=atol, err_msg=key)
    for a, b in zip(read_metrics(parallel), read_metrics(single)):
        assert (a.epoch, a.train_accuracy, a.test_accuracy) == \
            (b.epoch, b.train_accuracy, b.test_accuracy)
        assert a.train_loss == pytest.approx(b.train_loss, abs=2e-6)
        assert a.test_loss == pytest.approx(b.test_loss, abs=2e-6)


def test_cli_train_under_mpiexec_prints_once_and_equals_one_process(mpiexec, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    res = launch(mpiexec, 2, [sys.executable, "-m", "flowgrad", *_train_argv(work / "run")],
                 work)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert sum(line.startswith("training 64-16-10 network") for line in lines) == 1
    assert "batch 32, 2 processes" in lines[0]
    assert sum(line.startswith("epoch ") for line in lines) == 2
    assert sum(line.startswith("test accuracy") for line in lines) == 1
    assert [p.name for p in work.iterdir()] == ["run"]  # one run folder, rank 0's
    assert sorted(p.name for p in (work / "run").iterdir()) == \
        ["config.json", "curves.png", "metrics.csv", "model.npz"]
    assert json.loads((work / "run" / "config.json").read_text())["processes"] == 2
    _assert_same_run(work / "run", _single_process_run(tmp_path))


def test_cli_train_uneven_and_empty_shares(mpiexec, tmp_path):
    # 1438 samples in batches of 479: 479 rows split 160/160/159, and a last batch of one
    # row, so two of the three processes take no row of it.
    res = launch(mpiexec, 3, [sys.executable, "-m", "flowgrad",
                              *_train_argv(tmp_path / "run", "-q", "--batch-size", "479")],
                 tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("test accuracy") == 1
    _assert_same_run(tmp_path / "run", _single_process_run(tmp_path, "--batch-size", "479"))


def test_cli_train_nproc_starts_mpiexec(mpiexec, tmp_path, capfd):
    from flowgrad.cli import main

    assert main(_train_argv(tmp_path / "run", "-q", "--nproc", "2")) == 0
    out, err = capfd.readouterr()
    assert "starting 2 processes:" in err and "-n 2" in err
    assert out.count("test accuracy") == 1
    assert json.loads((tmp_path / "run" / "config.json").read_text())["processes"] == 2


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "0"], "flowgrad train: error: epochs must be a positive integer, got 0"),
    (["--dataset", "mnist", "--data-dir", "nowhere"],
     "flowgrad train: error: MNIST files not found in nowhere"),
])
def test_cli_set_up_errors_are_one_line_from_one_process(mpiexec, tmp_path, argv, message):
    res = launch(mpiexec, 2, [sys.executable, "-m", "flowgrad", "train", "-q", *argv],
                 tmp_path, timeout=30)
    assert res.returncode == 2
    assert res.stderr.count("flowgrad train: error:") == 1
    # (Open MPI's mpiexec adds a banner saying a process exited with status 2; MPICH's none.)
    assert message in res.stderr
    assert "Traceback" not in res.stderr and "MPI_Abort" not in res.stderr
    assert not (tmp_path / "runs").exists()


def test_cli_write_error_on_rank0_aborts_the_job(mpiexec, tmp_path):
    (tmp_path / "run" / "metrics.csv").mkdir(parents=True)  # rank 0 cannot write it
    res = launch(mpiexec, 2, [sys.executable, "-m", "flowgrad",
                              *_train_argv(tmp_path / "run", "-q")], tmp_path, timeout=30)
    assert res.returncode == 2
    assert "flowgrad train: error: [rank 0] cannot write the run folder" in res.stderr


def test_cli_killed_rank_ends_the_job_and_leaves_complete_files(mpiexec, tmp_path):
    import flowgrad as fg
    from flowgrad.training import read_metrics

    t0 = time.monotonic()
    res = launch(mpiexec, 2, [sys.executable, str(JOBS), "cli_kill", str(tmp_path),
                              "train", "--epochs", "500", "--out", str(tmp_path / "run"),
                              "-q"], tmp_path, timeout=60)
    assert res.returncode != 0
    assert time.monotonic() - t0 < 60
    run = tmp_path / "run"
    # Every file there is whole: each write is atomic (temporary file, then rename).
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 500 and config["processes"] == 2
    metrics = read_metrics(run)
    assert 1 <= len(metrics) < 500
    assert fg.load(run / "model.npz")["epoch"] >= 1
    assert not (run / "curves.png").exists()
