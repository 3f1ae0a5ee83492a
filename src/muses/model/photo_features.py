"""Pooled backbone features of photo files, chunk by chunk, on this machine or on Ray actors
(each holding its own copy of the predictor); the chunks' answers come back in order.

    for chunk in features_in_chunks(predictor, chunks, compute=settings):
        chunk.readable, chunk.failed, chunk.values    # indices into the chunk, (path, why), rows
"""
from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from muses.imaging import MAX_PIXELS
from muses.model.image_loading import load_images
from muses.settings import ComputeSettings


@dataclass(frozen=True)
class ChunkFeatures:
    readable: list[int]  # indices into the chunk of the photos that could be read
    failed: list[tuple[Path, str]]  # (photo, why) of the others
    values: np.ndarray  # one row per readable photo


def chunk_features(predictor, chunk: Sequence[Path], max_pixels: int = MAX_PIXELS) -> ChunkFeatures:
    images, readable, failed = load_images(chunk, predictor.cfg.input_size, max_pixels=max_pixels)
    values = predictor.extract_features(images, max(1, len(images)))
    return ChunkFeatures(list(readable), [(Path(path), why) for _, path, why in failed], values)


def _worker(predictor, max_pixels: int):
    return functools.partial(chunk_features, predictor, max_pixels=max_pixels)


def features_in_chunks(predictor, chunks: Sequence[Sequence[Path]], *, max_pixels: int = MAX_PIXELS,
                       compute: ComputeSettings | None = None) -> Iterator[ChunkFeatures]:
    """:func:`chunk_features` of every chunk, in order; on Ray actors when ``compute`` says so."""
    if compute is not None and compute.uses_ray:
        from muses.compute.ray_pool import map_on_actors

        yield from map_on_actors(functools.partial(_worker, predictor, max_pixels), chunks, settings=compute)
        return
    for chunk in chunks:
        yield chunk_features(predictor, chunk, max_pixels)
