"""Checks on one photograph: can it be decoded, safely, and does it show anything?

Plain functions on bytes, PIL images and arrays. Every failure is an :class:`ImageProblem`
whose text starts with a short category word (``empty``, ``not-an-image``, ``unreadable``,
``too-large``, ``truncated``, ``blank``, ...), so reports and ``muses stats`` can group them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from muses.collection.store import CROPPED, OK
from muses.imaging import Decoded, TooManyPixels, UnreadableImage
from muses.imaging import decode as decode_image


class ImageProblem(Exception):
    """An image that cannot be used; ``str()`` is ``"category: detail"``."""

    def __init__(self, category: str, detail: str):
        super().__init__(f"{category}: {detail}")
        self.category = category


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def decode(data: bytes, *, max_pixels: int, min_side: int | None = None) -> Decoded:
    """Decode image bytes with :func:`muses.imaging.decode` (the decoder prediction uses too),
    its refusals as :class:`ImageProblem`. ``min_side``: a JPEG is decoded at the smallest DCT
    scale that still gives at least that many pixels on each side."""
    try:
        return decode_image(data, max_pixels=max_pixels, draft=min_side)
    except TooManyPixels as exc:
        raise ImageProblem("too-large", f"{exc.size}, over the limit of {max_pixels:,} ([images] max_pixels in "
                                        "muses.toml)") from exc
    except UnreadableImage as exc:
        # Never quote the file: a reference may have named a file the viewer must not read.
        if exc.kind == "unknown-format" and _looks_like_text(data):
            raise ImageProblem("not-an-image", "the file is text (an error page or a document?)") from exc
        raise ImageProblem("unreadable" if exc.kind == "unknown-format" else exc.kind, exc.why) from exc


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
