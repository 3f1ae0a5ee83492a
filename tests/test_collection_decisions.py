"""Review decisions: stored beside the catalog, exported for the collection management system,
and fed back into the dataset export, the label review and the evaluation."""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import shutil
from pathlib import Path

import pytest

from muses.actions import (
    DecisionsConfig, RecordDecisionConfig, UndoDecisionConfig, export_decisions, record_decision, undo_decision,
)
from muses.testing.catalog import add_met_items
from muses.collection import decisions as dec
from muses.collection.importers import import_records
from muses.collection.store import Item, Store
from muses.datasets.naive import NaiveExporter, preview
from muses.labeling.definitions import load_definitions
from muses.labeling.matching import LABELED, Matcher, record_fields
from test_cli_evaluate import _read_manifest, _run, eval_project  # noqa: F401  (a fixture)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _decide(store, item_id, action, **kw):
    return dec.record_decision(store, item_id=item_id, action=action, reviewer=kw.pop("reviewer", "Ana"), **kw)


@pytest.fixture
def store(project):
    s = Store.for_project(project)
    with s.transaction() as session:
        session.add_all(Item(id=i, title=f"Object {i}") for i in ("1", "2", "3"))
    return s


# -- the table and its rules --------------------------------------------------------------------
def test_the_latest_decision_counts_and_undo_brings_back_the_one_before(store):
    first = _decide(store, "1", dec.CATALOG_RIGHT, catalog_value="bust", suggested_value="vessel")
    second = _decide(store, "1", dec.OTHER_CLASS, catalog_value="bust", suggested_value="vessel", chosen="medal",
                     reviewer="Ben")
    _decide(store, "2", dec.NOT_ONE, catalog_value="bust", suggested_value="vessel")
    current = dec.current_decisions(store)
    assert (current["1"].value, current["1"].reviewer) == ("medal", "Ben")
    assert current["2"].value is None
    assert dec.reviewed_classes(store) == {"1": "medal"}  # "not one of these" has no class to score
    dec.undo_decision(store, second.id)
    assert dec.current_decisions(store)["1"].id == first.id and dec.current_decisions(store)["1"].value == "bust"
    dec.undo_decision(store, first.id)
    assert "1" not in dec.current_decisions(store)
    with store.session() as s:  # undone decisions are kept, marked
        assert s.query(dec.Decision).filter_by(item_id="1").count() == 2


def test_use_the_suggestion_takes_the_models_class(store):
    d = _decide(store, "3", dec.USE_SUGGESTION, catalog_value="", suggested_value="vessel")
    assert d.value == "vessel" and d.decided_at <= dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@pytest.mark.parametrize(("action", "kw", "words"), [
    ("keep it", {}, "unknown decision"),
    (dec.OTHER_CLASS, {}, "no class was chosen"),
    (dec.CATALOG_RIGHT, {"suggested_value": "vessel"}, "the catalog gives no class"),
    (dec.USE_SUGGESTION, {"catalog_value": "bust"}, "there is no suggestion"),
])
def test_a_decision_that_cannot_be_stored_says_why(store, action, kw, words):
    with pytest.raises(dec.DecisionError, match=words):
        _decide(store, "1", action, **kw)
    assert dec.current_decisions(store) == {}


def test_a_decision_needs_a_reviewer(store):
    with pytest.raises(dec.DecisionError, match="reviewer's name"):
        _decide(store, "1", dec.NOT_ONE, reviewer="  ")


def test_undo_of_an_unknown_decision_is_refused(store):
    with pytest.raises(dec.DecisionError, match="no decision number 99"):
        dec.undo_decision(store, 99)


