"""The review pages and their API through FastAPI's TestClient, on a real store and real files."""
from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from muses.cli import main
from muses.testing.catalog import add_met_items
from muses.classify import classify_collection
from muses.collection import decisions as dec
from muses.collection.store import Item, Store
from muses.predictions import classification
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


def page_words(html: str) -> str:
    """The text a person reads on a page, its spaces as the browser shows them."""
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


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
    assert item.object_type[0] in r.text and f'src="/images/{item.images[0].id}/display"' in r.text
    words = page_words(r.text)
    assert "Cross-checked estimate (from models that did not see this photo): square 91 %" in words
    assert "Stored answer: " in words  # the tiny model's answer stored on the record, beside it
    for words in ("Catalog is right", "Use the suggestion", "Choose this class", "None of these", "Skip"):
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


# -- decisions as records (issue 21) --------------------------------------------------------------
def test_no_literal_backticks_and_another_class_has_no_default_but_none_of_these(reader):
    for page in ("/review", "/review/issues"):
        assert "`" not in reader.get(page).text
    select = re.search(r'<select aria-label="another class">(.*?)</select>', reader.get("/review/issues").text, re.S)
    options = re.findall(r"<option([^>]*)>([^<]*)</option>", select.group(1))
    assert options[0] == (' value="" selected disabled', "choose another class…")
    assert options[-1] == (' value="none"', dec.NONE_OF_THESE)


def test_the_object_page_shows_revises_and_withdraws_a_decision(writer, fresh):
    item_id = issue_ids(fresh)[0]
    page = writer.get(f"/items/{item_id}").text
    assert "Not reviewed" in page and "Catalog keyword label" in page and "Naive label" not in page
    assert page.index("Review decision") < page.index("Predicted classes")
    r = writer.post("/decisions/decide", data={"item_id": item_id, "chosen": "triangle", "note": "a pyramid",
                                               "reviewer": "Ben"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/items/{item_id}#decision"
    page = writer.get(f"/items/{item_id}").text
    assert "Decided: <strong>triangle</strong>" in page and "by Ben" in page and "Note: a pyramid" in page
    writer.post("/decisions/decide", data={"item_id": item_id, "chosen": dec.NONE_OF_THESE, "reviewer": "Cleo"})
    assert f"Decided: <strong>{dec.NONE_OF_THESE}</strong>" in writer.get(f"/items/{item_id}").text
    writer.post("/decisions/decide", data={"item_id": item_id, "withdraw": "1", "reviewer": "Cleo"})
    page = writer.get(f"/items/{item_id}").text
    assert "Not reviewed (its decision was withdrawn)" in page
    history = writer.get("/decisions", params={"item": item_id}).text
    assert [m for m in re.findall(r"<td><strong>([^<]+)</strong></td>", history)] == [
        dec.WITHDRAWN, dec.NONE_OF_THESE, "triangle"]
    assert "by reviewer:" in history and "a pyramid" in history
    ben = writer.get("/decisions", params={"reviewer": "Ben"}).text
    assert "Decisions by Ben" in ben and re.findall(r"<td><strong>([^<]+)</strong></td>", ben) == ["triangle"]
    assert 'href="/items?reviewer=Ben"' in ben and 'href="/items?reviewed=no"' in ben


def test_the_decide_form_refuses_no_choice_and_a_read_only_server(writer, reader, fresh):
    item_id = issue_ids(fresh)[0]
    r = writer.post("/decisions/decide", data={"item_id": item_id, "reviewer": "Ben"})
    assert r.status_code == 422 and "none of these" in r.text
    assert reader.post("/decisions/decide", data={"item_id": item_id, "chosen": "circle"}).status_code == 403
    assert "Save decision" not in reader.get(f"/items/{item_id}").text
    assert dec.current_decisions(Store.for_project(fresh)) == {}


def test_undo_after_a_reload_asks_the_server_for_the_last_decision(writer, fresh):
    first, second = issue_ids(fresh)[:2]
    assert writer.get("/api/review/decisions/last", params={"reviewer": "Ana"}).status_code == 404
    for item_id in (first, second):
        writer.post("/api/review/decisions", json={"item_id": item_id, "action": dec.NOT_ONE, "list_name": "issues"})
    last = writer.get("/api/review/decisions/last", params={"reviewer": "Ana"}).json()
    assert last["item_id"] == second and last["list"] == "issues" and last["date"].endswith("+00:00")
    writer.post(f"/api/review/decisions/{last['id']}/undo")
    assert writer.get("/api/review/decisions/last", params={"reviewer": "Ana"}).json()["item_id"] == first


def test_browse_filters_reviewed_not_reviewed_decided_as_and_by_reviewer(writer, fresh):
    first, second = issue_ids(fresh)[:2]
    writer.post("/api/review/decisions", json={"item_id": first, "action": dec.OTHER_CLASS, "chosen": "triangle"})

    def ids(**params):
        return sorted(i["id"] for i in writer.get("/api/items", params={"per_page": 100, **params}).json()["items"])
    assert ids(reviewed="yes") == [first] and ids(reviewed="triangle") == [first] and ids(reviewer="Ana") == [first]
    assert first not in ids(reviewed="no") and second in ids(reviewed="no")
    writer.post("/api/review/decisions", json={"item_id": second, "action": dec.NOT_ONE, "reviewer": "Ben"})
    assert ids(reviewed="yes") == sorted([first, second])  # a new decision is seen at once
    assert ids(reviewed=dec.NONE_OF_THESE) == [second] and ids(reviewer="Ben") == [second]
    assert first in writer.get("/items", params={"reviewed": "yes"}).text


def test_the_export_button_downloads_the_csv_and_remembers_the_export(writer, reader, fresh):
    first, second = issue_ids(fresh)[:2]
    writer.post("/api/review/decisions", json={"item_id": first, "action": dec.NOT_ONE})
    assert "Export decisions" in writer.get("/decisions").text
    r = writer.post("/decisions/export", data={})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"] and r.content.startswith(b"\xef\xbb\xbf")
    (row,) = csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))
    assert row["object number"] == first and row["decided value"] == "" and row["decided at"].endswith("+00:00")
    writer.post("/api/review/decisions", json={"item_id": second, "action": dec.NOT_ONE})
    r = writer.post("/decisions/export", data={"only_new": "1", "plain": "1"})
    assert not r.content.startswith(b"\xef\xbb\xbf")
    assert [x["object number"] for x in csv.DictReader(io.StringIO(r.content.decode()))] == [second]
    before = dec.last_export(Store.for_project(fresh))
    assert reader.post("/decisions/export", data={}).status_code == 200  # a read-only server exports ...
    assert dec.last_export(Store.for_project(fresh)) == before  # ... and writes nothing


