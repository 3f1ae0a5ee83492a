"""Similar objects: the original's "find similar items by image upload", and "more like these".

Objects that LOOK alike come first: the photos nearest the query's embedding in the vector
index (:mod:`muses.search.vectors`), an item counted once, by its nearest photo. The catalog is
the secondary signal: the model's top classes (3 by default) become a keyword query (each
class's synonyms over the class's fields, each field's boost divided by (rank + 1), plus a boost
of 8 / (rank + 1) for items whose stored classification has that class on top), and an item it
finds gets up to ``CATALOG_WEIGHT`` added to its likeness. Items the keywords find that have no
embedding follow the visual ones. Without stored embeddings (a collection classified before
they existed) the keyword query alone answers, as before.

Each hit says why in words: "looks alike 0.83 · catalog: vase · predicted vessel".
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from muses.collection.store import Image
from muses.embeddings import Embeddings
from muses.labeling.definitions import DEFAULT_FIELDS, Definitions
from muses.labeling.text import normalize, word_forms
from muses.search import ClassTerm, Filters, Hit, SearchEngine, Term, TextTerm
from muses.predictions import ranked, stored_classes
from muses.search.vectors import EXACT_BELOW, VectorIndex, open_index

TOP_CLASSES = 3
PREDICTION_BOOST = 8.0
# The most the catalog adds to a likeness (cosine, about 0.3 to 1). benchmarks/similarity.py on the Met
# sample (2026-12-06): precision@10 of a photo query 0.815 / 0.818 / 0.796 / 0.765 at 0.25 / 0.5 / 1 / 2,
# of "more like this object" 0.850 / 0.859 / 0.861 / 0.859; a visitor's photo in the top 3: 0.976 at all.
CATALOG_WEIGHT = 0.5
CANDIDATES = 5  # visual neighbours looked at per result asked for
_STOPWORDS = frozenset({"and", "the", "with", "on", "of", "in", "or", "for", "from", "over", "under"})


@dataclass(frozen=True)
class SimilarHit:
    item_id: str
    score: float  # what the hits are ordered by: likeness plus the catalog's share
    looks_alike: float | None = None  # cosine similarity of the nearest photos; None: found by the catalog only
    matched: tuple[str, ...] = ()  # the labels of the catalog terms that matched, best first

    @property
    def why(self) -> str:
        """The reason in words, e.g. "looks alike 0.83 · catalog: vase · predicted vessel"."""
        parts = [f"looks alike {self.looks_alike:.2f}"] if self.looks_alike is not None else []
        reasons = sorted((_reason(label) for label in self.matched), key=lambda r: r[0])
        return " · ".join(parts + [text for _, text in reasons]) or "found"


def _reason(label: str) -> tuple[int, str]:
    """(order, words): the catalog's class first, then the prediction, then shared words."""
    name, _, kind = label.rpartition(" (")
    if kind == "catalog)":
        return 0, f"catalog: {name}"
    if kind == "predicted)":
        return 1, f"predicted {name}"
    return 2, f"same {label}"  # "material", "object type"


@dataclass(frozen=True)
class Similar:
    classes: list[tuple[str, float]]  # the photo's classes, most likely first (all of them)
    hits: list[SimilarHit]


class Visual:
    """The stored embeddings and their index: items that look like a vector."""

    def __init__(self, embeddings: Embeddings, *, exact_below: int = EXACT_BELOW):
        self.embeddings = embeddings
        self.index: VectorIndex = open_index(embeddings, exact_below=exact_below)

    def made_by(self, features_key: str) -> bool:
        """Whether a photo's features from the weights ``features_key`` names can be compared with the stored ones."""
        meta = self.embeddings.meta()
        return meta is not None and meta.features_key == features_key

    def item_vector(self, item_ids: Sequence[str]) -> np.ndarray | None:
        """The mean embedding of the items' photos; None when none of them has one."""
        with self.embeddings.store.session() as s:
            image_ids = list(s.scalars(select(Image.id).where(Image.item_id.in_([str(i) for i in item_ids]))))
        slots = list(self.embeddings.slots_of(image_ids).values())
        return self.embeddings.vectors(slots).mean(axis=0) if slots else None

    def neighbours(self, query: np.ndarray, limit: int, exclude: frozenset[str] = frozenset()) -> list[tuple[str, float]]:
        """(item id, likeness) of the ``limit`` items whose photos are nearest, nearest first."""
        query = np.asarray(query, dtype=np.float32)
        if query.ndim == 2:  # several photos of one object
            query = query.mean(axis=0)
        image_ids, sims = self.index.search(query, limit * CANDIDATES + len(exclude))
        with self.embeddings.store.session() as s:
            owner = dict(s.execute(select(Image.id, Image.item_id).where(Image.id.in_(image_ids.tolist()))).all())
        best: dict[str, float] = {}
        for image_id, sim in zip(image_ids.tolist(), sims.tolist()):
            item_id = owner.get(image_id)
            if item_id is not None and item_id not in exclude and item_id not in best:
                best[item_id] = float(sim)
        return list(best.items())[:limit]


