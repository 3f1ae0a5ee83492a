"""Labeling speed: a synthetic 200,000-record collection labeled with the demo definitions.

    python -m benchmarks.labeling [N]

Titles and object-type facets are drawn with a seeded RNG from realistic museum vocabulary
(plurals, compound terms, accents, words that contain keywords such as "earring"), so about
half of the records match a class, as in a real catalog.
"""
from __future__ import annotations

import random
import re
import sys
import time
from collections.abc import Iterator
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



# --- Conflict policies against a catalog's own classification ------------------------------------
#
#     python -m benchmarks.labeling policies [N]
#
# A synthetic catalog whose medium field is phrased the way catalogs write it ("Etching and
# watercolour on paper", "Oil paint on wood"; British and American spellings; several materials
# in one line), each record filed by its curators under a classification: the known answer.

_MEDIA = {
    "painting": ["Oil on canvas", "Oil paint on wood", "Oil on panel", "Tempera on wood", "Oil and gold leaf on wood",
                 "Oil paint on paper", "Acrylic on canvas", "Watercolour on ivory", "Watercolor on ivory", "Oil on copper",
                 "Tempera and gold on panel", "Oil on canvas, lined", "Oil paint and graphite on paper"],
    "drawing": ["Graphite on paper", "Pen and brown ink on paper", "Watercolour and graphite on paper",
                "Watercolor, graphite and gum arabic on paper", "Black chalk heightened with white on blue paper",
                "Pastel on paper mounted on canvas", "Charcoal on paper", "Red chalk", "Brush and ink, grey wash",
                "Brush and ink, gray wash", "Pen and ink and watercolour over graphite", "Conté crayon on paper"],
    "print": ["Etching", "Etching and watercolour on paper", "Etching and watercolor on paper", "Engraving",
              "Woodcut", "Lithograph printed in colours", "Lithograph printed in colors", "Mezzotint",
              "Etching and aquatint", "Woodcut with hand colouring", "Colour lithograph on wove paper",
              "Aquatint and etching printed in brown ink", "Engraving and etching on laid paper"],
    "sculpture": ["Bronze", "Marble", "Carved wood", "Painted wood", "Terracotta", "Limestone", "Bronze on marble base",
                  "Plaster cast", "Wood, painted and gilded", "Alabaster", "Bronze, cast and chased", "Carved oak"],
    "photograph": ["Albumen silver print from glass negative", "Gelatin silver print", "Platinum print",
                   "Salted paper print", "Daguerreotype", "Carbon print", "Gelatin silver print on paper"],
    "other": ["Porcelain", "Wool and silk", "Silver", "Glass, blown", "Earthenware, tin-glazed", "Oak veneer, brass mounts",
              "Cotton, printed", "Hard-paste porcelain, painted in colours", "Gold, enamel"],
}
# How often each class occurs (a museum holds far more prints than paintings).
_WEIGHTS = {"painting": 8, "drawing": 14, "print": 35, "sculpture": 10, "photograph": 18, "other": 15}
_SUFFIXES = ["", "", "", "", "; mounted", " (sheet)", ", framed", "; hand-coloured", " on wove paper"]
MISFILED = 0.02  # records the curators filed under another class than their medium says

# Keyword lists a curator writes in ten minutes ("first"), then improves once after reading the
# report ("improved"): longer phrases for what the first round confused, and excludes.
DEFINITIONS_FIRST = {
    "painting": {"synonyms": ["oil", "oil paint", "tempera", "acrylic", "canvas", "panel"]},
    "drawing": {"synonyms": ["graphite", "ink", "chalk", "pastel", "charcoal", "watercolour", "watercolor", "wash",
                             "crayon"]},
    "print": {"synonyms": ["etching", "engraving", "woodcut", "lithograph", "mezzotint", "aquatint"]},
    "sculpture": {"synonyms": ["bronze", "marble", "wood", "terracotta", "limestone", "plaster", "alabaster", "oak"],
                  "exclude": ["oil paint on wood"]},
    "photograph": {"synonyms": ["albumen", "gelatin silver print", "platinum print", "salted paper print",
                                "daguerreotype", "carbon print"]},
}
DEFINITIONS_IMPROVED = {
    "painting": {"synonyms": [*DEFINITIONS_FIRST["painting"]["synonyms"], "watercolour on ivory", "watercolor on ivory"],
                 "exclude": ["mounted on canvas"]},
    "drawing": {"synonyms": DEFINITIONS_FIRST["drawing"]["synonyms"],
                "exclude": ["etching", "engraving", "woodcut", "printed in brown ink", "oil paint"]},
    "print": {"synonyms": [*DEFINITIONS_FIRST["print"]["synonyms"], "colour lithograph"]},
    "sculpture": {"synonyms": [*DEFINITIONS_FIRST["sculpture"]["synonyms"], "painted wood", "carved wood"],
                  "exclude": ["oil paint on wood", "on wood", "on panel"]},
    "photograph": DEFINITIONS_FIRST["photograph"],
}
POLICIES = ("earliest", "drop", "priority", "most-hits")


