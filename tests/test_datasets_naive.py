"""The naive exporter end to end: a real store, real image files, the dataset folder and report."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image as PILImage

from muses.cli import main
from muses.collection.images import generate_images
from muses.collection.importers import import_records
from muses.collection.store import OK, PROBLEM, Image, Item, Store
from muses.errors import MusesError
from muses.datasets.registry import UnknownExporterError, available_exporters, load_exporter
from muses.datasets.naive import NaiveExporter, preview
from muses.labeling.matching import label_records
from muses.labeling.report import build_report
from muses.datasets.splitting import SplitError, parse_split, split_counts, stratified_split
from muses.labeling.definitions import parse_definitions

REPO = Path(__file__).resolve().parents[1]

DEFINITIONS = """
conflict_policy = "drop"
[[class]]
name = "bust"
synonyms = ["bust"]
[[class]]
name = "vase"
synonyms = ["vase", "amphora"]
exclude = ["vase painter"]
[[class]]
name = "medal"
synonyms = ["medal"]
"""

# id, title, object type, images: "ok" (a real file), "missing" (status ok, file gone), "problem"
COLLECTION = [
    *[(f"b{i}", f"Bust of a man {i}", ["Sculpture", "Busts"], ["ok"]) for i in range(1, 5)],
    *[(f"m{i}", f"Medal {i}", ["Medals"], ["ok"]) for i in range(1, 4)],
    ("m4", "Bust of a woman", ["Medals"], ["ok"]),  # object type outranks the title
    *[(f"v{i}", f"Amphora {i}", [], ["ok"]) for i in range(1, 4)],
    ("v4", "Vase", ["Vases"], ["ok", "ok"]),  # two photos of one object
    ("c1", "Bust on a vase", [], ["ok"]),  # conflict: two classes in the title
    ("e1", "Vase by the Berlin vase painter", [], ["ok"]),  # vetoed by exclude
    ("u1", "Portrait", ["Paintings"], ["ok"]),
    ("u2", "Plate", [], ["ok"]),
    ("n1", "Bust", [], []),  # labeled, no image
    ("s1", "Amphora s", [], ["missing"]),  # labeled, its image file is gone
    ("p1", "Medal p", [], ["problem"]),  # labeled, image unusable
]


def fill_store(project, collection) -> None:
    """Items and images written straight into the project's store, with tiny real JPEGs."""
    images_dir = project.root / "images"
    images_dir.mkdir(exist_ok=True)
    with Store.for_project(project).transaction() as session:
        for n, (item_id, title, object_type, images) in enumerate(collection):
            item = Item(id=item_id, title=title, object_type=object_type)
            for position, kind in enumerate(images):
                rel = f"images/{item_id}_{position}.jpg"
                if kind != "missing":
                    PILImage.new("RGB", (8, 8), (n * 9 % 256, position * 80, 100)).save(project.root / rel)
                status = PROBLEM if kind == "problem" else OK
                item.images.append(Image(position=position, original=f"/photos/{item_id}_{position}.jpg",
                                         stored_path=rel, status=status, width=8, height=8,
                                         problem="corrupt" if kind == "problem" else None))
            session.add(item)


@pytest.fixture
def hand_made(project):
    project.definitions_path.write_text(DEFINITIONS, encoding="utf-8")
    fill_store(project, COLLECTION)
    return project


