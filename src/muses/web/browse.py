"""The collection as the web app shows it: items with their naive label and predicted classes,
searched, filtered, counted, sorted and paginated, as plain dicts ready for a template or the
JSON API. Filters, counts and order are indexed SQL over the browse index
(:mod:`muses.search.browse_index`); text search goes through the search engine."""
from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import false, func, select, true

from muses.collection import decisions
from muses.collection.catalog import catalog_record
from muses.collection.images import photo_note
from muses.collection.store import USABLE_STATUSES, Image, Item, Store
from muses.labeling.matching import record_fields
from muses.search import Filters, SearchEngine, TextTerm
from muses.search import browse_index
from muses.search.browse_index import BrowseRow
from muses.predictions import describe, top_class
from muses.web.cache import DefinitionsCache

MAX_PER_PAGE = 100
MAX_SEARCH_HITS = 5000  # best matches a text search keeps; the page says when there were more
NO_LABEL = "(none)"  # naive-label filter value: items no class claims (unlabeled, conflict, excluded)
MEMO_SIZE = 2048  # answers (search matches, similar objects) remembered per app
REFRESH_INTERVAL = 1.0  # seconds between checks whether the store changed (each costs a few scans)
# Catalog fields a text search reads, with their weights (a word in the title counts most).
SEARCH_FIELDS = {"title": 3.0, "object_type": 2.0, "material": 1.0, "period": 1.0, "description": 1.0}
SORTS = {
    "relevance": "best match first",
    "number": "object number",
    "confidence": "most confident first",
    "doubt": "least confident first",
    "disagreement": "strongest disagreement first",
}
_ORDER = {
    "number": (BrowseRow.item_id,),
    "confidence": (BrowseRow.predicted_probability.desc().nulls_last(), BrowseRow.item_id),
    "doubt": (BrowseRow.predicted_probability.asc().nulls_last(), BrowseRow.item_id),
    "disagreement": (BrowseRow.disagreement.desc().nulls_last(), BrowseRow.item_id),
}


@dataclass(frozen=True)
class Query:
    text: str = ""  # words or "quoted phrases", all of which must be found
    predicted: str | None = None  # stored top class
    naive: str | None = None  # naive label class, or NO_LABEL
    disagree: bool = False  # naive label and predicted top class differ
    sort: str = ""  # one of SORTS; default: relevance with a text, object number without
    page: int = 1  # out of range is clamped to the first or last page, never an error
    per_page: int = 24
    reviewed: str | None = None  # "yes", "no", or decided as a class (or "none of these")
    reviewer: str | None = None  # decided by this reviewer

    def __post_init__(self) -> None:
        if self.sort and self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {self.sort!r}")
        if self.sort == "relevance" and not self.text.strip():
            raise ValueError("sort=relevance needs a text to search for (q=...)")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}, got {self.per_page}")

    @property
    def order(self) -> str:
        return self.sort or ("relevance" if self.text.strip() else "number")

    def url(self, **changes: Any) -> str:
        """This listing's address with ``changes``; a changed filter starts again at page 1."""
        q = replace(self, **{"page": 1, **changes})
        params = {"q": q.text.strip(), "predicted": q.predicted or "", "naive": q.naive or "",
                  "disagree": "true" if q.disagree else "", "sort": q.sort,
                  "page": q.page if q.page > 1 else "", "per_page": q.per_page if q.per_page != 24 else "",
                  "reviewed": q.reviewed or "", "reviewer": q.reviewer or ""}
        return "/items?" + urlencode({k: v for k, v in params.items() if v != ""})


def search_terms(text: str) -> list[str]:
    """Words and "quoted phrases" of a search box."""
    terms = (a or b.strip('"') for a, b in re.findall(r'"([^"]*[^"\s][^"]*)"|(\S+)', text))
    return [t.strip() for t in terms if t.strip()]


def text_matches(engine: SearchEngine, text: str, *, limit: int = MAX_SEARCH_HITS) -> list[str]:
    """Ids of the items whose catalog fields hold every term of ``text``, best first."""
    terms = search_terms(text)
    if not terms:
        return []
    query = [TextTerm((t,), SEARCH_FIELDS, label=str(n)) for n, t in enumerate(terms)]
    hits = engine.search(query, Filters(usable_only=False), limit=limit)
    return [h.item_id for h in hits if len(h.matched) == len(terms)]


