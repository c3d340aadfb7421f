"""The command line never shows a traceback: bad values are one ``flowgrad CMD: error: ...``
line and exit code 2, a closed pipe ends quietly, Ctrl-C at any moment is one line and
exit code 130, hostile input files are refused with bounded memory, and output options
refuse what cannot be what they claim. The cases a user reported run as the user ran them
(subprocesses); the wider table of bad values runs in-process for speed."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from flowgrad.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get(
    "PYTHONPATH")])), "COLUMNS": "100"}


def flowgrad(*args: str, cwd: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowgrad", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout, **kw)


def one_error_line(stderr: str, command: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"flowgrad {command}: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# ---------------------------------------------------------------- the reported crashes

REPORTED = [
    (["graph", "--seed", "-1", "--out", "g.dot"], "--seed must be between 0 and 2**64 - 1"),
    (["descent", "basins", "--seed", "-1"], "--seed must be between 0 and 2**64 - 1"),
    (["derivatives", "--domain=-1e308,1e308"], "--domain: the interval -1e308,1e308 is too wide"),
    (["train", "--hidden", str(10**13), "--out", "big/run"], "out of memory"),
    (["train", "--dataset", "mnist", "--data-dir", "/proc/nope", "--download"],
     "cannot create the folder /proc/nope/MNIST/raw"),
    (["explain", "x", "--bogus", "x=1"], None),  # an unknown option: argparse's usage error
]


@pytest.mark.parametrize("argv, message", REPORTED, ids=[a[0] for a, _ in REPORTED])
def test_reported_crashes_are_one_line_and_exit_2(argv, message, tmp_path):
    done = flowgrad(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    if message is not None:
        assert message in one_error_line(done.stderr, argv[0])
    # A failed run leaves no folder behind (train made big/ and big/run itself).
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_explain_takes_options_before_or_after_the_values_and_long_flat_formulas(tmp_path):
    flat = "+".join(["x"] * 51)
    for argv in (["explain", flat, "x=1", "--json"], ["explain", flat, "--json", "x=1"],
                 ["explain", "--json", flat, "x=1"]):
        done = flowgrad(*argv, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert '"value": 51.0' in done.stdout
    done = flowgrad("explain", "x*y", "x=2", "--max-paths", "1", "y=3", cwd=tmp_path)
    assert done.returncode == 0 and "f = 6" in done.stdout


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    # 141 as a program stopped by SIGPIPE; argparse's help swallows the error itself (0).
    for argv, code in ((["explain", "+".join(["x"] * 60), "x=1"], 141), (["--help"], 0)):
        proc = subprocess.Popen([sys.executable, "-m", "flowgrad", *argv], cwd=tmp_path,
                                env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()  # as `| head` does when it has read enough
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == code, err
        assert err == ""


def _interrupt_while_importing(folder):
    # -X importtime reports each import as it finishes: interrupt right after flowgrad's
    # first module, while NumPy and the rest are still loading.
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "flowgrad", "train",
                             "--out", "run"], cwd=folder, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    rest = []
    for line in proc.stderr:
        if line.startswith("import time:"):
            if line.rstrip().endswith("flowgrad._interrupt"):
                proc.send_signal(signal.SIGINT)
            continue
        rest.append(line)
    return proc.wait(timeout=60), "".join(rest)


def test_ctrl_c_while_importing_is_one_line_and_130(tmp_path):
    # A signal's arrival is timing: on a loaded machine Python may deliver it inside a
    # finalizer, which swallows it ("Exception ignored in ..."), and the command then runs
    # to the end. Up to three tries; every interrupt that is delivered must be one line.
    for attempt in range(3):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        code, err = _interrupt_while_importing(folder)
        if code == 130:
            assert err == "flowgrad: interrupted\n"
            assert not (folder / "run").exists()
            return
        assert code == 0, err  # swallowed: the command finished normally
    pytest.fail("three SIGINTs during import were all swallowed")


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.5])
def test_ctrl_c_during_training_is_one_line_and_leaves_a_consistent_folder(tmp_path, delay):
    proc = subprocess.Popen([sys.executable, "-m", "flowgrad", "train", "--epochs", "500",
                             "--out", "run", "-q"], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].endswith("interrupted"), err
    run = tmp_path / "run"
    if run.exists():  # interrupted after an epoch: checkpoint and metrics agree
        import flowgrad as fg

        epoch = fg.load(run / "model.npz")["epoch"]
        rows = (run / "metrics.csv").read_text().splitlines()[1:]
        assert len(rows) == epoch and rows[-1].startswith(f"{epoch},")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_predict_refuses_fifos_and_decompression_bombs_in_bounded_memory(tmp_path):
    assert main(["train", "--epochs", "1", "-q", "--out", str(tmp_path / "run")]) == 0
    fifo = tmp_path / "digit.png"
    os.mkfifo(fifo)
    done = flowgrad("predict", "run", "digit.png", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "it is a named pipe (FIFO)" in one_error_line(done.stderr, "predict")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_bomb(8000, 8000))  # 64 megapixels in about 100 kB
    assert bomb.stat().st_size < 200_000
    done = subprocess.run([sys.executable, "-c", _PEAK.format(argv=["predict", "run",
                                                                    "bomb.png"])],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    code, peak_kb = map(int, done.stdout.split())
    assert code == 2
    assert "8000x8000 pixels, more than flowgrad reads" in one_error_line(done.stderr,
                                                                          "predict")
    assert peak_kb < 400_000  # decoding it would take 64 MB per byte of each of 4 copies
    # A checkpoint bomb in the run folder is refused the same way (see
    # test_checkpoint_safety.py for the format itself).


_PEAK = """
import resource, sys
from flowgrad.cli import main
code = main({argv!r})
print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _png_bomb(width: int, height: int) -> bytes:
    """A valid grey PNG of width x height zeros, compressed about 1000:1."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    packer = zlib.compressobj(9)
    row = b"\x00" + bytes(width)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
            + chunk(b"IEND", b""))


# ---------------------------------------------------------------- every subcommand, bad values

BAD = [
    ["graph", "--seed", str(2**64)], ["graph", "--hidden", "0"], ["graph", "--batch", "0"],
    ["graph", "--lr", "nan"], ["graph", "--lr", "inf"], ["graph", "--out", ""],
    ["graph", "--out", "g.jpg"], ["graph", "--out", "nowhere/g.svg"],
    ["graph", "--out", "folder.svg"],
    ["descent", "--steps", "0"], ["descent", "--steps", "100000000"],
    ["descent", "--tol", "nan"], ["descent", "--fps", "0"],
    ["descent", "--frames", "1"], ["descent", "--dpi", "5"], ["descent", "--window", "1,0,0,1"],
    ["descent", "--start=nan,1"], ["descent", "--lr=-1"], ["descent", "--lr", "abc"],
    ["descent", "--out", ""], ["descent", "--out", "x.jpg"], ["descent", "--gif", "x.png"],
    ["descent", "--out", "nowhere/d.png"], ["descent", "basins", "--n-starts", "0"],
    ["descent", "1d", "--function", "__import__('os')"], ["descent", "--seed", "-5"],
    ["derivatives", "--domain", "1"], ["derivatives", "--domain=nan,1"],
    ["derivatives", "--domain=2,1"], ["derivatives", "--points", "5"],
    ["derivatives", "--dpi", "1"], ["derivatives", "--out", ""],
    ["derivatives", "--functions", "nope"], ["derivatives", "--formula", "x+"],
    ["explain", "x+", "x=1"], ["explain", "x"], ["explain", "x", "y=1"],
    ["explain", "x", "x=nan"], ["explain", "x", "x=1", "x=2"],
    ["explain", "x", "x=1", "--max-paths", "-1"], ["explain", "x", "x=1", "--graph", "g.jpg"],
    ["explain", "x", "x=1", "--graph", "nowhere/g.svg"],
    ["explain", "-".join(["x"] * 300), "x=1"], ["explain", "x" + "**x" * 60, "x=1"],
    ["train", "--hidden", "0"], ["train", "--epochs", "0"], ["train", "--batch-size", "0"],
    ["train", "--lr", "nan"], ["train", "--lr", "0"], ["train", "--seed", "-1"],
    ["train", "--out", ""], ["train", "--out", "model.npz"], ["train", "--nproc", "0"],
    ["train", "--out", "file.txt"],
    ["evaluate", "missing-run"], ["predict", "missing-run", "x.png"],
    ["explore", "--port", "-1"], ["explore", "--port", "70000"],
    ["bench", "--json", "nowhere/x.json"], ["bench", "--markdown", "folder.svg"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_values_are_one_error_line_and_exit_2(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.svg").mkdir()
    (tmp_path / "file.txt").write_text("not a folder")
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    one_error_line(captured.err, argv[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder.svg"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--epochs", "1", "-q", "--out", str(run)]) == 0
    return run


RUN_BAD = [
    (["evaluate", "{run}", "--out", ""], "--out: the path is empty"),
    (["evaluate", "{run}", "--out", "x.jpg"], "--out: x.jpg is neither a folder nor a .png"),
    (["evaluate", "{run}", "--out", "nowhere/deeper"], "--out: folder nowhere does not exist"),
    (["evaluate", "{run}", "--out", "nowhere/c.png"], "folder nowhere does not exist"),
    (["evaluate", "{run}", "--out", "file.txt"], "--out: file.txt is neither a folder"),
    (["predict", "{run}", "missing.png"], "image missing.png does not exist"),
    (["predict", "{run}", "file.txt"], "cannot read image file.txt"),
    (["predict", "{run}", "folder.svg"], "it is a folder"),
    (["train", "--epochs", "1", "--out", "{run}"], "already holds a run"),
]


@pytest.mark.parametrize("argv, message", RUN_BAD, ids=[" ".join(a) for a, _ in RUN_BAD])
def test_bad_values_about_a_run_name_the_problem(argv, message, trained, tmp_path, monkeypatch,
                                                 capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.svg").mkdir()
    (tmp_path / "file.txt").write_text("not an image")
    before = sorted(p.name for p in trained.iterdir())
    assert main([a.format(run=trained) for a in argv]) == 2
    line = one_error_line(capsys.readouterr().err, argv[0])
    assert message in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder.svg"]
    assert sorted(p.name for p in trained.iterdir()) == before


def test_evaluate_out_makes_only_the_one_folder_named(trained, tmp_path, capsys):
    assert main(["evaluate", str(trained), "--out", str(tmp_path / "pics")]) == 0
    assert (tmp_path / "pics" / "confusion.png").is_file()
    capsys.readouterr()


def test_an_unforeseen_error_is_one_line_with_exit_1(monkeypatch, capsys):
    import flowgrad.cli.explain as explain

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(explain, "run", broken)
    assert main(["explain", "x", "x=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flowgrad explain: internal error: ZeroDivisionError: division by "
                          "zero") and err.count("\n") == 1
    monkeypatch.setenv("FLOWGRAD_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["explain", "x", "x=1"])


def test_interrupt_hook_is_only_installed_in_the_command():
    code = ("import sys; sys.argv[0] = {name!r}; import flowgrad; "
            "raise KeyboardInterrupt")
    for name, expected in (("flowgrad", 130), ("myscript.py", None)):
        done = subprocess.run([sys.executable, "-c", code.format(name=name)], env=ENV,
                              capture_output=True, text=True, timeout=60)
        if expected is None:  # another program keeps Python's own behaviour
            assert "Traceback" in done.stderr and "KeyboardInterrupt" in done.stderr
        else:
            assert done.returncode == expected and done.stderr == "flowgrad: interrupted\n"


def test_help_of_every_subcommand_works(capsys):
    from flowgrad.cli import COMMANDS

    for name in COMMANDS:
        assert main([name, "--help"]) == 0
    assert "usage" in capsys.readouterr().out


def test_seed_range_matches_pytorch():
    import flowgrad as fg

    fg.manual_seed(-1)
    a = fg.randn(3).numpy()
    fg.manual_seed(2**64 - 2)
    assert np.array_equal(a, fg.randn(3).numpy())  # -1 means 2**64 - 2, as in PyTorch
    with pytest.raises(ValueError, match="seed must be in"):
        fg.manual_seed(2**64)
    with pytest.raises(TypeError, match="seed must be an int"):
        fg.manual_seed(1.5)
