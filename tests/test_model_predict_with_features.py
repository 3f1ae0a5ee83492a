"""One backbone pass for both answers: ``predict_with_features`` gives what ``predict_pil`` and
``extract_features`` give, in torch and in ONNX Runtime, on real Met photos."""
from __future__ import annotations

import numpy as np
import pytest

from muses.imaging import open_image
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


@pytest.mark.parametrize("allowed, threads", [("1", 1), ("3", 3), ("", None), ("lots", None)])
def test_onnx_sessions_take_the_threads_omp_num_threads_allows(monkeypatch, allowed, threads):
    """Ray sets OMP_NUM_THREADS to a worker's CPUs: two workers must not each take every core."""
    import os

    from muses.model.onnx import session_options

    monkeypatch.setenv("OMP_NUM_THREADS", allowed)
    assert session_options().intra_op_num_threads == (threads or os.cpu_count())
    assert session_options(threads=2).intra_op_num_threads == 2  # an explicit count wins
