"""Pictures of handwritten digits (or clothes) made to look like the training data:
:func:`preprocess_image`, as ``flowgrad predict`` uses it.

One recipe per dataset, each redoing how that dataset's images were made (the UCI
procedure behind the 8x8 digits, LeCun's for MNIST, a plain resize for Fashion-MNIST).
Reading files needs Pillow (``pip install 'flowgrad[viz]'``).
"""

from __future__ import annotations

import os
import stat
from typing import Any

import numpy as np

__all__ = ["ImageError", "preprocess_image"]


class ImageError(ValueError):
    """An image that cannot be read, or shows no digit (no ink); names the file."""


# Strokes in the training data are about a tenth of the digit's height or more (8x8 digits:
# median 4.8 px on their 32x32 bitmaps, 5th percentile 3.5; MNIST: 2-3 px of its 20 px box).
# A fine pen on a large canvas would vanish when shrunk, so thinner strokes are thickened to
# this width, in pixels of the grid where it is checked (32x32 for digits, 80x80 for MNIST).
_MIN_STROKE = {"digits": 3.5, "mnist": 8.0}


#: The largest picture read, in pixels (a 25-megapixel photo; the digit is shrunk to 8x8 or
#: 28x28 anyway). The size comes from the file's header, so a small file that would decode
#: to gigabytes (a decompression bomb) is refused before any pixel is decoded.
MAX_PIXELS = 25_000_000


def _open(path: str | os.PathLike) -> Any:
    """The picture at ``path``, decoded, after checking it is a regular file of at most
    :data:`MAX_PIXELS` pixels."""
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageError(f"image {path} does not exist") from None
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        # A FIFO would block the read; a device could be endless.
        what = ("a folder" if stat.S_ISDIR(st.st_mode) else "a named pipe (FIFO)"
                if stat.S_ISFIFO(st.st_mode) else "not a regular file")
        raise ImageError(f"cannot read image {path}: it is {what}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise ImageError(f"image {path} is {width}x{height} pixels, more than "
                                     f"flowgrad reads ({MAX_PIXELS // 1_000_000} megapixels); "
                                     "shrink it first")
                opened.load()
                return ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"cannot read image {path}: {exc}") from None


def _to_gray(image: Any) -> np.ndarray:
    """An image (path, PIL image or array) as float32 gray in [0, 1], 2-D."""
    if isinstance(image, (str, os.PathLike)):
        image = _open(image)
    if hasattr(image, "getbands"):  # a PIL image
        pil = image
        if pil.mode == "P":
            pil = pil.convert("RGBA")
        if "A" in pil.getbands():
            alpha = np.asarray(pil.getchannel("A"), dtype=np.float32) / 255.0
            if alpha.min() < 0.5:
                # Strokes on a transparent canvas: the opacity is the ink, whatever its colour.
                return alpha
        if pil.mode in ("I", "F") or pil.mode.startswith("I;16"):
            # 16-bit and float images: converting to 8-bit "L" would clip them to white.
            wide = np.asarray(pil, dtype=np.float32)
            return (wide - wide.min()) / max(float(np.ptp(wide)), 1e-12)
        return np.asarray(pil.convert("L"), dtype=np.float32) / 255.0
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if arr.ndim != 2:
        raise ImageError(f"an image array must be 2-D gray or (H, W, 3|4) colour, got shape "
                         f"{arr.shape}")
    if arr.max(initial=0.0) > 1.0:
        arr = arr / 255.0
    return arr


def _max_filter(a: np.ndarray) -> np.ndarray:
    """3x3 grey dilation: each pixel becomes the largest of itself and its 8 neighbours."""
    p = np.pad(a, 1)
    h, w = a.shape
    out = a.copy()
    for di in range(3):
        for dj in range(3):
            np.maximum(out, p[di:di + h, dj:dj + w], out=out)
    return out


def _stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels of the ink (> 0.5): 2 x area / boundary length.

    A stroke of width w and length L has area w L and a boundary of about 2 L pixels.
    """
    mask = ink > 0.5
    inner = -_max_filter(-mask.astype(np.float32)) > 0.5  # 3x3 erosion
    boundary = int((mask & ~inner).sum())
    return 2.0 * mask.sum() / max(boundary, 1)


def _thicken(ink: np.ndarray, min_width: float, max_steps: int) -> np.ndarray:
    """Dilate strokes thinner than ``min_width`` pixels (each step adds about two)."""
    # Shrinking greys a stroke thinner than a pixel; restretch so its core counts as ink.
    ink = ink / max(float(ink.max()), 1e-6)
    for _ in range(max_steps):
        if _stroke_width(ink) >= min_width:
            break
        ink = _max_filter(ink)
    return ink


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink: the box around clear ink (> 0.5), widened to take in faint ink.

    Faint ink (> 0.1) only counts within a margin of 15% of the clear ink's box, so grain in
    a photographed background cannot stretch the box to the whole picture.
    """
    def bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1

    r0, r1, c0, c1 = bounds(ink > 0.5)
    m = max(1, round(0.15 * max(r1 - r0, c1 - c0)))
    r0, c0 = max(r0 - m, 0), max(c0 - m, 0)
    r1, c1 = min(r1 + m, ink.shape[0]), min(c1 + m, ink.shape[1])
    window = ink[r0:r1, c0:c1]
    f0, f1, g0, g1 = bounds(window > 0.1)
    return window[f0:f1, g0:g1]


