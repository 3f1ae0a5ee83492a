"""The stored photo embeddings (muses.embeddings) and the vector indexes over them (muses.search.vectors)."""
from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from muses.collection.store import Image, Item, Store
from muses.embeddings import SHARD_ROWS, Embeddings, ImageEmbedding
from muses.search.vectors import ExactIndex, HnswIndex, open_index

DIM = 16


def _store_with_images(project, n: int) -> tuple[Store, list[int]]:
    store = Store.for_project(project)
    with store.transaction() as s:
        s.add_all(Item(id=f"obj-{i}", title=f"Object {i}",
                       images=[Image(original=f"/nowhere/{i}.jpg", stored_path=f"images/{i}.jpg", status="ok")])
                  for i in range(n))
    with store.session() as s:
        return store, sorted(s.scalars(select(Image.id)))


def _put(embeddings: Embeddings, image_ids, vectors) -> None:
    with embeddings.store.transaction() as s:
        embeddings.put(s, image_ids, vectors)


@pytest.fixture
def filled(project):
    """300 photos with random embeddings, stored; returns (embeddings, image ids, the vectors)."""
    store, image_ids = _store_with_images(project, 300)
    embeddings = Embeddings.for_project(project, store)
    embeddings.prepare("weights-a", "m")
    vectors = np.random.default_rng(0).normal(size=(300, DIM)).astype(np.float32)
    _put(embeddings, image_ids, vectors)
    return embeddings, image_ids, vectors


def test_vectors_are_stored_normalised_float16_on_disk(filled):
    embeddings, image_ids, vectors = filled
    assert embeddings.count() == 300
    shard = embeddings.folder / "shard-00000.f16"
    assert shard.stat().st_size == SHARD_ROWS * DIM * 2  # float16, a fixed-size memory-mapped file
    slots = embeddings.slots_of(image_ids[:5])
    got = embeddings.vectors([slots[i] for i in image_ids[:5]])
    want = vectors[:5] / np.linalg.norm(vectors[:5], axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_a_photo_embedded_again_keeps_its_slot(filled):
    embeddings, image_ids, _ = filled
    before = embeddings.slots_of(image_ids[:3])
    _put(embeddings, image_ids[:3], np.ones((3, DIM)))
    assert embeddings.slots_of(image_ids[:3]) == before
    assert embeddings.count() == 300
    np.testing.assert_allclose(embeddings.vectors([before[image_ids[0]]])[0], np.full(DIM, 1 / 4), atol=1e-3)


def test_other_weights_start_afresh(filled):
    embeddings, _, _ = filled
    embeddings.prepare("weights-a")
    assert embeddings.count() == 300  # same weights: kept
    embeddings.prepare("weights-b")
    assert embeddings.count() == 0
    assert not (embeddings.folder / "shard-00000.f16").exists()


def test_vectors_of_another_length_are_refused(filled):
    embeddings, image_ids, _ = filled
    with pytest.raises(ValueError, match="length 8"):
        _put(embeddings, image_ids[:1], np.ones((1, 8)))


def test_items_missing_embeddings(project):
    store, image_ids = _store_with_images(project, 3)
    embeddings = Embeddings.for_project(project, store)
    embeddings.prepare("w")
    _put(embeddings, image_ids[:1], np.ones((1, DIM)))
    assert embeddings.items_missing() == {"obj-1", "obj-2"}


def test_deleting_a_photo_deletes_its_row(filled):
    embeddings, image_ids, _ = filled
    with embeddings.store.transaction() as s:
        s.delete(s.get(Item, "obj-0"))
    with embeddings.store.session() as s:
        assert s.get(ImageEmbedding, image_ids[0]) is None


def test_exact_index_finds_the_true_nearest(filled):
    embeddings, image_ids, vectors = filled
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[7] + 0.1
    want = np.argsort(-(unit @ (query / np.linalg.norm(query))))[:10]
    ids, sims = ExactIndex(embeddings).search(query, 10)
    assert ids.tolist() == [image_ids[i] for i in want]
    assert sims[0] >= sims[-1] and sims[0] > 0.9


def test_hnsw_index_agrees_and_is_rebuilt_when_photos_change(filled):
    embeddings, image_ids, vectors = filled
    exact_ids, _ = ExactIndex(embeddings).search(vectors[3], 10)
    hnsw = HnswIndex(embeddings)
    ids, sims = hnsw.search(vectors[3], 10)
    assert ids[0] == image_ids[3] and sims[0] == pytest.approx(1.0, abs=1e-2)
    assert len(set(ids.tolist()) & set(exact_ids.tolist())) >= 9  # recall@10 on random vectors
    assert (embeddings.folder / "index.usearch").is_file()
    _put(embeddings, [image_ids[3]], -vectors[3:4])  # photo 3 now points the other way
    ids, _ = HnswIndex(embeddings).search(vectors[3], 10)
    assert image_ids[3] not in ids.tolist()


def test_open_index_picks_by_size(filled):
    embeddings, _, _ = filled
    assert isinstance(open_index(embeddings), ExactIndex)
    assert isinstance(open_index(embeddings, exact_below=300), HnswIndex)
