"""The one atomic-write helper (flowgrad._atomic) and the writers that use it."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

import flowgrad as fg
from flowgrad._atomic import atomic_path, atomic_write, write_bytes, write_text

SRC = Path(fg.__file__).resolve().parent


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_text_and_bytes_round_trip(tmp_path):
    assert write_text(tmp_path / "a.txt", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
    assert write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_new_file_gets_the_umask_mode_and_a_replaced_file_keeps_its_mode(tmp_path):
    new = write_text(tmp_path / "new.txt", "x")
    assert _mode(new) == 0o666 & ~_umask()
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    os.chmod(kept, 0o640)
    write_text(kept, "new")
    assert kept.read_text() == "new" and _mode(kept) == 0o640
    with atomic_path(kept) as tmp:  # writers that create the file themselves
        tmp.write_text("newer")
    assert kept.read_text() == "newer" and _mode(kept) == 0o640


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    target = tmp_path / "real.npz"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    link = tmp_path / "link.npz"
    link.symlink_to("real.npz")  # relative, as users make them
    fg.save({"w": fg.tensor([1.0, 2.0])}, link)
    assert link.is_symlink() and os.readlink(link) == "real.npz"
    assert fg.load(target)["w"].numpy().tolist() == [1.0, 2.0]
    assert _mode(target) == 0o600
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "made.txt")
    write_text(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "made.txt").read_text() == "made"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "link.npz", "made.txt",
                                                          "real.npz"]


def test_a_folder_is_refused_naming_the_users_path(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=f"cannot write {folder}: it is a folder") as info:
        fg.save({"a": 1}, folder)
    assert info.value.errno == errno.EISDIR
    link = tmp_path / "to-folder"
    link.symlink_to(folder)
    with pytest.raises(IsADirectoryError, match=f"cannot write {link}: it is a folder"):
        write_text(link, "x")
    assert list(folder.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "to-folder"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_and_a_device_are_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # Opening a FIFO for writing would block forever; the check comes first.
    with pytest.raises(OSError, match=r"cannot write .*pipe: it is a named pipe \(FIFO\)"):
        write_bytes(fifo, b"x")
    if Path("/dev/null").exists():
        with pytest.raises(OSError, match="/dev/null: it is a character device"):
            fg.save({"a": 1}, "/dev/null")
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_a_missing_folder_is_named(tmp_path):
    path = tmp_path / "missing" / "a.txt"
    with pytest.raises(FileNotFoundError, match=f"cannot write {path}: folder .*missing does not "
                                                "exist") as info:
        write_text(path, "x")
    assert info.value.errno == errno.ENOENT


@pytest.mark.parametrize("how", ["file", "path"])
def test_an_error_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, how):
    path = tmp_path / "c.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        if how == "file":
            with atomic_write(path, binary=False) as fh:
                fh.write("half")
                raise RuntimeError("boom")
        else:
            with atomic_path(path) as tmp:
                tmp.write_text("half")
                raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]


def test_an_os_error_about_the_temporary_file_names_the_users_path(tmp_path):
    path = tmp_path / "fig.png"
    with pytest.raises(OSError) as info:
        with atomic_path(path) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".png"  # writers pick the format
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path)
    assert ".tmp" not in str(info.value) and str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs a non-root POSIX user (root writes anywhere)")
def test_an_unwritable_folder_is_reported_with_the_users_path(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o500)
    try:
        with pytest.raises(PermissionError) as info:
            write_text(folder / "a.txt", "x")
        assert info.value.filename == str(folder / "a.txt") and ".tmp" not in str(info.value)
    finally:
        os.chmod(folder, 0o700)


def test_path_writers_fsync_before_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"),
                                                     real_replace(a, b))[1])
    with atomic_path(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"x")
    assert calls[:2] == ["fsync", "replace"]


def test_every_writer_goes_through_the_one_helper():
    # One copy: no other module renames temporary files into place on its own.
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "_atomic.py":
            continue
        text = path.read_text(encoding="utf-8")
        if "os.replace(" in text or "mkstemp(" in text or "os.rename(" in text:
            offenders.append(str(path.relative_to(SRC)))
    assert offenders == []
