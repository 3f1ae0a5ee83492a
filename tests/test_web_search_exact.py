"""Exact search on both stores: totals and facet counts over every match (far past the 5,000 the
listing used to keep), every word found in some field, British and American spellings and
plurals, natural object-number order, and downloads of every row, formula-safe."""
from __future__ import annotations

import csv
from collections import Counter
import io
import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert

from muses.collection.store import Item, Store
from muses.search import refresh_project_indexes
from muses.search.browse_index import century_of, natural_key
from muses.settings import Project
from muses.testing import statements
from muses.web import browse, create_app
from muses.csvfile import safe_cell as formula_safe

N = 6_200
ODD_NUMBERS = ["2082", "208148", "2086", "1985.141.10", "1985.141.1", "1985.141.2"]
HOSTILE_TITLE = '=HYPERLINK("http://evil.example","click")'


def record(n: int) -> dict:
    """Record n: 6,000 landscapes; the medium and the maker in other fields than the title."""
    return {
        "id": f"L-{n}", "object_type": ["Drawings"],
        "title": HOSTILE_TITLE if n == 7 else ("River landscape" if n < 6_000 else "Study of a head"),
        "material": ("Watercolour on paper", "Graphite on paper", "Oil on canvas")[n % 3],
        "description": "By J. M. W. Turner" if n % 4 == 0 else "By John Constable",
        "period": "ca. 1850" if n % 2 == 0 else "1720", "raw": {}, "source": "",
    }


RECORDS = [record(n) for n in range(N)] + [
    {**record(6_000 + n), "id": number, "title": "Sketchbook page"} for n, number in enumerate(ODD_NUMBERS)]


@pytest.fixture(scope="module")
def client(module_store_url, tmp_path_factory) -> TestClient:
    from muses.settings import init_project

    project = Project.load(init_project(tmp_path_factory.mktemp("exact") / "proj")[0].parent)
    store = Store.for_project(project)
    with store.engine.begin() as conn:
        conn.execute(insert(Item), RECORDS)
    refresh_project_indexes(project, store)  # what `muses import` does last
    return TestClient(create_app(project))


