"""The Jinja2 environment of the pages: templates/, the app's globals and URL filters."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates

from muses import __version__
from muses.predictions import NONE, SURE, UNCERTAIN, shown_name

HERE = Path(__file__).parent


def item_url(item_id: str, **params: object) -> str:
    """The page of an item (with ``params`` in its query). The id is one percent-encoded path
    segment ('/' too), except the ids '.' and '..': browsers drop those path segments even when
    encoded, so they go in the query."""
    if item_id in (".", ".."):
        return "/item?" + urlencode({"id": item_id, **params})
    return "/items/" + quote(item_id, safe="") + ("?" + urlencode(params) if params else "")


def static_url(path: str) -> str:
    """A file of static/ as a path on this server: never built from the request's Host header,
    which a client (or a DNS-rebinding page) chooses."""
    return "/static/" + quote(path)


def _app_globals(request: Request) -> dict:
    return {"allow_writes": request.app.state.muses.allow_writes}


templates = Jinja2Templates(directory=HERE / "templates", context_processors=[_app_globals])
templates.env.globals["version"] = __version__
templates.env.filters["item_url"] = item_url
templates.env.filters["thousands"] = "{:,}".format  # 213,668 items, as a person reads a count
templates.env.globals["static_url"] = static_url
# "none of these", never the model's internal class name "other", on every page
templates.env.globals["shown_name"] = shown_name
# the tooltip of a card's answer, by its kind: cards.html, and item.js through item.html
templates.env.globals["answer_titles"] = {
    SURE: "the model's answer, with its calibrated confidence",
    UNCERTAIN: "the model is not sure: its first class is below the model's threshold",
    NONE: "the model finds none of its classes in this photo",
}
