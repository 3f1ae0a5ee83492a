"""A curator's review decisions: which class a record really has, kept beside the catalog.

A decision never changes the imported catalog fields: it is a row of its own table, keyed by
the record's id (no foreign key, so a re-import, which updates records in place, or a record
that leaves the catalog, never takes a decision with it). The table is append-only: a revision
is a new row, a withdrawal is a new row with the action WITHDRAWN, and an undo (a slip of the
key, seconds after) only marks its row. The newest row of a record that was not undone is the
record's *current* decision, unless it is a withdrawal. The exporter, the label review and the
evaluation read the current decisions; the history pages read every row.

    record_decision(store, item_id="12.34", action=USE_SUGGESTION, catalog_value="Vases",
                    suggested_value="Busts", reviewer="Ana")
    current_decisions(store)   # {item_id: Decision}
"""
from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Boolean, DateTime, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, mapped_column

from muses.collection.store import Base, Store
from muses import csvfile
from muses.csvfile import natural_key
from muses.errors import MusesError
from muses.predictions import exported_name, stored_classes

# What a reviewer can decide, in the words the pages and the CSV use.
CATALOG_RIGHT = "catalog is right"
USE_SUGGESTION = "use the suggestion"
OTHER_CLASS = "another class"
NOT_ONE = "not one of these"
ACTIONS = (CATALOG_RIGHT, USE_SUGGESTION, OTHER_CLASS, NOT_ONE)
WITHDRAWN = "withdrawn"  # an appended row: from then on the record has no decision
NONE_OF_THESE = "none of these"  # how the pages and the export name NOT_ONE's (empty) class

CLASS_FIELD = "class"  # the field a class decision is about
EXPORT_COLUMNS = ["object number", "title", "field", "catalog value", "decided value", "decision", "list",
                  "reviewer", "decided at", "model answer", "confidence", "note"]
GOLD_DECISIONS = "decisions"  # `muses evaluate --gold decisions`


class DecisionError(MusesError):
    """A decision that cannot be stored as given (no reviewer, unknown action, missing class)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Decision(Base):
    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(255), index=True)
    field: Mapped[str] = mapped_column(String(64), default=CLASS_FIELD)
    catalog_value: Mapped[str] = mapped_column(Text, default="")  # the catalog's (naive) class, "" if none
    suggested_value: Mapped[str] = mapped_column(Text, default="")  # the model's class
    action: Mapped[str] = mapped_column(String(32))  # one of ACTIONS
    value: Mapped[str | None] = mapped_column(Text, nullable=True)  # the reviewed class; None: not one of these
    reviewer: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now, index=True)
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # the reviewer's words, if any
    list_name: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the review list it was made in

    @property
    def decided_at_utc(self) -> dt.datetime:
        """When, with its zone (stored as naive UTC)."""
        return self.decided_at.replace(tzinfo=dt.timezone.utc)

    @property
    def shown_value(self) -> str:
        """The decided class in the pages' words."""
        return WITHDRAWN if self.action == WITHDRAWN else (self.value or NONE_OF_THESE)

    def __repr__(self) -> str:
        return f"Decision(item_id={self.item_id!r}, action={self.action!r}, value={self.value!r})"


class DecisionExport(Base):
    """When the decisions were last exported: "only since the last export" starts there."""
    __tablename__ = "decision_exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    exported_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_now)
    rows: Mapped[int] = mapped_column(Integer, default=0)


_READY: weakref.WeakSet = weakref.WeakSet()  # engines whose store has the tables


def _table_ready(store: Store) -> None:
    # A store opened before this module was imported lacks the tables (Store creates the tables
    # it knows of); creating a missing table is safe, and done once per engine.
    if store.engine not in _READY:
        Base.metadata.create_all(store.engine, tables=[Decision.__table__, DecisionExport.__table__])
        _READY.add(store.engine)


def reviewed_value(action: str, *, catalog_value: str, suggested_value: str, chosen: str | None) -> str | None:
    """The class a record has after ``action`` (None: it is none of the classes)."""
    if action not in ACTIONS:
        raise DecisionError(f"unknown decision {action!r}; use one of: {', '.join(ACTIONS)}")
    value = {CATALOG_RIGHT: catalog_value, USE_SUGGESTION: suggested_value, OTHER_CLASS: chosen, NOT_ONE: None}[action]
    if action != NOT_ONE and not (value or "").strip():
        what = {CATALOG_RIGHT: "the catalog gives no class", USE_SUGGESTION: "there is no suggestion",
                OTHER_CLASS: "no class was chosen"}[action]
        raise DecisionError(f"cannot store {action!r}: {what}; choose another class or skip the record")
    return value.strip() if value else None


def _who(reviewer: str | None, item_id: str) -> str:
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise DecisionError("a decision needs the reviewer's name: type it in the page, or start the server "
                            "with `muses serve --allow-writes --reviewer NAME`")
    if not str(item_id).strip():
        raise DecisionError("a decision needs the record's object number")
    return reviewer


