"""The collection as the web app shows it: items with their naive label and predicted classes,
searched, filtered, counted, sorted and paginated, as plain dicts ready for a template or the
JSON API. Filters, counts and order are indexed SQL over the browse index
(:mod:`muses.search.browse_index`); text search goes through the search engine."""
from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Float, Select, bindparam, false, func, literal, select, union_all
from sqlalchemy.orm import joinedload
from sqlalchemy.sql import Subquery

from muses.collection import decisions
from muses.collection.catalog import catalog_record
from muses.collection.images import photo_note
from muses.collection.store import USABLE_STATUSES, Image, Item, Store
from muses.labeling.matching import record_fields
from muses.search import SearchEngine, browse_index, refresh_indexes, text_query
from muses.search.browse_index import BrowseRow, century_name, natural_key
from muses.predictions import exported_name, indexed_answer, shown_name, stored_answer, stored_classes
from muses.web.cache import DefinitionsCache, Memo

log = logging.getLogger(__name__)
EXPORT_BATCH = 1000  # rows a download reads at a time
# The columns of a download, in order: the card's fields and the description. ``predicted`` is
# empty for the class other ("none of these"); ``answer_kind`` says sure, uncertain or none.
EXPORT_COLUMNS = ("id", "object_number", "title", "maker", "date", "object_type", "material", "period",
                  "dimensions", "credit_line", "department", "description", "naive_label", "predicted", "probability",
                  "answer_kind")

