"""The collection map (/map): every classified object as a dot placed by how it looks.

The layout is made once by `muses map` (:mod:`muses.collection_map`) and served as one JSON
file; the page draws it on a single <canvas> (static/map.js), so 50 000 objects cost one
fetch of a few MB and one drawing pass, not 50 000 <img> elements. The review decisions come
apart (they change while one works); a box drawn on the map opens its objects as a review list
(:func:`muses.web.review.review_selection`) or downloads them as CSV.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from muses import csvfile
from muses.collection import decisions as dec
from muses.csvfile import natural_key
from muses.collection_map import map_path
from muses.predictions import exported_name, stored_classes
from muses.web.review import csv_download
from muses.web.state import AppState, get_state
from muses.web.templating import templates

router = APIRouter()


@router.get("/map", response_class=HTMLResponse, include_in_schema=False)
def map_page(request: Request, state: AppState = Depends(get_state)):
    return templates.TemplateResponse(request, "map.html", {"ready": map_path(state.project).is_file()})


@router.get("/api/map", summary="The collection map's layout (made by `muses map`)", tags=["api"])
def map_data(state: AppState = Depends(get_state)):
    path = map_path(state.project)
    if not path.is_file():
        raise HTTPException(404, "no collection map yet: run `muses classify`, then `muses map`")
    return FileResponse(path, media_type="application/json", headers={"Cache-Control": "no-cache"})


@router.get("/api/map/decisions", summary="Each reviewed object's decided class (for the map's legend)", tags=["api"])
def map_decisions(state: AppState = Depends(get_state)):
    return {"decisions": {item_id: d.value or dec.NONE_OF_THESE
                          for item_id, d in dec.current_decisions(state.store).items()}}


SELECTION_COLUMNS = ["object number", "title", "predicted class", "confidence", "decided value"]
MAX_CSV_SELECTION = 200_000


@router.post("/map/selection.csv", include_in_schema=False)
def selection_csv(ids: str = Form(""), state: AppState = Depends(get_state)):
    """The objects picked on the map as CSV (the same writer as the decisions' export)."""
    wanted = [line.strip() for line in ids.splitlines() if line.strip()][:MAX_CSV_SELECTION]
    decided = dec.current_decisions(state.store)
    rows = []
    for item in state.store.items(wanted):
        top = stored_classes(item.classification)[:1]
        d = decided.get(item.id)
        rows.append([item.number, item.title, exported_name(top[0].name) if top else "",
                     f"{top[0].probability:.3f}" if top else "", exported_name(d.value or "") if d else ""])
    rows.sort(key=lambda r: natural_key(r[0]))
    return csv_download(csvfile.encode(rows, SELECTION_COLUMNS), "map-selection")
