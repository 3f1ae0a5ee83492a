"""Search the collection: weighted phrase queries over catalog fields and stored predictions.

The interface is deliberately small so that another engine (a search server) can replace the
default SQLite FTS5 one::

    engine = open_engine(store)
    hits = engine.search([TextTerm(("bust", "busts"), {"title": 1, "object_type": 2}),
                          ClassTerm("bust", 8.0)], Filters(exclude_ids={"42"}), limit=20)

A query is a list of terms whose scores add up per item, like a boolean "should" query.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from muses.errors import MusesError

# Fields a TextTerm may name. `predicted` holds the names of the item's stored top-k classes.
FIELDS = ("title", "object_type", "primary_object_type", "material", "period", "description", "predicted")


@dataclass(frozen=True)
class TextTerm:
    """Any of ``phrases`` found in ``fields``; each field's relevance score (bm25 in the FTS5
    engine) is multiplied by the field's weight and added up. ``label`` says why an item matched."""

    phrases: tuple[str, ...]
    fields: Mapping[str, float]
    label: str = ""

    def __post_init__(self) -> None:
        if not self.phrases or not all(isinstance(p, str) and p.strip() for p in self.phrases):
            raise ValueError(f"TextTerm needs at least one non-empty phrase, got {self.phrases!r}")
        unknown = set(self.fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown search field(s) {sorted(unknown)}; use some of {', '.join(FIELDS)}")
        if not self.fields or any(w < 0 for w in self.fields.values()):
            raise ValueError(f"TextTerm needs fields with weights >= 0, got {dict(self.fields)!r}")


@dataclass(frozen=True)
class ClassTerm:
    """A fixed ``boost`` for items whose stored classification has ``name`` as its top class."""

    name: str
    boost: float
    label: str = ""


Term = TextTerm | ClassTerm


@dataclass(frozen=True)
class Filters:
    """Which items may be returned. Only items with usable images, by default."""

    usable_only: bool = True
    exclude_ids: Collection[str] = field(default_factory=frozenset)
    top_class: str | None = None  # only items whose stored top class is this


@dataclass(frozen=True)
class Hit:
    item_id: str
    score: float
    matched: tuple[str, ...] = ()  # the labels of the terms that matched, best first


class SearchEngine(Protocol):
    def search(self, query: Sequence[Term], filters: Filters | None = None, limit: int = 20) -> list[Hit]:
        """Items matching any term, best first (ties by item id)."""
        ...


class UnsupportedStoreError(MusesError):
    """No search engine for this store's database."""


def open_engine(store) -> SearchEngine:
    """The search engine for ``store``: SQLite FTS5 for SQLite stores (the default)."""
    if store.engine.dialect.name == "sqlite":
        from muses.search.fts5 import FTS5Engine

        return FTS5Engine(store)
    raise UnsupportedStoreError(
        f"similar-object search needs a SQLite store (with FTS5); this store is "
        f"{store.engine.dialect.name}. Set [store] url to a sqlite:/// path in muses.toml."
    )


def index_items(store, ids: Collection[str] | None = None) -> int:
    """Bring the search index up to date for ``ids`` (default: every changed item); returns
    how many items were (re)indexed. Searching does this by itself; an importer may call it
    to pay the cost up front."""
    engine = open_engine(store)
    return engine.refresh(ids)  # type: ignore[attr-defined]


__all__ = [
    "FIELDS", "ClassTerm", "Filters", "Hit", "SearchEngine", "Term", "TextTerm", "UnsupportedStoreError",
    "index_items", "open_engine",
]
