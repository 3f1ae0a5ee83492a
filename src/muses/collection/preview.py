"""`muses import --preview`: what an import would make of an export, before anything is written.

The first records are read exactly as the import reads them (encoding, delimiter, reader) and
mapped exactly as it maps them, so the preview shows the columns the file has (with example
values and how often each is filled), which column each of our fields comes from and what it
becomes (object numbers, makers with roles, dates read as years), and the columns left in
``raw`` only, with the ``--map`` line that takes a column whose name says what it holds.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from muses.collection.catalog import LABELS, describe_years
from muses.collection.importers import (
    FIELDS,
    OPTIONAL_FIELDS,
    PRESETS,
    READERS,
    LineWarning,
    RecordError,
    build_mapping,
    convert_record,
    open_export,
    parse_splits,
)
from muses.collection.sources import Roots

PREVIEW_RECORDS = 1000  # records read: enough to see how often a column is filled
EXAMPLES = 3  # distinct example values shown per column
# Column names (lowercase, letters and digits only) that say which of our fields they hold, beyond
# our own names and the presets' columns: what museum exports and open-data dumps call them.
ALIASES = {
    "accessionnumber": "object_number", "accessionno": "object_number", "inventorynumber": "object_number",
    "inventoryno": "object_number", "objectnumber": "object_number", "objectno": "object_number",
    "registrationnumber": "object_number", "idno": "object_number",
    "artist": "maker", "artists": "maker", "creator": "maker", "creators": "maker", "author": "maker",
    "maker": "maker", "makers": "maker", "who": "maker", "artistrole": "maker_role", "role": "maker_role",
    "datetext": "date", "dated": "date", "displaydate": "date", "objectdate": "date", "productiondate": "date",
    "medium": "material", "materials": "material", "technique": "material",
    "creditline": "credit_line", "credit": "credit_line", "dimensions": "dimensions", "measurements": "dimensions",
    "department": "department", "collection": "department", "classification": "object_type",
    "objectname": "object_type", "objecttype": "object_type", "worktype": "object_type", "name": "title",
    "thumbnailurl": "image", "imageurl": "image", "primaryimage": "image", "image": "image", "photo": "image",
    "media": "image", "description": "description", "label": "description", "period": "period", "era": "period",
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def field_for(column: str) -> str | None:
    """Which of our fields a column's name says it holds, or None."""
    known = {_key(ours): ours for ours in FIELDS} | {
        _key(theirs): ours for preset in PRESETS.values() for ours, theirs in preset.items()} | ALIASES
    return known.get(_key(column))


@dataclass
class Column:
    name: str
    filled: int = 0  # records with a value in it
    examples: list[str] = field(default_factory=list)

    def add(self, value: Any) -> None:
        text = " ".join(str(value).split()) if value not in (None, "", [], {}) else ""
        if not text:
            return
        self.filled += 1
        if len(self.examples) < EXAMPLES and text not in self.examples:
            self.examples.append(text[:60])


@dataclass
class Preview:
    path: str
    format: str
    encoding: str
    delimiter: str | None
    records: int = 0  # records read (at most PREVIEW_RECORDS)
    more: bool = False  # the file holds more records than were read
    skipped: int = 0  # records the import would skip (no id, bad line)
    columns: list[Column] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    fields: dict[str, list[str]] = field(default_factory=dict)  # our field → example values as stored

    def source(self, ours: str) -> str | None:
        """The column our field is taken from, None when the file has no such column."""
        return self.mapping[ours] if any(c.name == self.mapping[ours] for c in self.columns) else None

    def unmapped(self) -> list[tuple[Column, str | None]]:
        """Columns no field takes, each with the field its name suggests (None: kept in raw only)."""
        taken = set(self.mapping.values())
        free = [ours for ours in FIELDS if self.source(ours) is None]
        out = []
        for column in self.columns:
            if column.name not in taken:
                ours = field_for(column.name)
                out.append((column, ours if ours in free else None))
        return out

    def fitting_preset(self) -> str | None:
        """A preset taking more of the file's columns than the mapping does (at least half of its own)."""
        names = {c.name for c in self.columns}
        taken = len(names & set(self.mapping.values()))
        fits = {name: len(names & set(preset.values())) for name, preset in PRESETS.items()}
        best = max(fits, key=fits.__getitem__)
        return best if fits[best] > taken and fits[best] >= len(PRESETS[best]) / 2 else None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "encoding": self.encoding, "delimiter": self.delimiter,
                "records": self.records, "more": self.more, "skipped": self.skipped,
                "columns": [vars(c) for c in self.columns], "preset": self.fitting_preset(),
                "fields": {ours: {"column": self.source(ours), "examples": self.fields.get(ours, [])}
                           for ours in FIELDS},
                "unmapped": [{"column": c.name, "field": ours, "map": map_line(ours, c.name) if ours else None}
                             for c, ours in self.unmapped()]}


