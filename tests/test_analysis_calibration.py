"""Calibration: temperature, ECE, the "uncertain" threshold, the reliability diagram, and the
answers curators read ("uncertain: maybe bust 41 %", "none of these")."""
import json

import numpy as np
import pytest
from PIL import Image

from muses.analysis.calibration import chance_ece, expected_calibration_error, plot_reliability, reliability
from muses.model.calibration import choose_threshold, fit_temperature
from muses.model.files import ModelCfg, read_cfg
from muses.predictions import (
    NONE,
    OTHER,
    SURE,
    UNCERTAIN,
    ClassProbability,
    answer,
    classification,
    describe,
    probabilities,
)


def test_probabilities_divide_logits_by_the_temperature():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 4.0, 0.0]])
    plain, warm = probabilities(logits), probabilities(logits, 2.0)
    assert np.allclose(plain.sum(axis=1), 1) and np.allclose(warm.sum(axis=1), 1)
    assert (plain.argmax(1) == warm.argmax(1)).all()  # a temperature never changes the answer
    assert warm.max(axis=1).tolist() < plain.max(axis=1).tolist()
    assert np.allclose(warm, probabilities(logits / 2.0))


def test_fit_temperature_recovers_overconfidence():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, (4000, 4))
    labels = np.array([rng.choice(4, p=p) for p in probabilities(true_logits)])
    fitted = fit_temperature(true_logits * 3.0, labels)  # a network 3x too sure of itself
    assert 2.6 < fitted < 3.4
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, abs=0.15)


def test_fit_temperature_on_a_small_perfectly_separated_split_stays_near_one():
    # 8 photos, every one right by a wide margin: the plain log loss keeps falling as T -> 0
    logits = np.array([[6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 6.0], [5.0, 1.0, 0.0]] * 2)
    labels = np.array([0, 1, 2, 0] * 2)
    assert 0.4 < fit_temperature(logits, labels) <= 1.0
    # the same margins on 4,000 photos carry enough evidence to sharpen further
    assert fit_temperature(np.tile(logits, (500, 1)), np.tile(labels, 500)) < 0.6


def test_fit_temperature_with_nothing_to_fit_is_one():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
    assert fit_temperature(np.ones((4, 3)), np.zeros(4, dtype=int)) == 1.0


def test_ece_of_an_overconfident_model():
    probs = np.tile([0.9, 0.1], (10, 1))
    labels = np.array([0] * 5 + [1] * 5)  # 90 % sure, right half the time
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    assert expected_calibration_error(probs, np.zeros(10, dtype=int)) == pytest.approx(0.1)
    table = reliability(probs, labels)
    assert len(table) == 10 and table[9].count == 10 and table[9].accuracy == pytest.approx(0.5)


def test_threshold_refuses_the_chosen_share_of_known_photos():
    top = np.linspace(0.5, 1.0, 100)
    probs = np.stack([top, 1 - top], axis=1)
    threshold = choose_threshold(probs, np.zeros(100, dtype=int), refuse=0.1)
    assert (top < threshold).mean() == pytest.approx(0.1, abs=0.011)
    others = np.zeros(100, dtype=bool)  # only "other" photos: nothing known to choose on
    assert choose_threshold(probs, np.zeros(100, dtype=int), known=others) == 0.0


