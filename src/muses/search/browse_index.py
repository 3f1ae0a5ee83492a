"""The browse index: one row per item with what the collection page filters, counts and sorts
on (predicted class and its probability, naive class, disagreement, first usable photo), in
indexed columns, so a page of a 50,000-item collection is a few indexed queries, not a scan.

Kept in step lazily, like the FTS5 index: :func:`refresh` compares each item's stamp (its
``updated_at``, its usable images, the definitions digest) with the stored one and recomputes
only the changed rows; the whole table when definitions.toml changes. Writers need not call
it; one that wants the next page to be fast may (``refresh(store, definitions, ids)``).
Plain SQLAlchemy Core: the same code serves SQLite and PostgreSQL.
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (Boolean, Float, Integer, String, Text, cast, delete, func, insert, literal, null, select, text,
                        union_all)
from sqlalchemy.orm import Mapped, mapped_column

from muses.collection.store import USABLE_STATUSES, Base, Image, Item, Store
from muses.labeling.definitions import Definitions
from muses.labeling.matching import Label, Matcher, record_fields
from muses.predictions import stored_answer, stored_classes
from muses.search.lazy_index import IndexedItem, chunks, indexed_items

ROUND = 2000  # items compared and rebuilt per round of a refresh: what one round holds in memory
# The columns' version: a store whose index was built with another is rebuilt from scratch.
SCHEMA = "4"
FACET_WIDTH = 255  # characters of a facet value kept (a longer medium text is cut, for the index)


class BrowseRow(Base):
    __tablename__ = "browse_index"

    item_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    stamp: Mapped[str] = mapped_column(Text)
    predicted_class: Mapped[str | None] = mapped_column(String(255), index=True, nullable=True)
    predicted_probability: Mapped[float | None] = mapped_column(Float, index=True, nullable=True)
    # the stored answer's kind (sure, uncertain, none; None unclassified): with the top class and
    # its probability, all a card needs to say the answer as the object page does
    answer: Mapped[str | None] = mapped_column(String(16), nullable=True)
    naive_class: Mapped[str | None] = mapped_column(String(255), index=True, nullable=True)
    naive_status: Mapped[str] = mapped_column(String(16))
    # the catalog's class and the model's top class, both known and different
    disagree: Mapped[bool] = mapped_column(Boolean, index=True)
    # how strongly the model doubts the catalog: 1 - its probability for the naive class (a
    # class outside the stored top-k counts as 0); None without both
    disagreement: Mapped[float | None] = mapped_column(Float, index=True, nullable=True)
    thumbnail_image: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # natural order of the object number: "1985.141.2" before "1985.141.10", 2086 before 208148
    number_key: Mapped[str] = mapped_column(String(255), index=True, default="")
    # facets (a catalog column becomes one by a column here and a line in facet_values)
    material: Mapped[str | None] = mapped_column(String(FACET_WIDTH), index=True, nullable=True)
    century: Mapped[int | None] = mapped_column(Integer, index=True, nullable=True)
    maker: Mapped[str | None] = mapped_column(String(FACET_WIDTH), index=True, nullable=True)


class BrowseMeta(Base):
    __tablename__ = "browse_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True)
class Matchers:
    """One compiled Matcher per Definitions object (compiling costs more than labeling a record)."""

    definitions: Definitions
    matcher: Matcher


_matchers: dict[int, Matchers] = {}
_lock = threading.Lock()


def matcher_for(definitions: Definitions) -> Matcher:
    with _lock:
        cached = _matchers.get(id(definitions))
        if cached is None or cached.definitions is not definitions:
            _matchers.clear()  # the cache hands out one Definitions per version of the file
            cached = _matchers[id(definitions)] = Matchers(definitions, Matcher(definitions))
        return cached.matcher


def digest_of(definitions: Definitions | None) -> str:
    return definitions.digest if definitions is not None else "-"


# Every write to the items and images tables adds one to a counter in browse_meta, in the same
# transaction (triggers the index keeps on those tables, whoever writes: a command, an older
# muses, a hand-made UPDATE), so noticing a change is one small read whatever the collection's
# size; counting the items and the usable images took 40-100 ms at a million records.
# PostgreSQL counts once per writing transaction, each connection on a row of its own, so
# concurrent writers never wait for one another's counter; SQLite, one writer at a time, per row.
CHANGES = "changes"
_TABLES = ("items", "images")
_SQLITE_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS muses_changes_{table}_{op} AFTER {op} ON {table} BEGIN "
    "INSERT INTO browse_meta (key, value) VALUES ('changes', '1') "
    "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1; END"
)
# Once per transaction (a setting local to it remembers): an executemany is a statement per row,
# and a row updated 100,000 times in one transaction is a chain of 100,000 versions (130 s).
_PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION muses_count_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF coalesce(current_setting('muses.counted', true), '') <> 'yes' THEN "
    "PERFORM set_config('muses.counted', 'yes', true); "
    "INSERT INTO browse_meta (key, value) VALUES ('changes:' || pg_backend_pid(), '1') "
    "ON CONFLICT (key) DO UPDATE SET value = (browse_meta.value::bigint + 1)::text; END IF; RETURN NULL; END $$"
)
# A counter row per connection that ever wrote would grow for as long as the database lives: a
# refresh folds the rows of connections that have ended into one, which keeps the sum (the
# fingerprint) as it was. A new connection reusing an ended one's process id finds its row gone
# and starts another.
_PG_FOLD = (
    "WITH gone AS (DELETE FROM browse_meta WHERE key LIKE 'changes:%' AND key <> 'changes:0' "
    "AND substr(key, 9)::int NOT IN (SELECT pid FROM pg_stat_activity) RETURNING value::bigint AS n) "
    "INSERT INTO browse_meta (key, value) SELECT 'changes:0', sum(n)::text FROM gone HAVING count(*) > 0 "
    "ON CONFLICT (key) DO UPDATE SET value = (browse_meta.value::bigint + excluded.value::bigint)::text"
)
_PG_TRIGGER = ("CREATE OR REPLACE TRIGGER muses_changes_{table} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
               "ON {table} FOR EACH STATEMENT EXECUTE FUNCTION muses_count_change()")
# the counter's sum and how many of its triggers exist: a table rebuilt by a migration loses its
# triggers, which changes the fingerprint, and the refresh that follows makes them again
_FINGERPRINT = {
    "sqlite": "SELECT (SELECT coalesce(sum(CAST(value AS INTEGER)), 0) FROM browse_meta WHERE key = 'changes'), "
              "(SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'muses_changes_%')",
    "postgresql": "SELECT (SELECT coalesce(sum(value::bigint), 0) FROM browse_meta WHERE key LIKE 'changes:%'), "
                  "(SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'muses_changes_%')",
}
_PG_LOCK = 7_140_140_003  # advisory lock key: one process makes the triggers at a time
_TRIGGERS = {"sqlite": 3 * len(_TABLES), "postgresql": len(_TABLES)}
# What the triggers do, as a digest kept in browse_meta: a store whose triggers an older muses
# made gets this one's (the count above only notices triggers that are missing).
TRIGGERS_VERSION = hashlib.sha256("\n".join([_SQLITE_TRIGGER, _PG_FUNCTION, _PG_TRIGGER]).encode()).hexdigest()[:16]


def fingerprint(store: Store, definitions: Definitions | None) -> str:
    """Changes whenever any row of the index may have to: items added, changed or removed,
    images becoming usable or not, another definitions.toml."""
    with store.session() as s:
        changes, triggers = s.execute(text(_FINGERPRINT[store.engine.dialect.name])).one()
    return f"{digest_of(definitions)}|{changes}|{triggers}"


def _ensure_triggers(s, dialect: str) -> None:
    """The triggers that count the writes (:data:`CHANGES`), made anew (this muses's version)."""
    if dialect == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        s.execute(text(_PG_FUNCTION))
        for table in _TABLES:
            s.execute(text(_PG_TRIGGER.format(table=table)))
    else:
        for table in _TABLES:
            for op in ("INSERT", "UPDATE", "DELETE"):
                s.execute(text(f"DROP TRIGGER IF EXISTS muses_changes_{table}_{op}"))
                s.execute(text(_SQLITE_TRIGGER.format(table=table, op=op)))
    s.execute(delete(BrowseMeta).where(BrowseMeta.key == "triggers"))
    s.add(BrowseMeta(key="triggers", value=TRIGGERS_VERSION))


def _stamp_batches(conn, digest: str, ids: Collection[str] | None) -> Iterable[dict[str, str]]:
    """{item id: stamp} of ``ids`` (None: every item, ROUND at a time) in id order."""
    usable = Image.status.in_(USABLE_STATUSES)
    n = select(func.count()).where(Image.item_id == Item.id, usable).scalar_subquery()
    total = select(func.coalesce(func.sum(Image.id), 0)).where(Image.item_id == Item.id, usable).scalar_subquery()
    q = select(Item.id, Item.updated_at, n, total)

    def stamps(rows) -> dict[str, str]:
        return {i: f"{digest}|{u}|{k}:{t}" for i, u, k, t in rows}

    if ids is not None:
        for chunk in chunks(sorted({str(i) for i in ids})):
            yield stamps(conn.execute(q.where(Item.id.in_(chunk))))
        return
    last = None
    while True:
        rows = conn.execute((q if last is None else q.where(Item.id > last)).order_by(Item.id).limit(ROUND)).all()
        if not rows:
            return
        yield stamps(rows)
        last = rows[-1][0]


def natural_key(number: str) -> str:
    """``number``'s sort key in natural order: each run of digits padded to 12 places, letters
    case-folded, so 2082 < 2086 < 208148 and "1985.141.2" < "1985.141.10"."""
    return re.sub(r"\d+", lambda m: m.group().zfill(12), number.casefold())[:255]


_CENTURY_WORDS = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)[\s-]+(?:century|c\b)", re.IGNORECASE)
_YEAR = re.compile(r"(?<![\d.])(\d{3,4})(?![\d.])")
_BCE = re.compile(r"\b(?:B\.?\s?C\.?|BCE)\b", re.IGNORECASE)


