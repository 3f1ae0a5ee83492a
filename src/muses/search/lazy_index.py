"""What every search engine's index shares: the text of each field of an item, the filters as
SQL, and refreshing lazily before a search when the store's fingerprint changed."""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Sequence

from sqlalchemy.engine import Connection

from muses.collection.store import Item, Store
from muses.search import ClassTerm, Filters, Hit, TextTerm, rank_hits
from muses.predictions import stored_classes


def item_fields(item: Item) -> dict[str, str]:
    """The text indexed in each search field (muses.search.FIELDS) for ``item``."""
    classes = [c.name for c in stored_classes(item.classification)]
    return {
        "title": item.title or "",
        "object_type": " ; ".join(item.object_type or []),
        "primary_object_type": item.primary_object_type,
        "material": item.material or "",
        "period": item.period or "",
        "description": item.description or "",
        "predicted": " ; ".join(classes),
    }


def filter_sql(filters: Filters) -> tuple[str, dict]:
    """`` AND ...`` conditions on the docs table (alias ``d``: usable, top_class) and their parameters."""
    where = ["d.usable > 0"] if filters.usable_only else []
    if filters.top_class is not None:
        where.append("d.top_class = :top_class")
    return "".join(" AND " + w for w in where), {"top_class": filters.top_class}


class LazyIndex(ABC):
    """An index that refreshes itself: a subclass sets ``store``, calls ``__init__`` and gives
    ``_fingerprint``, ``_stored_fingerprint`` and ``_reindex``."""

    store: Store

    def __init__(self) -> None:
        # The web app searches from several threads: one refresh at a time per engine.
        self._refreshing = threading.Lock()

    def refresh(self, ids: Collection[str] | None = None) -> int:
        """Reindex ``ids``, or (default) every item changed since the last refresh; returns the
        number of items (re)indexed or dropped."""
        with self._refreshing:
            if ids is None:
                with self.store.engine.connect() as conn:
                    if self._fingerprint(conn) == self._stored_fingerprint(conn):
                        return 0
            return self._reindex(ids)

    def search(self, query: Sequence[TextTerm | ClassTerm], filters: Filters | None = None, limit: int = 20) -> list[Hit]:
        """The :class:`~muses.search.SearchEngine` search: every term scored by the engine, the
        scores of an item summed and ranked."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        filters = filters or Filters()
        self.refresh()
        conditions, base = filter_sql(filters)
        rows: list[tuple[str, float, str]] = []
        with self.store.engine.connect() as conn:
            scorer = self._scorer(conn, conditions, base)
            for term in query:
                if not isinstance(term, (TextTerm, ClassTerm)):
                    raise TypeError(f"a query holds TextTerm and ClassTerm objects, got {type(term).__name__}")
                rows.extend((item_id, score, term.label) for item_id, score in scorer(term))
        return rank_hits(rows, exclude_ids=filters.exclude_ids, limit=limit)

    @abstractmethod
    def _scorer(self, conn: Connection, conditions: str, base: dict) -> Callable[[TextTerm | ClassTerm], Iterable]:
        """A function giving (item id, score) pairs for one term, within the filters' SQL."""

    @abstractmethod
    def _fingerprint(self, conn: Connection) -> str:
        """A cheap summary of the store that changes whenever an indexed item may have."""

    @abstractmethod
    def _stored_fingerprint(self, conn: Connection) -> str | None:
        """The fingerprint at the last full refresh (None: none yet)."""

    @abstractmethod
    def _reindex(self, ids: Collection[str] | None) -> int:
        """Reindex ``ids`` (None: every stale item) and store the fingerprint; returns the count."""
