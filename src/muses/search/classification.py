"""The classification stored on an item, read in one place.

``item.classification`` is ``{"model", "date", "classes": [{"name", "probability"}, ...]}``,
most likely class first (written by :mod:`muses.classify`); ``None`` before classification.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def stored_classes(classification: Mapping[str, Any] | None) -> list[tuple[str, float]]:
    """(class name, probability) pairs, most likely first; empty when not classified."""
    return [(c["name"], float(c["probability"])) for c in (classification or {}).get("classes") or []]


def stored_top_class(classification: Mapping[str, Any] | None) -> str | None:
    """The most likely stored class, or None when not classified."""
    classes = stored_classes(classification)
    return classes[0][0] if classes else None
