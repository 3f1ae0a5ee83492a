"""The collection page at scale: text search, sorts, facet counts, clamped pages, and the browse
index that makes them indexed SQL (kept in step with the store and definitions.toml)."""
from __future__ import annotations

import csv
import io
import re
import time

import numpy as np

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from muses.collection.store import Image, Item, Store
from muses.predictions import classification
from muses.search import browse_index
from muses.search.browse_index import BrowseRow
from muses.settings import Project, init_project
from muses.testing import statements
from muses.web import create_app
from muses.search import refresh_indexes
from muses.search.text_query import Clause, parse
from muses.web.browse import Query, page_numbers
from muses.web.cache import DefinitionsCache

# (id, title, object type, stored classes) — the project's default definitions know bust,
# photograph and vessel; the stored classifications are what `muses classify` writes.
RECORDS = [
    ("A-1", "Marble portrait bust of a woman", ["Sculpture", "Busts"], [("bust", 0.9), ("vessel", 0.1)]),
    ("A-2", "Terracotta bust of a child", ["Sculpture", "Busts"], [("vessel", 0.7), ("bust", 0.2)]),
    ("A-3", "Red-figure vase with a horse", ["Vases"], [("vessel", 0.95), ("bust", 0.05)]),
    ("A-4", "Amphora, painted by the Berlin vase painter", ["Vases"], [("vessel", 0.6), ("bust", 0.4)]),
    ("A-5", "Albumen silver print of a temple", ["Photographs"], [("photograph", 0.55), ("bust", 0.45)]),
    ("A-6", "Bronze mirror", ["Metalwork"], None),
    ("A-7", "Gelatin silver print of a marble bust", ["Photographs"], [("bust", 0.51), ("photograph", 0.49)]),
]


def _classification(classes):
    if classes is None:
        return None
    return {"model": "m", "date": "2026-01-01", "classes": [{"name": n, "probability": p} for n, p in classes]}


@pytest.fixture
def proj(tmp_path) -> Project:
    project = Project.load(init_project(tmp_path / "proj")[0].parent)
    with Store.for_project(project).transaction() as s:
        for item_id, title, facets, classes in RECORDS:
            s.add(Item(id=item_id, title=title, object_type=facets, classification=_classification(classes),
                       images=[Image(position=0, original=f"{item_id}.jpg", status="ok")]))
    refresh_indexes(Store.for_project(project), DefinitionsCache(project.definitions_path).get())  # what `muses import` does last
    return project


@pytest.fixture
def client(proj) -> TestClient:
    return TestClient(create_app(proj))


def listing(client, **params) -> dict:
    r = client.get("/api/items", params={"per_page": 100, **params})
    assert r.status_code == 200, r.text
    return r.json()


