"""The collection map: every classified object placed by how it looks, for the web page /map.

An object's position comes from its photos' mean embedding (:mod:`muses.embeddings`),
reduced to 50 dimensions with PCA and then laid out in 2-D with UMAP (objects that look alike
land close together); with fewer than ``UMAP_FROM`` objects, or with ``method="pca"``, the
first two principal components. The layout is computed once (``muses map``) and cached as
one compact JSON file, ``embeddings/map.json``, that the page fetches in one request:

    {"model", "method", "count", "classes": [names], "ids": [item ids], "images": [image id],
     "x": [0..10000], "y": [0..10000], "c": [class index or -1], "p": [probability %]}
"""
from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from muses.collection.store import Image, Item
from muses.embeddings import DIRNAME, SHARD_ROWS, Embeddings, ImageEmbedding, normalized
from muses.errors import MusesError
from muses.predictions import stored_classes

MAP_NAME = "map.json"
METHODS = ("auto", "umap", "pca")
UMAP_FROM = 30  # objects; below this UMAP's neighbourhoods are too small to mean anything
PCA_DIMS = 50
SCALE = 10_000  # coordinates are integers 0..SCALE: compact JSON, ample for any screen


class MapError(MusesError):
    """Nothing to map yet, or a method that cannot run."""


@dataclass(frozen=True)
class MapReport:
    path: Path
    count: int
    method: str
    seconds: float


def item_vectors(embeddings: Embeddings) -> tuple[list[str], list[int], np.ndarray]:
    """(item ids, each item's first embedded image id, the items' mean embeddings normalised),
    summed shard by shard so only the per-item result is held in memory."""
    image_ids, slots = embeddings.slots()
    with embeddings.store.session() as s:
        rows = s.execute(select(Image.id, Image.item_id, Image.position)
                         .join(ImageEmbedding, ImageEmbedding.image_id == Image.id)).all()
    owner = {image_id: (item_id, position) for image_id, item_id, position in rows}
    item_ids = sorted({item_id for item_id, _ in owner.values()})
    row_of = {item_id: n for n, item_id in enumerate(item_ids)}
    first_image: dict[str, tuple[int, int]] = {}
    for image_id, (item_id, position) in owner.items():
        first_image[item_id] = min(first_image.get(item_id, (position, image_id)), (position, image_id))
    meta = embeddings.meta()
    sums = np.zeros((len(item_ids), meta.dim if meta else 0), dtype=np.float32)
    item_of_slot = np.asarray([row_of[owner[i][0]] if i in owner else -1 for i in image_ids.tolist()], dtype=np.int64)
    for first, shard in embeddings.shards():
        here = (slots >= first) & (slots < first + SHARD_ROWS) & (item_of_slot >= 0)
        np.add.at(sums, item_of_slot[here], np.asarray(shard[slots[here] - first], dtype=np.float32))
    return item_ids, [first_image[i][1] for i in item_ids], normalized(sums)


def layout(vectors: np.ndarray, *, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D positions scaled to 0..SCALE, and the method that made them."""
    if method not in METHODS:
        raise MapError(f"map method must be one of {', '.join(METHODS)}, got {method!r}")
    from sklearn.decomposition import PCA

    n = len(vectors)
    if n < 3:
        xy, used = np.zeros((n, 2)) + np.arange(n)[:, None], "pca"
    else:
        reduced = PCA(n_components=min(PCA_DIMS, n - 1, vectors.shape[1]), random_state=seed).fit_transform(vectors)
        if method == "pca" or (method == "auto" and n < UMAP_FROM):
            xy, used = reduced[:, :2], "pca"
        else:
            import umap  # imported here: numba's start-up costs seconds, only `muses map` pays it

            xy = umap.UMAP(n_neighbors=min(15, n - 1), min_dist=0.05, metric="cosine", random_state=seed,
                           n_jobs=1).fit_transform(reduced)
            used = "umap"
    span = np.ptp(xy, axis=0)
    xy = (xy - xy.min(axis=0)) / np.where(span > 0, span, 1)
    return np.rint(xy * SCALE).astype(np.int64), used


def build_map(project, *, method: str = "auto", seed: int = 0, embeddings: Embeddings | None = None) -> MapReport:
    """Lay out every embedded object and write ``embeddings/map.json``."""
    start = time.monotonic()
    embeddings = embeddings or Embeddings.for_project(project)
    meta = embeddings.meta()
    if meta is None or embeddings.count() == 0:
        raise MapError("no photo has been looked at yet: run `muses classify` first, then `muses map`")
    item_ids, images, vectors = item_vectors(embeddings)
    xy, used = layout(vectors, method=method, seed=seed)
    classes: list[str] = []
    codes, probs = [], []
    with embeddings.store.session() as s:
        stored = dict(s.execute(select(Item.id, Item.classification).join(Image, Image.item_id == Item.id)
                                .join(ImageEmbedding, ImageEmbedding.image_id == Image.id)).all())
    for item_id in item_ids:
        top = stored_classes(stored.get(item_id))[:1]
        if top and top[0].name not in classes:
            classes.append(top[0].name)
        codes.append(classes.index(top[0].name) if top else -1)
        probs.append(round(top[0].probability * 100) if top else 0)
    data = {"model": meta.model, "method": used, "count": len(item_ids), "date": dt.date.today().isoformat(),
            "classes": classes, "ids": item_ids, "images": images, "x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(),
            "c": codes, "p": probs}
    path = embeddings.folder / MAP_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)  # the web page never reads half a file
    return MapReport(path, len(item_ids), used, time.monotonic() - start)


def map_path(project) -> Path:
    return project.root / DIRNAME / MAP_NAME