def _resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    # BOX averages the source pixels each target pixel covers: shrinking keeps ink mass.
    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F")
                      .resize((size[1], size[0]), Image.BOX), dtype=np.float32)


def preprocess_image(image: Any, dataset: str = "digits") -> np.ndarray:
    """Turn a picture of a handwritten digit into the input the reference network expects.

    Steps: gray in [0, 1]; invert when the background (the median of the border pixels) is
    light, since the training data are white ink on black; stretch the contrast from the
    background to the brightest ink; crop to the ink's bounding box and pad it to a centred
    square. Then, like the data were made:

    * ``digits``: scale to 32x32, threshold to a bitmap (thickened if the strokes are too
      thin to survive), and count the ink in each 4x4 block, /16 (the UCI procedure
      behind the 8x8 digits);
    * ``mnist``: scale to 20x20 keeping the grey levels and place it in a 28x28 frame with
      its centre of mass in the middle (LeCun's procedure);
    * ``fashion-mnist``: scale the square to 28x28.

    Args:
        image: a file path, a PIL image, or an array (2-D gray or H x W x 3/4 colour, in
            [0, 1] or 0..255).
        dataset: the dataset the model was trained on.

    Returns:
        float32 array of the model's image shape (8x8 or 28x28), values in [0, 1].

    Raises:
        ImageError: (a ``ValueError``) a missing or unreadable file, or an image with no
            ink (of uniform colour); the message names the file.
        ValueError: an unknown dataset.
        ImportError: Pillow is missing.
    """
    from flowgrad.viz.figures import require  # the one place that knows the install hint

    recipe = _RECIPES.get(dataset)
    if recipe is None:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(_RECIPES)}")
    require("PIL", "reading images")
    name = image if isinstance(image, (str, os.PathLike)) else "the image"
    gray = _to_gray(image)
    if gray.shape[0] < 2 or gray.shape[1] < 2:
        raise ImageError(f"{name} is too small ({gray.shape[1]}x{gray.shape[0]} pixels)")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:
        gray = 1.0 - gray
        border = 1.0 - border
    background, top = float(np.median(border)), float(gray.max())
    if top - background < 0.1:
        raise ImageError(f"{name} has no visible ink (it is almost uniform)")
    ink = np.clip((gray - background) / (top - background), 0.0, 1.0)

    ink = _crop_to_ink(ink)
    h, w = ink.shape
    side = max(h, w)
    square = np.zeros((side, side), dtype=np.float32)
    top_pad, left_pad = (side - h) // 2, (side - w) // 2
    square[top_pad:top_pad + h, left_pad:left_pad + w] = ink

    return recipe(square)


def _fashion_mnist_input(square: np.ndarray) -> np.ndarray:
    return np.clip(_resize(square, (28, 28)), 0.0, 1.0)


def _digits_input(square: np.ndarray) -> np.ndarray:
    # Area-averaging to 32x32 and then counting per 4x4 block is the UCI recipe on a
    # bitmap, and keeps the grey levels of an image that was itself made from 8x8 data.
    fine = _thicken(_resize(square, (32, 32)), _MIN_STROKE["digits"], 3)
    return fine.reshape(8, 4, 8, 4).mean(axis=(1, 3), dtype=np.float32)


def _mnist_input(square: np.ndarray) -> np.ndarray:
    # Thicken at 80x80 (4x the 20x20 box), where one dilation step adds a quarter of a final
    # pixel, then shrink into the 20x20 box.
    box = np.clip(_resize(_thicken(_resize(square, (80, 80)), _MIN_STROKE["mnist"], 6),
                          (20, 20)), 0.0, 1.0)
    ys, xs = np.indices(box.shape)
    mass = box.sum()
    # Place the box so its centre of mass lands on the frame's centre (staying inside).
    dy = int(np.clip(round(13.5 - (ys * box).sum() / mass), 0, 8))
    dx = int(np.clip(round(13.5 - (xs * box).sum() / mass), 0, 8))
    frame = np.zeros((28, 28), dtype=np.float32)
    frame[dy:dy + 20, dx:dx + 20] = box
    return frame


# dataset -> its recipe, from the inked square to the model's input.
_RECIPES = {"digits": _digits_input, "mnist": _mnist_input,
            "fashion-mnist": _fashion_mnist_input}