def eventually(check, seconds: float = 30.0) -> None:
    """Wait for ``check()`` to hold: a store changed behind the app's back is reindexed in the background."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the background refresh never finished"
        time.sleep(0.05)


def ids(body) -> list[str]:
    return [i["id"] for i in body["items"]]


def test_text_search_needs_every_word_and_finds_object_numbers(client):
    assert set(ids(listing(client, q="bust"))) == {"A-1", "A-2", "A-7"}
    assert set(ids(listing(client, q="marble bust"))) == {"A-1", "A-7"}
    assert ids(listing(client, q='"silver print" temple')) == ["A-5"]
    assert set(ids(listing(client, q="busts"))) == {"A-1", "A-2", "A-7"}  # plural and singular alike
    assert ids(listing(client, q="bust portrait")) == ["A-1"]
    assert ids(listing(client, q="A-6")) == ["A-6"]  # the object number itself
    assert listing(client, q="unicorn")["total"] == 0
    assert set(ids(listing(client, q="bust", predicted="bust"))) == {"A-1", "A-7"}  # search and filter


def test_sorts(client):
    assert ids(listing(client, sort="number")) == [r[0] for r in RECORDS]
    # by the model's probability for its top class; the unclassified item last either way
    assert ids(listing(client, sort="confidence")) == ["A-3", "A-1", "A-2", "A-4", "A-5", "A-7", "A-6"]
    assert ids(listing(client, sort="doubt"))[:2] == ["A-7", "A-5"] and ids(listing(client, sort="doubt"))[-1] == "A-6"
    # by how little the model believes the catalog's class: A-2 is a bust in the catalog, the model gives it 0.2
    body = listing(client, sort="disagreement")
    assert ids(body)[:2] == ["A-2", "A-7"] and body["items"][0]["disagreement"] == pytest.approx(0.8)
    assert client.get("/api/items", params={"sort": "price"}).status_code == 422
    assert client.get("/api/items", params={"sort": "relevance"}).status_code == 422  # relevance needs q


def test_facet_counts_leave_out_their_own_filter(client):
    body = listing(client)
    assert {f["value"]: f["count"] for f in body["facets"]["predicted"]} == {"bust": 2, "vessel": 3, "photograph": 1}
    # the catalog's words: A-4's "vase painter" vetoes vessel, A-6 has no class
    assert {f["value"]: f["count"] for f in body["facets"]["naive"]} == {
        "bust": 2, "vessel": 1, "photograph": 2, "(none)": 2}
    assert body["facets"]["disagree"] == 2  # A-2 (bust / vessel), A-7 (photograph / bust)
    vessels = listing(client, predicted="vessel")
    assert vessels["total"] == 3
    assert {f["value"]: f["count"] for f in vessels["facets"]["predicted"]} == {"bust": 2, "vessel": 3, "photograph": 1}
    assert {f["value"]: f["count"] for f in vessels["facets"]["naive"]} == {"bust": 1, "vessel": 1, "(none)": 1}
    assert vessels["facets"]["disagree"] == 1


def test_every_card_has_its_probability(client):
    assert {i["id"]: i["probability"] for i in listing(client)["items"]}["A-3"] == pytest.approx(0.95)
    page = client.get("/items").text
    assert ">vessel 95 %</span>" in page and ">bust 51 %</span>" in page


def test_pages_are_clamped_numbered_and_jumpable(client):
    assert listing(client, per_page=2, page=99)["page"] == 4
    assert ids(listing(client, per_page=2, page=-5)) == ["A-1", "A-2"]
    page = client.get("/items", params={"per_page": 2, "page": 3, "sort": "confidence"}).text
    assert '<span class="current" aria-current="page">3</span>' in page
    assert 'href="/items?sort=confidence&amp;page=4&amp;per_page=2"' in page  # links keep sort and size
    assert 'name="page" min="1" max="4" value="3"' in page  # the jump form
    assert client.get("/items", params={"page": 1000}).status_code == 200


def test_facet_links_filter_and_unfilter(client):
    page = client.get("/items", params={"predicted": "vessel", "q": "vase"}).text
    assert 'href="/items?q=vase"' in page  # the selected value's link removes its filter
    assert 'href="/items?q=vase&amp;predicted=vessel&amp;naive=%28none%29"' in page
    assert "clear all" in page


def test_page_numbers():
    assert page_numbers(1, 1) == [1]
    assert page_numbers(1, 9) == [1, 2, 3, None, 9]
    assert page_numbers(5, 9) == [1, None, 3, 4, 5, 6, 7, None, 9]
    assert page_numbers(4, 5) == [1, 2, 3, 4, 5]


def test_search_text_is_words_in_every_spelling_and_quoted_phrases():
    assert parse('marble "portrait bust" Grey') == [
        Clause((("marble",), ("marbles",))), Clause((("portrait", "bust"),)),
        Clause((("grey",), ("greys",), ("gray",), ("grays",)))]
    assert parse("1985.141.1") == [Clause((("1985", "141", "1"),))]
    assert parse('"" " -') == []


def test_query_validates_at_the_boundary():
    with pytest.raises(ValueError, match="sort"):
        Query(sort="newest")
    with pytest.raises(ValueError, match="per_page"):
        Query(per_page=101)
    assert Query(page=-3).page == -3  # clamped against the real page count, later


# -- the browse index ---------------------------------------------------------------------------
def indexed(proj) -> dict[str, BrowseRow]:
    with Store.for_project(proj).session() as s:
        return {r.item_id: r for r in s.query(BrowseRow)}


def test_the_index_follows_classify_import_and_removal(proj, client):
    listing(client)
    assert indexed(proj)["A-6"].predicted_class is None
    store = Store.for_project(proj)
    with store.transaction() as s:
        s.get(Item, "A-6").classification = _classification([("vessel", 0.8)])  # what classify writes
        s.delete(s.get(Item, "A-1"))
        s.add(Item(id="B-1", title="Bust of Homer", object_type=["Busts"]))
    client.app.state.muses.view.sync(force=True)
    rows = indexed(proj)
    assert "A-1" not in rows and rows["B-1"].naive_class == "bust" and rows["B-1"].thumbnail_image is None
    assert (rows["A-6"].predicted_class, rows["A-6"].predicted_probability) == ("vessel", 0.8)
    assert browse_index.refresh(store, client.app.state.muses.definitions.get()) == 0  # nothing left to do


def test_the_index_follows_definitions_toml(proj, client):
    assert {f["value"] for f in listing(client)["facets"]["naive"]} == {"bust", "vessel", "photograph", "(none)"}
    text = proj.definitions_path.read_text(encoding="utf-8")
    proj.definitions_path.write_text(text.replace('name = "vessel"', 'name = "pot"'), encoding="utf-8")
    eventually(lambda: {f["value"] for f in listing(client)["facets"]["naive"]} == {"bust", "pot", "photograph", "(none)"})


def test_a_store_changed_behind_the_apps_back_is_reindexed_in_the_background(proj, client):
    """A page never waits for an index: while one is rebuilt it answers from the old one and
    says so (the write lock held here keeps the rebuild waiting)."""
    view = client.app.state.muses.view
    view.refresh_interval = 0.0  # every request checks
    assert listing(client, predicted="photograph")["total"] == 1
    store = Store.for_project(proj)
    with store.transaction() as s:
        s.get(Item, "A-7").classification = _classification([("photograph", 0.9)])
    with store.engine.connect() as blocker:
        blocker.exec_driver_sql("BEGIN IMMEDIATE")  # another writer: the rebuild has to wait for it
        started = time.monotonic()
        body = listing(client, predicted="photograph")
        assert time.monotonic() - started < 2.0
        assert (body["total"], body["rebuilding"]) == (1, True)
        assert "being rebuilt" in client.get("/items").text
        blocker.exec_driver_sql("ROLLBACK")
    eventually(lambda: listing(client, predicted="photograph")["total"] == 2)


def test_only_changed_items_are_recomputed(proj):
    store = Store.for_project(proj)
    assert browse_index.refresh(store, None) == len(RECORDS)
    assert browse_index.refresh_if_changed(store, None) == 0
    with store.transaction() as s:
        s.get(Item, "A-3").title = "Red-figure krater"
    assert browse_index.refresh_if_changed(store, None) == 1
    with store.transaction() as s:  # an image becoming unusable changes the thumbnail
        s.get(Item, "A-5").images[0].status = "problem"
    assert browse_index.refresh_if_changed(store, None) == 1
    assert indexed(proj)["A-5"].thumbnail_image is None


def test_the_freshness_check_notices_every_write_without_counting_the_collection(store_url):
    """browse_index.fingerprint (once a second before a page) reads a counter the store's
    triggers keep, not a count of the items and photos (40-100 ms at a million records): a
    write by hand that leaves updated_at alone, a removed photo and a removed item are noticed;
    triggers lost to a rebuilt table are noticed and made again."""
    store = Store(store_url)
    with store.transaction() as s:
        s.add_all(Item(id=f"F-{n}", title="Vase", images=[Image(position=0, original=f"F-{n}.jpg", status="ok")])
                  for n in range(3))
    browse_index.refresh(store, None)
    assert browse_index.is_current(store, None)
    with statements(store.engine) as sent:
        browse_index.fingerprint(store, None)
    assert not [sql for sql in sent if "FROM items" in sql or "FROM images" in sql], sent

    for by_hand in ("UPDATE items SET title = 'Krater' WHERE id = 'F-0'",  # updated_at left as it was
                    "DELETE FROM images WHERE item_id = 'F-1'", "DELETE FROM items WHERE id = 'F-2'"):
        with store.engine.begin() as conn:
            conn.exec_driver_sql(by_hand)
        assert not browse_index.is_current(store, None), by_hand
        browse_index.refresh(store, None)
        assert browse_index.is_current(store, None)

    trigger = "muses_changes_items_update" if store.engine.dialect.name == "sqlite" else "muses_changes_items ON items"
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TRIGGER {trigger}")  # what a migration rebuilding the table does
    assert not browse_index.is_current(store, None)
    browse_index.refresh_if_changed(store, None)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE items SET title = 'Amphora' WHERE id = 'F-0'")
    assert not browse_index.is_current(store, None)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_concurrent_writers_do_not_wait_for_each_others_counter(store_url):
    """PostgreSQL counts the writes on a row per connection, once a transaction: a writer holding
    its transaction open does not hold back another writer of other items, and a bulk insert
    does not update the counter once a row (100,000 rows took 130 s instead of 8)."""
    store = Store(store_url)
    with store.transaction() as s:
        s.add_all([Item(id="W-1", title="Vase"), Item(id="W-2", title="Cup")])
    browse_index.ensure_tables(store)
    with store.engine.connect() as slow, store.engine.connect() as quick:
        slow.exec_driver_sql("BEGIN")
        slow.exec_driver_sql("UPDATE items SET title = 'Krater' WHERE id = 'W-1'")
        quick.exec_driver_sql("SET lock_timeout = '2s'")
        quick.exec_driver_sql("UPDATE items SET title = 'Kylix' WHERE id = 'W-2'")  # no lock wait
        quick.commit()
        slow.rollback()

    def changes() -> int:
        return int(browse_index.fingerprint(store, None).split("|")[1])

    before = changes()
    with store.engine.begin() as conn:  # an executemany: a statement per row, counted once
        conn.execute(insert(Item), [{"id": f"M-{n}", "title": "Cup", "raw": {}, "source": ""} for n in range(500)])
    assert changes() == before + 1


def test_write_counters_an_older_muses_made_are_replaced(store_url):
    """The triggers are compared by version, not only counted: a store whose counter an older
    muses made (here one that counts nothing) gets this muses's, and writes are noticed again."""
    store = Store(store_url)
    with store.transaction() as s:
        s.add(Item(id="O-1", title="Vase"))
    browse_index.refresh(store, None)
    older = ("CREATE OR REPLACE FUNCTION muses_count_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "RETURN NULL; END $$" if store.engine.dialect.name == "postgresql" else
             "CREATE TRIGGER muses_changes_items_update AFTER UPDATE ON items BEGIN SELECT 1; END")
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER muses_changes_items_update")
        conn.exec_driver_sql(older)
        conn.exec_driver_sql("UPDATE browse_meta SET value = 'older' WHERE key = 'triggers'")
    assert not browse_index.is_current(store, None)  # replaced: what was written meanwhile is looked at
    browse_index.refresh(store, None)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE items SET title = 'Krater' WHERE id = 'O-1'")
    assert not browse_index.is_current(store, None)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_refresh_folds_the_counter_rows_of_ended_connections_into_one(store_url):
    """A row per connection that ever wrote would grow for as long as the database lives; the
    fingerprint (their sum) stays what it was, so nothing is refreshed again for it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    store = Store(store_url)
    with store.transaction() as s:
        s.add(Item(id="W-1", title="Vase"))
    browse_index.refresh(store, None)
    writers = create_engine(store.engine.url.render_as_string(hide_password=False), poolclass=NullPool)
    for n in range(5):  # five connections, each writes and ends
        with writers.begin() as conn:
            conn.exec_driver_sql(f"UPDATE items SET title = 'Vase {n}' WHERE id = 'W-1'")
    writers.dispose()

    def counter_rows() -> int:
        with store.session() as s:
            return s.scalar(text("SELECT count(*) FROM browse_meta WHERE key LIKE 'changes:%'"))

    assert counter_rows() >= 5
    changes = browse_index.fingerprint(store, None)
    browse_index.refresh(store, None)

    def folded() -> bool:  # an ended connection leaves pg_stat_activity a moment after it closes
        browse_index.refresh(store, None)
        return counter_rows() <= 2  # the folded row, and this process's own connection's

    eventually(folded)
    assert browse_index.fingerprint(store, None) == changes and browse_index.is_current(store, None)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE items SET title = 'Krater' WHERE id = 'W-1'")
    assert not browse_index.is_current(store, None)  # still counting


def test_similar_objects_are_remembered_until_the_store_changes(proj, client):
    client.app.state.muses.view.refresh_interval = 0.0  # every request checks the store

    def similar() -> list[str]:
        r = client.get("/api/similar", params={"ids": "A-1", "limit": 12})
        assert r.status_code == 200, r.text
        return [h["id"] for h in r.json()["similar"]]

    before = similar()
    assert ("similar", ("A-1",), 12) in client.app.state.muses.view._memo  # the search is not done again
    with Store.for_project(proj).transaction() as s:
        s.add(Item(id="B-2", title="Marble bust of a man", object_type=["Sculpture", "Busts"],
                   classification=_classification([("bust", 0.95)]),
                   images=[Image(position=0, original="B-2.jpg", status="ok")]))
    assert "B-2" not in before
    eventually(lambda: "B-2" in similar())


def _statements(client, request) -> list[str]:
    """The SQL ``request()`` sends to the app's store."""
    with statements(client.app.state.muses.store.engine) as sent:
        request()
    return sent