def listing(client, **params) -> dict:
    r = client.get("/api/items", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def expected(keep) -> int:
    return sum(1 for r in RECORDS if keep(r))


def test_totals_and_facets_count_every_match(client):
    body = listing(client, q="landscape")
    assert body["total"] == 6_000 - 1  # record 7 carries the hostile title
    assert body["pages"] == -(-5_999 // 24)
    centuries = {f["value"]: f["count"] for f in body["facets"]["century"]}
    landscapes = [r for r in RECORDS if r["title"] == "River landscape"]
    assert centuries == {19: sum(r["period"] == "ca. 1850" for r in landscapes),
                         18: sum(r["period"] == "1720" for r in landscapes)}
    materials = {f["value"]: f["count"] for f in body["facets"]["material"]}
    assert materials["Watercolour on paper"] == sum(r["material"] == "Watercolour on paper" for r in landscapes)
    assert sum(materials.values()) == 5_999
    last = listing(client, q="landscape", page=body["pages"])
    assert len(last["items"]) == 5_999 - 24 * (body["pages"] - 1)


def test_every_word_is_found_in_some_field_in_any_spelling(client):
    turner_watercolours = expected(lambda r: "Turner" in r["description"] and r["material"].startswith("Watercolour"))
    for q in ("turner watercolour", "Turner watercolor", "turner WATERCOLORS", "watercolours Turner"):
        assert listing(client, q=q)["total"] == turner_watercolours, q
    assert listing(client, q="turner watercolour landscape")["total"] == expected(
        lambda r: "Turner" in r["description"] and r["material"].startswith("Watercolour")
        and r["title"] == "River landscape")
    assert listing(client, q='"on paper" constable')["total"] == expected(
        lambda r: "Constable" in r["description"] and "on paper" in r["material"])
    assert listing(client, q="turner nowhere")["total"] == 0


def test_facet_filters_combine_with_the_search(client):
    body = listing(client, q="turner", century=19, material="Graphite on paper")
    assert body["total"] == expected(lambda r: "Turner" in r["description"] and r["period"] == "ca. 1850"
                                     and r["material"] == "Graphite on paper")
    # each facet is counted under the other filters, not its own
    assert {f["value"] for f in body["facets"]["material"]} == {"Watercolour on paper", "Graphite on paper",
                                                                "Oil on canvas"}


def test_each_facet_is_counted_exactly_under_the_other_filters(client):
    """Past 5,000 matches, with two filters: every facet counts all matches that pass the other
    filter, so the value not chosen keeps its true number."""
    body = listing(client, q="on paper", century=19, material="Graphite on paper")
    on_paper = [r for r in RECORDS if "on paper" in r["material"]]
    assert len(on_paper) > 4_000
    assert body["total"] == sum(r["period"] == "ca. 1850" and r["material"] == "Graphite on paper" for r in on_paper)
    materials = {f["value"]: f["count"] for f in body["facets"]["material"]}
    assert materials == dict(Counter(r["material"] for r in on_paper if r["period"] == "ca. 1850"))
    centuries = {f["value"]: f["count"] for f in body["facets"]["century"]}
    graphite = [r for r in on_paper if r["material"] == "Graphite on paper"]
    assert centuries == {19: sum(r["period"] == "ca. 1850" for r in graphite), 18: sum(r["period"] == "1720" for r in graphite)}


COMMON = ({"q": "landscape"}, {"q": "on paper", "century": "19", "material": "Graphite on paper"})


def forget(client) -> None:
    """Nothing remembered from the other tests: counts, pages and rendered listings made anew."""
    view = client.app.state.muses.view
    view.memo_size = view.memo_size


@pytest.mark.parametrize("params", COMMON, ids=["word", "word-under-filters"])
def test_a_common_word_answers_at_once_and_counts_its_facets_after(client, monkeypatch, params):
    """Past FACETS_AFTER matches of its words (filtered or not), the listing holds the page and
    the exact total; /api/facets then gives the very counts the listing gives inline under it."""
    forget(client)
    monkeypatch.setattr(browse, "FACETS_AFTER", 10 * N)
    inline = listing(client, **params)
    assert inline["facets"] is not None and inline["facets_url"] is None
    forget(client)
    monkeypatch.setattr(browse, "FACETS_AFTER", 1_000)
    first = listing(client, **params)
    assert first["facets"] is None
    assert (first["total"], first["items"]) == (inline["total"], inline["items"])
    r = client.get(first["facets_url"])
    assert r.status_code == 200, r.text
    assert r.json() == {"total": inline["total"], "rebuilding": False, "facets": inline["facets"]}
    # counted once: every page of that search shows them from now on, the first page too
    assert listing(client, **params)["facets"] == inline["facets"]
    assert listing(client, **params, page=2)["facets"] == inline["facets"]


def test_the_page_of_a_common_word_says_its_facets_are_being_counted(client, monkeypatch):
    forget(client)
    monkeypatch.setattr(browse, "FACETS_AFTER", 1_000)
    page = client.get("/items", params={"q": "landscape"}).text
    assert "Counting the facets" in page and "items.js" in page
    assert '<a class="clear" href="/items">clear all</a>' in page  # a way out while the counts are pending
    link = re.search(r'<a href="([^"]*facets=1)">show the counts</a>', page)
    assert link, page
    counted = client.get(link.group(1).replace("&amp;", "&")).text
    assert "Counting the facets" not in counted and "Watercolour on paper" in counted
    assert "Counting the facets" not in client.get("/items", params={"q": "landscape"}).text
    # the link shows them even where nothing is remembered between requests
    monkeypatch.setattr(client.app.state.muses.view, "memo_size", 0)
    assert "Counting the facets" not in client.get(link.group(1).replace("&amp;", "&")).text


def test_an_object_number_lands_on_its_object_first(client):
    body = listing(client, q="1985.141.1")
    assert body["items"][0]["id"] == "1985.141.1"


def test_an_object_number_is_found_without_reading_every_browse_row(client):
    """The typed number's item joins the text matches inside the IN: an OR beside them made
    PostgreSQL read every browse row (205 ms for one object number at a million records)."""
    with statements(client.app.state.muses.store.engine) as sent:
        body = listing(client, q="1985.141.2")
    assert body["items"][0]["id"] == "1985.141.2"
    assert not [sql for sql in sent if re.search(r"OR\s+browse_index\.item_id\s*=", sql)], sent


def test_object_numbers_sort_naturally(client):
    r = client.get("/items.csv", params={"q": "sketchbook", "sort": "number"})
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [row["id"] for row in rows] == ["1985.141.1", "1985.141.2", "1985.141.10", "2082", "2086", "208148"]
    assert natural_key("A-9") < natural_key("a-10")


def test_downloads_hold_every_row_of_the_view_and_are_formula_safe(client):
    r = client.get("/items.csv", params={"q": "constable", "century": 18})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert len(rows) == expected(lambda r: "Constable" in r["description"] and r["period"] == "1720") > 100
    hostile = next(row for row in rows if row["id"] == "L-7")
    assert hostile["title"] == "'" + HOSTILE_TITLE
    everything = json.loads(client.get("/items.json").text)
    assert len(everything) == len(RECORDS)
    assert next(row for row in everything if row["id"] == "L-7")["title"] == HOSTILE_TITLE  # JSON keeps the text
    assert formula_safe("-1") == "'-1" and formula_safe(0.5) == 0.5 and formula_safe("Vase") == "Vase"


def test_no_index_is_built_inside_a_request(client):
    writes: list[str] = []

    def seen(conn, cursor, sql, *rest) -> None:
        if sql.lstrip().upper().startswith(("INSERT", "DELETE", "UPDATE", "CREATE", "DROP")):
            writes.append(sql)

    engine = client.app.state.muses.store.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        listing(client)
        listing(client, q="river landscape")
        assert client.get("/items", params={"q": "graphite"}).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert writes == []
    assert client.app.state.muses.view.rebuilding is False


@pytest.mark.parametrize("text, century", [("ca. 1850-1860", 19), ("19th century", 19), ("1720", 18),
                                           ("450 BC", -5), ("early 3rd century B.C.", -3), ("undated", None),
                                           ("", None), ("1985.141.1", None)])
def test_century_of_a_date_text(text, century):
    assert century_of(text) == century


def test_an_index_built_for_other_fields_is_built_anew(tmp_path):
    from sqlalchemy import text

    from muses.search import open_engine
    from muses.search.text_query import parse

    store = Store(f"sqlite:///{tmp_path / 'muses.sqlite'}")
    with store.engine.begin() as conn:
        conn.execute(insert(Item), RECORDS[:3])
    assert open_engine(store).refresh() == 3
    with store.engine.begin() as conn:  # as if indexed by a muses that searched fewer fields
        conn.execute(text("UPDATE search_meta SET value = 'fields title' WHERE key = 'layout'"))
    engine = open_engine(store)
    with store.engine.connect() as conn:
        assert conn.execute(engine.matching(parse("landscape"))).all() == []
    assert engine.refresh() == 3
    with store.engine.connect() as conn:
        assert len(conn.execute(engine.matching(parse("landscape"))).all()) == 3
