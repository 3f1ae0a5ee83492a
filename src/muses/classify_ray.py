"""Classify photos on a Ray cluster: Ray Data reads the work list in shards, an actor pool
holds one model per worker, and the photos' probabilities stream back to the driver in order.

The workers read photos by path, so every worker must see the project folder at the same path
(one machine, or a shared file system on a cluster).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from muses.compute import ComputeSettings, connect


@dataclass(frozen=True)
class PhotoJob:
    """What every worker needs to load the model once."""

    model_path: str
    runtime: str
    project_root: str
    max_pixels: int
    embed: bool = False  # each photo's pooled features too (the same backbone pass)


@dataclass(frozen=True)
class PhotoResult:
    item_id: str
    path: str
    probabilities: np.ndarray | None  # None: the photo could not be read (``error`` says why)
    error: str = ""
    image_id: int = 0
    features: np.ndarray | None = None  # the photo's pooled features, when the job embeds


class _PhotoClassifier:
    """One Ray actor: the model loaded once, then called with batches of photo rows."""

    def __init__(self, job: PhotoJob):
        from muses.model.loading import load_model

        self.clf = load_model(job.model_path, runtime=job.runtime, project=job.project_root)
        self.max_pixels, self.embed = job.max_pixels, job.embed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from muses.model.image_loading import load_images

        paths = [str(p) for p in batch["path"]]
        images, kept, failed = load_images(paths, self.clf.cfg.input_size, max_pixels=self.max_pixels)
        probs = np.full((len(paths), len(self.clf.class_names)), np.nan, dtype=np.float64)
        feats = np.full((len(paths), self.clf.cfg.num_features if self.embed else 0), np.nan, dtype=np.float32)
        if images and self.embed:
            probs[kept], feats[kept] = self.clf.predict_with_features(images, batch_size=len(images))
        elif images:
            probs[kept] = self.clf.predict_pil(images, batch_size=len(images))
        errors = np.full(len(paths), "", dtype=object)
        for i, _, why in failed:
            errors[i] = why
        return {**batch, "probs": probs, "features": feats, "error": errors}


def classify_photos(photos: Sequence[tuple[str, str, int]], job: PhotoJob, *, settings: ComputeSettings,
                    batch_size: int) -> Iterator[PhotoResult]:
    """Each ``(item id, photo path, image id)``'s class probabilities (and features), in the order given."""
    if not photos:
        return
    connect(settings)
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # an item's photos stay together for the driver
    ctx.enable_progress_bars = False
    # at least one shard per worker, a few per worker on big runs (so a slow shard does not hold the rest)
    shards = min(len(photos), max(settings.workers, min(len(photos) // batch_size, 8 * settings.workers)))
    ds = ray.data.from_items([{"item_id": i, "path": p, "image_id": m} for i, p, m in photos],
                             override_num_blocks=shards)
    out = ds.map_batches(_PhotoClassifier, fn_constructor_kwargs={"job": job}, batch_size=batch_size,
                         compute=ray.data.ActorPoolStrategy(size=settings.workers), num_cpus=1,
                         batch_format="numpy")
    for b in out.iter_batches(batch_size=batch_size, batch_format="numpy"):
        for item_id, path, image_id, probs, feats, error in zip(b["item_id"], b["path"], b["image_id"], b["probs"],
                                                                b["features"], b["error"]):
            yield PhotoResult(str(item_id), str(path), None if error else np.asarray(probs), str(error),
                              int(image_id), np.asarray(feats) if job.embed and not error else None)
