"""ONNX export and the ONNX Runtime predictor (muses.model.onnx)."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from muses.cli import main
from muses.collection.store import Store
from muses.model import onnx as onnx_runtime
from muses.model.classifier import Classifier
from muses.model.loading import RuntimeFallbackWarning, load_model
from muses.model.files import read_model, save_model
from muses.imaging import UnreadableImage, open_image
from muses.model.onnx import OnnxError, OnnxPredictor, load_onnx
from muses.model.onnx_export import export_onnx
from muses.model.predictor import Predictor
from muses.testing.catalog import add_met_items


def _copy_model(src, dest_dir, name="m"):
    dest_dir.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy(src.with_suffix(suffix), dest_dir / f"{name}{suffix}")
    return dest_dir / f"{name}.safetensors"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_path):
    """A copy of the tiny model, exported once through `muses export-onnx` (the export takes
    seconds; every test here shares it). Returns (model path, CLI output)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("onnx")
    model = _copy_model(tiny_model_path, root / "models")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        # a relative --out is taken from the project folder, not from the current one
        code = main(["export-onnx", "--project", str(root), "--model", str(model), "--out", "models/m.onnx"])
    assert code == 0, out.getvalue()
    return model, out.getvalue()


@pytest.fixture(scope="module")
def met_photos(met_sample):
    return sorted((met_sample / "images").glob("*.jpg"))[:12]


def test_export_writes_onnx_beside_the_model_and_reports(exported):
    model, output = exported
    onnx_file = model.with_suffix(".onnx")
    assert onnx_file.is_file() and onnx_runtime.is_current(model)
    assert str(onnx_file) in output and "max |p_onnx - p_torch|" in output
    diff = float(output.split("max |p_onnx - p_torch|")[1].split()[0])
    assert diff < 1e-4


def test_onnx_predicts_like_torch_on_real_met_photos(exported, met_photos):
    model, _ = exported
    torch_clf = Classifier.load(model, device="cpu")
    onnx_clf = load_onnx(model, reexport=False, workers=2)
    assert onnx_clf.class_names == torch_clf.class_names and onnx_clf.cfg.preprocess == torch_clf.cfg.preprocess
    expected, got = torch_clf.predict_new(met_photos), onnx_clf.predict_new(met_photos, batch_size=5)
    diff = float(np.abs(got - expected).max())
    print(f"largest probability difference onnx vs torch on {len(met_photos)} Met photos: {diff:.2e}")
    assert got.shape == (len(met_photos), 3) and diff < 1e-3
    assert (got.argmax(1) == expected.argmax(1)).all()
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    # uploads: PIL images give the same answer as their files
    pil = [open_image(p, onnx_clf.cfg.input_size) for p in met_photos[:4]]
    np.testing.assert_allclose(onnx_clf.predict_pil(pil, batch_size=3), got[:4], atol=1e-6)
    feats = onnx_clf.extract_features(pil)
    assert feats.shape == (4, onnx_clf.cfg.num_features)
    assert np.abs(feats - torch_clf.extract_features(pil)).max() < 1e-3


def test_unreadable_image_is_named(exported, tmp_path, met_photos):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really")
    clf = load_onnx(exported[0], reexport=False)
    with pytest.raises(UnreadableImage, match="cannot read image .*bad.jpg"):
        clf.predict_new([met_photos[0], bad])
    assert clf.predict_new([]).shape == (0, 3) and clf.predict_pil([]).shape == (0, 3)


def test_stale_onnx_file_is_detected_and_refused(exported, tmp_path):
    model = _copy_model(exported[0], tmp_path)
    shutil.copy(exported[0].with_suffix(".onnx"), tmp_path / "m.onnx")
    assert onnx_runtime.is_current(model)
    state, cfg = read_model(model)
    state["fc.bias"] = state["fc.bias"] + 1.0  # a retrained model
    save_model(model, state, cfg)
    assert not onnx_runtime.is_current(model)
    with pytest.raises(OnnxError, match="is stale .*muses export-onnx"):
        load_onnx(model, reexport=False)
    (tmp_path / "m.onnx").unlink()
    with pytest.raises(OnnxError, match="does not exist"):
        load_onnx(model, reexport=False)


def test_load_model_runtime_dispatch(exported, tmp_path):
    model, _ = exported
    assert isinstance(load_model(model, runtime="auto", project=tmp_path), OnnxPredictor)  # NAME.onnx is there
    assert isinstance(load_model(model, runtime="torch", project=tmp_path), Classifier)
    assert isinstance(load_model(model, runtime="onnx", project=tmp_path), OnnxPredictor)
    clf = load_model(model, project=tmp_path)
    assert clf.cfg.history and clf.name == "m"


def test_export_errors_are_usage_errors(tmp_path, capsys, project):
    assert main(["export-onnx", "--model", str(tmp_path / "nope.safetensors")]) == 2
    assert "train one with `muses train-model`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["export-onnx", "--opset", "0"])
    assert exc.value.code == 2
    with pytest.raises(OnnxError, match="opset must be an integer >= 18"):
        export_onnx(tmp_path / "nope.safetensors", opset=11)


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["export-onnx", "--help"])
    assert "muses export-onnx --model models/vases.safetensors" in capsys.readouterr().out


