"""The review pages: a curator decides, card by card, what class a record really has.

Three queues: the label issues and the suggested labels that `muses label-issues` wrote (its
newest CSVs in the plots folder), and the records whose catalog label and stored prediction
disagree. A decision is stored with :mod:`muses.collection.decisions` (only with
``--allow-writes``; the app's same-origin guard applies); a decided record leaves the queues.
"""
from __future__ import annotations

from muses import csvfile
from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as FastAPIPath
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from muses.collection import decisions as dec
from muses.search.browse_index import BrowseRow
from muses.web.errors import storable_text
from muses.web.state import AppState, get_state
from muses.web.templating import templates

router = APIRouter()
MAX_CARDS = 300  # cards per page load; a reload brings the next ones once these are decided


@dataclass(frozen=True)
class Queue:
    name: str
    title: str
    source: str  # where its records come from, in plain words


QUEUES = {
    "issues": Queue("issues", "Labels that look wrong", "`muses label-issues`: catalog labels the photos contradict"),
    "suggestions": Queue("suggestions", "Suggested labels", "`muses label-issues`: classes for records the catalog does not label"),
    "disagreements": Queue("disagreements", "Model and catalog disagree", "`muses classify`: the model's class differs from the catalog's"),
}


@dataclass
class Card:
    id: str
    catalog_class: str  # the catalog's (naive) class, "" when it gives none
    suggested: str  # the model's class
    confidence: float | None  # how sure the model is of ``suggested``, 0-1


def _newest(plots: Path, suffix: str) -> Path | None:
    files = sorted(plots.glob(f"*{suffix}"), key=lambda p: p.stat().st_mtime) if plots.is_dir() else []
    return files[-1] if files else None


def _csv_cards(path: Path | None, catalog_column: str | None) -> list[Card]:
    if path is None:
        return []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return [Card(row["id"], row.get(catalog_column, "") if catalog_column else "", row["suggested"],
                         float(row["confidence"]) if row.get("confidence") else None) for row in csvfile.records(fh)[1]]
    except (OSError, UnicodeDecodeError, KeyError, ValueError, TypeError) as exc:
        raise HTTPException(503, f"the review list {path.name} cannot be read ({type(exc).__name__}: {exc}); "
                                 "run `muses label-issues` again to write it anew") from exc


def _disagreements(state: AppState) -> list[Card]:
    # The browse index keeps the catalog's and the model's class side by side, indexed.
    state.view.sync()
    with state.store.session() as s:
        rows = s.execute(select(BrowseRow.item_id, BrowseRow.naive_class, BrowseRow.predicted_class,
                                BrowseRow.predicted_probability).where(BrowseRow.disagree).order_by(BrowseRow.item_id))
        return [Card(item_id, naive, predicted, probability) for item_id, naive, predicted, probability in rows]


def queue_cards(state: AppState, name: str) -> list[Card]:
    """Every card of queue ``name``, decided or not, in the queue's order."""
    plots = state.project.plots_dir
    if name == "issues":
        return _csv_cards(_newest(plots, "_label_issues.csv"), "naive_label")
    if name == "suggestions":
        return _csv_cards(_newest(plots, "_suggested_labels.csv"), None)
    return _disagreements(state)


def _queue(name: str) -> Queue:
    if name not in QUEUES:
        raise HTTPException(404, f"no review list {name!r}; the lists are: {', '.join(QUEUES)}")
    return QUEUES[name]


def _class_names(state: AppState) -> list[str]:
    definitions = state.definitions.get()
    return list(definitions.class_names) if definitions else []


@router.get("/review", response_class=HTMLResponse, include_in_schema=False)
def review_index(request: Request, state: AppState = Depends(get_state)):
    decided = set(dec.current_decisions(state.store))
    counts = {}
    for name in QUEUES:
        ids = {card.id for card in queue_cards(state, name)}
        counts[name] = {"total": len(ids), "left": len(ids - decided)}
    return templates.TemplateResponse(request, "review_index.html", {"queues": QUEUES, "counts": counts})


