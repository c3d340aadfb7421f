"""fg.data: TensorDataset, DataLoader, the embedded digits, IDX parsing and MNIST loading."""

from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest

import flowgrad as fg
from flowgrad.data import (
    DataLoader,
    TensorDataset,
    digits_split,
    encode_idx,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    parse_idx,
    read_idx,
    train_test_split,
    write_idx,
)

# ----------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file made by hand (independently of flowgrad's encoder)."""
    big = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    head = struct.pack(">BBBB", 0, 0, code, array.ndim)
    head += struct.pack(f">{array.ndim}I", *array.shape)
    return head + np.asarray(array, dtype=big).tobytes()


def fake_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # both ends of the range present
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def put_files(folder, images, labels, split="train", gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for stem, arr in ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte",
                                                                 labels)):
        data = idx_bytes(arr)
        (folder / (stem + ext)).write_bytes(gzip.compress(data) if gz else data)


def epoch_labels(loader) -> list[np.ndarray]:
    return [batch[-1].numpy().copy() for batch in loader]


# ------------------------------------------------------------------------ TensorDataset


def test_tensor_dataset_items_and_len():
    x = np.arange(12.0, dtype=np.float32).reshape(6, 2)
    y = np.arange(6)
    ds = TensorDataset(x, fg.tensor(y))
    assert len(ds) == 6
    item = ds[4]
    assert isinstance(item, tuple) and len(item) == 2
    np.testing.assert_array_equal(item[0], [8.0, 9.0])
    assert item[1] == 4
    rows = ds[np.array([5, 0])]
    np.testing.assert_array_equal(rows[1], [5, 0])


def test_tensor_dataset_length_mismatch_names_lengths():
    with pytest.raises(ValueError, match=r"array 0: 5, array 1: 4"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))


def test_tensor_dataset_rejects_nothing_and_scalars():
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(np.float32(3.0))


# --------------------------------------------------------------------------- DataLoader


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("n,batch_size", [(10, 3), (12, 4), (5, 8), (1, 1)])
def test_every_sample_exactly_once_per_epoch(shuffle, n, batch_size):
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    y = np.arange(n)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, seed=0)
    assert len(loader) == -(-n // batch_size)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader)
        seen = np.concatenate([yb.numpy() for _, yb in batches])
        np.testing.assert_array_equal(np.sort(seen), y)
        if not shuffle:
            np.testing.assert_array_equal(seen, y)
        sizes = [len(yb.numpy()) for _, yb in batches]
        assert sizes[:-1] == [batch_size] * (len(sizes) - 1)
        for xb, yb in batches:  # rows stay paired with their labels
            np.testing.assert_array_equal(xb.numpy()[:, 0], yb.numpy())


@pytest.mark.parametrize("shuffle", [False, True])
def test_drop_last(shuffle):
    y = np.arange(10)
    loader = DataLoader(TensorDataset(y), batch_size=4, shuffle=shuffle, drop_last=True,
                        seed=3)
    assert len(loader) == 2
    batches = [b[0].numpy() for b in loader]
    assert [len(b) for b in batches] == [4, 4]
    seen = np.concatenate(batches)
    assert len(np.unique(seen)) == 8
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(8))
    exact = DataLoader(TensorDataset(np.arange(8)), batch_size=4, drop_last=True)
    assert len(exact) == 2 and len(list(exact)) == 2
    assert len(DataLoader(TensorDataset(np.arange(3)), batch_size=4, drop_last=True)) == 0
    assert list(DataLoader(TensorDataset(np.arange(3)), batch_size=4, drop_last=True)) == []


def test_shuffle_reproducible_with_seed_and_new_each_epoch():
    ds = TensorDataset(np.arange(50))
    a = DataLoader(ds, batch_size=7, shuffle=True, seed=42)
    b = DataLoader(ds, batch_size=7, shuffle=True, seed=42)
    a1, a2 = np.concatenate(epoch_labels(a)), np.concatenate(epoch_labels(a))
    b1, b2 = np.concatenate(epoch_labels(b)), np.concatenate(epoch_labels(b))
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2), "each epoch must draw a new permutation"
    assert not np.array_equal(a1, np.arange(50))
    c1 = np.concatenate(epoch_labels(DataLoader(ds, batch_size=7, shuffle=True, seed=43)))
    assert not np.array_equal(a1, c1)


def test_shuffle_without_seed_follows_manual_seed():
    ds = TensorDataset(np.arange(40))
    fg.manual_seed(7)
    first = np.concatenate(epoch_labels(DataLoader(ds, batch_size=5, shuffle=True)))
    fg.manual_seed(7)
    again = np.concatenate(epoch_labels(DataLoader(ds, batch_size=5, shuffle=True)))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, np.arange(40))


