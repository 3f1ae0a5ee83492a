"""Checks on one photograph: can it be decoded, safely, and does it show anything?

Plain functions on bytes, PIL images and arrays. Every failure is an :class:`ImageProblem`
whose text starts with a short category word (``empty``, ``not-an-image``, ``unreadable``,
``too-large``, ``truncated``, ``blank``, ...), so reports and ``muses stats`` can group them.
"""
from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from muses.collection.store import CROPPED, OK

_EXIF_ORIENTATION = 0x0112
_T = Image.Transpose
# EXIF orientation → the transpose that makes the picture upright (as in ImageOps.exif_transpose).
_ORIENTATION_TRANSPOSE = {2: _T.FLIP_LEFT_RIGHT, 3: _T.ROTATE_180, 4: _T.FLIP_TOP_BOTTOM, 5: _T.TRANSPOSE,
                          6: _T.ROTATE_270, 7: _T.TRANSVERSE, 8: _T.ROTATE_90}
_QUARTER_TURNS = {5, 6, 7, 8}  # these swap width and height


class ImageProblem(Exception):
    """An image that cannot be used; ``str()`` is ``"category: detail"``."""

    def __init__(self, category: str, detail: str):
        super().__init__(f"{category}: {detail}")
        self.category = category


@dataclass
class Decoded:
    """A decoded photo, reduced for speed when the format allows it."""

    image: Image.Image  # RGB, as stored in the file (not yet turned by its EXIF orientation)
    width: int  # full-size width and height as displayed, i.e. after the EXIF orientation
    height: int
    orientation: int


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def decode(data: bytes, *, max_pixels: int, min_side: int | None = None) -> Decoded:
    """Decode image bytes to RGB, refusing what is not safe or not complete.

    The header is checked against ``max_pixels`` before any pixel is decoded (decompression
    bombs). With ``min_side``, a JPEG is decoded at the smallest DCT scale that still gives
    at least that many pixels on each side (PIL draft mode), so a 6000-px photo costs a
    fraction of a full decode. Animated files give their first frame.
    """
    if not data:
        raise ImageProblem("empty", "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow's own text also names its limit
        raise _too_large(f"{int(found[1]):,} pixels" if found else "more pixels", max_pixels) from exc
    except UnidentifiedImageError as exc:
        # Never quote the file: a reference may have named a file the viewer must not read.
        if _looks_like_text(data):
            raise ImageProblem("not-an-image", "the file is text (an error page or a document?)") from exc
        raise ImageProblem("unreadable", "not a known image format") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure on a header is the file's fault
        # The type only: some decoders quote the header bytes they choked on.
        raise ImageProblem("unreadable", f"the image header is damaged ({type(exc).__name__})") from exc

    width, height = img.size
    if width * height > max_pixels:
        raise _too_large(f"{width}x{height} = {width * height:,} pixels", max_pixels)
    orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    try:
        if min_side and img.format == "JPEG":
            img.draft(None, (min_side, min_side))
        img.seek(0)
        img.load()
    except OSError as exc:
        if "truncated" in str(exc) or "broken data stream" in str(exc):
            raise ImageProblem("truncated", f"the file ends early ({exc})") from exc
        raise ImageProblem("unreadable", f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001
        raise ImageProblem("unreadable", f"{type(exc).__name__}: {exc}") from exc
    return Decoded(to_rgb(img), width, height, orientation)


def _too_large(size: str, max_pixels: int) -> ImageProblem:
    return ImageProblem("too-large", f"{size}, over the limit of {max_pixels:,} ([images] max_pixels in muses.toml)")


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB with the right colours: 16-bit scaled down, floats (0-1) scaled up, transparency
    composited onto white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        if arr.max(initial=0) > 255:  # 16-bit data, whatever container mode PIL chose
            arr = arr / 257.0
        elif img.mode == "F" and arr.max(initial=0) <= 1.0:  # scientific TIFFs store 0-1 intensities
            arr = arr * 255.0
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def orient(img: Image.Image, orientation: int) -> Image.Image:
    """Turn the picture upright as its EXIF orientation says (what ImageOps.exif_transpose does,
    applied after cropping, which must happen in stored-pixel orientation)."""
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return img if method is None else img.transpose(method)


def grey_fill_rows(arr: np.ndarray, *, tolerance: int = 3, grey_range: tuple[int, int] = (64, 192)) -> int:
    """How many rows at the bottom are one flat neutral grey.

    That is what an interrupted download looks like once re-saved: the decoder filled the
    missing lower part with mid grey. Real backgrounds, even plain studio grey, vary by a few
    levels across a row or down the picture, so the tolerance is tight; white and black bands
    are outside ``grey_range``. ``arr`` is an (h, w, 3) uint8 array.
    """
    ref = np.median(arr[-1], axis=0)
    if np.ptp(ref) > 2 or not grey_range[0] <= ref.mean() <= grey_range[1]:
        return 0
    row_dev = np.abs(arr.astype(np.int16) - ref.astype(np.int16)).max(axis=(1, 2))
    flat = row_dev <= tolerance
    not_flat = np.flatnonzero(~flat)
    return int(arr.shape[0] - 1 - not_flat[-1]) if not_flat.size else int(arr.shape[0])


def brightness_std(img: Image.Image) -> float:
    """Spread of grey levels; a flat placeholder or an empty frame has almost none."""
    return float(np.asarray(img.convert("L"), dtype=np.float32).std())


@dataclass
class ContentCheck:
    image: Image.Image  # the part worth keeping
    status: str  # OK or CROPPED
    problem: str | None


def check_content(img: Image.Image, *, blank_std: float = 5.0, min_fill: float = 0.02,
                  min_kept: float = 0.6) -> ContentCheck:
    """Refuse blank images; crop a grey-filled truncated bottom, or refuse when too little is left.

    ``img`` is RGB as stored in the file (before EXIF orientation: the missing part of a
    truncated download is always at the bottom of the stored pixels). A grey band under
    ``min_fill`` of the height is taken for a plain border and kept.
    """
    std = brightness_std(img)
    if std < blank_std:
        raise ImageProblem("blank", f"near-uniform image (brightness std {std:.1f} < {blank_std:g}): "
                                    "a placeholder or an empty frame")
    arr = np.asarray(img)
    height = arr.shape[0]
    fill = grey_fill_rows(arr)
    fraction = fill / height
    if fraction < min_fill:
        return ContentCheck(img, OK, None)
    if 1 - fraction < min_kept:
        raise ImageProblem("truncated", f"{fraction:.0%} grey fill at the bottom (interrupted download); "
                                        f"{1 - fraction:.0%} of the picture left, under the {min_kept:.0%} "
                                        "needed to crop")
    return ContentCheck(img.crop((0, 0, img.width, height - fill)), CROPPED,
                        f"truncated: {fraction:.0%} grey fill at the bottom cut off")