def test_auto_runtime_falls_back_to_torch_saying_why(exported, tmp_path):
    bare = _copy_model(exported[0], tmp_path, "bare")
    (tmp_path / "bare.onnx").mkdir()  # something in the way: the export could never be written
    with pytest.warns(RuntimeFallbackWarning, match="bare.onnx is not a file.*predicting with torch instead"):
        clf = load_model(bare, runtime="auto", project=tmp_path)
    assert isinstance(clf, Classifier)


@pytest.mark.parametrize("runtime, heavy", [("auto", "[]"), ("torch", "'torch'")])
def test_one_photo_predict_with_onnx_never_imports_torch(exported, met_photos, runtime, heavy):
    """The fast path's start-up: torch takes seconds to import, ONNX Runtime does not need it."""
    model, _ = exported
    script = ("import sys; from muses.cli import main; "
              f"code = main(['predict', {str(met_photos[0])!r}, '--model', {str(model)!r}, '--json', "
              f"'--runtime', {runtime!r}, '--project', {str(model.parent.parent)!r}]); "
              "print('heavy modules:', sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules)); "
              "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("heavy modules:"))
    assert heavy in line and '"classes"' in done.stdout


@pytest.mark.slow
def test_train_model_writes_the_onnx_file(shapes_dataset, tmp_path, capsys):
    code = main(["train-model", "--project", str(tmp_path), "--dataset", str(shapes_dataset), "--model-name", "t",
                 "--epochs", "1", "--no-fine-tuning", "--image-size", "64", "--views", "1", "--workers", "0"])
    assert code == 0, capsys.readouterr()
    model = tmp_path / "models" / "t.safetensors"
    assert onnx_runtime.is_current(model) and "t.onnx" in capsys.readouterr().out
    assert not list(model.parent.glob("*.tmp"))
    assert isinstance(load_model(model, project=tmp_path), OnnxPredictor)


@pytest.mark.slow
def test_a_missing_onnx_file_is_exported_on_first_use(exported, tmp_path):
    bare = _copy_model(exported[0], tmp_path, "bare")  # a model trained before train-model wrote ONNX
    assert isinstance(load_model(bare, runtime="auto", project=tmp_path), OnnxPredictor)
    assert onnx_runtime.is_current(bare)


@pytest.mark.slow
def test_stale_onnx_file_is_exported_again(exported, tmp_path):
    model = _copy_model(exported[0], tmp_path)
    shutil.copy(exported[0].with_suffix(".onnx"), tmp_path / "m.onnx")
    state, cfg = read_model(model)
    state["fc.bias"] = state["fc.bias"] + 1.0
    save_model(model, state, cfg)
    clf = load_model(model, runtime="auto")
    assert isinstance(clf, OnnxPredictor) and onnx_runtime.is_current(model)
    img = Image.new("RGB", (64, 64), (250, 250, 250))
    torch_probs = Classifier.load(model, device="cpu").predict_pil([img])
    assert np.abs(clf.predict_pil([img]) - torch_probs).max() < 1e-4


def test_both_runtimes_are_predictors_and_label_review_takes_either(exported, met_photos, tmp_path):
    """label-issues asks the Predictor protocol only (features and their cache key): no torch
    internals, so the ONNX predictor needs no torch network."""
    from muses.analysis.label_issues import feature_extractor, image_features

    clf = load_onnx(exported[0], reexport=False)
    assert isinstance(clf, Predictor) and isinstance(Classifier.load(exported[0], device="cpu"), Predictor)
    assert not hasattr(clf, "net") and not hasattr(clf, "device")
    feats = image_features(feature_extractor(clf, "model"), met_photos[:3], cache_dir=tmp_path)
    assert feats.values.shape == (3, clf.cfg.num_features) and not feats.skipped
    images = [open_image(p, clf.cfg.input_size) for p in met_photos[:3]]
    torch_feats = Classifier.load(exported[0], device="cpu").extract_features(images)
    assert np.abs(feats.values - torch_feats).max() < 1e-2  # the cache stores float16


def test_muses_classify_with_onnx_stores_torchs_answers(exported, project, met_sample, capsys):
    ids = add_met_items(project, met_sample, 5)
    model = exported[0]
    assert main(["classify", "--model", str(model), "--runtime", "onnx", "--top-k", "2"]) == 0
    capsys.readouterr()
    torch_clf = Classifier.load(model, device="cpu")
    for item in Store.for_project(project).items(ids):
        expected = torch_clf.predict_new([project.path(im.stored_path) for im in item.usable_images]).mean(axis=0)
        top = item.classification["classes"][0]
        assert top["name"] == torch_clf.class_names[int(expected.argmax())]
        assert top["probability"] == pytest.approx(float(expected.max()), abs=1e-4)
