"""/values: a catalog field's distinct values, counts and labels on the web, with a CSV of all rows."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from muses.collection.importers import import_records
from muses.collection.store import Item, Store
from muses.search import refresh_project_indexes
from muses.settings import Project, init_project
from muses.web import create_app

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client(tmp_path_factory, met_sample=REPO / "examples" / "met-demo"):
    project = Project.load(init_project(tmp_path_factory.mktemp("values") / "proj")[0].parent)
    shutil.copy(REPO / "examples" / "definitions.toml", project.definitions_path)
    import_records(Store.for_project(project), met_sample / "records.jsonl", preset="met-scrapi")
    return TestClient(create_app(project))


def test_values_page_lists_values_with_counts_and_labels(client):
    page = client.get("/values", params={"field": "medium", "contains": "bronze", "sort": "label"})
    assert page.status_code == 200
    assert "<td>Bronze, cast</td><td>medal</td>" in page.text and "&#39;bronze&#39;" not in page.text
    assert "distinct values" in page.text and "values.csv?field=medium&amp;contains=bronze&amp;sort=label" in page.text
    assert "Salted paper" not in page.text  # filtered out


def test_values_csv_has_every_row_and_bad_input_is_a_message(client):
    answer = client.get("/values.csv", params={"field": "medium"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert sum(int(r["records"]) for r in rows) == 206 and len(rows) == len({r["value"] for r in rows})
    assert client.get("/values", params={"field": "nowhere"}).text.count("no record has a field") == 1
    assert client.get("/values.csv", params={"field": "nowhere"}).status_code == 400
    assert client.get("/values").status_code == 200  # the empty form


def test_the_header_links_the_values_page(client):
    assert '<a href="/values">Values</a>' in client.get("/items").text


def test_values_scans_the_collection_once_per_version_of_the_store(tmp_path):
    project = Project.load(init_project(tmp_path / "proj")[0].parent)
    shutil.copy(REPO / "examples" / "definitions.toml", project.definitions_path)
    store = Store.for_project(project)
    import_records(store, REPO / "examples" / "met-demo" / "records.jsonl", preset="met-scrapi")
    refresh_project_indexes(project)  # as `muses import` leaves them
    client = TestClient(create_app(project))
    client.app.state.muses.view.refresh_interval = 0.0  # every request checks the store
    scans = []
    event.listen(client.app.state.muses.store.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: scans.append(statement) if "items.raw" in statement else None)

    def medium(**params):
        return client.get("/values.csv", params={"field": "medium", **params}).text
    everything = medium()
    assert "Bronze, cast" in everything and scans
    scans.clear()
    assert medium(contains="bronze", sort="label") != everything and "Bronze, cast" in medium(contains="bronze")
    assert "Bronze, cast" in client.get("/values", params={"field": "medium", "sort": "value"}).text
    assert scans == []  # filtered, sorted and shown again from the one scan
    with store.transaction() as s:
        item = s.get(Item, s.query(Item.id).first()[0])
        item.raw = {**item.raw, "medium": "Unobtainium"}
    refresh_project_indexes(project)  # as the command that changed it does
    assert "Unobtainium" in medium() and scans  # a new version of the store: scanned again
