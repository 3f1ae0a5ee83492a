"""Keyword matching: word boundaries, plurals, accents, phrases, field ranks, conflicts, exclude."""
from __future__ import annotations

import pytest

from muses.labeling.matching import CONFLICT, EXCLUDED, LABELED, UNLABELED, Matcher, label_records
from muses.labeling.definitions import parse_definitions


def defs(*classes, **top):
    return parse_definitions({**top, "class": [dict(c) for c in classes]})


def cls(name, *synonyms, **extra):
    return {"name": name, "synonyms": list(synonyms), **extra}


def label(definitions, title="", object_type=(), **fields):
    return Matcher(definitions).label({"id": "x", "title": title, "object_type": list(object_type), **fields})


RING = defs(cls("ring", "ring"))


@pytest.mark.parametrize("title", ["Gold earring", "Engraving of a saint", "String of beads", "Ringed flask"])
def test_word_boundaries(title):
    assert label(RING, title).status == UNLABELED


@pytest.mark.parametrize("title", ["Ring", "Gold ring, Roman", "Two rings", "(ring)", "ring-shaped"])
def test_whole_words_match(title):
    assert label(RING, title).cls == "ring"


@pytest.mark.parametrize(
    ("synonym", "title"),
    [("bust", "Busts"), ("busts", "Bust of a man"), ("vase", "Three vases"), ("statuette", "Statuettes"),
     ("glass", "Drinking glasses"), ("reliquary", "Reliquaries"), ("Büste", "BUSTE"), ("cafe", "Café au lait"),
     ("skarabäus", "Skarabaus")],
)
def test_plurals_and_accents(synonym, title):
    assert label(defs(cls("c", synonym)), title).status == LABELED


def test_plurals_off_matches_only_the_written_form():
    d = defs(cls("c", "bust"), plurals=False)
    assert label(d, "bust").status == LABELED
    assert label(d, "busts").status == UNLABELED


def test_phrases_match_across_case_spacing_and_plural():
    d = defs(cls("photograph", "albumen silver print"))
    result = label(d, object_type=["Photographs", "Albumen  silver prints"])
    assert (result.cls, result.keyword, result.field) == ("photograph", "albumen silver print", "object_type")
    # A phrase never spans two facets.
    assert label(d, object_type=["Albumen", "silver prints"]).status == UNLABELED


def test_longest_phrase_wins_at_the_same_place():
    d = defs(cls("bust", "portrait bust"), cls("portrait", "portrait"))
    assert label(d, "Portrait bust of a lady").cls == "bust"
    assert label(d, "Portrait of a lady").cls == "portrait"


def test_object_type_outranks_title():
    d = defs(cls("bust", "bust"), cls("medal", "medal"))
    result = label(d, "Bust of a man", ["Sculpture", "Medals"])
    assert (result.status, result.cls, result.field) == (LABELED, "medal", "object_type")
    assert {h.cls for h in result.hits} == {"bust", "medal"}
    # The primary (first) facet outranks the others.
    result = label(d, "", ["Medals", "Busts"])
    assert (result.cls, result.field) == ("medal", "primary_object_type")


def test_class_field_override_and_extra_fields():
    d = defs(cls("bust", "bust"), cls("bronze", "bronze", fields={"material": 5}))
    assert label(d, "Bust", material="Bronze").cls == "bronze"
    # Only the configured fields are searched: "bronze" in the title is ignored.
    assert label(d, "Bronze bust").cls == "bust"


@pytest.mark.parametrize(
    ("policy", "status", "winner"),
    [("drop", CONFLICT, None), ("priority", LABELED, "vase"), ("most-hits", LABELED, "lamp"),
     ("earliest", LABELED, "vase")],
)
def test_conflict_policies(policy, status, winner):
    d = defs(cls("vase", "vase"), cls("lamp", "lamp", "oil lamp"), conflict_policy=policy)
    result = label(d, "Vase-shaped oil lamp, a lamp")
    assert (result.status, result.cls) == (status, winner)
    assert result.candidates == ("vase", "lamp")