def century_of(date_text: str) -> int | None:
    """The century a catalog's date text starts in (19 for "ca. 1800-1860" and for "19th
    century", -5 for "450 BC"); None when it names no year."""
    if not date_text:
        return None
    sign = -1 if _BCE.search(date_text) else 1
    words = _CENTURY_WORDS.search(date_text)
    if words:
        return sign * int(words.group(1))
    year = _YEAR.search(date_text)
    if year is None or int(year.group(1)) == 0:
        return None
    return sign * (int(year.group(1)) // 100 + 1)  # the 1800s are the 19th century, as catalogs count


def century_name(century: int) -> str:
    n = abs(century)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} century" + (" BC" if century < 0 else "")


def facet_values(item: IndexedItem) -> dict:
    """The facet columns of ``item``'s row: its material (the medium as the catalog writes it),
    the century of its date (the earliest year read at import, else the date or period text)
    and its first maker."""
    material = " ".join((item.material or "").split())[:FACET_WIDTH]
    year = item.date_earliest
    century = (-1 if year < 0 else 1) * (abs(year) // 100 + 1) if year is not None else century_of(
        item.date or item.period or "")
    maker = (item.maker or "").split("; ")[0].strip()[:FACET_WIDTH]
    return {"material": material or None, "century": century, "maker": maker or None}


