"""A catalog field's distinct values at a glance (/values?field=material): counts, the label each
value gets now and why, filterable and sortable, with a CSV of every row (/values.csv)."""
from __future__ import annotations

import io

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from muses.errors import MusesError
from muses.labeling.values import SORTS, containing, field_values, sort_rows, totals, write_csv
from muses.web.state import AppState, get_state
from muses.web.templating import templates

router = APIRouter()
SHOWN = 500  # rows on the page; the CSV has them all


def _rows(state: AppState, field: str, contains: str, sort: str):
    definitions = state.definitions.get()
    if definitions is None:
        raise MusesError("the project has no definitions.toml yet; write one (muses init gives an example)")
    # One scan of the collection per field and version of the store and definitions.toml (the memo
    # forgets it when either changes); each filter and order is then read from it.
    every = state.view.memo(("values", field, definitions.digest),
                            lambda: field_values(state.store.items(), field, definitions))
    return sort_rows(containing(every, contains), sort)


@router.get("/values", response_class=HTMLResponse, include_in_schema=False)
def values_page(request: Request, field: str = "", contains: str = "", sort: str = "count",
                state: AppState = Depends(get_state)):
    context = {"field": field, "contains": contains, "sort": sort, "sorts": SORTS, "rows": [], "error": "",
               "totals": [], "shown": SHOWN}
    if field:
        try:
            rows = _rows(state, field, contains, sort)
        except MusesError as exc:
            context["error"] = str(exc)
        else:
            context.update(rows=rows, totals=totals(rows).most_common())
    return templates.TemplateResponse(request, "values.html", context)


@router.get("/values.csv", include_in_schema=False)
def values_csv(field: str, contains: str = "", sort: str = "count", state: AppState = Depends(get_state)):
    try:
        rows = _rows(state, field, contains, sort)
    except MusesError as exc:
        return Response(str(exc) + "\n", status_code=400, media_type="text/plain; charset=utf-8")
    buf = io.StringIO()
    write_csv(rows, buf)
    safe = "".join(c if c.isalnum() else "_" for c in field)
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="values-{safe}.csv"'})
