"""The review pages: a curator decides, card by card, what class a record really has.

Three queues: the label issues and the suggested labels that `muses label-issues` wrote (its
newest CSVs in the plots folder), and the records whose catalog label and stored prediction
disagree. A decision is stored and undone through the actions (`muses.actions.record_decision`,
`undo_decision`: :mod:`muses.collection.decisions` below them) (only with
``--allow-writes``; the app's same-origin guard applies); a decided record leaves the queues.

Decisions are records of their own: the object page shows the current one and revises or
withdraws it (a plain form, no script needed), /decisions lists the history of one record, one
reviewer or all, and exports the current decisions as CSV for the collection management system.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi import Path as FastAPIPath
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, field_validator

from muses import csvfile
from sqlalchemy import select

from muses.actions import (
    DecisionsConfig, RecordDecisionConfig, UndoDecisionConfig, export_decisions, record_decision, undo_decision,
)
from muses.collection import decisions as dec
from muses.search.browse_index import BrowseRow
from muses.web.errors import storable_text
from muses.web.state import AppState, get_state
from muses.web.templating import item_url, templates

router = APIRouter()
MAX_CARDS = 300  # cards per page load; a reload brings the next ones once these are decided
MAX_SELECTION = 5000  # records a map selection opens at once


@dataclass(frozen=True)
class Queue:
    name: str
    title: str
    source: str  # where its records come from, in plain words


QUEUES = {
    "issues": Queue("issues", "Labels that look wrong", "from muses label-issues: catalog labels the photos contradict"),
    "suggestions": Queue("suggestions", "Suggested labels", "from muses label-issues: classes for records the catalog does not label"),
    "disagreements": Queue("disagreements", "Model and catalog disagree", "from muses classify: the model's class differs from the catalog's"),
}
SELECTION = Queue("selection", "Selected on the map", "the records you picked on the map")


@dataclass
class Card:
    id: str
    catalog_class: str  # the catalog's (naive) class, "" when it gives none
    suggested: str  # the model's class
    confidence: float | None  # how sure the model is of ``suggested``, 0-1
    # from `muses label-issues`: a cross-validated estimate by models that never saw the photo,
    # not the answer stored on the record (which the card shows beside it)
    cross_checked: bool = False


def _newest(plots: Path, suffix: str) -> Path | None:
    files = sorted(plots.glob(f"*{suffix}"), key=lambda p: p.stat().st_mtime) if plots.is_dir() else []
    return files[-1] if files else None


def _csv_cards(path: Path | None, catalog_column: str | None) -> list[Card]:
    if path is None:
        return []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return [Card(row["id"], row.get(catalog_column, "") if catalog_column else "", row["suggested"],
                         float(row["confidence"]) if row.get("confidence") else None, cross_checked=True)
                    for row in csvfile.records(fh)[1]]
    except (OSError, UnicodeDecodeError, KeyError, ValueError, TypeError) as exc:
        raise HTTPException(503, f"the review list {path.name} cannot be read ({type(exc).__name__}: {exc}); "
                                 "run `muses label-issues` again to write it anew") from exc


def _browse_cards(state: AppState, condition) -> list[Card]:
    # The browse index keeps the catalog's and the model's class side by side, indexed.
    state.view.sync()
    with state.store.session() as s:
        rows = s.execute(select(BrowseRow.item_id, BrowseRow.naive_class, BrowseRow.predicted_class,
                                BrowseRow.predicted_probability).where(condition).order_by(BrowseRow.item_id))
        return [Card(item_id, naive or "", predicted or "", probability)
                for item_id, naive, predicted, probability in rows]


def _disagreements(state: AppState) -> list[Card]:
    return _browse_cards(state, BrowseRow.disagree)


def selection_cards(state: AppState, ids: list[str]) -> list[Card]:
    """Cards of the records picked on the map (in object-number order)."""
    return _browse_cards(state, BrowseRow.item_id.in_(ids[:MAX_SELECTION]))


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
    return _review_list(request, state, _queue(name), queue_cards(state, name), q)


@router.post("/review/selection", response_class=HTMLResponse, include_in_schema=False)
def review_selection(request: Request, ids: str = Form(""), state: AppState = Depends(get_state)):
    """The records picked on the map (one object number a line), as a review list."""
    return _review_list(request, state, SELECTION, selection_cards(state, _lines(ids)), "")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _review_list(request: Request, state: AppState, queue: Queue, cards: list[Card], q: str):
    decided = dec.current_decisions(state.store)
    wanted = q.strip().lower()
    left = [c for c in cards if c.id not in decided]
    pending = [c for c in left if not wanted or wanted in c.id.lower()]
    if wanted:  # a record looked for by its number is shown decided too: a new choice revises it
        pending = [c for c in cards if wanted in c.id.lower()]
    items = {item.id: state.view.summary(item) for item in state.store.items([c.id for c in pending[:MAX_CARDS]])}
    shown = [{**asdict(c), "item": items[c.id], "decision": decided.get(c.id)}
             for c in pending[:MAX_CARDS] if c.id in items]
    return templates.TemplateResponse(request, "review.html", {
        "queue": queue, "cards": shown, "pending": len(pending), "total": len(cards),
        "decided": len(cards) - len(left), "q": q,
        "classes": _class_names(state), "reviewer": state.reviewer, "actions": dec.ACTIONS,
        "none_of_these": dec.NONE_OF_THESE,
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
    note: str = Field("", max_length=2000, description="the reviewer's words, kept with the decision")
    list_name: str | None = Field(None, max_length=64, description=f"the review list: {', '.join(QUEUES)}, selection")

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
        d = record_decision(state.project, RecordDecisionConfig(
            body.item_id, body.reviewer or state.reviewer, action=body.action, chosen=body.chosen,
            catalog_value=catalog_value, suggested_value=suggested_value, note=body.note,
            list_name=body.list_name if body.list_name in (*QUEUES, SELECTION.name) else None), store=state.store)
    except dec.DecisionError as exc:
        raise HTTPException(422, str(exc)) from exc
    return _decision_json(d)


def _decision_json(d: dec.Decision) -> dict:
    return {"id": d.id, "item_id": d.item_id, "action": d.action, "value": d.value, "reviewer": d.reviewer,
            "date": d.decided_at_utc.isoformat(timespec="seconds"), "note": d.note, "list": d.list_name,
            "undone": d.undone}


@router.get("/api/review/decisions/last", tags=["review"], summary="A reviewer's last decision (what undo takes back)")
def last(reviewer: str = "", state: AppState = Depends(get_state)):
    name = reviewer.strip() or state.reviewer
    d = dec.last_decision(state.store, name) if name else None
    if d is None:
        raise HTTPException(404, f"{name or 'nobody'} has no decision to undo")
    return _decision_json(d)


@router.post("/api/review/decisions/{decision_id}/undo", tags=["review"], summary="Undo a decision")
def undo(decision_id: int = FastAPIPath(ge=1, le=MAX_ID, description="the decision's number"), state: AppState = Depends(get_state)):
    _writable(state)
    try:
        d = undo_decision(state.project, UndoDecisionConfig(decision_id), store=state.store)
    except dec.DecisionError as exc:
        raise HTTPException(404, str(exc)) from exc
    return {"id": d.id, "item_id": d.item_id, "undone": True}


# -- decisions as records: revise or withdraw from the object page, history, export ---------------
def decision_context(state: AppState, item_id: str) -> dict:
    """What the object page shows of a record's decision, and offers to revise it with."""
    rows = dec.history(state.store, item_id=item_id)  # newest first, undone ones too: one query for both
    return {"decision": dec.current_of(rows),
            "classes": _class_names(state), "none_of_these": dec.NONE_OF_THESE, "reviewer": state.reviewer,
            "decided_before": bool(rows)}