class CollectionView:
    """Read-only view of a project's store for browsing. The browse index is brought up to date
    at most once a second (and at once when definitions.toml changes), not on every request;
    what is remembered between requests (:meth:`memo`) is forgotten whenever it changes."""

    def __init__(self, store: Store, definitions: DefinitionsCache, *, refresh_interval: float = REFRESH_INTERVAL,
                 memo_size: int = MEMO_SIZE):
        self.store = store
        self.definitions = definitions
        self.refresh_interval = refresh_interval
        self.memo_size = memo_size
        self._synced: tuple[Any, float] | None = None  # (definitions, when)
        self._generation: str | None = None  # the store's fingerprint at the last check
        self._memo: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def sync(self, *, force: bool = False) -> None:
        """Bring the browse index up to date when the store or definitions.toml may have changed."""
        definitions = self.definitions.get()  # raises a MusesError for a broken file: 503 with the reason
        now = time.monotonic()
        synced = self._synced
        if not force and synced and synced[0] is definitions and now - synced[1] < self.refresh_interval:
            return
        with self._lock:
            browse_index.refresh_if_changed(self.store, definitions)
            generation = browse_index.stored_fingerprint(self.store)
            if generation != self._generation:
                self._memo.clear()
                self._generation = generation
            self._synced = (definitions, now)

    def memo(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()``, remembered under ``key`` until the store or definitions.toml change (the
        ``memo_size`` most recently used answers are kept)."""
        self.sync()
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        value = make()
        with self._lock:
            self._memo[key] = value
            while len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)
        return value

    def rows(self, ids: list[str]) -> dict[str, BrowseRow]:
        self.sync()
        with self.store.session() as s:
            return {r.item_id: r for r in s.scalars(select(BrowseRow).where(BrowseRow.item_id.in_(ids)))}

    def naive_label(self, item_id: str) -> str | None:
        row = self.rows([item_id]).get(item_id)
        return row.naive_class if row else None

    # -- the listing ---------------------------------------------------------------------------
    def page(self, query: Query, engine: Callable[[], SearchEngine] | None = None) -> dict[str, Any]:
        """One page of the listing with its facet counts; ``engine`` opens the search engine,
        called only for a text query."""
        self.sync()
        matches = None
        if query.text.strip():
            if engine is None:
                raise ValueError("a text query needs a search engine")
            text = query.text.strip()
            matches = self.memo(("text", text), lambda: self._id_first(text, text_matches(engine(), text)))
        # Built only when asked for: with a search in it, the condition holds thousands of ids,
        # and what it is needed for (counts, the search's order) is mostly remembered.
        where = functools.cache(lambda: _conditions(query, matches))
        # Counting aggregates over every matching row: remembered per set of filters, since
        # paging and sorting do not change the counts.
        filters = (query.text.strip(), query.predicted, query.naive, query.disagree, query.reviewed, query.reviewer)
        if query.reviewed or query.reviewer:  # decisions do not change the store's fingerprint
            filters += (decisions.stamp(self.store),)
        total, facets = self.memo(("counts", *filters), lambda: self._counts(where()))
        pages = max(1, math.ceil(total / query.per_page))
        page = min(max(1, query.page), pages)
        offset = (page - 1) * query.per_page
        if matches is not None:
            # A search's items in the page's order, remembered (at most MAX_SEARCH_HITS ids): the
            # next pages are slices, not queries with thousands of ids in them.
            ordered = self.memo(("ordered", *filters, query.order), lambda: self._ordered_matches(where(), query, matches))
            ids = ordered[offset : offset + query.per_page]
        with self.store.session() as s:
            if matches is None:
                q = select(BrowseRow.item_id).where(*where().values()).order_by(*_ORDER[query.order])
                ids = list(s.scalars(q.offset(offset).limit(query.per_page)))
            cards = _cards(s, ids)
        return {
            "total": total, "page": page, "per_page": query.per_page, "pages": pages, "sort": query.order,
            "truncated": matches is not None and len(matches) >= MAX_SEARCH_HITS,
            "facets": facets,
            "items": cards,
        }

    def _counts(self, where: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.store.session() as s:
            return s.scalar(select(func.count()).select_from(BrowseRow).where(*where.values())), _facets(s, where)

    def _id_first(self, text: str, ranked: list[str]) -> list[str]:
        """An object number typed into the search box finds its item, first."""
        with self.store.session() as s:
            exact = s.scalar(select(BrowseRow.item_id).where(BrowseRow.item_id == text))
        return [exact] + [i for i in ranked if i != exact] if exact else ranked

    def _ordered_matches(self, where: dict, query: Query, matches: list[str]) -> list[str]:
        """The searched items the filters keep, in the order ``query`` asks for."""
        with self.store.session() as s:
            if query.order == "relevance":
                kept = set(s.scalars(select(BrowseRow.item_id).where(*where.values())))
                return [i for i in matches if i in kept]
            return list(s.scalars(select(BrowseRow.item_id).where(*where.values()).order_by(*_ORDER[query.order])))

    # -- one item ------------------------------------------------------------------------------
    def summary(self, item: Item, row: BrowseRow | None = None) -> dict[str, Any]:
        row = row if row is not None else self.rows([item.id]).get(item.id)
        return card(item.id, item.title, item.object_type, item.material, item.period,
                    top_class(item.classification), row.naive_class if row else None,
                    row.predicted_probability if row else None, row.disagreement if row else None,
                    [im.id for im in item.usable_images])

    def detail(self, item: Item) -> dict[str, Any]:
        definitions = self.definitions.get()
        label = browse_index.matcher_for(definitions).label(record_fields(item)) if definitions else None
        return {
            **self.summary(item),
            **catalog_record(item),
            "source": item.source,
            "naive": None if label is None else {
                "class": label.cls, "status": label.status, "keyword": label.keyword, "field": label.field,
                "candidates": list(label.candidates),
            },
            "classification": item.classification,
            "answer": describe(item.classification),
            "images": [
                {"id": im.id, "position": im.position, "status": im.status, "problem": im.problem,
                 "url": f"/images/{im.id}" if im.stored_path else None,
                 "note": photo_note(im.original, im.status, im.problem)}
                for im in item.images
            ],
            "raw": item.raw,
        }


def card(item_id: str, title: str, object_type: list | None, material: str, period: str, predicted: str | None,
         naive: str | None, probability: float | None, disagreement: float | None, image_ids: list[int]) -> dict[str, Any]:
    """An item as a card (and as the API's item summary)."""
    return {
        "id": item_id, "title": title, "object_type": list(object_type or []), "material": material, "period": period,
        "naive_label": naive, "predicted": predicted, "probability": probability, "disagreement": disagreement,
        "image_ids": image_ids, "thumbnail": f"/images/{image_ids[0]}" if image_ids else None,
    }


def _cards(s, ids: list[str]) -> list[dict[str, Any]]:
    """The cards of ``ids``, in that order: two indexed queries, only the columns a card shows."""
    if not ids:
        return []
    photos: dict[str, list[int]] = {i: [] for i in ids}
    # Usable photos kept here, not in SQL: given both conditions, SQLite picks the status index
    # and reads every usable photo of the collection (milliseconds at 20,000 items, growing).
    images = select(Image.item_id, Image.id, Image.status).where(Image.item_id.in_(ids)).order_by(Image.item_id, Image.position)
    for item_id, image_id, status in s.execute(images):
        if status in USABLE_STATUSES:
            photos[item_id].append(image_id)
    q = (select(Item.id, Item.title, Item.object_type, Item.material, Item.period, BrowseRow.predicted_class,
                BrowseRow.naive_class, BrowseRow.predicted_probability, BrowseRow.disagreement)
         .join(BrowseRow, BrowseRow.item_id == Item.id).where(Item.id.in_(ids)))
    found = {row[0]: card(*row, photos[row[0]]) for row in s.execute(q)}
    return [found[i] for i in ids if i in found]


def _conditions(query: Query, matches: list[str] | None) -> dict[str, Any]:
    """The WHERE parts of ``query``, by filter name (a facet's counts leave out its own)."""
    where: dict[str, Any] = {}
    if matches is not None:
        where["text"] = BrowseRow.item_id.in_(matches) if matches else false()
    if query.predicted is not None:
        where["predicted"] = BrowseRow.predicted_class == query.predicted
    if query.naive is not None:
        where["naive"] = BrowseRow.naive_class.is_(None) if query.naive == NO_LABEL else BrowseRow.naive_class == query.naive
    if query.disagree:
        where["disagree"] = BrowseRow.disagree == true()
    if query.reviewed or query.reviewer:
        where["reviewed"] = decisions.reviewed_condition(BrowseRow.item_id, query.reviewed, query.reviewer)
    return where


def _facets(s, where: dict[str, Any]) -> dict[str, Any]:
    """Counts beside each filter, as datasette shows them: each facet counted under the other
    filters (not its own, so the other choices keep their numbers)."""
    def others(name: str) -> list:
        return [c for k, c in where.items() if k != name]

    def counts(column, name: str) -> list[dict[str, Any]]:
        q = select(column, func.count()).where(*others(name)).group_by(column).order_by(func.count().desc(), column)
        return [{"value": v, "count": n} for v, n in s.execute(q)]

    predicted = [f for f in counts(BrowseRow.predicted_class, "predicted") if f["value"] is not None]
    naive = [{"value": f["value"] or NO_LABEL, "count": f["count"]} for f in counts(BrowseRow.naive_class, "naive")]
    disagree = s.scalar(select(func.count()).select_from(BrowseRow).where(BrowseRow.disagree == true(), *others("disagree")))
    return {"predicted": predicted, "naive": naive, "disagree": disagree}


def page_numbers(page: int, pages: int, *, around: int = 2) -> list[int | None]:
    """The page links to show: the first, the last and ``around`` each side of ``page``; None
    where pages are left out."""
    shown = sorted({1, pages, *range(max(1, page - around), min(pages, page + around) + 1)})
    out: list[int | None] = []
    for n in shown:
        if out and n - out[-1] > 1:
            out.append(None)
        out.append(n)
    return out
