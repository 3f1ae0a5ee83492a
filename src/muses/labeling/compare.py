"""Agreement of the naive labels with a classification column the catalog already has: a free
precision estimate (confusion table, precision and recall per class, examples of disagreement).

A catalog value agrees with a class when it names the class or one of its keywords, plurals
and case aside ("Prints" and "print", "Photographs" and "photograph"); other values count as
"other" (none of the classes).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from muses.labeling.definitions import Definitions
from muses.labeling.matching import LABELED, Matcher, record_fields
from muses.labeling.text import normalize, word_forms
from muses.labeling.values import FieldError, label_name, value_of, why

OTHER = "other"
N_DISAGREE = 5  # examples of disagreement per (catalog class, label) pair


def class_of_value(definitions: Definitions) -> dict[str, str]:
    """Normalized catalog value -> class, from each class's name and keywords."""
    out: dict[str, str] = {}
    for name in definitions.class_names:
        for word in (name, *definitions.synonyms_extended[name]["synonyms"]):
            for form in word_forms(normalize(word), definitions.plurals):
                out.setdefault(form, name)
    return out


def compare(items: Iterable[Any], field: str, definitions: Definitions) -> dict[str, Any]:
    """Score the naive labels of ``items`` against the catalog's ``field``; records without a
    value in it are not scored. Memory: counts and a few examples, whatever the collection's size."""
    matcher, mapping = Matcher(definitions), class_of_value(definitions)
    confusion: Counter[tuple[str, str]] = Counter()  # (catalog class, naive label) -> records
    unmapped: Counter[str] = Counter()  # catalog values that name no class
    examples: dict[tuple[str, str], list[dict[str, str]]] = {}
    scored = 0
    for item in items:
        record = record_fields(item)
        value = value_of(item, field, record)
        if not value:
            continue
        scored += 1
        # A list field (the Met's object-type facets) is filed under its first, most general entry.
        catalog = mapping.get(normalize(value)) or mapping.get(normalize(value.split(" | ")[0]), OTHER)
        if catalog == OTHER:
            unmapped[value] += 1
        label = matcher.label(record)
        naive = label_name(label)
        confusion[(catalog, naive)] += 1
        if label.status == LABELED and naive != catalog:
            listed = examples.setdefault((catalog, naive), [])
            if len(listed) < N_DISAGREE:
                listed.append({"id": label.item_id, "catalog": value, "label": naive,
                               "why": why(label, definitions.conflict_policy)})
    if scored == 0:
        raise FieldError(f"no record has a value in {field!r}; give a classification column of the catalog")
    classes = []
    for name in definitions.class_names:
        labeled = sum(n for (_, naive), n in confusion.items() if naive == name)
        filed = sum(n for (catalog, _), n in confusion.items() if catalog == name)
        right = confusion[(name, name)]
        classes.append({"class": name, "labeled": labeled, "catalog": filed, "agree": right,
                        "precision": round(right / labeled, 4) if labeled else None,
                        "recall": round(right / filed, 4) if filed else None})
    labeled_total = sum(c["labeled"] for c in classes)
    return {
        "field": field,
        "scored": scored,
        "precision": round(sum(c["agree"] for c in classes) / labeled_total, 4) if labeled_total else None,
        "classes": classes,
        "confusion": [{"catalog": c, "label": n, "records": k} for (c, n), k in sorted(confusion.items())],
        "unmapped_values": [{"value": v, "records": k} for v, k in unmapped.most_common(20)],
        "disagreements": [e for key in sorted(examples) for e in examples[key]],
    }
