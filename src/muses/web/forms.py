"""Request parts that pages and API read the same way."""
from __future__ import annotations

import re

from fastapi import HTTPException, Query, UploadFile

from muses.search import text_query
from muses.web import browse
from muses.web.state import AppState


MAX_QUERY_CHARS = 1000
MAX_SEARCH_TERMS = 32  # each term is a search of its own (400 words once took 4.4 s, then failed)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def listing_query(q: str = Query("", description='words or "quoted phrases" to find in the catalog fields (all of '
                                             "them, in any spelling: colour finds color and colours)"),
                  predicted: str = Query("", description="stored top class"),
                  naive: str = Query("", description=f"naive label class, or {browse.NO_LABEL!r}"),
                  disagree: bool = Query(False, description="naive label and predicted class differ"),
                  sort: str = Query("", description="one of " + ", ".join(browse.SORTS)
                                    + " (default: relevance with q, else number)"),
                  page: int = Query(1, description="past the last page gives the last page"),
                  per_page: int = Query(24, description=f"1 to {browse.MAX_PER_PAGE}"),
                  material: str = Query("", description="the medium, as the catalog writes it"),
                  century: int | None = Query(None, description="19 for the 19th century; negative: BC"),
                  maker: str = Query("", description="the first maker, as the catalog names them"),
                  reviewed: str = Query("", description='"yes", "no", or the decided class ("none of these" too)'),
                  reviewer: str = Query("", description="decided by this reviewer"),
                  ) -> browse.Query:
    """A listing's query from the request (every browse view, page or API, reads the same)."""
    # No catalog text holds a control character (a NUL is refused at import, and PostgreSQL
    # cannot even compare with one): in a search they are spaces.
    q, predicted, naive, material, maker, reviewed, reviewer = (
        _CONTROL.sub(" ", text) for text in (q, predicted, naive, material, maker, reviewed, reviewer))
    if len(q) > MAX_QUERY_CHARS:
        raise HTTPException(422, f"the search text is longer than {MAX_QUERY_CHARS} characters; search with fewer words")
    if (n := len(text_query.terms(q))) > MAX_SEARCH_TERMS:
        raise HTTPException(422, f"the search has {n} words or phrases; search with at most {MAX_SEARCH_TERMS}")
    try:
        return browse.Query(q, predicted or None, naive or None, disagree, sort, page, per_page, material or None,
                            century, maker or None, reviewed.strip() or None, reviewer.strip() or None)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


async def read_file(state: AppState, file: UploadFile | None) -> bytes:
    # One byte more than allowed is enough to know the upload is too large.
    return await file.read(state.limits.max_upload_bytes + 1) if file is not None else b""
