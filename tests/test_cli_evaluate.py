"""`muses evaluate` and `muses label-issues` end to end, on a real tiny model and a real store."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw

from muses.cli import main
from muses.collection.store import Image, Item, Store
from test_imaging import png_header_only
from test_analysis_metrics import Gallery


def _read_manifest(dataset):
    with (dataset / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def eval_project(project, shapes_dataset):
    """The shapes items in the project's store (titles, object types) plus three unlabeled
    items with photos: a drawn circle, a drawn square and an undecodable file."""
    rows = _read_manifest(shapes_dataset)
    (project.root / "images").mkdir()
    unlabeled = {}
    for item_id, shape in (("u-circle", "circle"), ("u-square", "square")):
        img = PILImage.new("RGB", (64, 64), (230, 220, 200))
        draw = ImageDraw.Draw(img)
        (draw.ellipse if shape == "circle" else draw.rectangle)((14, 14, 50, 50), fill=(20, 30, 40))
        img.save(project.root / "images" / f"{item_id}.png")
        unlabeled[item_id] = f"images/{item_id}.png"
    (project.root / "images" / "u-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    unlabeled["u-broken"] = "images/u-broken.png"
    with Store.for_project(project).transaction() as s:
        for r in rows:
            s.add(Item(id=r["item_id"], title=f"A {r['class']} <drawn>", object_type=["Drawings", r["class"].title()]))
        for item_id, path in unlabeled.items():
            s.add(Item(id=item_id, title=f"Unlabeled {item_id}", object_type=["Unknown"],
                       images=[Image(original=path, stored_path=path, status="ok")]))
    return project


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_json_tta_and_files(eval_project, tiny_model_path, shapes_dataset, capsys):
    code, out, _ = _run(capsys, "evaluate", "--model", str(tiny_model_path), "--dataset", str(shapes_dataset), "--json", "--tta")
    assert code == 0
    report = json.loads(out)  # stdout holds the JSON and nothing else
    m = report["metrics"]
    assert report["split"] == "test" and m["n"] == 9  # 3 test photos per class
    cm = np.array(m["confusion"])
    assert cm.sum() == 9 and m["accuracy"] == pytest.approx(np.trace(cm) / 9)
    assert [c["name"] for c in m["per_class"]] == ["circle", "square", "triangle"]
    assert [c["support"] for c in m["per_class"]] == [3, 3, 3]
    assert report["tta"]["n"] == 9 and 0 <= report["tta"]["accuracy"] <= 1
    files = {k: eval_project.plots_dir / v.rsplit("/", 1)[-1] for k, v in report["files"].items()}
    assert files["confusion"].name == "tiny_test_confusion.png"
    with PILImage.open(files["confusion"]) as im:
        assert im.format == "PNG"
    assert json.loads(files["report"].read_text(encoding="utf-8"))["metrics"] == m
    assert 0 <= m["ece"] <= 1 and files["reliability"].name == "tiny_test_reliability.png"
    with PILImage.open(files["reliability"]) as im:
        assert im.format == "PNG"
    gallery = Gallery(files["mistakes"])
    n_wrong = 9 - int(np.trace(cm))
    assert len(gallery.ids) == n_wrong and gallery.thumbnails == n_wrong
    assert any("most confused" in t for t in gallery.text)


def test_evaluate_table_and_gallery_of_mistakes(eval_project, tiny_model_path, shapes_dataset, tmp_path, capsys):
    # A copy of the shapes dataset whose test circles are all labeled "square": three sure mistakes.
    dataset = tmp_path / "flipped"
    shutil.copytree(shapes_dataset, dataset)
    rows = _read_manifest(dataset)
    flipped = [r["item_id"] for r in rows if r["split"] == "test" and r["class"] == "circle"]
    for r in rows:
        if r["item_id"] in flipped:
            r["class"] = "square"
    with (dataset / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code, out, _ = _run(capsys, "evaluate", "--model", str(tiny_model_path), "--dataset", str(dataset),
                        "--out", str(tmp_path / "out"), "--top-k", "2", "--tta")
    assert code == 0
    assert "precision" in out and "macro-F1" in out and "log loss" in out and "most confused" in out
    assert "calibration error (ECE)" in out and "reliability:" in out
    assert "F1 with TTA" in out
    assert str(tmp_path / "out" / "tiny_test_mistakes.html") in out
    gallery = Gallery(tmp_path / "out" / "tiny_test_mistakes.html")
    assert len(gallery.ids) == 2 and set(gallery.ids) <= set(flipped)  # --top-k 2 of the 3
    assert all(item_id in gallery.text for item_id in gallery.ids)  # each card shows its object number
    assert out.rstrip().splitlines()[-1].startswith("next: ") and "muses label-issues" in out.splitlines()[-1]
    assert "A circle <drawn>" in gallery.text and "Drawings / Circle" in gallery.text  # from the store
    report = json.loads((tmp_path / "out" / "tiny_test_evaluation.json").read_text(encoding="utf-8"))
    assert {"naive_label": "square", "predicted": "circle", "count": 3} in report["most_confused"]


def test_evaluate_gold(eval_project, tiny_model_path, shapes_dataset, tmp_path, capsys):
    from muses.model.loading import load_model

    test_rows = [r for r in _read_manifest(shapes_dataset) if r["split"] == "test"][:4]
    clf = load_model(tiny_model_path, project=eval_project)
    predicted = [clf.class_names[int(p.argmax())] for p in clf.predict_new([shapes_dataset / r["image"] for r in test_rows])]
    # gold: 2 agree with the model, 1 disagrees, 1 has a class the model lacks, 1 id is not in the split
    gold = [(test_rows[0]["item_id"], predicted[0]), (test_rows[1]["item_id"], predicted[1]),
            (test_rows[2]["item_id"], "circle" if predicted[2] != "circle" else "square"),
            (test_rows[3]["item_id"], "painting"), ("nope-1", "circle")]
    gold_file = tmp_path / "gold.csv"
    gold_file.write_text("id,class\n" + "".join(f"{i},{c}\n" for i, c in gold), encoding="utf-8")
    code, out, _ = _run(capsys, "evaluate", "--model", str(tiny_model_path), "--dataset", str(shapes_dataset),
                        "--gold", str(gold_file), "--json")
    assert code == 0
    g = json.loads(out)["gold"]
    assert g["n"] == 3 and g["accuracy"] == pytest.approx(2 / 3)
    assert g["unknown_ids"] == ["nope-1"] and g["unknown_classes"] == {test_rows[3]["item_id"]: "painting"}
    code, out, _ = _run(capsys, "evaluate", "--model", str(tiny_model_path), "--dataset", str(shapes_dataset), "--gold", str(gold_file))
    assert "against the gold labels (3 items)" in out and "nope-1" in out and "'painting'" in out


def test_evaluate_bad_input(eval_project, tiny_model_path, shapes_dataset, tmp_path, capsys):
    code, _, err = _run(capsys, "evaluate", "--model", str(tiny_model_path), "--dataset", str(tmp_path / "none"))
    assert code == 2 and "not a dataset folder" in err
    bad_gold = tmp_path / "gold.csv"
    bad_gold.write_text("item,label\n1,circle\n", encoding="utf-8")
    code, _, err = _run(capsys, "evaluate", "--model", str(tiny_model_path), "--dataset", str(shapes_dataset), "--gold", str(bad_gold))
    assert code == 2 and "id,class" in err
    code, _, err = _run(capsys, "evaluate", "--model", str(tmp_path / "missing.safetensors"), "--dataset", str(shapes_dataset))
    assert code == 2 and "missing" in err
    from muses.testing.datasets import make_shapes_dataset

    stars = make_shapes_dataset(tmp_path / "stars", per_class=5, classes=("circle", "star"))
    code, _, err = _run(capsys, "evaluate", "--model", str(tiny_model_path), "--dataset", str(stars))
    assert code == 2 and "classes the model does not know: ['star']" in err


def test_label_issues_cli(eval_project, tiny_model_path, shapes_dataset, capsys):
    code, out, _ = _run(capsys, "label-issues", "--model", str(tiny_model_path), "--dataset", str(shapes_dataset),
                        "--folds", "3", "--threshold", "0.5")
    assert code == 0
    assert "labeled records reviewed" in out and "48" in out
    assert "u-broken" in out  # the undecodable unlabeled photo is listed as skipped
    plots = eval_project.plots_dir
    with (plots / "tiny_suggested_labels.csv").open(newline="", encoding="utf-8") as fh:
        suggested = {r["id"]: r for r in csv.DictReader(fh)}
    assert set(suggested) <= {"u-circle", "u-square"} and suggested  # a probability >= 0.5 for 3 classes
    for r in suggested.values():
        assert r["title"].startswith("Unlabeled") and float(r["confidence"]) >= 0.5
    with (plots / "tiny_label_issues.csv").open(newline="", encoding="utf-8") as fh:
        assert csv.DictReader(fh).fieldnames[:5] == ["id", "title", "object_type", "naive_label", "suggested"]
    gallery = Gallery(plots / "tiny_suggested_labels.html")
    assert gallery.ids == list(suggested)
    assert all(item_id in gallery.text for item_id in gallery.ids)  # each card shows its object number
    code, out, _ = _run(capsys, "label-issues", "--model", str(tiny_model_path), "--dataset", str(shapes_dataset),
                        "--folds", "3", "--features", "pretrained", "--gallery-size", "1")
    assert code == 0 and "labeled records reviewed" in out
    assert len(Gallery(plots / "tiny_suggested_labels.html").ids) <= 1


def test_label_issues_bad_input(eval_project, tiny_model_path, shapes_dataset, capsys):
    code, _, err = _run(capsys, "label-issues", "--model", str(tiny_model_path), "--dataset", str(shapes_dataset), "--folds", "1")
    assert code == 2 and "folds must be" in err
    with pytest.raises(SystemExit) as exc:
        main(["label-issues", "--threshold", "1.5"])
    assert exc.value.code == 2




def test_evaluate_lists_a_decompression_bomb_and_writes_a_relative_out_in_the_project(
        eval_project, tiny_model_path, shapes_dataset, tmp_path, monkeypatch, capsys):
    dataset = shutil.copytree(shapes_dataset, tmp_path / "ds")
    bomb = next(r for r in _read_manifest(dataset) if r["split"] == "test")["image"]
    png_header_only(dataset / bomb, 20_000, 20_000)  # 400 megapixels announced, a few bytes of data
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, _ = _run(capsys, "evaluate", "--model", str(tiny_model_path), "--dataset", str(dataset), "--json",
                        "--out", "review")
    assert code == 0
    report = json.loads(out)
    assert report["metrics"]["n"] == 8  # the other test photos
    (skipped,) = report["skipped"]
    assert skipped["image"] == bomb and "max_pixels" in skipped["why"]
    assert (eval_project.root / "review" / "tiny_test_evaluation.json").is_file()  # --out is relative to the project
    assert not (elsewhere / "review").exists()
