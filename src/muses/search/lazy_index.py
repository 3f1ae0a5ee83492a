"""What every search engine's index shares: the text of each field of an item, the filters as
SQL, ranking in SQL, and refreshing lazily before a search when the store's fingerprint changed."""
from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import TextClause

from muses.collection.store import USABLE_STATUSES, Image, Item, Store
from muses.search.query import CATALOG_FIELDS, FIELDS, ClassTerm, Filters, Hit, TextTerm, rank_hits
from muses.search.text_query import Clause
from muses.predictions import stored_classes


@dataclass(frozen=True)
class IndexedItem:
    """What the indexes read of an item: its catalog fields and its usable photos' ids (in the
    order of their position), read as plain rows, so that indexing a million records builds no
    ORM objects."""

    id: str
    object_number: str
    number: str  # Item.number: the object number, else the id
    title: str
    object_type: list
    maker: str
    date: str
    date_earliest: int | None
    material: str
    period: str
    description: str
    classification: dict | None
    usable_image_ids: tuple[int, ...]

    @property
    def primary_object_type(self) -> str:
        return self.object_type[0] if self.object_type else ""


_INDEXED = [getattr(Item, f) for f in IndexedItem.__dataclass_fields__ if f != "usable_image_ids"]


def indexed_items(conn: Any, ids: Sequence[str]) -> list[IndexedItem]:
    """The :class:`IndexedItem` of each of ``ids`` that exists (two queries: the items, their
    usable photos), in id order; ``conn`` is a Connection or a Session."""
    photos: dict[str, list[int]] = defaultdict(list)
    items = []
    for chunk in chunks(sorted(map(str, ids))):
        for item_id, image_id in conn.execute(
                select(Image.item_id, Image.id).where(Image.item_id.in_(chunk), Image.status.in_(USABLE_STATUSES))
                .order_by(Image.item_id, Image.position, Image.id)):
            photos[item_id].append(image_id)
        items += conn.execute(select(*_INDEXED).where(Item.id.in_(chunk)).order_by(Item.id)).all()
    return [IndexedItem(*row, usable_image_ids=tuple(photos.get(row[0], ()))) for row in items]


CHUNK = 500  # ids per IN (...) list: well below every database's bound-parameter limit


