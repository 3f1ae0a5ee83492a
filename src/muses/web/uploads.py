"""Uploaded photos: checked for size and real type (sniffed from the bytes), then decoded by
:mod:`muses.imaging` (pixel count checked on the header first), as prediction and training
decode them: a phone photo tagged "rotate 90°" is upright, transparency is white."""
from __future__ import annotations

import base64
import io

from PIL import Image

from muses.errors import MusesError
from muses.imaging import TooManyPixels, UnreadableImage, open_image

# Formats Pillow may try; the file name and the client's Content-Type are never trusted.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MAX_BYTES = 10 * 1024 * 1024
# Stricter than the collection's [images] max_pixels: a stranger's upload beyond a 40-megapixel
# camera photo is a mistake or a decompression bomb.
MAX_UPLOAD_PIXELS = 40_000_000


class UploadError(MusesError):
    """A rejected upload; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def size_text(n_bytes: int) -> str:
    """A size the way `muses serve --max-upload-mb` counts it (1 MB = 1024 × 1024 bytes)."""
    return f"{n_bytes / 2**20:.1f} MB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:.0f} kB"


def read_upload(data: bytes, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_UPLOAD_PIXELS) -> Image.Image:
    """The uploaded bytes as an upright RGB image, or :class:`UploadError` saying what is wrong."""
    if not data:
        raise UploadError("the uploaded file is empty; choose a photo (JPEG, PNG, WebP, ...)")
    if len(data) > max_bytes:
        raise UploadError(f"the file is larger than {size_text(max_bytes)}; send a smaller photo", 413)
    try:
        return open_image(data, max_pixels=max_pixels, formats=FORMATS, name="the upload")
    except TooManyPixels as exc:
        raise UploadError(f"the image is {exc.size}, more than the {max_pixels:,} allowed; send a smaller photo",
                          413) from exc
    except UnreadableImage as exc:
        if exc.kind == "unknown-format":
            raise UploadError(f"not an image muses can read; send one of {', '.join(FORMATS)}", 415) from exc
        raise UploadError(f"the image is corrupt or truncated ({exc.why}); send the photo again", 400) from exc


def thumbnail_data_url(image: Image.Image, size: int = 240) -> str:
    """A small JPEG of the upload as a data: URL, to show it beside its results (never stored)."""
    thumb = image.copy()
    thumb.thumbnail((size, size))
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
