"""Parallel, batched image loading for inference (muses.model.image_loading)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from muses.model.image_loading import iter_batches, load_images, preprocess_many
from muses.imaging import open_image
from muses.model.preprocessing import PreprocessCfg, preprocess

CFG = PreprocessCfg(input_size=64, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@pytest.fixture
def photos(tmp_path, met_sample):
    """Three real Met photos, two drawn images (PNG, JPEG), a corrupt JPEG and a missing file."""
    real = sorted((met_sample / "images").glob("*.jpg"))[:3]
    drawn = []
    for i, (fmt, color) in enumerate([("png", (200, 30, 30)), ("jpg", (30, 30, 200))]):
        path = tmp_path / f"drawn{i}.{fmt}"
        img = Image.new("RGB", (90, 50), color)
        img.paste((255, 255, 255), (10, 10, 40, 40))
        img.save(path)
        drawn.append(path)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(real[0].read_bytes()[:200])  # a JPEG header and nothing after it
    return [real[0], drawn[0], corrupt, real[1], drawn[1], tmp_path / "missing.jpg", real[2]]


def _serial(path):
    return preprocess(open_image(path, CFG.input_size), CFG).numpy()


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_keep_order_and_list_unreadable_images(photos, workers):
    batches = list(iter_batches(photos, CFG, batch_size=3, workers=workers))
    assert [len(b.indices) + len(b.failed) for b in batches] == [3, 3, 1]
    indices = [i for b in batches for i in b.indices]
    assert indices == [0, 1, 3, 4, 6]
    failed = {i: why for b in batches for i, _, why in b.failed}
    assert sorted(failed) == [2, 5]
    assert "missing.jpg" in str(batches[1].failed[0][1]) and "FileNotFoundError" in failed[5]
    x = np.concatenate([b.x for b in batches])
    assert x.shape == (5, 3, 64, 64) and x.dtype == np.float32
    # the same numbers as the one preprocessing definition applied image by image
    expected = np.stack([_serial(photos[i]) for i in indices])
    np.testing.assert_array_equal(x, expected)


def test_an_all_bad_batch_is_empty_not_an_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    (batch,) = iter_batches([bad], CFG, batch_size=4, workers=2)
    assert batch.x.shape == (0, 3, 64, 64) and batch.indices == [] and batch.failed[0][0] == 0
    assert list(iter_batches([], CFG)) == []


def test_large_jpeg_decodes_in_draft_mode(tmp_path):
    big = tmp_path / "big.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8)).save(big, quality=80)
    images, indices, failed = load_images([big, tmp_path / "gone.png"], 224, workers=2)
    assert indices == [0] and failed[0][0] == 1
    # DCT scaling: 1/4 of 1600x1200 is still >= 224 on each side, 1/8 would not be
    assert images[0].size == (400, 300) and images[0].mode == "RGB"
    full, _, _ = load_images([big], None, workers=0)
    assert full[0].size == (1600, 1200)


def test_bad_arguments_say_what_to_do(photos):
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        list(iter_batches(photos, CFG, batch_size=0))
    with pytest.raises(ValueError, match="workers must be >= 0"):
        load_images(photos, 64, workers=-1)


def test_preprocess_many_matches_one_by_one(photos):
    images, _, _ = load_images(photos, 64, workers=2)
    x = preprocess_many(images, CFG, workers=2)
    np.testing.assert_array_equal(x, np.stack([preprocess(im, CFG).numpy() for im in images]))
    assert preprocess_many([], CFG).shape == (0, 3, 64, 64)
