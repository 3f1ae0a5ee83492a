"""What a museum catalog says about an object beyond its title: makers with their roles, and the
catalog's date text read as an earliest and a latest year (for sorting, facets by century and
search by period).

Dates are written by people, so the reading is forgiving and never refuses: a text it cannot
read keeps both years empty, and the text itself is always kept and shown as the catalog wrote it.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

#: Our catalog fields as the object page and exports name them.
LABELS = {
    "object_number": "Object number", "title": "Title", "maker": "Maker", "object_type": "Object type",
    "date": "Date", "period": "Period", "material": "Material", "dimensions": "Dimensions",
    "credit_line": "Credit line", "department": "Department", "description": "Description",
}

_ERA_BC = r"(?:b\.?\s?c\.?(?:\s?e\.?)?|bce)"
_ERA_AD = r"(?:a\.?\s?d\.?|c\.?\s?e\.?)"
_BC = re.compile(rf"\b{_ERA_BC}(?!\w)", re.I)
_AD = re.compile(rf"\b{_ERA_AD}(?!\w)", re.I)
_YEAR = re.compile(r"(?<![\d,/])(?<!\d\.)(\d{1,4})(?!\d)(s)?(?![.,/]\d)")
_CENTURY = re.compile(
    r"(?:(early|mid|middle|late|(?:first|1st|second|2nd) half of(?: the)?)[\s-]+)?"
    r"(\d{1,2})(?:st|nd|rd|th)(?:\s*(?:[-–—]|to|or)\s*(\d{1,2})(?:st|nd|rd|th))?\s+(?:century|cent\.|c\.)", re.I)
_RANGE = re.compile(r"(\d{1,4})s?\s*(?:[-–—]|to|until)\s*(\d{1,4})(s)?")
_BEFORE = re.compile(r"\b(?:before|by|until|ante|pre)\b", re.I)
_AFTER = re.compile(r"\b(?:after|from|post|since)\b", re.I)
_PARTS = {"early": (0, 33), "mid": (33, 66), "middle": (33, 66), "late": (66, 99), "first": (0, 49), "1st": (0, 49),
          "second": (50, 99), "2nd": (50, 99)}
_ROLE = re.compile(r"^(?P<name>.*?)\s*\((?P<role>[^()\d]+)\)\s*$")
# a parenthesis holding one of these (or any lowercase words) is a role; others, like
# "Mino da Fiesole (Mino di Giovanni)", are part of the name
ROLE_WORDS = {"artist", "maker", "designer", "engraver", "printer", "publisher", "author", "manufacturer",
              "photographer", "sculptor", "painter", "architect", "draughtsman", "draftsman", "etcher",
              "lithographer", "silversmith", "goldsmith", "potter", "weaver", "decorator", "modeller", "modeler",
              "illustrator", "workshop", "factory", "retailer", "founder", "carver", "cabinetmaker"}


def parse_date(text: str) -> tuple[int | None, int | None]:
    """The earliest and latest year a catalog's date text allows (BC years negative).

    "1827" → (1827, 1827); "ca. 1500–1520" → (1500, 1520); "1850-60" → (1850, 1860);
    "19th century" → (1800, 1899); "late 18th century" → (1766, 1799); "1850s" → (1850, 1859);
    "before 1900" → (None, 1900); "500–450 BC" → (-500, -450); text without a year → (None, None).
    """
    text = " ".join((text or "").split())
    if not text:
        return None, None
    bc, ad = _BC.search(text), _AD.search(text)
    if bc and ad and bc.start() < ad.start():  # "50 BC–AD 20": from a year BC to one AD
        numbers = re.findall(r"\d+", text)
        return -int(numbers[0]), int(numbers[-1])
    sign = -1 if bc and not ad else 1
    if century := _CENTURY.search(text):
        part, first, last = century.group(1), int(century.group(2)), int(century.group(3) or century.group(2))
        lo, hi = _PARTS.get((part or "").split(" ")[0].lower(), (0, 99))
        if sign < 0:  # the 5th century BC runs from 500 down to 401
            return -(first * 100) + lo, -((last - 1) * 100 + 1) - (99 - hi)
        return (first - 1) * 100 + lo, (last - 1) * 100 + hi
    if span := _RANGE.search(text):
        start, end = span.group(1), span.group(2)
        if len(end) < len(start) and sign > 0:  # "1850-60": the end shares the start's century
            end = start[: len(start) - len(end)] + end
        years = sorted((sign * int(start), sign * int(end) + (9 if span.group(3) else 0)))
        return years[0], years[1]
    years = [(int(m.group(1)), bool(m.group(2))) for m in _YEAR.finditer(text) if len(m.group(1)) >= 3 or sign < 0]
    if not years:
        return None, None
    low = min(sign * year for year, _ in years)
    high = max(sign * year + (9 if decade else 0) for year, decade in years)
    if _BEFORE.search(text) and len(years) == 1:
        return None, high
    if _AFTER.search(text) and len(years) == 1:
        return low, None
    return low, high


def makers(names: Iterable[Any], roles: Iterable[Any] = ()) -> list[dict[str, str]]:
    """Makers as ``{"name", "role"}``: from texts ("Paul Revere (silversmith)": the role in
    parentheses), from objects with a name and a role (JSON and LIDO exports), with a parallel
    list of roles (a separate role column) filling those still without one."""
    found = []
    for value in names:
        if isinstance(value, dict):
            name = str(value.get("name") or value.get("displayName") or value.get("value") or "").strip()
            role = str(value.get("role") or "").strip()
        else:
            name, role = str(value).strip(), ""
            if (match := _ROLE.match(name)) and _is_role(match["role"].strip()):
                name, role = match["name"].strip(), match["role"].strip()
        if name:
            found.append({"name": name, "role": role})
    for maker, role in zip(found, roles):
        if not maker["role"]:
            maker["role"] = str(role).strip()
    return found


def _is_role(text: str) -> bool:
    return text[:1].islower() or text.lower() in ROLE_WORDS


def maker_text(found: list[dict[str, str]]) -> str:
    """The makers' names as one text, for search and facets ("George Catlin; Paul Revere")."""
    return "; ".join(dict.fromkeys(m["name"] for m in found))


