"""A prediction as curators see it: classes ranked by probability, and its stored form.

One object may have several photos: its probabilities are the mean over their rows, and the
classes are ranked by that mean, most likely first (ties keep the model's class order).
The form stored on every classified item (``Item.classification``) is

    {"model": "naive", "date": "2026-11-30T12:00:00+00:00",
     "classes": [{"name": "vase", "probability": 0.91}, ...], "threshold": 0.55, "answer": "sure"}

and is written by :func:`classification` and read by :func:`stored_classes` and :func:`describe`.
An answer says "none of these" when the model's ``other`` class (records whose catalog type
matched no class) comes first, and "uncertain: maybe vase 41 %" when the first class's
probability is below the model's threshold (chosen on validation photos after training).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

STORED_DECIMALS = 6  # probabilities in the store: enough to rank, short enough to read
OTHER = "other"  # the class trained on records that match none of the defined classes
NONE_OF_THESE = "none of these"  # the only words a person reads for OTHER
SURE, UNCERTAIN, NONE = "sure", "uncertain", "none"


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities of ``logits`` (one row per photo), calibrated by the model's
    temperature: the one place every runtime (torch, ONNX, web) turns logits into probabilities."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def shown_name(name: str) -> str:
    """A class name as a person reads it: the ``other`` class is "none of these"."""
    return NONE_OF_THESE if name == OTHER else name


def exported_name(name: str) -> str:
    """A class name in an export (CSV): the ``other`` class leaves the cell empty, a value no
    importer mistakes for a class called "other"."""
    return "" if name == OTHER else name


@dataclass(frozen=True)
class ClassProbability:
    name: str
    probability: float


def mean_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """The mean row of ``probabilities`` (one row per photo, or a single row)."""
    return np.atleast_2d(np.asarray(probabilities, dtype=float)).mean(axis=0)


def ranked(class_names: Sequence[str], probabilities: np.ndarray, top_k: int | None = None) -> list[ClassProbability]:
    """The classes by mean probability over the rows, most likely first; the first ``top_k``
    (all with None). The sort is stable: equal probabilities keep ``class_names`` order."""
    mean = mean_probabilities(probabilities)
    if len(mean) != len(class_names):
        raise ValueError(f"probabilities have {len(mean)} columns for {len(class_names)} classes")
    order = np.argsort(-mean, kind="stable")[:top_k]
    return [ClassProbability(class_names[i], float(mean[i])) for i in order]


def classification(class_names: Sequence[str], probs: np.ndarray, *, model: str, top_k: int = 5,
                   date: str | None = None, threshold: float = 0.0) -> dict[str, Any]:
    """The stored form of one object's prediction: its ``top_k`` classes, the probabilities
    averaged over its photos (rows of ``probs``), and the model's ``threshold``."""
    classes = ranked(class_names, probs, top_k)
    return {
        "model": model,
        "date": date or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "classes": [{"name": c.name, "probability": round(c.probability, STORED_DECIMALS)} for c in classes],
        "threshold": float(threshold),
        "answer": answer(classes, threshold).kind,  # sure, uncertain or none: for filtering
    }


@dataclass(frozen=True)
class Answer:
    kind: str  # SURE, UNCERTAIN or NONE
    best: ClassProbability | None  # the most likely defined class (never ``other``)

    def __str__(self) -> str:
        if self.best is None:
            return NONE_OF_THESE
        shown = f"{self.best.name} {self.best.probability * 100:.0f} %"
        return {SURE: shown, UNCERTAIN: f"uncertain: maybe {shown}"}.get(self.kind, NONE_OF_THESE)


def answer(classes: Sequence[ClassProbability], threshold: float = 0.0) -> Answer:
    """What the model answers, given its ranked classes: "none of these" when ``other`` comes
    first, "uncertain" when the first class is below ``threshold``, else the first class."""
    best = next((c for c in classes if c.name != OTHER), None)
    if not classes or classes[0].name == OTHER:
        return Answer(NONE, best)
    return Answer(UNCERTAIN if classes[0].probability < threshold else SURE, best)


def stored_answer(stored: Mapping[str, Any] | None,
                  classes: Sequence[ClassProbability] | None = None) -> Answer | None:
    """The answer of a stored classification (None for an unclassified item); ``classes``: its
    :func:`stored_classes`, where the caller has read them already."""
    classes = stored_classes(stored) if classes is None else classes
    if not classes:
        return None
    threshold = (stored or {}).get("threshold", 0.0)
    return answer(classes, float(threshold) if isinstance(threshold, (int, float)) else 0.0)


def indexed_answer(kind: str | None, first: str | None, probability: float | None) -> str:
    """:func:`describe`'s line from what an index keeps of a stored answer: its kind and its first
    class with that class's probability (empty for an unclassified item). The first class is the
    answer's best one unless the answer is "none of these", which names no class."""
    if kind is None or first is None:
        return ""
    return str(Answer(kind, None if kind == NONE else ClassProbability(first, probability or 0.0)))


def describe(stored: Mapping[str, Any] | None) -> str:
    """One line for a person: "painting 91 %", "uncertain: maybe painting 41 %", "none of these"
    (empty for an unclassified item)."""
    found = stored_answer(stored)
    return "" if found is None else str(found)


def stored_classes(stored: Mapping[str, Any] | None) -> list[ClassProbability]:
    """The ranked classes of a stored classification (none for an unclassified item, or for
    entries that are not a class with a probability)."""
    classes = (stored or {}).get("classes") or []
    return [ClassProbability(str(c["name"]), float(c.get("probability", 0.0)))
            for c in classes if isinstance(c, Mapping) and "name" in c]


def top_class(stored: Mapping[str, Any] | None) -> str | None:
    """The most likely class of a stored classification (None for an unclassified item)."""
    classes = stored_classes(stored)
    return classes[0].name if classes else None
