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
from muses.testing.labeling import (
    DEFINITIONS_FIRST, DEFINITIONS_IMPROVED, compare_policies, definitions_for, format_policy_rows, iter_catalog,
    make_catalog,
)

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



# --- Conflict policies against a catalog's own classification ------------------------------------
#
#     python -m benchmarks.labeling policies [N]
#
def tally_memory(n: int) -> dict:
    """Label and tally ``n`` streamed records into the full report (left-out rows to a null
    file): the peak RSS of this process, which stays flat as ``n`` grows."""
    import os
    import resource

    from muses.labeling.report import LeftOut, ReportTally

    definitions = definitions_for(DEFINITIONS_FIRST, "earliest")
    matcher = Matcher(definitions)
    start = time.perf_counter()
    with open(os.devnull, "w", encoding="utf-8") as sink:
        tally = ReportTally(definitions, left_out=LeftOut(sink, ["title", "material"]))
        for record in iter_catalog(n):
            tally.add(matcher.label(record), title=record["title"], record=record)
        report = tally.report()
    return {"records": n, "seconds": round(time.perf_counter() - start, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "coverage": report["summary"]["coverage"]}


MET_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "met-sample" / "records.jsonl"
# The Met files each record under object-type facets, most general first: the first one is its
# classification; the facets below are the five classes, the rest are "other".
MET_CLASSES = {"Paintings": "painting", "Drawings": "drawing", "Ink": "drawing", "Prints": "print",
               "Sculpture": "sculpture", "Photographs": "photograph"}


def met_catalog(path: Path = MET_SAMPLE) -> list[dict]:
    """The Met sample's records as the benchmark reads them: accession number, title, medium and
    the classification from the first facet."""
    import json

    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            out.append({"id": r["accession number"], "title": r["title"], "material": str(r.get("medium") or ""),
                        "classification": MET_CLASSES.get((r.get("what") or ["?"])[0], "other")})
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["memory"]:
        print(tally_memory(int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000))
        sys.exit(0)
    if sys.argv[1:2] == ["policies"]:
        n = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
        rounds = {"first": DEFINITIONS_FIRST, "improved": DEFINITIONS_IMPROVED}
        print(f"synthetic catalog, {n} records (seed 0):\n")
        print(format_policy_rows(compare_policies(make_catalog(n), rounds)))
        if MET_SAMPLE.is_file():
            print(f"\nMet sample, {sum(1 for _ in MET_SAMPLE.open(encoding='utf-8'))} real records, "
                  "classification = first object-type facet:\n")
            print(format_policy_rows(compare_policies(met_catalog(), rounds)))
        sys.exit(0)
    result = run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
    for key, value in result.items():
        print(f"{key:>17}  {value}")
