"""A browse view's rows as a download: CSV (formula-safe, for Excel) or a JSON array, streamed
a row at a time so that the whole collection never sits in one response body in memory."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from muses.web.browse import EXPORT_COLUMNS

# A cell a spreadsheet would run as a formula starts with one of these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(value: Any) -> Any:
    """``value`` as a spreadsheet shows it as text: a string starting like a formula gets an
    apostrophe in front ("=HYPERLINK(...)" -> "'=HYPERLINK(...)"); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A CSV file of ``rows`` (:data:`EXPORT_COLUMNS`), with a BOM so Excel reads it as UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(EXPORT_COLUMNS)
    yield "\ufeff" + flush()
    for row in rows:
        writer.writerow(["" if row[c] is None else formula_safe(row[c]) for c in EXPORT_COLUMNS])
        yield flush()


def json_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A JSON array of ``rows``, one object a line."""
    yield "["
    for n, row in enumerate(rows):
        yield ("\n" if n == 0 else ",\n") + json.dumps(row, ensure_ascii=False)
    yield "\n]\n"