def _year(year: int) -> str:
    return f"{-year} BC" if year < 0 else str(year)


def describe_years(earliest: int | None, latest: int | None) -> str:
    """The years a date was read as: "1850–1860", "1827", "by 1900", "from 1850", "500 BC–450 BC"."""
    if earliest is None:
        return f"by {_year(latest)}" if latest is not None else ""
    if latest is None:
        return f"from {_year(earliest)}"
    return _year(earliest) if earliest == latest else f"{_year(earliest)}–{_year(latest)}"


def catalog_record(item: Any) -> dict[str, Any]:
    """The catalog's fields of one item (a stored Item), and the rows the object page shows (label, text), in the
    order a catalog card lists them; empty fields are left out of the rows."""
    who = "; ".join(f"{m['name']} ({m['role']})" if m.get("role") else m["name"] for m in item.makers or [])
    years = (item.date_earliest, item.date_latest)
    date = f"{item.date} ({describe_years(*years)})" if item.date and years != (None, None) else item.date
    texts = {"object_number": item.number, "title": item.title, "maker": who,
             "object_type": " › ".join(item.object_type or []), "date": date, "period": item.period,
             "material": item.material, "dimensions": item.dimensions, "credit_line": item.credit_line,
             "department": item.department, "description": item.description}
    return {
        "object_number": texts["object_number"], "maker": item.maker, "makers": list(item.makers or []),
        "date": item.date, "date_earliest": years[0], "date_latest": years[1], "dimensions": item.dimensions,
        "credit_line": item.credit_line, "department": item.department, "description": item.description,
        "catalog": [{"field": name, "label": LABELS[name], "text": texts[name]}
                    for name in LABELS if texts[name]],
    }
