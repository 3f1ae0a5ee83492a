"""Ranking by mean probability and the stored classification JSON: one place for both."""
from __future__ import annotations

import numpy as np
import pytest

from muses.predictions import ClassProbability, classification, mean_probabilities, ranked, stored_classes, top_class

NAMES = ["bowl", "cup", "vase", "jug"]


def test_ranked_averages_the_photos_and_sorts_most_likely_first():
    probs = np.array([[0.1, 0.2, 0.6, 0.1], [0.3, 0.2, 0.4, 0.1]])
    assert np.allclose(mean_probabilities(probs), [0.2, 0.2, 0.5, 0.1])
    assert [c.name for c in ranked(NAMES, probs)] == ["vase", "bowl", "cup", "jug"]
    assert ranked(NAMES, probs, top_k=1) == [ClassProbability("vase", pytest.approx(0.5))]


def test_ties_keep_the_model_class_order():
    """A stable sort: equal probabilities never swap places from one run to the next (the CLI's
    ``argsort()[::-1]`` put the later class first)."""
    probs = np.full((1, 4), 0.25)
    assert [c.name for c in ranked(NAMES, probs)] == NAMES
    assert [c.name for c in ranked(NAMES, np.array([0.1, 0.4, 0.1, 0.4]))] == ["cup", "jug", "bowl", "vase"]


def test_stored_classification_round_trips():
    stored = classification(NAMES, np.array([[0.1, 0.2, 0.6, 0.1]]), model="naive", top_k=2, date="2026-01-01")
    assert stored == {"model": "naive", "date": "2026-01-01",
                      "classes": [{"name": "vase", "probability": 0.6}, {"name": "cup", "probability": 0.2}],
                      "threshold": 0.0, "answer": "sure"}
    assert stored_classes(stored) == [ClassProbability("vase", 0.6), ClassProbability("cup", 0.2)]
    assert stored_classes(None) == [] and stored_classes({"classes": ["junk", {"probability": 1}]}) == []
    assert top_class(stored) == "vase" and top_class(None) is None and top_class({"classes": []}) is None


def test_a_row_that_does_not_fit_the_classes_is_refused():
    with pytest.raises(ValueError, match="3 columns for 4 classes"):
        ranked(NAMES, np.ones((2, 3)) / 3)
