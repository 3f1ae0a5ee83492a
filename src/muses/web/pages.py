"""The HTML pages: upload a photo (/), the collection (/items) and one item (/items/ID)."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi import Query as Param
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse

from muses.collection.images import display_path
from muses.collection.sources import is_url
from muses.collection.store import Image
from muses.web.browse import NO_LABEL, SORTS, Query, page_numbers
from muses.web.downloads import csv_lines, json_lines
from muses.web.forms import listing_query, read_file
from muses.web.review import decision_context
from muses.web.state import AppState, get_state
from muses.web.templating import templates
from muses.web.uploads import UploadError, thumbnail_data_url

router = APIRouter(include_in_schema=False)
MAX_IMAGE_ID = 2**63 - 1  # SQLite's largest integer key


@router.get("/", response_class=HTMLResponse)
def upload_page(request: Request):
    return templates.TemplateResponse(request, "upload.html", {})


@router.post("/", response_class=HTMLResponse)
async def upload_form(request: Request, file: UploadFile | None = File(None), state: AppState = Depends(get_state)):
    try:
        image = await run_in_threadpool(state.read_upload, await read_file(state, file))
        result = await run_in_threadpool(state.predict, image)
    except UploadError as exc:
        return templates.TemplateResponse(request, "upload.html", {"error": str(exc)}, status_code=exc.status)
    except HTTPException as exc:
        return templates.TemplateResponse(request, "upload.html", {"error": exc.detail}, status_code=exc.status_code)
    return templates.TemplateResponse(request, "upload.html", {
        "result": result, "filename": file.filename, "photo": thumbnail_data_url(image),
    })


@router.get("/items", response_class=HTMLResponse)
def items_page(request: Request, query: Query = Depends(listing_query), facets: bool = False,
               state: AppState = Depends(get_state)):
    """The listing; a search matching very many records shows its facets after the page (the
    page's script fetches them), or in it when asked for (``?facets=1``: the link a browser
    without JavaScript follows, and what the script reads the counted sidebar from)."""
    def render(listing: dict) -> bytes:
        return templates.TemplateResponse(request, "items.html", {
            "listing": listing, "query": query, "sorts": SORTS, "no_label": NO_LABEL,
            "page_numbers": page_numbers(listing["page"], listing["pages"]),
        }).body

    return HTMLResponse(state.view.rendered("html", query, state.engine, render, counted=facets))


@router.get("/items.csv")
def items_csv(query: Query = Depends(listing_query), state: AppState = Depends(get_state)):
    """Every item of the listing (all pages, in its order) as CSV, streamed."""
    return StreamingResponse(csv_lines(state.view.export_rows(query, state.engine)), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="items.csv"'})


@router.get("/items.json")
def items_json(query: Query = Depends(listing_query), state: AppState = Depends(get_state)):
    """Every item of the listing (all pages, in its order) as a JSON array, streamed."""
    return StreamingResponse(json_lines(state.view.export_rows(query, state.engine)), media_type="application/json",
                             headers={"Content-Disposition": 'attachment; filename="items.json"'})


def _item_page(request: Request, state: AppState, item_id: str, *, with_similar: bool):
    """The item at once; its similar objects (the page's dearest part, a search) come after
    from /api/similar, fetched by the page's script, or in the page when asked for
    (``?similar=1``: the link a browser without JavaScript follows)."""
    item, row = state.item_with_row(item_id)
    offer = bool(item.usable_images) and state.has_engine()
    similar = state.similar_items([item.id], state.limits.similar_limit) if offer and with_similar else None
    return templates.TemplateResponse(request, "item.html", {
        "item": state.view.detail(item, row), "offer_similar": offer, "similar": similar,
        "similar_api": "/api/similar?" + urlencode({"ids": item.id, "limit": state.limits.similar_limit}),
        **decision_context(state, item.id),
    })


@router.get("/items/{item_id:path}", response_class=HTMLResponse)
def item_page(request: Request, item_id: str, similar: bool = False, state: AppState = Depends(get_state)):
    return _item_page(request, state, item_id, with_similar=similar)


@router.get("/item", response_class=HTMLResponse)
def item_page_by_query(request: Request, id: str = Param(...), similar: bool = False,
                       state: AppState = Depends(get_state)):
    """For the ids '.' and '..', which cannot be a path segment (see templating.item_url)."""
    return _item_page(request, state, id, with_similar=similar)


def _image_number(text: str) -> int | None:
    # Checked here: a number past SQLite's integers would fail inside the database driver.
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_IMAGE_ID:
        return None
    return int(text)


def _stored_image(state: AppState, image_id: str) -> Image:
    number = _image_number(image_id)
    if number is None:
        raise HTTPException(404, f"no stored image with id {image_id}")
    with state.store.session() as s:
        im = s.get(Image, number)
    if im is None or not im.stored_path:
        raise HTTPException(404, f"no stored image with id {number}")
    return im


def _in_project(state: AppState, relative: str | Path, number: int) -> Path:
    root = state.project.root.resolve()
    path = state.project.path(str(relative)).resolve()
    if not path.is_relative_to(root) or not path.is_file():  # a store edited by hand
        raise HTTPException(404, f"image {number} is not in the project folder")
    return path


@router.get("/images/{image_id}")
def image(image_id: str, state: AppState = Depends(get_state)):
    im = _stored_image(state, image_id)
    return FileResponse(_in_project(state, im.stored_path, im.id), headers={"Cache-Control": "public, max-age=3600"})


@router.get("/images/{image_id}/display")
def display_image(request: Request, image_id: str, state: AppState = Depends(get_state)):
    """The copy people judge a photo by (generate-images' display copy; the working copy for a
    photo checked before display copies existed). Named by the photo's checksum: its ETag never
    changes while the photo does not, so a browser asks again only to hear "not modified"."""
    im = _stored_image(state, image_id)
    side = state.project.settings.images.display_side
    shown = display_path(state.project.images_dir, im.checksum, side)
    path = shown if shown is not None and shown.is_file() else _in_project(state, im.stored_path, im.id)
    etag = f'"{im.checksum or im.id}-{side if path == shown else "small"}"'
    headers = {"Cache-Control": "public, max-age=86400", "ETag": etag}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, headers=headers, media_type="image/jpeg")


@router.get("/images/{image_id}/original")
def original_image(image_id: str, state: AppState = Depends(get_state)):
    """The photo as imported: its own address, or the file the catalog named (read-only)."""
    im = _stored_image(state, image_id)
    if is_url(im.original):
        return RedirectResponse(im.original, status_code=307)
    path = Path(im.original)
    if not path.is_file():
        raise HTTPException(404, f"the original of image {im.id} is no longer at {im.original}")
    return FileResponse(path)