def chunks(ids: list[str], size: int = CHUNK) -> Iterator[list[str]]:
    """``ids`` in lists of ``size`` (one IN (...) list each)."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def item_fields(item: IndexedItem) -> dict[str, str]:
    """The text indexed in each search field (muses.search.FIELDS) for ``item``."""
    classes = [c.name for c in stored_classes(item.classification)]
    return {
        "title": item.title or "",
        "object_type": " ; ".join(item.object_type or []),
        "primary_object_type": item.primary_object_type,
        "material": item.material or "",
        "period": item.period or "",
        "description": item.description or "",
        "predicted": " ; ".join(classes),
        "object_number": item.object_number or "",
        "maker": item.maker or "",
    }


# What an index's tables are built for: an index built for other fields is dropped and built anew.
LAYOUT = "fields " + ",".join(FIELDS) + "; searched " + ",".join(f"{k}={v}" for k, v in CATALOG_FIELDS.items())


def create_tables(conn: Connection, statements: Sequence[str], *, tables: Sequence[str], meta: str) -> None:
    """Run the CREATE ``statements`` of an index whose tables are ``tables`` and whose key/value
    table is ``meta``; first drop them all when they were built for another :data:`LAYOUT` (a
    catalog field added to the search), so the next refresh indexes every item again."""
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"))
    if conn.execute(text(f"SELECT value FROM {meta} WHERE key = 'layout'")).scalar() != LAYOUT:
        for table in tables:
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(text(f"DELETE FROM {meta}"))
        conn.execute(text(f"INSERT INTO {meta} (key, value) VALUES ('layout', :layout)"), {"layout": LAYOUT})
    for statement in statements:
        conn.execute(text(statement))


def filter_sql(filters: Filters) -> tuple[str, dict]:
    """`` AND ...`` conditions on the docs table (alias ``d``: usable, top_class) and their parameters."""
    where = ["d.usable > 0"] if filters.usable_only else []
    if filters.top_class is not None:
        where.append("d.top_class = :top_class")
    return "".join(" AND " + w for w in where), {"top_class": filters.top_class}


STALE_BATCH = 2000  # items reindexed per round: what one round holds in memory


def stale_batches(conn: Connection, stale_sql: str, *, size: int = STALE_BATCH) -> Iterator[dict[str, str]]:
    """{item id: stamp} of the items ``stale_sql`` (a SELECT of id and stamp from ``items i``
    with a WHERE) finds, ``size`` at a time in id order; each round resumes after the last id,
    so the caller reindexes one batch before the next is read and nothing grows with the collection."""
    last = None
    while True:
        after = "" if last is None else " AND i.id > :last"
        rows = conn.execute(text(f"{stale_sql}{after} ORDER BY i.id LIMIT :size"), {"last": last, "size": size}).all()
        if not rows:
            return
        yield dict(rows)
        last = rows[-1][0]


def rows_for_ids(conn: Connection, sql: str, ids: Sequence[str], *, chunk: int = STALE_BATCH) -> Iterator:
    """The rows of ``sql`` (with ``IN :ids``) for ``ids``, asked ``chunk`` ids at a time."""
    for start in range(0, len(ids), chunk):
        yield from conn.execute(text(sql).bindparams(bindparam("ids", expanding=True)),
                                {"ids": list(ids[start : start + chunk])})


Select = tuple[str, dict]  # SQL giving (item id, score) rows, and its parameters
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # a bound parameter, not a ::cast


def ranked_query(parts: Sequence[tuple[Select, str]], *, exclude_ids: Collection[str], limit: int) -> tuple[TextClause, dict]:
    """One statement for a whole query: each (select, term label) part is computed once
    (MATERIALIZED: FTS5's bm25() works only there), the scores add up per item, and only the
    rows of the best ``limit`` items come back, so a word found in a tenth of a million records
    costs one pass in the database, not a hundred thousand rows in Python. The rows keep each
    term's label for :func:`muses.search.rank_hits`, which orders them exactly."""
    ctes, scored, params = [], [], {}
    for n, ((sql, values), label) in enumerate(parts):
        ctes.append(f"t{n} AS MATERIALIZED ({_PARAM.sub(lambda m: f':t{n}_{m.group(1)}', sql)})")
        params.update({f"t{n}_{k}": v for k, v in values.items()})
        scored.append(f"SELECT item_id, score, CAST(:label{n} AS TEXT) AS label FROM t{n}")
        params[f"label{n}"] = label
    keep = " AND item_id NOT IN :exclude" if exclude_ids else ""
    sql = (f"WITH {', '.join(ctes)}, scored (item_id, score, label) AS ({' UNION ALL '.join(scored)}), "
           f"top AS (SELECT item_id, sum(score) AS total FROM scored WHERE score > 0{keep} "
           "GROUP BY item_id ORDER BY total DESC, item_id LIMIT :limit) "
           # IN, not JOIN: SQLite then looks each row up in the 20 best, instead of scanning them per row
           "SELECT s.item_id, s.score, s.label FROM scored s WHERE s.item_id IN (SELECT item_id FROM top) AND s.score > 0")
    params["limit"] = limit
    statement = text(sql)
    if exclude_ids:
        statement = statement.bindparams(bindparam("exclude", expanding=True))
        params["exclude"] = sorted(map(str, exclude_ids))
    return statement, params


class LazyIndex(ABC):
    """An index that refreshes itself: a subclass sets ``store``, calls ``__init__`` and gives
    ``_fingerprint``, ``_stored_fingerprint`` and ``_reindex``."""

    store: Store

    def __init__(self) -> None:
        # The web app searches from several threads: one refresh at a time per engine.
        self._refreshing = threading.Lock()

    def refresh(self, ids: Collection[str] | None = None) -> int:
        """Reindex ``ids``, or (default) every item changed since the last refresh; returns the
        number of items (re)indexed or dropped."""
        with self._refreshing:
            if ids is None:
                with self.store.engine.connect() as conn:
                    if self._fingerprint(conn) == self._stored_fingerprint(conn):
                        return 0
            return self._reindex(ids)

    def search(self, query: Sequence[TextTerm | ClassTerm], filters: Filters | None = None, limit: int = 20) -> list[Hit]:
        """The :class:`~muses.search.SearchEngine` search: every term scored by the engine, the
        scores of an item summed and ranked."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        filters = filters or Filters()
        self.refresh()
        conditions, base = filter_sql(filters)
        with self.store.engine.connect() as conn:
            parts = []
            for term in query:
                if not isinstance(term, (TextTerm, ClassTerm)):
                    raise TypeError(f"a query holds TextTerm and ClassTerm objects, got {type(term).__name__}")
                parts += [(select, term.label) for select in self._selects(conn, term, conditions, base)]
            if not parts:
                return []
            rows = conn.execute(*ranked_query(parts, exclude_ids=filters.exclude_ids, limit=limit)).all()
        return rank_hits(rows, exclude_ids=filters.exclude_ids, limit=limit)

    def matching(self, clauses: Sequence[Clause], *, ranked: bool = True) -> TextClause:
        """SQL giving (item_id, score) for every item that holds all ``clauses`` in its catalog
        fields (:data:`muses.search.query.CATALOG_FIELDS`), scored by relevance: the caller counts,
        facets and pages it in the database, so totals are exact at any size. Reads the index as
        it is (the commands that change the store refresh it). ``ranked=False``: the score is 0,
        and costs nothing (for counting)."""
        if not clauses:
            raise ValueError("matching needs at least one clause")
        return self._matching(clauses, ranked)

    def _sync(self, conn: Connection, ids: Collection[str] | None, *, stamp: str, docs: str) -> int:
        """Re-add the rows of ``ids`` (None: of every item whose ``stamp``, an SQL expression on
        ``items i``, differs from the one in table ``docs``) and drop the rows of removed items;
        returns how many. Stale items are found in SQL and handled a batch at a time."""
        empty = not conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM {docs})")).scalar()
        if ids is None and empty:
            # A first build compares nothing: PostgreSQL would plan the comparison for the table
            # as it was (empty) and scan every row added so far, in each round.
            batches, gone = stale_batches(conn, f"SELECT i.id, {stamp} FROM items i WHERE 1 = 1"), []
        elif ids is None:
            batches = stale_batches(conn, f"SELECT i.id, {stamp} FROM items i LEFT JOIN {docs} d ON d.item_id = i.id "
                                          f"WHERE (d.item_id IS NULL OR d.stamp <> {stamp})")
            gone = list(conn.execute(text(f"SELECT d.item_id FROM {docs} d WHERE NOT EXISTS "
                                          "(SELECT 1 FROM items i WHERE i.id = d.item_id)")).scalars())
        else:
            wanted = sorted({str(i) for i in ids})
            stamps = dict(rows_for_ids(conn, f"SELECT i.id, {stamp} FROM items i WHERE i.id IN :ids", wanted))
            indexed = [i for i, in rows_for_ids(conn, f"SELECT item_id FROM {docs} WHERE item_id IN :ids", wanted)]
            batches, gone = iter([stamps]), [i for i in indexed if i not in stamps]
        count = len(gone)
        self._drop(conn, gone)
        for stamps in batches:
            if not empty:
                self._drop(conn, list(stamps))
            self._add(conn, indexed_items(conn, list(stamps)), stamps)
            count += len(stamps)
        return count

    @abstractmethod
    def _drop(self, conn: Connection, ids: list[str]) -> None:
        """Remove the index rows of ``ids``."""

    @abstractmethod
    def _add(self, conn: Connection, items: Sequence[IndexedItem], stamps: dict[str, str]) -> None:
        """Index ``items`` with their stamps, in a few statements whatever their number."""

    @abstractmethod
    def _selects(self, conn: Connection, term: TextTerm | ClassTerm, conditions: str, base: dict) -> list[Select]:
        """The SELECTs giving (item_id, score) rows of ``term``, within the filters' SQL."""

    @abstractmethod
    def _matching(self, clauses: Sequence[Clause], ranked: bool) -> TextClause:
        """:meth:`matching` in this engine's SQL."""

    @abstractmethod
    def _fingerprint(self, conn: Connection) -> str:
        """A cheap summary of the store that changes whenever an indexed item may have."""

    @abstractmethod
    def _stored_fingerprint(self, conn: Connection) -> str | None:
        """The fingerprint at the last full refresh (None: none yet)."""

    @abstractmethod
    def _reindex(self, ids: Collection[str] | None) -> int:
        """Reindex ``ids`` (None: every stale item) and store the fingerprint; returns the count."""
