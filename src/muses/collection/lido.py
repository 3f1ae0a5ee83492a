"""A reader for LIDO XML (the museum harvesting format, http://www.lido-schema.org): each
``<lido:lido>`` record becomes a record with our field names, so it imports with no mapping.

Read as a stream (a harvest holds hundreds of thousands of records); each record is dropped
once read. The standard library's parser resolves no external entities and its expat bounds
entity expansion, so a hostile file cannot reach the network or the disk, nor blow up memory.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from muses.errors import MusesError

NS = "{http://www.lido-schema.org}"
# workID types that name the object number (LIDO leaves the vocabulary to the museum)
OBJECT_NUMBER_TYPES = ("inventory number", "accession number", "object number", "inventarnummer", "")


class NotLido(MusesError):
    """The file is not well-formed LIDO XML."""


def _texts(element: ET.Element | None, path: str) -> list[str]:
    if element is None:
        return []
    found = (" ".join("".join(e.itertext()).split()) for e in element.iterfind(path.replace("lido:", NS)))
    return [text for text in found if text]


def _first(element: ET.Element | None, path: str) -> str:
    return next(iter(_texts(element, path)), "")


def _object_number(record: ET.Element) -> str:
    ids = {(e.get(f"{NS}type") or e.get("type") or "").strip().lower(): " ".join("".join(e.itertext()).split())
           for e in record.iterfind(f".//{NS}repositorySet/{NS}workID")}
    return next((ids[kind] for kind in OBJECT_NUMBER_TYPES if ids.get(kind)), next(iter(ids.values()), ""))


def _production(record: ET.Element) -> ET.Element | None:
    """The production (or creation) event, else the first event."""
    events = list(record.iterfind(f".//{NS}eventSet/{NS}event"))
    for event in events:
        if _first(event, "lido:eventType/lido:term").lower() in ("production", "creation", "herstellung"):
            return event
    return events[0] if events else None


def lido_record(record: ET.Element) -> dict[str, Any]:
    """One ``<lido:lido>`` element as a record with our field names."""
    event = _production(record)
    makers = [{"name": _first(actor, "lido:actor/lido:nameActorSet/lido:appellationValue"),
               "role": _first(actor, "lido:roleActor/lido:term")}
              for actor in (event.iterfind(f".//{NS}eventActor/{NS}actorInRole") if event is not None else ())]
    return {
        "id": _first(record, "lido:lidoRecID") or _object_number(record),
        "object_number": _object_number(record),
        "title": _first(record, ".//lido:titleSet/lido:appellationValue"),
        "object_type": _texts(record, ".//lido:objectWorkType/lido:term") + _texts(
            record, ".//lido:classification/lido:term"),
        "maker": [m for m in makers if m["name"]] or _texts(event, ".//lido:displayActorInRole"),
        "date": _first(event, "lido:eventDate/lido:displayDate") or " – ".join(
            _texts(event, "lido:eventDate/lido:date/*")),
        "period": _first(event, "lido:periodName/lido:term"),
        "material": _first(event, "lido:eventMaterialsTech/lido:displayMaterialsTech") or "; ".join(
            _texts(event, ".//lido:materialsTech//lido:term")),
        "dimensions": "; ".join(_texts(record, ".//lido:objectMeasurementsSet/lido:displayObjectMeasurements")),
        "credit_line": _first(record, ".//lido:rightsWorkSet/lido:creditLine") or _first(record, ".//lido:creditLine"),
        "department": _first(record, ".//lido:repositorySet/lido:repositoryName/lido:legalBodyName/lido:appellationValue"),
        "description": "\n\n".join(_texts(record, ".//lido:objectDescriptionSet/lido:descriptiveNoteValue")),
        "image": _texts(record, ".//lido:resourceSet/lido:resourceRepresentation/lido:linkResource"),
    }


def read_lido(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position, record) of each LIDO record in the file; :class:`NotLido` for a file that is not LIDO."""
    number = 0
    try:
        with path.open("rb") as fh:
            for _, element in ET.iterparse(fh, events=("end",)):
                if element.tag != f"{NS}lido":
                    continue
                number += 1
                yield number, lido_record(element)
                element.clear()  # a read record is never needed again
    except ET.ParseError as exc:
        raise NotLido(f"{path}: not well-formed XML at line {exc.position[0]}, column {exc.position[1]} "
                                f"(after {number} records); fix the file or export it again") from exc
    if number == 0:
        raise NotLido(f"{path}: no <lido:lido> records (namespace {NS[1:-1]}); muses reads LIDO XML; "
                                "export other XML as CSV or JSON, or pass --format")
