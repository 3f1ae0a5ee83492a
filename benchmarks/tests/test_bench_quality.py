"""benchmarks/quality.py on made-up features: the folds, the 'other' cap, the measures and the table."""
import numpy as np

from benchmarks import quality as q
from muses.labeling.matching import LABELED, UNLABELED


def _data(seed: int = 0) -> q.Data:
    """Three well-separated classes of 12 objects and 20 unlabeled objects, one photo each."""
    rng = np.random.default_rng(seed)
    classes = ["bust", "medal", "vessel"]
    centres = rng.normal(0, 10, (4, 16))
    feats, items, status, label = [], [], {}, {}
    for c, name in enumerate([*classes, None]):
        for n in range(12 if name else 20):
            item = f"{name or 'odd'}{n}"
            items.append(item)
            feats.append(centres[c] + rng.normal(0, 0.5, (2, 16)))
            status[item] = LABELED if name else UNLABELED
            if name:
                label[item] = name
    return q.Data(np.array(feats, dtype=np.float32), np.array(items), status, label, classes)


def test_folds_hold_every_object_once():
    data = _data()
    folds = q.folds_of(data, 5, seed=0)
    assert sorted(i for f in folds for i in f) == sorted(data.item) and len(folds) == 5


def test_other_class_is_capped_at_the_largest_class():
    data = _data()
    items = set(data.item) - {f"bust{n}" for n in range(6)}  # bust 6, medal 12, vessel 12, 20 unlabeled
    option = q.Option("o", other=True)
    photos, y = q.training_set(data, items, [*data.classes, "other"], option, cap_seed=0)
    assert np.bincount(y).tolist() == [6, 12, 12, 12]
    photos, y = q.training_set(data, items, data.classes, q.Option("plain"), cap_seed=0)
    assert np.bincount(y).tolist() == [6, 12, 12]


def test_measure_separable_classes():
    data = _data()
    checked = {"bust0": "bust", "medal3": "medal", "odd1": "none"}
    plain = q.measure(data, q.Option("plain"), 3, 0, checked)
    assert plain.macro_f1 > 0.7 and 0 <= plain.ece <= 1
    # without "none of these" nothing is ever refused, and odd1 (none of the classes) is always wrong
    assert plain.known_refused == 0.0 and plain.unknown_none == 0.0 and plain.checked_accuracy <= 2 / 3
    other = q.measure(data, q.Option("other", temperature=True, other=True), 3, 0, checked)
    assert other.unknown_none > 0.0 and 0 <= other.known_refused <= 1


def test_table_takes_rows_from_other_benchmarks(tmp_path):
    out = q.write_table([q.Row("plain", 0.9, 0.8, 0.05, 0.1, 0.02)], tmp_path / "t.md",
                        extra=[q.Row("similarity precision@10 (visual)", note="0.83")], header="machine")
    text = out.read_text()
    assert "| plain | 0.900 | 0.800 | 0.050 | 0.100 | 0.020 |" in text
    assert "| similarity precision@10 (visual) | - | - | - | - | - | 0.83 |" in text and "machine" in text
