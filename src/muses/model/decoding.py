"""The one way the model side decodes a photo file: :func:`open_image`.

Training views, prediction (torch and ONNX), evaluation, label review, classify and the
command line all decode through here, so every one of them refuses the same files for the
same reasons. A file that cannot be used raises :class:`UnreadableImage` (one photo) or is
listed with its reason by :func:`try_open` (a photo among many): one bad photo never stops a
batch. Pillow's own decompression-bomb threshold is a process-wide global; the limit here is
the ``max_pixels`` parameter, checked on the header before any pixel is decoded.

No torch here: the dataset reader (``muses.datasets.folder``) decodes through this module too.
"""
from __future__ import annotations

import stat
import struct
import warnings
from pathlib import Path

from PIL import Image

from muses.errors import MusesError

MAX_PIXELS = 89_478_485  # Pillow's default decompression-bomb threshold, as a named default of ours

# Everything Pillow raises for a file's fault: missing or unreadable (OSError, incl.
# UnidentifiedImageError), broken headers (SyntaxError, ValueError, struct.error), files that
# end early (EOFError) and headers announcing more pixels than Pillow's own global allows.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


class UnreadableImage(MusesError):
    """A photo file that cannot be decoded, or that is larger than ``max_pixels``."""

    def __init__(self, path: str | Path, why: str):
        super().__init__(f"cannot read image {path}: {why}")
        self.path, self.why = Path(path), why


def _check_max_pixels(max_pixels: int) -> None:
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")


def open_image(path: str | Path, input_size: int | None = None, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``path`` as RGB; JPEG draft mode decodes at reduced scale when ``input_size``
    pixels a side are enough. Raises :class:`UnreadableImage` saying why it cannot."""
    _check_max_pixels(max_pixels)
    try:
        _check_regular_file(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels below is the limit
            with Image.open(path) as img:
                width, height = img.size  # from the header: nothing decoded yet
                if width * height > max_pixels:
                    raise UnreadableImage(path, f"{width}x{height} = {width * height:,} pixels, over max_pixels "
                                                f"({max_pixels:,}); make the photo smaller or raise max_pixels")
                if input_size and img.format == "JPEG":
                    img.draft("RGB", (input_size, input_size))
                return img.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(path, f"over max_pixels ({max_pixels:,}): {exc}") from exc
    except DECODE_ERRORS as exc:
        raise UnreadableImage(path, f"{type(exc).__name__}: {exc}") from exc


def _check_regular_file(path: str | Path) -> None:
    # A FIFO would block the open forever and a device (/dev/zero) never ends: photos are plain files.
    mode = Path(path).stat().st_mode
    if not stat.S_ISREG(mode):
        raise UnreadableImage(path, "not a regular file (a folder, a pipe or a device); name a photo file")


def try_open(path: str | Path, input_size: int | None = None, *, max_pixels: int = MAX_PIXELS) -> Image.Image | str:
    """:func:`open_image`, or the reason it failed as a string."""
    try:
        return open_image(path, input_size, max_pixels=max_pixels)
    except UnreadableImage as exc:
        return exc.why

