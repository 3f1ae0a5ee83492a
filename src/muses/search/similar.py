"""Similar objects: the original's "find similar items by image upload", and "more like these".

For a photo, the model's top classes (3 by default) become a query: each class's synonyms over
the class's fields, each field's boost divided by (rank + 1), plus a boost of 8 / (rank + 1)
for items whose stored classification has that class on top. The top class weighs most.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from muses.labeling.definitions import DEFAULT_FIELDS, Definitions
from muses.labeling.text import normalize, word_forms
from muses.search import ClassTerm, Filters, Hit, SearchEngine, Term, TextTerm
from muses.predictions import ranked, stored_classes

TOP_CLASSES = 3
PREDICTION_BOOST = 8.0
_STOPWORDS = frozenset({"and", "the", "with", "on", "of", "in", "or", "for", "from", "over", "under"})


@dataclass(frozen=True)
class Similar:
    classes: list[tuple[str, float]]  # the photo's classes, most likely first (all of them)
    hits: list[Hit]


def class_query(class_names: Sequence[str], definitions: Definitions | None = None) -> list[Term]:
    """The query for classes ranked best first. A class the definitions do not know (a model
    trained under older definitions) is searched by its own name over the default fields."""
    terms: list[Term] = []
    for rank, name in enumerate(class_names):
        spec = definitions.synonyms_extended.get(name) if definitions else None
        synonyms = spec["synonyms"] if spec else [name]
        fields = spec["fields"] if spec else ((definitions.default_fields if definitions else None) or DEFAULT_FIELDS)
        plurals = definitions.plurals if definitions else True
        phrases = tuple(dict.fromkeys(f for s in synonyms for f in word_forms(normalize(s), plurals)))
        terms.append(TextTerm(phrases, {f: boost / (rank + 1) for f, boost in fields.items()}, label=f"{name} (catalog)"))
        terms.append(ClassTerm(name, PREDICTION_BOOST / (rank + 1), label=f"{name} (predicted)"))
    return terms


def similar_to_image(
    probabilities: np.ndarray,
    class_names: Sequence[str],
    engine: SearchEngine,
    *,
    definitions: Definitions | None = None,
    top: int = TOP_CLASSES,
    limit: int = 20,
) -> Similar:
    """Items like the photo(s) whose class ``probabilities`` (n_images × n_classes, or one row,
    from ``Classifier.predict_pil``) are given; several photos of one object are averaged."""
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    classes = [(c.name, c.probability) for c in ranked(class_names, probabilities)]
    query = class_query([name for name, _ in classes[:top]], definitions)
    return Similar(classes, engine.search(query, Filters(), limit))


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w{3,}", normalize(text)) if w not in _STOPWORDS and not w.isdigit()]


def similar_to_items(
    items: Sequence,
    engine: SearchEngine,
    *,
    definitions: Definitions | None = None,
    top: int = TOP_CLASSES,
    limit: int = 20,
) -> list[Hit]:
    """Items like the given store ``Item``s ("more like these"): their predicted classes (summed
    probabilities, ranked), their materials' words and their object-type facets. The given
    items are never returned."""
    if not items:
        raise ValueError("give at least one item")
    weight: dict[str, float] = defaultdict(float)
    materials: list[str] = []
    facets: list[str] = []
    for item in items:
        for c in stored_classes(item.classification):
            weight[c.name] += c.probability
        materials += _words(item.material or "")
        facets += [normalize(f) for f in item.object_type or [] if f.strip()]
    top_names = sorted(weight, key=lambda name: (-weight[name], name))[:top]
    query = class_query(top_names, definitions)
    if materials:
        query.append(TextTerm(tuple(dict.fromkeys(materials)), {"material": 1.0}, label="material"))
    if facets:
        query.append(TextTerm(tuple(dict.fromkeys(facets)), {"object_type": 1.0}, label="object type"))
    if not query:
        return []
    return engine.search(query, Filters(exclude_ids=frozenset(str(i.id) for i in items)), limit)