# -- export for the collection management system ------------------------------------------------
def _rows(text: str) -> list[dict]:
    assert text.startswith("\ufeff"), "a byte-order mark, for Excel on Windows"
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def test_decisions_export_csv_and_since(store, project, tmp_path, capsys):
    old = _decide(store, "1", dec.CATALOG_RIGHT, catalog_value="bust", suggested_value="vessel")
    _decide(store, "2", dec.NOT_ONE, catalog_value="bust", suggested_value="vessel", list_name="issues", note="a lid")
    with store.transaction() as s:  # decided last year
        s.get(dec.Decision, old.id).decided_at = dt.datetime(2025, 1, 2, 3, 4, 5)
    code, out, err = _run(capsys, "decisions", "export", "--format", "csv")
    assert code == 0 and "2 decision(s)" in err
    rows = _rows(out)
    assert list(rows[0]) == dec.EXPORT_COLUMNS
    assert [(r["object number"], r["title"], r["decision"], r["decided value"], r["list"], r["note"]) for r in rows] == [
        ("1", "Object 1", "catalog is right", "bust", "", ""), ("2", "Object 2", "not one of these", "", "issues", "a lid")]
    assert rows[0]["decided at"] == "2025-01-02T03:04:05+00:00" and rows[0]["reviewer"] == "Ana"
    assert rows[0]["field"] == "class"
    out_file = tmp_path / "d.csv"
    code, out, _ = _run(capsys, "decisions", "export", "--since", "2026-01-01", "--out", str(out_file))
    assert code == 0 and "wrote 1 decision(s)" in out and "next:" in out
    assert [r["object number"] for r in _rows(out_file.read_text(encoding="utf-8"))] == ["2"]


def test_decisions_export_sorts_object_numbers_naturally_and_can_leave_out_the_bom(store, tmp_path, capsys):
    with store.transaction() as s:
        s.add_all(Item(id=i, title="Vase à décor") for i in ("10", "1.10", "1.2"))
    for item_id in ("10", "1.10", "3", "1.2"):
        _decide(store, item_id, dec.NOT_ONE)
    out_file = tmp_path / "plain.csv"
    assert _run(capsys, "decisions", "export", "--plain-utf8", "--out", str(out_file))[0] == 0
    data = out_file.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf") and "Vase à décor".encode() in data
    assert [r["object number"] for r in csv.DictReader(io.StringIO(data.decode()))] == ["1.2", "1.10", "3", "10"]


def test_only_since_the_last_export_gives_the_next_batch(store, tmp_path, capsys):
    _decide(store, "1", dec.NOT_ONE)
    first, second = tmp_path / "1.csv", tmp_path / "2.csv"
    _run(capsys, "decisions", "export", "--since-last-export", "--out", str(first))
    _decide(store, "2", dec.NOT_ONE)
    _decide(store, "1", dec.OTHER_CLASS, chosen="bust")  # a revision is new too
    _run(capsys, "decisions", "export", "--since-last-export", "--out", str(second))
    assert [r["object number"] for r in _rows(first.read_text("utf-8"))] == ["1"]
    assert [(r["object number"], r["decided value"]) for r in _rows(second.read_text("utf-8"))] == [
        ("1", "bust"), ("2", "")]


def test_the_review_actions_decide_revise_undo_and_withdraw(store, project):
    def decide(**kw):
        return record_decision(project, RecordDecisionConfig("1", "Ana", catalog_value="bust", suggested_value="vessel", **kw))

    assert decide(chosen="bust").action == dec.CATALOG_RIGHT  # the object page names only the class
    assert decide(chosen=None).action == dec.NOT_ONE
    slip = record_decision(project, RecordDecisionConfig("1", "Ana", action=dec.OTHER_CLASS, chosen="medal",
                                                         list_name="issues"), store=store)
    assert (dec.current_decision(store, "1").value, slip.list_name) == ("medal", "issues")
    assert undo_decision(project, UndoDecisionConfig(slip.id)).undone
    assert dec.current_decision(store, "1").action == dec.NOT_ONE  # the one before is current again
    assert decide(withdraw=True, note="asked the keeper").action == dec.WITHDRAWN
    assert dec.current_decision(store, "1") is None
    with pytest.raises(dec.DecisionError, match="unknown decision"):
        decide(action="")  # an action given is an action taken as given
    with pytest.raises(dec.DecisionError, match="no decision number 999"):
        undo_decision(project, UndoDecisionConfig(999), store=store)


def test_an_export_not_remembered_leaves_the_next_batch_as_it_was(store, project):
    _decide(store, "1", dec.NOT_ONE)
    batch = DecisionsConfig(since_last_export=True)
    looked = export_decisions(project, dataclasses.replace(batch, remember=False), store=store)  # a read-only server
    assert looked.rows == 1 and dec.last_export(store) is None
    assert export_decisions(project, batch).rows == 1 and dec.last_export(store) is not None
    assert export_decisions(project, batch, store=store).rows == 0


