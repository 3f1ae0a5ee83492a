"""`muses values` and `label-preview --compare` as library functions: a field's distinct values
with the label each gets now, what moved between two runs, and agreement with a catalog column."""
from __future__ import annotations

import pytest

from muses.testing.labeling import DEFINITIONS_FIRST, definitions_for, make_catalog
from muses.collection.store import Item
from muses.labeling.compare import compare
from muses.labeling.values import FieldError, field_values, format_moves, label_moves, load_run, save_run, totals


def items(records):
    """Synthetic catalog records as store items (medium in ``material``, the rest as imported)."""
    return [Item(id=r["id"], title=r["title"], object_type=[], material=r["material"],
                 raw={"medium": r["material"], "classification": r["classification"]}) for r in records]


CATALOG = items(make_catalog(3000, seed=3))
FIRST = definitions_for(DEFINITIONS_FIRST, "earliest")


def test_values_count_every_record_once_with_the_label_it_gets_and_why():
    rows = field_values(CATALOG, "material", FIRST)
    assert sum(r.count for r in rows) == 3000 == sum(totals(rows).values())
    assert len({r.value for r in rows}) == len(rows)
    assert [r.count for r in rows] == sorted((r.count for r in rows), reverse=True)
    by_value = {r.value: r for r in rows}
    etching = by_value["Etching and watercolour on paper"]
    assert (etching.label, etching.share, etching.why) == ("print", 1.0, "'etching' in material")
    assert by_value["Oil paint on wood"].label == "painting"  # sculpture's exclude vetoes only sculpture
    assert by_value["Porcelain"].why == "unlabeled: no keyword of any class found"
    # any column of the imported catalog works too; a filter keeps only matching values
    raw = field_values(CATALOG, "medium", FIRST, contains="WATERCOLOR")
    assert raw and all("watercolor" in r.value.casefold() for r in raw)
    assert [r.value for r in field_values(CATALOG, "medium", FIRST, sort="value")][:1] == sorted(
        (r.value for r in rows), key=str.casefold)[:1]
    with pytest.raises(FieldError, match="no record has a field 'medum'"):
        field_values(CATALOG, "medum", FIRST)


def test_a_second_run_shows_what_moved(tmp_path):
    before = field_values(CATALOG, "material", definitions_for(DEFINITIONS_FIRST, "drop"))
    save_run(tmp_path / "values.json", "material", FIRST, before)
    after = field_values(CATALOG, "material", FIRST)
    moves = label_moves(load_run(tmp_path / "values.json"), after)
    assert sum(moves.values()) == 0 and moves["conflict"] < 0 and moves["print"] > 0
    text = format_moves(moves)
    assert text.startswith("+") and f"−{-moves['conflict']} conflict" in text
    assert load_run(tmp_path / "nothing.json") is None


def test_compare_scores_the_labels_against_the_catalog_classification():
    result = compare(CATALOG, "classification", FIRST)
    assert result["scored"] == 3000
    classes = {c["class"]: c for c in result["classes"]}
    assert classes["print"]["precision"] > 0.9 and classes["photograph"]["recall"] > 0.9
    # "Watercolour on ivory" is a painting labeled a drawing by the first definitions: a disagreement
    assert any(d["catalog"] == "painting" and d["label"] == "drawing" and d["why"] == "'watercolour' in material"
               for d in result["disagreements"])
    assert sum(c["records"] for c in result["confusion"]) == 3000
    assert result["unmapped_values"][0]["value"] == "other"  # catalog values naming no class
    assert 0 < result["precision"] < 1
