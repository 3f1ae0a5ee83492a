"""The one decode function: every file fault is an UnreadableImage, the pixel limit is ours."""
from __future__ import annotations

import os

import pytest
from PIL import Image

from muses.model.decoding import MAX_PIXELS, UnreadableImage, open_image, try_open


def png_header_only(path, width, height):
    """A PNG whose header announces width x height pixels while its data is a few bytes: a
    decompression bomb's shape (the size is in the header), in a tiny file."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("content, why", [
    (None, "FileNotFoundError"),
    (b"", "UnidentifiedImageError"),
    (b"not an image", "UnidentifiedImageError"),
    (b"\xff\xd8\xff truncated jpeg", ""),
])
def test_unreadable_files_raise_one_error_naming_the_file(tmp_path, content, why):
    path = tmp_path / "photo.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UnreadableImage, match=f"cannot read image {path}: .*{why}") as exc:
        open_image(path)
    assert exc.value.path == path and isinstance(try_open(path), str)


def test_the_pixel_limit_is_a_parameter_checked_before_decoding(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (200, 100)).save(path)
    assert open_image(path, max_pixels=20_000).size == (200, 100)
    with pytest.raises(UnreadableImage, match=r"200x100 = 20,000 pixels, over max_pixels \(19,999\)"):
        open_image(path, max_pixels=19_999)
    bomb = png_header_only(tmp_path / "bomb.png", 20_000, 20_000)  # over Pillow's own global limit too
    assert "max_pixels" in try_open(bomb)
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS  # Pillow's global was left alone


@pytest.mark.parametrize("make", [lambda p: os.mkfifo(p), lambda p: p.mkdir()], ids=["fifo", "folder"])
def test_only_regular_files_are_opened(tmp_path, make):
    """A FIFO named .jpg would block the open forever; a device such as /dev/zero never ends."""
    path = tmp_path / "photo.jpg"
    make(path)
    with pytest.raises(UnreadableImage, match="not a regular file"):
        open_image(path)
    assert "not a regular file" in try_open("/dev/zero")