def _append(store: Store, decision: Decision) -> Decision:
    _table_ready(store)
    with store.transaction() as s:
        current = s.scalars(select(Decision).where(Decision.item_id == decision.item_id, Decision.field == decision.field,
                                                   Decision.undone.is_(False))
                            .order_by(Decision.id.desc()).limit(1)).first()
        if current is not None and _same(current, decision):
            return current  # a replayed or double-clicked decision adds no row
        s.add(decision)
    return decision


def _same(a: Decision, b: Decision) -> bool:
    return all(getattr(a, name) == getattr(b, name)
               for name in ("action", "value", "reviewer", "catalog_value", "suggested_value", "note", "list_name"))


def record_decision(store: Store, *, item_id: str, action: str, reviewer: str, catalog_value: str = "",
                    suggested_value: str = "", chosen: str | None = None, field: str = CLASS_FIELD,
                    note: str | None = None, list_name: str | None = None) -> Decision:
    """Store one decision and return it; it becomes the record's current decision (a record
    decided before keeps its earlier rows: this one revises them)."""
    reviewer = _who(reviewer, item_id)
    value = reviewed_value(action, catalog_value=catalog_value or "", suggested_value=suggested_value or "",
                           chosen=chosen)
    return _append(store, Decision(item_id=str(item_id), field=field, catalog_value=catalog_value or "",
                                   suggested_value=suggested_value or "", action=action, value=value,
                                   reviewer=reviewer, decided_at=_now(), note=(note or "").strip() or None,
                                   list_name=list_name))


def action_for(chosen: str | None, *, catalog_value: str, suggested_value: str) -> str:
    """The action that gives a record the class ``chosen`` (None or "": none of these), as a
    revision from the object page names it."""
    if not chosen:
        return NOT_ONE
    if chosen == catalog_value:
        return CATALOG_RIGHT
    return USE_SUGGESTION if chosen == suggested_value else OTHER_CLASS


def withdraw_decision(store: Store, *, item_id: str, reviewer: str, note: str | None = None) -> Decision:
    """Take back a record's current decision: an appended WITHDRAWN row (the history keeps
    every earlier one); the record is undecided from then on, until someone decides again."""
    reviewer = _who(reviewer, item_id)
    current = current_decision(store, item_id)
    if current is None:
        raise DecisionError(f"{item_id} has no decision to withdraw")
    return _append(store, Decision(item_id=str(item_id), field=current.field, catalog_value=current.catalog_value,
                                   suggested_value=current.suggested_value, action=WITHDRAWN, value=None,
                                   reviewer=reviewer, decided_at=_now(), note=(note or "").strip() or None))


def undo_decision(store: Store, decision_id: int) -> Decision:
    """Mark a decision undone (kept, for the record); the record's earlier decision, if any,
    is current again."""
    _table_ready(store)
    with store.transaction() as s:
        decision = s.get(Decision, int(decision_id))
        if decision is None:
            raise DecisionError(f"there is no decision number {decision_id} to undo")
        decision.undone = True
    return decision


def _latest_ids():
    """The id of each record's newest row that was not undone (withdrawals included)."""
    return select(func.max(Decision.id).label("id")).where(Decision.undone.is_(False)).group_by(Decision.item_id)


def current_decisions(store: Store, *, since: dt.datetime | None = None) -> dict[str, Decision]:
    """Item id → its current decision (decided at or after ``since``)."""
    _table_ready(store)
    with store.session() as s:
        rows = s.scalars(select(Decision).where(Decision.id.in_(_latest_ids()), Decision.action != WITHDRAWN))
        latest = {d.item_id: d for d in rows}
    if since is not None:
        latest = {k: d for k, d in latest.items() if d.decided_at >= since}
    return latest


def current_decision(store: Store, item_id: str) -> Decision | None:
    """A record's current decision, or None."""
    _table_ready(store)
    with store.session() as s:
        return current_of(s.scalars(select(Decision).where(Decision.item_id == str(item_id), Decision.undone.is_(False))
                                    .order_by(Decision.id.desc()).limit(1)))


def current_of(rows: Iterable[Decision]) -> Decision | None:
    """The current decision among a record's rows, newest first (undone ones may be among them):
    the newest not undone, unless it withdrew the record's decision."""
    d = next((d for d in rows if not d.undone), None)
    return None if d is None or d.action == WITHDRAWN else d


def history(store: Store, *, item_id: str | None = None, reviewer: str | None = None,
            limit: int = 1000) -> list[Decision]:
    """Every row (undone ones too), newest first, of one record or one reviewer or all."""
    _table_ready(store)
    q = select(Decision).order_by(Decision.id.desc()).limit(limit)
    if item_id is not None:
        q = q.where(Decision.item_id == str(item_id))
    if reviewer is not None:
        q = q.where(Decision.reviewer == reviewer)
    with store.session() as s:
        return list(s.scalars(q))


