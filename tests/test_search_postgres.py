"""The PostgreSQL search engine ranks like the SQLite FTS5 one, and is safe with several processes."""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from muses.collection.store import Image, Item, Store
from muses.labeling.definitions import load_definitions
from muses.search import ClassTerm, TextTerm, open_engine
from muses.search.fts5 import FTS5Engine
from muses.search.postgres import PostgresEngine, spaced, words
from muses.search.similar import class_query

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MET_DEMO = EXAMPLES / "met-demo"


def _met_items() -> list[Item]:
    """The 206 demo records as items, every third one with a stored prediction."""
    items = []
    for n, line in enumerate((MET_DEMO / "records.jsonl").read_text(encoding="utf-8").splitlines()):
        record = json.loads(line)
        text = lambda v: "; ".join(map(str, v)) if isinstance(v, list) else str(v or "")  # noqa: E731
        classification = None
        if n % 3 == 0:
            classification = {"model": "m", "date": "2026-01-01T00:00:00",
                              "classes": [{"name": ("bust", "vessel", "photograph")[n % 9 // 3], "probability": 0.8}]}
        items.append(Item(id=str(record["id"]), title=record["title"], object_type=record["what"],
                          material=text(record.get("medium")), period=text(record.get("when")),
                          classification=classification,
                          images=[Image(original=f"/x/{record['id']}.jpg", status="ok" if n % 10 else "problem")]))
    return items


@pytest.fixture(scope="module")
def both_engines(pg_cluster, tmp_path_factory):
    engines = []
    for url in (f"sqlite:///{tmp_path_factory.mktemp('fts5') / 'muses.sqlite'}", pg_cluster.new_database()):
        store = Store(url)
        with store.transaction() as s:
            s.add_all(_met_items())
        engines.append(open_engine(store))
    assert [type(e) for e in engines] == [FTS5Engine, PostgresEngine]
    return engines


def _queries():
    definitions = load_definitions(EXAMPLES / "definitions.toml")
    for name in definitions.class_names:
        yield name, class_query([name], definitions)  # catalog words over the class's fields + its prediction
    yield "two classes", class_query(definitions.class_names[:2], definitions)
    yield "material", [TextTerm(("marble", "bronze"), {"material": 1.0, "title": 0.5}, label="m")]
    yield "phrase", [TextTerm(("albumen silver print",), {"material": 2.0, "description": 1.0})]
    yield "class only", [ClassTerm("vessel", 3.0)]


@pytest.mark.parametrize("name, query", list(_queries()), ids=[n for n, _ in _queries()])
def test_both_engines_rank_the_same_items_the_same(both_engines, name, query):
    fts5, postgres = (engine.search(query, limit=20) for engine in both_engines)
    assert fts5, f"query {name!r} should find something in the demo collection"
    assert [h.item_id for h in postgres] == [h.item_id for h in fts5]
    assert [h.score for h in postgres] == pytest.approx([h.score for h in fts5], rel=1e-6)
    assert [h.matched for h in postgres] == [h.matched for h in fts5]


def test_words_are_those_fts5_sees():
    assert words("Émail, bust_of  CICÉRO's 2nd") == ["email", "bust", "of", "cicero", "s", "2nd"]
    assert spaced(["portrait", "bust"]) == " portrait  bust "
    assert spaced([]) == ""


def _classify_and_search(url, worker, barrier, n):
    store = Store(url)
    engine = open_engine(store)
    barrier.wait()
    for i in range(n):
        with store.transaction() as s:
            item = s.get(Item, f"w{i}")
            item.classification = {"model": f"worker {worker}", "date": "2026-01-01T00:00:00",
                                   "classes": [{"name": "vessel", "probability": 0.5 + worker / 10}]}
        engine.search([ClassTerm("vessel", 1.0)], limit=5)


def test_two_processes_write_classifications_and_search_at_once(pg_cluster):
    """Two classify workers (and their searches, as the web app's) on one PostgreSQL store."""
    url = pg_cluster.new_database()
    store = Store(url)
    n = 60
    with store.transaction() as s:
        s.add_all(Item(id=f"w{i}", title=f"Jar {i}", images=[Image(original=f"/x/{i}.jpg", status="ok")])
                  for i in range(n))
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_classify_and_search, args=(url, w, barrier, n)) for w in (1, 2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    stored = [item.classification for item in store.items()]
    assert len(stored) == n and all(c and c["model"] in ("worker 1", "worker 2") for c in stored)
    hits = open_engine(store).search([ClassTerm("vessel", 1.0)], limit=n + 1)
    assert len(hits) == n
