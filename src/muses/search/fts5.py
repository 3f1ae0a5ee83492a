"""The default search engine: an SQLite FTS5 index kept in the store's own database file.

Two tables sit beside the store's: ``search_docs`` (one row per indexed item: its id, a stamp
of what was indexed, whether it has usable images, its stored top class) and ``search_fts``
(the FTS5 full-text index, rowid = search_docs.rowid). The index refreshes itself lazily:
before each search a cheap fingerprint of the store (item count, latest ``updated_at``, usable
images) is compared with the one stored at the last refresh; only when it differs are the
items whose stamp changed found and reindexed. So imports, ``generate-images`` and
``classify`` need not know about search at all.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Float, String, bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import TextClause

from muses.collection.store import USABLE_STATUSES, Store
from muses.predictions import top_class
from muses.search.query import CATALOG_FIELDS, FIELDS, ClassTerm, TextTerm
from muses.search.text_query import Clause
from muses.search.lazy_index import IndexedItem, LazyIndex, Select, chunks, create_tables, item_fields

_USABLE = ", ".join(f"'{s}'" for s in USABLE_STATUSES)  # constants, never user input
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS search_docs (rowid INTEGER PRIMARY KEY, item_id TEXT NOT NULL UNIQUE, "
    "stamp TEXT NOT NULL, usable INTEGER NOT NULL, top_class TEXT)",
    "CREATE INDEX IF NOT EXISTS search_docs_top_class ON search_docs (top_class)",
    # remove_diacritics 2: "Émail" finds "email"; unicode61 also folds case.
    f"CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5({', '.join(FIELDS)}, "
    "tokenize = 'unicode61 remove_diacritics 2')",
)
# What an item's index row depends on: its fields (updated_at) and its usable images.
_STAMP = (
    "COALESCE(i.updated_at, '') || '|' || "
    f"(SELECT count(*) || ':' || total(im.id) FROM images im WHERE im.item_id = i.id AND im.status IN ({_USABLE}))"
)
# count and max apart: each its own index (max(updated_at) one lookup), not one scan of the table
_FINGERPRINT = (
    "SELECT (SELECT count(*) FROM items) || '|' || COALESCE((SELECT max(updated_at) FROM items), '') || '|' || "
    f"(SELECT count(*) || ':' || total(id) FROM images WHERE status IN ({_USABLE}))"
)


def quote_phrase(phrase: str) -> str:
    """An FTS5 string literal: the phrase's words, in order, whatever characters it holds."""
    return '"' + phrase.replace('"', '""') + '"'


def match_expression(phrases: Sequence[str], field: str) -> str:
    """Any of ``phrases`` in column ``field``."""
    return field + " : (" + " OR ".join(quote_phrase(p) for p in phrases) + ")"


def clauses_expression(clauses: Sequence[Clause]) -> str:
    """An FTS5 query holding every clause in one of the catalog fields (each clause may be met in
    another field: "turner watercolour" finds the maker's name beside the medium)."""
    columns = "{" + " ".join(CATALOG_FIELDS) + "} : "
    return " AND ".join(columns + "(" + " OR ".join(quote_phrase(" ".join(p)) for p in c.alternatives) + ")"
                        for c in clauses)


# bm25 weights in the FTS table's column order: the catalog fields' weights, the others 0
_WEIGHTS = ", ".join(str(CATALOG_FIELDS.get(f, 0.0)) for f in FIELDS)


