"""Import a collection export (JSON Lines, JSON or CSV) into the store.

Readers live in a small registry keyed by format name; each yields ``(line, record)`` pairs,
or ``(line, RecordError)`` for a line it cannot parse, so one bad line never stops an import.
What a spreadsheet leaves unsaid is found out first: the text encoding (UTF-8, else Excel's
cp1252) and a CSV's delimiter (``,`` ``;`` tab ``|``). A field mapping (optionally from a
preset) turns the export's keys into our fields; ``splits`` cut multi-value cells. Records
are written in batches, each batch one transaction: a crash leaves every earlier batch saved
and the failing one not started, and re-importing the same file updates records by id.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import functools
import io
import json
import re
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from muses.collection import lido
from muses.collection.catalog import maker_text, makers, parse_date
from muses.collection.jsonstream import JsonShapeError, Parsed, TooLong, array_elements, bounded_lines
from muses.collection.sources import Refused, Roots, admit
from muses.collection.store import Image, Item, Store
from muses.errors import MusesError, RunFailed

#: Our fields: what a mapping may name on its left-hand side.
FIELDS = ("id", "object_number", "title", "object_type", "maker", "maker_role", "date", "material", "period",
          "dimensions", "credit_line", "department", "description", "image")
TEXT_FIELDS = ("title", "material", "period", "description", "date", "dimensions", "credit_line", "department")
LIST_FIELDS = ("object_type", "image", "maker", "maker_role")  # the fields that hold several values, so the ones --split may cut
# Fields a record lacks without a warning unless the mapping names a column of another name for them:
# most exports have no credit line or department, and saying so on every import would drown the rest.
OPTIONAL_FIELDS = ("object_number", "maker", "maker_role", "date", "dimensions", "credit_line", "department")

PRESETS: dict[str, dict[str, str]] = {
    # The Met's 2013 "scrAPI" JSON records (the met-sample): `what` is the facet list, `id` the
    # Met's internal number, `accession number` the one on the object.
    "met-scrapi": {
        "id": "id", "object_number": "accession number", "title": "title", "object_type": "what",
        "maker": "who", "date": "date", "period": "when", "material": "medium", "dimensions": "dimensions",
        "credit_line": "credit line", "description": "description", "image": "image",
    },
    # The column names of a TMS (Gallery Systems) object export.
    "tms": {
        "id": "ObjectID", "object_number": "ObjectNumber", "title": "Title", "object_type": "Classification",
        "maker": "DisplayName", "maker_role": "Role", "date": "Dated", "period": "Period", "material": "Medium",
        "dimensions": "Dimensions", "credit_line": "CreditLine", "department": "Department",
        "description": "Description", "image": "ImageURL",
    },
    # Axiell Collections / Adlib: the CSV export's field names.
    "axiell": {
        "id": "priref", "object_number": "object_number", "title": "title", "object_type": "object_name",
        "maker": "creator", "maker_role": "creator.role", "date": "production.date.start", "period": "period",
        "material": "material", "dimensions": "dimension.free", "credit_line": "credit_line",
        "department": "collection", "description": "description", "image": "reproduction.reference",
    },
    # CollectiveAccess: the bundle names its exports use as column headers.
    "collectiveaccess": {
        "id": "ca_objects.object_id", "object_number": "ca_objects.idno", "title": "ca_objects.preferred_labels",
        "object_type": "ca_objects.type_id", "maker": "ca_entities.preferred_labels",
        "maker_role": "ca_entities.relationship_type", "date": "ca_objects.date", "material": "ca_objects.medium",
        "dimensions": "ca_objects.dimensions", "credit_line": "ca_objects.credit_line",
        "department": "ca_objects.department", "description": "ca_objects.description",
        "image": "ca_object_representations.media",
    },
}
MAX_OBJECT_NUMBER = 500  # characters; real ones have a few dozen at most
MAX_DEPTH = 32  # nesting levels a record may have; real exports use two or three
# One line (JSONL, CSV) or record (JSON) longer than this is skipped unread, so it never costs
# memory or its neighbours (a 1 GB line once took 2.9 GB and its whole batch); a long museum
# description is a few thousand characters.
MAX_RECORD_CHARS = 10_000_000
_LONG = "\x00muses: too long\x00"
_LONG_LINE = re.compile(re.escape(_LONG) + r"(\d+)")
MISSING_IDS = ("nan", "null", "none", "undefined")  # what spreadsheets and dataframes write for "no value"
AUTO_ENCODINGS = ("utf-8-sig", "cp1252")  # tried in turn: UTF-8 (a byte-order mark skipped), then Excel on Windows
DELIMITERS = (",", ";", "\t", "|")  # what CSV exports use; the first wins a tie
SNIFF_CHARS = 1 << 16  # of the file's start, enough for a header and many rows
MULTI_VALUE_SEPARATORS = (",", ";", "|")
MAKER_SEPARATORS = (";", "|")


class ImportFormatError(MusesError):
    """The file, its format or the field mapping cannot be used at all (nothing was imported)."""


class RecordError(MusesError):
    """One record cannot be imported; the message says why."""


class ImportStopped(RunFailed):
    """The store refused a batch: the batches before it are saved, this one is not."""


@dataclass
class LineWarning:
    """Something a reader noticed that does not stop a line from importing."""

    text: str


@dataclass(frozen=True)
class ReadOptions:
    """How to read the file: its text encoding (a Python codec name) and, for CSV, the delimiter."""

    encoding: str = "utf-8-sig"
    delimiter: str = ","


Row = "dict[str, Any] | RecordError | LineWarning"
Reader = Callable[[Path, ReadOptions], Iterator[tuple[int, Row]]]
READERS: dict[str, Reader] = {}
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "csv", ".xml": "lido"}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Add a reader for format ``name``: a function ``(path, options) -> iterator of (line, record)``."""

    def add(reader: Reader) -> Reader:
        READERS[name] = reader
        return reader

    return add


