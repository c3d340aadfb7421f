"""Checkpoints that cannot be tricked or lose data, with real files: every key round-trips,
fg.load bounds what it decompresses and reads only what its manifest names, hostile
manifests and members are refused with one clear error naming the file, and fg.save
writes through symlinks, keeps permission bits and refuses what is not a regular file."""

from __future__ import annotations

import io
import json
import os
import stat
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

import flowgrad as fg
from flowgrad.serialize import MANIFEST_KEY, CheckpointError

ODD_KEYS = ["x", "x.npy", "x.npy.npy", MANIFEST_KEY, MANIFEST_KEY + ".npy", "x~1", "a/b",
            "a%2Fb", "../up", "", " ", ".npy", "PK\x03\x04", "\u00e9t\u00e9", "\ud800"]


def test_every_key_round_trips_whatever_its_name(tmp_path):
    state = {key: np.full(2, i, dtype=np.int64) for i, key in enumerate(ODD_KEYS)}
    state["nested"] = {key: fg.tensor([float(i)]) for i, key in enumerate(ODD_KEYS)}
    fg.save(state, tmp_path / "odd.npz")
    back = fg.load(tmp_path / "odd.npz")
    assert list(back) == list(state)
    for i, key in enumerate(ODD_KEYS):
        assert back[key].tolist() == [i, i], key
        assert back["nested"][key].tolist() == [float(i)], key


# ---------------------------------------------------------------- hostile files

def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(path, members: dict[str, bytes], deflate: set[str] = frozenset()) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, zipfile.ZIP_DEFLATED if name in deflate else
                        zipfile.ZIP_STORED)


def _npy(array, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=allow_pickle)
    return buf.getvalue()


def _manifest_bytes(manifest: dict) -> bytes:
    return _npy(np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8))


def _tampered(tmp_path, edit, name="t.npz"):
    """A real checkpoint whose manifest ``edit(manifest)`` changed."""
    path = tmp_path / name
    fg.save({"w": fg.tensor([1.0, 2.0]), "step": 3}, path)
    members = _members(path)
    manifest = json.loads(np.load(io.BytesIO(members[MANIFEST_KEY + ".npy"])).tobytes())
    edit(manifest)
    members[MANIFEST_KEY + ".npy"] = _manifest_bytes(manifest)
    _write_zip(path, members)
    return path


