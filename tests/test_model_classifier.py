"""Training on the synthetic shapes dataset: accuracy, resume, early stopping, caching, predictions."""
from __future__ import annotations

import csv
import shutil

import numpy as np
import PIL.Image
import pytest
import torch

from muses.model import features
from muses.datasets.folder import DatasetError, read_dataset
from muses.errors import MusesError
from muses.imaging import open_image
from muses.model.loading import load_model
from muses.naive_classification.helpers import predict_image_path_dict, predict_items, setup_classifier
from muses.model.predictor import resolve_device
from muses.model.training import Phase, TrainingError
from muses.model.views import DETERMINISTIC, AugmentCfg, ViewDataset


def _setup(dataset, tmp_path, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    kw = {"seed": 0, "views": 2, "workers": 0, "cache_dir": tmp_path / "cache", "models_dir": tmp_path / "models", **kw}
    return setup_classifier(64, mode="train", dataset=dataset, project=tmp_path, **kw)


def test_tiny_model_learns_the_shapes(tiny_model_path, shapes_dataset):
    clf = load_model(tiny_model_path, runtime="torch")  # the classifier itself, not its ONNX export
    assert clf.history[-1]["val_accuracy"] >= 0.9
    test = read_dataset(shapes_dataset).split("test")
    probs = clf.predict_new([s.path for s in test])
    accuracy = float((probs.argmax(1) == np.array([s.label for s in test])).mean())
    print(f"shapes test accuracy: {accuracy:.3f}")
    assert accuracy >= 0.9


class Interrupt(KeyboardInterrupt):
    pass


def _stop_after(n):
    def callback(record):
        if record["epoch"] == n:
            raise Interrupt
    return callback


RESUME_PHASES = [Phase(3, 0, 3e-3), Phase(2, 2, 1e-4, decay=0.01)]


@pytest.fixture(scope="module")
def uninterrupted(shapes_dataset, tmp_path_factory):
    whole = _setup(shapes_dataset, tmp_path_factory.mktemp("whole"))
    whole.fit(RESUME_PHASES, model_name="m")
    return whole


@pytest.mark.parametrize("stop_at", [2, 4])  # in the transfer phase, in the fine-tuning phase
def test_interrupted_run_resumes_to_the_same_weights(shapes_dataset, tmp_path, stop_at, uninterrupted):
    phases, whole = RESUME_PHASES, uninterrupted
    first = _setup(shapes_dataset, tmp_path / "b")
    with pytest.raises(Interrupt):
        first.fit(phases, model_name="m", callback=_stop_after(stop_at))
    assert (tmp_path / "b" / "models" / "m.checkpoint.safetensors").is_file()
    resumed = _setup(shapes_dataset, tmp_path / "b")
    history = resumed.fit(phases, model_name="m", resume=True)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert not (tmp_path / "b" / "models" / "m.checkpoint.safetensors").exists()
    for (k, a), b in zip(whole.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    assert [h["train_loss"] for h in whole.history] == pytest.approx([h["train_loss"] for h in resumed.history], abs=1e-5)


def test_resume_refuses_a_checkpoint_from_other_settings(shapes_dataset, tmp_path):
    clf = _setup(shapes_dataset, tmp_path)
    with pytest.raises(Interrupt):
        clf.fit([Phase(3, 0, 3e-3)], model_name="m", callback=_stop_after(1))
    other = _setup(shapes_dataset, tmp_path, batch_size=8)
    with pytest.raises(TrainingError, match="other settings"):
        other.fit([Phase(3, 0, 3e-3)], model_name="m", resume=True)


def test_same_seed_same_model_other_seed_differs(shapes_dataset, tmp_path):
    runs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        clf = _setup(shapes_dataset, tmp_path / name, seed=seed)
        clf.fit([Phase(2, 0, 3e-3)], save=False)
        runs.append(clf.net.fc.weight.detach().clone())
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_early_stopping_restores_the_best_epoch(shapes_dataset, tmp_path):
    clf = _setup(shapes_dataset, tmp_path, early_stopping=1, restore_best=True)
    history = clf.fit([Phase(30, 0, 5.0)], save=False)  # an absurd lr: validation loss soon worsens
    assert len(history) < 30
    best = min(h["val_loss"] for h in history)
    val = read_dataset(shapes_dataset).split("val")
    probs = clf.predict_new([s.path for s in val])
    loss = torch.nn.functional.nll_loss(torch.log(torch.from_numpy(probs)), torch.tensor([s.label for s in val]))
    assert float(loss) == pytest.approx(best, rel=0.05)


def test_feature_cache_is_reused_and_keyed_by_content(shapes_dataset, tmp_path, monkeypatch):
    calls = []
    original = features.fill_from_images
    monkeypatch.setattr(features, "fill_from_images", lambda *a, **k: calls.append(original(*a, **k)) or calls[-1])
    _setup(shapes_dataset, tmp_path).fit([Phase(1, 0, 1e-3)], save=False)
    _setup(shapes_dataset, tmp_path).fit([Phase(1, 0, 1e-3)], save=False)
    n_train = len(read_dataset(shapes_dataset).split("train"))
    # two augmented views per training photo, one per validation photo, and one plain view per
    # training photo for the out-of-fold calibration
    n_views = n_train * 2 + len(read_dataset(shapes_dataset).split("val")) + n_train
    assert calls == [n_views]  # the second run computes nothing
    # A changed image gets new entries; an other image size is another cache file.
    copy = shutil.copytree(shapes_dataset, tmp_path / "copy")
    changed = copy / "images" / "circle_000.png"
    PIL.Image.open(changed).transpose(PIL.Image.Transpose.ROTATE_90).save(changed)
    _setup(copy, tmp_path).fit([Phase(1, 0, 1e-3)], save=False)
    assert calls[-1] == 3  # circle_000 is a training image: its two augmented views and its plain one
    setup_classifier(48, dataset=copy, project=tmp_path, views=2, workers=0, cache_dir=tmp_path / "cache",
                     models_dir=tmp_path / "models").fit([Phase(1, 0, 1e-3)], save=False)
    assert calls[-1] == n_views
    assert len(list((tmp_path / "cache").glob("pooled-*.safetensors"))) == 2


def test_fine_tuning_without_trunk_cache_gives_the_same_result(shapes_dataset, tmp_path):
    """The trunk cache is an optimization only: fp16 storage aside, training is unchanged."""
    losses = []
    for name, cache_trunk in (("cached", True), ("plain", False)):
        clf = _setup(shapes_dataset, tmp_path / name, cache_trunk=cache_trunk)
        history = clf.fit([Phase(3, 2, 1e-3)], save=False)
        losses.append([h[k] for h in history for k in ("train_loss", "val_loss")])
    assert losses[0] == pytest.approx(losses[1], abs=5e-3)


def test_predicting_a_list_averages(tiny_model_path, shapes_dataset):
    paths = [s.path for s in read_dataset(shapes_dataset).split("test")[:3]]
    clf = load_model(tiny_model_path)
    per_image = clf.predict_new(paths)
    assert per_image.shape == (3, 3)
    np.testing.assert_allclose(per_image.sum(1), 1.0, rtol=1e-5)
    ranked = predict_image_path_dict(paths, model_path=tiny_model_path)
    assert list(ranked.values()) == sorted(ranked.values(), reverse=True)
    mean = per_image.mean(0)
    for name, p in ranked.items():
        assert p == pytest.approx(mean[clf.class_names.index(name)], abs=1e-6)
    features_ = clf.extract_features([open_image(p) for p in paths])
    assert features_.shape == (3, clf.cfg.num_features)


def test_predict_items_uses_the_stored_images(tiny_model_path, shapes_dataset, project):
    from muses.collection.store import Image, Item, Store

    images = sorted((shapes_dataset / "images").glob("triangle_*.png"))[:2]
    (project.root / "images").mkdir()
    for p in images:
        shutil.copy(p, project.root / "images" / p.name)
    store = Store.for_project(project)
    with store.transaction() as s:
        item = Item(id="t1", title="a triangle")
        item.images = [Image(position=i, original=str(p), stored_path=f"images/{p.name}", status="ok")
                       for i, p in enumerate(images)]
        item.images.append(Image(position=9, original="broken.jpg", status="problem", problem="corrupt"))
        s.add(item)
    ranked = predict_items([store.get_item("t1")], model_path=tiny_model_path)
    assert next(iter(ranked)) == "triangle"
    assert ranked == predict_image_path_dict([project.root / "images" / p.name for p in images], tiny_model_path)
    with pytest.raises(MusesError, match="usable image"):
        predict_items([Item(id="x", title="none")], model_path=tiny_model_path)


def test_dataset_errors_name_the_line_and_corrupt_images_are_listed(shapes_dataset, tmp_path):
    copy = shutil.copytree(shapes_dataset, tmp_path / "ds")
    (copy / "images" / "circle_000.png").write_bytes(b"not an image")
    ds = read_dataset(copy)
    assert [name for name, _ in ds.skipped] == ["images/circle_000.png"]
    rows = list(csv.reader((copy / "manifest.csv").open()))
    rows[3][2] = "hexagon"
    with (copy / "manifest.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(DatasetError, match="line 4: class 'hexagon'"):
        read_dataset(copy)
    with pytest.raises(DatasetError, match="not a dataset folder"):
        read_dataset(tmp_path)


def test_bad_arguments_are_refused(shapes_dataset, tmp_path):
    with pytest.raises(MusesError, match="mode"):
        setup_classifier(64, mode="fit", dataset=shapes_dataset, project=tmp_path)
    with pytest.raises(MusesError, match="views"):
        _setup(shapes_dataset, tmp_path, views=0)
    clf = _setup(shapes_dataset, tmp_path)
    with pytest.raises(MusesError, match="lr"):
        clf.set_optimizer(0)
    if not torch.cuda.is_available():
        with pytest.raises(MusesError, match="no CUDA"):
            resolve_device("cuda")


def test_interrupted_feature_extraction_keeps_what_it_computed(shapes_dataset, tmp_path, monkeypatch):
    clf = _setup(shapes_dataset, tmp_path, batch_size=8)
    pairs = [(s, DETERMINISTIC) for s in clf.dataset.samples]

    def make_dataset(todo):
        return ViewDataset(todo, clf.cfg.preprocess, AugmentCfg(), seed=0)

    backbone = clf.net.backbone.eval()
    batches = []

    def stop_at_third_batch(x):
        batches.append(len(x))
        if len(batches) == 3:
            raise KeyboardInterrupt
        return backbone(x)

    monkeypatch.setattr(features, "SAVE_EVERY", 1)
    cache = features.open_cache(tmp_path / "cache", "pooled", run="interrupted")
    with pytest.raises(KeyboardInterrupt):
        features.fill_from_images(cache, stop_at_third_batch, pairs, make_dataset, batch_size=8, workers=0,
                                  device=clf.device, desc="features")
    reopened = features.open_cache(tmp_path / "cache", "pooled", run="interrupted")
    assert len(reopened.entries) == 16  # the two finished batches were written
    done = features.fill_from_images(reopened, backbone, pairs, make_dataset, batch_size=8, workers=0,
                                     device=clf.device, desc="features")
    assert done == len(pairs) - 16 and len(reopened.entries) == len(pairs)