def test_batches_are_tensors_with_dtypes_kept_and_copied():
    x = np.ones((6, 2), dtype=np.float32)
    y = np.arange(6, dtype=np.int64)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    xb, yb = next(iter(loader))
    assert isinstance(xb, fg.Tensor) and isinstance(yb, fg.Tensor)
    assert xb.dtype == np.float32 and yb.dtype == np.int64
    assert xb.shape == (4, 2) and yb.shape == (4,)
    assert not xb.requires_grad
    xb.data[...] = 5.0  # a batch is the caller's own memory
    assert x.max() == 1.0


def test_tensor_dataset_fast_path_has_no_per_sample_loop(monkeypatch):
    ds = TensorDataset(np.arange(20.0).reshape(10, 2), np.arange(10))

    def per_sample(self, index):
        raise AssertionError("DataLoader must gather TensorDataset batches by fancy indexing")

    monkeypatch.setattr(TensorDataset, "__getitem__", per_sample)
    batches = list(DataLoader(ds, batch_size=4, shuffle=True, seed=0))
    assert sorted(np.concatenate([yb.numpy() for _, yb in batches]).tolist()) == list(range(10))


class Squares:
    """A generic dataset: (array, int) samples computed on access."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        if not 0 <= i < 7:
            raise IndexError(i)
        return np.array([i, i * i], dtype=np.float32), i


class Named:
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"x": np.full(3, float(i)), "y": i}


def test_generic_dataset_collates_like_tensor_dataset():
    generic = DataLoader(Squares(), batch_size=3, shuffle=True, seed=5)
    table = TensorDataset(np.array([[i, i * i] for i in range(7)], dtype=np.float32),
                          np.arange(7))
    fast = DataLoader(table, batch_size=3, shuffle=True, seed=5)
    for (gx, gy), (fx, fy) in zip(generic, fast, strict=True):
        np.testing.assert_array_equal(gx.numpy(), fx.numpy())
        np.testing.assert_array_equal(gy.numpy(), fy.numpy())
        assert gx.dtype == np.float32 and gy.dtype == np.int64


def test_dict_samples_collate_to_dict_of_tensors():
    batches = list(DataLoader(Named(), batch_size=3))
    assert set(batches[0]) == {"x", "y"}
    np.testing.assert_array_equal(batches[0]["y"].numpy(), [0, 1, 2])
    assert batches[1]["x"].shape == (1, 3)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(np.arange(3)), batch_size=bad)


def test_dataset_without_length_is_rejected():
    with pytest.raises(TypeError, match="__len__"):
        DataLoader(iter(range(3)))


# ------------------------------------------------------------------------------- digits


def test_load_digits_shape_dtype_range_and_balance():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    # pixel / 16 of integer pixels 0..16
    np.testing.assert_array_equal(images * 16, np.round(images * 16))
    counts = np.bincount(labels, minlength=10)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    np.testing.assert_array_equal(labels[:10], np.arange(10))
    first_row = [0, 0, 5, 13, 9, 1, 0, 0]  # scikit-learn's digits.images[0][0] * 1
    np.testing.assert_array_equal(images[0, 0] * 16, first_row)


def test_load_digits_returns_fresh_arrays():
    images, labels = load_digits()
    images[:] = -1
    labels[:] = -1
    again, again_labels = load_digits()
    assert again.min() == 0.0 and again_labels.min() == 0


def test_digits_fixed_split():
    train_idx, test_idx = digits_split()
    assert len(train_idx) == 1438 and len(test_idx) == 359
    assert np.intersect1d(train_idx, test_idx).size == 0
    np.testing.assert_array_equal(np.union1d(train_idx, test_idx), np.arange(1797))
    # Pinned: the held-out set must never move (NumPy-version independent permutation).
    digest = hashlib.sha256(np.asarray(test_idx, dtype=np.int64).tobytes()).hexdigest()
    assert digest == "83ac77e38f69c6509975508efe447b0492dde793cd6876336a89ed4df998808d"
    _, labels = load_digits()
    test_counts = np.bincount(labels[test_idx], minlength=10)
    assert test_counts.min() >= 35 and test_counts.max() <= 37  # stratified: 20% of each

    x_train, y_train = load_digits(split="train")
    x_test, y_test = load_digits(split="test")
    images, _ = load_digits()
    assert x_train.shape == (1438, 8, 8) and x_test.shape == (359, 8, 8)
    np.testing.assert_array_equal(x_test, images[test_idx])
    np.testing.assert_array_equal(y_train, labels[train_idx])
    with pytest.raises(ValueError, match="split"):
        load_digits(split="validation")


def test_train_test_split_generic_and_stratified():
    train, test = train_test_split(100, test_fraction=0.25, seed=3)
    assert len(test) == 25 and len(train) == 75
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(100))
    again = train_test_split(100, test_fraction=0.25, seed=3)
    np.testing.assert_array_equal(again[1], test)
    other = train_test_split(100, test_fraction=0.25, seed=4)
    assert not np.array_equal(other[1], test)

    labels = np.repeat([0, 1, 2], [50, 30, 20])
    _, strat_test = train_test_split(100, 0.1, seed=0, stratify=labels)
    assert np.bincount(labels[strat_test]).tolist() == [5, 3, 2]
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(10, test_fraction=1.0)
    with pytest.raises(ValueError, match="stratify"):
        train_test_split(10, stratify=np.zeros(9))


# ---------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("code,dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
                                        (0x0C, np.int32), (0x0D, np.float32),
                                        (0x0E, np.float64)])
def test_parse_idx_every_type_big_endian(code, dtype):
    values = np.array([[1, -2 if np.dtype(dtype).kind != "u" else 2, 3], [100, 0, 7]],
                      dtype=dtype)
    parsed = parse_idx(idx_bytes(values, code))
    assert parsed.dtype == np.dtype(dtype) and parsed.shape == (2, 3)
    np.testing.assert_array_equal(parsed, values)
    assert encode_idx(values) == idx_bytes(values, code)


def test_parse_idx_reads_big_endian_bytes():
    raw = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 2, 0xFF, 0xFF, 0xFF, 0xFE])
    np.testing.assert_array_equal(parse_idx(raw), [258, -2])


def test_read_idx_gzip_and_plain(tmp_path):
    images, _ = fake_mnist(5, 0)
    (tmp_path / "plain").write_bytes(idx_bytes(images))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "packed_no_suffix").write_bytes(gzip.compress(idx_bytes(images)))
    for name in ("plain", "packed.gz", "packed_no_suffix"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), images)


def test_write_idx_round_trip(tmp_path):
    values = np.arange(-6, 6, dtype=np.int16).reshape(3, 4)
    write_idx(values, tmp_path / "a.gz")
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), values)
    with pytest.raises(TypeError, match="IDX cannot hold"):
        encode_idx(np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("mangle,message", [
    (lambda b: b"\x01" + b[1:], "magic number"),
    (lambda b: b[:2] + b"\x0a" + b[3:], "unknown IDX type code 0x0A"),
    (lambda b: b[:-1], "truncated: dimensions"),
    (lambda b: b + b"\x00", "trailing bytes"),
    (lambda b: b[:9], "truncated IDX header"),
    (lambda b: b[:2], "shorter than the 4-byte magic"),
    (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
])
def test_malformed_idx_names_file_and_problem(tmp_path, mangle, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(mangle(idx_bytes(np.zeros((2, 4, 4), dtype=np.uint8))))
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8).reshape(2, 10, 10)))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------ MNIST loaders


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_layouts(tmp_path, layout, gz):
    images, labels = fake_mnist(6, 1)
    test_images, test_labels = fake_mnist(3, 2)
    folder = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    put_files(folder, images, labels, "train", gz)
    put_files(folder, test_images, test_labels, "t10k", gz)
    x, y = load_mnist(tmp_path)
    assert x.shape == (6, 28, 28) and x.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x, images.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    assert x.min() == 0.0 and x.max() == 1.0
    xt, yt = load_mnist(str(tmp_path), train=False)
    assert xt.shape == (3, 28, 28)
    np.testing.assert_array_equal(yt, test_labels)


def test_load_fashion_mnist_uses_its_own_folder(tmp_path):
    images, labels = fake_mnist(4, 3)
    put_files(tmp_path / "FashionMNIST" / "raw", images, labels)
    x, y = load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(FileNotFoundError):
        load_mnist(tmp_path)


def test_missing_files_name_paths_and_suggest_download(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path, train=False)
    message = str(info.value)
    assert "download=True" in message
    assert str(tmp_path / "t10k-images-idx3-ubyte.gz") in message
    assert str(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte") in message


def test_default_root_is_flowgrad_cache(tmp_path, monkeypatch):
    images, labels = fake_mnist(2, 4)
    put_files(tmp_path / "MNIST" / "raw", images, labels)
    monkeypatch.setenv("FLOWGRAD_CACHE", str(tmp_path))
    np.testing.assert_array_equal(load_mnist()[1], labels)


def test_mismatched_counts_and_wrong_kinds(tmp_path):
    images, labels = fake_mnist(5, 5)
    put_files(tmp_path, images, labels[:4])
    with pytest.raises(ValueError, match="5 images but .* 4 labels"):
        load_mnist(tmp_path)
    other = tmp_path / "other"
    put_files(other, labels, labels)  # a label file where images belong
    with pytest.raises(ValueError, match="expected uint8 images"):
        load_mnist(other)
