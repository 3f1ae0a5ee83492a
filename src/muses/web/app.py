"""The web app: upload a photo to see its classes and similar objects; browse the collection.

Server-rendered pages (Jinja2) and a JSON API for the same things, documented at /docs.
Read-only unless created with ``allow_writes``: no request changes the collection then.
Images are served by their id in the store, never by a path from the request.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from muses import __version__
from muses.classify import classify_collection
from muses.collection.store import Image, Store
from muses.errors import MusesError
from muses.settings import Project, find_project
from muses.labeling.definitions import Definitions, load_definitions
from muses.model.loading import load_model
from muses.search import Hit, UnsupportedStoreError, open_engine
from muses.search.similar import similar_to_image, similar_to_items
from muses.web import browse
from muses.web.uploads import MAX_BYTES, MAX_PIXELS, UploadError, read_upload, thumbnail_data_url

HERE = Path(__file__).parent
TOP_K = 5
FORM_OVERHEAD = 64 * 1024  # multipart headers around the file
# Our pages load only their own CSS, JS and images; /docs loads Swagger UI from a CDN.
CSP = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'"
_DOC_PATHS = ("/docs", "/redoc", "/openapi.json")


def create_app(
    project: Project | str | os.PathLike | None = None,
    model_path: str | os.PathLike | None = None,
    *,
    allow_writes: bool = False,
    max_upload_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    similar_limit: int = 12,
) -> FastAPI:
    """The app for ``project`` (default: $MUSES_PROJECT or the current folder) and its model
    (default: muses.toml's model_path; loaded on first use, so browsing works without one)."""
    if max_upload_bytes < 1 or max_pixels < 1 or similar_limit < 1:
        raise ValueError("max_upload_bytes, max_pixels and similar_limit must be >= 1")
    proj = project if isinstance(project, Project) else find_project(project)
    store = Store.for_project(proj)
    view = browse.CollectionView(proj, store)
    model = Path(model_path) if model_path else proj.model_path
    try:
        engine = open_engine(store)
        engine_error = ""
    except UnsupportedStoreError as exc:
        engine, engine_error = None, str(exc)

    app = FastAPI(
        title="muses",
        version=__version__,
        description="Classify a photo against the museum's model and find similar objects; browse the "
                    "collection with its naive labels and predicted classes.",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(version=__version__, allow_writes=allow_writes)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        length = request.headers.get("content-length", "")
        if request.method == "POST" and length.isdigit() and int(length) > max_upload_bytes + FORM_OVERHEAD:
            # Refused before the body is read, so a huge upload never reaches the disk.
            return JSONResponse({"detail": f"the upload is larger than {max_upload_bytes / 1e6:.1f} MB"}, 413)
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        if not request.url.path.startswith(_DOC_PATHS):
            response.headers["Content-Security-Policy"] = CSP
        return response

    # -- the library calls behind pages and API -------------------------------------------------
    def definitions() -> Definitions | None:
        path = proj.definitions_path
        return load_definitions(path) if path.is_file() else None

    def classifier():
        try:
            return load_model(model, project=proj)
        except MusesError as exc:  # no model file yet, or not a muses model
            raise HTTPException(503, f"no model to classify with: {exc}") from exc

    def search_engine():
        if engine is None:
            raise HTTPException(503, engine_error)
        return engine

    def hits_json(hits: list[Hit]) -> list[dict[str, Any]]:
        items = {item.id: item for item in store.items([h.item_id for h in hits])}
        return [{**view.summary(items[h.item_id]), "score": round(h.score, 4), "matched": list(h.matched)}
                for h in hits if h.item_id in items]

    def upload(data: bytes):
        return read_upload(data, max_bytes=max_upload_bytes, max_pixels=max_pixels)

    def predict(image) -> dict[str, Any]:
        clf = classifier()
        result = similar_to_image(clf.predict_pil([image]), clf.class_names, search_engine(),
                                  definitions=definitions(), limit=similar_limit)
        return {
            "model": getattr(clf, "name", model.stem),
            "classes": [{"name": n, "probability": round(p, 6)} for n, p in result.classes[:TOP_K]],
            "similar": hits_json(result.hits),
        }

    def similar_items(ids: list[str], limit: int) -> list[dict[str, Any]]:
        items = list(store.items(ids))
        missing = sorted(set(ids) - {i.id for i in items})
        if missing:
            raise HTTPException(404, f"no item with id {', '.join(missing)}")
        return hits_json(similar_to_items(items, search_engine(), definitions=definitions(), limit=limit))

    def item_or_404(item_id: str):
        item = store.get_item(item_id)
        if item is None:
            raise HTTPException(404, f"no item with id {item_id!r}")
        return item

    def query(predicted, naive, disagree, page, per_page) -> browse.Query:
        try:
            return browse.Query(predicted or None, naive or None, disagree, page, per_page)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc

    async def read_file(file: UploadFile | None) -> bytes:
        # One byte more than allowed is enough to know the upload is too large.
        return await file.read(max_upload_bytes + 1) if file is not None else b""

    # -- pages -------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def upload_page(request: Request):
        return templates.TemplateResponse(request, "upload.html", {})

    @app.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def upload_form(request: Request, file: UploadFile | None = File(None)):
        try:
            image = await run_in_threadpool(upload, await read_file(file))
            result = await run_in_threadpool(predict, image)
        except UploadError as exc:
            return templates.TemplateResponse(request, "upload.html", {"error": str(exc)}, status_code=exc.status)
        except HTTPException as exc:
            return templates.TemplateResponse(request, "upload.html", {"error": exc.detail}, status_code=exc.status_code)
        return templates.TemplateResponse(request, "upload.html", {
            "result": result, "filename": file.filename, "photo": thumbnail_data_url(image),
        })

    @app.get("/items", response_class=HTMLResponse, include_in_schema=False)
    def items_page(request: Request, predicted: str = "", naive: str = "", disagree: bool = False,
                   page: int = 1, per_page: int = 24):
        q = query(predicted, naive, disagree, page, per_page)
        return templates.TemplateResponse(request, "items.html", {
            "listing": view.page(q), "query": q, "options": view.options(),
        })

    @app.get("/items/{item_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def item_page(request: Request, item_id: str):
        item = item_or_404(item_id)
        similar = similar_items([item.id], similar_limit) if item.usable_images and engine else []
        return templates.TemplateResponse(request, "item.html", {"item": view.detail(item), "similar": similar})

    @app.get("/images/{image_id}", include_in_schema=False)
    def image(image_id: int):
        with store.session() as s:
            im = s.get(Image, image_id)
        if im is None or not im.stored_path:
            raise HTTPException(404, f"no stored image with id {image_id}")
        root = proj.root.resolve()
        path = proj.path(im.stored_path).resolve()
        if not path.is_relative_to(root) or not path.is_file():  # a store edited by hand
            raise HTTPException(404, f"image {image_id} is not in the project folder")
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    # -- JSON API ------------------------------------------------------------------------------------
    @app.post("/api/predict", tags=["api"], summary="Classes and similar objects for an uploaded photo")
    async def api_predict(file: UploadFile = File(..., description="a photo: JPEG, PNG, WebP, GIF, BMP or TIFF")):
        try:
            return await run_in_threadpool(predict, await run_in_threadpool(upload, await read_file(file)))
        except UploadError as exc:
            raise HTTPException(exc.status, str(exc)) from exc

    @app.get("/api/items", tags=["api"], summary="Items, filtered and paginated")
    def api_items(predicted: str = Query("", description="stored top class"),
                  naive: str = Query("", description=f"naive label class, or {browse.NO_LABEL!r}"),
                  disagree: bool = Query(False, description="naive label and predicted class differ"),
                  page: int = 1, per_page: int = Query(24, description=f"1 to {browse.MAX_PER_PAGE}")):
        return view.page(query(predicted, naive, disagree, page, per_page))

    @app.get("/api/items/{item_id:path}", tags=["api"], summary="One item: catalog fields, images, labels")
    def api_item(item_id: str):
        return view.detail(item_or_404(item_id))

    @app.get("/api/similar", tags=["api"], summary="Items similar to the given ones (comma-separated ids)")
    def api_similar(ids: str = Query(..., description="item ids, comma-separated"), limit: int = Query(20, ge=1, le=100)):
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        if not wanted:
            raise HTTPException(422, "give at least one item id: /api/similar?ids=ID1,ID2")
        return {"similar": similar_items(wanted, limit)}

    @app.post("/api/items/{item_id:path}/classify", tags=["api"],
              summary="Classify one item again and store the result (needs --allow-writes)")
    def api_classify(item_id: str):
        if not allow_writes:
            raise HTTPException(403, "the server is read-only; start it with `muses serve --allow-writes`")
        item_or_404(item_id)
        classifier()  # 503 if there is no model
        report = classify_collection(proj, model_path=model, ids=[item_id], update_existing=True)
        if item_id not in report.classified:
            raise HTTPException(422, f"item {item_id!r} has no readable usable image")
        return view.detail(store.get_item(item_id))

    return app
