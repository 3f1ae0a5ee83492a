"""Naive labels: find each class's keywords in an item's catalog fields and decide its class.

One regular expression per field holds every keyword form of every class (longest first), so
an item costs one normalization and one ``finditer`` per field, whatever the number of classes.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache, partial
from typing import Any, NamedTuple

from muses.labeling.definitions import KNOWN_FIELDS, Definitions
from muses.labeling.text import fold, normalize, word_forms

_FACET_FIELDS = ("object_type", "primary_object_type")  # both read the object-type facets
LABELED, CONFLICT, UNLABELED, EXCLUDED = "labeled", "conflict", "unlabeled", "excluded"
STATUSES = (LABELED, CONFLICT, UNLABELED, EXCLUDED)


class Hit(NamedTuple):
    cls: str
    keyword: str  # the synonym as written in definitions.toml
    field: str
    rank: int
    start: int = 0  # where the matched text begins and ends in the field's folded text
    end: int = 0    # (facets joined by " | "): what "earliest" compares and the report highlights


_new_hit = partial(tuple.__new__, Hit)  # Hit from one tuple, without the Python-level __new__: a hot path


def _precedence(hit: Hit) -> tuple[int, int]:
    """Higher rank first, then the earlier mention: the hit that decides under "earliest"."""
    return -hit.rank, hit.start


class Label(NamedTuple):
    item_id: str
    cls: str | None
    status: str  # one of STATUSES
    keyword: str | None  # the keyword that decided the class
    field: str | None  # the field it was found in
    hits: tuple[Hit, ...]  # every synonym hit, vetoed classes included
    candidates: tuple[str, ...] = ()  # classes tied at the best rank (conflicts)
    vetoes: tuple[tuple[str, str], ...] = ()  # (class, exclude keyword) that vetoed a class


def record_fields(item: Any) -> dict[str, Any]:
    """The fields matching reads, from a store ``Item`` (or anything with those attributes)."""
    return {
        "id": str(item.id),
        "title": item.title or "",
        "object_type": [str(f) for f in item.object_type or []],
        "material": item.material or "",
        "period": item.period or "",
        "description": item.description or "",
    }


def field_text(record: Mapping[str, Any], field: str) -> str:
    """The text of ``field`` as matching searched it (facets joined by " | ", the primary facet
    alone): what a hit's ``start``/``end`` point into, once folded."""
    if field in _FACET_FIELDS:
        facets = record.get("object_type") or ()
        facets = [facets] if isinstance(facets, str) else [str(f) for f in facets]
        return " | ".join(facets if field == "object_type" else facets[:1])
    return str(record.get(field) or "")


def searched_fields(definitions: Definitions) -> list[str]:
    """Every field some class is searched in, in the order of :data:`KNOWN_FIELDS`; the primary
    facet only where the whole object type is not searched (it is its first facet)."""
    used = {f for spec in definitions.synonyms_extended.values() for f in spec["fields"]}
    if "object_type" in used:
        used.discard("primary_object_type")
    return [f for f in KNOWN_FIELDS if f in used]