class FTS5Engine(LazyIndex):
    """:class:`muses.search.SearchEngine` over an SQLite store."""

    def __init__(self, store: Store):
        if store.engine.dialect.name != "sqlite":
            raise ValueError(f"FTS5Engine needs an SQLite store, got {store.engine.dialect.name}")
        super().__init__()  # one refresh at a time: two would race to upgrade their reads to writes
        self.store = store
        with store.engine.begin() as conn:
            create_tables(conn, _SCHEMA, tables=("search_fts", "search_docs"), meta="search_meta")

    # -- keeping the index in sync --------------------------------------------------------------
    def _fingerprint(self, conn: Connection) -> str:
        return conn.execute(text(_FINGERPRINT)).scalar_one()

    def _stored_fingerprint(self, conn: Connection) -> str | None:
        return conn.execute(text("SELECT value FROM search_meta WHERE key = 'fingerprint'")).scalar()

    def _reindex(self, ids: Collection[str] | None) -> int:
        with self.store.engine.begin() as conn:
            # A write first: it takes the database's write lock (waiting for another writer)
            # before anything is read, so what is read below cannot be changed meanwhile.
            conn.execute(text("DELETE FROM search_meta WHERE key = 'fingerprint'"))
            fingerprint = self._fingerprint(conn)
            count = self._sync(conn, ids, stamp=_STAMP, docs="search_docs")
            if ids is None:  # after a partial reindex, the next search compares every stamp
                conn.execute(
                    text("INSERT OR REPLACE INTO search_meta (key, value) VALUES ('fingerprint', :v)"),
                    {"v": fingerprint},
                )
        return count

    @staticmethod
    def _drop(conn: Connection, ids: list[str]) -> None:
        for chunk in chunks(ids):
            params = {"ids": chunk}
            conn.execute(
                text("DELETE FROM search_fts WHERE rowid IN (SELECT rowid FROM search_docs WHERE item_id IN :ids)")
                .bindparams(bindparam("ids", expanding=True)), params,
            )
            conn.execute(
                text("DELETE FROM search_docs WHERE item_id IN :ids").bindparams(bindparam("ids", expanding=True)),
                params,
            )

    @staticmethod
    def _add(conn: Connection, items: Sequence[IndexedItem], stamps: dict[str, str]) -> None:
        # rowids given, not read back one insert at a time: two executemany calls per batch
        first = conn.execute(text("SELECT COALESCE(max(rowid), 0) + 1 FROM search_docs")).scalar_one()
        docs, texts = [], []
        for rowid, item in enumerate(items, start=first):
            docs.append((rowid, item.id, stamps[item.id], len(item.usable_image_ids), top_class(item.classification)))
            fields = item_fields(item)
            texts.append((rowid, *(fields[f] for f in FIELDS)))
        if docs:  # plain tuples to the driver: SQLAlchemy's per-row parameter handling would cost as much as the inserts
            conn.exec_driver_sql("INSERT INTO search_docs (rowid, item_id, stamp, usable, top_class) VALUES (?, ?, ?, ?, ?)",
                                 docs)
            conn.exec_driver_sql(f"INSERT INTO search_fts (rowid, {', '.join(FIELDS)}) VALUES (?{', ?' * len(FIELDS)})",
                                 texts)

    # -- searching -----------------------------------------------------------------------------
    def _matching(self, clauses: Sequence[Clause], ranked: bool) -> TextClause:
        # ORDER BY keeps SQLite from flattening this into the caller's query, where bm25() cannot run
        score, order = (f"-bm25(search_fts, {_WEIGHTS})", " ORDER BY search_fts.rowid") if ranked else ("0.0", "")
        sql = (f"SELECT d.item_id AS item_id, {score} AS score FROM search_fts "
               f"JOIN search_docs d ON d.rowid = search_fts.rowid WHERE search_fts MATCH :match{order}")
        return text(sql).bindparams(match=clauses_expression(clauses)).columns(item_id=String, score=Float)

    def _selects(self, conn: Connection, term: TextTerm | ClassTerm, conditions: str, base: dict) -> list[Select]:
        if isinstance(term, ClassTerm):
            sql = "SELECT d.item_id AS item_id, :boost AS score FROM search_docs d WHERE d.top_class = :name"
            return [(sql + conditions, {**base, "boost": float(term.boost), "name": term.name})]
        # One bm25 per field, times the field's boost, summed (a search server's multi-field
        # "should" query): boosts act linearly. FTS5's own column weights would sit inside
        # bm25's saturating tf and flatten them.
        selects = []
        for name, boost in term.fields.items():
            if boost > 0:
                weights = ", ".join("1.0" if f == name else "0.0" for f in FIELDS)
                sql = (f"SELECT d.item_id AS item_id, -bm25(search_fts, {weights}) * :boost AS score FROM search_fts "
                       "JOIN search_docs d ON d.rowid = search_fts.rowid WHERE search_fts MATCH :match")
                selects.append((sql + conditions, {**base, "boost": float(boost),
                                                   "match": match_expression(term.phrases, name)}))
        return selects
