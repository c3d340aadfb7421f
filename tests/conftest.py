"""Shared fixtures. Kept tiny: helpers belong in the test module that needs them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# Let `python -m pytest` work from a checkout without installing or setting PYTHONPATH.
_SRC = str(Path(__file__).resolve().parents[1] / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)


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