def test_most_hits_tie_is_dropped():
    d = defs(cls("vase", "vase"), cls("lamp", "lamp"), conflict_policy="most-hits")
    assert label(d, "Vase lamp").status == CONFLICT


def test_exclude_vetoes_its_class_only():
    d = defs(cls("scarab", "scarab", exclude=["scaraboid"]), cls("seal", "seal"))
    assert label(d, "Scarab").cls == "scarab"
    result = label(d, "Scarab", ["Scaraboids"])
    assert (result.status, result.vetoes) == (EXCLUDED, (("scarab", "scaraboid"),))
    assert label(d, "Scarab seal", ["Scaraboids"]).cls == "seal"


def test_label_records_keeps_order_and_reports_unlabeled():
    d = defs(cls("vase", "vase"))
    labels = label_records([{"id": 1, "title": "Vase"}, {"id": "2", "title": "Bowl"}], d)
    assert [(label.item_id, label.status) for label in labels] == [("1", LABELED), ("2", UNLABELED)]


MEDIA = defs(
    cls("painting", "oil paint", "oil paint on paper", "oil"),
    cls("drawing", "graphite", "watercolour"),
    cls("print", "etching"),
    cls("sculpture", "wood", "paper", exclude=["oil paint on wood"]),
    default_fields={"material": 1},
)


@pytest.mark.parametrize(
    ("medium", "winner", "keyword"),
    [("Etching and watercolour on paper", "print", "etching"),
     ("Watercolour and etching on paper", "drawing", "watercolour"),
     ("Oil paint on paper", "painting", "oil paint on paper"),  # the phrase, not its "paper" nor "oil paint"
     ("Graphite and oil paint on paper", "drawing", "graphite"),
     ("Paper and wood", "sculpture", "paper")],
)
def test_earliest_mention_wins_and_the_longest_phrase_beats_its_words(medium, winner, keyword):
    result = label(MEDIA, material=medium)
    assert (result.status, result.cls, result.keyword, result.field) == (LABELED, winner, keyword, "material")
    decisive = next(h for h in result.hits if h.keyword == keyword)
    assert medium.casefold()[decisive.start:decisive.end] == keyword


def test_earliest_is_the_default_policy():
    assert MEDIA.conflict_policy == "earliest"
    assert label(MEDIA, material="Etching and graphite").cls == "print"


def test_an_exclude_does_not_erase_another_class_s_match():
    # The case: sculpture's exclude "oil paint on wood" contains painting's keyword
    # "oil paint"; the painting must stay a painting, under every policy.
    for policy in ("earliest", "drop", "priority", "most-hits"):
        d = parse_definitions({"conflict_policy": policy, "default_fields": {"material": 1}, "class": [
            cls("sculpture", "wood", "bronze", exclude=["oil paint on wood"]), cls("painting", "oil paint")]})
        result = label(d, material="Oil paint on wood")
        assert (result.status, result.cls, result.keyword) == (LABELED, "painting", "oil paint"), policy
        assert result.vetoes == (("sculpture", "oil paint on wood"),)
        assert {h.cls for h in result.hits} == {"painting", "sculpture"}
        assert label(d, material="Bronze on oil paint on wood").cls == "painting"  # vetoed, though first


def test_same_place_in_two_fields_of_one_rank_is_a_conflict():
    d = defs(cls("print", "etching"), cls("drawing", "graphite"), default_fields={"material": 1, "title": 1})
    result = label(d, "Graphite study", material="Etching")
    assert (result.status, result.candidates) == (CONFLICT, ("print", "drawing"))


def test_earliest_is_at_least_as_good_as_every_policy_and_the_leftmost_script_on_a_synthetic_catalog():
    from muses.testing.labeling import DEFINITIONS_FIRST, compare_policies, make_catalog

    rows = {r["policy"]: r for r in compare_policies(make_catalog(4000, seed=5), {"first": DEFINITIONS_FIRST})}
    best = rows.pop("earliest")
    for policy, row in rows.items():
        assert best["macro_f1"] >= row["macro_f1"] and best["coverage"] >= row["coverage"], policy
    assert best["macro_f1"] > rows["drop"]["macro_f1"] + 0.03
