"""A curator's review decisions: which class a record really has, kept beside the catalog.

A decision never changes the imported catalog fields: it is a row of its own table, keyed by
the record's id (no foreign key, so a re-import, which updates records in place, or a record
that leaves the catalog, never takes a decision with it). Every decision is kept; the latest
one of a record that was not undone is the record's *current* decision. The exporter, the
label review and the evaluation read the current decisions.

    record_decision(store, item_id="12.34", action=USE_SUGGESTION, catalog_value="Vases",
                    suggested_value="Busts", reviewer="Ana")
    current_decisions(store)   # {item_id: Decision}
"""
from __future__ import annotations

import datetime as dt
import io
import weakref
from collections.abc import Mapping

from sqlalchemy import Boolean, DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from muses.collection.store import Base, Store
from muses.csvfile import Writer, natural_key
from muses.errors import MusesError

# What a reviewer can decide, in the words the pages and the CSV use.
CATALOG_RIGHT = "catalog is right"
USE_SUGGESTION = "use the suggestion"
OTHER_CLASS = "another class"
NOT_ONE = "not one of these"
ACTIONS = (CATALOG_RIGHT, USE_SUGGESTION, OTHER_CLASS, NOT_ONE)

CLASS_FIELD = "class"  # the field a class decision is about
EXPORT_COLUMNS = ["id", "field", "catalog value", "suggested value", "decision", "reviewer", "date", "reviewed value"]
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

    def __repr__(self) -> str:
        return f"Decision(item_id={self.item_id!r}, action={self.action!r}, value={self.value!r})"


_READY: weakref.WeakSet = weakref.WeakSet()  # engines whose store has the table


def _table_ready(store: Store) -> None:
    # A store opened before this module was imported lacks the table (Store creates the tables
    # it knows of); creating a missing table is safe, and done once per engine.
    if store.engine not in _READY:
        Base.metadata.create_all(store.engine, tables=[Decision.__table__])
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


def record_decision(store: Store, *, item_id: str, action: str, reviewer: str, catalog_value: str = "",
                    suggested_value: str = "", chosen: str | None = None, field: str = CLASS_FIELD) -> Decision:
    """Store one decision and return it; it becomes the record's current decision."""
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise DecisionError("a decision needs the reviewer's name: type it in the page, or start the server "
                            "with `muses serve --allow-writes --reviewer NAME`")
    if not str(item_id).strip():
        raise DecisionError("a decision needs the record's object number")
    value = reviewed_value(action, catalog_value=catalog_value or "", suggested_value=suggested_value or "",
                           chosen=chosen)
    _table_ready(store)
    decision = Decision(item_id=str(item_id), field=field, catalog_value=catalog_value or "",
                        suggested_value=suggested_value or "", action=action, value=value, reviewer=reviewer,
                        decided_at=_now())
    with store.transaction() as s:
        current = s.scalars(select(Decision).where(Decision.item_id == decision.item_id, Decision.field == field,
                                                   Decision.undone.is_(False))
                            .order_by(Decision.id.desc()).limit(1)).first()
        if current is not None and _same(current, decision):
            return current  # a replayed or double-clicked decision adds no row
        s.add(decision)
    return decision


def _same(a: Decision, b: Decision) -> bool:
    return all(getattr(a, name) == getattr(b, name)
               for name in ("action", "value", "reviewer", "catalog_value", "suggested_value"))


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


def current_decisions(store: Store, *, since: dt.datetime | None = None) -> dict[str, Decision]:
    """Item id → its latest decision that was not undone (decided at or after ``since``)."""
    _table_ready(store)
    with store.session() as s:
        rows = s.scalars(select(Decision).where(Decision.undone.is_(False)).order_by(Decision.id))
        latest = {d.item_id: d for d in rows}
    if since is not None:
        latest = {k: d for k, d in latest.items() if d.decided_at >= since}
    return latest


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


def export_csv(decisions: Mapping[str, Decision], *, bom: bool = False) -> str:
    """The decisions as CSV for the collection management system, one row per record, in object
    number order; ``bom`` for Excel."""
    buf = io.StringIO()
    writer = Writer(buf, EXPORT_COLUMNS, bom=bom)
    for item_id in sorted(decisions, key=natural_key):
        d = decisions[item_id]
        writer.row([item_id, d.field, d.catalog_value, d.suggested_value, d.action,
                    d.reviewer, d.decided_at.isoformat(timespec="seconds"), d.value or ""])
    return buf.getvalue()
