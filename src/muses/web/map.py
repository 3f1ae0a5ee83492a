"""The collection map (/map): every classified object as a dot placed by how it looks.

The layout is made once by `muses map` (:mod:`muses.collection_map`) and served as one JSON
file; the page draws it on a single <canvas> (static/map.js), so 50 000 objects cost one
fetch of a few MB and one drawing pass, not 50 000 <img> elements.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from muses.collection_map import map_path
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
