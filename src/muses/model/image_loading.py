"""Fast image loading for inference: parallel decode + preprocess, in batches, in input order.

Decoding a JPEG and resizing it take most of the time of classifying a photo on a CPU, and
Pillow releases the GIL while it does both, so a thread pool scales them over the cores with
no process start-up and no pickling. JPEGs are decoded in draft mode (DCT scaling: a 3000 px
photo decodes at 1/8 scale for a 224 px model, several times faster) by
:func:`~muses.imaging.open_image`, the one decode function; the arithmetic stays in
:func:`~muses.model.preprocessing.preprocess_array`, the one preprocessing definition.

    for batch in iter_batches(paths, cfg, batch_size=32):
        probs = model(batch.x)                 # batch.x: float32 (n, 3, size, size)
        ...batch.indices...                    # positions in ``paths`` of batch.x's rows
        ...batch.failed...                     # (position, path, why) of unreadable images

While the model runs on one batch the pool already decodes the next one. Images already
decoded (uploads) go through :func:`preprocess_many`; :func:`load_images` only decodes.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from muses.imaging import MAX_PIXELS, UnreadableImage, try_open
from muses.model.preprocessing import PreprocessCfg, preprocess_array


@dataclass
class Batch:
    x: np.ndarray  # float32 (n_readable, 3, size, size), normalized
    indices: list[int]  # position in the input of each row of x
    failed: list[tuple[int, Path, str]] = field(default_factory=list)  # (position, path, why)


def default_workers() -> int:
    return os.cpu_count() or 1


def _check(batch_size: int, workers: int | None) -> int:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if workers is None:
        return default_workers()
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0: decode in the calling thread), got {workers}")
    return workers


def _load_one(path: Path, cfg: PreprocessCfg, max_pixels: int) -> np.ndarray | str:
    image = try_open(path, cfg.input_size, max_pixels=max_pixels)
    return image if isinstance(image, str) else preprocess_array(image, cfg)


def _split(items: list[tuple[int, Path]], results: list) -> tuple[list, list[int], list[tuple[int, Path, str]]]:
    good, indices, failed = [], [], []
    for (index, path), value in zip(items, results):
        if isinstance(value, str):
            failed.append((index, path, value))
        else:
            good.append(value)
            indices.append(index)
    return good, indices, failed


def _collect(chunk: list[tuple[int, Path]], results: list[np.ndarray | str], cfg: PreprocessCfg) -> Batch:
    rows, indices, failed = _split(chunk, results)
    return Batch(_stack(rows, cfg), indices, failed)


def _stack(rows: list[np.ndarray], cfg: PreprocessCfg) -> np.ndarray:
    size = cfg.input_size
    return np.stack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, 3, size, size), dtype=np.float32)


def iter_batches(
    paths: Sequence[str | Path],
    cfg: PreprocessCfg,
    batch_size: int = 32,
    *,
    workers: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Iterator[Batch]:
    """Preprocessed batches of ``paths`` in order; unreadable images (and those over
    ``max_pixels``) are listed in ``failed``, never raised. ``workers``: decoding threads
    (default: one per core; 0: no threads)."""
    workers = _check(batch_size, workers)
    items = [(i, Path(p)) for i, p in enumerate(paths)]
    chunks = [items[s : s + batch_size] for s in range(0, len(items), batch_size)]
    if workers == 0:
        for chunk in chunks:
            yield _collect(chunk, [_load_one(p, cfg, max_pixels) for _, p in chunk], cfg)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="muses-decode") as pool:

        def submit(chunk) -> list[Future]:
            return [pool.submit(_load_one, p, cfg, max_pixels) for _, p in chunk]

        pending = submit(chunks[0]) if chunks else []
        for n, chunk in enumerate(chunks):
            current = pending
            # One batch ahead: decoding overlaps the model's work, memory stays two batches.
            pending = submit(chunks[n + 1]) if n + 1 < len(chunks) else []
            yield _collect(chunk, [f.result() for f in current], cfg)


def _map(fn, items: list, workers: int) -> list:
    if workers == 0 or len(items) < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="muses-decode") as pool:
        return list(pool.map(fn, items))


def load_images(
    paths: Sequence[str | Path],
    input_size: int | None = None,
    *,
    workers: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> tuple[list[Image.Image], list[int], list[tuple[int, Path, str]]]:
    """Decoded RGB images (draft mode for JPEGs when ``input_size`` is given), in parallel.

    Returns (images, their positions in ``paths``, (position, path, why) of unreadable ones).
    """
    workers = _check(1, workers)
    items = [(i, Path(p)) for i, p in enumerate(paths)]
    results = _map(lambda item: try_open(item[1], input_size, max_pixels=max_pixels), items, workers)
    return _split(items, results)


def preprocess_many(images: Sequence[Image.Image], cfg: PreprocessCfg, *, workers: int | None = None) -> np.ndarray:
    """Already decoded images (uploads, a caller's own decoding) as one float32 batch,
    resized and normalized in parallel."""
    return _stack(_map(lambda im: preprocess_array(im, cfg), list(images), _check(1, workers)), cfg)


def decode_all(paths: str | Path | Sequence[str | Path], input_size: int, *, max_pixels: int = MAX_PIXELS) -> list[Image.Image]:
    """Every photo of ``paths`` decoded, or :class:`UnreadableImage` for the first that cannot be:
    the original's ``predict_new`` answers for all its photos or for none."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    images, _, failed = load_images(paths, input_size, max_pixels=max_pixels)
    if failed:
        _, path, why = failed[0]
        raise UnreadableImage(path, why)
    return images
