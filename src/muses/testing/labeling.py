"""Synthetic catalogs with a known answer, for labeling tests and the labeling benchmark: a medium
field phrased the way catalogs write it, each record filed by its curators under a classification;
the definitions a curator writes for it in two rounds, the issue's leftmost-keyword script, and
the scores (coverage, macro-F1) of every conflict policy against the classification."""
from __future__ import annotations

import random
import re
from collections.abc import Iterator

from muses.labeling.matching import Matcher
from muses.testing.catalog import OBJECTS

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
        yield {"id": f"{1900 + i % 120}.{i}", "title": rng.choice(OBJECTS), "material": medium,
               "classification": filed}


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