def test_decisions_export_keeps_a_formula_as_text(store):
    _decide(store, "1", dec.NOT_ONE, catalog_value="bust", reviewer='=HYPERLINK("http://x.example","Ana")')
    (row,) = _rows(dec.export_csv(dec.export_rows(store, dec.current_decisions(store))).decode("utf-8"))
    assert row["reviewer"] == "'=HYPERLINK(\"http://x.example\",\"Ana\")"


def test_decisions_export_without_decisions_says_where_to_make_them(store, capsys):
    code, out, err = _run(capsys, "decisions", "export")
    assert code == 0 and out.removeprefix("\ufeff").splitlines() == [",".join(dec.EXPORT_COLUMNS)]
    assert "/review" in err


def test_withdrawal_and_revision_are_appended_rows_and_the_newest_wins(store):
    _decide(store, "1", dec.CATALOG_RIGHT, catalog_value="bust")
    _decide(store, "1", dec.OTHER_CLASS, chosen="medal", reviewer="Ben")
    dec.withdraw_decision(store, item_id="1", reviewer="Cleo", note="not sure after all")
    assert dec.current_decision(store, "1") is None and "1" not in dec.current_decisions(store)
    assert [(d.action, d.reviewer) for d in dec.history(store, item_id="1")] == [
        (dec.WITHDRAWN, "Cleo"), (dec.OTHER_CLASS, "Ben"), (dec.CATALOG_RIGHT, "Ana")]
    with pytest.raises(dec.DecisionError, match="no decision to withdraw"):
        dec.withdraw_decision(store, item_id="1", reviewer="Cleo")
    _decide(store, "1", dec.USE_SUGGESTION, suggested_value="vessel")
    assert dec.current_decision(store, "1").value == "vessel"
    assert dec.last_decision(store, "Ana").value == "vessel"
    assert [d.item_id for d in dec.history(store, reviewer="Ben")] == ["1"]


def test_the_browse_condition_finds_reviewed_unreviewed_and_decided_records(store):
    from sqlalchemy import select

    _decide(store, "1", dec.OTHER_CLASS, chosen="medal", reviewer="Ben")
    _decide(store, "2", dec.NOT_ONE)
    _decide(store, "3", dec.NOT_ONE)
    dec.withdraw_decision(store, item_id="3", reviewer="Ana")

    def ids(**kw):
        with store.session() as s:
            return sorted(s.scalars(select(Item.id).where(dec.reviewed_condition(Item.id, **kw))))
    assert ids(reviewed="yes") == ["1", "2"] and ids(reviewed="no") == ["3"]
    assert ids(reviewed="medal") == ["1"] and ids(reviewed=dec.NONE_OF_THESE) == ["2"]
    assert ids(reviewer="Ben") == ["1"] and ids(reviewed="no", reviewer="Ben") == ["2", "3"]


def test_decisions_export_refuses_a_bad_date(store, capsys):
    code, _, err = _run(capsys, "decisions", "export", "--since", "last tuesday")
    assert code == 2 and "YYYY-MM-DD" in err


# -- fed back into the dataset ------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_labels():
    """Naive labels of the bundled demo records under the demo definitions."""
    import json

    matcher = Matcher(load_definitions(EXAMPLES / "definitions.toml"))
    records = [json.loads(line) for line in (EXAMPLES / "met-demo" / "records.jsonl").read_text("utf-8").splitlines()]
    items = [Item(id=str(r["id"]), title=r["title"], object_type=r["what"], material=str(r.get("medium") or ""),
                  period="", description="") for r in records]
    return {item.id: matcher.label(record_fields(item)) for item in items}


def _pick_all(labels, cls=None, status=LABELED):
    return [i for i, label in labels.items() if label.status == status and (cls is None or label.cls == cls)]


def _pick(labels, cls=None, status=LABELED):
    return _pick_all(labels, cls, status)[0]


