"""The review pages and their API through FastAPI's TestClient, on a real store and real files."""
from __future__ import annotations

import csv
import re

import pytest
from fastapi.testclient import TestClient

from muses.testing.catalog import add_met_items
from muses.classify import classify_collection
from muses.collection import decisions as dec
from muses.collection.store import Store
from muses.settings import Project, init_project
from muses.web import create_app

pytestmark = pytest.mark.filterwarnings("ignore::muses.model.loading.DefinitionsMismatchWarning")

# The tiny model's classes, given to the Met records by their object types, so that the model's
# answers (it knows drawn shapes) and the catalog's labels disagree.
DEFINITIONS = """\
conflict_policy = "drop"
plurals = true
default_fields = { title = 1, object_type = 2, primary_object_type = 3 }

[[class]]
name = "circle"
synonyms = ["painting"]

[[class]]
name = "square"
synonyms = ["sculpture"]

[[class]]
name = "triangle"
synonyms = ["marble"]
"""


def write_review_files(project: Project, ids: list[str]) -> None:
    """What `muses label-issues` writes into the plots folder (columns of docs/CONTRACTS.md)."""
    project.plots_dir.mkdir(parents=True, exist_ok=True)
    with (project.plots_dir / "tiny_label_issues.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "title", "object_type", "naive_label", "suggested", "confidence", "label_quality", "image"])
        for item_id in ids[:3]:
            w.writerow([item_id, "t", "o", "circle", "square", "0.91", "0.05", f"images/{item_id}.jpg"])
    with (project.plots_dir / "tiny_suggested_labels.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "title", "object_type", "suggested", "confidence", "image"])
        for item_id in ids[3:5]:
            w.writerow([item_id, "t", "o", "triangle", "0.95", f"images/{item_id}.jpg"])


@pytest.fixture(scope="module")
def review_project(tmp_path_factory, met_sample, tiny_model_path) -> Project:
    project = Project.load(init_project(tmp_path_factory.mktemp("review") / "proj")[0].parent)
    project.definitions_path.write_text(DEFINITIONS, encoding="utf-8")
    ids = add_met_items(project, met_sample, 12)
    classify_collection(project, model_path=tiny_model_path)
    write_review_files(project, ids)
    return project


@pytest.fixture
def fresh(review_project):
    """Each test starts without decisions."""
    store = Store.for_project(review_project)
    with store.transaction() as s:
        s.query(dec.Decision).delete()
    return review_project


@pytest.fixture
def writer(fresh, tiny_model_path) -> TestClient:
    return TestClient(create_app(fresh, tiny_model_path, allow_writes=True, reviewer="Ana"))


@pytest.fixture
def reader(fresh, tiny_model_path) -> TestClient:
    return TestClient(create_app(fresh, tiny_model_path))


def issue_ids(project) -> list[str]:
    with (project.plots_dir / "tiny_label_issues.csv").open(newline="", encoding="utf-8") as fh:
        return [r["id"] for r in csv.DictReader(fh)]


def card_ids(html: str) -> list[str]:
    return re.findall(r'<article class="review-card[^"]*" data-id="([^"]+)"', html)


def test_the_review_index_counts_each_list(reader):
    r = reader.get("/review")
    assert r.status_code == 200
    assert "Labels that look wrong" in r.text and "3 left of 3" in r.text
    assert "Suggested labels" in r.text and "2 left of 2" in r.text
    assert "Model and catalog disagree" in r.text
    assert 'href="/review"' in reader.get("/items").text  # the header links the review


def test_a_card_shows_photo_object_number_catalog_words_and_the_models_answer(reader, fresh):
    r = reader.get("/review/issues")
    assert r.status_code == 200
    first = issue_ids(fresh)[0]
    assert card_ids(r.text) == issue_ids(fresh)
    assert f'href="/items/{first}"' in r.text and f">{first}</a>" in r.text
    item = Store.for_project(fresh).get_item(first)
    assert item.object_type[0] in r.text and f'src="/images/{item.images[0].id}"' in r.text
    assert "The model thinks this is <strong>square</strong>" in r.text and "91 % sure" in r.text
    for words in ("Catalog is right", "Use the suggestion", "Choose this class", "Not one of these", "Skip"):
        assert words in r.text
    assert "0 of 3 decided" in r.text and "read-only" in r.text


def test_the_disagreements_list_holds_records_whose_model_and_catalog_differ(reader, fresh):
    view_items = reader.get("/api/items", params={"disagree": True, "per_page": 100}).json()["items"]
    expected = sorted(i["id"] for i in view_items)
    assert expected  # the fixture makes some
    assert sorted(card_ids(reader.get("/review/disagreements").text)) == expected


def test_a_read_only_server_refuses_decisions(reader, fresh):
    item_id = issue_ids(fresh)[0]
    r = reader.post("/api/review/decisions", json={"item_id": item_id, "action": dec.CATALOG_RIGHT,
                                                   "catalog_value": "circle", "reviewer": "Ana"})
    assert r.status_code == 403 and "--allow-writes" in r.json()["detail"]
    assert dec.current_decisions(Store.for_project(fresh)) == {}


def test_decide_leaves_the_list_and_undo_brings_it_back(writer, fresh):
    first, second = issue_ids(fresh)[:2]
    r = writer.post("/api/review/decisions", json={"item_id": first, "action": dec.OTHER_CLASS, "chosen": "triangle",
                                                   "catalog_value": "circle", "suggested_value": "square"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["value"], body["reviewer"]) == ("triangle", "Ana")  # the --reviewer name
    r2 = writer.post("/api/review/decisions", json={"item_id": second, "action": dec.NOT_ONE, "reviewer": "Ben",
                                                    "catalog_value": "circle", "suggested_value": "square"})
    assert r2.json()["reviewer"] == "Ben"  # the name typed in the page wins
    page = writer.get("/review/issues").text
    assert first not in card_ids(page) and second not in card_ids(page) and "2 of 3 decided" in page
    assert writer.post(f"/api/review/decisions/{body['id']}/undo").status_code == 200
    assert first in card_ids(writer.get("/review/issues").text)
    assert set(dec.current_decisions(Store.for_project(fresh))) == {second}


def test_bad_decisions_are_refused_with_a_reason(writer, fresh, tiny_model_path):
    item_id = issue_ids(fresh)[0]
    r = writer.post("/api/review/decisions", json={"item_id": item_id, "action": dec.OTHER_CLASS, "chosen": "hexagon"})
    assert r.status_code == 422 and "not one of the classes" in r.json()["detail"]
    r = writer.post("/api/review/decisions", json={"item_id": item_id, "action": "maybe"})
    assert r.status_code == 422 and "unknown decision" in r.json()["detail"]
    r = writer.post("/api/review/decisions", json={"item_id": "no-such", "action": dec.NOT_ONE})
    assert r.status_code == 404
    assert writer.post("/api/review/decisions/9999/undo").status_code == 404
    nameless = TestClient(create_app(fresh, tiny_model_path, allow_writes=True))
    r = nameless.post("/api/review/decisions", json={"item_id": item_id, "action": dec.NOT_ONE})
    assert r.status_code == 422 and "reviewer's name" in r.json()["detail"]
    assert writer.get("/review/nope").status_code == 404
    assert dec.current_decisions(Store.for_project(fresh)) == {}


def test_another_sites_page_cannot_decide(writer, fresh):
    r = writer.post("/api/review/decisions", headers={"Origin": "http://evil.example"},
                    json={"item_id": issue_ids(fresh)[0], "action": dec.NOT_ONE})
    assert r.status_code == 403
    assert dec.current_decisions(Store.for_project(fresh)) == {}


def test_find_a_record_by_object_number(reader, fresh):
    wanted = issue_ids(fresh)[1]
    assert card_ids(reader.get("/review/issues", params={"q": wanted}).text) == [wanted]
    assert "Nothing left to decide here" in reader.get("/review/issues", params={"q": "zzz"}).text


def test_the_newest_label_issues_file_is_reviewed(reader, fresh):
    import os

    newer = fresh.plots_dir / "other_label_issues.csv"
    newer.write_text("id,title,object_type,naive_label,suggested,confidence,label_quality,image\n"
                     f"{issue_ids(fresh)[2]},t,o,circle,triangle,0.5,0.1,x\n", encoding="utf-8")
    try:
        os.utime(newer, (os.path.getmtime(newer) + 60,) * 2)
        assert card_ids(reader.get("/review/issues").text) == [issue_ids(fresh)[2]]
    finally:
        newer.unlink()


def test_a_damaged_review_file_is_named_with_what_to_do(reader, fresh):
    damaged = fresh.plots_dir / "zz_suggested_labels.csv"
    damaged.write_text("id,title\n1,t\n", encoding="utf-8")  # no suggested column
    try:
        r = reader.get("/review/suggestions")
        assert r.status_code == 503 and "zz_suggested_labels.csv" in r.text and "muses label-issues" in r.text
    finally:
        damaged.unlink()


def test_a_decision_takes_the_catalog_and_model_values_from_the_store_and_a_replay_adds_no_row(writer, fresh):
    item_id = issue_ids(fresh)[0]
    body = {"item_id": item_id, "action": dec.USE_SUGGESTION, "catalog_value": "forged", "suggested_value": "forged"}
    first = writer.post("/api/review/decisions", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["value"] == "square"  # the model's suggestion in the label-issues list, not "forged"
    d = dec.current_decisions(Store.for_project(fresh))[item_id]
    assert (d.catalog_value, d.suggested_value) == ("circle", "square")
    again = writer.post("/api/review/decisions", json=body)
    assert again.json()["id"] == first.json()["id"]  # the same decision replayed: no new row
    with Store.for_project(fresh).session() as s:
        assert s.query(dec.Decision).count() == 1
