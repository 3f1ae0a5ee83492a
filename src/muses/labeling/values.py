"""A catalog field's distinct values with counts and the label each gets now (a text facet, as
in OpenRefine): the tool for writing definitions, and the diff of labels by value between runs.

Plain functions over records (store items, or anything with their attributes) and definitions;
the store, the CLI and the web page only feed them and show the result.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from muses.errors import MusesError
from muses.labeling.definitions import Definitions
from muses.labeling.matching import LABELED, Label, Matcher, record_fields
from muses.labeling.report import explain
from muses.labeling.text import normalize

SORTS = ("count", "value", "label")


class FieldError(MusesError):
    """The field named is in no record of the catalog."""


@dataclass
class ValueRow:
    value: str
    count: int  # records with this value
    label: str  # the label most of them get now: a class, or conflict / excluded / unlabeled
    share: float  # the part of the records with this value that get that label
    why: str  # the keyword and field that decided it, or why the record was left out


def value_of(item: Any, field: str, record: Mapping[str, Any] | None = None) -> str | None:
    """``field`` of a store item: one of the matched fields (object-type facets joined by " | "),
    else the record as imported (``raw``, any column of the catalog); None where it has none.
    ``record``: the item's ``record_fields``, where the caller has them already."""
    record = record_fields(item) if record is None else record
    if field in record and field != "id":
        value = record[field]
        return " | ".join(value) if isinstance(value, list) else value
    raw = getattr(item, "raw", None) or {}
    if field not in raw:
        return None
    value = raw[field]
    if isinstance(value, list):
        return " | ".join(str(v) for v in value)
    return "" if value is None else str(value)


def label_name(label: Label) -> str:
    return label.cls if label.status == LABELED else label.status


def why(label: Label, policy: str) -> str:
    if label.status == LABELED:
        return f"'{label.keyword}' in {label.field}"
    return explain(label, policy)[1]


def field_values(items: Iterable[Any], field: str, definitions: Definitions, *, contains: str = "",
                 sort: str = "count") -> list[ValueRow]:
    """The distinct values of ``field`` over ``items`` with their counts, each with the label its
    records get now under ``definitions`` (the most common one, and why); ``contains``: only values
    holding this text (case- and accent-insensitive); ``sort``: one of :data:`SORTS`.
    Holds one counter per distinct value, never the records."""
    matcher = Matcher(definitions)
    needle = normalize(contains)
    labels: dict[str, Counter[str]] = {}
    reasons: dict[tuple[str, str], str] = {}  # (value, label) -> why, from its first record
    found = False
    for item in items:
        record = record_fields(item)
        value = value_of(item, field, record)
        if value is None:
            continue
        found = True
        if not _holds(value, needle):
            continue
        label = matcher.label(record)
        name = label_name(label)
        labels.setdefault(value, Counter())[name] += 1
        if (value, name) not in reasons:
            reasons[(value, name)] = why(label, definitions.conflict_policy)
    if not found:
        raise FieldError(f"no record has a field {field!r}; give a column of the catalog (e.g. title, "
                         "object_type, material, or a column name of the imported file)")
    rows = []
    for value, counts in labels.items():
        name, n = counts.most_common(1)[0]
        total = sum(counts.values())
        rows.append(ValueRow(value, total, name, round(n / total, 3), reasons[(value, name)]))
    return sort_rows(rows, sort)


def _holds(value: str, needle: str) -> bool:
    return not needle or needle in normalize(value)


def containing(rows: Iterable[ValueRow], contains: str) -> list[ValueRow]:
    """The rows whose value holds ``contains`` (as :func:`field_values` picks them), for a caller
    that keeps every value of a field and filters it many times."""
    needle = normalize(contains)
    return [r for r in rows if _holds(r.value, needle)]


def sort_rows(rows: list[ValueRow], sort: str) -> list[ValueRow]:
    if sort not in SORTS:
        raise MusesError(f"cannot sort by {sort!r}; use one of {', '.join(SORTS)}")
    keys = {"count": lambda r: (-r.count, r.value), "value": lambda r: (normalize(r.value), r.value),
            "label": lambda r: (r.label, -r.count, r.value)}
    return sorted(rows, key=keys[sort])


def totals(rows: Iterable[ValueRow]) -> Counter[str]:
    """Records per label, counting every record of a value under the label most of them get."""
    out: Counter[str] = Counter()
    for row in rows:
        out[row.label] += row.count
    return out


def label_moves(before: Mapping[str, Mapping[str, Any]], rows: Iterable[ValueRow]) -> Counter[str]:
    """What moved since ``before`` (:func:`load_run`): records gained (+) or lost (−) per label,
    for the values whose label changed ("+412 print, −412 conflict")."""
    moves: Counter[str] = Counter()
    for row in rows:
        old = before.get(row.value)
        if old is not None and old["label"] != row.label:
            moves[row.label] += row.count
            moves[old["label"]] -= row.count
    return moves


def format_moves(moves: Mapping[str, int]) -> str:
    shown = sorted(((n, label) for label, n in moves.items() if n), key=lambda x: (-x[0], x[1]))
    return ", ".join(f"{'+' if n > 0 else '−'}{abs(n)} {label}" for n, label in shown)


def save_run(path: str | Path, field: str, definitions: Definitions, rows: Iterable[ValueRow]) -> None:
    """The labels by value of this run, for the next run's diff (a small JSON file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"field": field, "definitions_digest": definitions.digest,
            "values": {r.value: {"count": r.count, "label": r.label} for r in rows}}
    path.write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")


def load_run(path: str | Path) -> dict[str, dict[str, Any]] | None:
    """The labels by value of the last run (:func:`save_run`), or None if there was none."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))["values"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_csv(rows: Iterable[ValueRow], stream: TextIO) -> None:
    """The rows as CSV: value, records, label, share, why."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["value", "records", "label", "share", "why"])
    writer.writerows([r.value, r.count, r.label, r.share, r.why] for r in rows)