def last_decision(store: Store, reviewer: str) -> Decision | None:
    """The reviewer's newest row that was not undone: what `u` on the review page takes back,
    after a reload too."""
    _table_ready(store)
    with store.session() as s:
        return s.scalars(select(Decision).where(Decision.reviewer == reviewer.strip(), Decision.undone.is_(False))
                         .order_by(Decision.id.desc()).limit(1)).first()


def reviewers(store: Store) -> list[str]:
    _table_ready(store)
    with store.session() as s:
        return sorted(s.scalars(select(Decision.reviewer).distinct()))


def stamp(store: Store) -> tuple:
    """Changes with every decision, undo and withdrawal: what remembered answers are keyed by."""
    _table_ready(store)
    with store.session() as s:
        return tuple(s.execute(select(func.max(Decision.id), func.count().filter(Decision.undone.is_(True)))
                               .select_from(Decision)).one())


REVIEWED, NOT_REVIEWED = "yes", "no"  # the browse filter's values, besides a class name or NONE_OF_THESE


def reviewed_condition(item_column, reviewed: str | None = None, reviewer: str | None = None):
    """An SQL condition on ``item_column`` (a record's id) for the browse filter: reviewed
    ("yes"), not reviewed ("no"), decided as a class (or NONE_OF_THESE); by ``reviewer``."""
    current = select(Decision.item_id).where(Decision.id.in_(_latest_ids()), Decision.action != WITHDRAWN)
    if reviewer:
        current = current.where(Decision.reviewer == reviewer)
    if reviewed == NONE_OF_THESE:
        current = current.where(Decision.value.is_(None))
    elif reviewed not in (None, "", REVIEWED, NOT_REVIEWED):
        current = current.where(Decision.value == reviewed)
    return ~item_column.in_(current) if reviewed == NOT_REVIEWED else item_column.in_(current)


def reviewed_classes(store: Store) -> dict[str, str]:
    """Hand-checked labels (item id → class) for `muses evaluate --gold decisions`: every record
    confirmed or corrected by a reviewer ("not one of these" has no class to score against)."""
    return {item_id: d.value for item_id, d in current_decisions(store).items() if d.value}


def parse_since(text: str) -> dt.datetime:
    """A ``--since`` date: ``2026-11-30`` or ``2026-11-30T14:00`` (UTC)."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise DecisionError(f"--since {text!r} is not a date; write it as YYYY-MM-DD (e.g. 2026-11-30)") from exc
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value


@dataclass(frozen=True)
class ExportRow:
    object_number: str
    title: str
    decision: Decision
    model_answer: str
    confidence: float | None

    def cells(self) -> list[str]:
        d = self.decision
        return [self.object_number, self.title, d.field, d.catalog_value, exported_name(d.value or ""), d.action,
                d.list_name or "", d.reviewer, d.decided_at_utc.isoformat(timespec="seconds"), self.model_answer,
                "" if self.confidence is None else f"{self.confidence:.3f}", d.note or ""]


def export_rows(store: Store, decisions: Mapping[str, Decision]) -> list[ExportRow]:
    """One row per decided record, naturally sorted by object number; a record that left the
    catalog keeps its id as its number and an empty title."""
    items = {item.id: item for item in store.items(list(decisions))} if decisions else {}
    rows = []
    for item_id, d in decisions.items():
        item = items.get(item_id)
        top = stored_classes(item.classification)[:1] if item is not None else []
        rows.append(ExportRow(item.number if item is not None else item_id, item.title if item else "",
                              d, exported_name(top[0].name) if top else "", top[0].probability if top else None))
    return sorted(rows, key=lambda r: natural_key(r.object_number))


def export_csv(rows: list[ExportRow], *, bom: bool = True) -> bytes:
    """The decisions as CSV for the collection management system, one row per record."""
    return csvfile.encode((r.cells() for r in rows), EXPORT_COLUMNS, bom=bom)


def last_export(store: Store) -> dt.datetime | None:
    """When the decisions were last exported (naive UTC), or None."""
    _table_ready(store)
    with store.session() as s:
        return s.scalar(select(func.max(DecisionExport.exported_at)))


def export_decisions(store: Store, *, since: dt.datetime | None = None, since_last: bool = False,
                     bom: bool = True, remember: bool = True) -> tuple[bytes, int]:
    """The CSV of the current decisions (made at or after ``since``, or since the last export)
    and how many rows it has; the export is remembered for the next ``since_last``."""
    started = _now()
    if since_last:
        since = last_export(store)
    rows = export_rows(store, current_decisions(store, since=since))
    if remember:
        with store.transaction() as s:
            s.add(DecisionExport(exported_at=started, rows=len(rows)))
    return export_csv(rows, bom=bom), len(rows)
