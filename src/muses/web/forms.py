"""Request parts that pages and API read the same way."""
from __future__ import annotations

from fastapi import HTTPException, Query, UploadFile

from muses.web import browse
from muses.web.state import AppState


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
                  ) -> browse.Query:
    """A listing's query from the request (every browse view, page or API, reads the same)."""
    try:
        return browse.Query(q, predicted or None, naive or None, disagree, sort, page, per_page, material or None, century)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


async def read_file(state: AppState, file: UploadFile | None) -> bytes:
    # One byte more than allowed is enough to know the upload is too large.
    return await file.read(state.limits.max_upload_bytes + 1) if file is not None else b""
