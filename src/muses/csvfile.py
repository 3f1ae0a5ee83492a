"""The one CSV writer of the project: every CSV a curator may open in a spreadsheet is written here.

A spreadsheet runs a cell that starts like a formula (``=HYPERLINK(...)``, ``+cmd|...``), and
catalog text is anybody's text, so a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading apostrophe (the OWASP rule). A text cell that already starts with
an apostrophe gets one more, so :func:`unescape` gives back exactly what was written (an object
number ``-12`` reads back as ``-12``). Numbers (int, float) are written as numbers.

Ground floor: the standard library only.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED_START = (*FORMULA_START, "'")
BOM = "\ufeff"


def safe_cell(value: Any) -> Any:
    """``value`` as a spreadsheet shows it as text: a formula-like string gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_ESCAPED_START):
        return "'" + value
    return "" if value is None else value


def unescape(text: str) -> str:
    """The text :func:`safe_cell` was given (one leading apostrophe dropped)."""
    return text[1:] if text.startswith("'") else text


class Writer:
    """A ``csv.writer`` whose every cell goes through :func:`safe_cell`; ``bom`` starts the
    stream with a UTF-8 byte-order mark so Excel reads the file as UTF-8."""

    def __init__(self, stream: TextIO, columns: Sequence[str] | None = None, *, bom: bool = False):
        if bom:
            stream.write(BOM)
        # "\r\n" (RFC 4180, as Excel writes): the csv module quotes a cell holding any character of
        # the line terminator, so a lone carriage return in catalog text cannot split a row.
        self._writer = csv.writer(stream, lineterminator="\r\n")
        self.columns = list(columns) if columns is not None else None
        if self.columns is not None:
            self._writer.writerow(self.columns)

    def row(self, values: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(v) for v in values])

    def record(self, mapping: Mapping[str, Any]) -> None:
        """One row from a mapping by the header's columns (other keys left out)."""
        if self.columns is None:
            raise ValueError("record() needs the columns given to Writer")
        self.row(mapping.get(c) for c in self.columns)


def write(path: str | Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *, bom: bool = False) -> Path:
    """A CSV file with a header line of ``columns`` and one row per mapping."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = Writer(fh, columns, bom=bom)
        for row in rows:
            writer.record(row)
    return path


def encode(rows: Iterable[Iterable[Any]], columns: Sequence[str], *, bom: bool = True) -> bytes:
    """A whole CSV (header ``columns``, then ``rows``) as UTF-8 bytes for a download; ``bom`` on
    by default, as these files are opened in Excel."""
    buf = io.StringIO()
    writer = Writer(buf, columns, bom=bom)
    for row in rows:
        writer.row(row)
    return buf.getvalue().encode("utf-8")


def records(stream: TextIO) -> tuple[list[str], Iterator[dict[str, str]]]:
    """The header and the rows (cells unescaped) of a CSV written by :class:`Writer`."""
    reader = csv.DictReader(stream)
    fieldnames = [unescape(name) for name in reader.fieldnames or []]

    def rows() -> Iterator[dict[str, str]]:
        for row in reader:
            yield {unescape(k): unescape(v) if isinstance(v, str) else v for k, v in row.items() if k is not None}

    return fieldnames, rows()


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[tuple[int, int | str], ...], str]:
    """A sort key that orders object numbers as a curator reads them: ``A.2`` before ``A.10``
    (``A.01`` and ``A.1`` then by their text, so the order is total)."""
    parts = tuple((0, int(part)) if part.isdecimal() else (1, part.casefold()) for part in _DIGITS.split(text) if part)
    return parts, text
