"""The search engine for PostgreSQL stores: tsvector columns with GIN indexes, ranked by BM25.

Ranking is FTS5's ``bm25()`` computed in SQL, so a collection ranks the same on both databases
(tests/test_search_postgres.py compares them): per field, each phrase adds
``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * row_tokens / average_row_tokens))``, times the
field's boost. ``ts_rank`` has no idf and a different length normalisation, so it would rank
otherwise. Every field is kept twice in ``search_pg_docs``: its words normalised the way FTS5's
``unicode61 remove_diacritics 2`` tokenizer sees them (" word  word ": each word inside its own
pair of spaces, so a phrase's occurrences are counted by plain string replacement), and that
text's ``tsvector`` (the ``simple`` configuration: no stemming, like FTS5), GIN-indexed, which
finds the matching rows.

Like the FTS5 engine, the index refreshes itself before each search when the store's
fingerprint changed, and finds the stale items in SQL (the stamps never travel to Python), so
it scales with the number of changed items. Several processes (web workers, classify runs)
may search at once: reindexing holds a PostgreSQL advisory lock.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from sqlalchemy import Float, String, bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import TextClause

from muses.collection.store import USABLE_STATUSES, Store
from muses.search.query import CATALOG_FIELDS, FIELDS, ClassTerm, TextTerm
from muses.search.text_query import Clause, words
from muses.predictions import top_class
from muses.search.lazy_index import IndexedItem, LazyIndex, Select, chunks, create_tables, item_fields

K1, B = 1.2, 0.75  # FTS5's bm25 constants
# ts_rank's four weight classes for the catalog fields, heaviest first (A counts 1.0, D 0.1)
_CLASSES = {f: "A" if w >= 3 else "B" if w >= 2 else "C" if w >= 1 else "D" for f, w in CATALOG_FIELDS.items()}
# every catalog field in one weighted tsvector, GIN-indexed: a search box's words may each be in another field
_ALL = " || ".join(f"setweight(to_tsvector('simple', {f}), '{_CLASSES[f]}')" for f in CATALOG_FIELDS)
_LOCK = 7_140_140_002  # advisory lock key: one reindex at a time across processes
_USABLE = ", ".join(f"'{s}'" for s in USABLE_STATUSES)  # constants, never user input
# the GIN indexes, by name: a first build fills the table without them and makes them after
_GIN = {**{f"search_pg_docs_{f}_v": f"{f}_v" for f in FIELDS}, "search_pg_docs_all_v": "all_v"}
_GIN_SCHEMA = tuple(f"CREATE INDEX IF NOT EXISTS {name} ON search_pg_docs USING gin ({column})"
                    for name, column in _GIN.items())
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS search_pg_docs (item_id TEXT PRIMARY KEY, stamp TEXT NOT NULL, "
    "usable INTEGER NOT NULL, top_class TEXT, tokens INTEGER NOT NULL, "
    + ", ".join(f"{f} TEXT NOT NULL, {f}_v tsvector GENERATED ALWAYS AS (to_tsvector('simple', {f})) STORED"
                for f in FIELDS) + f", all_v tsvector GENERATED ALWAYS AS ({_ALL}) STORED)",
    "CREATE INDEX IF NOT EXISTS search_pg_docs_top_class ON search_pg_docs (top_class)",
    *_GIN_SCHEMA,
)
FIRST_BUILD_MEMORY = "256MB"  # maintenance_work_mem while the GIN indexes of a first build are made
# What an item's row depends on: its fields (updated_at) and its usable images.
_STAMP = (
    "COALESCE(i.updated_at::text, '') || '|' || (SELECT count(*) || ':' || COALESCE(sum(im.id), 0) "
    f"FROM images im WHERE im.item_id = i.id AND im.status IN ({_USABLE}))"
)
# count and max apart: max(updated_at) is one index lookup, not part of a scan of the table
_FINGERPRINT = (
    "SELECT (SELECT count(*) FROM items) || '|' || COALESCE((SELECT max(updated_at) FROM items)::text, '') || '|' || "
    f"(SELECT count(*) || ':' || COALESCE(sum(id), 0) FROM images WHERE status IN ({_USABLE}))"
)
_BATCH = 500  # rows per executemany of a reindex


def _in_ids(sql: str):
    return text(sql).bindparams(bindparam("ids", expanding=True))


def spaced(tokens: Sequence[str]) -> str:
    """Each word inside its own pair of spaces: " a  b ". A phrase in this form occurs in a
    field's text in this form exactly as often as FTS5 counts it."""
    return " " + "  ".join(tokens) + " " if tokens else ""


def tsquery(clauses: Sequence[Clause]) -> str:
    """``to_tsquery`` text holding every clause: ``(colour | color) & (water <-> colour)``. The
    words are letters and digits only (:func:`muses.search.text_query.words`), so need no quoting."""
    return " & ".join("(" + " | ".join(" <-> ".join(p) for p in c.alternatives) + ")" for c in clauses)


