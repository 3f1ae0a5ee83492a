"""The use-case layer called directly, as a Python user (or the web app, or a benchmark) does;
and the one source of defaults: the command line with no flags builds the Python defaults."""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from muses.testing.catalog import add_met_items

import muses
from muses import actions
from muses.actions import (
    CheckPhotosConfig, ClassifyConfig, DecisionsConfig, EvaluateConfig, ExportConfig, ImportConfig, LabelIssuesConfig,
    MapConfig, PredictConfig, PreviewConfig, SimilarConfig, TrainCfg, TrainConfig,
)
from muses.cli import build_parser, config_from
from muses.errors import MusesError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# -- one source of defaults ------------------------------------------------------------------------
def _args(*argv: str):
    return build_parser().parse_args(list(argv))


def test_the_command_line_with_no_flags_builds_the_python_defaults():
    from muses.cli.classify import classify_config, similar_config
    from muses.cli.collection import check_photos_config
    from muses.cli.evaluate import label_issues_config
    from muses.cli.model import train_config

    assert train_config(_args("train-model")) == TrainConfig()
    assert train_config(_args("train-model")).training == TrainCfg()
    assert classify_config(_args("classify")) == ClassifyConfig()
    assert similar_config(_args("similar", "--item", "7")) == SimilarConfig(ids=("7",))
    assert check_photos_config(_args("generate-images")) == CheckPhotosConfig()
    assert label_issues_config(_args("label-issues")) == LabelIssuesConfig()
    assert config_from(PredictConfig(), _args("predict", "a.jpg")) == PredictConfig(images=(Path("a.jpg"),))
    assert config_from(EvaluateConfig(), _args("evaluate")) == EvaluateConfig()
    assert config_from(ExportConfig(), _args("export-classification-data")) == ExportConfig()
    assert config_from(PreviewConfig(), _args("label-preview")) == PreviewConfig()
    assert config_from(ImportConfig(Path("x.csv")), _args("import", "x.csv")) == ImportConfig(Path("x.csv"))
    assert config_from(MapConfig(), _args("map")) == MapConfig()
    assert config_from(DecisionsConfig(), _args("decisions", "export")) == DecisionsConfig()


def test_a_flag_given_replaces_only_its_field():
    from muses.cli.model import train_config

    config = train_config(_args("train-model", "--label-smoothing", "0", "--no-fine-tuning", "--no-pretrained",
                                "--image-size", "64", "--engine", "ray"))
    assert config.training == dataclasses.replace(TrainCfg(), label_smoothing=0.0, fine_tuning=False,
                                                  compute=config.training.compute)
    assert config.training.compute.engine == "ray"
    assert train_config(_args("train-model", "--unfrozen-blocks", "2")).training.fine_tuning  # a fine-tuning flag asks for it
    assert not train_config(_args("train-model", "--no-fine-tuning", "--unfrozen-blocks", "2")).training.fine_tuning
    assert (config.pretrained, config.image_size, config.backbone) == (False, 64, None)


def test_help_shows_the_defaults_of_the_configs():
    text = build_parser()._subparsers._group_actions[0].choices["train-model"].format_help()
    assert f"(default {TrainCfg.label_smoothing:g}," in text and f"(default {TrainCfg.epochs})" in text
    # the measured values (make bench-quality, 2026-12-06), for Python callers too
    assert (TrainCfg.label_smoothing, TrainCfg.fine_tuning, TrainCfg.calibration_folds) == (0.0, False, 5)


def test_the_classifier_and_the_original_setup_default_to_trainCfg(shapes_dataset, tmp_path):
    from muses.model.classifier import Classifier
    from muses.naive_classification.helpers import setup_classifier

    clf = setup_classifier(64, dataset=shapes_dataset, project=tmp_path)
    assert clf.train_cfg == dataclasses.replace(TrainCfg(), cache_dir=tmp_path.resolve() / "cache" / "features")
    assert clf.cfg.dropout == TrainCfg.dropout and (clf.lr, clf.decay) == (TrainCfg.lr, TrainCfg.decay)
    assert Classifier(clf.net, clf.cfg).train_cfg == TrainCfg()
    with pytest.raises(MusesError, match="unknown option"):
        setup_classifier(64, dataset=shapes_dataset, project=tmp_path, label_smothing=0.2)


