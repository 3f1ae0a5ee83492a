"""Catalog records for tests and benchmarks: real Met items put in a project's store, and titles
and object-type facets drawn from museum vocabulary (plurals, compound terms, accents, words that
contain keywords such as "earring"), so that about half of the records match a class.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from muses.collection.store import Image, Item, Store
from muses.settings import ENV_PROJECT, Project, init_project

OBJECTS = ["Bust", "Portrait bust", "Head", "Vase", "Oinochoe", "Terracotta lekythos", "Medal", "Plaquette",
            "Cameo", "Portrait miniature", "Photograph", "Earring", "Pendant", "Statuette", "Engraving",
            "Figure", "Büste", "Fragment of a krater", "Glass bottle", "Ring", "Plate", "Panel"]
_SUBJECTS = ["of a man", "of a woman", "of a youth", "of a satyr", "with lion head", "of a bearded man",
             "with floral scrolls", "", "(one of a pair)"]
_FIRST = ["Marie", "Louis", "Johann", "Élisabeth", "George", "Anna", "Cosimo", "Sabine", "Henri", "Giuseppe"]
_LAST = ["Washington", "de Pompadour", "Müller", "Houdon", "Medici", "Stuart", "Borghese", "Ferroni", "Vanderbilt"]
FACETS = [
    ["Sculpture", "Figures", "Marble", "Busts"], ["Photographs", "Albumen silver prints"],
    ["Paintings", "Watercolors", "Ivory", "Miniatures"], ["Metal", "Bronze", "Medals", "Plaquettes"],
    ["Clay", "Vessels", "Vases", "Terracotta", "Oinochoai"], ["Metal", "Costume", "Gold", "Jewelry", "Earrings"],
    ["Clay", "Terracotta"], ["Sculpture", "Stone", "Limestone"], ["Paintings", "Canvas", "Oil paintings"],
    ["Textiles", "Wool", "Tapestries"], ["Sculpture", "Chalcedony", "Gems", "Cameos"], ["Glass", "Pendants"],
]


def catalog_title(rng: random.Random) -> str:
    """A museum-like title: a portrait of someone (nearly unique) or an object with a subject."""
    if rng.random() < 0.5:  # a portrait of someone: nearly every such title is unique
        born = rng.randrange(1500, 1900)
        return f"{rng.choice(OBJECTS)} of {rng.choice(_FIRST)} {rng.choice(_LAST)} ({born}–{born + rng.randrange(20, 90)})"
    return f"{rng.choice(OBJECTS)} {rng.choice(_SUBJECTS)}".strip()


def new_project(root: Path, monkeypatch) -> Project:
    """A fresh project folder made by `muses init` at ``root``, set as $MUSES_PROJECT through
    pytest's ``monkeypatch`` (undone after the test)."""
    init_project(root)
    monkeypatch.setenv(ENV_PROJECT, str(root))
    return Project.load(root)


def _text(value) -> str:
    return "; ".join(map(str, value)) if isinstance(value, list) else str(value or "")


def add_met_items(project, met_sample: Path, n: int) -> list[str]:
    """The first ``n`` Met records as store items, their photos copied to the project's images
    folder as ready ML-size images (status ok); returns the item ids."""
    lines = (met_sample / "records.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    project.images_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for record in map(json.loads, lines):
        name = f"{record['id']}.jpg"
        shutil.copy(met_sample / record["image"], project.images_dir / name)
        items.append(Item(
            id=str(record["id"]), title=record["title"], object_type=record["what"],
            material=_text(record.get("medium")), period=_text(record.get("when")), raw=record,
            images=[Image(position=0, original=str(met_sample / record["image"]),
                          stored_path=f"{project.images_dir.name}/{name}", status="ok")],
        ))
    with Store.for_project(project).transaction() as s:
        s.add_all(items)
    return [item.id for item in items]
