"""The original CLEO names, end to end: the recipe its users wrote keeps working."""
from __future__ import annotations

import ast
from collections import OrderedDict
from pathlib import Path

import numpy as np

import muses
from muses.naive_classification.helpers import (
    Classifier,
    load_model,
    predict_image_path_dict,
    predict_items,
    setup_classifier,
)


def test_the_original_recipe_trains_saves_loads_and_predicts(shapes_dataset, tmp_path):
    clf = setup_classifier(64, mode="train", dataset=shapes_dataset, project=tmp_path, views=1, workers=0,
                           cache_dir=tmp_path / "cache", models_dir=tmp_path / "models")
    assert isinstance(clf, Classifier)
    clf.unfreeze_layers(0)
    clf.set_optimizer(3e-3)
    clf.train_model(3, save=False)
    clf.unfreeze_layers(2)  # the last 2 blocks
    clf.set_optimizer(1e-4, decay=0.01)
    clf.train_model(1, model_name="naive")
    assert [h["unfrozen_blocks"] for h in clf.history] == [0, 0, 0, 2]
    assert clf.plot_performance(tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"

    path = tmp_path / "models" / "naive.safetensors"
    photos = sorted((shapes_dataset / "images").glob("square_*.png"))[:3]
    loaded = setup_classifier(mode="load", model_path=path, project=tmp_path)
    assert np.array_equal(loaded.predict_new(photos), clf.predict_new(photos))
    assert load_model(path, project=tmp_path).class_names == ["circle", "square", "triangle"]
    ranked = predict_image_path_dict([str(p) for p in photos], model_path=path)
    assert isinstance(ranked, OrderedDict) and list(ranked.values()) == sorted(ranked.values(), reverse=True)
    assert ranked == OrderedDict(predict_image_path_dict(photos, path))
    assert callable(predict_items)  # exercised against a store in test_model_classifier


def test_nothing_inside_muses_imports_the_compatibility_package():
    root = Path(muses.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.is_relative_to(root / "naive_classification"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.startswith("muses.naive_classification")]
    assert offenders == []
