"""benchmarks/quality.py on made-up features: the folds, the 'other' cap, the measures and the table."""
import numpy as np
import pytest

from benchmarks import quality as q
from muses.labeling.matching import LABELED, UNLABELED, Label


def _data(seed: int = 0) -> q.Data:
    """Three well-separated classes of 12 objects and 20 unlabeled objects, one photo each."""
    rng = np.random.default_rng(seed)
    classes = ["bust", "medal", "vessel"]
    centres = rng.normal(0, 10, (4, 16))
    feats, items, labels = [], [], {}
    for c, name in enumerate([*classes, None]):
        for n in range(12 if name else 20):
            item = f"{name or 'odd'}{n}"
            items.append(item)
            feats.append(centres[c] + rng.normal(0, 0.5, (2, 16)))
            labels[item] = _label(item, name)
    return q.Data(np.array(feats, dtype=np.float32), np.array(items), labels, classes)


def _label(item: str, cls: str | None) -> Label:
    """A keyword label: of ``cls``, or unlabeled for None."""
    return Label(item, cls, LABELED if cls else UNLABELED, cls, "title" if cls else None, ())


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
    out = q.write_table([q.Row("plain", 0.9, 0.8, 0.05, 0.1, 0.02, train_s=12.3, chance_ece=0.04)], tmp_path / "t.md",
                        extra=[q.Row("similarity precision@10 (visual)", note="0.83")], header="machine")
    text = out.read_text()
    assert "| plain | 0.900 | 0.800 | 0.050 | 0.040 | 0.100 | 0.020 | 12 |" in text
    assert "| similarity precision@10 (visual) | - | - | - | - | - | - | - | 0.83 |" in text and "machine" in text


def test_the_probe_row_and_injected_label_issues_on_separable_classes():
    data = _data()
    data.features = np.concatenate([data.features, _data(1).features[:, :1]], axis=1)[:, :2]
    checked = {"bust0": "bust", "medal3": "medal", "odd1": "none"}
    probe = q.measure_probe(data, 3, 0, checked)
    assert probe.macro_f1 > 0.9 and 0 <= probe.ece <= 1 and probe.train_s >= 0
    found, n = q.label_issue_recall(data, 0, n=4, top=8)
    assert n == 4 and found >= 3  # well-separated classes: a flipped label stands out


@pytest.mark.slow
def test_the_product_row_trains_each_fold_with_the_train_action(tmp_path):
    import muses
    from muses.testing.datasets import make_shapes_dataset

    from muses.settings import Project, Settings, TrainingSettings

    folder = make_shapes_dataset(tmp_path / "photos", per_class=8, classes=("circle", "square", "triangle", "odd"))
    paths = sorted((folder / "images").glob("*.png"))
    items = np.array([p.stem for p in paths])
    labels = {i: _label(i, None if i.startswith("odd") else i.split("_")[0]) for i in items}
    project = Project(tmp_path / "proj", Settings(training=TrainingSettings(image_size=64)))
    data = q.Data(np.zeros((len(items), 1, 1), np.float32), items, labels, ["circle", "square", "triangle"],
                  np.array([str(p) for p in paths]), project)
    checked = {"circle_000": "circle", "odd_001": "none"}
    recipe = q.Recipe("defaults", muses.TrainCfg(epochs=3))
    models = []
    row = q.measure_recipe(data, recipe, 2, 0, checked, workdir=tmp_path / "work", cache_dir=tmp_path / "cache",
                           keep=models)
    assert sorted(p.name for p in project.models_dir.glob("*.safetensors")) == ["quality-work-fold0.safetensors",
                                                                                 "quality-work-fold1.safetensors"]
    assert models == sorted(project.models_dir.glob("*.safetensors"))
    assert 0 <= row.macro_f1 <= 1 and 0 <= row.ece <= 1 and row.checked_accuracy in (0.0, 0.5, 1.0)
    assert row.train_s > 0 and "2 trained models" in row.note
    manifest = (tmp_path / "work" / "fold0" / "manifest.csv").read_text()
    assert ",other," in manifest and ",test," in manifest  # the product's recipe: an "other" class