@router.get("/review/{name}", response_class=HTMLResponse, include_in_schema=False)
def review_page(request: Request, name: str, q: str = "", state: AppState = Depends(get_state)):
    queue = _queue(name)
    decided = set(dec.current_decisions(state.store))
    cards = queue_cards(state, name)
    wanted = q.strip().lower()
    left = [c for c in cards if c.id not in decided]
    pending = [c for c in left if not wanted or wanted in c.id.lower()]
    items = {item.id: state.view.summary(item) for item in state.store.items([c.id for c in pending[:MAX_CARDS]])}
    shown = [{**asdict(c), "item": items[c.id]} for c in pending[:MAX_CARDS] if c.id in items]
    return templates.TemplateResponse(request, "review.html", {
        "queue": queue, "cards": shown, "pending": len(pending), "total": len(cards),
        "decided": len(cards) - len(left), "q": q,
        "classes": _class_names(state), "reviewer": state.reviewer, "actions": dec.ACTIONS,
    })


MAX_ID = 2**63 - 1  # the largest number a database row id can be


class DecisionIn(BaseModel):
    item_id: str = Field(min_length=1, max_length=255, description="the record's object number")
    action: str = Field(max_length=64, description=f"one of: {', '.join(dec.ACTIONS)}")
    # Sent by older pages; ignored: what the catalog and the model say is read from the store.
    catalog_value: str = Field("", max_length=1000, description="ignored: the catalog's class is read from the store")
    suggested_value: str = Field("", max_length=1000, description="ignored: the model's class is read from the store")
    chosen: str | None = Field(None, max_length=1000, description=f"the class, for {dec.OTHER_CLASS!r}")
    reviewer: str = Field("", max_length=200, description="who decides (default: `muses serve --reviewer`)")

    @field_validator("item_id", "action", "chosen", "reviewer")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        if value is not None and not storable_text(value):
            raise ValueError("holds a character no store keeps (a NUL, or a lone UTF-16 surrogate)")
        return value


def _store_values(state: AppState, item_id: str) -> tuple[str, str]:
    """(the catalog's class, the model's suggestion) of a record, as muses knows them: its card in a
    review list, else its row in the browse index."""
    state.view.sync()
    with state.store.session() as s:
        row = s.execute(select(BrowseRow.naive_class, BrowseRow.predicted_class)
                        .where(BrowseRow.item_id == item_id)).first()
    catalog, suggested = (row[0] or "", row[1] or "") if row else ("", "")
    for name in ("issues", "suggestions"):
        card = next((c for c in queue_cards(state, name) if c.id == item_id), None)
        if card is not None:
            return card.catalog_class or catalog, card.suggested or suggested
    return catalog, suggested


def _writable(state: AppState) -> None:
    if not state.allow_writes:
        raise HTTPException(403, "the server is read-only; start it with `muses serve --allow-writes --reviewer NAME`")


@router.post("/api/review/decisions", tags=["review"], summary="Store a reviewer's decision on a record's class")
def decide(body: DecisionIn, state: AppState = Depends(get_state)):
    _writable(state)
    state.item(body.item_id)
    classes = _class_names(state)
    if body.action == dec.OTHER_CLASS and body.chosen not in classes:
        raise HTTPException(422, f"{body.chosen!r} is not one of the classes ({', '.join(classes)}); choose one of them")
    catalog_value, suggested_value = _store_values(state, body.item_id)
    try:
        d = dec.record_decision(state.store, item_id=body.item_id, action=body.action,
                                reviewer=body.reviewer or state.reviewer, catalog_value=catalog_value,
                                suggested_value=suggested_value, chosen=body.chosen)
    except dec.DecisionError as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"id": d.id, "item_id": d.item_id, "action": d.action, "value": d.value, "reviewer": d.reviewer,
            "date": d.decided_at.isoformat(timespec="seconds")}


@router.post("/api/review/decisions/{decision_id}/undo", tags=["review"], summary="Undo a decision")
def undo(decision_id: int = FastAPIPath(ge=1, le=MAX_ID, description="the decision's number"), state: AppState = Depends(get_state)):
    _writable(state)
    try:
        d = dec.undo_decision(state.store, decision_id)
    except dec.DecisionError as exc:
        raise HTTPException(404, str(exc)) from exc
    return {"id": d.id, "item_id": d.item_id, "undone": True}