def test_similar_objects_read_their_cards_in_one_query(proj, client):
    client.get("/api/items")  # the browse index built
    hits = []
    statements = _statements(client, lambda: hits.extend(
        client.get("/api/similar", params={"ids": "A-1", "limit": 12}).json()["similar"]))
    assert len(hits) >= 3
    assert sum("FROM browse_index" in sql for sql in statements) == 1, statements


def test_the_cards_photos_are_found_by_item_not_by_scanning_every_usable_photo(proj, client):
    """Given the item and the status, SQLite's planner took the status index: every usable
    photo of the collection read for each page of 24 cards."""
    from sqlalchemy import event

    engine = client.app.state.muses.store.engine
    seen: list[tuple[str, tuple]] = []

    def record(conn, cursor, sql, parameters, *rest) -> None:
        if "FROM images" in sql and "images.item_id IN" in sql:
            seen.append((sql, parameters))

    client.get("/api/items")  # the browse index built
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert listing(client)["items"][0]["image_ids"]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert seen
    with engine.connect() as conn:
        for sql, parameters in seen:
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, parameters))
            assert "ix_images_item_id" in plan, plan


def test_a_search_is_paged_in_sql_with_its_counts_remembered(proj, client):
    everything = ids(listing(client, q="bust", sort="confidence"))
    assert everything == ["A-1", "A-2", "A-7"]
    with statements(client.app.state.muses.store.engine) as sent:
        pages = [ids(listing(client, q="bust", sort="confidence", per_page=2, page=n)) for n in (1, 2)]
    assert pages == [everything[:2], everything[2:]]
    # no list of matched ids travels to the database; the counts are not made again for page 2
    assert not [sql for sql in sent if "IN (?, ?, ?" in sql], sent
    assert sum("count(*)" in sql for sql in sent) <= 1 + len(listing(client)["facets"]), sent


