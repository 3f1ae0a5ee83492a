"""Visual similarity: embeddings stored by classify, blended with the catalog, shown with a reason."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import delete

from muses.testing.catalog import add_met_items
from muses.classify import classify_collection
from muses.collection.store import Store
from muses.embeddings import Embeddings, ImageEmbedding
from muses.imaging import open_image
from muses.model.loading import load_model
from muses.search import Hit, open_engine
from muses.search.similar import CATALOG_WEIGHT, SimilarHit, VisualCache, blend, open_visual, similar_to_image, similar_to_items
from muses.settings import Project, init_project

pytestmark = pytest.mark.filterwarnings("ignore::muses.model.loading.DefinitionsMismatchWarning")


@pytest.fixture(scope="module")
def classified(tmp_path_factory, met_sample, tiny_model_path):
    """24 Met objects, classified (and so embedded) with the tiny model."""
    project = Project.load(init_project(tmp_path_factory.mktemp("similar") / "proj")[0].parent)
    ids = add_met_items(project, met_sample, 24)
    report = classify_collection(project, model_path=tiny_model_path)
    assert len(report.classified) == 24
    return project, ids


def test_classify_stores_one_embedding_per_usable_photo(classified):
    project, _ = classified
    embeddings = Embeddings.for_project(project)
    assert embeddings.count() == 24
    assert embeddings.meta().dim == 1280  # EfficientNet-Lite0's pooled features
    assert embeddings.items_missing() == set()


def test_a_photo_of_an_object_finds_that_object_first(classified, tiny_model_path):
    project, ids = classified
    store = Store.for_project(project)
    clf = load_model(tiny_model_path)
    photo = open_image(project.images_dir / f"{ids[5]}.jpg")
    visual = open_visual(Embeddings.for_project(project, store))
    result = similar_to_image(clf.predict_pil([photo]), clf.class_names, open_engine(store), limit=5,
                              features=clf.extract_features([photo]), visual=visual)
    first = result.hits[0]
    assert first.item_id == ids[5]
    assert first.looks_alike == pytest.approx(1.0, abs=0.01)
    assert first.why.startswith("looks alike 1.00")
    likeness = [h.looks_alike for h in result.hits]
    assert all(x is not None for x in likeness) and likeness[1] < 0.99


def test_more_like_an_item_by_look(classified):
    project, ids = classified
    store = Store.for_project(project)
    visual = open_visual(Embeddings.for_project(project, store))
    hits = similar_to_items(list(store.items([ids[0]])), open_engine(store), limit=10, visual=visual)
    assert len(hits) == 10 and ids[0] not in {h.item_id for h in hits}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.looks_alike is not None for h in hits)
    # the likeness is the cosine of the stored embeddings
    vectors = visual.embeddings.vectors(list(visual.embeddings.slots_of(range(1, 25)).values()))
    assert max(h.looks_alike for h in hits) <= float(np.max(vectors @ vectors.T - 2 * np.eye(24))) + 1e-3


def test_without_embeddings_the_catalog_answers(classified):
    project, ids = classified
    store = Store.for_project(project)
    hits = similar_to_items(list(store.items([ids[0]])), open_engine(store), limit=5, visual=None)
    assert hits and all(h.looks_alike is None and not h.why.startswith("looks") for h in hits)


def test_the_reason_in_words():
    hit = SimilarHit("1", 0.9, 0.834, ("material", "vessel (predicted)", "vase (catalog)"))
    assert hit.why == "looks alike 0.83 · catalog: vase · predicted vessel · same material"
    assert SimilarHit("2", 3.0, None, ("bust (predicted)",)).why == "predicted bust"


def test_blend_puts_look_first_and_lets_the_catalog_break_near_ties():
    visual = [("a", 0.80), ("b", 0.79), ("c", 0.50)]
    keyword = [Hit("b", 12.0, ("vase (catalog)",)), Hit("k", 30.0, ("vase (catalog)",))]
    hits = blend(visual, keyword, limit=10)
    assert [h.item_id for h in hits] == ["b", "a", "c", "k"]  # b's catalog match lifts it over a near tie
    assert hits[0].score == pytest.approx(0.79 + CATALOG_WEIGHT * 12 / 30)
    assert hits[-1].looks_alike is None  # found by the catalog only: after every visual neighbour
    assert [h.item_id for h in blend(visual, keyword, limit=2)] == ["b", "a"]


def test_classify_embeds_items_classified_before_embeddings_existed(classified, tiny_model_path):
    project, ids = classified
    embeddings = Embeddings.for_project(project)
    with embeddings.store.transaction() as s:  # as if classified by a muses without embeddings
        s.execute(delete(ImageEmbedding).where(ImageEmbedding.image_id <= 3))
    assert len(embeddings.items_missing()) == 3
    report = classify_collection(project, model_path=tiny_model_path)
    assert len(report.classified) == 3 and report.skipped_existing == 21
    assert embeddings.count() == 24 and embeddings.items_missing() == set()


def test_classify_without_embeddings(tmp_path, met_sample, tiny_model_path):
    project = Project.load(init_project(tmp_path / "proj")[0].parent)
    add_met_items(project, met_sample, 3)
    classify_collection(project, model_path=tiny_model_path, embed=False)
    assert Embeddings.for_project(project).count() == 0


def test_visual_cache_sees_a_new_classify_run(classified, tiny_model_path):
    project, _ = classified
    cache = VisualCache(Embeddings.for_project(project))
    first = cache.get()
    assert cache.get() is first  # nothing changed: the same index
    classify_collection(project, model_path=tiny_model_path, update_existing=True, ids=[classified[1][0]])
    assert cache.get() is not first


def test_cli_similar_item(classified, capsys, monkeypatch):
    from muses.cli import main

    project, ids = classified
    monkeypatch.setenv("MUSES_PROJECT", str(project.root))
    assert main(["similar", "--item", ids[2], "--limit", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["similar"]) == 4
    assert all(h["why"].startswith("looks alike") and h["looks_alike"] is not None for h in out["similar"])
    assert main(["similar", "--item", ids[2], "--limit", "3"]) == 0
    table = capsys.readouterr().out
    assert "looks alike" in table and "next:" in table
    assert main(["similar", "--item", "no-such-object"]) == 2
    assert "no-such-object" in capsys.readouterr().err


def test_web_shows_the_reason(classified, tiny_model_path):
    from fastapi.testclient import TestClient

    from muses.web import create_app

    project, ids = classified
    with TestClient(create_app(project, tiny_model_path)) as client:
        body = client.get("/api/similar", params={"ids": ids[1], "limit": 3}).json()
        assert [h["why"].startswith("looks alike") for h in body["similar"]] == [True] * 3
        page = client.get(f"/items/{ids[1]}", params={"similar": 1}).text
        assert 'class="why">looks alike' in page
        with open(project.images_dir / f"{ids[7]}.jpg", "rb") as f:
            uploaded = client.post("/api/predict", files={"file": ("x.jpg", f, "image/jpeg")}).json()
        assert uploaded["similar"][0]["id"] == ids[7] and uploaded["similar"][0]["looks_alike"] > 0.99


def test_embeddings_of_another_model_are_not_compared(classified, tiny_model_path, tmp_path, capsys, monkeypatch):
    import shutil

    from muses.cli import main

    project, ids = classified
    clf = load_model(tiny_model_path)
    visual = open_visual(Embeddings.for_project(project))
    assert visual.made_by(clf.features_key) and not visual.made_by("other weights")
    meta_file = Embeddings.for_project(project).folder / "meta.json"
    kept = meta_file.read_text(encoding="utf-8")
    meta_file.write_text(kept.replace(clf.features_key, "other weights"), encoding="utf-8")  # as another model left them
    monkeypatch.setenv("MUSES_PROJECT", str(project.root))
    photo = tmp_path / "photo.jpg"
    shutil.copy(project.images_dir / f"{ids[3]}.jpg", photo)
    try:
        assert main(["similar", str(photo), "--model", str(tiny_model_path), "--json"]) == 0
    finally:
        meta_file.write_text(kept, encoding="utf-8")
    captured = capsys.readouterr()
    assert "another model" in captured.err
    assert all(h["looks_alike"] is None for h in json.loads(captured.out)["similar"])