def map_line(ours: str, column: str) -> str:
    return f'--map {ours}="{column}"' if re.search(r"[\s\"']", column) else f"--map {ours}={column}"


def _stored_examples(fields: dict[str, Any], ours: str) -> str:
    """One record's value of our field as the import stores it."""
    if ours == "maker":
        return "; ".join(f"{m['name']} ({m['role']})" if m["role"] else m["name"] for m in fields["makers"])
    if ours == "date" and fields["date"]:
        years = describe_years(fields["date_earliest"], fields["date_latest"])
        return f"{fields['date']} ({years or 'no year read'})"
    value = fields.get(ours)
    return "; ".join(value) if isinstance(value, list) else str(value or "")


def preview_import(path: str | Path, *, format: str | None = None, mapping: Mapping[str, str] | None = None,
                   preset: str | None = None, encoding: str | None = None, delimiter: str | None = None,
                   splits: Mapping[str, str] | Iterable[str] = (), records: int = PREVIEW_RECORDS) -> Preview:
    """The first ``records`` records of ``path`` as `muses import` would read and map them."""
    path, fmt, options = open_export(path, format, encoding=encoding, delimiter=delimiter)
    mapping = dict(mapping) if mapping is not None else build_mapping(preset)
    splits = parse_splits(splits)
    base_dir = path.resolve().parent
    roots = Roots.of([base_dir])
    preview = Preview(str(path), fmt, options.encoding, options.delimiter if fmt == "csv" else None,
                      mapping=mapping)
    columns: dict[str, Column] = {}
    examples: dict[str, list[str]] = {ours: [] for ours in FIELDS}
    rows = (row for row in READERS[fmt](path, options) if not isinstance(row[1], LineWarning))
    for _, record in islice(rows, records):
        preview.records += 1
        if isinstance(record, RecordError):
            preview.skipped += 1
            continue
        for name, value in record.items():
            columns.setdefault(name, Column(name)).add(value)
        try:
            data = convert_record(record, mapping, base_dir=base_dir, roots=roots, splits=splits)
        except RecordError:
            preview.skipped += 1
            continue
        stored = {**data.fields, "id": data.id, "image": data.images}
        for ours in examples:
            text = _stored_examples(stored, ours) if ours != "maker_role" else ""
            if text and len(examples[ours]) < EXAMPLES and text not in examples[ours]:
                examples[ours].append(text[:80])
    preview.more = next(rows, None) is not None
    preview.columns = list(columns.values())
    preview.fields = examples
    return preview


def describe(preview: Preview) -> list[str]:
    """The preview as the lines `muses import --preview` prints."""
    labels = {**LABELS, "id": "Id", "image": "Photo", "maker_role": "Maker role"}
    count = f"the first {preview.records} records" if preview.more else f"all {preview.records} records"
    lines = [f"columns in {count} (filled, examples):"]
    width = max((len(c.name) for c in preview.columns), default=0)
    for c in preview.columns:
        lines.append(f"  {c.name:<{width}}  {c.filled:>6}  {' | '.join(c.examples)}")
    lines.append("our fields <- the column, and values as they would be stored:")
    for ours in FIELDS:
        column = preview.source(ours)
        if column is None and ours in OPTIONAL_FIELDS and preview.mapping[ours] == ours:
            if ours == "object_number":
                lines.append(f"  {labels[ours]:<15} none: the id is the object number")
            continue
        where = repr(column) if column else f"none (no column {preview.mapping[ours]!r})"
        lines.append(f"  {labels[ours]:<15} <- {where}  {' | '.join(preview.fields.get(ours, []))}".rstrip())
    unmapped = preview.unmapped()
    if unmapped:
        lines.append("columns left unmapped (kept in raw only):")
        for column, ours in unmapped:
            lines.append(f"  {column.name:<{width}}" + (f"  take it with {map_line(ours, column.name)}" if ours else ""))
    if (preset := preview.fitting_preset()) is not None:
        lines.append(f"the columns are those of the {preset!r} preset: add --preset {preset}")
    if preview.skipped:
        lines.append(f"{preview.skipped} of these records would be skipped (no id, or a bad line)")
    return lines
