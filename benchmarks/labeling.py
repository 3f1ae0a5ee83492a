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
from muses.testing.catalog import FACETS, catalog_title

DEFINITIONS = Path(__file__).resolve().parents[1] / "examples" / "definitions.toml"

def make_records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"id": str(i), "title": catalog_title(rng), "object_type": rng.choice(FACETS)} for i in range(n)]


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
