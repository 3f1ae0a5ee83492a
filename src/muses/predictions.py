"""A prediction as curators see it: classes ranked by probability, and its stored form.

One object may have several photos: its probabilities are the mean over their rows, and the
classes are ranked by that mean, most likely first (ties keep the model's class order).
The form stored on every classified item (``Item.classification``) is

    {"model": "naive", "date": "2026-11-30T12:00:00+00:00",
     "classes": [{"name": "vase", "probability": 0.91}, ...]}

and is written by :func:`classification` and read by :func:`stored_classes` only.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

STORED_DECIMALS = 6  # probabilities in the store: enough to rank, short enough to read


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


def classification(class_names: Sequence[str], probabilities: np.ndarray, *, model: str, top_k: int = 5,
                   date: str | None = None) -> dict[str, Any]:
    """The stored form of one object's prediction: its ``top_k`` classes, the probabilities
    averaged over its photos (rows of ``probabilities``)."""
    return {
        "model": model,
        "date": date or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "classes": [{"name": c.name, "probability": round(c.probability, STORED_DECIMALS)}
                    for c in ranked(class_names, probabilities, top_k)],
    }


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