def read_manifest(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_hand_made_collection_report(hand_made):
    result = NaiveExporter(min_items=3, progress=False).export(hand_made)
    report = result.report
    assert report["summary"] == {
        "items": 19, "items_with_images": 17, "labeled": 15, "conflicts": 1, "excluded": 1, "unlabeled": 2,
        "labeled_with_images": 13, "coverage": round(15 / 19, 4), "dataset_items": 12, "dataset_images": 13,
        "skipped_images": 1,
    }
    classes = {c["name"]: c for c in report["classes"]}
    assert classes["bust"]["labeled"] == 5 and classes["bust"]["labeled_with_images"] == 4
    assert classes["bust"]["items"] == {"train": 2, "val": 1, "test": 1}
    assert classes["vase"]["items"] == {"train": 2, "val": 1, "test": 1}
    assert sum(classes["vase"]["images"].values()) == 5  # v4 has two photos
    keywords = {k["keyword"]: k for k in report["keywords"]}
    assert keywords["bust"] == {"class": "bust", "keyword": "bust", "hits": 7, "decided": 5, "agreed": 0,
                                "overlaps": 2, "overridden": 1, "conflicts": 1, "vetoed": 0}
    for k in report["keywords"]:  # every hit came to exactly one outcome
        assert k["hits"] == sum(k[o] for o in ("decided", "agreed", "overridden", "conflicts", "vetoed"))
    assert (keywords["vase"]["hits"], keywords["vase"]["decided"], keywords["vase"]["vetoed"]) == (3, 1, 1)
    assert (keywords["amphora"]["hits"], keywords["amphora"]["decided"]) == (4, 4)
    assert report["conflicts"] == {"c1": ["bust", "vase"]}
    assert report["conflict_examples"] == [{
        "id": "c1", "title": "Bust on a vase", "classes": ["bust", "vase"],
        "reason": "conflict: bust ('bust') and vase ('vase') found at the same rank (policy drop)",
        "texts": {"title": "Bust on a vase"}}]
    assert report["excluded"] == {"e1": ["vase: vase painter"]}
    assert report["unlabeled"] == ["u1", "u2"]
    assert report["unlabeled_examples"] == [
        {"id": "u1", "title": "Portrait", "texts": {"title": "Portrait", "object_type": "Paintings"}},
        {"id": "u2", "title": "Plate", "texts": {"title": "Plate"}}]
    words = {(k["class"], k["keyword"]): k["outcomes"] for k in report["keyword_words"]}
    assert words[("bust", "bust")]["overridden"] == [{
        "id": "m4", "field": "title", "note": "medal won by 'medal'", "before": "", "match": "Bust", "after": " of a woman"}]
    assert words[("vase", "vase")]["vetoed"][0]["note"] == "by the exclude 'vase painter'"
    assert [s["item_id"] for s in report["skipped_images"]] == ["s1"]


def test_report_shows_example_photos_per_keyword_and_the_excluded_records(hand_made):
    out = NaiveExporter(min_items=3, progress=False).export(hand_made).path
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    examples = {(k["class"], k["keyword"]): k["photos"] for k in report["keyword_examples"]}
    assert set(examples) == {("bust", "bust"), ("medal", "medal"), ("vase", "amphora"), ("vase", "vase")}
    assert [p["id"] for p in examples[("vase", "amphora")]] == ["v1", "v2", "v3"]
    assert len(examples[("bust", "bust")]) == 4  # at most N_PHOTOS, one photo per object
    v4 = examples[("vase", "vase")]
    assert len(v4) == 1 and v4[0]["title"] == "Vase"  # two photos, one object: shown once
    assert report["excluded_records"] == [
        {"id": "e1", "title": "Vase by the Berlin vase painter", "excluded": {"vase": ["vase painter"]},
         "reason": "excluded: vase ('vase') vetoed by 'vase painter'", "texts": {"title": "Vase by the Berlin vase painter"}}]
    html = (out / "report.html").read_text(encoding="utf-8")
    for photos in examples.values():
        for p in photos:  # the photos are the dataset's own copies, linked relative to the report
            assert f'<img src="{p["image"]}"' in html and (out / p["image"]).is_file()
    assert "<td>e1</td><td>Vase by the Berlin vase painter</td>\n<td>excluded: vase (&#39;vase&#39;) vetoed by &#39;vase painter&#39;</td>" in html
    assert "m4, title: <mark>Bust</mark> of a woman" in html


def test_dataset_folder_follows_the_contract(hand_made):
    out = NaiveExporter(min_items=3, seed=7, progress=False).export(hand_made).path
    assert out == hand_made.datasets_dir / "naive"
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "images", "left-out.csv", "manifest.csv",
                                                      "report.html", "report.json"]
    with (out / "left-out.csv").open(newline="", encoding="utf-8") as fh:
        left_out = {row["id"]: row for row in csv.DictReader(fh)}
    assert set(left_out) == {"c1", "e1", "u1", "u2"}
    assert (left_out["c1"]["status"], left_out["c1"]["classes"], left_out["c1"]["title"]) == (
        "conflict", "bust; vase", "Bust on a vase")
    assert (left_out["e1"]["status"], left_out["e1"]["exclude_words"]) == ("excluded", "vase: vase painter")
    assert left_out["u2"]["status"] == "unlabeled"
    assert (left_out["u1"]["reason"], left_out["u1"]["classes"], left_out["u1"]["object_type"]) == (
        "unlabeled: no keyword of any class found", "", "Paintings")
    rows = read_manifest(out)
    assert list(rows[0]) == ["item_id", "image", "class", "split", "keyword", "field"]
    assert {r["item_id"] for r in rows} == {"b1", "b2", "b3", "b4", "m1", "m2", "m3", "m4", "v1", "v2", "v3", "v4"}
    for row in rows:
        assert (out / row["image"]).is_file() and row["split"] in ("train", "val", "test")
    m4 = next(r for r in rows if r["item_id"] == "m4")
    assert (m4["class"], m4["keyword"], m4["field"]) == ("medal", "medal", "primary_object_type")
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["classes"] == ["bust", "vase", "medal"] and meta["seed"] == 7 and meta["exporter"] == "naive"
    assert meta["split"] == [0.7, 0.15, 0.15] and len(meta["definitions_digest"]) == 64
    html = (out / "report.html").read_text()
    assert "Labeling report" in html and "Bust on a vase" in html and "19 items (17 with usable images)" in html
    assert json.loads((out / "report.json").read_text())["summary"]["labeled"] == 15
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_gold_file_adds_precision(hand_made, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("id,class\nb1,bust\nm4,medal\nv1,vase\nc1,vase\nn1,medal\nu1,painting\n", encoding="utf-8")
    report = NaiveExporter(min_items=3, gold=gold, progress=False).export(hand_made).report
    assert (report["summary"]["precision"], report["summary"]["gold_checked"]) == (0.75, 4)
    classes = {c["name"]: c for c in report["classes"]}
    assert (classes["bust"]["precision"], classes["medal"]["precision"], classes["vase"]["precision"]) == (0.5, 1, 1)
    assert classes["vase"]["recall"] == 0.5  # c1 was dropped as a conflict
    assert {k["keyword"]: k["precision"] for k in report["keywords"]}["bust"] == 0.5


def test_bad_gold_file(hand_made, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("item,label\nb1,bust\n", encoding="utf-8")
    with pytest.raises(MusesError, match="columns id,class"):
        NaiveExporter(min_items=3, gold=gold, progress=False).export(hand_made)


def test_same_seed_same_dataset_and_objects_stay_in_one_split(hand_made, tmp_path):
    a = NaiveExporter(min_items=3, seed=1, progress=False).export(hand_made, out=tmp_path / "a").path
    b = NaiveExporter(min_items=3, seed=1, progress=False).export(hand_made, out=tmp_path / "b").path
    assert (a / "manifest.csv").read_bytes() == (b / "manifest.csv").read_bytes()
    splits = {}
    for row in read_manifest(a):
        assert splits.setdefault(row["item_id"], row["split"]) == row["split"]


def test_max_images_samples_whole_items(hand_made):
    report = NaiveExporter(min_items=3, max_images=3, progress=False).export(hand_made).report
    for c in report["classes"]:
        assert sum(c["images"].values()) <= 3
        assert c["items"] == {"train": 1, "val": 1, "test": 1}


def test_too_few_items_names_the_class_and_keeps_the_old_dataset(hand_made):
    out = NaiveExporter(min_items=3, progress=False).export(hand_made).path
    before = (out / "manifest.csv").read_bytes()
    with pytest.raises(SplitError, match=r"'bust' has 4, 'vase' has 4, 'medal' has 4 \(need at least 5\).*--min-items"):
        NaiveExporter(min_items=5, progress=False).export(hand_made)
    with pytest.raises(SplitError, match="'bust' has 2 item.*raise --max-images"):
        NaiveExporter(min_items=3, max_images=2, progress=False).export(hand_made)
    assert (out / "manifest.csv").read_bytes() == before


def test_interrupted_export_leaves_no_half_dataset(hand_made, monkeypatch):
    out = NaiveExporter(min_items=3, progress=False).export(hand_made).path
    before = (out / "manifest.csv").read_bytes()
    copied, real_copyfile = [], shutil.copyfile

    def copy_then_interrupt(src, dst, **kwargs):
        if len(copied) == 3:
            raise KeyboardInterrupt
        copied.append(real_copyfile(src, dst, **kwargs))

    monkeypatch.setattr("muses.datasets.naive.shutil.copyfile", copy_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        NaiveExporter(min_items=3, seed=5, progress=False).export(hand_made)
    assert (out / "manifest.csv").read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["naive"]


def test_folders_of_killed_exports_are_removed(hand_made):
    datasets = hand_made.datasets_dir
    killed, running = datasets / ".naive.tmp-999999999-abc", datasets / f".naive.tmp-{os.getpid()}-xyz"
    for folder in (killed, running):
        (folder / "images").mkdir(parents=True)
    NaiveExporter(min_items=3, progress=False).export(hand_made)
    assert not killed.exists() and running.exists()


def test_preview_writes_nothing(hand_made):
    report = preview(hand_made, progress=False)
    assert report["summary"]["labeled"] == 15 and report["summary"]["dataset_items"] == 0
    assert not hand_made.datasets_dir.exists()


def test_split_helpers():
    assert parse_split("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    for bad in ("0.7,0.3", "0.5,0.5,0.5", "a,b,c", "0,0.5,0.5", "1.2,-0.1,-0.1"):
        with pytest.raises(SplitError, match="train,val,test"):
            parse_split(bad)
    assert split_counts(4, (0.7, 0.15, 0.15)) == (2, 1, 1)
    assert split_counts(100, (0.7, 0.15, 0.15)) == (70, 15, 15)
    assert split_counts(5, (1.0, 0.0, 0.0)) == (5, 0, 0)
    ids = {"a": [f"a{i}" for i in range(20)], "b": [f"b{i}" for i in range(7)]}
    split = stratified_split(ids, seed=3)
    assert stratified_split(ids, seed=3) == split and stratified_split(ids, seed=4) != split
    assert sorted(split) == sorted(ids["a"] + ids["b"])
    assert [split[i] for i in ids["b"]].count("test") == 1


def test_exporter_registry():
    assert "naive" in available_exporters()
    assert load_exporter("naive") is NaiveExporter
    with pytest.raises(UnknownExporterError, match="unknown exporter 'nope'; available: .*naive"):
        load_exporter("nope")


def test_cli_export_and_errors(hand_made, capsys):
    assert main(["export-classification-data", "--exporter", "naive", "--min-items", "3", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "coverage 79.0%" in out and "wrote" in out and "keyword" in out
    assert main(["export-classification-data", "--exporter", "nope"]) == 2
    assert "available: " in capsys.readouterr().err
    assert main(["export-classification-data", "--min-items", "50"]) == 2
    assert "'bust' has 4" in capsys.readouterr().err
    assert main(["export-classification-data", "--split", "0.5,0.5"]) == 2
    bad = hand_made.root / "bad.toml"
    bad.write_text("[[class]]\nname = 'x'\n", encoding="utf-8")
    assert main(["export-classification-data", "--definitions", str(bad)]) == 2
    assert "class 'x': synonyms" in capsys.readouterr().err
    assert main(["label-preview"]) == 0
    assert "conflicts (first 1 of 1)" in capsys.readouterr().out
    assert main(["label-preview", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["unlabeled"] == 2
    assert main(["label-preview", "--left-out", "left.csv"]) == 0
    assert "left.csv" in capsys.readouterr().out
    assert (hand_made.root / "left.csv").read_text(encoding="utf-8").count("\n") == 1 + 4  # header, c1 e1 u1 u2
    assert main(["label-preview", "--left-out", str(hand_made.root / "nowhere" / "left.csv")]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_met_sample_with_demo_definitions(project, met_sample):
    store = Store.for_project(project)
    assert import_records(store, met_sample / "records.jsonl", preset="met-scrapi").new == 206
    generate_images(project, store=store, workers=1, max_side=64)  # small copies: the test is about labels
    result = NaiveExporter(definitions=REPO / "examples" / "definitions.toml", progress=False).export(project)
    s = result.report["summary"]
    assert (s["items"], s["labeled"], s["conflicts"], s["excluded"], s["unlabeled"]) == (206, 161, 0, 6, 39)
    counts = {c["name"]: c["labeled"] for c in result.report["classes"]}
    assert counts == {"bust": 50, "photograph": 42, "miniature": 35, "medal": 22, "vessel": 12}
    assert min(counts.values()) >= 12
    splits = {}
    for row in read_manifest(result.path):
        assert splits.setdefault(row["item_id"], row["split"]) == row["split"]
    # generate-images set aside 17 truncated downloads, 12 of them labeled; the 34 unlabeled records
    # with photos make the class "other" (fewer than the largest class: none left out).
    assert (s["items_with_images"], s["labeled_with_images"], s["dataset_images"], len(splits)) == (189, 149, 183, 183)
    assert sum(result.report["other"]["items"].values()) == 34
    assert json.loads((result.path / "dataset.json").read_text())["classes"][-1] == "other"
    assert {r["class"] for r in read_manifest(result.path) if r["item_id"] in {"10512"}} <= {"bust"}
    plain = NaiveExporter(definitions=REPO / "examples" / "definitions.toml", other=False, progress=False).export(
        project, out=project.root / "plain")
    assert plain.report["summary"]["dataset_images"] == 149 and "other" not in plain.report
    capped = NaiveExporter(definitions=REPO / "examples" / "definitions.toml", max_images=10, progress=False).export(
        project, out=project.root / "capped")
    assert sum(capped.report["other"]["images"].values()) == 10  # as many as the largest class
    other = NaiveExporter(definitions=REPO / "examples" / "definitions.toml", seed=1, progress=False).export(
        project, out=project.root / "seed1")
    assert (other.path / "manifest.csv").read_bytes() != (result.path / "manifest.csv").read_bytes()
    assert other.report["classes"] == result.report["classes"]  # same counts per class and split


def test_report_counts_a_vetoed_class_as_vetoed_not_overridden():
    d = parse_definitions({"class": [{"name": "scarab", "synonyms": ["scarab"], "exclude": ["scaraboid"]},
                                     {"name": "seal", "synonyms": ["seal"]}]})
    labels = label_records([{"id": "1", "title": "Scarab seal", "object_type": ["Scaraboids"]}], d)
    report = build_report(labels, d, titles={}, with_images=[])
    keywords = {k["keyword"]: k for k in report["keywords"]}
    assert (keywords["scarab"]["vetoed"], keywords["scarab"]["overridden"], keywords["seal"]["decided"]) == (1, 0, 1)
    assert report["summary"]["coverage"] == 1.0


def test_an_unwritable_dataset_folder_is_a_failed_run_and_keeps_the_old_dataset(hand_made, capsys):
    out = NaiveExporter(min_items=3, progress=False).export(hand_made).path
    before = (out / "manifest.csv").read_bytes()
    blocker = hand_made.root / "not-a-folder"
    blocker.write_text("a file where the dataset's folder should go", encoding="utf-8")
    assert main(["export-classification-data", "--min-items", "3", "--out", str(blocker / "naive")]) == 1
    err = capsys.readouterr().err
    assert f"error: cannot write the dataset folder {blocker / 'naive'}: " in err and "Traceback" not in err
    assert (out / "manifest.csv").read_bytes() == before


def test_report_names_its_splits_and_labeling_needs_no_dataset_code(hand_made):
    out = NaiveExporter(min_items=3, progress=False).export(hand_made).path
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["splits"] == ["train", "val", "test"]
    assert "train items / images" in (out / "report.html").read_text(encoding="utf-8")
    code = ("import sys, muses.labeling.report, muses.labeling.matching; "
            "print(sorted(m for m in sys.modules if m.startswith(('muses.datasets', 'muses.collection', 'torch'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_manifest_has_the_contracts_columns(hand_made):
    from muses.datasets.folder import MANIFEST_COLUMNS

    out = NaiveExporter(min_items=3, progress=False).export(hand_made).path
    assert tuple(read_manifest(out)[0]) == MANIFEST_COLUMNS == ("item_id", "image", "class", "split", "keyword", "field")


def test_a_relative_out_folder_is_taken_from_the_project(hand_made, tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["export-classification-data", "--min-items", "3", "--out", "datasets/v2"]) == 0
    assert (hand_made.root / "datasets" / "v2" / "manifest.csv").is_file()
    assert list(elsewhere.iterdir()) == []


def test_an_export_keeps_a_count_per_candidate_not_its_label_and_files(project, tmp_path):
    """Choosing the dataset needs only each candidate's class and number of photos; the chosen
    items are read again for the rest, so memory grows by little more than an id per record."""
    import tracemalloc

    project.definitions_path.write_text(DEFINITIONS, encoding="utf-8")
    photo = project.root / "images" / "shared.jpg"
    photo.parent.mkdir(exist_ok=True)
    PILImage.new("RGB", (8, 8), (200, 100, 50)).save(photo)

    def peak(n: int) -> int:
        with Store.for_project(project).transaction() as session:
            for i in range(n):
                title = ("Bust", "Vase", "Medal", "Plate")[i % 4]  # repeated: the matcher's cache stays small
                session.merge(Item(id=f"{n}-{i:06d}", title=title, images=[
                    Image(position=0, original=f"/p/{i}.jpg", stored_path="images/shared.jpg", status=OK)]))
        tracemalloc.start()
        result = NaiveExporter(max_images=5, min_items=3, progress=False).export(project, out=f"d{n}")
        used = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert sum(c["labeled"] for c in result.report["classes"]) >= 3 * n // 4
        return used

    small = peak(1_000)
    assert peak(7_000) - small < 7_000_000  # with a Label and a list of paths per candidate: 9.5 MB
