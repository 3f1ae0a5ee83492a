"""Request parts that pages and API read the same way."""
from __future__ import annotations

from fastapi import HTTPException, UploadFile

from muses.web import browse
from muses.web.state import AppState


def listing_query(q: str, predicted: str, naive: str, disagree: bool, sort: str, page: int, per_page: int,
                  reviewed: str = "", reviewer: str = "") -> browse.Query:
    try:
        return browse.Query(q, predicted or None, naive or None, disagree, sort, page, per_page,
                            reviewed.strip() or None, reviewer.strip() or None)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


async def read_file(state: AppState, file: UploadFile | None) -> bytes:
    # One byte more than allowed is enough to know the upload is too large.
    return await file.read(state.limits.max_upload_bytes + 1) if file is not None else b""
