"""The catalog fields in search and browsing, on real Met records imported with the met-scrapi
preset: a maker finds the works by them (not only titles that mention them), an accession
number typed into the search box lands on that object first, every card and download names
the object by its accession number, and makers are a facet."""
from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

import muses
from muses.web import create_app


@pytest.fixture(scope="module")
def client(met_sample, tmp_path_factory) -> TestClient:
    from muses.settings import Project, init_project

    project = Project.load(init_project(tmp_path_factory.mktemp("catalog") / "proj")[0].parent)
    result = muses.import_collection(project, muses.ImportConfig(met_sample / "records.jsonl", preset="met-scrapi"))
    assert not result.failure
    return TestClient(create_app(project))


def listing(client, **params) -> dict:
    r = client.get("/api/items", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_maker_finds_their_works(client):
    body = listing(client, q="Catlin")  # George Catlin: in `who`, in no title
    assert body["total"] == 2
    assert {item["object_number"] for item in body["items"]} == {"1985.141.1", "2006.235.28"}


def test_an_accession_number_lands_on_its_object_first(client):
    body = listing(client, q="1985.141.1")
    assert body["items"][0]["object_number"] == "1985.141.1" and body["items"][0]["id"] == "10427"
    page = client.get("/items", params={"q": "83.3"}).text
    assert 'class="object-number">83.3<' in page


def test_makers_are_a_facet_and_a_filter(client):
    makers = {f["value"]: f["count"] for f in listing(client)["facets"]["maker"]}
    assert makers["Thomas Sully"] == 6
    body = listing(client, maker="Thomas Sully")
    assert body["total"] == 6


def test_downloads_carry_the_catalog_fields(client):
    text = client.get("/items.csv", params={"q": "Catlin"}).text.lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["object_number"] for r in rows} == {"1985.141.1", "2006.235.28"}
    assert all(r["maker"] == "George Catlin" for r in rows)
