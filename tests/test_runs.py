"""Run folders are never mixed or half-written: an existing run is refused unless
overwrite (which starts afresh), a run that fails before its first epoch removes what it
made, each epoch's checkpoint and metrics agree whatever interrupts them, and a failed
download leaves no empty folders."""

from __future__ import annotations

import os
import signal

import pytest

import flowgrad as fg
from flowgrad.cli import main
from flowgrad.data.download import DownloadError, download_file
from flowgrad.training import TrainConfig, train
from flowgrad.training import rundir as rundir_module


def _train(out, **kw):
    kw = {"epochs": 2, "hidden": 8, **kw}
    return train(TrainConfig(out=str(out), **kw), progress=False, plot=False)


def _epochs(run):
    """(checkpoint epoch, metrics rows' epochs) of a run folder."""
    rows = (run / "metrics.csv").read_text().splitlines()[1:]
    return fg.load(run / "model.npz")["epoch"], [int(r.split(",")[0]) for r in rows]


def test_an_existing_run_is_refused_unless_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    _train(run, epochs=3)
    (run / "confusion.png").write_bytes(b"an old picture")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already holds a run .*config.json.*overwrite"):
        _train(run)
    assert _epochs(run) == (3, [1, 2, 3])  # untouched
    assert main(["train", "--out", str(run), "--epochs", "1", "-q"]) == 2
    assert "pass --overwrite" not in capsys.readouterr().err  # says: with --overwrite
    _train(run, epochs=2, overwrite=True)
    # Started afresh: no epoch 3 and no picture from the old run; the user's file stays.
    assert _epochs(run) == (2, [1, 2])
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics.csv",
                                                     "model.npz", "notes.txt"]


def test_the_cli_documents_and_uses_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--epochs", "1", "-q"]) == 0
    assert main(["train", "--out", str(run), "--epochs", "1", "-q"]) == 2
    err = capsys.readouterr().err
    assert err == (f"flowgrad train: error: run folder {run} already holds a run (config.json, "
                   "curves.png, metrics.csv, model.npz); choose another folder, or overwrite "
                   "it with --overwrite to start afresh\n")
    assert main(["train", "--out", str(run), "--epochs", "1", "-q", "--overwrite"]) == 0
    assert main(["train", "--help"]) == 0
    assert "--overwrite" in capsys.readouterr().out


def test_a_run_failing_before_its_first_epoch_removes_what_it_made(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(FloatingPointError, match="diverged in epoch 1"):
        _train(out, lr=1e38)
    assert list(tmp_path.iterdir()) == []  # run, b and a were made by the run: all gone
    empty = tmp_path / "mine"
    empty.mkdir()
    with pytest.raises(FloatingPointError):
        _train(empty, lr=1e38)
    assert empty.is_dir() and list(empty.iterdir()) == []  # the user's folder stays


def test_an_interrupt_before_the_first_epoch_removes_the_folder(tmp_path, monkeypatch):
    import flowgrad.training.loop as loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "describe_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_after_some_epochs_keeps_them_consistent(tmp_path, monkeypatch):
    run = tmp_path / "run"
    calls = []

    def stop_in_epoch_3(m):
        calls.append(m.epoch)
        if m.epoch == 2:
            raise RuntimeError("the machine went away")

    with pytest.raises(RuntimeError):
        train(TrainConfig(out=str(run), epochs=5, hidden=8), progress=False, plot=False,
              on_epoch=stop_in_epoch_3)
    assert _epochs(run) == (2, [1, 2])


def test_ctrl_c_during_an_epochs_writes_waits_until_both_are_written(tmp_path, monkeypatch):
    real_save = fg.save
    seen = []

    def save_then_ctrl_c(state, f):
        real_save(state, f)
        if state["epoch"] == 2:
            seen.append(state["epoch"])
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between the two files

    monkeypatch.setattr(rundir_module.fg, "save", save_then_ctrl_c)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _train(run, epochs=4)
    assert seen == [2]
    assert _epochs(run) == (2, [1, 2])


def test_a_failed_metrics_write_does_not_advance_the_checkpoint(tmp_path, monkeypatch):
    import contextlib

    real = rundir_module.atomic_write
    writes = []

    @contextlib.contextmanager
    def full_disk_on_the_third_metrics(path, binary=True):
        with real(path, binary) as fh:
            if str(path).endswith("metrics.csv"):
                writes.append(path)
                if len(writes) == 3:
                    raise OSError(28, "No space left on device")
            yield fh

    monkeypatch.setattr(rundir_module, "atomic_write", full_disk_on_the_third_metrics)
    run = tmp_path / "run"
    with pytest.raises(OSError, match="No space"):
        _train(run, epochs=4)
    # The checkpoint of epoch 3 was complete but is never renamed into place.
    assert _epochs(run) == (2, [1, 2])
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics.csv",
                                                     "model.npz"]  # no temporary files


def test_a_failed_download_removes_the_empty_folders_it_made(tmp_path):
    folder = tmp_path / "cache" / "MNIST" / "raw"
    with pytest.raises(DownloadError):
        download_file("train-images-idx3-ubyte.gz", folder,
                      [(tmp_path / "no-mirror").as_uri()], {"sha256": "0" * 64})
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "cache").mkdir()
    with pytest.raises(DownloadError):
        download_file("x.gz", folder, [(tmp_path / "no-mirror").as_uri()], {"sha256": "0" * 64})
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]
    assert list((tmp_path / "cache").iterdir()) == []


def test_out_must_name_a_folder():
    for out, message in (("", "empty"), ("  ", "empty"), ("model.npz", "is a file name"),
                         ("runs/curves.png", "is a file name")):
        with pytest.raises(ValueError, match=message):
            TrainConfig(out=out)
    TrainConfig(out="runs/lr-0.5")  # a dot in a folder name is fine
