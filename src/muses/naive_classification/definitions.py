"""The original's ``definitions`` module: ``classes`` and ``synonyms_extended`` as module
attributes, holding the current project's definitions (found like every command finds its
project). The code lives in :mod:`muses.labeling.definitions`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from muses.labeling.definitions import Definitions, DefinitionsError, load_definitions

__all__ = ["Definitions", "DefinitionsError", "load_definitions", "classes", "synonyms_extended"]


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> Definitions:
    return load_definitions(path)


def __getattr__(name: str) -> Any:
    # Loaded lazily so that importing this module never touches the disk; an edited file is read again.
    if name in ("classes", "synonyms_extended"):
        from muses.naive_classification import resolve_project

        path = resolve_project().definitions_path
        if not path.is_file():
            raise DefinitionsError(f"{path}: definitions file not found; create it (`muses init` writes an example)")
        stat = path.stat()
        return getattr(_load_cached(str(path), stat.st_mtime_ns, stat.st_size), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
