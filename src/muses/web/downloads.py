"""A browse view's rows as a download: CSV (formula-safe, for Excel) or a JSON array, streamed
a row at a time so that the whole collection never sits in one response body in memory."""
from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from muses import csvfile
from muses.web.browse import EXPORT_COLUMNS

def csv_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A CSV file of ``rows`` (:data:`EXPORT_COLUMNS`; formula-safe cells, :mod:`muses.csvfile`),
    with a BOM so Excel reads it as UTF-8."""
    buffer = io.StringIO()

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer = csvfile.Writer(buffer, EXPORT_COLUMNS, bom=True)
    yield flush()
    for row in rows:
        writer.row(row[c] for c in EXPORT_COLUMNS)
        yield flush()


def json_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A JSON array of ``rows``, one object a line."""
    yield "["
    for n, row in enumerate(rows):
        yield ("\n" if n == 0 else ",\n") + json.dumps(row, ensure_ascii=False)
    yield "\n]\n"