class PostgresEngine(LazyIndex):
    """:class:`muses.search.SearchEngine` over a PostgreSQL store."""

    def __init__(self, store: Store):
        if store.engine.dialect.name != "postgresql":
            raise ValueError(f"PostgresEngine needs a PostgreSQL store, got {store.engine.dialect.name}")
        super().__init__()
        self.store = store
        with store.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
            create_tables(conn, _SCHEMA, tables=("search_pg_docs",), meta="search_pg_meta")

    # -- keeping the index in sync --------------------------------------------------------------
    def _fingerprint(self, conn: Connection) -> str:
        return conn.execute(text(_FINGERPRINT)).scalar_one()

    def _stored_fingerprint(self, conn: Connection) -> str | None:
        return self._meta(conn).get("fingerprint")

    @staticmethod
    def _meta(conn: Connection) -> dict[str, str]:
        return dict(conn.execute(text("SELECT key, value FROM search_pg_meta")).all())

    def _reindex(self, ids: Collection[str] | None) -> int:
        with self.store.engine.begin() as conn:
            # another process reindexing meanwhile would find the same stale rows
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
            fingerprint = self._fingerprint(conn)
            # Ten GIN indexes kept up row by row cost most of a first build; made once over the
            # filled table they cost a fraction of it.
            first = ids is None and not conn.execute(text("SELECT EXISTS (SELECT 1 FROM search_pg_docs)")).scalar()
            if first:
                for name in _GIN:
                    conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
            count = self._sync(conn, ids, stamp=_STAMP, docs="search_pg_docs")
            if first:
                conn.execute(text(f"SET LOCAL maintenance_work_mem = '{FIRST_BUILD_MEMORY}'"))
                for statement in _GIN_SCHEMA:
                    conn.execute(text(statement))
                conn.execute(text("ANALYZE search_pg_docs"))
            totals = conn.execute(text("SELECT count(*), COALESCE(sum(tokens), 0) FROM search_pg_docs")).one()
            meta = {"rows": str(totals[0]), "tokens": str(totals[1])}
            # after a partial reindex, the next search compares every stamp
            meta["fingerprint"] = fingerprint if ids is None else ""
            conn.execute(
                text("INSERT INTO search_pg_meta (key, value) VALUES (:key, :value) "
                     "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"),
                [{"key": k, "value": v} for k, v in meta.items()],
            )
        return count

    @staticmethod
    def _drop(conn: Connection, ids: list[str]) -> None:
        for chunk in chunks(ids):
            conn.execute(_in_ids("DELETE FROM search_pg_docs WHERE item_id IN :ids"), {"ids": chunk})

    @staticmethod
    def _row(item: IndexedItem, stamp: str) -> dict:
        tokens = {name: words(value) for name, value in item_fields(item).items()}
        return {"item_id": item.id, "stamp": stamp, "usable": len(item.usable_image_ids),
                "top_class": top_class(item.classification),
                "tokens": sum(map(len, tokens.values())), **{name: spaced(t) for name, t in tokens.items()}}

    def _add(self, conn: Connection, items: Sequence[IndexedItem], stamps: dict[str, str]) -> None:
        columns = ["item_id", "stamp", "usable", "top_class", "tokens", *FIELDS]
        insert = text(f"INSERT INTO search_pg_docs ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})")
        batch: list[dict] = []
        for item in items:
            batch.append(self._row(item, stamps[item.id]))
            if len(batch) == _BATCH:
                conn.execute(insert, batch)
                batch = []
        if batch:
            conn.execute(insert, batch)

    # -- searching -----------------------------------------------------------------------------
    def _matching(self, clauses: Sequence[Clause], ranked: bool) -> TextClause:
        score = "ts_rank(d.all_v, q.query)" if ranked else "0.0"
        sql = (f"SELECT d.item_id AS item_id, {score} AS score FROM search_pg_docs d, "
               "to_tsquery('simple', :query) AS q (query) WHERE d.all_v @@ q.query")
        return text(sql).bindparams(query=tsquery(clauses)).columns(item_id=String, score=Float)

    def _selects(self, conn: Connection, term: TextTerm | ClassTerm, conditions: str, base: dict) -> list[Select]:
        if isinstance(term, ClassTerm):
            sql = ("SELECT d.item_id AS item_id, CAST(:boost AS float8) AS score FROM search_pg_docs d "
                   "WHERE d.top_class = :name")
            return [(sql + conditions, {**base, "boost": float(term.boost), "name": term.name})]
        meta = self._meta(conn)
        n_rows, n_tokens = int(meta.get("rows", 0)), int(meta.get("tokens", 0))
        phrases = list(dict.fromkeys(p for p in (spaced(words(p)) for p in term.phrases) if p))
        if not phrases or not n_rows:
            return []
        return [self._field_select(conn, name, boost, phrases, n_rows, n_tokens / n_rows, conditions, base)
                for name, boost in term.fields.items() if boost > 0]

    @staticmethod
    def _field_select(conn: Connection, field: str, boost: float, phrases: list[str], n_rows: int, avg_tokens: float,
                      conditions: str, base: dict) -> Select:
        """(item id, bm25 times ``boost``) of the rows holding any of ``phrases`` (spaced) in ``field``."""
        params = dict(base, avg=avg_tokens, k1=K1, b=B, boost=boost)
        matches, parts = [], []
        for i, phrase in enumerate(phrases):
            params[f"p{i}"] = phrase
            params[f"q{i}"] = phrase.strip()
            hits = conn.execute(text(f"SELECT count(*) FROM search_pg_docs WHERE {field}_v @@ phraseto_tsquery('simple', :q)"),
                                {"q": phrase.strip()}).scalar_one()
            # FTS5's idf, floored the same way
            params[f"idf{i}"] = max(math.log((n_rows - hits + 0.5) / (hits + 0.5)), 1e-6)
            matches.append(f"d.{field}_v @@ phraseto_tsquery('simple', :q{i})")
            tf = f"((length(d.{field}) - length(replace(d.{field}, :p{i}, ''))) / length(:p{i}))::float8"
            parts.append(f":idf{i} * {tf} * (:k1 + 1) / ({tf} + :k1 * (1 - :b + :b * d.tokens / :avg))")
        sql = (f"SELECT d.item_id AS item_id, ({' + '.join(parts)}) * :boost AS score FROM search_pg_docs d "
               f"WHERE ({' OR '.join(matches)}){conditions}")
        return sql, params