def test_collection_cards_show_object_numbers_and_unclassifiable_records_say_why(reader, fresh):
    from muses.collection.store import Item

    page = reader.get("/items", params={"per_page": 100}).text
    assert all(f'<span class="object-number">{i}</span>' in page for i in issue_ids(fresh))
    assert "Not classified yet: run" not in reader.get(f"/items/{issue_ids(fresh)[0]}").text  # it is classified
    store = Store.for_project(fresh)
    with store.transaction() as s:
        s.add(Item(id="no-photo-1", title="A record without a photo"))
    try:
        page = reader.get("/items/no-photo-1").text
        assert "Not classified yet" not in page and "no usable photo" in page
    finally:
        with store.transaction() as s:
            s.delete(s.get(Item, "no-photo-1"))


def test_a_map_selection_opens_as_a_review_list_or_downloads_as_csv(writer, fresh):
    picked = sorted(issue_ids(fresh))[:2]
    writer.post("/api/review/decisions", json={"item_id": picked[0], "action": dec.OTHER_CLASS, "chosen": "triangle"})
    assert writer.get("/api/map/decisions").json() == {"decisions": {picked[0]: "triangle"}}
    r = writer.post("/review/selection", data={"ids": "\n".join([*picked, "no-such-record"])})
    assert r.status_code == 200 and "Selected on the map" in r.text
    assert card_ids(r.text) == [picked[1]]  # the decided one is done already
    r = writer.post("/map/selection.csv", data={"ids": "\r\n".join(reversed(picked))})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["object number"], x["decided value"]) for x in rows] == [(picked[0], "triangle"), (picked[1], "")]
    assert all(x["title"] and x["predicted class"] for x in rows)


def test_the_export_button_and_the_command_write_the_same_csv(writer, fresh, tmp_path, capsys):
    first, second = issue_ids(fresh)[:2]
    writer.post("/api/review/decisions", json={"item_id": first, "action": dec.NOT_ONE, "note": "a lid"})
    writer.post("/api/review/decisions", json={"item_id": second, "action": dec.OTHER_CLASS, "chosen": "triangle"})
    web = writer.post("/decisions/export", data={}).content
    out = tmp_path / "decisions.csv"
    assert main(["decisions", "export", "--out", str(out), "--project", str(fresh.root)]) == 0
    capsys.readouterr()
    assert out.read_bytes() == web and len(web.decode("utf-8-sig").splitlines()) == 3
    # both were remembered: only what is new since then comes next, from either door
    assert writer.post("/decisions/export", data={"only_new": "1"}).content.decode("utf-8-sig").count("\n") == 1


def test_a_label_issues_card_shows_its_cross_checked_estimate_beside_the_stored_answer(tmp_path):
    """Object 185921: the label-issues CSV (models that never saw its photo) says medal 76 %;
    the model stored on the record answers none of these. The card says both, each for what it is."""
    project = Project.load(init_project(tmp_path / "proj")[0].parent)
    with Store.for_project(project).transaction() as s:
        s.add(Item(id="185921", title="Medal of a king", object_type=["Medals"],
                   classification=classification(["other", "medal", "coin"], np.array([[0.985, 0.01, 0.005]]),
                                                 model="m", threshold=0.5)))
    project.plots_dir.mkdir(parents=True, exist_ok=True)
    (project.plots_dir / "m_label_issues.csv").write_text(
        "id,title,object_type,naive_label,suggested,confidence,label_quality,image\n"
        "185921,Medal of a king,Medals,coin,medal,0.76,0.1,\n", encoding="utf-8")
    client = TestClient(create_app(project))
    words = page_words(client.get("/review/issues").text)
    assert "Cross-checked estimate (from models that did not see this photo): medal 76 %" in words
    assert "Stored answer: none of these" in words
    assert client.get("/api/items/185921").json()["answer"] == "none of these"  # the object page's words
    assert not re.search(r"\bother\b", words)