def test_reliability_diagram_is_a_png(tmp_path):
    rng = np.random.default_rng(1)
    probs = probabilities(rng.normal(0, 2, (50, 3)))
    out = plot_reliability(reliability(probs, rng.integers(0, 3, 50)), tmp_path / "plots" / "m_test_reliability.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 100


def _cp(*pairs):
    return [ClassProbability(n, p) for n, p in pairs]


def test_answers_in_plain_words():
    assert answer(_cp(("bust", 0.91), ("medal", 0.09)), 0.5).kind == SURE
    unsure = answer(_cp(("painting", 0.41), ("bust", 0.35)), 0.5)
    assert unsure.kind == UNCERTAIN and str(unsure) == "uncertain: maybe painting 41 %"
    none = answer(_cp((OTHER, 0.8), ("bust", 0.2)), 0.5)
    assert none.kind == NONE and str(none) == "none of these" and none.best.name == "bust"
    assert str(answer(_cp(("bust", 0.91)), 0.0)) == "bust 91 %"


def test_stored_classification_keeps_the_threshold_and_describes_itself():
    stored = classification(["bust", "medal", OTHER], np.array([[0.3, 0.45, 0.25]]), model="m", threshold=0.6)
    assert stored["threshold"] == 0.6 and stored["answer"] == UNCERTAIN
    assert describe(stored) == "uncertain: maybe medal 45 %"
    stored = classification(["bust", "medal", OTHER], np.array([[0.1, 0.1, 0.8]]), model="m", threshold=0.6)
    assert stored["answer"] == NONE and describe(stored) == "none of these"
    # classifications stored before calibration have no threshold: answered as before
    old = {"model": "m", "date": "x", "classes": [{"name": "vase", "probability": 0.3}]}
    assert describe(old) == "vase 30 %" and describe(None) == ""


def test_model_files_from_before_calibration_still_load(tmp_path):
    meta = tmp_path / "old.json"
    meta.write_text(json.dumps({"backbone": "tf_efficientnet_lite0", "class_names": ["a", "b"]}))
    cfg = read_cfg(meta)
    assert cfg.temperature == 1.0 and cfg.threshold == 0.0


@pytest.mark.parametrize("field,value", [("temperature", 0.0), ("temperature", "2"), ("temperature", float("nan")),
                                         ("threshold", 1.0), ("threshold", -0.1)])
def test_impossible_calibration_values_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        ModelCfg.from_dict({"backbone": "tf_efficientnet_lite0", "class_names": ["a", "b"], field: value})


def test_training_stores_a_fitted_temperature_and_threshold(tiny_model_path):
    cfg = read_cfg(tiny_model_path.with_suffix(".json"))
    assert cfg.temperature != 1.0 and 0.0 < cfg.threshold < 1.0


def test_every_runtime_applies_the_temperature(tiny_model_path, tmp_path):
    from muses.model.loading import load_model

    photo = tmp_path / "circle.png"
    Image.new("RGB", (64, 64), "white").save(photo)
    clf = load_model(tiny_model_path, "torch")
    logits = clf._run([Image.open(photo).convert("RGB")], 1, clf.net, len(clf.class_names))
    assert np.allclose(clf.predict_new([photo]), probabilities(logits, clf.cfg.temperature), atol=1e-5)
    assert not np.allclose(clf.predict_new([photo]), probabilities(logits), atol=1e-3)


def test_a_validation_split_of_certain_photos_keeps_the_threshold_below_one():
    assert choose_threshold(np.array([[1.0, 0.0]] * 20), np.zeros(20, dtype=int)) == 0.99


def test_one_phrase_for_the_other_class_and_an_empty_cell_in_exports(tmp_path):
    """Issue 23: "other", "none (unlabeled)" and "Not one of these" named the same answer; a
    person reads "none of these", a CSV leaves the cell empty."""
    import csv

    from muses.actions.predicting import answer_json
    from muses.analysis.label_issues import LabelReview
    from muses.analysis.reports import write_label_review
    from muses.predictions import NONE_OF_THESE, exported_name, shown_name

    assert (shown_name(OTHER), shown_name("bust"), exported_name(OTHER), exported_name("bust")) == (
        NONE_OF_THESE, "bust", "", "bust")
    assert [c["shown"] for c in answer_json(_cp((OTHER, 0.7), ("bust", 0.3)))] == [NONE_OF_THESE, "bust"]
    photo = tmp_path / "p.png"
    Image.new("RGB", (8, 8), "white").save(photo)
    issue = {"id": "185921", "image": photo, "title": "Medal", "object_type": "medal", "naive_label": "medal",
             "suggested": OTHER, "confidence": 0.9, "label_quality": 0.1}
    review = LabelReview(classes=["medal", OTHER], issues=[issue], suggestions=[], n_items=1, n_images=1,
                         n_unlabeled=0, cv_accuracy=0.0, threshold=0.9)
    files = write_label_review(tmp_path / "out", "naive", review)
    with files["issues_csv"].open(encoding="utf-8") as fh:
        assert next(csv.DictReader(fh))["suggested"] == ""
    page = files["issues_html"].read_text(encoding="utf-8")
    assert NONE_OF_THESE in page and f">{OTHER}<" not in page


def _calibrated(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` answers right exactly as often as they say: a perfectly calibrated model."""
    rng = np.random.default_rng(seed)
    probs = probabilities(rng.normal(0, 2.0, (n, 4)))
    return probs, np.array([rng.choice(4, p=p) for p in probs])


def test_the_chance_ece_is_what_a_perfect_model_measures_and_shrinks_with_more_photos():
    few, many = _calibrated(150), _calibrated(20000)
    floor = chance_ece(few[0])
    assert 0.03 < floor < 0.12  # 150 photos: a perfect model is never measured near 0
    measured = [expected_calibration_error(*_calibrated(150, seed)) for seed in range(30)]
    assert np.mean(measured) == pytest.approx(floor, rel=0.3)
    assert chance_ece(many[0]) < floor / 5
    assert chance_ece(np.eye(3)) == 0.0  # sure and (by definition) right: nothing to miss
    overconfident = probabilities(np.log(few[0]) * 4)  # the same model, far too sure
    assert expected_calibration_error(overconfident, few[1]) > 2 * chance_ece(overconfident)

