"""Uploaded photos: checked for size, real type (sniffed from the bytes) and pixel count before
anything decodes them in full."""
from __future__ import annotations

import base64
import io
import warnings

from PIL import Image, UnidentifiedImageError
from muses.errors import MusesError

# Formats Pillow may try; the file name and the client's Content-Type are never trusted.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel camera photo; beyond is a mistake or a decompression bomb


class UploadError(MusesError):
    """A rejected upload; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def size_text(n_bytes: int) -> str:
    """A size the way `muses serve --max-upload-mb` counts it (1 MB = 1024 × 1024 bytes)."""
    return f"{n_bytes / 2**20:.1f} MB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:.0f} kB"


def read_upload(data: bytes, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The uploaded bytes as an RGB image, or :class:`UploadError` saying what is wrong."""
    if not data:
        raise UploadError("the uploaded file is empty; choose a photo (JPEG, PNG, WebP, ...)")
    if len(data) > max_bytes:
        raise UploadError(f"the file is larger than {size_text(max_bytes)}; send a smaller photo", 413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = img.size  # read from the header: nothing decoded yet
            if width * height > max_pixels:
                raise UploadError(
                    f"the image is {width}×{height} pixels, more than the {max_pixels:,} allowed; send a smaller photo", 413)
            img.load()
            return img.convert("RGB")
    except UploadError:
        raise
    except UnidentifiedImageError as exc:
        raise UploadError(f"not an image muses can read; send one of {', '.join(FORMATS)}", 415) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadError(f"the image has too many pixels ({exc}); send a smaller photo", 413) from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise UploadError(f"the image is corrupt or truncated ({exc}); send the photo again", 400) from exc


def thumbnail_data_url(image: Image.Image, size: int = 240) -> str:
    """A small JPEG of the upload as a data: URL, to show it beside its results (never stored)."""
    thumb = image.copy()
    thumb.thumbnail((size, size))
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
