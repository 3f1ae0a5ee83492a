"""Naive-label definitions: which catalog words make an item a member of a class.

``load_definitions(path)`` reads and validates a ``definitions.toml``;
``load_definitions_cached(path)`` does so once per version of the file (for the web app, which
needs them on every request). The original's module
attributes ``classes`` and ``synonyms_extended`` live in :mod:`muses.naive_classification.definitions`.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from muses.labeling.text import normalize, word_forms
from muses.errors import MusesError
from muses.settings import read_toml

CONFLICT_POLICIES = ("earliest", "drop", "priority", "most-hits")
KNOWN_FIELDS = ("title", "object_type", "primary_object_type", "material", "period", "description")
DEFAULT_FIELDS = {"title": 1, "object_type": 2, "primary_object_type": 3}
_TOP_KEYS = {"conflict_policy", "plurals", "default_fields", "class"}
_CLASS_KEYS = {"name", "synonyms", "exclude", "fields"}


class DefinitionsError(MusesError):
    """definitions.toml is malformed; the message names the file, the class and the fix."""


@dataclass(frozen=True)
class Definitions:
    """Validated definitions. ``classes`` maps class id (file order) to name;
    ``synonyms_extended`` maps name to ``{"synonyms", "exclude", "fields"}`` (fields with the
    class's effective ranks, defaults filled in)."""

    classes: OrderedDict[int, str]
    synonyms_extended: dict[str, dict[str, Any]]
    conflict_policy: str = "drop"
    plurals: bool = True
    default_fields: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    digest: str = ""
    path: Path | None = None

    @property
    def class_names(self) -> list[str]:
        return list(self.classes.values())


def _fail(path: Path | str, where: str, what: str) -> DefinitionsError:
    return DefinitionsError(f"{path}: {where}{what}")


def _check_fields(value: Any, path: Path | str, where: str) -> dict[str, int]:
    if not isinstance(value, dict) or not value:
        raise _fail(path, where, "fields must be a table like { title = 1, object_type = 2 }")
    for name, rank in value.items():
        if name not in KNOWN_FIELDS:
            raise _fail(path, where, f"unknown field {name!r}; use one of {', '.join(KNOWN_FIELDS)}")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise _fail(path, where, f"field {name!r} has rank {rank!r}; ranks are whole numbers >= 1 (higher wins)")
    return dict(value)


def _check_words(value: Any, path: Path | str, where: str, key: str, *, required: bool) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise _fail(path, where, f"{key} must be a list of strings, like {key} = [\"bust\", \"portrait bust\"]")
    words = [w.strip() for w in value]
    if required and not words:
        raise _fail(path, where, f"{key} is empty; give at least one keyword")
    if any(not w for w in words):
        raise _fail(path, where, f"{key} holds an empty string; remove it")
    return words


def parse_definitions(data: dict[str, Any], path: Path | str = "<definitions>") -> Definitions:
    """Validate parsed TOML content; see :func:`load_definitions`."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _fail(path, "", f"unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_TOP_KEYS))}")
    policy = data.get("conflict_policy", "earliest")
    if policy not in CONFLICT_POLICIES:
        raise _fail(path, "", f"conflict_policy = {policy!r}; use one of {', '.join(map(repr, CONFLICT_POLICIES))}")
    plurals = data.get("plurals", True)
    if not isinstance(plurals, bool):
        raise _fail(path, "", f"plurals = {plurals!r}; use true or false")
    default_fields = _check_fields(data.get("default_fields", DEFAULT_FIELDS), path, "default_fields: ")
    tables = data.get("class")
    if not isinstance(tables, list) or not tables:
        raise _fail(path, "", "no classes; add at least one [[class]] table with a name and synonyms")

    classes: OrderedDict[int, str] = OrderedDict()
    extended: dict[str, dict[str, Any]] = {}
    owner: dict[str, tuple[str, str]] = {}  # matched form -> (class, synonym)
    for index, table in enumerate(tables):
        where = f"class #{index + 1}: "
        if not isinstance(table, dict):
            raise _fail(path, where, "must be a [[class]] table")
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _fail(path, where, "missing name; add name = \"...\"")
        name = name.strip()
        where = f"class {name!r}: "
        unknown = set(table) - _CLASS_KEYS
        if unknown:
            raise _fail(path, where, f"unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_CLASS_KEYS))}")
        if name in extended:
            raise _fail(path, where, "duplicate class; merge the two [[class]] tables or rename one")
        synonyms = _check_words(table.get("synonyms"), path, where, "synonyms", required=True)
        exclude = _check_words(table.get("exclude"), path, where, "exclude", required=False)
        fields = _check_fields(table["fields"], path, where) if "fields" in table else dict(default_fields)
        for synonym in synonyms:
            for form in word_forms(normalize(synonym), plurals):
                other = owner.get(form)
                if other and other[0] != name:
                    raise _fail(
                        path, where,
                        f"synonym {synonym!r} also matches {other[1]!r} of class {other[0]!r}; "
                        "keep each keyword in one class (use exclude to veto a class)",
                    )
                owner[form] = (name, synonym)
        classes[index] = name
        extended[name] = {"synonyms": synonyms, "exclude": exclude, "fields": fields}

    canonical = {
        "conflict_policy": policy,
        "plurals": plurals,
        "default_fields": default_fields,
        "classes": [{"name": n, **extended[n]} for n in classes.values()],
    }
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return Definitions(
        classes=classes,
        synonyms_extended=extended,
        conflict_policy=policy,
        plurals=plurals,
        default_fields=default_fields,
        digest=hashlib.sha256(blob.encode("utf-8")).hexdigest(),
        path=Path(path),
    )


def load_definitions(path: str | os.PathLike) -> Definitions:
    """Read and validate a definitions.toml; raises :class:`DefinitionsError` with a fix."""
    path = Path(path)
    if not path.is_file():
        raise DefinitionsError(f"{path}: definitions file not found; create it (`muses init` writes an example)")
    _, data = read_toml(path, DefinitionsError, "fix it (`muses init` writes an example)")
    return parse_definitions(data, path)


def load_definitions_cached(path: str | os.PathLike) -> Definitions:
    """:func:`load_definitions`, parsed again only when the file changes (path, modification
    time and size). The result is shared between callers: treat it as read-only."""
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError:
        return load_definitions(path)  # its own message for a missing or unreadable file
    return _load_version(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_version(path: Path, _mtime_ns: int, _size: int) -> Definitions:
    return load_definitions(path)