def test_refresh_compares_stamps_a_batch_at_a_time(tmp_path):
    """The refresh's memory must not grow with the collection (it held a dict of every item's stamp
    twice: 560-660 MB at a million records)."""
    import tracemalloc

    project = Project.load(init_project(tmp_path / "big")[0].parent)
    store = Store.for_project(project)

    def peak(start: int, n: int) -> int:
        with store.transaction() as s:
            s.add_all(Item(id=f"X-{i:07d}", title="Vase") for i in range(start, start + n))
        browse_index.refresh(store, None)  # index the new items, not measured
        tracemalloc.start()
        assert browse_index.refresh(store, None) == 0  # every stamp compared, nothing changed
        used = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return used

    small = peak(0, browse_index.ROUND)  # one full round
    assert peak(browse_index.ROUND, 10_000 - browse_index.ROUND) - small < 1_000_000  # with every stamp in dicts: 4.4 MB more at 10,000


def test_many_visitors_asking_for_one_new_answer_compute_it_once(client):
    import threading

    view = client.app.state.muses.view
    calls, answers, gate = [], [], threading.Event()

    def make() -> int:
        calls.append(1)
        gate.wait(10)
        return 42

    visitors = [threading.Thread(target=lambda: answers.append(view.memo(("dear", 1), make))) for _ in range(8)]
    for v in visitors:
        v.start()
    time.sleep(0.3)
    gate.set()
    for v in visitors:
        v.join(10)
    assert calls == [1] and answers == [42] * 8