def row_for(item: IndexedItem, label: Label | None, stamp: str) -> dict:
    ranked = stored_classes(item.classification)
    classes = {c.name: c.probability for c in ranked}  # most likely first
    predicted, probability = next(iter(classes.items()), (None, None))
    naive = label.cls if label else None
    found = stored_answer(item.classification, ranked)
    usable = item.usable_image_ids
    disagreement = None
    if naive and classes:
        disagreement = round(1.0 - classes.get(naive, 0.0), 6)
    return {
        "item_id": item.id, "stamp": stamp, "predicted_class": predicted, "predicted_probability": probability,
        "answer": found.kind if found else None, "naive_class": naive, "naive_status": label.status if label else "",
        "disagree": bool(naive and predicted and naive != predicted), "disagreement": disagreement,
        "thumbnail_image": usable[0] if usable else None,
        "number_key": natural_key(item.number), **facet_values(item),
    }


def refresh(store: Store, definitions: Definitions | None, ids: Collection[str] | None = None) -> int:
    """Recompute the rows of ``ids`` (default: every item whose stamp changed) and drop the rows
    of removed items; returns how many rows changed. The stamps are compared ROUND items at a
    time, so memory stays flat whatever the collection's size."""
    ensure_tables(store)
    digest = digest_of(definitions)
    matcher = matcher_for(definitions) if definitions is not None else None
    changed = 0
    with store.transaction() as s:
        # A write first: it takes the database's write lock before anything is read, so two
        # processes refreshing at once do the work one after the other, not over each other.
        s.execute(delete(BrowseMeta).where(BrowseMeta.key == "fingerprint"))
        if store.engine.dialect.name == "postgresql":
            s.execute(text(_PG_FOLD))
        current = fingerprint(store, definitions) if ids is None else None
        # A first build looks nothing up: PostgreSQL plans the lookups for the table as it was
        # (empty), so each batch scanned every row inserted so far (200k items: 677 s).
        empty = s.scalar(select(BrowseRow.item_id).limit(1)) is None
        conn = s.connection()  # rows, not ORM objects: a round of thousands is read and written in bulk
        for stamps in _stamp_batches(conn, digest, ids):
            indexed = {} if empty else dict(conn.execute(select(BrowseRow.item_id, BrowseRow.stamp)
                                                      .where(BrowseRow.item_id.in_(list(stamps)))).all())
            stale = [i for i in stamps if ids is not None or indexed.get(i) != stamps[i]]
            if stale:
                if not empty:
                    s.execute(delete(BrowseRow).where(BrowseRow.item_id.in_(stale)))
                rows = [row_for(item, matcher.label(record_fields(item)) if matcher else None, stamps[item.id])
                        for item in indexed_items(conn, stale)]
                # the table, not the ORM class: one executemany, not a statement per few rows
                conn.execute(insert(BrowseRow.__table__), rows)
            changed += len(stale)
        gone_q = select(BrowseRow.item_id).where(~select(Item.id).where(Item.id == BrowseRow.item_id).exists())
        if ids is not None:
            gone_q = gone_q.where(BrowseRow.item_id.in_([str(i) for i in ids]))
        gone = list(s.scalars(gone_q))
        for chunk in chunks(gone):
            s.execute(delete(BrowseRow).where(BrowseRow.item_id.in_(chunk)))
        if current is not None:
            s.add(BrowseMeta(key="fingerprint", value=current))
    return changed + len(gone)


