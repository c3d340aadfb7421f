"""Shared fixtures. Kept tiny: helpers belong in the test module that needs them.

``python -m pytest --backend strict`` runs the tests marked ``portable`` (the op table, the
engine, the transforms, device semantics, small nn/optim training) a second time with every
tensor on array-api-strict's simulated device ``strict:0`` (the default device for the
run), where an op that calls a NumPy-only function or method, converts a device array to
NumPy behind the user's back, or mixes devices raises. The test code itself reads results
back with ``.numpy()`` and ``np.testing`` (on that device an explicit copy to the host made
for the test only; flowgrad's own code calling them there still raises, as on a GPU).
``--backend cuda`` does the same on a GPU (CuPy), where ``fg.cuda.is_available()``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# Let `python -m pytest` work from a checkout without installing or setting PYTHONPATH.
_SRC = str(Path(__file__).resolve().parents[1] / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

_TESTS = str(Path(__file__).resolve().parent)
_NUMPY = str(Path(np.__file__).resolve().parent)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--backend", choices=("numpy", "strict", "cuda"), default="numpy",
                     help="array backend the tensors live on: numpy (the cpu device, "
                          "default), strict (array-api-strict's simulated device) or cuda "
                          "(CuPy on a GPU); the last two run the tests marked portable")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "portable: also runs with --backend strict or cuda")
    config.addinivalue_line("markers", "numpy_only: needs the NumPy backend (host memory, "
                                       "views, value checks); left out with another backend")
    if config.getoption("--backend") == "cuda":
        import flowgrad as fg

        if not fg.cuda.is_available():
            try:
                fg.zeros(1, device="cuda")
            except RuntimeError as exc:
                raise pytest.UsageError(f"--backend cuda: {exc}") from None


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if config.getoption("--backend") == "numpy":
        return
    keep = [i for i in items if i.get_closest_marker("portable")
            and not i.get_closest_marker("numpy_only")]
    dropped = [i for i in items if i not in set(keep)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def _from_tests() -> bool:
    """Whether the nearest caller outside NumPy (np.testing, np.asarray) is a test file."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_NUMPY):
            return name.startswith(_TESTS)
        frame = frame.f_back
    return False


@pytest.fixture(autouse=True)
def _array_backend(request: pytest.FixtureRequest):
    """With --backend strict (cuda): tensors are made on ``strict:0`` (``cuda:0``) for the
    duration of a test."""
    backend = request.config.getoption("--backend")
    if backend == "numpy":
        yield
        return
    import flowgrad as fg
    from flowgrad import _backend

    tensor = fg.Tensor
    numpy, array = tensor.numpy, tensor.__array__

    def read_numpy(self):
        if not _backend.on_host(self.data) and _from_tests():
            return _backend.to_host(self.data)
        return numpy(self)

    def read_array(self, dtype=None, copy=None):
        if not _backend.on_host(self.data) and _from_tests():
            host = _backend.to_host(self.data)
            return host if dtype is None else host.astype(dtype)
        return array(self, dtype, copy)

    tensor.numpy, tensor.__array__ = read_numpy, read_array
    fg.set_default_device(backend)
    try:
        yield
    finally:
        fg.set_default_device("cpu")
        tensor.numpy, tensor.__array__ = numpy, array


#: The first bytes of every PNG file the drawing commands write.
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def main():
    """``flowgrad.cli.main``: the command line run in-process (tqdm's pattern)."""
    from flowgrad import cli

    return cli.main


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator, so every test draws the same numbers on every run."""
    return np.random.default_rng(0)