def test_export_takes_the_reviewed_class_and_teaches_other_with_not_one_of_these(project, met_sample, demo_labels):
    shutil.copy(EXAMPLES / "definitions.toml", project.definitions_path)
    add_met_items(project, met_sample, 206)
    store = Store.for_project(project)
    corrected = _pick(demo_labels, "bust")
    confirmed = _pick(demo_labels, "photograph")
    removed = _pick(demo_labels, "vessel")
    added = _pick(demo_labels, status="unlabeled")
    undone = _pick(demo_labels, "medal")
    _decide(store, corrected, dec.OTHER_CLASS, catalog_value="bust", suggested_value="bust", chosen="vessel")
    _decide(store, confirmed, dec.CATALOG_RIGHT, catalog_value="photograph", suggested_value="bust")
    _decide(store, removed, dec.NOT_ONE, catalog_value="vessel", suggested_value="bust")
    _decide(store, added, dec.USE_SUGGESTION, suggested_value="miniature")
    dec.undo_decision(store, _decide(store, undone, dec.NOT_ONE, catalog_value="medal").id)
    result = NaiveExporter(min_items=1, progress=False).export(project)
    manifest = {r["item_id"]: r for r in _read_manifest(result.path)}
    assert (manifest[corrected]["class"], manifest[corrected]["field"]) == ("vessel", "review")
    assert manifest[corrected]["keyword"] == dec.OTHER_CLASS
    assert manifest[confirmed]["class"] == "photograph" and manifest[confirmed]["field"] == "review"
    assert manifest[added]["class"] == "miniature"
    # "none of these" teaches the class other, beside the unlabeled records
    assert (manifest[removed]["class"], manifest[removed]["field"]) == ("other", "review")
    assert result.report["other"]["reviewed"] == 1
    assert manifest[undone]["class"] == "medal" and manifest[undone]["field"] != "review"
    assert result.report["excluded"][removed] == ["review: not one of these"]
    plain = NaiveExporter(min_items=1, other=False, progress=False).export(project, out=project.root / "plain")
    assert removed not in {r["item_id"] for r in _read_manifest(plain.path)}


def test_a_reviewers_none_of_these_always_joins_other_however_small_the_cap(project, met_sample, demo_labels):
    """The unlabeled records are sampled down to the largest class; decided ones are all kept."""
    shutil.copy(EXAMPLES / "definitions.toml", project.definitions_path)
    add_met_items(project, met_sample, 206)
    store = Store.for_project(project)
    decided = _pick_all(demo_labels, "bust")[:3] + _pick_all(demo_labels, status="unlabeled")[:3]
    for item in decided:
        _decide(store, item, dec.NOT_ONE, catalog_value=demo_labels[item].cls or "", suggested_value="bust")
    result = NaiveExporter(min_items=1, max_images=4, progress=False).export(project)
    rows = _read_manifest(result.path)
    other = {r["item_id"] for r in rows if r["class"] == "other"}
    assert set(decided) <= other
    assert len(other - set(decided)) == 4  # unlabeled records, as many photos as the largest class
    assert {r["field"] for r in rows if r["item_id"] in decided} == {"review"}
    assert result.report["other"]["reviewed"] == 6


def test_a_decision_for_a_class_the_definitions_dropped_leaves_the_catalog_label(project, met_sample, demo_labels):
    shutil.copy(EXAMPLES / "definitions.toml", project.definitions_path)
    add_met_items(project, met_sample, 206)
    item = _pick(demo_labels, "bust")
    _decide(Store.for_project(project), item, dec.OTHER_CLASS, catalog_value="bust", chosen="painting")
    report = preview(project, progress=False)
    assert item not in report["excluded"] and report["summary"]["labeled"] == sum(
        label.status == LABELED for label in demo_labels.values())


def test_decisions_survive_re_import_and_still_apply(project, demo_labels):
    shutil.copy(EXAMPLES / "definitions.toml", project.definitions_path)
    records = EXAMPLES / "met-demo" / "records.jsonl"
    store = Store.for_project(project)
    import_records(store, records, preset="met-scrapi")
    item = _pick(demo_labels, "bust")
    _decide(store, item, dec.NOT_ONE, catalog_value="bust", suggested_value="vessel")
    before = store.get_item(item)
    report = import_records(store, records, preset="met-scrapi")  # the same file again
    assert report.unchanged == 206
    after = store.get_item(item)
    assert (after.title, after.object_type) == (before.title, before.object_type)  # catalog fields untouched
    assert dec.current_decisions(store)[item].action == dec.NOT_ONE
    assert preview(project, progress=False)["excluded"][item] == ["review: not one of these"]


