"""The search query: terms, filters, hits and the engine protocol every search engine implements
(:mod:`muses.search.fts5`, :mod:`muses.search.postgres`); :mod:`muses.search` opens the right one."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from sqlalchemy.sql.elements import TextClause

from muses.errors import MusesError
from muses.search.text_query import Clause

# Fields a TextTerm may name. `predicted` holds the names of the item's stored top-k classes.
FIELDS = ("title", "object_type", "primary_object_type", "material", "period", "description", "predicted",
          "object_number", "maker")
# The catalog fields a search box reads, with their weights (a word in the title counts most).
# A catalog column joins the search by a name here and in FIELDS (and in item_fields).
CATALOG_FIELDS = {"title": 3.0, "object_type": 2.0, "material": 1.0, "period": 1.0, "description": 1.0,
                  "object_number": 3.0, "maker": 3.0}


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

    def matching(self, clauses: Sequence[Clause], *, ranked: bool = True) -> TextClause:
        """SQL of (item_id, score) for every item holding all ``clauses`` (a search box's text)."""
        ...

    def refresh(self, ids: Collection[str] | None = None) -> int:
        """Bring the index up to date; returns how many items were (re)indexed."""
        ...


class UnsupportedStoreError(MusesError):
    """No search engine for this store's database."""


def rank_hits(rows: Iterable[tuple[str, float, str]], *, exclude_ids: Collection[str] = (), limit: int = 20) -> list[Hit]:
    """The best ``limit`` items from (item id, score, term label) rows, one per matching term
    and field: scores add up per item, ties go by item id, labels come best first."""
    excluded = {str(i) for i in exclude_ids}
    scores: dict[str, float] = defaultdict(float)
    matched: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for item_id, score, label in rows:
        if item_id not in excluded and score > 0:
            scores[item_id] += score
            matched[item_id].append((score, label))
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [
        Hit(item_id, score, tuple(dict.fromkeys(label for _, label in sorted(matched[item_id], reverse=True) if label)))
        for item_id, score in ranked
    ]
