"""The one decoder (muses.imaging): every file fault is an UnreadableImage, the pixel limit is ours,
and a photo shows the same upright, on-white pixels to training, prediction and the upload page."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from test_collection_images import png_header_only as png_header

from muses.imaging import MAX_PIXELS, TooManyPixels, UnreadableImage, decode, open_image, try_open
from muses.settings import ImageSettings

ORIENTATION = 0x0112
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 160, 0), (0, 0, 255), (255, 255, 255)


def png_header_only(path, width, height):
    """A PNG whose header announces width x height pixels while its data is a few bytes: a
    decompression bomb's shape (the size is in the header), in a tiny file."""
    path.write_bytes(png_header(width, height))
    return path


def encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def tagged(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif


def blocks(columns: int, rows: int) -> Image.Image:
    """Flat 16-pixel squares, each colour its own: no two turns or flips of it look alike, and a
    JPEG of it (4:4:4, quality 100) decodes to the same pixels whichever way it is stored."""
    colours = [RED, GREEN, BLUE, (250, 200, 0), (0, 200, 200), (120, 0, 140), (90, 90, 90), (240, 140, 160)]
    img = Image.new("RGB", (16 * columns, 16 * rows))
    for n in range(columns * rows):
        img.paste(colours[n % len(colours)], (16 * (n % columns), 16 * (n // columns), 16 * (n % columns + 1),
                                               16 * (n // columns + 1)))
    return img


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_no_other_module_decodes_photos():
    """A second decoder is how prediction came to see other pixels than training."""
    import re

    import muses

    decoding = re.compile(r"\bImage\.open\(|\.convert\(\"RGB\"\)|exif_transpose")
    src = Path(muses.__file__).parent
    assert [str(p.relative_to(src)) for p in sorted(src.rglob("*.py"))
            if p.name != "imaging.py" and decoding.search(p.read_text(encoding="utf-8"))] == []


# -- every fault is one error, naming the file ---------------------------------------------------------------
@pytest.mark.parametrize("content, kind, why", [
    (None, "unreadable", "FileNotFoundError"),
    (b"", "empty", "zero-byte file"),
    (b"not an image", "unknown-format", "not a known image format"),
    (b"\xff\xd8\xff truncated jpeg", "unknown-format", ""),
])
def test_unreadable_files_raise_one_error_naming_the_file(tmp_path, content, kind, why):
    path = tmp_path / "photo.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UnreadableImage, match=f"cannot read image {path}: .*{why}") as exc:
        open_image(path)
    assert exc.value.path == path and exc.value.kind == kind and try_open(path) == exc.value.why


def test_a_file_that_ends_early_is_truncated_and_garbage_is_unknown(tmp_path):
    photo = encoded(Image.effect_noise((120, 90), 60).convert("RGB"), "JPEG", quality=95)
    with pytest.raises(UnreadableImage, match=r"cannot read image the upload: the file ends early") as exc:
        open_image(photo[: len(photo) // 2], name="the upload")
    assert exc.value.kind == "truncated"
    png = encoded(Image.effect_noise((120, 90), 60), "PNG")
    with pytest.raises(UnreadableImage) as exc:
        open_image(png[: len(png) // 2])
    assert exc.value.kind == "truncated"
    with pytest.raises(UnreadableImage, match=r"cannot read image \(data\): not a known image format"):
        open_image(bytes(range(256)) * 4)


def test_the_pixel_limit_is_a_parameter_checked_before_decoding(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (200, 100)).save(path)
    assert open_image(path, max_pixels=20_000).size == (200, 100)
    with pytest.raises(TooManyPixels, match=r"200x100 = 20,000 pixels, over max_pixels \(19,999\)") as exc:
        open_image(path, max_pixels=19_999)
    assert exc.value.kind == "too-large" and isinstance(exc.value, UnreadableImage)
    bomb = png_header_only(tmp_path / "bomb.png", 20_000, 20_000)  # over Pillow's own global limit too
    assert "400,000,000 pixels, over max_pixels" in try_open(bomb)
    # bytes are bounded the same way: 10^8 pixels announced, a few bytes of data, never decoded
    with pytest.raises(TooManyPixels, match=r"10000x10000 = 100,000,000 pixels, over max_pixels \(1,000\)"):
        open_image(png_header(10_000, 10_000), max_pixels=1000)
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS  # Pillow's global was left alone
    assert MAX_PIXELS == ImageSettings().max_pixels  # one default: [images] max_pixels of muses.toml
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        open_image(path, max_pixels=0)


@pytest.mark.parametrize("make", [lambda p: os.mkfifo(p), lambda p: p.mkdir()], ids=["fifo", "folder"])
def test_only_regular_files_are_opened(tmp_path, make):
    """A FIFO named .jpg would block the open forever; a device such as /dev/zero never ends."""
    path = tmp_path / "photo.jpg"
    make(path)
    with pytest.raises(UnreadableImage, match="not a regular file"):
        open_image(path)
    assert "not a regular file" in try_open("/dev/zero")


def test_paths_bytes_and_open_files_decode_alike(tmp_path):
    path = tmp_path / "photo.png"
    blocks(3, 2).save(path)
    from_path = pixels(open_image(path))
    with path.open("rb") as fh:
        assert np.array_equal(pixels(open_image(fh)), from_path)
    assert np.array_equal(pixels(open_image(path.read_bytes())), from_path)


def test_jpeg_draft_mode_when_a_target_size_is_given():
    big = encoded(blocks(250, 188).resize((4000, 3000)), "JPEG", quality=80)
    decoded = decode(big, draft=224)
    assert (decoded.width, decoded.height) == (4000, 3000)  # the full size, from the header
    assert decoded.image.size == (500, 375)  # decoded at 1/8 scale, never at full size
    assert open_image(big, 224).size == (500, 375) and open_image(big).size == (4000, 3000)


# -- EXIF orientation ------------------------------------------------------------------------------
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright(orientation):
    stored = blocks(3, 2)  # 48 x 32
    png = encoded(stored, "PNG", exif=tagged(orientation))  # lossless: the turn is the only change
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(png))).convert("RGB")
    image = open_image(png)
    assert image.size == ((32, 48) if orientation >= 5 else (48, 32))
    assert np.array_equal(pixels(image), pixels(expected))
    decoded = decode(png)  # the stored pixels, for checks that look at them before the turn
    assert decoded.orientation == orientation and np.array_equal(pixels(decoded.image), pixels(stored))
    assert (decoded.width, decoded.height) == image.size


def test_orientation_6_is_a_quarter_turn_clockwise():
    """A phone held upright stores a landscape frame tagged 6: its top-left pixel is shown top right."""
    stored = Image.new("RGB", (40, 20), WHITE)
    stored.paste(RED, (0, 0, 4, 4))
    image = open_image(encoded(stored, "PNG", exif=tagged(6)))
    assert image.size == (20, 40)
    assert image.getpixel((19, 0)) == RED and image.getpixel((0, 0)) == WHITE


# -- colours: CMYK, 16-bit, floats, transparency -------------------------------------------------------
def test_cmyk_becomes_rgb_with_its_colours():
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red ink
    cmyk.paste((0, 0, 0, 255), (0, 0, 16, 32))  # black ink on the left
    tiff = open_image(encoded(cmyk, "TIFF"))
    assert tiff.mode == "RGB" and tiff.getpixel((24, 16)) == RED and tiff.getpixel((4, 16)) == (0, 0, 0)
    jpeg = pixels(open_image(encoded(cmyk, "JPEG", quality=100)))  # Adobe CMYK JPEG, stored inverted
    assert np.abs(jpeg[16, 24] - RED).max() <= 8 and jpeg[16, 4].max() <= 8


def test_sixteen_bit_and_float_pixels_are_scaled_to_eight_bits():
    wide = np.array([[0, 257 * 128, 65535]], dtype=np.uint16).repeat(4, axis=0)
    for img in (Image.fromarray(wide), Image.fromarray(wide.astype(np.int32), "I")):
        fmt = "PNG" if img.mode.startswith("I;16") else "TIFF"
        image = open_image(encoded(img, fmt))
        assert image.mode == "RGB" and [image.getpixel((x, 0)) for x in range(3)] == [(0,) * 3, (128,) * 3, (255,) * 3]
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32).repeat(4, axis=0), "F")
    image = open_image(encoded(floats, "TIFF"))  # scientific TIFFs keep intensities from 0 to 1
    assert [image.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


@pytest.mark.parametrize("mode, opaque, clear, seen", [
    ("RGBA", (255, 0, 0, 255), (0, 0, 0, 0), RED),
    ("RGBA", (0, 0, 0, 128), (0, 0, 255, 0), (127, 127, 127)),  # half transparent black: grey
    ("LA", (0, 255), (0, 0), (0, 0, 0)),
])
def test_transparency_is_laid_on_white(mode, opaque, clear, seen):
    img = Image.new(mode, (32, 32), clear)
    img.paste(opaque, (0, 0, 16, 32))
    image = open_image(encoded(img, "PNG"))
    assert image.mode == "RGB" and image.getpixel((24, 16)) == WHITE
    assert np.abs(np.subtract(image.getpixel((4, 16)), seen)).max() <= 1


@pytest.mark.parametrize("mode, clear", [("P", 0), ("RGB", (0, 0, 0)), ("L", 0)])
def test_a_transparent_colour_is_white_too(mode, clear):
    """Palette PNGs (and RGB or grey ones with a tRNS colour) mark one colour transparent."""
    img = Image.new(mode, (32, 32), clear)
    if mode == "P":
        img.putpalette([0, 0, 0] + list(RED) + [0] * 762)
    img.paste(1 if mode == "P" else (255, 0, 0) if mode == "RGB" else 255, (0, 0, 16, 32))
    image = open_image(encoded(img, "PNG", transparency=clear))
    assert image.getpixel((24, 16)) == WHITE and image.getpixel((4, 16)) == (RED if mode != "L" else WHITE)


def test_grey_and_black_and_white_become_rgb():
    for mode, value in (("L", 90), ("1", 1)):
        image = open_image(encoded(Image.new(mode, (8, 8), value), "PNG"))
        assert image.mode == "RGB" and image.getpixel((0, 0)) == ((90,) * 3 if mode == "L" else WHITE)


# -- the same pixels through prediction, the upload API and the training copy ------------------------------
@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A phone photo stored sideways (48 x 32, EXIF 6: shown 32 x 48) and a transparent PNG, each
    with its reference: the upright JPEG and the PNG on white, as a camera or an editor would save them."""
    folder = tmp_path_factory.mktemp("photos")
    jpeg = dict(quality=100, subsampling=0)
    stored = blocks(3, 2)
    stored.save(folder / "rotated.jpg", exif=tagged(6), **jpeg)
    stored.transpose(Image.Transpose.ROTATE_270).save(folder / "upright.jpg", **jpeg)
    cutout = Image.new("RGBA", (48, 48), (0, 0, 0, 0))  # an object cut out of its background
    cutout.paste(blocks(2, 2).convert("RGBA"), (8, 8))
    cutout.save(folder / "transparent.png")
    on_white = Image.new("RGB", (48, 48), WHITE)
    on_white.paste(blocks(2, 2), (8, 8))
    on_white.save(folder / "on_white.png")
    return {name: folder / f"{name}.{'jpg' if name in ('rotated', 'upright') else 'png'}"
            for name in ("rotated", "upright", "transparent", "on_white")}


PAIRS = [("rotated", "upright"), ("transparent", "on_white")]


@pytest.fixture(scope="module")
def predictor(tiny_model_path):
    from muses.model.loading import load_model

    return load_model(tiny_model_path)


def test_prediction_sees_the_photo_upright_and_on_white(photos, predictor):
    """`muses predict` decodes with load_images and answers with predict_pil; iter_batches is classify's way."""
    from muses.model.image_loading import iter_batches, load_images

    order = [photos[name] for pair in PAIRS for name in pair]
    images, kept, failed = load_images(order, predictor.cfg.input_size)
    assert kept == [0, 1, 2, 3] and not failed
    assert images[0].size == images[1].size == (32, 48)
    (batch,) = iter_batches(order, predictor.cfg, batch_size=4)
    probs = predictor.predict_pil(images)
    for n in (0, 2):  # each photo and its reference: the same tensor, the same probabilities
        assert np.array_equal(batch.x[n], batch.x[n + 1])
        np.testing.assert_allclose(probs[n], probs[n + 1], atol=1e-6)


def test_muses_predict_answers_the_same_for_the_photo_and_its_reference(photos, project, tiny_model_path, capsys):
    from muses.cli import main

    for pair in PAIRS:
        assert main(["predict", *(str(photos[name]) for name in pair), "--model", str(tiny_model_path), "--json"]) == 0
        first, second = json.loads(capsys.readouterr().out)["answers"]
        assert first["classes"] == second["classes"]


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_model_path):
    from fastapi.testclient import TestClient

    from muses.settings import Project, init_project
    from muses.web import create_app

    project = Project.load(init_project(tmp_path_factory.mktemp("web") / "proj")[0].parent)
    return TestClient(create_app(project, tiny_model_path))


@pytest.mark.filterwarnings("ignore::muses.model.loading.DefinitionsMismatchWarning")
def test_the_upload_api_sees_the_photo_upright_and_on_white(photos, client, predictor):
    from muses.web.uploads import read_upload

    for photo, reference in PAIRS:
        data = photos[photo].read_bytes()
        assert np.array_equal(pixels(read_upload(data)), pixels(open_image(photos[reference])))
        # named and typed as nothing in particular: the type is sniffed from the bytes
        upload = {name: {"file": ("photo", photos[name].read_bytes(), "application/octet-stream")}
                  for name in (photo, reference)}
        answers = [client.post("/api/predict", files=upload[name]) for name in (photo, reference)]
        assert [r.status_code for r in answers] == [200, 200], answers[0].text
        assert answers[0].json()["classes"] == answers[1].json()["classes"]
        expected = predictor.predict_pil([open_image(photos[reference])])[0]
        assert max(c["probability"] for c in answers[0].json()["classes"]) == pytest.approx(expected.max(), abs=1e-5)


def test_the_training_copy_shows_what_prediction_sees(photos, project, tmp_path):
    """`muses generate-images` writes the copies training reads; they must look like the photo
    prediction decodes from the same original (a JPEG re-encoding apart). Turned sideways or
    on black, a photo differs from its copy by a hundred levels on average."""
    from muses.collection.images import generate_images
    from muses.collection.importers import import_records
    from muses.collection.store import OK, Store

    (tmp_path / "photos").mkdir()
    for name in ("rotated", "transparent"):
        (tmp_path / "photos" / photos[name].name).write_bytes(photos[name].read_bytes())
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps({"id": name, "title": name, "image": f"photos/{photos[name].name}"}) + "\n"
                               for name in ("rotated", "transparent")), encoding="utf-8")
    store = Store.for_project(project)
    import_records(store, records)
    generate_images(project, store=store, workers=1)
    for image in store.images():
        assert image.status == OK, image.problem
        copy = pixels(open_image(project.path(image.stored_path)))
        seen = pixels(open_image(photos[image.item_id]))  # what `muses predict` and the upload page see
        assert copy.shape == seen.shape
        # A JPEG at quality 90 with half-resolution colour: a few levels, more only where colours meet.
        diff = np.abs(copy - seen)
        assert np.median(diff) <= 2 and diff.mean() <= 8, (np.median(diff), diff.mean())
