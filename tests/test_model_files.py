"""Model files: safetensors + JSON, self-describing, loadable under any definitions."""
from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open

from muses.model.classifier import Classifier
from muses.imaging import open_image
from muses.model.training import Phase
from muses.datasets.folder import read_dataset
from muses.model.loading import DefinitionsMismatchWarning, load_model
from muses.naive_classification import helpers
from muses.naive_classification.helpers import setup_classifier
from muses.model.files import ModelCfg, ModelFileError, read_model
from muses.errors import MusesError


@pytest.fixture(scope="module")
def fine_tuned(shapes_dataset, tmp_path_factory):
    """A model whose backbone tail was fine-tuned, saved, with the in-memory classifier."""
    root = tmp_path_factory.mktemp("ft")
    clf = setup_classifier(64, dataset=shapes_dataset, project=root, seed=3, views=2, workers=0,
                           cache_dir=root / "cache", models_dir=root / "models", resize_mode="pad")
    clf.fit([Phase(2, 0, 3e-3), Phase(1, 3, 1e-4)], model_name="ft")
    return clf, root / "models" / "ft.safetensors"


def test_save_then_load_predicts_identically(fine_tuned, shapes_dataset):
    clf, path = fine_tuned
    paths = [s.path for s in read_dataset(shapes_dataset).samples[:6]]
    loaded = Classifier.load(path)
    assert np.array_equal(clf.predict_new(paths), loaded.predict_new(paths))
    images = [open_image(p) for p in paths]
    assert np.array_equal(clf.extract_features(images), loaded.extract_features(images))
    for (k, a), b in zip(clf.net.state_dict().items(), loaded.net.state_dict().values()):
        assert torch.equal(a, b), k


def test_model_file_is_self_describing_and_not_pickled(fine_tuned):
    _, path = fine_tuned
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["backbone"] == "tf_efficientnet_lite0"
    assert meta["class_names"] == ["circle", "square", "triangle"]
    assert (meta["input_size"], meta["mean"], meta["resize_mode"]) == (64, [0.5] * 3, "pad")
    assert meta["unfrozen_blocks"] == 3 and meta["seed"] == 3
    assert meta["definitions_digest"] == "shapes-digest"
    assert [h["unfrozen_blocks"] for h in meta["history"]] == [0, 0, 3]
    with safe_open(str(path), framework="pt") as fh:  # a plain safetensors file: tensors only
        keys = set(fh.keys())
    assert "fc.weight" in keys and "backbone.conv_stem.weight" in keys
    assert not list(path.parent.glob("*.checkpoint.*"))  # the checkpoint goes once training ends
    assert path.stat().st_mode == path.with_suffix(".json").stat().st_mode  # readable by a web server alike


def test_model_loads_under_other_definitions_with_a_warning(fine_tuned, project):
    _, path = fine_tuned
    assert project.definitions_path.is_file()  # `muses init` wrote an example: another digest
    copy = shutil.copy(path.with_suffix(".json"), project.root / "m.json")
    shutil.copy(path, project.root / "m.safetensors")
    with pytest.warns(DefinitionsMismatchWarning, match="other class definitions"):
        clf = load_model(project.root / "m.safetensors", project=project)
    assert clf.class_names == ["circle", "square", "triangle"]
    assert clf.cfg.unfrozen_blocks == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_model(project.root / "m.safetensors", project=project) is clf  # cached, no new warning
    os.utime(copy, ns=(0, os.stat(copy).st_mtime_ns + 10**9))
    with pytest.warns(DefinitionsMismatchWarning):
        assert load_model(project.root / "m.safetensors", project=project) is not clf  # changed file: reloaded


def test_default_model_path_comes_from_muses_toml(fine_tuned, project):
    _, path = fine_tuned
    (project.root / "models").mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(path.with_suffix(suffix), project.root / "models" / f"naive{suffix}")
    with pytest.warns(DefinitionsMismatchWarning):  # the original's name finds the project itself
        assert helpers.load_model().class_names == ["circle", "square", "triangle"]  # $MUSES_PROJECT's models/naive
    with pytest.raises(MusesError, match="path, or the project"):
        load_model()  # the library's needs to be told


def test_missing_or_broken_files_say_what_to_do(fine_tuned, tmp_path):
    _, path = fine_tuned
    with pytest.raises(ModelFileError, match="muses train-model"):
        read_model(tmp_path / "none.safetensors")
    shutil.copy(path, tmp_path / "m.safetensors")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not a muses model"):
        read_model(tmp_path / "m")


def test_unknown_metadata_keys_are_ignored():
    cfg = ModelCfg.from_dict({"backbone": "tf_efficientnet_lite0", "class_names": ["x", "y"], "added_in_a_later_version": 1})
    assert cfg.class_names == ["x", "y"] and cfg.mean == (0.5, 0.5, 0.5)


def test_plot_performance_writes_a_png(fine_tuned, project):
    clf, _ = fine_tuned
    default = clf.plot_performance()
    assert default == project.plots_dir / "ft_performance.png"
    chosen = clf.plot_performance(project.root / "x" / "curves.png")
    for png in (default, chosen):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


GOOD = {"backbone": "tf_efficientnet_lite0", "class_names": ["bowl", "vase"]}


@pytest.mark.parametrize("change, message", [
    ({"input_size": 100_000}, "input_size must be an integer from 16 to 1024"),
    ({"input_size": 8}, "input_size must be an integer from 16 to 1024"),
    ({"input_size": 224.0}, "input_size must be an integer"),
    ({"mean": [0.5, 0.5]}, "mean must be 3 numbers"),
    ({"std": [0.5, 0.0, 0.5]}, "std must be 3 numbers"),
    ({"mean": [0.5, float("nan"), 0.5]}, "mean must be 3 numbers"),
    ({"class_names": ["vase"]}, "at least 2 non-empty names"),
    ({"class_names": ["vase", ""]}, "at least 2 non-empty names"),
    ({"class_names": ["vase", "vase", "bowl"]}, "duplicates: \\['vase'\\]"),
    ({"backbone": "no_such_net"}, "backbone 'no_such_net' is not a model"),
    ({"interpolation": "lanczos9"}, "interpolation must be one of"),
    ({"resize_mode": "stretch"}, "resize_mode must be one of"),
    ({"dropout": 1.5}, "dropout must be in"),
    ({"unfrozen_blocks": -1}, "unfrozen_blocks must be an integer >= 0"),
])
def test_model_description_is_checked_against_sane_bounds(change, message):
    with pytest.raises(ValueError, match=message):
        ModelCfg.from_dict({**GOOD, **change})
    assert ModelCfg.from_dict(GOOD).input_size == 224