# -- under load: what is remembered, and that it is never out of date ------------------------------
def test_a_listing_asked_for_again_sends_no_query(client):
    client.app.state.muses.view.refresh_interval = 3600  # no periodic check of the store during the test
    for url in ("/items?q=bust&naive=bust&page=1", "/api/items?q=bust&naive=bust", "/items?naive=vessel"):
        first = client.get(url)
        assert first.status_code == 200
        again = []
        assert _statements(client, lambda: again.append(client.get(url))) == []
        assert again[0].content == first.content and again[0].headers["content-type"] == first.headers["content-type"]


def test_an_object_page_is_two_queries(client):
    client.get("/items/A-1")  # the first request opens the search engine and checks the store
    client.app.state.muses.view.refresh_interval = 3600
    statements = _statements(client, lambda: client.get("/items/A-2").raise_for_status())
    assert len(statements) == 2, statements  # the item with its photos and browse row; its decisions


def test_remembered_listings_and_counts_follow_an_import(proj, client):
    """An import (or classify) changes the store and refreshes the indexes: the next listing,
    HTML and JSON, has the exact new counts, not the remembered ones."""
    client.app.state.muses.view.refresh_interval = 0.0  # every request checks the store
    store = Store.for_project(proj)
    with store.transaction() as s:
        s.get(Item, "A-1").material = "Marble"
    refresh_indexes(store, DefinitionsCache(proj.definitions_path).get())
    before = listing(client, q="bust", material="Marble")
    assert (before["total"], [f["count"] for f in before["facets"]["material"]]) == (1, [1])
    assert "Collection <small>1 item matching" in client.get("/items", params={"q": "bust", "material": "Marble"}).text
    with store.transaction() as s:
        s.add(Item(id="B-1", title="Marble bust of a man", object_type=["Sculpture", "Busts"], material="Marble",
                   images=[Image(position=0, original="B-1.jpg", status="ok")]))
        s.get(Item, "A-7").material = "Marble"
    refresh_indexes(store, DefinitionsCache(proj.definitions_path).get())  # what `muses import` does last
    after = listing(client, q="bust", material="Marble")
    assert (after["total"], set(ids(after))) == (3, {"A-1", "A-7", "B-1"})
    assert after["facets"]["material"] == [{"value": "Marble", "count": 3}]
    assert "Collection <small>3 items matching" in client.get("/items", params={"q": "bust", "material": "Marble"}).text


