"""The labeling report stays the same size whatever the collection's: counts, a bounded number of
examples and listed records; every left-out record goes to a CSV written as the records stream by."""
from __future__ import annotations

import csv
import io
import json
import random

from muses.labeling.definitions import parse_definitions
from muses.labeling.matching import CONFLICT, EXCLUDED, LABELED, UNLABELED, Matcher
from muses.labeling.report import N_EXAMPLES, N_LISTED, LeftOut, ReportTally, build_report
from muses.testing.catalog import FACETS, catalog_title

DEFINITIONS = parse_definitions({
    "conflict_policy": "drop",
    "class": [
        {"name": "bust", "synonyms": ["bust", "head"], "exclude": ["bust length"]},
        {"name": "vase", "synonyms": ["vase", "amphora"], "exclude": ["vase painter"]},
        {"name": "photograph", "synonyms": ["photograph", "albumen silver print"]},
        {"name": "medal", "synonyms": ["medal"]},
    ],
})


def records(n: int, *, seed: int = 0):
    """Met-like records (the labeling bench's vocabulary): some labeled, conflicting, excluded, unlabeled."""
    rng = random.Random(seed)
    for i in range(n):
        title, facets = catalog_title(rng), rng.choice(FACETS)
        if i % 25 == 0:
            title, facets = "Amphora by the Berlin vase painter", []
        elif i % 25 == 1:
            title, facets = "Bust on a vase", []
        yield {"id": f"r{i:06d}", "title": title, "object_type": facets}


def tally(n: int) -> tuple[dict, str]:
    matcher, out = Matcher(DEFINITIONS), io.StringIO()
    report = ReportTally(DEFINITIONS, left_out=LeftOut(out))
    for record in records(n):
        report.add(matcher.label(record), title=record["title"], has_images=True, record=record)
    return report.report(), out.getvalue()


def test_the_report_of_40000_records_is_no_bigger_than_of_10000_and_left_out_has_them_all():
    small, _ = tally(10_000)
    big, left_out = tally(40_000)
    s = big["summary"]
    assert s["items"] == 40_000 and min(s["conflicts"], s["excluded"], s["unlabeled"]) > N_LISTED
    assert len(big["conflicts"]) == len(big["excluded"]) == len(big["excluded_records"]) == N_LISTED
    assert len(big["unlabeled"]) == N_LISTED and len(big["unlabeled_examples"]) == N_EXAMPLES
    # a report holding every record would be four times the size
    assert len(json.dumps(big)) < 1.1 * len(json.dumps(small))
    rows = list(csv.DictReader(io.StringIO(left_out)))
    assert len(rows) == s["conflicts"] + s["excluded"] + s["unlabeled"]
    by_status = {status: sum(r["status"] == status for r in rows) for status in (CONFLICT, EXCLUDED, UNLABELED)}
    assert by_status == {CONFLICT: s["conflicts"], EXCLUDED: s["excluded"], UNLABELED: s["unlabeled"]}
    assert LABELED not in {r["status"] for r in rows}


def test_unlabeled_examples_are_spread_over_the_whole_collection():
    report, _ = tally(20_000)
    ids = [int(e["id"][1:]) for e in report["unlabeled_examples"]]
    assert ids == sorted(ids) and ids[0] < 2_000 and ids[-1] > 14_000


def test_a_tally_gives_the_report_of_the_labels_all_at_once():
    """build_report (labels in hand) and the streaming tally agree on a small collection."""
    matcher = Matcher(DEFINITIONS)
    recs = list(records(300))
    labels = [matcher.label(r) for r in recs]
    titles = {r["id"]: r["title"] for r in recs}
    with_images = {r["id"] for r in recs[::3]}
    tallied = ReportTally(DEFINITIONS, gold={"r000001": "bust"})
    for label, r in zip(labels, recs):
        tallied.add(label, title=r["title"], has_images=r["id"] in with_images)
    whole = build_report(labels, DEFINITIONS, titles=titles, with_images=with_images, gold={"r000001": "bust"})
    assert tallied.report() == whole
    assert whole["summary"]["items_with_images"] == 100 and whole["summary"]["gold_checked"] in (0, 1)


def test_left_out_gives_the_exact_reason_and_the_searched_text():
    """The issue's rows: an exclude word on a record its class never matched vetoes nothing and
    names no class; a vetoed class does not leave out a record another class matched."""
    defs = parse_definitions({"default_fields": {"material": 1, "title": 1}, "class": [
        {"name": "sculpture", "synonyms": ["wood", "bronze"], "exclude": ["oil paint on wood", "paper"]},
        {"name": "painting", "synonyms": ["oil paint"]}]})
    matcher, out = Matcher(defs), io.StringIO()
    sink = LeftOut(out, ["title", "material"], defs.conflict_policy)
    tally = ReportTally(defs, left_out=sink)
    recs = [{"id": "1990.1", "title": "Portrait", "material": "Oil paint on wood"},
            {"id": "1990.2", "title": "Study", "material": "Ink on paper"},
            {"id": "1990.3", "title": "Head", "material": "Bronze on paper"}]
    for r in recs:
        tally.add(matcher.label(r), title=r["title"], record=r)
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert set(rows) == {"1990.2", "1990.3"}  # the painting is labeled
    assert rows["1990.2"] == {
        "id": "1990.2", "status": UNLABELED, "classes": "", "exclude_words": "sculpture: paper", "title": "Study",
        "material": "Ink on paper",
        "reason": "unlabeled: no keyword of any class found; exclude words found, vetoing nothing: sculpture 'paper'"}
    assert (rows["1990.3"]["status"], rows["1990.3"]["classes"], rows["1990.3"]["reason"]) == (
        EXCLUDED, "sculpture", "excluded: sculpture ('bronze') vetoed by 'paper'")
    report = tally.report()
    wood = next(k for k in report["keywords"] if k["keyword"] == "wood")
    assert (wood["hits"], wood["vetoed"]) == (1, 1)
    words = {(k["class"], k["keyword"]): k["outcomes"] for k in report["keyword_words"]}
    assert words[("painting", "oil paint")]["decided"] == [
        {"id": "1990.1", "field": "material", "note": "", "before": "", "match": "Oil paint", "after": " on wood"}]
    assert words[("sculpture", "wood")]["vetoed"][0]["note"] == "by the exclude 'oil paint on wood'"
