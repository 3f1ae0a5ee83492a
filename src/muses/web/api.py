"""The JSON API under /api, documented at /docs."""
from __future__ import annotations

from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from muses.actions import ClassifyConfig, classify_collection
from muses.settings import ComputeSettings
from muses.web import browse
from muses.web.forms import listing_query, read_file
from muses.web.state import AppState, get_state
from muses.web.uploads import UploadError

router = APIRouter(prefix="/api", tags=["api"])
MAX_SIMILAR_IDS = 100


@router.post("/predict", summary="Classes and similar objects for an uploaded photo")
async def api_predict(file: UploadFile = File(..., description="a photo: JPEG, PNG, WebP, GIF, BMP or TIFF"),
                      state: AppState = Depends(get_state)):
    try:
        image = await run_in_threadpool(state.read_upload, await read_file(state, file))
    except UploadError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    return await run_in_threadpool(state.predict, image)


@router.get("/items", summary="Items: searched, filtered, sorted and paginated, with facet counts")
def api_items(query: browse.Query = Depends(listing_query), state: AppState = Depends(get_state)):
    # plain JSON values already: json.dumps directly, not FastAPI's value-by-value encoder
    body = state.view.rendered("json", query, state.engine, lambda listing: JSONResponse(listing).body)
    return Response(body, media_type="application/json")


@router.get("/facets", summary="The exact total and facet counts of a listing (the same parameters as /api/items)")
def api_facets(query: browse.Query = Depends(listing_query), state: AppState = Depends(get_state)):
    # what /api/items leaves out ("facets": null, "facets_url") for a search matching very many records
    return state.view.facets(query, state.engine)


@router.get("/items/{item_id:path}", summary="One item: catalog fields, images, labels")
def api_item(item_id: str, state: AppState = Depends(get_state)):
    return state.view.detail(*state.item_with_row(item_id))


@router.get("/similar", summary="Items similar to the given ones (comma-separated ids)")
def api_similar(ids: str = Query(..., description=f"item ids, comma-separated (at most {MAX_SIMILAR_IDS})"), limit: int = Query(20, ge=1, le=100),
                state: AppState = Depends(get_state)):
    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    if not 1 <= len(wanted) <= MAX_SIMILAR_IDS:
        raise HTTPException(422, f"give 1 to {MAX_SIMILAR_IDS} item ids: /api/similar?ids=ID1,ID2")
    return {"similar": state.similar_items(wanted, limit)}


@router.post("/items/{item_id:path}/classify", summary="Classify one item again and store the result (needs --allow-writes)")
def api_classify(item_id: str, state: AppState = Depends(get_state)):
    if not state.allow_writes:
        raise HTTPException(403, "the server is read-only; start it with `muses serve --allow-writes`")
    state.item(item_id)
    state.classifier()  # 503 if there is no model
    # one item, here and now: not on the Ray cluster muses.toml may name for whole-collection runs
    config = ClassifyConfig(model=state.model_path, ids=(item_id,), update_existing=True, compute=ComputeSettings(),
                            write_report=False, refresh_indexes=False)
    report = classify_collection(state.project, config, progress=False).report
    if item_id not in report.classified:
        raise HTTPException(422, f"item {item_id!r} has no readable usable image")
    state.view.sync(force=True)
    return state.view.detail(state.store.get_item(item_id))