def test_other_class_of_excluded_records_too_and_uncapped():
    from muses.labeling.matching import EXCLUDED

    data = _data()
    data.labels["odd0"] = data.labels["odd0"]._replace(status=EXCLUDED)
    items = set(data.item) - {f"bust{n}" for n in range(6)}  # bust 6, medal 12, vessel 12, 19 unlabeled, 1 excluded
    classes = [*data.classes, "other"]

    def others(**changes):
        photos, y = q.training_set(data, items, classes, q.Option("o", other=True, **changes), cap_seed=0)
        return {i for i, c in zip(data.item[photos], y) if c == 3}

    assert len(others()) == 12 and "odd0" not in others(other_capped=False)
    assert len(others(other_capped=False)) == 19 and len(others(other_all=True, other_capped=False)) == 20


def test_a_reviewers_decisions_relabel_and_none_of_these_always_joins_other():
    """The bench's decisions recipe goes through the exporter's own rules (muses.datasets.naive)."""
    data = _data()
    items = set(data.item)
    classes = [*data.classes, "other"]
    checked = {"bust0": "medal", "bust1": "none", "odd0": "vessel", "odd1": "none"}
    decided = q.decisions(data, items - {"odd1"}, checked)  # odd1: a test object, never decided
    assert set(decided) == {"bust0", "bust1", "odd0"}
    photos, y = q.training_set(data, items, classes, q.Option("o", other=True), cap_seed=0, decided=decided)
    got = dict(zip(data.item[photos], (classes[c] for c in y)))
    assert (got["bust0"], got["bust1"], got["odd0"]) == ("medal", "other", "vessel")
    # unlabeled records capped at the largest class (medal: 12 and bust0), and bust1 beside them
    assert sum(c == "other" for c in got.values()) == 13 + 1


def test_the_screen_measures_remedies_with_the_bench_measures():
    from benchmarks import quality_screen as screen

    data, checked = _data(), {"bust0": "bust", "medal3": "medal", "odd1": "none"}
    for remedy in (screen.REMEDIES[0], screen.Remedy("mirror and ensemble", mirror=True, ensemble=True, epochs=10),
                   screen.Remedy("pseudo-labels, pool and a bias", other_fix="pseudo", pool=True, bias=True, epochs=10)):
        row = screen.measure(data, remedy, 3, 0, checked, calibration_folds=3)
        assert row.macro_f1 > 0.9 and 0 <= row.ece <= 1 and row.what.startswith("screen: ")


def test_unlabeled_records_that_look_like_a_class_are_dropped_relabeled_or_pooled():
    from benchmarks import quality_screen as screen

    data, classes = _data(), ["bust", "medal", "vessel", "other"]
    photos, y = q.training_set(data, set(data.item), classes, q.Option("o", other=True), cap_seed=0)
    kept_in = str(data.item[photos][y == 3][0])  # an "other" photo of the capped training set
    left_out = sorted(i for i in data.item if i.startswith("odd") and i not in set(data.item[photos]))[0]
    data.features[data.item == kept_in] = data.features[data.item == "medal0"]
    data.features[data.item == left_out] = data.features[data.item == "bust0"]

    def relabeled(**fix) -> dict[str, int]:
        got = screen._relabeled(data, photos, y, set(data.item), classes, screen.Remedy("fix", **fix), 3, 0, 0)
        return dict(zip(data.item[got[0]], got[1].tolist()))

    plain = dict(zip(data.item[photos], y.tolist()))
    assert relabeled(other_fix="drop") == {i: c for i, c in plain.items() if i != kept_in}
    assert relabeled(other_fix="pseudo", cut=0.7) == {**plain, kept_in: 1}
    assert relabeled(pool=True, cut=0.7) == {**plain, left_out: 0}