def available_formats() -> list[str]:
    return sorted(READERS)


def _parse_record(text: str) -> dict[str, Any] | RecordError:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return RecordError(f"bad JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return RecordError(f"nested too deeply (more than {MAX_DEPTH} levels)")
    except ValueError:  # Python's bound on the digits of an integer it converts
        return RecordError(f"holds a number of more than {sys.get_int_max_str_digits()} digits")
    return _as_record(record)


def _as_record(value: Any) -> dict[str, Any] | RecordError:
    return value if isinstance(value, dict) else RecordError(f"expected a JSON object, got {type(value).__name__}")


def _too_long(what: str, chars: int) -> RecordError:
    return RecordError(f"{what} of {chars:,} characters, longer than the {MAX_RECORD_CHARS:,} a record may have")


@register_reader("jsonl")
def read_jsonl(path: Path, options: ReadOptions) -> Iterator[tuple[int, Row]]:
    with path.open(encoding=options.encoding) as fh:
        for line_no, line in enumerate(bounded_lines(fh, MAX_RECORD_CHARS), start=1):
            if isinstance(line, TooLong):
                yield line_no, _too_long("a line", line.chars)
            elif line.strip():
                yield line_no, _parse_record(line)


@register_reader("json")
def read_json(path: Path, options: ReadOptions) -> Iterator[tuple[int, Row]]:
    """A JSON array of objects (or ``{"records": [...]}``), read one record at a time; 'line' is
    the record's position. Where the text stops being JSON, the records before it are read and
    the rest is listed as one skipped position."""
    number = 0
    with path.open(encoding=options.encoding) as fh:
        try:
            for number, element in enumerate(array_elements(fh, MAX_RECORD_CHARS), start=1):
                if isinstance(element, TooLong):
                    yield number, _too_long("a record", element.chars)
                elif isinstance(element, Parsed):
                    yield number, _as_record(element.value)
                else:
                    yield number, _parse_record(element)
        except JsonShapeError as exc:
            where = f"bad JSON at line {_line_of(path, options.encoding, exc.offset)}: {exc}"
            if number == 0:
                raise ImportFormatError(f"{path}: {where}") from exc
            yield number + 1, RecordError(f"{where}; the records after it were not read")


def _line_of(path: Path, encoding: str, offset: int) -> int:
    """The line of character ``offset`` of the file."""
    line, left = 1, offset
    with path.open(encoding=encoding) as fh:
        while left > 0 and (chunk := fh.read(min(left, 1 << 20))):
            line, left = line + chunk.count("\n"), left - len(chunk)
    return line


@register_reader("lido")
def read_lido(path: Path, options: ReadOptions) -> Iterator[tuple[int, Row]]:
    """LIDO XML (:mod:`muses.collection.lido`): records with our field names; 'line' is the record's position."""
    try:
        yield from lido.read_lido(path)
    except lido.NotLido as exc:
        raise ImportFormatError(str(exc)) from exc


@register_reader("csv")
def read_csv(path: Path, options: ReadOptions) -> Iterator[tuple[int, Row]]:
    """CSV with a header row, cells separated by ``options.delimiter``; 'line' is the file line."""
    csv.field_size_limit(MAX_RECORD_CHARS)

    def lines(fh) -> Iterator[str]:
        # A line over the bound is replaced by a marker, so the row it was (part of) is refused
        # below with its own line number; the marker's NUL could never import anyway.
        for line in bounded_lines(fh, MAX_RECORD_CHARS):
            yield f"{_LONG}{line.chars}{_LONG}\n" if isinstance(line, TooLong) else line

    with path.open(encoding=options.encoding, newline="") as fh:
        reader = csv.DictReader(lines(fh), delimiter=options.delimiter)
        if not reader.fieldnames:
            raise ImportFormatError(f"{path}: empty CSV file (a header row is needed)")
        if duplicated := _duplicate_columns(reader.fieldnames):
            yield 1, LineWarning(f"the header repeats the column(s) {', '.join(map(repr, duplicated))}; "
                                 "the last column of each name is used, the earlier ones are ignored")
        while True:
            line_no = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield line_no, RecordError(f"bad CSV: {exc}")
                continue
            if long := next((m for v in row.values() if isinstance(v, str) and (m := _LONG_LINE.search(v))), None):
                yield line_no, _too_long("a line", int(long.group(1)))
                continue
            if None in row:  # more cells than header columns
                yield line_no, RecordError(_too_many_cells(len(reader.fieldnames) + len(row[None]),
                                                           len(reader.fieldnames), options.delimiter))
                continue
            if swallowed := _swallowed_lines(row, reader, line_no):
                yield line_no, LineWarning(swallowed)
            yield line_no, row


def _too_many_cells(cells: int, columns: int, delimiter: str) -> str:
    hint = (f" (with cells separated by {describe_delimiter(delimiter)}: if the file separates them by "
            "another character, pass it with --delimiter)") if columns == 1 else ""
    return f"{cells} cells, the header has {columns}{hint}"


def describe_delimiter(delimiter: str) -> str:
    return "tabs" if delimiter == "\t" else repr(delimiter)


def sniff_delimiter(path: Path, encoding: str) -> str:
    """The delimiter that cuts the header into the most columns that the rows below it repeat.

    Scored on the file's start: rows with as many cells as the header first, then the header's
    width; a file no candidate splits is one column, read with a comma.
    """
    with path.open(encoding=encoding, newline="") as fh:
        sample = fh.read(SNIFF_CHARS)
        complete = not fh.read(1)
    lines = sample if complete else sample[:sample.rfind("\n") + 1]  # a cut-off last row would not count
    scores = {}
    for delimiter in DELIMITERS:
        try:
            rows = [row for row in csv.reader(io.StringIO(lines, newline=""), delimiter=delimiter) if row]
        except csv.Error:  # a sample this delimiter cannot even read scores nothing
            continue
        width = len(rows[0]) if rows else 0
        if width > 1:
            scores[delimiter] = (sum(len(row) == width for row in rows[1:]), width)
    return max(scores, key=scores.__getitem__) if scores else ","


def _duplicate_columns(names: list[str]) -> list[str]:
    seen: set[str] = set()
    return list(dict.fromkeys(name for name in names if name in seen or seen.add(name)))


def _shape(text: str) -> str:
    """A cell's shape: runs of digits and of letters each one symbol ("1985.141" → "0.0", "P012" → "a0")."""
    return re.sub(r"\d+", "0", re.sub(r"[^\W\d_]+", "a", text.strip()))


def _swallowed_lines(row: dict[str, Any], reader: csv.DictReader, line_no: int) -> str:
    """A warning when a quoted cell holds lines that look like records of their own: a quote that
    was never closed takes every following line into one cell. A line looks like a record when it
    has a cell for every column and starts with a value shaped like this row's first one (an id):
    a properly quoted list of names over many lines has the commas, not the id."""
    if reader.line_num == line_no:  # the record took one line: no cell holds a line break
        return ""
    delimiter = reader.reader.dialect.delimiter
    columns = len(reader.fieldnames or ())
    first = _shape((str(next(iter(row.values()), None) or "").splitlines() or [""])[0])
    for name, value in row.items():
        lines = value.splitlines()[1:] if isinstance(value, str) else []
        if columns > 1 and first and any(line.count(delimiter) >= columns - 1 and _shape(
                next(csv.reader([line], delimiter=delimiter), [""])[0]) == first for line in lines):
            return (f"the cell {name!r} runs over lines {line_no}-{reader.line_num} and holds lines that look "
                    "like records: is a quote (\") left open on this line? Those records were not imported "
                    "on their own")
    return ""


def _first_bad_line(path: Path, encoding: str) -> tuple[int, int] | None:
    """(line, byte) of the first bytes that are not ``encoding`` text, or None when all are."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return line + exc.object.count(b"\n", 0, exc.start), exc.object[exc.start]
            line += chunk.count(b"\n")
    return None


def check_encoding(path: Path, encoding: str) -> None:
    """Refuse a file that is not text in ``encoding`` before anything is imported, naming the line."""
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise ImportFormatError(f"unknown encoding {encoding!r}; e.g. utf-8, cp1252, latin-1") from exc
    if bad := _first_bad_line(path, encoding):
        raise ImportFormatError(
            f"{path}: line {bad[0]} is not {encoding} text (byte 0x{bad[1]:02x}); pass the file's encoding "
            "with --encoding, e.g. cp1252 for a CSV saved by Excel on Windows")


def detect_encoding(path: Path) -> str:
    """UTF-8 when the whole file is UTF-8, else cp1252 (Excel on Windows) when it is that.

    UTF-8 is tried strictly first: text in any other encoding with a letter beyond ASCII is
    almost never valid UTF-8, while any byte sequence but five is valid cp1252.
    """
    bad = None
    for encoding in AUTO_ENCODINGS:
        if not (bad := _first_bad_line(path, encoding)):
            return encoding
    raise ImportFormatError(
        f"{path}: line {bad[0]} is neither UTF-8 nor cp1252 text (byte 0x{bad[1]:02x}); pass the file's "
        "encoding with --encoding, e.g. latin-1, mac-roman or utf-16")


def describe_encoding(encoding: str) -> str:
    return {"utf-8-sig": "UTF-8", "cp1252": "cp1252 (Excel on Windows)"}.get(encoding, encoding)


def guess_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ImportFormatError(f"cannot tell the format of {path} from its extension; "
                                f"pass --format ({', '.join(available_formats())})")
    return EXTENSIONS[suffix]


def parse_splits(splits: Mapping[str, str] | Iterable[str] = ()) -> dict[str, str]:
    """Our list field → the separator that cuts its cells into values (the CLI's ``--split
    object_type=", "``). Values are trimmed, so ``,`` and ``, `` cut the same way."""
    pairs = splits if isinstance(splits, Mapping) else dict(_split_pair(text) for text in splits)
    for ours, separator in pairs.items():
        if ours not in LIST_FIELDS:
            raise ImportFormatError(f"cannot split {ours!r}: only {', '.join(LIST_FIELDS[:-1])} and {LIST_FIELDS[-1]} "
                                   "hold several values")
        if not separator:
            raise ImportFormatError(f"--split {ours}= needs a separator, e.g. --split {ours}=\", \"")
    return dict(pairs)


def _split_pair(text: str) -> tuple[str, str]:
    ours, sep, separator = text.partition("=")
    if not sep:
        raise ImportFormatError(f"bad split {text!r}: write field=separator, e.g. --split object_type=\", \"")
    return ours.strip(), separator


def build_mapping(preset: str | None = None, overrides: Mapping[str, str] | Iterable[str] = ()) -> dict[str, str]:
    """Our field → the export's key: identity, then the preset, then ``overrides``.

    ``overrides`` is a mapping or ``our=theirs`` strings (the CLI's ``--map``).
    """
    mapping = {f: f for f in FIELDS}
    if preset is not None:
        if preset not in PRESETS:
            raise ImportFormatError(f"unknown preset {preset!r}; available: {', '.join(sorted(PRESETS))}")
        mapping.update(PRESETS[preset])
    if not isinstance(overrides, Mapping):
        pairs = {}
        for text in overrides:
            ours, sep, theirs = text.partition("=")
            if not sep or not ours.strip() or not theirs.strip():
                raise ImportFormatError(f"bad mapping {text!r}: write our_field=their_field, e.g. title=Title")
            pairs[ours.strip()] = theirs.strip()
        overrides = pairs
    for ours, theirs in overrides.items():
        if ours not in FIELDS:
            raise ImportFormatError(f"cannot map to {ours!r}: our fields are {', '.join(FIELDS)}")
        mapping[ours] = theirs
    return mapping


# -- one record -----------------------------------------------------------------------------
def _text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list):
        return "; ".join(t for t in (_text(name, v) for v in value) if t)
    raise RecordError(f"{name}: expected text, got a JSON object")


def _texts(name: str, value: Any, separator: str | None = None) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    texts = (_text(name, v) for v in items)
    if separator:
        texts = (part.strip() for t in texts for part in t.split(separator.strip() or separator))
    return [t for t in texts if t]


def _depth_ok(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` nests at most :data:`MAX_DEPTH` levels: level by level, containers only,
    without recursion (so no record can exhaust the stack)."""
    level: list[Any] = [record]
    for _ in range(MAX_DEPTH):
        level = [child for value in level for child in (value.values() if isinstance(value, dict) else value)
                 if isinstance(child, dict | list)]
        if not level:
            return True
    return False


def _holds_nul(record: Mapping[str, Any]) -> str | None:
    """The first key whose key or text holds a NUL character (PostgreSQL refuses it in text, and
    in an id it would make two ids look alike), or None."""
    for key, value in record.items():
        level = [key, value]
        while level:
            if any(isinstance(v, str) and "\x00" in v for v in level):
                return ascii(key)
            level = [child for v in level if isinstance(v, dict | list)
                     for child in (list(v.keys()) + list(v.values()) if isinstance(v, dict) else v)]
    return None


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_structure(record: Mapping[str, Any]) -> None:
    """Refuse what the store cannot hold: nesting deeper than :data:`MAX_DEPTH`, a NUL character,
    and text with a lone UTF-16 surrogate (JSON allows ``"\\ud800"``; UTF-8 does not)."""
    if not _depth_ok(record):
        raise RecordError(f"nested more than {MAX_DEPTH} levels deep")
    if where := _holds_nul(record):
        raise RecordError(f"{where}: the text holds a NUL character (\\x00); remove it from the export")
    if not _encodable(record):
        where = next((ascii(key) for key, value in record.items() if not _encodable([key, value])), "a key")
        # ascii(): the message must not carry the bad character itself
        raise RecordError(f"{where}: the text holds an invalid character (a lone UTF-16 surrogate such as "
                          "\\ud800); fix it in the export")


def record_id(value: Any, key: str) -> str:
    """An object number: text or a whole number; never empty, a truth value, a float or a list."""
    hint = f"(key {key!r}; map another key with --map id=KEY)"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RecordError(f"missing id {hint}")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError(f"id {json.dumps(value)[:40]} is not an object number (text or a whole number) {hint}")
    text = str(value).strip()
    if text.lower() in MISSING_IDS:
        raise RecordError(f"id {text!r} means 'no value', not an object number {hint}")
    return text


@dataclass
class ItemData:
    """A record turned into our fields, ready to write."""

    id: str
    fields: dict[str, Any]
    images: list[str]
    refused: list[str] = field(default_factory=list)  # image references not admitted, with the reason


def _admit_images(refs: list[str], base_dir: Path, roots: Roots) -> tuple[list[str], list[str]]:
    admitted, refused = [], []
    for ref in refs:
        try:
            admitted.append(admit(ref, base_dir=base_dir, roots=roots))
        except Refused as exc:
            refused.append(str(exc))
    return list(dict.fromkeys(admitted)), refused  # the same photo named twice is one image


def _maker_values(value: Any, separator: str | None) -> list[Any]:
    """A maker cell's values: objects with a name and a role kept whole, texts cut at ``separator``."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    found: list[Any] = []
    for v in items:
        found += [v] if isinstance(v, dict) else _texts("maker", v, separator)
    return found


def catalog_fields(record: Mapping[str, Any], mapping: Mapping[str, str], item_id: str,
                   splits: Mapping[str, str]) -> dict[str, Any]:
    """The object number (the id when the record has none), the makers and the date's years."""
    found = makers(_maker_values(record.get(mapping["maker"]), splits.get("maker")),
                   _texts("maker_role", record.get(mapping["maker_role"]), splits.get("maker_role")))
    date = _text("date", record.get(mapping["date"]))
    number = _text("object_number", record.get(mapping["object_number"]))
    if len(number) > MAX_OBJECT_NUMBER:  # an index entry has a size limit (PostgreSQL: 2,704 bytes)
        raise RecordError(f"the object number ({mapping['object_number']!r}) is {len(number)} characters long, "
                          f"more than {MAX_OBJECT_NUMBER}: is it the right column? Map another with "
                          "--map object_number=KEY")
    return {"object_number": number or item_id,
            "makers": found, "maker": maker_text(found), "date": date, **dict(zip(
                ("date_earliest", "date_latest"), parse_date(date))),
            **{name: _text(name, record.get(mapping[name])) for name in ("dimensions", "credit_line", "department")}}


def known_mapping(record: Mapping[str, Any]) -> dict[str, str]:
    """For a record imported before muses had catalog fields: each field from the first key the
    record has among its own name and the presets' names for it (`muses db upgrade` fills them so)."""
    return {ours: next((key for key in keys if key in record), ours) for ours, keys in _known_keys().items()}


@functools.cache
def _known_keys() -> dict[str, list[str]]:
    """Each field's names: its own, then the presets' (in their order), once each."""
    mappings = [build_mapping(), *(build_mapping(name) for name in PRESETS)]
    return {ours: list(dict.fromkeys(m[ours] for m in mappings)) for ours in FIELDS}


def convert_record(record: Mapping[str, Any], mapping: Mapping[str, str], *, base_dir: Path,
                   roots: Roots | None = None, source: str = "", splits: Mapping[str, str] | None = None) -> ItemData:
    """Map one export record to our fields; raises RecordError when it cannot be imported.

    ``splits``: our list field → the separator its cells are cut at (see :func:`parse_splits`).

    Image references outside ``roots`` (default: ``base_dir`` alone) are left out and listed in
    ``refused``; the record itself still imports, its text being worth keeping.
    """
    check_structure(record)
    item_id = record_id(record.get(mapping["id"]), mapping["id"])
    splits = splits or {}
    fields: dict[str, Any] = {name: _text(name, record.get(mapping[name])) for name in TEXT_FIELDS}
    fields.update(catalog_fields(record, mapping, item_id, splits))
    fields["object_type"] = _texts("object_type", record.get(mapping["object_type"]), splits.get("object_type"))
    fields["source"] = source
    fields["raw"] = dict(record)
    images, refused = _admit_images(_texts("image", record.get(mapping["image"]), splits.get("image")), base_dir,
                                    roots or Roots.of([base_dir]))
    return ItemData(item_id, fields, images, refused)


# -- the import -----------------------------------------------------------------------------
@dataclass
class LineNote:
    line: int
    reason: str


@dataclass
class MultiValued:
    """A field whose cells look like lists of values: a separator in most of them."""

    field: str
    key: str  # the export's key
    separator: str
    cells: int  # non-empty text cells
    with_separator: int

    @property
    def suggestion(self) -> str:
        separator = f"{self.separator} " if self.separator == "," else self.separator
        return f'--split {self.field}="{separator}"'


class CellCounter:
    """Counts, per list field left unsplit, the text cells holding each separator."""

    def __init__(self, mapping: Mapping[str, str], splits: Mapping[str, str]):
        self.keys = {ours: mapping[ours] for ours in LIST_FIELDS if ours not in splits}
        self.cells = dict.fromkeys(self.keys, 0)
        # a maker's comma is most often "Surname, Forename" (or "Unknown, French"), not a second maker
        self.seen = {ours: dict.fromkeys(MAKER_SEPARATORS if ours.startswith("maker") else MULTI_VALUE_SEPARATORS, 0)
                     for ours in self.keys}

    def add(self, record: Mapping[str, Any]) -> None:
        for ours, key in self.keys.items():
            value = record.get(key)
            if isinstance(value, str) and value.strip():
                self.cells[ours] += 1
                for separator in self.seen[ours]:
                    self.seen[ours][separator] += separator in value

    def multi_valued(self) -> list[MultiValued]:
        """Fields with one separator in more than half of their cells."""
        found = []
        for ours, key in self.keys.items():
            separator, n = max(self.seen[ours].items(), key=lambda pair: pair[1])
            if n > self.cells[ours] / 2:
                found.append(MultiValued(ours, key, separator, self.cells[ours], n))
        return found


@dataclass
class ImportReport:
    path: str
    format: str
    encoding: str = "utf-8-sig"  # the codec the file was read with
    delimiter: str | None = None  # CSV only
    splits: dict[str, str] = field(default_factory=dict)
    new: int = 0
    updated: int = 0
    unchanged: int = 0  # already stored exactly so
    skipped: list[LineNote] = field(default_factory=list)  # not imported
    refused_images: list[LineNote] = field(default_factory=list)  # imported without these photos
    warnings: list[LineNote] = field(default_factory=list)  # imported, but look at these lines
    duplicates: list[LineNote] = field(default_factory=list)  # an id seen earlier in the file: replaces it
    images_added: int = 0
    seconds: float = 0.0
    unmapped: dict[str, str] = field(default_factory=dict)  # our field → its key, found in no record
    columns: dict[str, str | None] = field(default_factory=dict)  # our field → the key it came from, None: none
    multi_valued: list[MultiValued] = field(default_factory=list)  # unsplit fields that look like lists

    @property
    def imported(self) -> int:
        return self.new + self.updated + self.unchanged

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "encoding": self.encoding, "delimiter": self.delimiter,
                "splits": self.splits, "new": self.new, "updated": self.updated,
                "unchanged": self.unchanged,
                "skipped": [vars(s) for s in self.skipped], "duplicates": [vars(d) for d in self.duplicates],
                "refused_images": [vars(r) for r in self.refused_images], "warnings": [vars(w) for w in self.warnings],
                "images_added": self.images_added, "seconds": round(self.seconds, 3), "unmapped": self.unmapped,
                "columns": self.columns,
                "multi_valued": [{**vars(m), "suggestion": m.suggestion} for m in self.multi_valued]}


def _write_batch(store: Store, batch: dict[str, ItemData], report: ImportReport) -> None:
    """Insert or update one batch in a single transaction, with bulk statements (no query per record).

    A record whose fields and photos are exactly as stored is left alone (counted unchanged, its
    ``updated_at`` kept, so the search and browse indexes have nothing to redo). A photo still
    listed keeps its checked state (status, checksum, ML-size copy); new ones start pending;
    photos no longer listed are removed.
    """
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # the search index refreshes from this
    names = list(next(iter(batch.values())).fields)
    with store.transaction() as s:
        stored = {row[0]: dict(zip(names, row[1:])) for row in s.execute(
            select(Item.id, *(getattr(Item, name) for name in names)).where(Item.id.in_(list(batch))))}
        before: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for image_id, item_id, original in s.execute(
                select(Image.id, Image.item_id, Image.original).where(Image.item_id.in_(list(stored)))
                .order_by(Image.item_id, Image.position)):
            before[item_id].append((image_id, original))
        same_photos = {item_id for item_id, data in batch.items()
                       if [original for _, original in before.get(item_id, [])] == data.images}
        unchanged = {item_id for item_id in stored if item_id in same_photos and stored[item_id] == batch[item_id].fields}
        rows = [{"id": item_id, **data.fields, "updated_at": now} for item_id, data in batch.items()
                if item_id not in unchanged]
        new_rows = [row for row in rows if row["id"] not in stored]
        if new_rows:
            s.execute(insert(Item), new_rows)
        if changed := [row for row in rows if row["id"] in stored]:
            s.execute(update(Item), changed)
        added, moved, removed = [], [], []
        for item_id, data in batch.items():
            if item_id in same_photos:
                continue
            old = before.get(item_id, [])
            kept = {original: image_id for image_id, original in old}
            removed += [image_id for image_id, original in old if original not in data.images]
            for position, original in enumerate(data.images):
                if original in kept:
                    moved.append({"id": kept[original], "position": position})
                else:
                    added.append({"item_id": item_id, "position": position, "original": original})
        if removed:
            s.execute(delete(Image).where(Image.id.in_(removed)))
        if moved:
            s.execute(update(Image), moved)
        if added:
            s.execute(insert(Image), added)
    report.new += len(new_rows)
    report.updated += len(changed)
    report.unchanged += len(unchanged)
    report.images_added += len(added)


def count_lines(path: Path) -> int:
    """The file's lines as the readers number them: a last line without a line break counts too."""
    lines, last = 0, b"\n"
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            lines, last = lines + chunk.count(b"\n"), chunk[-1:]
    return lines + (last != b"\n")


def read_options(path: Path, fmt: str, *, encoding: str | None = None, delimiter: str | None = None) -> ReadOptions:
    """The given encoding (checked) or the detected one; for CSV the given delimiter, a TSV file's
    tab, or the sniffed one."""
    if encoding:
        check_encoding(path, encoding)
    else:
        encoding = detect_encoding(path)
    if delimiter is not None and len(delimiter) != 1:
        raise ImportFormatError(f"--delimiter must be one character (or 'tab'), got {delimiter!r}")
    if fmt != "csv":
        return ReadOptions(encoding=encoding)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(path, encoding)
    return ReadOptions(encoding=encoding, delimiter=delimiter)


class FirstLines:
    """Each id's first line in the file, kept in a private temporary SQLite file (deleted when
    closed) rather than in memory: a million ids would otherwise stay for the whole import."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("")  # "": a temporary file of its own, never shared
        self._db.execute("CREATE TABLE first (id TEXT PRIMARY KEY, line INTEGER NOT NULL)")

    def earlier(self, item_id: str, line: int) -> int | None:
        """The line ``item_id`` was first seen on; None when this is its first (then noted)."""
        row = self._db.execute("SELECT line FROM first WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            self._db.execute("INSERT INTO first (id, line) VALUES (?, ?)", (item_id, line))
            return None
        return row[0]

    def close(self) -> None:
        self._db.close()


def open_export(path: str | Path, format: str | None, *, encoding: str | None = None,
                delimiter: str | None = None) -> tuple[Path, str, ReadOptions]:
    """The export file, its format (given, else from the extension) and how to read it."""
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file")
    fmt = format or guess_format(path)
    if fmt not in READERS:
        raise ImportFormatError(f"unknown format {fmt!r}; available: {', '.join(available_formats())}")
    return path, fmt, read_options(path, fmt, encoding=encoding, delimiter=delimiter)


def import_records(store: Store, path: str | Path, *, format: str | None = None,
                   mapping: Mapping[str, str] | None = None, preset: str | None = None,
                   source: str | None = None, encoding: str | None = None, delimiter: str | None = None,
                   splits: Mapping[str, str] | None = None, batch_size: int = 500,
                   roots: Iterable[str | Path] = (),
                   progress: Callable[[int, int | None], None] | None = None) -> ImportReport:
    """Import (or update, by id) every record of ``path`` into ``store``.

    ``format``: a registered reader name (see :func:`available_formats`), guessed from the
    extension when None. ``mapping``: our field → the export's key (see :func:`build_mapping`);
    ``preset`` is used when no mapping is given. ``source``: stored on every item (default: the
    file name). ``encoding``: of the file; None detects UTF-8 (a byte-order mark skipped) or
    cp1252. ``delimiter``: of a CSV file; None sniffs it. ``splits``: our list field → the
    separator its multi-value cells are cut at. ``roots``: folders image references may point
    into besides the file's own folder; other references are left out and listed in
    ``report.refused_images``. Malformed records are listed in ``report.skipped`` with their line
    numbers, and lines worth a look in ``report.warnings``. ``progress(done, total)`` is called
    after each batch with the lines read so far and the file's lines (None for JSON).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    path, fmt, options = open_export(path, format, encoding=encoding, delimiter=delimiter)
    mapping = dict(mapping) if mapping is not None else build_mapping(preset)
    splits = parse_splits(splits or {})
    base_dir = path.resolve().parent
    try:
        allowed = Roots.of([base_dir, *roots])
    except Refused as exc:
        raise ImportFormatError(f"{exc}; pass an existing folder to --image-root") from exc
    source = path.name if source is None else source
    report = ImportReport(path=str(path), format=fmt, encoding=options.encoding,
                          delimiter=options.delimiter if fmt == "csv" else None, splits=splits)
    total = None if fmt == "json" else count_lines(path)
    start = time.perf_counter()
    rows = READERS[fmt](path, options)
    first_lines = FirstLines()
    try:
        _import_rows(store, rows, report, mapping=mapping, splits=splits, base_dir=base_dir, roots=allowed,
                     source=source, batch_size=batch_size, first_lines=first_lines, total=total, progress=progress)
    finally:
        first_lines.close()
    report.seconds = time.perf_counter() - start
    return report


def _import_rows(store: Store, rows: Iterator, report: ImportReport, *, mapping: dict[str, str],
                 splits: dict[str, str], base_dir: Path, roots: Roots, source: str, batch_size: int,
                 first_lines: FirstLines, total: int | None,
                 progress: Callable[[int, int | None], None] | None) -> None:
    path, delimiter = Path(report.path), report.delimiter
    keys_seen: set[str] = set()
    cells = CellCounter(mapping, splits)
    line = 0
    while chunk := list(islice(rows, batch_size)):
        batch: dict[str, ItemData] = {}
        lines: dict[str, int] = {}
        for line, record in chunk:
            if isinstance(record, LineWarning):
                report.warnings.append(LineNote(line, record.text))
                continue
            try:
                if isinstance(record, RecordError):
                    raise record
                keys_seen.update(record)
                cells.add(record)
                data = convert_record(record, mapping, base_dir=base_dir, roots=roots, source=source,
                                      splits=splits)
            except RecordError as exc:
                report.skipped.append(LineNote(line, str(exc)))
                continue
            report.refused_images += [LineNote(line, reason) for reason in data.refused]
            earlier = first_lines.earlier(data.id, line)
            if earlier is not None:
                report.duplicates.append(LineNote(line, f"id {data.id!r} also on line {earlier}; "
                                                         "this later record replaces it"))
            batch[data.id], lines[data.id] = data, line
        if batch:
            span = f"{chunk[0][0]}-{chunk[-1][0]}"
            try:
                _write_batch(store, batch, report)
            except RunFailed as exc:  # the store is locked, full or gone: no record of this batch will do
                raise _stopped(report, span, exc) from exc
            except SQLAlchemyError as exc:
                _write_one_by_one(store, batch, lines, report, exc, span)
        if progress is not None:
            progress(line, total)
    if progress is not None:  # the whole file is read: a header, blank lines and a record's later lines too
        progress(total or line, total)
    report.unmapped = {ours: theirs for ours, theirs in mapping.items()
                       if theirs not in keys_seen and (ours not in OPTIONAL_FIELDS or theirs != ours)}
    report.columns = {ours: (theirs if theirs in keys_seen else None) for ours, theirs in mapping.items()}
    report.multi_valued = cells.multi_valued()
    if keys_seen and "id" in report.unmapped:
        # Nothing was written: every record lacked its id, which means a wrong mapping.
        raise ImportFormatError(f"{path}: no record has the id key {mapping['id']!r}; the records' keys are "
                                f"{', '.join(map(ascii, sorted(keys_seen)))}. Map them with --map id=KEY "
                                "(and title=KEY, object_type=KEY, image=KEY, ...) or use --preset."
                                + _delimiter_hint(keys_seen, delimiter))


def _write_one_by_one(store: Store, batch: dict[str, ItemData], lines: dict[str, int], report: ImportReport,
                      exc: Exception, span: str) -> None:
    """The store refused a batch: write its records one at a time, so a record the store will not
    take (a value it cannot hold) is skipped with its line and costs none of its neighbours.
    When none is taken, the store itself is failing: stop."""
    refused: list[LineNote] = []
    for item_id, data in batch.items():
        try:
            _write_batch(store, {item_id: data}, report)
        except RunFailed as one:
            raise _stopped(report, span, one) from one
        except SQLAlchemyError as one:
            refused.append(LineNote(lines[item_id], f"the store refused it ({_store_reason(one)})"))
    if len(refused) == len(batch) and len(batch) > 1:
        raise _stopped(report, span, exc) from exc
    report.skipped += refused


def _stopped(report: ImportReport, span: str, exc: Exception) -> ImportStopped:
    return ImportStopped(
        f"the store refused the records of lines {span} ({_store_reason(exc)}); the {report.imported} records "
        "before them are saved. Fix the cause and import again: records already imported are updated, not "
        "duplicated.")


def _store_reason(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return text if len(text) <= 200 else text[:200] + "..."


def _delimiter_hint(keys: set[str], delimiter: str | None) -> str:
    """When a CSV header read as one column holds another delimiter, name it."""
    if delimiter is None or len(keys) != 1:
        return ""
    [key] = keys
    other = next((d for d in DELIMITERS if d != delimiter and d in key), None)
    return f" The header looks separated by {describe_delimiter(other)}: pass --delimiter '{other}'." if other else ""

