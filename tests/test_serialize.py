"""fg.save / fg.load: exact round trips without pickle, atomic writes, corrupt-file errors."""

from __future__ import annotations

import json
import math
import os
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import flowgrad as fg
from flowgrad import serialize
from flowgrad.serialize import CheckpointError, atomic_write


def assert_same(a, b, where="state"):
    """Exact structural equality: types, dtypes, shapes, values (NaN equal to NaN)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, fg.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.requires_grad == b.requires_grad, where
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=where)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert type(k) is type(next(kk for kk in b if kk == k and type(kk) is type(k)))
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    elif isinstance(a, float):
        assert a == b and math.copysign(1, a) == math.copysign(1, b), where
    else:
        assert a == b, where


def rich_state():
    rng = np.random.default_rng(0)
    return {
        "model": {
            "fc1.weight": fg.tensor(rng.standard_normal((4, 3)).astype(np.float32),
                                    requires_grad=True),
            "fc1.bias": fg.tensor(np.zeros(4, dtype=np.float64)),
            "counts": fg.tensor(np.array([1, 2, 3], dtype=np.int64)),
        },
        "arrays": {
            str(dt): (rng.standard_normal(5) * 50).astype(dt)
            for dt in ["uint8", "int8", "int16", "int32", "int64", "float16", "float32",
                       "float64", "complex64"]
        },
        "flags": np.array([True, False, True]),
        "names": np.array(["a", "bcd"]),
        "zero_d": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "np_scalars": [np.float32(0.1), np.int64(-7), np.bool_(True)],
        "python": {"int": 3, "big": 2**100, "neg": -5, "float": 0.1, "negzero": -0.0,
                   "inf": float("inf"), "ninf": float("-inf"), "nan": float("nan"),
                   "true": True, "false": False, "none": None, "text": "héllo / wörld.",
                   "empty_str": ""},
        "sequences": {"list": [1, 2.5, 3], "tuple": (0.9, 0.999), "empty": [], "nested":
                      [(1, [2, (3,)]), {"k": [fg.tensor([1.0])]}]},
        "odd keys": {"a.b": 1, "a/b": 2, "a%2Fb": 3, "": 4, "file": np.ones(2),
                     "__flowgrad_manifest__": np.zeros(1), 0: np.arange(2), "0": np.arange(3),
                     -1: "neg", True: "bool key", None: "none key"},
    }


def test_round_trip_is_exact(tmp_path):
    state = rich_state()
    path = tmp_path / "ckpt.npz"
    fg.save(state, path)
    assert_same(state, fg.load(path))


def test_optimizer_state_round_trip_keeps_int_keys(tmp_path):
    state = {
        "state": {0: {"step": 5, "exp_avg": np.full(3, 0.25, dtype=np.float32),
                      "exp_avg_sq": fg.tensor(np.full(3, 1e-8, dtype=np.float32))},
                  1: {"step": 5, "momentum_buffer": None}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8,
                          "weight_decay": 0, "nesterov": False, "params": [0, 1]}],
    }
    path = tmp_path / "opt.ckpt"
    fg.save({"optimizer": state, "epoch": 2}, path)
    back = fg.load(path)
    assert list(back["optimizer"]["state"]) == [0, 1]
    assert all(type(k) is int for k in back["optimizer"]["state"])
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert_same({"optimizer": state, "epoch": 2}, back)


def test_loaded_values_are_independent_of_the_saved_ones(tmp_path):
    w = fg.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    fg.save({"w": w}, tmp_path / "c")
    back = fg.load(tmp_path / "c")["w"]
    back.data[...] = 7.0
    assert w.numpy().tolist() == [1.0, 1.0, 1.0]
    assert back.is_leaf and back.grad is None


def test_file_is_a_plain_npz_readable_without_pickle(tmp_path):
    path = tmp_path / "model.npz"
    fg.save({"model": {"fc1.weight": fg.tensor(np.eye(2, dtype=np.float32))}, "step": 1}, path)
    with np.load(path, allow_pickle=False) as npz:
        assert "model/fc1.weight" in npz.files
        np.testing.assert_array_equal(npz["model/fc1.weight"], np.eye(2))
        manifest = json.loads(npz["__flowgrad_manifest__"].tobytes())
    assert manifest["format"] == "flowgrad.checkpoint" and manifest["version"] == 1


def test_exact_path_no_extension_added(tmp_path):
    fg.save({"a": 1}, tmp_path / "model.ckpt")
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*absent does not exist"):
        fg.save({"a": 1}, tmp_path / "absent" / "c.npz")


def test_plain_numpy_npz_loads_as_dict(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.arange(3), b=np.ones(2, dtype=np.float32))
    back = fg.load(path)
    assert sorted(back) == ["b", "w"]
    np.testing.assert_array_equal(back["w"], np.arange(3))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file at .*nope.npz"):
        fg.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("bad,error", [
    ({"s": {1, 2}}, TypeError),
    ({"o": np.array([object()], dtype=object)}, TypeError),
    ({(1, 2): 3}, TypeError),
    ({"f": 1.5j}, TypeError),
])
def test_unsupported_values_raise_and_write_nothing(tmp_path, bad, error):
    path = tmp_path / "c.npz"
    fg.save({"ok": 1}, path)
    before = path.read_bytes()
    with pytest.raises(error, match="cannot save"):
        fg.save({"outer": bad}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]


def test_unsupported_value_message_gives_key_path(tmp_path):
    with pytest.raises(TypeError, match=r"\['model'\]\['layers'\]\[1\]"):
        fg.save({"model": {"layers": [1, {2}]}}, tmp_path / "c")


def test_self_containing_state_is_rejected(tmp_path):
    state: dict = {"a": []}
    state["a"].append(state)
    with pytest.raises(ValueError, match="contains itself"):
        fg.save(state, tmp_path / "c")


# ------------------------------------------------------------------- corruption detection


def saved(tmp_path):
    path = tmp_path / "c.npz"
    state = {"w": fg.tensor(np.arange(64, dtype=np.float32)), "step": 9, "lr": 0.5,
             "b": np.full(16, 3, dtype=np.int16)}
    fg.save(state, path)
    return path, state


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1, -22])
def test_truncated_file_is_reported(tmp_path, keep):
    path, _ = saved(tmp_path)
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data) if keep else 0
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match="corrupt or truncated|corrupt") as info:
        fg.load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_flipped_byte_in_array_data_is_reported(tmp_path):
    path, state = saved(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.find(np.arange(64, dtype=np.float32).tobytes())
    assert at > 0
    data[at + 100] ^= 0x01  # one bit of one float
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC|corrupt"):
        fg.load(path)


def test_flipped_byte_in_manifest_is_reported(tmp_path):
    path, _ = saved(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.find(b'"format"')
    assert at > 0
    data[at + 2] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        fg.load(path)


def test_any_single_byte_flip_either_fails_cleanly_or_changes_nothing(tmp_path):
    path, state = saved(tmp_path)
    original = path.read_bytes()
    detected = 0
    for pos in range(0, len(original), 3):
        data = bytearray(original)
        data[pos] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            back = fg.load(path)
        except CheckpointError as exc:
            assert str(path) in str(exc)
            detected += 1
        else:  # only bytes the reader ignores (e.g. duplicated header fields) may change
            assert_same(state, back)
    assert detected > len(original) // 6


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.txt"):
        fg.load(path)


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "future.npz"
    manifest = json.dumps({"format": "flowgrad.checkpoint", "version": 99,
                           "tree": {"t": "none"}}).encode()
    with open(path, "wb") as fh:
        serialize._write_npz(fh, {"__flowgrad_manifest__": np.frombuffer(manifest, np.uint8)})
    with pytest.raises(CheckpointError, match="newer"):
        fg.load(path)


# ------------------------------------------------------------------------- atomic writes


def test_failure_mid_write_leaves_old_file_intact(tmp_path, monkeypatch):
    path, state = saved(tmp_path)
    before = path.read_bytes()

    def crash(fh, arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(serialize, "_write_npz", crash)
    with pytest.raises(OSError, match="disk full"):
        fg.save({"w": fg.tensor([0.0])}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"], "no temporary file may be left behind"
    monkeypatch.undo()
    assert_same(state, fg.load(path))


def test_failed_rename_leaves_old_file_intact(tmp_path, monkeypatch):
    path, _ = saved(tmp_path)
    before = path.read_bytes()

    def no_rename(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(serialize.os, "replace", no_rename)
    with pytest.raises(OSError, match="rename failed"):
        fg.save({"new": 1}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]


def test_write_is_fsynced_before_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(serialize.os, "fsync", lambda fd: (calls.append("fsync"),
                                                           real_fsync(fd))[1])
    monkeypatch.setattr(serialize.os, "replace", lambda a, b: (calls.append("replace"),
                                                               real_replace(a, b))[1])
    fg.save({"a": 1}, tmp_path / "c")
    assert calls[:2] == ["fsync", "replace"]


def test_atomic_write_text_mode_and_permissions(tmp_path):
    target = tmp_path / "config.json"
    with atomic_write(target, binary=False) as fh:
        fh.write('{"ok": true}')
    assert json.loads(target.read_text()) == {"ok": True}
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_checkpoint_members_are_stored_uncompressed(tmp_path):
    path, _ = saved(tmp_path)
    with zipfile.ZipFile(path) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}


# ------------------------------------------------------------------------- properties

# Any code point, lone surrogates included (valid Python str, invalid UTF-8).
_TEXT = st.text(st.characters(exclude_categories=()), max_size=8)
_KEYS = st.one_of(_TEXT, st.integers(-(2**40), 2**40), st.booleans(), st.none())
_DTYPES = st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
                    hnp.floating_dtypes(), hnp.complex_number_dtypes(),
                    hnp.byte_string_dtypes(max_len=4), hnp.unicode_string_dtypes(max_len=4))
_ARRAYS = hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
_TENSORS = hnp.arrays(st.sampled_from([np.float32, np.float64]),
                      hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)).flatmap(
    lambda a: st.booleans().map(lambda rg: fg.tensor(a, requires_grad=rg)))
_LEAVES = st.one_of(_ARRAYS, _TENSORS, _ARRAYS.filter(lambda a: a.ndim == 0).map(lambda a: a[()]),
                    st.integers(-(2**70), 2**70), st.floats(), st.booleans(), st.none(),
                    _TEXT)
_STATES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(st.dictionaries(_KEYS, inner, max_size=4),
                            st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple)),
    max_leaves=12)


def _bits(state, where="state"):
    """Every array-like leaf as (where, dtype, shape, bytes): equal bits, NaN payloads and -0.0
    included, which value comparison alone would not show."""
    out, stack = [], [(where, state)]
    while stack:
        at, x = stack.pop()
        if isinstance(x, fg.Tensor):
            x = x.numpy()
        if isinstance(x, (np.ndarray, np.generic)):
            out.append((at, x.dtype.str, np.shape(x), np.asarray(x).tobytes()))
        elif isinstance(x, dict):
            stack.extend((f"{at}[{k!r}]", v) for k, v in x.items())
        elif isinstance(x, (list, tuple)):
            stack.extend((f"{at}[{i}]", v) for i, v in enumerate(x))
    return sorted(out, key=lambda t: t[0])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=_STATES)
@example(state={"\ud800": np.zeros(2, np.float32), "k": "\udcff"})  # a lone surrogate key
def test_property_any_state_round_trips_exactly(tmp_path_factory, state):
    path = tmp_path_factory.getbasetemp() / "property.npz"  # rewritten by every example
    fg.save({"state": state}, path)
    back = fg.load(path)["state"]
    assert_same(state, back)
    assert _bits(state) == _bits(back)