def test_a_listing_of_reviewed_records_follows_every_decision(proj, client):
    """Decisions do not change the store's fingerprint: a listing filtered by them is keyed by
    the decisions too, so one recorded a moment ago shows at once."""
    from muses.collection import decisions

    client.app.state.muses.view.refresh_interval = 3600  # no periodic check: the key alone must tell
    assert listing(client, reviewed="yes")["total"] == 0
    assert "Collection <small>0 items" in client.get("/items", params={"reviewed": "yes"}).text
    store = Store.for_project(proj)
    decided = decisions.record_decision(store, item_id="A-3", action=decisions.CATALOG_RIGHT, reviewer="Ana",
                                        catalog_value="vessel", suggested_value="vessel")
    assert ids(listing(client, reviewed="yes")) == ["A-3"]
    assert "Collection <small>1 item</small>" in client.get("/items", params={"reviewed": "yes"}).text
    decisions.undo_decision(store, decided.id)
    assert listing(client, reviewed="yes")["total"] == 0


def test_a_search_under_a_facet_has_the_order_of_its_ranking_under_that_facet(proj, client, monkeypatch):
    """Its first pages are picked from the search's best matches (ranked once for every facet);
    where too few of them pass the facet, the matches are ranked under it: the same pages either way."""
    from muses.web import browse

    view = client.app.state.muses.view
    store = Store.for_project(proj)
    with store.transaction() as s:
        for n in range(12):
            s.add(Item(id=f"C-{n:02}", title="Bust " + "bust " * (n % 4) + "of a man", object_type=["Busts"],
                       material=("Marble", "Bronze")[n % 2], images=[Image(position=0, original=f"C-{n}.jpg", status="ok")]))
    refresh_indexes(store, DefinitionsCache(proj.definitions_path).get())
    view.memo_size = 0

    def ranked(query: Query) -> list[str]:  # ranking every match under the facet, in SQL
        return view._ids(view.selection(query, client.app.state.muses.engine).ordered("relevance"))

    for best_rows in (2400, 5, 0):  # all the matches among the best, a few, none
        monkeypatch.setattr(browse, "BEST_ROWS", best_rows)
        for material in ("Marble", "Bronze"):
            whole = ranked(Query("bust", material=material))
            assert len(whole) >= 6
            shown = [ids(listing(client, q="bust", material=material, per_page=4, page=n)) for n in (1, 2)]
            assert shown == [whole[:4], whole[4:8]], best_rows


