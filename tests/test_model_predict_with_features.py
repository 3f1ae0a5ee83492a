"""One backbone pass for both answers: ``predict_with_features`` gives what ``predict_pil`` and
``extract_features`` give, in torch and in ONNX Runtime, on real Met photos."""
from __future__ import annotations

import numpy as np
import pytest

from muses.model.decoding import open_image
from muses.model.loading import load_model
from test_model_onnx import exported, met_photos  # noqa: F401 - fixtures: the tiny model exported, real photos


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_one_pass_gives_the_two_calls_answers(exported, met_photos, runtime):
    model, _ = exported
    clf = load_model(model, runtime=runtime)
    photos = [open_image(p, clf.cfg.input_size) for p in met_photos[:5]]
    probs, feats = clf.predict_with_features(photos, batch_size=3)
    np.testing.assert_allclose(probs, clf.predict_pil(photos, batch_size=3), atol=1e-5, rtol=0)
    np.testing.assert_allclose(feats, clf.extract_features(photos, batch_size=3), atol=1e-5, rtol=0)
    assert probs.shape == (5, len(clf.class_names)) and feats.shape == (5, clf.cfg.num_features)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_no_photos_give_empty_answers_of_the_right_width(exported, runtime):
    clf = load_model(exported[0], runtime=runtime)
    probs, feats = clf.predict_with_features([])
    assert probs.shape == (0, len(clf.class_names)) and feats.shape == (0, clf.cfg.num_features)