MAX_PER_PAGE = 100
NO_LABEL = "(none)"  # naive-label filter value: items no class claims (unlabeled, conflict, excluded)
MEMO_SIZE = 2048  # answers (counts, pages, similar objects, rendered listings) remembered per app
MEMO_BYTES = 64 * 2**20  # what the answers may weigh together (a rendered listing: 8-15 KB on 70,000 records)
REFRESH_INTERVAL = 1.0  # seconds between checks whether the store changed (each costs a few scans)
# seconds the request that finds the indexes stale waits for their background refresh: a handful
# of changed items are done by then; a re-import of thousands is not waited for (the page says so)
REFRESH_WAIT = 1.0
EXACT_SCORE = 1e300  # the relevance of the item whose object number is the search text: first
FIRST_ROWS = 240  # ids of a listing's first pages fetched (and remembered) at once
BEST_ROWS = 2400  # a search's best matches kept with their facets: its first pages under a facet come from them
FACET_SHOWN = 30  # values listed per catalog facet (material, century), most frequent first
# A search matching more records than this answers with its page and exact total at once and its
# facets after (/api/facets): counting them reads every match (800 ms for a word in a fifth of a
# million records, where the page and total take 300 ms). The 70k-record load mix stays under it.
FACETS_AFTER = 50_000
SORTS = {
    "relevance": "best match first",
    "number": "object number",
    "confidence": "most confident first",
    "doubt": "least confident first",
    "disagreement": "strongest disagreement first",
}
_ORDER = {
    "number": (BrowseRow.number_key, BrowseRow.item_id),
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
    material: str | None = None  # the medium as the catalog writes it
    century: int | None = None  # 19: the 19th century; negative: BC
    maker: str | None = None  # the first maker, as the catalog names them
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

    @property
    def filters(self) -> tuple:
        """What selects the rows (not their order or page): the key of the remembered counts."""
        return (self.text.strip(), self.predicted, self.naive, self.disagree, self.material, self.century,
                self.maker, self.reviewed, self.reviewer)

    def params(self, **changes: Any) -> str:
        """This listing's query string with ``changes``; a changed filter starts again at page 1."""
        q = replace(self, **{"page": 1, **changes})
        params = {"q": q.text.strip(), "predicted": q.predicted or "", "naive": q.naive or "",
                  "disagree": "true" if q.disagree else "", "material": q.material or "",
                  "century": "" if q.century is None else q.century, "maker": q.maker or "", "sort": q.sort,
                  "page": q.page if q.page > 1 else "", "per_page": q.per_page if q.per_page != 24 else "",
                  "reviewed": q.reviewed or "", "reviewer": q.reviewer or ""}
        return urlencode({k: v for k, v in params.items() if v != ""})

    def url(self, **changes: Any) -> str:
        """This listing's address with ``changes``."""
        return "/items?" + self.params(**changes)

    def download_url(self, fmt: str) -> str:
        """Every row of this listing (all pages) as ``fmt`` (csv or json)."""
        return f"/items.{fmt}?" + self.params(page=1, per_page=24)


@dataclass(frozen=True)
class Selection:
    """The rows a listing selects, as SQL: ``where`` by filter name (a facet's counts leave out
    its own), ``ranked`` (item_id, score) of a text search, ``exact`` an item whose id is the text."""

    where: dict[str, Any] = field(default_factory=dict)
    ranked: Subquery | None = None
    exact: str | None = None

    def ordered(self, order: str, columns: tuple = ()) -> Select:
        """The selected item ids in ``order`` (with the browse index ``columns`` beside them)."""
        if order != "relevance" or self.ranked is None:
            first = (BrowseRow.item_id != self.exact,) if self.exact else ()
            return (select(BrowseRow.item_id, *columns).where(*self.where.values())
                    .order_by(*first, *_ORDER.get(order, _ORDER["number"])))
        others = [c for k, c in self.where.items() if k != "text"]
        r = self.ranked
        hits = select(r.c.item_id, r.c.score)
        if others:
            hits = hits.join(BrowseRow, BrowseRow.item_id == r.c.item_id).where(*others)
        if self.exact is not None:  # the item whose number was typed, above every score
            first = select(BrowseRow.item_id, literal(EXACT_SCORE, Float)).where(BrowseRow.item_id == self.exact, *others)
            hits = union_all(hits.where(r.c.item_id != self.exact), first)
        ordered = hits.subquery("hits")
        found = select(ordered.c.item_id, *columns)
        if columns:
            found = found.join(BrowseRow, BrowseRow.item_id == ordered.c.item_id)
        return found.order_by(ordered.c.score.desc(), ordered.c.item_id)


class CollectionView:
    """Read-only view of a project's store for browsing. The indexes are built by the commands
    that change the store (:func:`muses.search.refresh_indexes`); a page never waits for one.
    When a page finds them out of date (a store changed by hand, or by an older muses), it starts
    the refresh in the background, once, waits for it at most ``refresh_wait`` seconds, and then
    serves what the indexes hold, saying so while the refresh goes on (:attr:`rebuilding`). What is remembered between requests (:meth:`memo`) is forgotten
    whenever the indexes change."""

    def __init__(self, store: Store, definitions: DefinitionsCache, *, refresh_interval: float = REFRESH_INTERVAL,
                 memo_size: int = MEMO_SIZE, engine: Callable[[], SearchEngine] | None = None,
                 refresh_wait: float = REFRESH_WAIT):
        self.store = store
        self.definitions = definitions
        self.refresh_interval = refresh_interval
        self.refresh_wait = refresh_wait
        self.engine = engine  # opens the search engine: refreshed beside the browse index
        self._synced: tuple[Any, float] | None = None  # (definitions, when)
        self._generation: str | None = None  # the store's fingerprint at the last check
        self._memo = Memo(memo_size, MEMO_BYTES)
        self._lock = threading.Lock()
        self._rebuild: threading.Thread | None = None

    @property
    def memo_size(self) -> int:
        """Answers remembered (0: none, every request computed anew)."""
        return self._memo.size

    @memo_size.setter
    def memo_size(self, size: int) -> None:
        self._memo.size = size
        self._memo.clear()

    @property
    def rebuilding(self) -> bool:
        """Whether the indexes are being refreshed in the background right now."""
        return self._rebuild is not None and self._rebuild.is_alive()

    def sync(self, *, force: bool = False) -> None:
        """Notice whether the indexes are current; ``force``: bring them up to date now (after a
        change of a few items made by this process, such as classifying one item)."""
        definitions = self.definitions.get()  # raises a MusesError for a broken file: 503 with the reason
        now = time.monotonic()
        synced = self._synced
        if not force and synced and synced[0] is definitions and now - synced[1] < self.refresh_interval:
            return
        # One request checks (a few scans of the store); those arriving meanwhile do not queue
        # behind it to check again, each in turn (fifty clients: stalls of 100 ms and more), but
        # serve what the indexes hold. Only the first check of all is waited for.
        if not self._lock.acquire(blocking=force or synced is None):
            return
        started = None
        try:
            if not force and self._synced is not synced:  # checked by another while this one waited
                return
            if force:
                browse_index.refresh_if_changed(self.store, definitions)
            elif not self.rebuilding and not browse_index.is_current(self.store, definitions):
                started = self._rebuild = threading.Thread(target=self._refresh, args=(definitions,), daemon=True,
                                                           name="muses-index-refresh")
                started.start()
            self._forget_if_changed()
            self._synced = (definitions, now)
        finally:
            self._lock.release()
        if started is not None:  # a few changed items are indexed within the wait; the page is then current
            started.join(timeout=self.refresh_wait)

    def _refresh(self, definitions) -> None:
        try:
            refresh_indexes(self.store, definitions, engine=self.engine() if self.engine else None)
        except Exception:  # the page keeps serving the index it has; the next check tries again
            log.exception("refreshing the browse and search indexes failed")
        with self._lock:
            self._forget_if_changed()

    def _forget_if_changed(self) -> None:
        generation = browse_index.stored_fingerprint(self.store)
        if generation != self._generation:
            self._memo.clear()
            self._generation = generation

    def memo(self, key: Any, make: Callable[[], Any], *, keep: Callable[[Any], bool] = lambda _: True) -> Any:
        """``make()``, remembered under ``key`` (when ``keep(answer)``) until the store or
        definitions.toml change (the ``memo_size`` most recently used answers are kept)."""
        self.sync()
        return self._memo.get(key, make, keep=keep)

    def rows(self, ids: list[str]) -> dict[str, BrowseRow]:
        self.sync()
        with self.store.session() as s:
            return {r.item_id: r for r in s.scalars(select(BrowseRow).where(BrowseRow.item_id.in_(ids)))}

    def item(self, item_id: str) -> tuple[Item, BrowseRow | None] | None:
        """An item with its photos and its browse index row: an object page's one query."""
        self.sync()
        with self.store.session() as s:
            found = s.execute(_ITEM, {"item_id": str(item_id)}).unique().first()
        return None if found is None else (found[0], found[1])

    def naive_label(self, item_id: str) -> str | None:
        row = self.rows([item_id]).get(item_id)
        return row.naive_class if row else None

    # -- the listing ---------------------------------------------------------------------------
    def page(self, query: Query, engine: Callable[[], SearchEngine] | None = None, *,
             counted: bool = False) -> dict[str, Any]:
        """One page of the listing with its exact total and facet counts (over every match,
        whatever the collection's size); ``engine`` opens the search engine, called only for a
        text query. A search matching more than FACETS_AFTER records, whose facets are not known
        yet, has ``facets`` None and ``facets_url`` where they are counted (:meth:`facets`),
        unless ``counted``: then they are counted here."""
        self.sync()
        # built only on a miss: a remembered page costs no query but its cards'
        selection = functools.cache(lambda: self.selection(query, engine))
        filters = query.filters + self._decisions_stamp(query)
        facets_url = None
        words = _unfiltered(query)
        if not counted and ("counts", *filters) not in self._memo and (matches := self._total(words, engine)) > FACETS_AFTER:
            total, facets = matches if words == query else self._total(query, engine, selection), None
            facets_url = "/api/facets?" + query.params(sort="", per_page=24)
        else:
            total, facets = self._counted(query, filters, selection)
        pages = max(1, math.ceil(total / query.per_page))
        page = min(max(1, query.page), pages)
        offset = (page - 1) * query.per_page
        end = offset + query.per_page
        if end <= FIRST_ROWS:  # the first pages share one query: ranking every match is the dear part
            ids = self._first(query, filters, selection, engine, min(end, total))[offset:end]
        else:
            ids = self.memo(("page", *filters, query.order, offset, query.per_page),
                            lambda: self._ids(selection().ordered(query.order).offset(offset).limit(query.per_page)))
        with self.store.session() as s:
            cards = _cards(s, ids)
        return {
            "total": total, "page": page, "per_page": query.per_page, "pages": pages, "sort": query.order,
            "rebuilding": self.rebuilding, "facets": facets, "facets_url": facets_url, "items": cards,
        }

    def facets(self, query: Query, engine: Callable[[], SearchEngine] | None = None) -> dict[str, Any]:
        """The exact total and facet counts of ``query``'s listing, remembered: what :meth:`page`
        leaves out for a common word, and then shows on every page of that search."""
        self.sync()
        total, facets = self._counted(query, query.filters + self._decisions_stamp(query),
                                      lambda: self.selection(query, engine))
        return {"total": total, "rebuilding": self.rebuilding, "facets": facets}

    def _counted(self, query: Query, filters: tuple, selection: Callable[[], Selection]) -> tuple[int, dict[str, Any]]:
        return self.memo(("counts", *filters), lambda: self._counts(query, selection().where))

    def _total(self, query: Query, engine: Callable[[], SearchEngine] | None,
               selection: Callable[[], Selection] | None = None) -> int:
        """How many rows ``query`` selects, remembered (0 without a text: never deferred)."""
        if not query.text.strip():
            return 0
        chosen = selection or (lambda: self.selection(query, engine))

        def count() -> int:
            with self.store.session() as s:
                return _count(s, chosen().where)

        return self.memo(("total", *query.filters, *self._decisions_stamp(query)), count)

    def _first(self, query: Query, filters: tuple, selection: Callable[[], Selection],
               engine: Callable[[], SearchEngine] | None, needed: int) -> list[str]:
        """The ids of the listing's first pages (FIRST_ROWS of them, or at least ``needed``). A search
        under a facet, in relevance order, picks them from the search's best matches, ranked once
        for every facet chosen with it: a ranking restricted to a facet keeps the order of the
        whole one. A facet too rare among them ranks the matches under it."""
        wanted = _wanted(query)
        if wanted and query.order == "relevance" and query.text.strip() and not (query.reviewed or query.reviewer):
            best = self.memo(("best", query.text.strip()), lambda: self._best(query, engine))
            ids = best.passing(wanted)
            if best.complete or len(ids) >= needed:
                return ids
        return self.memo(("first", *filters, query.order),
                         lambda: self._ids(selection().ordered(query.order).limit(FIRST_ROWS)))

    def _best(self, query: Query, engine: Callable[[], SearchEngine] | None) -> Best:
        statement = self.selection(_unfiltered(query), engine).ordered("relevance", tuple(FACETS.values())).limit(BEST_ROWS)
        with self.store.session() as s:
            rows = [tuple(row) for row in s.execute(statement)]
        return Best(rows, complete=len(rows) < BEST_ROWS)

    def rendered(self, kind: str, query: Query, engine: Callable[[], SearchEngine] | None,
                 render: Callable[[dict[str, Any]], bytes], *, counted: bool = False) -> bytes:
        """``render(page)`` of ``query``'s :meth:`page`, remembered under ``kind`` (html, json)
        like the page's counts: a listing asked for again costs neither a query nor its rendering.
        While the indexes are being rebuilt, the page is made anew (it says so) and not remembered;
        so is a page whose facets come after it: once they are counted, the page shows them
        (``counted``: counted for this one, see :meth:`page`)."""
        self.sync()
        if self.rebuilding:
            return render(self.page(query, engine, counted=counted))
        shown: list[dict[str, Any]] = []

        def make() -> bytes:
            shown.append(self.page(query, engine, counted=counted))
            return render(shown[0])

        return self.memo(("rendered", kind, query, *self._decisions_stamp(query)), make,
                         keep=lambda _: not shown[0]["rebuilding"] and shown[0]["facets"] is not None)

    def _decisions_stamp(self, query: Query) -> tuple:
        """What a listing filtered by review decisions is also keyed by: decisions do not change
        the store's fingerprint."""
        return (decisions.stamp(self.store),) if query.reviewed or query.reviewer else ()

    def selection(self, query: Query, engine: Callable[[], SearchEngine] | None = None) -> Selection:
        """The rows ``query`` selects, as SQL (nothing is run)."""
        text = query.text.strip()
        if not text:
            return Selection(_conditions(query))
        if engine is None:
            raise ValueError("a text query needs a search engine")
        clauses = text_query.parse(text)
        with self.store.session() as s:  # an object number typed into the search box finds its item, first
            exact = s.scalar(select(BrowseRow.item_id).where(BrowseRow.number_key == natural_key(text))
                             .order_by(BrowseRow.item_id).limit(1))
        if not clauses:
            where = {"text": BrowseRow.item_id == exact if exact else false()}
            return Selection({**where, **_conditions(query)}, exact=exact)
        found = engine()
        counted = found.matching(clauses, ranked=False).subquery("counted")
        # the typed number's item joins the matches inside the IN: an OR beside it made PostgreSQL
        # scan every browse row (200 ms at a million records)
        matched = union_all(select(counted.c.item_id), select(literal(exact))) if exact else select(counted.c.item_id)
        where = {"text": BrowseRow.item_id.in_(matched)}
        return Selection({**where, **_conditions(query)}, ranked=found.matching(clauses).subquery("ranked"), exact=exact)

    def _ids(self, statement) -> list[str]:
        with self.store.session() as s:
            return list(s.scalars(statement))

    def _counts(self, query: Query, where: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.store.session() as s:
            if "text" in where and "reviewed" not in where:  # the matches read once, every facet counted from them
                total, counts = browse_index.facet_counts(s, FACETS, where["text"], _wanted(query))
            else:
                total, counts = _count(s, where), _facets(s, where)
        return total, _facet_lists(counts)

    def export_rows(self, query: Query, engine: Callable[[], SearchEngine] | None = None) -> Iterator[dict[str, Any]]:
        """Every row ``query`` selects (all pages), in its order, as :data:`EXPORT_COLUMNS`,
        read EXPORT_BATCH at a time: a download of the whole collection never sits in memory."""
        statement = self.selection(query, engine).ordered(query.order)
        with self.store.session() as s:
            ids = list(s.scalars(statement))
        for start in range(0, len(ids), EXPORT_BATCH):
            with self.store.session() as s:
                yield from _export_rows(s, ids[start : start + EXPORT_BATCH])

    # -- one item ------------------------------------------------------------------------------
    def summary(self, item: Item, row: BrowseRow | None = None) -> dict[str, Any]:
        """``item`` as a card; its answer from its stored classification, as its object page says it."""
        row = row if row is not None else self.rows([item.id]).get(item.id)
        ranked = stored_classes(item.classification)
        first = ranked[0] if ranked else None
        found = stored_answer(item.classification, ranked)
        return card(item.id, item.number, item.title, item.object_type, item.material, item.period,
                    first.name if first else None, row.naive_class if row else None,
                    first.probability if first else None, found.kind if found else None,
                    row.disagreement if row else None, [im.id for im in item.usable_images])

    def detail(self, item: Item, row: BrowseRow | None = None) -> dict[str, Any]:
        definitions = self.definitions.get()
        label = browse_index.matcher_for(definitions).label(record_fields(item)) if definitions else None
        return {
            **self.summary(item, row),
            **catalog_record(item),
            "source": item.source,
            "naive": None if label is None else {
                "class": label.cls, "status": label.status, "keyword": label.keyword, "field": label.field,
                "candidates": list(label.candidates),
            },
            "classification": item.classification,
            "images": [
                {"id": im.id, "position": im.position, "status": im.status, "problem": im.problem,
                 "url": f"/images/{im.id}" if im.stored_path else None,
                 "note": photo_note(im.original, im.status, im.problem)}
                for im in item.images
            ],
            "raw": item.raw,
        }


def card(item_id: str, number: str, title: str, object_type: list | None, material: str, period: str,
         predicted: str | None, naive: str | None, probability: float | None, answer_kind: str | None,
         disagreement: float | None, image_ids: list[int]) -> dict[str, Any]:
    """An item as a card (and as the API's item summary): ``predicted`` is the stored top class
    by its machine name (``other`` included), ``answer`` the stored answer as a person reads it,
    in the object page's words, and ``answer_kind`` its kind (sure, uncertain, none): the words
    ``muses predict --json`` and ``/api/predict`` use too."""
    return {
        "id": item_id, "object_number": number, "title": title, "object_type": list(object_type or []), "material": material, "period": period,
        "naive_label": naive, "predicted": predicted, "probability": probability, "answer": indexed_answer(answer_kind, predicted, probability),
        "answer_kind": answer_kind, "disagreement": disagreement,
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
    q = (select(Item.id, Item.number, Item.title, Item.object_type, Item.material, Item.period,
                BrowseRow.predicted_class,
                BrowseRow.naive_class, BrowseRow.predicted_probability, BrowseRow.answer, BrowseRow.disagreement)
         .join(BrowseRow, BrowseRow.item_id == Item.id).where(Item.id.in_(ids)))
    found = {row[0]: card(*row, photos[row[0]]) for row in s.execute(q)}
    return [found[i] for i in ids if i in found]


def _export_rows(s, ids: list[str]) -> Iterator[dict[str, Any]]:
    q = (select(Item.id, Item.number, Item.title, Item.maker, Item.date, Item.object_type, Item.material,
                Item.period, Item.dimensions, Item.credit_line, Item.department, Item.description, BrowseRow.naive_class, BrowseRow.predicted_class, BrowseRow.predicted_probability,
                BrowseRow.answer)
         .join(BrowseRow, BrowseRow.item_id == Item.id).where(Item.id.in_(ids)))
    found = {row[0]: row for row in s.execute(q)}
    for item_id in ids:
        if item_id in found:
            row = dict(zip(EXPORT_COLUMNS, found[item_id]))
            yield {**row, "object_type": " ; ".join(row["object_type"] or []),
                   "predicted": row["predicted"] and exported_name(row["predicted"])}


# Built once: an object page asks for it with a new id each time.
_ITEM = (select(Item, BrowseRow).outerjoin(BrowseRow, BrowseRow.item_id == Item.id)
         .where(Item.id == bindparam("item_id")).options(joinedload(Item.images)))

# The filters beside the listing, by name: the browse index column each one compares.
FACETS = {"predicted": BrowseRow.predicted_class, "naive": BrowseRow.naive_class, "disagree": BrowseRow.disagree,
          "material": BrowseRow.material, "century": BrowseRow.century, "maker": BrowseRow.maker}


def _count(s, where: dict[str, Any]) -> int:
    return s.scalar(select(func.count()).select_from(BrowseRow).where(*where.values()))


def _unfiltered(query: Query) -> Query:
    """``query``'s search alone: its words, no filter."""
    return replace(query, predicted=None, naive=None, disagree=False, material=None, century=None, maker=None,
                   reviewed=None, reviewer=None)


def _wanted(query: Query) -> dict[str, Any]:
    """The value each filter of ``query`` asks its column for (None: no catalog label)."""
    wanted = {"predicted": query.predicted, "naive": query.naive, "disagree": True if query.disagree else None,
              "material": query.material, "century": query.century, "maker": query.maker}
    wanted = {k: v for k, v in wanted.items() if v is not None}
    if wanted.get("naive") == NO_LABEL:
        wanted["naive"] = None
    return wanted


def _conditions(query: Query) -> dict[str, Any]:
    """The WHERE parts of ``query``'s filters, by name (a facet's counts leave out its own)."""
    where = {name: FACETS[name].is_(None) if value is None else FACETS[name] == value
             for name, value in _wanted(query).items()}
    if query.reviewed or query.reviewer:  # not a browse index column: decisions are records of their own
        where["reviewed"] = decisions.reviewed_condition(BrowseRow.item_id, query.reviewed, query.reviewer)
    return where


def _facets(s, where: dict[str, Any]) -> dict[str, Counter]:
    """Counts beside each filter, as datasette shows them: each facet counted under the other
    filters (not its own, so the other choices keep their numbers). One indexed GROUP BY per facet."""
    def counts(name: str) -> Counter:
        others = [c for k, c in where.items() if k != name]
        return Counter(dict(s.execute(select(FACETS[name], func.count()).where(*others).group_by(FACETS[name])).all()))

    return {name: counts(name) for name in FACETS}


@dataclass(frozen=True)
class Best:
    """A search's best matches in relevance order, as (item id, facet column values...);
    ``complete``: all of its matches."""

    rows: list[tuple]
    complete: bool

    @property
    def weight(self) -> int:  # bytes, roughly: what the memo's budget counts
        return 200 * len(self.rows)

    def passing(self, wanted: dict[str, Any]) -> list[str]:
        """The ids, in order, that the filters ``wanted`` (facet -> value) keep."""
        checks = [(1 + list(FACETS).index(name), value) for name, value in wanted.items()]
        return [row[0] for row in self.rows if all(row[i] == value for i, value in checks)]


def _facet_lists(counts: dict[str, Counter]) -> dict[str, Any]:
    """The facets as the page lists them, most frequent first (centuries in time order)."""
    def ranked(name: str) -> list[dict[str, Any]]:
        return [{"value": v, "count": n} for v, n in sorted(counts[name].items(), key=lambda vn: (-vn[1], str(vn[0])))
                if v is not None]

    centuries = sorted(ranked("century"), key=lambda f: f["value"])
    return {"predicted": [{**f, "name": shown_name(f["value"])} for f in ranked("predicted")],
            "naive": ranked("naive") + ([{"value": NO_LABEL, "count": counts["naive"][None]}] if counts["naive"][None] else []),
            "disagree": counts["disagree"][True], "material": ranked("material")[:FACET_SHOWN],
            "maker": ranked("maker")[:FACET_SHOWN],
            "century": [{**f, "name": century_name(f["value"])} for f in centuries]}


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