def test_a_check_of_the_store_in_progress_holds_no_other_request(proj, client, monkeypatch):
    """Fifty visitors at once: one checks whether the store changed, the others go on."""
    import threading

    view = client.app.state.muses.view
    listing(client)  # the first check of all, which every request waits for
    view.refresh_interval = 0.0
    gate, checking = threading.Event(), threading.Event()

    def slow_check(store, definitions) -> bool:
        checking.set()
        gate.wait(10)
        return True

    monkeypatch.setattr(browse_index, "is_current", slow_check)
    checker = threading.Thread(target=view.sync)
    checker.start()
    try:
        assert checking.wait(10)
        started = time.monotonic()
        assert listing(client, q="bust")["total"] == 3
        assert time.monotonic() - started < 2.0
    finally:
        gate.set()
        checker.join(10)


def test_the_memo_keeps_within_its_budget_and_nothing_from_before_a_change():
    from muses.web.cache import Memo

    memo = Memo(size=10, max_bytes=100)
    for n in range(4):
        memo.get(("page", n), lambda: b"x" * 40)
    assert [("page", n) in memo for n in range(4)] == [False, False, True, True]  # 80 bytes kept of 160
    memo.get("small", lambda: 1)
    assert "small" in memo

    def computed_while_the_store_changed() -> str:
        memo.clear()  # the change is noticed while this answer is made from the data before it
        return "old"

    assert memo.get("answer", computed_while_the_store_changed) == "old"
    assert "answer" not in memo
    assert memo.get("answer", lambda: "new") == "new"