def make_catalog(n: int, seed: int = 0) -> list[dict]:
    """``n`` records with ``id`` (an object number), ``title``, ``material`` (the medium line) and
    ``classification`` (what the curators filed it under; :data:`MISFILED` of them disagree with
    their medium, as in a real catalog)."""
    return list(iter_catalog(n, seed))


def iter_catalog(n: int, seed: int = 0) -> Iterator[dict]:
    """:func:`make_catalog` one record at a time (for a million records in flat memory)."""
    rng = random.Random(seed)
    classes, weights = list(_WEIGHTS), list(_WEIGHTS.values())
    for i in range(n):
        cls = rng.choices(classes, weights)[0]
        medium = rng.choice(_MEDIA[cls]) + rng.choice(_SUFFIXES)
        medium = medium.lower() if rng.random() < 0.1 else medium
        filed = rng.choice(classes) if rng.random() < MISFILED else cls
        yield {"id": f"{1900 + i % 120}.{i}", "title": rng.choice(_OBJECTS), "material": medium,
               "classification": filed}


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


def definitions_for(classes: dict, policy: str):
    """Definitions keyed on the medium (``material``) field, as the issue's curator wrote them."""
    from muses.labeling.definitions import parse_definitions

    return parse_definitions({"conflict_policy": policy, "default_fields": {"material": 1},
                              "class": [{"name": name, **spec} for name, spec in classes.items()]})


def leftmost_keyword(records: list[dict], classes: dict) -> list[str | None]:
    """The issue's 27-line script: the leftmost keyword in the medium wins (the longer one at the
    same place), with the same keyword lists; no excludes, no ranks."""
    from muses.labeling.text import normalize

    patterns = [(re.compile(rf"\b{re.escape(normalize(k))}s?\b"), cls, len(k))
                for cls, spec in classes.items() for k in spec["synonyms"]]
    out = []
    for record in records:
        text = normalize(record.get("material") or "")
        found = [(m.start(), -size, cls) for pattern, cls, size in patterns if (m := pattern.search(text))]
        out.append(min(found)[2] if found else None)
    return out


def score(predicted: list[str | None], truth: list[str], classes: list[str]) -> dict:
    """Coverage (records given a class) and macro-F1 over ``classes`` against ``truth``: a record
    left unlabeled counts against recall, a record of another class labeled counts against precision."""
    f1s = []
    for cls in classes:
        tp = sum(p == cls and t == cls for p, t in zip(predicted, truth))
        fp = sum(p == cls and t != cls for p, t in zip(predicted, truth))
        fn = sum(p != cls and t == cls for p, t in zip(predicted, truth))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"coverage": sum(p is not None for p in predicted) / len(predicted), "macro_f1": sum(f1s) / len(f1s)}


def compare_policies(records: list[dict], rounds: dict[str, dict], truth_field: str = "classification") -> list[dict]:
    """One row per (definitions round, policy), plus the leftmost-keyword script: coverage and macro-F1."""
    truth = [r[truth_field] for r in records]
    rows = []
    for round_name, classes in rounds.items():
        names = list(classes)
        for policy in POLICIES:
            matcher = Matcher(definitions_for(classes, policy))
            predicted = [matcher.label(r).cls for r in records]
            rows.append({"definitions": round_name, "policy": policy, **score(predicted, truth, names)})
        rows.append({"definitions": round_name, "policy": "leftmost-keyword script",
                     **score(leftmost_keyword(records, classes), truth, names)})
    return rows


def format_policy_rows(rows: list[dict]) -> str:
    lines = ["| definitions | policy | coverage | macro-F1 |", "|---|---|---|---|"]
    lines += [f"| {r['definitions']} | {r['policy']} | {r['coverage']:.1%} | {r['macro_f1']:.3f} |" for r in rows]
    return "\n".join(lines)



MET_SAMPLE = Path("/work/shared/data/met-sample/records.jsonl")
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