class Matcher:
    """Definitions compiled for labeling: ``Matcher(defs).label(record)`` → :class:`Label`.

    A record is a mapping with ``id``, ``title``, ``object_type`` (list of facets, most general
    first) and optionally ``material``, ``period``, ``description``.
    """

    def __init__(self, definitions: Definitions):
        self.definitions = definitions
        self._order = {name: i for i, name in enumerate(definitions.class_names)}
        # field -> normalized form -> the (class, keyword, field, rank) it is a synonym of, and apart the
        # (class, exclude keyword) it vetoes. Excludes get their own expression: one regex for both
        # would let "oil paint on wood" (an exclude) consume the synonym "oil paint" it contains.
        synonyms: dict[str, dict[str, list[tuple[str, str, str, int]]]] = {}
        excludes: dict[str, dict[str, list[tuple[str, str]]]] = {}
        for name in definitions.class_names:
            spec = definitions.synonyms_extended[name]
            for field, rank in spec["fields"].items():
                for keyword in spec["synonyms"]:
                    _add_forms(synonyms.setdefault(field, {}), keyword, (name, keyword, field, rank), definitions.plurals)
                for keyword in spec["exclude"]:
                    _add_forms(excludes.setdefault(field, {}), keyword, (name, keyword), definitions.plurals)
        self._synonyms = synonyms
        self._excludes = excludes
        self._regexes = {field: _compile(table) for field, table in synonyms.items()}
        self._exclude_regexes = {field: _compile(table) for field, table in excludes.items()}
        tables = set(synonyms) | set(excludes)
        self._facet_fields = [f for f in sorted(tables) if f in _FACET_FIELDS]
        self._text_fields = [f for f in sorted(tables) if f not in _FACET_FIELDS]
        # Facets and many titles repeat across a collection: scan each distinct value once.
        self._scan = lru_cache(maxsize=1 << 16)(self._scan_uncached)
        self._scan_facets = lru_cache(maxsize=1 << 14)(self._scan_facets_uncached)

    def _scan_uncached(self, field: str, value: str | tuple[str, ...]) -> tuple[tuple[Hit, ...], tuple[tuple[str, str], ...]]:
        if isinstance(value, tuple):
            # A separator no keyword contains keeps a phrase from spanning two facets.
            text = " | ".join(fold(v) for v in value)
        else:
            text = fold(value)
        hits: list[Hit] = []
        table = self._synonyms.get(field)
        if table:
            for match in self._regexes[field].finditer(text):
                key = match.group()
                where = match.span()
                for entry in table.get(key) or table[" ".join(key.split())]:
                    hits.append(_new_hit(entry + where))
        vetoes: list[tuple[str, str]] = []
        table = self._excludes.get(field)
        if table:
            for match in self._exclude_regexes[field].finditer(text):
                key = match.group()
                vetoes += table.get(key) or table[" ".join(key.split())]
        return tuple(hits), tuple(vetoes)

    def _scan_facets_uncached(self, facets: tuple[str, ...]) -> tuple[tuple[Hit, ...], tuple[tuple[str, str], ...]]:
        hits: list[Hit] = []
        vetoes: list[tuple[str, str]] = []
        for field in self._facet_fields:
            found, vetoed = self._scan_uncached(field, facets if field == "object_type" else facets[:1])
            hits += found
            vetoes += vetoed
        return tuple(hits), tuple(vetoes)

    def label(self, record: Mapping[str, Any]) -> Label:
        item_id = str(record.get("id", ""))
        facets = record.get("object_type") or ()
        facets = (facets,) if isinstance(facets, str) else tuple(facets)
        hits, vetoes = self._scan_facets(facets) if facets else ((), ())
        for field in self._text_fields:
            value = record.get(field)
            if value:
                found, vetoed = self._scan(field, value)
                hits += found
                vetoes += vetoed
        if hits and not vetoes:
            first = hits[0].cls
            for h in hits:
                if h.cls != first:
                    break
            else:  # the common case: one class, no veto
                best = hits[0] if len(hits) == 1 else min(hits, key=_precedence)
                return Label(item_id, first, LABELED, best.keyword, best.field, hits, (first,), ())
        vetoes = list(dict.fromkeys(vetoes))  # one veto found in two fields is one veto
        if not hits:
            return Label(item_id, None, UNLABELED, None, None, (), (), tuple(vetoes))
        vetoed = {cls for cls, _ in vetoes}
        live = [h for h in hits if h.cls not in vetoed]
        if not live:
            return Label(item_id, None, EXCLUDED, None, None, hits, (), tuple(vetoes))
        top = max(h.rank for h in live)
        best = [h for h in live if h.rank == top]
        tied = sorted({h.cls for h in best}, key=self._order.__getitem__)
        if len(tied) > 1 and self.definitions.conflict_policy == "earliest":
            # The catalog names the main thing first ("Etching and watercolour on paper"); the
            # regex already let the longest phrase at a place win ("oil paint on paper" over
            # "paper"). Two classes at the same place (two fields of one rank) still conflict.
            first = min(h.start for h in best)
            best = [h for h in best if h.start == first]
            at_first = sorted({h.cls for h in best}, key=self._order.__getitem__)
            winner = at_first[0] if len(at_first) == 1 else None
            tied = tied if winner else at_first
        else:
            winner = tied[0] if len(tied) == 1 else self._resolve(tied, live)
        if winner is None:
            return Label(item_id, None, CONFLICT, None, None, hits, tuple(tied), tuple(vetoes))
        decisive = next(h for h in best if h.cls == winner)
        return Label(item_id, winner, LABELED, decisive.keyword, decisive.field, hits, tuple(tied), tuple(vetoes))

    def _resolve(self, tied: list[str], live: list[Hit]) -> str | None:
        policy = self.definitions.conflict_policy
        if policy == "priority":
            return tied[0]
        if policy == "most-hits":
            counts = {cls: sum(1 for h in live if h.cls == cls) for cls in tied}
            most = max(counts.values())
            leaders = [cls for cls, n in counts.items() if n == most]
            return leaders[0] if len(leaders) == 1 else None
        return None  # "drop"


def _add_forms(table: dict[str, list[tuple]], keyword: str, entry: tuple, plurals: bool) -> None:
    """``entry`` (its class first) under every normalized form of ``keyword``."""
    for form in word_forms(normalize(keyword), plurals):
        entries = table.setdefault(form, [])
        # "vase" and "vases" listed together must not count twice.
        if not any(e[0] == entry[0] for e in entries):
            entries.append(entry)


def _compile(table: Mapping[str, Any]) -> re.Pattern[str]:
    forms = sorted(table, key=lambda f: (-len(f), f))
    # Texts are folded but their spacing kept (cheaper); a phrase's spaces match any run of it.
    alternation = "|".join(re.escape(f).replace(r"\ ", r"\s+") for f in forms)
    return re.compile(r"(?<!\w)(?:" + alternation + r")(?!\w)")


def label_records(records: Iterable[Mapping[str, Any]], definitions: Definitions) -> list[Label]:
    """Label every record (see :class:`Matcher`); the result is in input order."""
    matcher = Matcher(definitions)
    return [matcher.label(r) for r in records]
