"""What every search engine's index shares: the text of each field of an item, the filters as
SQL, and refreshing lazily before a search when the store's fingerprint changed."""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Collection

from sqlalchemy.engine import Connection

from muses.collection.store import Item, Store
from muses.search import Filters
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

    @abstractmethod
    def _fingerprint(self, conn: Connection) -> str:
        """A cheap summary of the store that changes whenever an indexed item may have."""

    @abstractmethod
    def _stored_fingerprint(self, conn: Connection) -> str | None:
        """The fingerprint at the last full refresh (None: none yet)."""

    @abstractmethod
    def _reindex(self, ids: Collection[str] | None) -> int:
        """Reindex ``ids`` (None: every stale item) and store the fingerprint; returns the count."""