# -- fed back into the label review and the evaluation ------------------------------------------
def _ids(path):
    with path.open(newline="", encoding="utf-8") as fh:
        return [r["id"] for r in csv.DictReader(fh)]


def _with_flipped_labels(dataset, out, n=3):
    """A copy of ``dataset`` whose first ``n`` circles are labeled square: label issues to find."""
    shutil.copytree(dataset, out)
    rows = _read_manifest(out)
    flipped = list(dict.fromkeys(r["item_id"] for r in rows if r["class"] == "circle"))[:n]
    for r in rows:
        r["class"] = "square" if r["item_id"] in flipped else r["class"]
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_label_issues_does_not_list_a_decided_record_again(eval_project, tiny_model_path, shapes_dataset, tmp_path,
                                                           capsys):
    dataset = _with_flipped_labels(shapes_dataset, tmp_path / "flipped")
    args = ["label-issues", "--model", str(tiny_model_path), "--dataset", str(dataset), "--folds", "3",
            "--threshold", "0.4"]
    code, out, _ = _run(capsys, *args)
    assert code == 0 and "/review" in out
    plots = eval_project.plots_dir
    issues, suggested = _ids(plots / "tiny_label_issues.csv"), _ids(plots / "tiny_suggested_labels.csv")
    assert issues and suggested
    store = Store.for_project(eval_project)
    _decide(store, issues[0], dec.CATALOG_RIGHT, catalog_value="circle")
    _decide(store, suggested[0], dec.USE_SUGGESTION, suggested_value="circle")
    code, out, _ = _run(capsys, *args)
    assert code == 0
    assert issues[0] not in _ids(plots / "tiny_label_issues.csv")
    assert suggested[0] not in _ids(plots / "tiny_suggested_labels.csv")
    assert "records a reviewer already decided (not listed)" in out


def test_label_issues_before_any_model_is_trained(eval_project, shapes_dataset, capsys):
    assert not eval_project.model_path.exists()
    code, out, _ = _run(capsys, "label-issues", "--dataset", str(shapes_dataset), "--folds", "3")
    assert code == 0, out
    assert "no model trained yet" in out and "tf_efficientnet_lite0" in out
    assert (eval_project.plots_dir / "tf_efficientnet_lite0_label_issues.csv").is_file()
    assert "labeled records reviewed" in out


def test_evaluate_scores_against_the_decisions(eval_project, tiny_model_path, shapes_dataset, capsys):
    test_rows = [r for r in _read_manifest(shapes_dataset) if r["split"] == "test"][:3]
    store = Store.for_project(eval_project)
    for r in test_rows:
        _decide(store, r["item_id"], dec.CATALOG_RIGHT, catalog_value=r["class"])
    _decide(store, "u-circle", dec.NOT_ONE)  # no class: not a gold label
    code, out, _ = _run(capsys, "evaluate", "--model", str(tiny_model_path), "--dataset", str(shapes_dataset),
                        "--gold", "decisions", "--json")
    assert code == 0
    import json

    assert json.loads(out)["gold"]["n"] == 3


def test_decisions_export_leaves_the_class_other_empty(store):
    """"none of these" is the only name a curator sees for the class other: an export leaves its
    cell empty, as the model's answer and as a decided value (the suggestion taken)."""
    with store.transaction() as s:
        s.get(Item, "3").classification = {"model": "m", "classes": [{"name": "other", "probability": 0.985}]}
    _decide(store, "3", dec.USE_SUGGESTION, catalog_value="medal", suggested_value="other")
    rows = _rows(dec.export_csv(dec.export_rows(store, dec.current_decisions(store))).decode("utf-8"))
    assert (rows[0]["model answer"], rows[0]["decided value"], rows[0]["confidence"]) == ("", "", "0.985")