def open_visual(embeddings: Embeddings, *, exact_below: int = EXACT_BELOW) -> Visual | None:
    """The visual search of a project, or None when nothing is embedded yet."""
    if embeddings.meta() is None or embeddings.count() == 0:
        return None
    return Visual(embeddings, exact_below=exact_below)


class VisualCache:
    """A project's :class:`Visual` for a long-running reader (the web app), opened again when
    the stored embeddings change (a `muses classify` run beside the server)."""

    def __init__(self, embeddings: Embeddings):
        self.embeddings = embeddings
        self._stamp: tuple | None = None
        self._visual: Visual | None = None

    def get(self) -> Visual | None:
        stamp = self.embeddings.stamp()
        if stamp != self._stamp:
            self._visual, self._stamp = open_visual(self.embeddings), stamp
        return self._visual


def blend(visual: list[tuple[str, float]], keyword: list[Hit], limit: int) -> list[SimilarHit]:
    """Visual neighbours first, each raised by the catalog's score for it (scaled to at most
    ``CATALOG_WEIGHT``); then the keyword hits that have no likeness, in their own order."""
    top = max((h.score for h in keyword), default=0.0) or 1.0
    by_id = {h.item_id: h for h in keyword}
    hits = []
    for item_id, sim in visual:
        hit = by_id.get(item_id)
        share = CATALOG_WEIGHT * hit.score / top if hit else 0.0
        hits.append(SimilarHit(item_id, sim + share, sim, hit.matched if hit else ()))
    hits.sort(key=lambda h: (-h.score, h.item_id))
    seen = {h.item_id for h in hits}
    hits += [SimilarHit(h.item_id, CATALOG_WEIGHT * h.score / top - 1.0, None, h.matched)
             for h in keyword if h.item_id not in seen]
    return hits[:limit]


def _keyword_only(hits: list[Hit]) -> list[SimilarHit]:
    return [SimilarHit(h.item_id, h.score, None, h.matched) for h in hits]


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
    features: np.ndarray | None = None,
    visual: Visual | None = None,
) -> Similar:
    """Items like the photo(s) whose class ``probabilities`` (n_images × n_classes, or one row,
    from ``predict_pil``) and pooled ``features`` (from ``extract_features``) are given;
    several photos of one object are averaged. Without ``visual`` or ``features``: by the catalog only.
    ``visual`` must hold embeddings of the same weights (see :meth:`Visual.made_by`)."""
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    classes = [(c.name, c.probability) for c in ranked(class_names, probabilities)]
    query = class_query([name for name, _ in classes[:top]], definitions)
    keyword = engine.search(query, Filters(), limit * CANDIDATES if visual else limit)
    if visual is None or features is None:
        return Similar(classes, _keyword_only(keyword))
    return Similar(classes, blend(visual.neighbours(features, limit), keyword, limit))


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w{3,}", normalize(text)) if w not in _STOPWORDS and not w.isdigit()]


def similar_to_items(
    items: Sequence,
    engine: SearchEngine,
    *,
    definitions: Definitions | None = None,
    top: int = TOP_CLASSES,
    limit: int = 20,
    visual: Visual | None = None,
) -> list[SimilarHit]:
    """Items like the given store ``Item``s ("more like these"): those whose photos look like
    theirs, then by the catalog: their predicted classes (summed probabilities, ranked), their
    materials' words and their object-type facets. The given items are never returned."""
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
    exclude = frozenset(str(i.id) for i in items)
    keyword = engine.search(query, Filters(exclude_ids=exclude), limit * CANDIDATES if visual else limit) if query else []
    vector = visual.item_vector(sorted(exclude)) if visual else None
    if vector is None:
        return _keyword_only(keyword)
    return blend(visual.neighbours(vector, limit, exclude), keyword, limit)
