"""The one image decoder: every photo muses looks at is decoded here, the same way.

Photo checks and training copies (``muses generate-images``), datasets, prediction (torch and
ONNX), uploads, evaluation, label issues and similar search all call :func:`open_image` (or
:func:`decode` where the stored pixels must be checked before the picture is turned upright),
so a photo shows the model the same pixels in training as in prediction:

- the pixel count is checked on the header before any pixel is decoded (``max_pixels``; its
  default is ``[images] max_pixels`` of muses.toml); Pillow's process-wide
  ``MAX_IMAGE_PIXELS`` is left alone;
- a JPEG is decoded in draft mode (DCT scaling) when a target size says a smaller decode is enough;
- the EXIF orientation is applied (a phone photo tagged "rotate 90°" is upright);
- CMYK, 16-bit and floating-point pixels become 8-bit RGB with their real colours, palette
  and alpha transparency are laid on white, grey becomes RGB.

A file that cannot be used raises :class:`UnreadableImage` (one photo), whose ``kind`` says why
in one word, or is named with its reason by :func:`try_open` (a photo among many). No torch here.
"""
from __future__ import annotations

import io
import re
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from muses.errors import MusesError
from muses.settings import ImageSettings

MAX_PIXELS: int = ImageSettings.max_pixels  # muses.toml's default: one number for every decoder

# What Pillow raises for a file's fault: missing or unreadable (OSError, incl.
# UnidentifiedImageError), broken headers (SyntaxError, ValueError, struct.error), files that
# end early (EOFError) and headers announcing more pixels than Pillow's own global allows.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)

Source = Union[str, Path, bytes, BinaryIO]

_EXIF_ORIENTATION = 0x0112
_T = Image.Transpose
# EXIF orientation → the transpose that makes the picture upright (what ImageOps.exif_transpose
# does, kept apart so the photo checks can crop in stored orientation first).
_ORIENTATION_TRANSPOSE = {2: _T.FLIP_LEFT_RIGHT, 3: _T.ROTATE_180, 4: _T.FLIP_TOP_BOTTOM, 5: _T.TRANSPOSE,
                          6: _T.ROTATE_270, 7: _T.TRANSVERSE, 8: _T.ROTATE_90}
_QUARTER_TURNS = {5, 6, 7, 8}  # these swap width and height
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


class UnreadableImage(MusesError):
    """A photo that cannot be decoded, or that is larger than ``max_pixels``.

    ``kind`` is one word for reports: ``empty``, ``unknown-format``, ``too-large``,
    ``truncated`` or ``unreadable``; ``why`` never quotes the file's bytes."""

    def __init__(self, path: str | Path, why: str, kind: str = "unreadable"):
        super().__init__(f"cannot read image {path}: {why}")
        self.path, self.why, self.kind = Path(path), why, kind


class TooManyPixels(UnreadableImage):
    """A header announcing more than ``max_pixels`` pixels: refused before decoding."""

    def __init__(self, path: str | Path, size: str, max_pixels: int):
        super().__init__(path, f"{size}, over max_pixels ({max_pixels:,}); make the photo smaller or raise "
                               "max_pixels", "too-large")
        self.size, self.max_pixels = size, max_pixels


@dataclass
class Decoded:
    """A decoded photo in its stored orientation, reduced when a draft size allowed it."""

    image: Image.Image  # RGB, as stored in the file (not yet turned by its EXIF orientation)
    width: int  # full-size width and height as displayed, i.e. after the EXIF orientation
    height: int
    orientation: int

    def upright(self) -> Image.Image:
        return orient(self.image, self.orientation)


def open_image(source: Source, input_size: int | None = None, *, max_pixels: int = MAX_PIXELS,
               formats: tuple[str, ...] | None = None, name: str = "(data)") -> Image.Image:
    """``source`` (a path, bytes or a binary file) as an upright RGB image. ``input_size``: the
    pixels a side the caller needs (JPEG draft mode decodes at a reduced scale that keeps them);
    ``formats``: the Pillow formats to try (default all); ``name``: how messages call data that
    has no path. Raises :class:`UnreadableImage` saying why it cannot."""
    return decode(source, max_pixels=max_pixels, draft=input_size, formats=formats, name=name).upright()


def try_open(source: Source, input_size: int | None = None, *, max_pixels: int = MAX_PIXELS) -> Image.Image | str:
    """:func:`open_image`, or the reason it failed as a string."""
    try:
        return open_image(source, input_size, max_pixels=max_pixels)
    except UnreadableImage as exc:
        return exc.why


