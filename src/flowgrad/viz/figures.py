"""matplotlib for every flowgrad picture: one clear error when it is missing, bare figures,
atomic saves.

The training plots (curves, confusion matrix), the gradient-descent pictures and the
derivative gallery all draw through here. Figures are plain ``matplotlib.figure.Figure``
objects rendered by the Agg canvas, never registered with pyplot, so drawing from a
notebook, a GUI session or a thread leaves pyplot's global state and backend alone.
Nothing here imports matplotlib until a picture is asked for.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from flowgrad._atomic import atomic_path

__all__ = ["IMAGE_SUFFIXES", "INSTALL_HINT", "new_figure", "require", "save_figure"]

#: The suffixes :func:`save_figure` writes (the format follows the suffix).
IMAGE_SUFFIXES = (".png", ".svg", ".pdf")

#: What to install for the pictures: matplotlib and Pillow.
INSTALL_HINT = "pip install 'flowgrad[viz]'"

_PACKAGE = {"matplotlib": "matplotlib", "PIL": "Pillow"}


def require(module: str = "matplotlib", purpose: str = "drawing pictures") -> None:
    """Raise a clear ImportError when ``module`` is not installed (without importing it).

    Cheap enough to call before long work (training), so a missing plotting library is
    reported before, not after, the work it would have drawn.

    Args:
        module: the import name, ``"matplotlib"`` or ``"PIL"``.
        purpose: what needs it, for the message ("plotting the curves").

    Raises:
        ImportError: ``"<purpose> needs <package>; install it with pip install
            'flowgrad[viz]'"``.
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules
        found = False
    if not found:
        raise ImportError(f"{purpose} needs {_PACKAGE.get(module, module)}; install it with "
                          f"{INSTALL_HINT}")


def new_figure(figsize: tuple[float, float], dpi: float | None = None) -> Any:
    """A ``Figure`` with constrained layout that pyplot does not know about.

    Args:
        figsize: width and height in inches.
        dpi: dots per inch (``None``: matplotlib's default, 100).

    Raises:
        ImportError: matplotlib is not installed (the message says what to install).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"the pictures need matplotlib; install it with {INSTALL_HINT}"
                          ) from exc
    return Figure(figsize=figsize, dpi=dpi, layout="constrained")


def save_figure(figure: Any, path: str | os.PathLike, dpi: float = 110) -> Path:
    """Write a figure atomically; the format follows the suffix (.png, .svg, .pdf).

    Args:
        figure: the matplotlib figure.
        path: where to write it.
        dpi: resolution of a PNG.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: an unsupported suffix.
        FileNotFoundError: the folder does not exist.
        OSError: the file cannot be written (the message names ``path``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(
            f"cannot write {path.name!r}: use a .png or .svg file name (got {suffix or 'none'})"
        )
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=suffix[1:], dpi=dpi)
    return path