def test_import_muses_is_cheap_and_exports_the_actions():
    code = ("import sys, muses; assert muses.train is muses.actions.train; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(len(muses.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) >= 20
    assert set(actions.__all__) >= {"import_collection", "check_photos", "preview_labels", "export_dataset", "train",
                                    "evaluate", "label_issues", "classify_collection", "map_collection",
                                    "predict_photos", "similar_objects", "record_decision", "undo_decision",
                                    "export_decisions"}


# -- the actions on real data -----------------------------------------------------------------------
def test_collection_actions_import_check_preview_export_and_decisions(project, met_sample):
    shutil.copy(EXAMPLES / "definitions.toml", project.definitions_path)
    seen = []
    imported = muses.import_collection(project, ImportConfig(met_sample / "records.jsonl", preset="met-scrapi"),
                                       progress=lambda done, total: seen.append(done))
    assert imported.report.new == 206 and imported.failure == "" and imported.report_path.is_file()
    assert seen and seen[-1] > 0
    checked = muses.check_photos(project, CheckPhotosConfig(workers=1))
    assert checked.report.processed == 206 and checked.report.by_status["problem"] == 17  # the demo's bad photos
    assert len(checked.problems) == CheckPhotosConfig.listed and "?" not in {p.item_id for p in checked.problems}
    preview = muses.preview_labels(project, PreviewConfig(progress=False))
    assert preview["summary"]["items"] == 206 and preview["summary"]["labeled"] > 0
    exported = muses.export_dataset(project, ExportConfig(seed=1, other=False))
    assert (exported.path / "manifest.csv").is_file() and "other" not in exported.report
    decisions = muses.export_decisions(project, DecisionsConfig(out=project.root / "d.csv"))
    assert decisions.rows == 0 and (project.root / "d.csv").read_bytes() == decisions.data
    assert decisions.data.startswith("\ufeffobject number,title".encode())


def test_train_action_writes_the_model_with_the_trainers_recipe(project, shapes_dataset):
    epochs = []
    config = TrainConfig(training=TrainCfg(epochs=3, fine_tuning=True, unfrozen_blocks=1, views=1, workers=0),
                         dataset=shapes_dataset,
                         image_size=64, model_name="t", runtime_files=False, plot_performance=True)
    result = muses.train(project, config, progress=lambda done, total: epochs.append((done, total)))
    assert result.model_path == project.models_dir / "t.safetensors" and result.model_path.is_file()
    assert [p.unfrozen_blocks for p in result.phases] == [0, 1]  # transfer, then fine-tuning
    assert epochs == [(1, 3), (2, 3), (3, 3)] and len(result.history) == 3
    assert result.plot_path.read_bytes()[:4] == b"\x89PNG"
    assert result.class_names == ["circle", "square", "triangle"] and result.n_val == 9


def test_predict_evaluate_and_label_issues_on_the_tiny_model(project, tiny_model_path, shapes_dataset, tmp_path):
    photos = sorted((shapes_dataset / "images").glob("circle_*.png"))[:2]
    (tmp_path / "bad.jpg").write_bytes(b"not a photo")
    predicted = muses.predict_photos(project, PredictConfig(images=(*photos, tmp_path / "bad.jpg"),
                                                            model=tiny_model_path, top_k=2, runtime="torch"))
    assert [len(a.classes) for a in predicted.answers] == [2, 2]
    assert [s[0] for s in predicted.skipped] == [str(tmp_path / "bad.jpg")]
    one = muses.predict_photos(project, PredictConfig(images=tuple(photos), model=tiny_model_path, one_object=True,
                                                      runtime="torch"))
    assert len(one.answers) == 1 and one.answers[0].classes[0].name == "circle"

    evaluated = muses.evaluate(project, EvaluateConfig(model=tiny_model_path, dataset=shapes_dataset, out=Path("ev")))
    assert evaluated.plain.accuracy >= 0.9 and (project.root / "ev" / "tiny_test_evaluation.json").is_file()

    review = muses.label_issues(project, LabelIssuesConfig(model=tiny_model_path, dataset=shapes_dataset, folds=2,
                                                           out=Path("li")))
    assert review.review.n_items == 48 and all(Path(p).is_file() for p in review.files.values())


def test_classify_similar_and_map_share_one_path(project, met_sample, tiny_model_path):
    ids = add_met_items(project, met_sample, 6)
    classified = muses.classify_collection(project, ClassifyConfig(model=tiny_model_path, top_k=2), progress=False)
    assert sorted(classified.report.classified) == sorted(ids) and classified.report_path.is_file()

    like_items = muses.similar_objects(project, SimilarConfig(ids=(ids[0],), limit=3))
    assert like_items.by_look and ids[0] not in [h.item_id for h in like_items.hits]
    assert set(like_items.items) == {h.item_id for h in like_items.hits}
    photo = project.images_dir / f"{ids[1]}.jpg"
    like_photo = muses.similar_objects(project, SimilarConfig(images=(photo,), model=tiny_model_path, limit=3))
    assert like_photo.hits[0].item_id == ids[1] and like_photo.model == "tiny" and like_photo.answer
    with pytest.raises(MusesError, match="no item with id nope"):
        muses.similar_objects(project, SimilarConfig(ids=("nope",)))
    with pytest.raises(MusesError, match="not both"):
        muses.similar_objects(project, SimilarConfig(images=(photo,), ids=(ids[0],)))

    laid_out = muses.map_collection(project, MapConfig(method="pca"))
    assert laid_out.count == 6 and laid_out.path.is_file()