@router.post("/decisions/decide", include_in_schema=False)
def decide_form(item_id: str = Form(...), chosen: str = Form(""), note: str = Form(""), reviewer: str = Form(""),
                withdraw: str = Form(""), state: AppState = Depends(get_state)):
    """The object page's form: give the record a class (or none of these), or withdraw its
    decision; back to the page, which shows the outcome."""
    _writable(state)
    state.item(item_id)
    row = state.view.rows([item_id]).get(item_id)
    catalog, suggested = (row.naive_class or "", row.predicted_class or "") if row else ("", "")
    classes = _class_names(state)
    if not withdraw and chosen not in (*classes, dec.NONE_OF_THESE):
        raise HTTPException(422, f"{chosen!r} is not one of the classes ({', '.join(classes)}); choose one of them "
                                 f"or {dec.NONE_OF_THESE!r}")
    chosen = "" if chosen == dec.NONE_OF_THESE else chosen
    try:
        record_decision(state.project, RecordDecisionConfig(
            item_id, reviewer or state.reviewer, withdraw=bool(withdraw), chosen=chosen or None,
            catalog_value=catalog, suggested_value=suggested, note=note), store=state.store)
    except dec.DecisionError as exc:
        raise HTTPException(422, str(exc)) from exc
    return RedirectResponse(item_url(item_id) + "#decision", status_code=303)


@router.get("/decisions", response_class=HTMLResponse, include_in_schema=False)
def decisions_page(request: Request, item: str = "", reviewer: str = "", state: AppState = Depends(get_state)):
    """Who decided what and when: of one record, of one reviewer, or all (newest first)."""
    rows = dec.history(state.store, item_id=item or None, reviewer=reviewer or None)
    last = dec.last_export(state.store)
    return templates.TemplateResponse(request, "decisions.html", {
        "rows": rows, "item": item, "reviewer": reviewer, "reviewers": dec.reviewers(state.store),
        "current": {d.id for d in dec.current_decisions(state.store).values()},
        "last_export": last.replace(tzinfo=dt.timezone.utc) if last else None, "withdrawn": dec.WITHDRAWN,
    })


@router.post("/decisions/export", include_in_schema=False)
def export(only_new: str = Form(""), plain: str = Form(""), state: AppState = Depends(get_state)):
    """The "Export decisions" button: the CSV `muses decisions export` writes, as a download.
    A read-only server does not remember the export (it writes nothing)."""
    config = DecisionsConfig(since_last_export=bool(only_new), plain_utf8=bool(plain), remember=state.allow_writes)
    return csv_download(export_decisions(state.project, config, store=state.store).data, "decisions")


def csv_download(data: bytes, name: str) -> Response:
    """CSV bytes as a file the browser saves, its name stamped with the time (UTC)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Response(data, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"'})
