"""``python -m benchmarks``: flowgrad's benchmarks from a source checkout.

The harness itself lives in the package (:mod:`flowgrad.bench`), so an installed flowgrad
runs the same thing as ``flowgrad bench``. When flowgrad is not installed, the checkout's
``src`` folder is put on the path.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _ensure_flowgrad_importable() -> None:
    try:
        import flowgrad  # noqa: F401
    except ImportError:
        src = Path(__file__).resolve().parents[1] / "src"
        if (src / "flowgrad").is_dir():
            sys.path.insert(0, str(src))


_ensure_flowgrad_importable()
