"""The training loop's library side: default phases, and a run that cannot write its files."""
from __future__ import annotations

import errno

import pytest
from safetensors.torch import save_file

from muses.errors import RunFailed
from muses.naive_classification.helpers import setup_classifier
from muses.model.training import Phase, TrainingError, default_phases


def test_default_phases_split_the_epochs_60_40():
    assert default_phases(5, fine_tuning=True, unfrozen_blocks=2, lr=3e-3, fine_tune_lr=1e-4, decay=0.01) == [
        Phase(3, 0, 3e-3, 0.01), Phase(2, 2, 1e-4, 0.01)]
    assert default_phases(8, fine_tuning=False) == [Phase(8, 0, 1e-3)]
    assert default_phases(1, fine_tuning=True) == [Phase(1, 0, 1e-3)]  # too few epochs to fine-tune: transfer only
    assert default_phases(50) == [Phase(50, 0, 1e-3)]  # the default: the head alone (make bench-quality)
    with pytest.raises(TrainingError, match="epochs must be >= 1"):
        default_phases(0)


class DiskFull:
    """safetensors' save_file, failing like a full disk on the writes whose file name matches."""

    def __init__(self, when):
        self.when, self.calls = when, 0

    def __call__(self, tensors, filename, metadata=None):
        self.calls += 1
        if self.when(self.calls, filename):
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        save_file(tensors, filename, metadata=metadata)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One feature cache for the module's runs: they differ in where they write, not in what they see."""
    return tmp_path_factory.mktemp("features")


@pytest.fixture
def fresh(shapes_dataset, tmp_path, cache_dir):
    """Makes a new classifier for the same run, as a second command would."""
    def make():
        return setup_classifier(64, dataset=shapes_dataset, project=tmp_path, seed=0, views=1, workers=0,
                                cache_dir=cache_dir, models_dir=tmp_path / "models")
    return make


PHASES = [Phase(3, 0, 3e-3)]


def test_disk_full_while_checkpointing_stops_the_run_and_resume_continues(fresh, tmp_path):
    full_on_second_epoch = DiskFull(lambda n, name: n == 2)
    with pytest.raises(RunFailed, match=r"disk full while writing .*m\.checkpoint\.safetensors; free space .*--resume"):
        fresh().fit(PHASES, model_name="m", save_tensors=full_on_second_epoch)
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == ["m.checkpoint.safetensors"]  # epoch 1's, no half file
    history = fresh().fit(PHASES, model_name="m", resume=True)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert (models / "m.safetensors").is_file() and not (models / "m.checkpoint.safetensors").exists()


def test_disk_full_while_writing_the_model_keeps_the_checkpoint(fresh, tmp_path):
    full_for_the_model = DiskFull(lambda n, name: name.endswith("m.safetensors.tmp"))
    with pytest.raises(RunFailed, match=r"disk full while writing .*models/m\.safetensors;"):
        fresh().fit(PHASES, model_name="m", save_tensors=full_for_the_model)
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir()) == ["m.checkpoint.safetensors"]
    resumed = fresh()
    history = resumed.fit(PHASES, model_name="m", resume=True, callback=lambda record: pytest.fail("trained again"))
    assert [h["epoch"] for h in history] == [1, 2, 3]  # the run's epochs, from the checkpoint
    assert (models / "m.safetensors").is_file() and (models / "m.json").is_file()


def test_calibration_rests_on_out_of_fold_predictions_of_every_training_photo(shapes_dataset, tmp_path, cache_dir):
    """No validation photos at all, and the model is still calibrated: k heads on the cached
    features answer each training photo without having seen its object (issue 23: 41 validation
    photos swung the temperature). With calibration_folds=0 only validation photos count."""
    import shutil

    from muses.model.files import read_cfg

    folder = tmp_path / "no-val"
    shutil.copytree(shapes_dataset, folder)
    manifest = folder / "manifest.csv"
    manifest.write_text(manifest.read_text().replace(",val,", ",train,"))
    cfgs = []
    for folds in (5, 0):
        clf = setup_classifier(64, dataset=folder, project=tmp_path, seed=0, views=1, workers=0, cache_dir=cache_dir,
                               models_dir=tmp_path / "models", calibration_folds=folds)
        clf.fit(PHASES, model_name=f"m{folds}")
        cfgs.append(read_cfg(tmp_path / "models" / f"m{folds}.json"))
    cross_fitted, on_validation = cfgs
    assert cross_fitted.temperature != 1.0 and 0.0 < cross_fitted.threshold < 1.0
    assert (on_validation.temperature, on_validation.threshold) == (1.0, 0.0)
