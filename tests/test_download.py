"""Verified downloads against a local HTTP server on 127.0.0.1 (no test touches the internet)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import re
import socket
import threading
from collections import Counter

import numpy as np
import pytest

from flowgrad.data import (
    FASHION_MNIST,
    MNIST,
    ChecksumError,
    DownloadError,
    download_file,
    load_fashion_mnist,
    load_mnist,
)
from flowgrad.data.idx import encode_idx


class Routes:
    """What the test server answers: path -> (behaviour, body)."""

    def __init__(self):
        self.table: dict[str, tuple[str, bytes]] = {}
        self.hits: Counter = Counter()


def make_handler(routes: Routes):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            routes.hits[self.path] += 1
            behaviour, body = routes.table.get(self.path, ("missing", b""))
            if behaviour == "missing":
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if behaviour == "cut":
                # Announce the whole body, send half, hang up.
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep test output clean
            pass

    return Handler


@pytest.fixture
def server():
    routes = Routes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(routes))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    routes.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield routes
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def dataset(n=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    files = {"train-images-idx3-ubyte.gz": gzip.compress(encode_idx(images), mtime=0),
             "train-labels-idx1-ubyte.gz": gzip.compress(encode_idx(labels), mtime=0)}
    return images, labels, files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serve(routes: Routes, prefix: str, files: dict[str, bytes], behaviour="ok"):
    for name, body in files.items():
        routes.table[f"{prefix}/{name}"] = (behaviour, body)


def leftovers(folder) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_success_path_downloads_verifies_and_caches(server, tmp_path):
    images, labels, files = dataset()
    serve(server, "/m1", files)
    digests = {name: sha256(body) for name, body in files.items()}
    x, y = load_mnist(tmp_path, download=True, mirrors=[server.base + "/m1/"],
                      digests=digests, progress=False)
    np.testing.assert_array_equal(x, images.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    raw = tmp_path / "MNIST" / "raw"
    assert leftovers(raw) == sorted(files)
    for name, body in files.items():
        assert (raw / name).read_bytes() == body
    hits = sum(server.hits.values())
    # The second load finds the verified files and fetches nothing.
    x2, _ = load_mnist(tmp_path, download=True, mirrors=[server.base + "/m1/"],
                       digests=digests)
    assert sum(server.hits.values()) == hits
    np.testing.assert_array_equal(x2, x)


def test_several_digest_algorithms_are_all_checked(server, tmp_path):
    _, _, files = dataset()
    name, body = "train-labels-idx1-ubyte.gz", files["train-labels-idx1-ubyte.gz"]
    serve(server, "/m", {name: body})
    good = {"sha256": sha256(body), "md5": hashlib.md5(body).hexdigest()}
    path = download_file(name, tmp_path, [server.base + "/m"], good)
    assert path.read_bytes() == body
    path.unlink()
    with pytest.raises(ChecksumError, match="MD5"):
        download_file(name, tmp_path, [server.base + "/m"], {**good, "md5": "0" * 32})
    assert leftovers(tmp_path) == []


def test_bad_checksum_is_a_clear_error_and_leaves_no_file(server, tmp_path):
    _, _, files = dataset()
    serve(server, "/m1", files)
    wrong = {name: "0" * 64 for name in files}
    with pytest.raises(ChecksumError) as info:
        load_mnist(tmp_path, download=True, mirrors=[server.base + "/m1"], digests=wrong)
    message = str(info.value)
    assert "checksum mismatch" in message and "train-images-idx3-ubyte.gz" in message
    assert sha256(files["train-images-idx3-ubyte.gz"]) in message  # what arrived
    assert isinstance(info.value, ValueError) and isinstance(info.value, OSError)
    assert leftovers(tmp_path / "MNIST" / "raw") == []


def test_interrupted_transfer_leaves_no_partial_file(server, tmp_path):
    _, _, files = dataset()
    serve(server, "/m1", files, behaviour="cut")
    digests = {name: sha256(body) for name, body in files.items()}
    with pytest.raises(DownloadError, match=r"transfer interrupted: received \d+ of \d+ bytes"):
        load_mnist(tmp_path, download=True, mirrors=[server.base + "/m1"], digests=digests)
    assert leftovers(tmp_path / "MNIST" / "raw") == []


def test_404_on_first_mirror_falls_back_to_second(server, tmp_path):
    images, labels, files = dataset(seed=1)
    serve(server, "/good", files)
    digests = {name: sha256(body) for name, body in files.items()}
    x, y = load_mnist(tmp_path, download=True,
                      mirrors=[server.base + "/gone/", server.base + "/good/"], digests=digests)
    np.testing.assert_array_equal(y, labels)
    for name in files:
        assert server.hits[f"/gone/{name}"] == 1
        assert server.hits[f"/good/{name}"] == 1


def test_bad_copy_on_first_mirror_falls_back_to_second(server, tmp_path):
    _, labels, files = dataset(seed=2)
    serve(server, "/bad", {name: body[:-8] + b"\0" * 8 for name, body in files.items()})
    serve(server, "/good", files)
    digests = {name: sha256(body) for name, body in files.items()}
    _, y = load_mnist(tmp_path, download=True,
                      mirrors=[server.base + "/bad", server.base + "/good"], digests=digests)
    np.testing.assert_array_equal(y, labels)


def test_every_mirror_failing_lists_each_failure(server, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(DownloadError) as info:
        download_file("x.gz", tmp_path, [server.base + "/none", dead], {"sha256": "0" * 64},
                      timeout=5)
    message = str(info.value)
    assert not isinstance(info.value, ChecksumError)
    assert f"{server.base}/none/x.gz: HTTP 404" in message
    assert f"{dead}/x.gz: cannot connect" in message
    assert leftovers(tmp_path) == []


def test_failed_redownload_keeps_the_existing_file(server, tmp_path):
    (tmp_path / "f.gz").write_bytes(b"old verified content")
    serve(server, "/m", {"f.gz": b"new content"})
    with pytest.raises(ChecksumError):
        download_file("f.gz", tmp_path, [server.base + "/m"], {"sha256": "1" * 64})
    assert (tmp_path / "f.gz").read_bytes() == b"old verified content"
    assert leftovers(tmp_path) == ["f.gz"]


def test_mirror_environment_variable(server, tmp_path, monkeypatch):
    _, labels, files = dataset(seed=3)
    serve(server, "/env", files)
    digests = {name: sha256(body) for name, body in files.items()}
    monkeypatch.setenv("FLOWGRAD_MNIST_MIRROR", f"{server.base}/nothing, {server.base}/env")
    _, y = load_mnist(tmp_path, download=True, digests=digests)
    np.testing.assert_array_equal(y, labels)
    assert server.hits["/nothing/train-labels-idx1-ubyte.gz"] == 1


def test_fashion_mnist_downloads_into_its_folder(server, tmp_path, monkeypatch):
    _, labels, files = dataset(seed=4)
    serve(server, "/fashion", files)
    digests = {name: sha256(body) for name, body in files.items()}
    monkeypatch.setenv("FLOWGRAD_FASHION_MNIST_MIRROR", server.base + "/fashion/")
    monkeypatch.setenv("FLOWGRAD_CACHE", str(tmp_path / "cache"))
    _, y = load_fashion_mnist(download=True, digests=digests)
    np.testing.assert_array_equal(y, labels)
    assert leftovers(tmp_path / "cache" / "FashionMNIST" / "raw") == sorted(files)


def test_progress_bar_path(server, tmp_path, capsys):
    pytest.importorskip("tqdm")
    serve(server, "/m", {"f.bin": b"x" * 300_000})
    download_file("f.bin", tmp_path, [server.base + "/m"],
                  {"sha256": sha256(b"x" * 300_000)}, progress=True)
    assert "f.bin" in capsys.readouterr().err


def test_refuses_to_download_without_digest(tmp_path):
    with pytest.raises(ValueError, match="without a digest"):
        download_file("f", tmp_path, ["http://127.0.0.1:9/"], {})


@pytest.mark.parametrize("source", [MNIST, FASHION_MNIST], ids=["mnist", "fashion"])
def test_builtin_digest_table_is_complete(source):
    expected = {f"{split}-{kind}-ubyte.gz" for split in ("train", "t10k")
                for kind in ("images-idx3", "labels-idx1")}
    assert set(source.digests) == expected
    for digests in source.digests.values():
        assert re.fullmatch(r"[0-9a-f]{64}", digests["sha256"])
        assert re.fullmatch(r"[0-9a-f]{32}", digests["md5"])
    assert all(m.startswith(("http://", "https://")) for m in source.mirrors)
    assert len(source.mirrors) >= 2
