"""The collection as the web app shows it: items with their naive label and predicted classes,
filtered and paginated, as plain dicts ready for a template or the JSON API."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from muses.collection.store import Item, Store
from muses.labeling.matching import Label, Matcher, record_fields
from muses.predictions import top_class
from muses.web.cache import DefinitionsCache

MAX_PER_PAGE = 100
NO_LABEL = "(none)"  # naive-label filter value: items no class claims (unlabeled, conflict, excluded)


@dataclass(frozen=True)
class Query:
    predicted: str | None = None  # stored top class
    naive: str | None = None  # naive label class, or NO_LABEL
    disagree: bool = False  # naive label and predicted top class differ
    page: int = 1
    per_page: int = 24

    def __post_init__(self) -> None:
        if self.page < 1:
            raise ValueError(f"page must be >= 1, got {self.page}")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}, got {self.per_page}")


class CollectionView:
    """Read-only view of a project's store for browsing. Naive labels are computed once per
    state of the store and of definitions.toml (cheap: the matcher labels ~100,000 records/s)."""

    def __init__(self, store: Store, definitions: DefinitionsCache):
        self.store = store
        self.definitions = definitions
        self._labels_key: tuple | None = None
        self._labels: dict[str, Label] = {}

    def naive_labels(self) -> dict[str, Label]:
        """Item id → naive label; empty when the project has no definitions.toml."""
        definitions = self.definitions.get()
        with self.store.session() as s:
            count, latest = s.execute(select(func.count(), func.max(Item.updated_at))).one()
        # The cache hands out the same Definitions object until the file changes, and a tuple
        # compares identical members without calling __eq__: this check is cheap.
        state = (definitions, count, latest)
        if state != self._labels_key:
            if definitions is None:
                self._labels = {}
            else:
                matcher = Matcher(definitions)
                self._labels = {item.id: matcher.label(record_fields(item)) for item in self.store.items()}
            self._labels_key = state
        return self._labels

    def naive_label(self, item_id: str) -> str | None:
        label = self.naive_labels().get(item_id)
        return label.cls if label else None

    def options(self) -> dict[str, list[str]]:
        """The values the browser's filters offer."""
        with self.store.session() as s:
            rows = s.execute(select(Item.classification).where(Item.classification.is_not(None))).scalars()
            predicted = sorted({top for top in map(top_class, rows) if top})
        naive = sorted({label.cls for label in self.naive_labels().values() if label.cls})
        return {"predicted": predicted, "naive": naive + [NO_LABEL]}

    def page(self, query: Query) -> dict[str, Any]:
        labels = self.naive_labels()
        with self.store.session() as s:
            rows = s.execute(select(Item.id, Item.classification).order_by(Item.id)).all()
        wanted = []
        for item_id, classification in rows:
            predicted = top_class(classification)
            label = labels.get(item_id)
            naive = label.cls if label else None
            if query.predicted is not None and predicted != query.predicted:
                continue
            if query.naive is not None and (naive or NO_LABEL) != query.naive:
                continue
            if query.disagree and not (naive and predicted and naive != predicted):
                continue
            wanted.append(item_id)
        total = len(wanted)
        start = (query.page - 1) * query.per_page
        items = list(self.store.items(wanted[start : start + query.per_page]))
        return {
            "total": total,
            "page": query.page,
            "per_page": query.per_page,
            "pages": max(1, math.ceil(total / query.per_page)),
            "items": [self.summary(item) for item in items],
        }

    def summary(self, item: Item) -> dict[str, Any]:
        usable = item.usable_images
        return {
            "id": item.id,
            "title": item.title,
            "object_type": list(item.object_type or []),
            "material": item.material,
            "period": item.period,
            "naive_label": self.naive_label(item.id),
            "predicted": top_class(item.classification),
            "image_ids": [im.id for im in usable],
            "thumbnail": f"/images/{usable[0].id}" if usable else None,
        }

    def detail(self, item: Item) -> dict[str, Any]:
        label = self.naive_labels().get(item.id)
        return {
            **self.summary(item),
            "description": item.description,
            "source": item.source,
            "naive": None if label is None else {
                "class": label.cls, "status": label.status, "keyword": label.keyword, "field": label.field,
                "candidates": list(label.candidates),
            },
            "classification": item.classification,
            "images": [
                {"id": im.id, "position": im.position, "status": im.status, "problem": im.problem,
                 "url": f"/images/{im.id}" if im.stored_path else None}
                for im in item.images
            ],
            "raw": item.raw,
        }
