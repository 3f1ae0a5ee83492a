"""What every request of one app shares: the project, its store and search engine, the model,
the limits. Kept on ``app.state.muses``; routes get it with ``Depends(get_state)``."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from PIL import Image as PILImage

from muses.actions import SimilarConfig, SimilarParts, SimilarResult, UnknownItems, similar_objects
from muses.actions.predicting import answer_json
from muses.collection.store import Item, Store
from muses.errors import MusesError
from muses.model.loading import load_model
from muses.search import SearchEngine, UnsupportedStoreError, open_engine
from muses.embeddings import Embeddings
from muses.search.similar import VisualCache
from muses.settings import Project
from muses.search.browse_index import BrowseRow
from muses.web.browse import CollectionView
from muses.web.cache import DefinitionsCache
from muses.web.templating import item_url
from muses.web.uploads import MAX_BYTES, MAX_UPLOAD_PIXELS, read_upload

log = logging.getLogger(__name__)
TOP_K = 5


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = MAX_BYTES
    max_pixels: int = MAX_UPLOAD_PIXELS
    similar_limit: int = 12

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1 or self.max_pixels < 1 or self.similar_limit < 1:
            raise ValueError("max_upload_bytes, max_pixels and similar_limit must be >= 1")


@dataclass
class AppState:
    project: Project
    model_path: Path
    limits: Limits = field(default_factory=Limits)
    allow_writes: bool = False
    reviewer: str = ""  # who decides on the review pages, unless the page names someone
    store: Store = field(init=False)
    definitions: DefinitionsCache = field(init=False)
    view: CollectionView = field(init=False)
    visual: VisualCache = field(init=False)
    _engine: SearchEngine | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.store = Store.for_project(self.project)
        self.definitions = DefinitionsCache(self.project.definitions_path)
        self.view = CollectionView(self.store, self.definitions, engine=self.engine)
        self.visual = VisualCache(Embeddings.for_project(self.project, self.store))

    # -- the parts, each failing with the HTTP answer a visitor should get ------------------------
    def engine(self) -> SearchEngine:
        """The search engine, opened on first use (a store on a database other than SQLite or PostgreSQL has none: 503)."""
        if self._engine is None:
            try:
                self._engine = open_engine(self.store)
            except UnsupportedStoreError as exc:
                raise HTTPException(503, str(exc)) from exc
        return self._engine

    def has_engine(self) -> bool:
        try:
            self.engine()
        except HTTPException:
            return False
        return True

    def classifier(self):
        """The model, loaded on first use and again when its files change; 503 when there is none
        or it cannot be loaded, so browsing keeps working without a model."""
        try:
            return load_model(self.model_path, project=self.project)
        except MusesError as exc:  # no model file yet, or not a muses model
            raise HTTPException(503, f"no model to classify with: {exc}") from exc
        except Exception as exc:
            # A damaged model file fails deep inside safetensors, json or torch with errors of
            # every kind; the visitor gets the reason, the log gets the traceback.
            log.exception("loading the model %s failed", self.model_path)
            raise HTTPException(503, f"the model {self.model_path.name} could not be loaded "
                                     f"({type(exc).__name__}: {exc}); train it again or serve another "
                                     "model with `muses serve --model PATH`") from exc

    def item(self, item_id: str) -> Item:
        return self.item_with_row(item_id)[0]

    def item_with_row(self, item_id: str) -> tuple[Item, BrowseRow | None]:
        """The item with its photos and its browse index row (404 when there is none)."""
        found = self.view.item(item_id)
        if found is None:
            raise HTTPException(404, f"no item with id {item_id!r}")
        return found

    # -- what pages and API answer --------------------------------------------------------------
    def read_upload(self, data: bytes) -> PILImage.Image:
        return read_upload(data, max_bytes=self.limits.max_upload_bytes, max_pixels=self.limits.max_pixels)

    def similar_parts(self, *, predictor: bool = False) -> SimilarParts:
        """The opened parts the similar-objects action searches with (kept by this app)."""
        return SimilarParts(self.store, self.engine(), self.definitions.get(), self.visual.get(),
                            self.classifier() if predictor else None)

    def hits_json(self, result: SimilarResult) -> list[dict[str, Any]]:
        rows = self.view.rows([h.item_id for h in result.hits])  # one query for all, not one per hit
        return [{**self.view.summary(result.items[h.item_id], rows.get(h.item_id)), "url": item_url(h.item_id),
                 "score": round(h.score, 4), "matched": list(h.matched),
                 "looks_alike": None if h.looks_alike is None else round(h.looks_alike, 4), "why": h.why}
                for h in result.hits if h.item_id in result.items]

    def predict(self, image: PILImage.Image) -> dict[str, Any]:
        config = SimilarConfig(limit=self.limits.similar_limit, model=self.model_path)
        result = similar_objects(self.project, config, photos=[image], parts=self.similar_parts(predictor=True))
        return {
            "model": result.model,
            "answer": result.answer,
            "answer_kind": result.answer_kind,
            "classes": answer_json(result.classes[:TOP_K], digits=6),
            "similar": self.hits_json(result),
        }

    def similar_items(self, ids: list[str], limit: int) -> list[dict[str, Any]]:
        """Items like ``ids``: the same answer until the store changes (a search: remembered)."""
        return self.view.memo(("similar", tuple(ids), limit), lambda: self._similar_items(ids, limit))

    def _similar_items(self, ids: list[str], limit: int) -> list[dict[str, Any]]:
        try:
            result = similar_objects(self.project, SimilarConfig(ids=tuple(ids), limit=limit), parts=self.similar_parts())
        except UnknownItems as exc:
            raise HTTPException(404, str(exc)) from exc
        return self.hits_json(result)


def get_state(request: Request) -> AppState:
    return request.app.state.muses
