"""`muses classify` on real Met photos with a real (tiny) model: stored JSON, averaging, resuming."""
from __future__ import annotations

import json

import numpy as np
import pytest

from muses.classify import classify_collection
from muses.cli import main
from muses.collection.store import Image, Item, Store
from muses.model.loading import load_model
from muses.search import ClassTerm, open_engine
from muses.testing.catalog import add_met_items

# The tiny model knows shapes, not the project's definitions: that warning is expected here.
pytestmark = pytest.mark.filterwarnings("ignore::muses.model.loading.DefinitionsMismatchWarning")


@pytest.fixture
def met_project(any_store_project, met_sample):
    """Six real Met items with their photos (one with two), one without images, one whose only
    image is corrupt, one with a missing second photo; on each store backend."""
    project = any_store_project
    add_met_items(project, met_sample, 6)
    store = Store.for_project(project)
    items = list(store.items())
    images_dir = project.images_dir
    items[0].images.append(Image(position=1, original="x", stored_path=items[1].images[0].stored_path, status="ok"))
    items[1].images.append(Image(position=1, original="x", stored_path="images/gone.jpg", status="ok"))
    (images_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    items.append(Item(id="broken", title="Broken photo", images=[Image(position=0, original="x", stored_path="images/broken.jpg", status="ok")]))
    items.append(Item(id="no-images", title="Never photographed"))
    items.append(Item(id="problem", title="Grey placeholder", images=[Image(position=0, original="x", status="problem", problem="blank")]))
    with store.transaction() as s:
        s.add_all(items)  # merges the changed ones back
    return project


def test_classify_stores_top_k_and_lists_items_left_out(met_project, tiny_model_path):
    report = classify_collection(met_project, model_path=tiny_model_path, top_k=2, batch_size=4)
    store = Store.for_project(met_project)
    ids = [i.id for i in store.items()]
    assert sorted(report.classified) == sorted(i for i in ids if i not in {"broken", "no-images", "problem"})
    assert report.without_images == ["no-images", "problem"]
    assert list(report.failed) == ["broken"]
    assert {p.rsplit("/", 1)[-1] for _, p, _ in report.unreadable} == {"broken.jpg", "gone.jpg"}
    clf = load_model(tiny_model_path)
    for item in store.items(report.classified):
        c = item.classification
        assert c["model"] == "tiny" and c["date"].startswith("20")
        assert [k["name"] for k in c["classes"]][0] in clf.class_names and len(c["classes"]) == 2
        probs = [k["probability"] for k in c["classes"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    # an item's classes are the mean over its photos
    first = store.get_item(ids[0])
    paths = [met_project.path(im.stored_path) for im in first.images]
    expected = clf.predict_new(paths).mean(axis=0)
    top = first.classification["classes"][0]
    assert top["probability"] == pytest.approx(float(expected.max()), abs=1e-4)
    assert top["name"] == clf.class_names[int(np.argmax(expected))]
    assert store.get_item("broken").classification is None
    # the search index picks the predictions up by itself
    hits = open_engine(store).search([ClassTerm(top["name"], 1.0)], limit=50)
    assert ids[0] in {h.item_id for h in hits}


def test_interrupted_run_resumes_where_it_stopped(met_project, tiny_model_path):
    committed: list[list[str]] = []

    def stop_after_first_batch(ids):
        committed.append(ids)
        raise KeyboardInterrupt  # what Ctrl-C raises between two batches

    with pytest.raises(KeyboardInterrupt):
        classify_collection(met_project, model_path=tiny_model_path, batch_size=2, on_batch=stop_after_first_batch)
    store = Store.for_project(met_project)
    done = {i.id for i in store.items() if i.classification}
    assert done == set(committed[0]) and 0 < len(done) < 6
    dates = {i.id: i.classification["date"] for i in store.items(done)}
    report = classify_collection(met_project, model_path=tiny_model_path, batch_size=2)
    assert report.skipped_existing == len(done)
    assert not done & set(report.classified) and len(done) + len(report.classified) == 6
    assert {i.id: i.classification["date"] for i in store.items(done)} == dates
    again = classify_collection(met_project, model_path=tiny_model_path, update_existing=True)
    assert len(again.classified) == 6 and again.skipped_existing == 0


def test_cli_classify_and_similar(met_project, tiny_model_path, capsys):
    assert main(["classify", "--model", str(tiny_model_path), "--top-k", "3", "--batch-size", "3"]) == 0
    out = capsys.readouterr().out
    assert "classified now" in out and "no-images, problem" in out and "broken" in out
    saved = json.loads((met_project.root / "classify-report.json").read_text())
    assert saved["classified"] == 6 and saved["failed"] == {"broken": "none of its usable images could be read"}
    assert all(len(i.classification["classes"]) == 3 for i in Store.for_project(met_project).items() if i.classification)
    assert main(["classify", "--model", str(tiny_model_path)]) == 0
    assert "already classified (kept)" in capsys.readouterr().out

    first = next(Store.for_project(met_project).items()).id
    assert main(["similar", "--ids", first, "--json"]) == 0
    similar = json.loads(capsys.readouterr().out)
    assert similar["similar"] and first not in {h["item_id"] for h in similar["similar"]}
    photo = met_project.images_dir / f"{first}.jpg"
    assert main(["similar", str(photo), "--model", str(tiny_model_path), "--limit", "3"]) == 0
    assert "similar objects" in capsys.readouterr().out


def test_cli_bad_input_exits_2(met_project, tmp_path, capsys):
    assert main(["classify", "--model", str(tmp_path / "none.safetensors")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["similar", "--ids", "nope"]) == 2
    assert main(["similar"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["classify", "--top-k", "0"])
    assert exc.value.code == 2


@pytest.mark.slow  # exports the model to ONNX first
def test_runtime_choice_reaches_the_model(met_project, tiny_model_path):
    torch_report = classify_collection(met_project, model_path=tiny_model_path, runtime="torch", top_k=3)
    store = Store.for_project(met_project)
    by_torch = {i.id: i.classification["classes"] for i in store.items(torch_report.classified)}
    onnx_report = classify_collection(met_project, model_path=tiny_model_path, runtime="onnx", top_k=3,
                                      update_existing=True)
    assert type(load_model(tiny_model_path, runtime="onnx")).__name__ == "OnnxPredictor"
    for item in store.items(onnx_report.classified):
        assert [c["name"] for c in item.classification["classes"]] == [c["name"] for c in by_torch[item.id]]
        for a, b in zip(item.classification["classes"], by_torch[item.id]):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-3)


@pytest.mark.slow  # a real process, killed
def test_killed_run_resumes(project, met_sample, tiny_model_path):
    """`muses classify` killed (SIGKILL, like a crash or a power cut) after its first commit:
    the store holds whole batches only, and the next run classifies exactly the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    ids = add_met_items(project, met_sample, 80)
    store = Store.for_project(project)
    cmd = [sys.executable, "-m", "muses", "classify", "--model", str(tiny_model_path), "--batch-size", "1"]
    proc = subprocess.Popen(cmd, env={**os.environ, "MUSES_PROJECT": str(project.root)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not store.stats()["items_classified"]:
        assert proc.poll() is None and time.monotonic() < deadline, "classify ended before its first commit"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {i.id for i in store.items() if i.classification}
    assert 0 < len(done) < len(ids)
    report = classify_collection(project, model_path=tiny_model_path)
    assert report.skipped_existing == len(done)
    assert set(report.classified) == set(ids) - done


def test_an_unreadable_photo_does_not_send_its_item_back_to_every_run(met_project, tiny_model_path):
    """Item 2's second photo is missing: it is never embedded, yet the item is done."""
    first = classify_collection(met_project, model_path=tiny_model_path)
    assert any(path.endswith("gone.jpg") for _, path, _ in first.unreadable)
    again = classify_collection(met_project, model_path=tiny_model_path)
    assert again.classified == [] and again.skipped_existing == len(first.classified)