def _zeros_member(zf: zipfile.ZipFile, name: str, count: int) -> None:
    """Write ``count`` float64 zeros as a deflated .npy member, in chunks (no big buffer)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (count,)})
    chunk = bytes(1 << 20)
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as member:
        member.write(header.getvalue())
        left = count * 8
        while left:
            n = min(left, len(chunk))
            member.write(chunk[:n])
            left -= n


def _bomb(path, count: int, named: bool) -> None:
    """A checkpoint with a 'w' member of ``count`` zeros, deflated (about 1000:1)."""
    fg.save({"w": np.zeros(2)}, path)
    members = _members(path)
    manifest = json.loads(np.load(io.BytesIO(members[MANIFEST_KEY + ".npy"])).tobytes())
    if named:
        manifest["tree"]["items"][0][1]["shape"] = [count]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST_KEY + ".npy", _manifest_bytes(manifest))
        if named:
            _zeros_member(zf, "w.npy", count)
        else:
            zf.writestr("w.npy", members["w.npy"])
            _zeros_member(zf, "junk.npy", count)


@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_a_decompression_bomb_is_never_inflated(tmp_path, named):
    path = tmp_path / "bomb.npz"
    _bomb(path, 8 << 20, named)  # 64 MB of zeros in a file of about 64 kB
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        if named:
            with pytest.raises(CheckpointError, match=r"bomb\.npz.*inflate from \d+ to "
                                                      r"67108992 bytes.*decompression bomb"):
                fg.load(path)
        else:  # a member the manifest does not name is never read
            assert fg.load(path)["w"].tolist() == [0.0, 0.0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_a_member_larger_than_the_manifest_says_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.npz"
    fg.save({"w": np.zeros(2)}, path)
    members = _members(path)
    members["w.npy"] = _npy(np.zeros(100_000))  # the manifest still says shape [2]
    _write_zip(path, members)
    with pytest.raises(CheckpointError, match=r"member 'w.npy' is <f8\[100000\], the manifest "
                                              r"says <f8\[2\]"):
        fg.load(path)


def test_a_member_whose_size_disagrees_with_its_header_is_refused(tmp_path):
    path = tmp_path / "pad.npz"
    fg.save({"w": np.zeros(2)}, path)
    members = _members(path)
    members["w.npy"] += bytes(1000)
    _write_zip(path, members)
    with pytest.raises(CheckpointError, match=r"declares \d+ bytes, but its header describes"):
        fg.load(path)


def test_members_that_are_not_arrays_are_refused(tmp_path):
    pickled = tmp_path / "pickled.npz"
    _write_zip(pickled, {"a.npy": _npy(np.array([{"x": 1}], dtype=object), allow_pickle=True)})
    with pytest.raises(CheckpointError, match="holds Python objects"):
        fg.load(pickled)
    text = tmp_path / "text.npz"
    _write_zip(text, {"a.npy": b"print('hello')"})
    with pytest.raises(CheckpointError, match="'a.npy' is not a NumPy array"):
        fg.load(text)
    stray = tmp_path / "stray.npz"
    _write_zip(stray, {"a.npy": _npy(np.zeros(1)), "run.sh": b"rm -rf /"})
    with pytest.raises(CheckpointError, match="'run.sh' is not a .npy array"):
        fg.load(stray)
    # With a manifest, members it does not name are ignored, never read.
    path = _tampered(tmp_path, lambda m: None)
    members = _members(path)
    members["run.sh"] = b"rm -rf /"
    _write_zip(path, members)
    assert fg.load(path)["step"] == 3


def _leaf(manifest, key):
    return next(node for k, node in manifest["tree"]["items"] if k == key)


BAD_MANIFESTS = [
    (lambda m: _leaf(m, "step").update(v="3"), "is a int holding '3'"),
    (lambda m: _leaf(m, "step").update(v=True), "is a int holding True"),
    (lambda m: _leaf(m, "step").update(t="float", v="lots"), "is a float holding 'lots'"),
    (lambda m: _leaf(m, "w").update(member=5), "names no member"),
    (lambda m: _leaf(m, "w").update(shape=[-2]), "invalid shape"),
    (lambda m: _leaf(m, "w").update(shape="2"), "invalid shape"),
    (lambda m: _leaf(m, "w").update(dtype="|O"), "object dtype"),
    (lambda m: _leaf(m, "w").update(dtype="not a dtype"), "unknown dtype"),
    (lambda m: _leaf(m, "w").update(requires_grad="yes"), "requires_grad"),
    (lambda m: _leaf(m, "w").update(member="gone"), "member 'gone' named by the manifest is "
                                                    "missing"),
    (lambda m: m["tree"]["items"].append(["again", dict(_leaf(m, "w"))]), "named twice"),
    (lambda m: m["tree"].update(items={"w": 1}), "dict without items"),
    (lambda m: m["tree"]["items"].append(["k"]), r"not \[key, value\]"),
    (lambda m: m["tree"]["items"].append([1.5, {"t": "none"}]), r"not \[key, value\]"),
    (lambda m: m["tree"].update(t="set"), "unknown node type 'set'"),
    (lambda m: m.update(tree=[1, 2]), "is not a node"),
    (lambda m: m.update(version="1"), "newer"),
]


@pytest.mark.parametrize("edit, message", BAD_MANIFESTS, ids=[m for _, m in BAD_MANIFESTS])
def test_a_manifest_with_wrong_leaf_types_is_refused(tmp_path, edit, message):
    path = _tampered(tmp_path, edit)
    with pytest.raises(CheckpointError, match=message) as info:
        fg.load(path)
    assert str(path) in str(info.value)


def test_a_deeply_nested_manifest_is_one_clear_error(tmp_path):
    path = tmp_path / "deep.npz"
    depth = 100_000
    text = '{"t":"list","items":[' * depth + '{"t":"none"}' + "]}" * depth
    _write_zip(path, {MANIFEST_KEY + ".npy": _npy(np.frombuffer(
        ('{"format":"flowgrad.checkpoint","version":1,"tree":' + text + "}").encode(),
        dtype=np.uint8))})
    with pytest.raises(CheckpointError, match="deep.npz"):
        fg.load(path)


# ---------------------------------------------------------------- destinations

def test_save_through_a_symlink_writes_the_target(tmp_path):
    target = tmp_path / "real.npz"
    link = tmp_path / "link.npz"
    fg.save({"v": 1}, target)
    link.symlink_to(target)
    fg.save({"v": 2}, link)
    assert link.is_symlink() and fg.load(target) == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "real.npz"]


def test_save_keeps_the_destinations_permission_bits(tmp_path):
    path = tmp_path / "private.npz"
    fg.save({"v": 1}, path)
    os.chmod(path, 0o600)
    fg.save({"v": 2}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and fg.load(path) == {"v": 2}


def _finishes(fn, seconds=10.0):
    """Run ``fn`` in a thread; return what it raised (it must not block)."""
    outcome: list = []

    def run():
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, "blocked"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_non_regular_destinations_and_sources_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    for call in (lambda: fg.save({"v": 1}, fifo), lambda: fg.load(fifo)):
        exc = _finishes(call)
        assert isinstance(exc, OSError) and "named pipe (FIFO)" in str(exc)
        assert str(fifo) in str(exc)
    folder = tmp_path / "dir.npz"
    folder.mkdir()
    for call in (lambda: fg.save({"v": 1}, folder), lambda: fg.load(folder)):
        with pytest.raises(IsADirectoryError, match="dir.npz.*folder"):
            call()
    if os.path.exists("/dev/null"):
        with pytest.raises(OSError, match="/dev/null: it is a character device"):
            fg.save({"v": 1}, "/dev/null")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.npz", "pipe.npz"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_errors_name_the_users_path_never_a_temporary_file(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    os.chmod(folder, 0o500)
    try:
        with pytest.raises(PermissionError) as info:
            fg.save({"v": 1}, folder / "c.npz")
    finally:
        os.chmod(folder, 0o700)
    assert str(folder / "c.npz") in str(info.value) and ".tmp" not in str(info.value)
