"""Metrics on a case worked out by hand, the confusion-matrix picture, galleries, TTA views."""
from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from muses.analysis import metrics as ev
from muses.analysis.reports import plot_confusion_matrix, write_csv, write_gallery

CLASSES = ["bust", "medal", "vessel"]
# Six photos. true:  bust bust bust medal medal vessel
#              pred:  bust bust medal medal vessel vessel
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
PROBS = np.array([
    [0.9, 0.05, 0.05],
    [0.6, 0.3, 0.1],
    [0.2, 0.7, 0.1],   # bust taken for a medal, p=0.7
    [0.1, 0.8, 0.1],
    [0.05, 0.15, 0.8],  # medal taken for a vessel, p=0.8: the most confident mistake
    [0.1, 0.1, 0.8],
])


def test_metrics_by_hand():
    e = ev.evaluate_predictions(Y_TRUE, PROBS, CLASSES)
    assert e.n == 6
    assert e.accuracy == pytest.approx(4 / 6)
    # bust: P 2/2, R 2/3, F1 0.8; medal: P 1/2, R 1/2, F1 0.5; vessel: P 1/2, R 1/1, F1 2/3
    got = {c.name: (c.precision, c.recall, c.f1, c.support) for c in e.per_class}
    assert got["bust"] == pytest.approx((1.0, 2 / 3, 0.8, 3))
    assert got["medal"] == pytest.approx((0.5, 0.5, 0.5, 2))
    assert got["vessel"] == pytest.approx((0.5, 1.0, 2 / 3, 1))
    assert e.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert e.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert e.log_loss == pytest.approx(-np.log([0.9, 0.6, 0.2, 0.8, 0.15, 0.8]).mean())
    # ECE, 10 bins: 0.9 right (gap 0.1), 0.6 right (0.4), 0.7 wrong (0.7), three at 0.8, two right (2/15 each)
    assert e.ece == pytest.approx((0.1 + 0.4 + 0.7 + 3 * (0.8 - 2 / 3)) / 6)
    d = e.to_dict()
    assert d["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]] and d["per_class"][0]["name"] == "bust"
    assert d["ece"] == e.ece


def test_most_confused_and_top_losses():
    cm = ev.confusion_matrix(Y_TRUE, PROBS.argmax(1), 3)
    assert ev.most_confused(cm, CLASSES) == [("bust", "medal", 1), ("medal", "vessel", 1)]
    assert ev.most_confused(cm, CLASSES, min_count=2) == []
    assert ev.top_losses(Y_TRUE, PROBS).tolist() == [4, 2]
    assert ev.top_losses(Y_TRUE, PROBS, k=1).tolist() == [4]


def test_bad_shapes_are_reported():
    with pytest.raises(ValueError, match="shape"):
        ev.evaluate_predictions(Y_TRUE, PROBS[:, :2], CLASSES)
    with pytest.raises(ValueError, match="outside 0..2"):
        ev.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="no predictions"):
        ev.evaluate_predictions(np.zeros(0, int), np.zeros((0, 3)), CLASSES)


def test_gold_agreement_reports_unknowns():
    predicted = {"a": "bust", "b": "medal", "c": "vessel", "d": "bust"}
    gold = {"a": "bust", "b": "bust", "c": "vessel", "x": "medal", "d": "painting"}
    g = ev.gold_agreement(predicted, gold, CLASSES)
    assert g.n == 3 and g.accuracy == pytest.approx(2 / 3)
    # truth bust,bust,vessel vs pred bust,medal,vessel: F1 bust 2/3, medal 0, vessel 1
    assert g.macro_f1 == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert g.unknown_ids == ["x"] and g.unknown_classes == {"d": "painting"}
    empty = ev.gold_agreement(predicted, {"zz": "bust"}, CLASSES)
    assert empty.n == 0 and empty.accuracy is None and empty.unknown_ids == ["zz"]


def test_mean_by_group():
    groups, means = ev.mean_by_group(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), ["b", "a", "b"])
    assert groups == ["b", "a"] and means.tolist() == [[0.75, 0.25], [0.0, 1.0]]


def test_tta_views():
    img = Image.new("RGB", (40, 20), "white")
    img.putpixel((0, 0), (255, 0, 0))
    original, mirrored, zoomed = ev.tta_views(img, zoom=0.5)
    assert original is img
    assert mirrored.getpixel((39, 0)) == (255, 0, 0)
    assert zoomed.size == (20, 10)
    with pytest.raises(ValueError, match="zoom"):
        ev.tta_views(img, zoom=1.5)


def test_confusion_matrix_png(tmp_path):
    path = plot_confusion_matrix(np.array([[2, 1, 0], [0, 1, 1], [0, 0, 1]]), CLASSES, tmp_path / "cm.png", title="test")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 2 * im.height * 0.9  # two panels side by side
    with pytest.raises(ValueError, match="3x3"):
        plot_confusion_matrix(np.zeros((2, 2)), CLASSES, tmp_path / "bad.png")


class Gallery(HTMLParser):
    """What a gallery page shows: card ids, embedded thumbnails, "image unreadable" boxes, text."""

    def __init__(self, path):
        super().__init__()
        self.ids, self.thumbnails, self.missing, self.text = [], 0, 0, []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and attrs.get("class") == "card":
            self.ids.append(attrs["data-id"])
        if tag == "img" and attrs.get("src", "").startswith("data:image/jpeg;base64,"):
            self.thumbnails += 1
        if tag == "div" and attrs.get("class") == "missing":
            self.missing += 1

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())


def test_gallery_html(tmp_path, met_sample):
    photo = sorted((met_sample / "images").glob("*.jpg"))[0]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    rows = [
        {"id": "1", "image": photo, "title": "Bust of <Voltaire>", "predicted": "bust", "probability": 0.91234},
        {"id": "2", "image": broken, "title": "Medal", "predicted": "medal", "probability": 0.5},
    ]
    path = write_gallery(tmp_path / "g.html", "Mistakes", rows, ["title", "predicted", "probability"],
                         tables=[("most confused", ["true", "predicted", "count"], [["bust", "medal", 3]])])
    page = Gallery(path)
    assert page.ids == ["1", "2"] and page.thumbnails == 1 and page.missing == 1
    assert "Bust of <Voltaire>" in page.text and "0.912" in page.text  # escaped, then parsed back
    assert "<Voltaire>" not in path.read_text(encoding="utf-8")
    csv_path = write_csv(tmp_path / "g.csv", rows, ["id", "title", "probability"])
    assert csv_path.read_text(encoding="utf-8").splitlines() == [
        "id,title,probability", "1,Bust of <Voltaire>,0.9123", "2,Medal,0.5"]


def test_predict_views_plain_first(tiny_model_path, shapes_dataset, tmp_path):
    from muses.model.loading import load_model
    from muses.imaging import open_image

    clf = load_model(tiny_model_path, project=tmp_path)
    images = [open_image(p) for p in sorted((shapes_dataset / "images").glob("*.png"))[:2]]
    views = ev.predict_views(clf, images)
    assert views.shape == (2, len(ev.TTA_VIEWS), 3)
    assert np.allclose(views[:, 0], clf.predict_pil(images), atol=1e-5)
    assert ev.predict_views(clf, []).shape == (0, len(ev.TTA_VIEWS), 3)
