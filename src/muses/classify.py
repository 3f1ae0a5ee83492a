"""Classify the collection: the model's top-k classes for every item, stored on the item.

An item's probabilities are the mean over its usable photos. Each batch of predictions is
committed on its own, so an interrupted run loses at most one batch and the next run goes on
from there (items already classified are skipped unless ``update_existing``). Each photo's
embedding is stored too (:mod:`muses.embeddings`), for "looks alike" and the collection map;
an item classified but not embedded (by an older muses, or another model) counts as not done.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from muses.collection.store import USABLE_STATUSES, Image, Item, Store
from muses.compute import ComputeSettings
from muses.embeddings import Embeddings
from muses.errors import MusesError
from muses.imaging import MAX_PIXELS
from muses.model.image_loading import load_images
from muses.model.loading import load_model
from muses.predictions import classification
from muses.settings import Project
from muses.progress import progress_bar

REPORT_NAME = "classify-report.json"


class ClassifyError(MusesError):
    """A bad classify setting (batch size, top-k)."""


@dataclass
class ClassifyReport:
    model: str
    classified: list[str] = field(default_factory=list)
    skipped_existing: int = 0  # already classified, left as they were
    without_images: list[str] = field(default_factory=list)  # no usable image to look at
    failed: dict[str, str] = field(default_factory=dict)  # item id -> why none of its images could be read
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)  # (item id, image path, why)

    def to_dict(self) -> dict:
        return {
            "model": self.model, "classified": len(self.classified), "skipped_existing": self.skipped_existing,
            "without_images": self.without_images, "failed": self.failed,
            "unreadable_images": [{"item_id": i, "path": p, "error": e} for i, p, e in self.unreadable],
        }

    def write(self, path: Path) -> Path:
        """The report as JSON: every item left out, and why."""
        path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return path


def _plan(store: Store, update_existing: bool, ids: Collection[str] | None,
          unembedded: Collection[str] = ()) -> tuple[list[str], int, list[str]]:
    """(item ids to classify, how many are skipped as already classified, ids without usable images)."""
    with store.session() as s:
        usable = set(s.scalars(select(Image.item_id).where(Image.status.in_(USABLE_STATUSES)).distinct()))
        q = select(Item.id, Item.classification.is_not(None)).order_by(Item.id)
        if ids is not None:
            q = q.where(Item.id.in_([str(i) for i in ids]))
        rows = s.execute(q).all()
    todo, skipped, without = [], 0, []
    for item_id, done in rows:
        if item_id not in usable:
            without.append(item_id)
        elif done and not update_existing and item_id not in unembedded:
            skipped += 1
        else:
            todo.append(item_id)
    return todo, skipped, without


def _batches(ids: list[str], store: Store, batch_size: int):
    """Items in groups of about ``batch_size`` photos (an item's photos are never split)."""
    batch: list[Item] = []
    n_images = 0
    for item in store.items(ids):
        batch.append(item)
        n_images += len(item.usable_images)
        if n_images >= batch_size:
            yield batch
            batch, n_images = [], 0
    if batch:
        yield batch


def classify_collection(
    project: Project,
    *,
    model_path: str | Path | None = None,
    runtime: str = "auto",
    batch_size: int = 32,
    top_k: int = 5,
    update_existing: bool = False,
    ids: Collection[str] | None = None,
    progress: bool = False,
    on_batch: Callable[[list[str]], None] | None = None,
    max_pixels: int = MAX_PIXELS,
    embed: bool = True,
    compute: ComputeSettings | None = None,
) -> ClassifyReport:
    """Predict every item with usable images that has no classification yet (all of them with
    ``update_existing``; only those among ``ids`` if given) and store on it
    ``{"model", "date", "classes": [{"name", "probability"}, ...]}``. ``on_batch`` is called
    with the ids of each committed batch. Photos that cannot be read (or are over
    ``max_pixels``) are listed in the report. ``embed``: store each photo's embedding too.
    ``compute`` with the Ray engine classifies the photos on a Ray cluster; the results are
    stored here, batch by batch, as on one machine (the embeddings too)."""
    if batch_size < 1:
        raise ClassifyError(f"batch_size must be >= 1, got {batch_size}")
    if top_k < 1:
        raise ClassifyError(f"top_k must be >= 1, got {top_k}")
    clf = load_model(model_path or project.model_path, runtime=runtime, project=project)
    model_name = clf.name
    store = Store.for_project(project)
    on_ray = compute is not None and compute.uses_ray
    embeddings = Embeddings.for_project(project, store) if embed else None
    if embeddings:
        embeddings.prepare(clf.features_key, model_name)
    todo, skipped, without = _plan(store, update_existing, ids, embeddings.items_missing() if embeddings else ())
    report = ClassifyReport(model=model_name, skipped_existing=skipped, without_images=without)
    bar = progress_bar(total=len(todo), desc="classify", unit="objects", disable=not progress)
    step = _ray_batches if on_ray else _local_batches
    try:
        for found in step(todo, store, clf, project, report, batch_size=batch_size, max_pixels=max_pixels,
                          compute=compute, runtime=runtime, model_path=model_path, embed=embeddings is not None):
            done = _store_batch(store, found, clf, model_name, top_k, report, embeddings)
            bar.update(len(found.probabilities))
            if on_batch:
                on_batch(done)
    finally:
        bar.close()
    return report


@dataclass
class Found:
    """One batch's results: item id -> the probabilities of its readable photos (one row each;
    none: nothing readable), and the photos' embeddings (image ids, rows) where asked for."""

    probabilities: dict[str, np.ndarray]
    embedded: tuple[list[int], np.ndarray] | None = None


def _local_batches(todo, store, clf, project, report, *, batch_size, max_pixels, embed, **_) -> Iterator[Found]:
    for items in _batches(todo, store, batch_size):
        photos = [(n, project.path(im.stored_path or im.original), im.id)
                  for n, item in enumerate(items) for im in item.usable_images]
        images, kept, failed = load_images([p for _, p, _ in photos], clf.cfg.input_size, max_pixels=max_pixels)
        report.unreadable += [(items[photos[i][0]].id, str(path), why) for i, path, why in failed]
        owner = np.asarray([photos[i][0] for i in kept])
        probs, embedded = np.zeros((0, 0)), None
        if images and embed:
            probs, feats = clf.predict_with_features(images, batch_size=batch_size)
            embedded = ([photos[i][2] for i in kept], feats)
        elif images:
            probs = clf.predict_pil(images, batch_size=batch_size)
        yield Found({item.id: probs[owner == n] if images else probs for n, item in enumerate(items)}, embedded)


def _ray_batches(todo, store, clf, project, report, *, batch_size, max_pixels, compute, runtime,
                 model_path, embed, **_) -> Iterator[Found]:
    """The photos classified (and embedded) on Ray, gathered back into items; a batch is yielded
    once it holds about ``batch_size`` photos and its last item is complete."""
    from muses.classify_ray import PhotoJob, classify_photos

    photos = [(item.id, str(project.path(im.stored_path or im.original)), im.id)
              for item in store.items(todo) for im in item.usable_images]
    job = PhotoJob(str(model_path or project.model_path), runtime, str(project.root), max_pixels, embed)
    batch = _Gathered()
    for result in classify_photos(photos, job, settings=compute, batch_size=batch_size):
        if result.item_id not in batch.probabilities and batch.photos >= batch_size:
            yield batch.found()
            batch = _Gathered()
        batch.add(result, report)
    if batch.probabilities:
        yield batch.found()


@dataclass
class _Gathered:
    """Photo results from Ray, by item, until there are enough for a batch."""

    probabilities: dict[str, list[np.ndarray]] = field(default_factory=dict)
    image_ids: list[int] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)
    photos: int = 0

    def add(self, result, report: ClassifyReport) -> None:
        rows = self.probabilities.setdefault(result.item_id, [])
        self.photos += 1
        if result.probabilities is None:
            report.unreadable.append((result.item_id, result.path, result.error))
            return
        rows.append(result.probabilities)
        if result.features is not None:
            self.image_ids.append(result.image_id)
            self.features.append(result.features)

    def found(self) -> Found:
        embedded = (self.image_ids, np.stack(self.features)) if self.features else None
        return Found({i: np.stack(rows) if rows else np.zeros((0, 0)) for i, rows in self.probabilities.items()},
                     embedded)


def _store_batch(store: Store, found: Found, clf, model_name: str, top_k: int, report: ClassifyReport,
                 embeddings: Embeddings | None) -> list[str]:
    """One transaction: each item's classification from the mean of its photos' probabilities
    (and the photos' embeddings)."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    done = []
    with store.transaction() as s:
        if embeddings and found.embedded:
            embeddings.put(s, *found.embedded)
        for item_id, rows in found.probabilities.items():
            if len(rows) == 0:
                report.failed[item_id] = "none of its usable images could be read"
                continue
            s.get(Item, item_id).classification = classification(
                clf.class_names, rows, model=model_name, top_k=top_k, date=now, threshold=clf.cfg.threshold)
            done.append(item_id)
    report.classified += done
    return done