def facet_counts(s, facets: Mapping[str, Any], matched, wanted: Mapping[str, Any]) -> tuple[int, dict[str, Counter]]:
    """The total and each facet's counts of the browse rows that ``matched`` (a condition: a text
    search) selects, as datasette counts them: each facet (a column of ``facets``, by name) under
    the filters of ``wanted`` (facet name: the value asked for, None for none) other than its own.
    One statement: the matches are read once (a MATERIALIZED CTE) and each facet grouped from
    that, so the cost is one pass over the matches whatever the number of distinct values (the
    makers of a common word make nearly one group per match when grouped all together)."""
    names = list(facets)
    m = select(*(column.label(name) for name, column in facets.items())).where(matched).cte("m")
    m = m.prefix_with("MATERIALIZED")

    def passing(skip: str | None) -> list:
        return [m.c[name].is_(None) if value is None else m.c[name] == value
                for name, value in wanted.items() if name != skip]

    def branch(n: int, name: str | None):
        # one value column per facet (the others NULL of its type), so the branches unite on PostgreSQL too
        values = [m.c[other] if other == name else cast(null(), facets[other].type) for other in names]
        q = select(literal(n), *values, func.count()).select_from(m).where(*passing(name))
        return q.group_by(m.c[name]) if name else q

    statement = union_all(branch(-1, None), *(branch(n, name) for n, name in enumerate(names)))
    total, counts = 0, {name: Counter() for name in names}
    for n, *values, count in s.execute(statement):
        if n < 0:
            total = count
        else:
            counts[names[n]][values[n]] = count
    return total, counts


def ensure_tables(store: Store) -> None:
    """The index's tables, made anew when they were built with other columns (:data:`SCHEMA`)."""
    BrowseMeta.__table__.create(store.engine, checkfirst=True)
    with store.transaction() as s:
        kept = dict(s.execute(select(BrowseMeta.key, BrowseMeta.value).where(BrowseMeta.key.in_(["schema", "triggers"]))).all())
        current = kept.get("schema") == SCHEMA
        if current and kept.get("triggers") == TRIGGERS_VERSION and s.execute(
                text(_FINGERPRINT[store.engine.dialect.name])).one()[1] == _TRIGGERS[store.engine.dialect.name]:
            return
        _ensure_triggers(s, store.engine.dialect.name)
        if current:  # triggers missing or older: what was written meanwhile is found by comparing the stamps
            s.execute(delete(BrowseMeta).where(BrowseMeta.key == "fingerprint"))
            return
        s.execute(delete(BrowseMeta).where(BrowseMeta.key.notin_(["triggers", CHANGES]),
                                           ~BrowseMeta.key.like(CHANGES + ":%")))
        s.add(BrowseMeta(key="schema", value=SCHEMA))
    BrowseRow.__table__.drop(store.engine, checkfirst=True)
    BrowseRow.__table__.create(store.engine)


def stored_fingerprint(store: Store) -> str | None:
    ensure_tables(store)
    with store.session() as s:
        row = s.get(BrowseMeta, "fingerprint")
        return row.value if row else None


def is_current(store: Store, definitions: Definitions | None) -> bool:
    """Whether the index was refreshed since the store or the definitions last changed."""
    stored = stored_fingerprint(store)  # first: it makes the tables and triggers the fingerprint reads
    return fingerprint(store, definitions) == stored


def refresh_if_changed(store: Store, definitions: Definitions | None) -> int:
    """:func:`refresh` when the store or the definitions changed since the last one; 0 otherwise."""
    if is_current(store, definitions):
        return 0
    return refresh(store, definitions)