def test_counts_are_written_as_a_person_reads_them():
    """213,668 items, not 213668: the filter every count on the collection page goes through."""
    from pathlib import Path

    from muses.web.templating import templates

    assert templates.env.filters["thousands"](213668) == "213,668"
    assert "| thousands" in (Path(templates.env.loader.searchpath[0]) / "items.html").read_text(encoding="utf-8")


# One object per answer, as `muses classify` stores them (threshold 0.5): sure, uncertain (its
# first class below the threshold) and none of these (the class other first).
ANSWERS = [
    ("C-1", "Marble bust of a man", ["Busts"], [("bust", 0.91), ("vessel", 0.09)]),
    ("C-2", "Bust fragment", ["Busts"], [("bust", 0.41), ("vessel", 0.35), ("other", 0.24)]),
    ("185921", "Bronze medal of a king", ["Medals"], [("other", 0.985), ("vessel", 0.01), ("bust", 0.005)]),
]


def _visible(html: str) -> str:
    """The words a person reads on a page: no tags, no attributes, no scripts."""
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.fixture
def answers_client(tmp_path, store_url, monkeypatch) -> TestClient:
    monkeypatch.setenv("MUSES_STORE_URL", store_url)
    project = Project.load(init_project(tmp_path / "answers")[0].parent)
    with Store.for_project(project).transaction() as s:
        for item_id, title, types, classes in ANSWERS:
            names = [n for n, _ in classes]
            s.add(Item(id=item_id, title=title, object_type=types, images=[],
                       classification=classification(names, np.array([[p for _, p in classes]]), model="m",
                                                      threshold=0.5)))
    return TestClient(create_app(project))


def test_cards_the_api_and_the_csv_say_the_stored_answer_in_the_object_pages_words(answers_client):
    client = answers_client
    items = {i["id"]: i for i in listing(client)["items"]}
    assert {i: (items[i]["answer_kind"], items[i]["answer"]) for i in items} == {
        "C-1": ("sure", "bust 91 %"), "C-2": ("uncertain", "uncertain: maybe bust 41 %"),
        "185921": ("none", "none of these")}
    assert items["185921"]["predicted"] == "other"  # the machine name stays, for programs
    for item_id, item in items.items():  # the card says what the object page says
        assert client.get(f"/api/items/{item_id}").json()["answer"] == item["answer"]
        assert 'class="model-answer"' in (page := client.get(f"/items/{item_id}").text)
        assert item["answer"] in _visible(page)
    html = client.get("/items").text
    assert 'class="tag predicted answer-uncertain"' in html and 'class="tag predicted answer-none"' in html
    assert "below the model's threshold" in html
    words = _visible(html)
    assert "uncertain: maybe bust 41 %" in words and "none of these" in words
    assert not re.search(r"\bother\b", words)  # not on a card, not in the facets
    assert {f["value"]: f["name"] for f in listing(client)["facets"]["predicted"]}["other"] == "none of these"
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(client.get("/items.csv").text.removeprefix("\ufeff")))}
    assert (rows["185921"]["predicted"], rows["185921"]["answer_kind"]) == ("", "none")
    assert (rows["C-2"]["predicted"], rows["C-2"]["answer_kind"]) == ("bust", "uncertain")
    assert [r["predicted"] for r in client.get("/items.json").json()] == ["", "bust", "bust"]  # 185921 first


def test_an_index_built_before_answers_were_kept_is_rebuilt(proj):
    store = Store.for_project(proj)
    with store.transaction() as s:  # an index of the previous muses: another schema stamp, no answers
        s.get(browse_index.BrowseMeta, "schema").value = "3"
        s.query(BrowseRow).update({BrowseRow.answer: None})
    assert browse_index.refresh_if_changed(store, DefinitionsCache(proj.definitions_path).get()) == len(RECORDS)
    assert {r.answer for r in indexed(proj).values()} == {"sure", None}  # None: A-6, never classified
