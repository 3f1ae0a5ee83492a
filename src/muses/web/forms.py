"""Request parts that pages and API read the same way."""
from __future__ import annotations

import re

from fastapi import HTTPException, UploadFile

from muses.web import browse
from muses.web.state import AppState


MAX_QUERY_CHARS = 1000
MAX_SEARCH_TERMS = 32  # each term is a search of its own (400 words once took 4.4 s, then failed)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def listing_query(q: str, predicted: str, naive: str, disagree: bool, sort: str, page: int, per_page: int,
                  reviewed: str = "", reviewer: str = "") -> browse.Query:
    # No catalog text holds a control character (a NUL is refused at import, and PostgreSQL
    # cannot even compare with one): in a search they are spaces.
    q, predicted, naive, reviewed, reviewer = (_CONTROL.sub(" ", text) for text in (q, predicted, naive, reviewed, reviewer))
    if len(q) > MAX_QUERY_CHARS:
        raise HTTPException(422, f"the search text is longer than {MAX_QUERY_CHARS} characters; search with fewer words")
    if (n := len(browse.search_terms(q))) > MAX_SEARCH_TERMS:
        raise HTTPException(422, f"the search has {n} words or phrases; search with at most {MAX_SEARCH_TERMS}")
    try:
        return browse.Query(q, predicted or None, naive or None, disagree, sort, page, per_page,
                            reviewed.strip() or None, reviewer.strip() or None)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


async def read_file(state: AppState, file: UploadFile | None) -> bytes:
    # One byte more than allowed is enough to know the upload is too large.
    return await file.read(state.limits.max_upload_bytes + 1) if file is not None else b""