def decode(source: Source, *, max_pixels: int = MAX_PIXELS, draft: int | None = None,
           formats: tuple[str, ...] | None = None, name: str = "(data)") -> Decoded:
    """:func:`open_image`'s work up to the turn upright: for callers that look at the stored
    pixels first (the photo checks crop a truncated bottom before turning). Animated files give
    their first frame."""
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    label = source if isinstance(source, (str, Path)) else name
    fp = _open_source(source, label)
    try:
        img = _read_header(fp, label, max_pixels, formats)
        width, height = img.size
        orientation = exif_orientation(img)
        if orientation in _QUARTER_TURNS:
            width, height = height, width
        _load(img, label, draft)
        return Decoded(_converted(img, label), width, height, orientation)
    finally:
        if isinstance(source, (str, Path)):
            fp.close()


def _open_source(source: Source, label) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise UnreadableImage(label, "zero-byte file", "empty")
        return io.BytesIO(source)
    if not isinstance(source, (str, Path)):
        return source
    try:
        mode = Path(source).stat()
        # A FIFO would block the open forever and a device (/dev/zero) never ends: photos are plain files.
        if not stat.S_ISREG(mode.st_mode):
            raise UnreadableImage(source, "not a regular file (a folder, a pipe or a device); name a photo file")
        if mode.st_size == 0:
            raise UnreadableImage(source, "zero-byte file", "empty")
        return open(source, "rb")  # noqa: SIM115 - closed by decode
    except OSError as exc:
        raise UnreadableImage(source, f"{type(exc).__name__}: {exc}") from exc


def _read_header(fp: BinaryIO, label, max_pixels: int, formats) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels is the limit
            img = Image.open(fp, formats=formats)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow's own text names its limit too
        raise TooManyPixels(label, f"{int(found[1]):,} pixels" if found else "more pixels", max_pixels) from exc
    except UnidentifiedImageError as exc:
        raise UnreadableImage(label, "not a known image format", "unknown-format") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure on a header is the file's fault
        # The type only: some decoders quote the header bytes they choked on.
        raise UnreadableImage(label, f"the image header is damaged ({type(exc).__name__})") from exc
    width, height = img.size  # from the header: nothing decoded yet
    if width * height > max_pixels:
        raise TooManyPixels(label, f"{width}x{height} = {width * height:,} pixels", max_pixels)
    return img


def _load(img: Image.Image, label, draft: int | None) -> None:
    try:
        if draft and img.format == "JPEG":
            img.draft(None, (draft, draft))
        img.seek(0)
        img.load()
    except Exception as exc:  # noqa: BLE001 - a decoder failing on the data is the file's fault
        if "truncated" in str(exc) or "broken data stream" in str(exc) or isinstance(exc, EOFError):
            raise UnreadableImage(label, f"the file ends early ({exc})", "truncated") from exc
        raise UnreadableImage(label, f"{type(exc).__name__}: {exc}") from exc


def _converted(img: Image.Image, label) -> Image.Image:
    try:
        return to_rgb(img)
    except DECODE_ERRORS as exc:  # a mode Pillow cannot turn into RGB (LAB, multi-band TIFF)
        raise UnreadableImage(label, f"its colours cannot be read ({img.mode}: {exc})") from exc


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 to 8; 1 when absent or unreadable)."""
    try:
        value = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except (*DECODE_ERRORS, TypeError):  # a damaged EXIF block: the photo is still a photo
        return 1
    return value if value in range(1, 9) else 1


def orient(img: Image.Image, orientation: int) -> Image.Image:
    """Turn the picture upright as its EXIF ``orientation`` says."""
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return img if method is None else img.transpose(method)


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB with the right colours: 16-bit scaled down, floats (0-1) scaled up, CMYK and
    grey converted, palette and alpha transparency laid on white."""
    if img.mode in _WIDE_MODES:
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        if arr.max(initial=0) > 255:  # 16-bit data, whatever container mode PIL chose
            arr = arr / 257.0
        elif img.mode == "F" and arr.max(initial=0) <= 1.0:  # scientific TIFFs store 0-1 intensities
            arr = arr * 255.0
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    if "transparency" in img.info and img.mode in ("P", "L", "RGB"):  # a PNG's transparent colour
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")
