"""Labeling speed: a synthetic 200,000-record collection labeled with the demo definitions.

    python -m benchmarks.labeling [N]

Titles and object-type facets are drawn with a seeded RNG from realistic museum vocabulary
(plurals, compound terms, accents, words that contain keywords such as "earring"), so about
half of the records match a class, as in a real catalog.
"""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from muses.labeling.matching import Matcher
from muses.labeling.definitions import load_definitions

DEFINITIONS = Path(__file__).resolve().parents[1] / "examples" / "definitions.toml"

_OBJECTS = ["Bust", "Portrait bust", "Head", "Vase", "Oinochoe", "Terracotta lekythos", "Medal", "Plaquette",
            "Cameo", "Portrait miniature", "Photograph", "Earring", "Pendant", "Statuette", "Engraving",
            "Figure", "Büste", "Fragment of a krater", "Glass bottle", "Ring", "Plate", "Panel"]
_SUBJECTS = ["of a man", "of a woman", "of a youth", "of a satyr", "with lion head", "of a bearded man",
             "with floral scrolls", "", "(one of a pair)"]
_FIRST = ["Marie", "Louis", "Johann", "Élisabeth", "George", "Anna", "Cosimo", "Sabine", "Henri", "Giuseppe"]
_LAST = ["Washington", "de Pompadour", "Müller", "Houdon", "Medici", "Stuart", "Borghese", "Ferroni", "Vanderbilt"]
_FACETS = [
    ["Sculpture", "Figures", "Marble", "Busts"], ["Photographs", "Albumen silver prints"],
    ["Paintings", "Watercolors", "Ivory", "Miniatures"], ["Metal", "Bronze", "Medals", "Plaquettes"],
    ["Clay", "Vessels", "Vases", "Terracotta", "Oinochoai"], ["Metal", "Costume", "Gold", "Jewelry", "Earrings"],
    ["Clay", "Terracotta"], ["Sculpture", "Stone", "Limestone"], ["Paintings", "Canvas", "Oil paintings"],
    ["Textiles", "Wool", "Tapestries"], ["Sculpture", "Chalcedony", "Gems", "Cameos"], ["Glass", "Pendants"],
]


def _title(rng: random.Random) -> str:
    if rng.random() < 0.5:  # a portrait of someone: nearly every such title is unique
        born = rng.randrange(1500, 1900)
        return f"{rng.choice(_OBJECTS)} of {rng.choice(_FIRST)} {rng.choice(_LAST)} ({born}–{born + rng.randrange(20, 90)})"
    return f"{rng.choice(_OBJECTS)} {rng.choice(_SUBJECTS)}".strip()


def make_records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"id": str(i), "title": _title(rng), "object_type": rng.choice(_FACETS)} for i in range(n)]


def run(n: int = 200_000, repeat: int = 3) -> dict:
    """Label ``n`` synthetic records ``repeat`` times, each with a fresh (cold-cache) matcher.

    Returns the best pass's records per wall-clock second and per CPU second of this process
    (the machine is shared: CPU time leaves out the time other programs held the cores), and
    the status counts."""
    records = make_records(n)
    definitions = load_definitions(DEFINITIONS)
    wall = cpu = float("inf")
    for _ in range(repeat):
        matcher = Matcher(definitions)
        start, start_cpu = time.perf_counter(), time.process_time()
        labels = [matcher.label(r) for r in records]
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    statuses: dict[str, int] = {}
    for label in labels:
        statuses[label.status] = statuses.get(label.status, 0) + 1
    return {"name": "labeling", "records": n, "seconds": round(wall, 3), "records_per_s": round(n / wall),
            "records_per_cpu_s": round(n / cpu), **statuses}


if __name__ == "__main__":
    result = run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
    for key, value in result.items():
        print(f"{key:>17}  {value}")
