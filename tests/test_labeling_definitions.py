"""definitions.toml: the format, its validation messages, the digest, the cached loader and the module attributes."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from muses.naive_classification import definitions as definitions_module
from muses.labeling.definitions import (
    DEFAULT_FIELDS,
    DefinitionsError,
    load_definitions,
    load_definitions_cached,
)

REPO = Path(__file__).resolve().parents[1]

GOOD = """
conflict_policy = "priority"
plurals = true
default_fields = { title = 1, object_type = 2, primary_object_type = 3 }

[[class]]
name = "scarab"
synonyms = ["scarab", "scarabaeus", "skarabee"]
exclude = ["scaraboid"]
fields = { title = 1, object_type = 2, primary_object_type = 4 }

[[class]]
name = "vase"
synonyms = ["vase", "Amphora"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "definitions.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_load_good_file(tmp_path):
    defs = load_definitions(write(tmp_path, GOOD))
    assert list(defs.classes.items()) == [(0, "scarab"), (1, "vase")]
    assert defs.conflict_policy == "priority" and defs.plurals is True
    assert defs.synonyms_extended["scarab"] == {
        "synonyms": ["scarab", "scarabaeus", "skarabee"],
        "exclude": ["scaraboid"],
        "fields": {"title": 1, "object_type": 2, "primary_object_type": 4},
    }
    # A class without its own fields gets the file's defaults.
    assert defs.synonyms_extended["vase"]["fields"] == DEFAULT_FIELDS
    assert defs.synonyms_extended["vase"]["exclude"] == []
    assert len(defs.digest) == 64


def test_digest_follows_content_not_layout(tmp_path):
    a = load_definitions(write(tmp_path, GOOD)).digest
    reformatted = GOOD.replace('synonyms = ["vase", "Amphora"]', 'synonyms = [ "vase",\n  "Amphora" ]  # comment')
    assert load_definitions(write(tmp_path, reformatted)).digest == a
    assert load_definitions(write(tmp_path, GOOD.replace('"Amphora"', '"krater"'))).digest != a


def test_shipped_files_are_valid():
    for path in (REPO / "examples" / "definitions.toml", REPO / "src" / "muses" / "templates" / "definitions.toml"):
        defs = load_definitions(path)
        assert len(defs.classes) >= 3, path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[class]]\nname = 'a'\nsynonyms = ['x']\n[[class]]\nname = 'a'\nsynonyms = ['y']\n",
         "class 'a': duplicate class"),
        ("[[class]]\nname = 'a'\nsynonyms = []\n", "class 'a': synonyms is empty"),
        ("[[class]]\nname = 'a'\n", "class 'a': synonyms must be a list"),
        ("[[class]]\nname = 'a'\nsynonyms = ['x', ' ']\n", "class 'a': synonyms holds an empty string"),
        ("[[class]]\nname = 'a'\nsynonyms = ['Vase']\n[[class]]\nname = 'b'\nsynonyms = ['vase']\n",
         "class 'b': synonym 'vase' also matches 'Vase' of class 'a'"),
        ("[[class]]\nname = 'a'\nsynonyms = ['vase']\n[[class]]\nname = 'b'\nsynonyms = ['vases']\n",
         "class 'b': synonym 'vases' also matches 'vase' of class 'a'"),
        ("[[class]]\nname = 'a'\nsynonyms = ['x']\nfields = { colour = 1 }\n", "class 'a': unknown field 'colour'"),
        ("default_fields = { titel = 1 }\n[[class]]\nname = 'a'\nsynonyms = ['x']\n",
         "default_fields: unknown field 'titel'"),
        ("[[class]]\nname = 'a'\nsynonyms = ['x']\nfields = { title = 0 }\n", "ranks are whole numbers >= 1"),
        ("conflict_policy = 'last'\n[[class]]\nname = 'a'\nsynonyms = ['x']\n", "conflict_policy = 'last'; use one of"),
        ("plurals = 'yes'\n[[class]]\nname = 'a'\nsynonyms = ['x']\n", "plurals = 'yes'; use true or false"),
        ("[[class]]\nsynonyms = ['x']\n", "class #1: missing name"),
        ("[[class]]\nname = 'a'\nsynonym = ['x']\n", "class 'a': unknown key(s) synonym"),
        ("conflict = 'drop'\n[[class]]\nname = 'a'\nsynonyms = ['x']\n", "unknown key(s) conflict"),
        ("conflict_policy = 'drop'\n", "no classes"),
        ("[[class]\nname = 'a'\n", "not valid TOML"),
    ],
)
def test_validation_errors_name_file_class_and_fix(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(DefinitionsError) as info:
        load_definitions(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DefinitionsError, match="not found; create it"):
        load_definitions(tmp_path / "nope.toml")


def test_module_attributes_follow_the_current_project(project):
    # `project` comes from `muses init`, whose definitions.toml is the template.
    template = load_definitions(project.definitions_path)
    assert definitions_module.classes == template.classes
    assert definitions_module.synonyms_extended == template.synonyms_extended
    project.definitions_path.write_text("[[class]]\nname = 'coin'\nsynonyms = ['coin']\n", encoding="utf-8")
    assert list(definitions_module.classes.values()) == ["coin"]
    with pytest.raises(AttributeError):
        definitions_module.no_such_thing  # noqa: B018


def test_cached_loader_parses_each_version_of_the_file_once(tmp_path):
    path = write(tmp_path, GOOD)
    first = load_definitions_cached(path)
    assert load_definitions_cached(str(path)) is first  # unchanged: no second parse
    path.write_text(GOOD.replace('"Amphora"', '"Krater"'), encoding="utf-8")  # same size
    later = path.stat().st_mtime_ns + 10**9  # a coarse clock could give the old time
    os.utime(path, ns=(later, later))
    second = load_definitions_cached(path)
    assert second is not first and second.synonyms_extended["vase"]["synonyms"] == ["vase", "Krater"]
    path.write_text("[[class]]\nname = 'x'\n", encoding="utf-8")
    with pytest.raises(DefinitionsError, match="class 'x': synonyms"):
        load_definitions_cached(path)
    path.unlink()
    with pytest.raises(DefinitionsError, match="not found; create it"):
        load_definitions_cached(path)
