"""The compute engines: Ray optional and asked for by name; `classify --engine ray` on a local
Ray cluster stores what the local path stores."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from muses.classify import classify_collection
from muses.cli import main
from muses.collection.store import Store
from muses.embeddings import Embeddings
from muses.settings import ConfigError
from muses.compute import ComputeSettings, RayMissing, require_ray
from muses.collection.images import generate_images
from test_classify import met_project  # noqa: F401 - the fixture: real Met photos, a broken and a missing one
from test_collection_images import corpus_project  # noqa: F401 - the fixture: good, broken, truncated, huge... photos
from test_model_onnx import exported  # noqa: F401 - the fixture: the tiny model exported for ONNX Runtime

pytestmark = pytest.mark.filterwarnings("ignore::muses.model.loading.DefinitionsMismatchWarning")


@pytest.fixture
def without_ray(monkeypatch):
    """This interpreter as if Ray were not installed (None in sys.modules makes `import ray` fail)."""
    monkeypatch.setitem(sys.modules, "ray", None)


def test_settings_refuse_unknown_engine_and_zero_workers():
    with pytest.raises(ConfigError, match="one of local, ray"):
        ComputeSettings(engine="spark")
    with pytest.raises(ConfigError, match=">= 1"):
        ComputeSettings(engine="ray", workers=0)
    assert ComputeSettings(engine="ray").uses_ray and not ComputeSettings().uses_ray


def test_without_ray_the_ray_engine_says_what_to_install(without_ray):
    with pytest.raises(RayMissing, match=r'pip install "muses\[ray\]"'):
        require_ray()


def test_classify_engine_ray_without_ray_is_a_usage_message(met_project, tiny_model_path, without_ray, capsys):
    code = main(["classify", "--engine", "ray", "--model", str(tiny_model_path)])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "muses[ray]"' in err and "Traceback" not in err


def test_muses_imports_and_classifies_locally_without_ray(met_project, tiny_model_path, without_ray):
    report = classify_collection(met_project, model_path=tiny_model_path, compute=ComputeSettings())
    assert report.classified and "broken" in report.failed


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, address="local", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


def _stored(project) -> dict:
    return {i.id: i.classification for i in Store.for_project(project).items() if i.classification}


def _embedded(project) -> dict[int, np.ndarray]:
    """Image id -> its stored embedding."""
    embeddings = Embeddings.for_project(project)
    ids, slots = embeddings.slots()
    return dict(zip(ids.tolist(), embeddings.vectors(slots)))


def _neighbours(project, item_id: str, capsys) -> list[str]:
    assert main(["similar", "--item", item_id, "--json", "--project", str(project.root)]) == 0
    return [h["item_id"] for h in json.loads(capsys.readouterr().out)["similar"]]


@pytest.mark.slow
def test_classify_on_ray_stores_what_the_local_path_stores(met_project, tiny_model_path, ray_cluster, capsys):
    local = classify_collection(met_project, model_path=tiny_model_path, runtime="torch", batch_size=3)
    expected = _stored(met_project)
    expected_vectors = _embedded(met_project)
    expected_similar = _neighbours(met_project, local.classified[0], capsys)
    on_ray = classify_collection(met_project, model_path=tiny_model_path, runtime="torch", batch_size=3,
                                 update_existing=True, compute=ComputeSettings(engine="ray", workers=2))
    got = _stored(met_project)
    assert sorted(on_ray.classified) == sorted(local.classified) and on_ray.failed == local.failed
    assert sorted(on_ray.unreadable) == sorted(local.unreadable)
    assert got.keys() == expected.keys()
    for item_id, c in got.items():
        want = expected[item_id]["classes"]
        assert [k["name"] for k in c["classes"]] == [k["name"] for k in want], item_id
        for k, w in zip(c["classes"], want):
            assert k["probability"] == pytest.approx(w["probability"], abs=1e-5)
    # the photos' embeddings too, so that similar-object search works after a Ray run
    vectors = _embedded(met_project)
    assert vectors.keys() == expected_vectors.keys() and len(vectors) == 7  # every readable photo
    for image_id, vector in vectors.items():
        # stored as float16: within one float16 step of the local run's (about 3e-5 at these values)
        np.testing.assert_allclose(vector, expected_vectors[image_id], atol=2 ** -15, rtol=2 ** -10)
    assert _neighbours(met_project, local.classified[0], capsys) == expected_similar
    # resumable as on one machine: nothing left to do, nothing done again
    again = classify_collection(met_project, model_path=tiny_model_path, runtime="torch",
                                compute=ComputeSettings(engine="ray", workers=2))
    assert again.classified == [] and again.skipped_existing == len(local.classified)


def _checked(store) -> dict:
    return {im.original: (im.status, im.problem, im.checksum, im.stored_path, im.width, im.height)
            for im in store.images()}


@pytest.mark.slow
def test_generate_images_on_ray_checks_every_photo_as_the_local_run(corpus_project, ray_cluster):
    project, store, local, _ = corpus_project
    expected = _checked(store)
    on_ray = generate_images(project, store=store, force=True, compute=ComputeSettings(engine="ray", workers=2))
    assert _checked(store) == expected
    assert on_ray.by_status == local.by_status and on_ray.problems == local.problems


def test_generate_images_engine_ray_without_ray_says_what_to_install(corpus_project, without_ray, capsys):
    project = corpus_project[0]
    code = main(["generate-images", "--force", "--engine", "ray", "--project", str(project.root)])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "muses[ray]"' in err and "Traceback" not in err


def _train(root, dataset, compute=None):
    """A short run of both phases (transfer, then fine-tuning the last block) from one seed."""
    from muses.naive_classification.helpers import setup_classifier
    from muses.model.training import default_phases

    root.mkdir()
    clf = setup_classifier(64, mode="train", dataset=dataset, project=root, seed=0, views=2, workers=0,
                           cache_dir=root / "cache", models_dir=root / "models", device="cpu", compute=compute)
    history = clf.fit(default_phases(3, fine_tuning=True, unfrozen_blocks=1, lr=3e-3), model_name="m")
    return clf, history


def _ray_actors(ray) -> int:
    """Actors this cluster has started (alive or finished): proof that work went to Ray. Ray's
    public state API needs the dashboard, which the test cluster runs without."""
    return len(ray._private.state.actors())


def _cached(cache_dir) -> dict:
    """Every cached tensor, by file kind and entry key."""
    from safetensors import safe_open

    out = {}
    for path in sorted(cache_dir.rglob("*.safetensors")):
        kind = path.name.split("-")[0] if path.parent == cache_dir else path.parent.name.split("-")[0]
        with safe_open(str(path), framework="pt") as f:
            out.update({(kind, key): f.get_tensor(key) for key in f.keys()})
    return out


@pytest.mark.slow
def test_training_features_extracted_on_ray_train_the_same_model(shapes_dataset, tmp_path, ray_cluster):
    local, local_history = _train(tmp_path / "local", shapes_dataset)
    before = _ray_actors(ray_cluster)
    on_ray, ray_history = _train(tmp_path / "ray", shapes_dataset, ComputeSettings(engine="ray", workers=2))
    assert _ray_actors(ray_cluster) >= before + 2  # the frozen trunk run by 2 actors
    want, got = _cached(tmp_path / "local" / "cache"), _cached(tmp_path / "ray" / "cache")
    assert got.keys() == want.keys() and {kind for kind, _ in got} == {"trunk", "pooled"}
    for key, value in got.items():  # float16 files: within a float16 step of the local run's
        np.testing.assert_allclose(value.float().numpy(), want[key].float().numpy(), rtol=2 ** -9, atol=1e-4)
    assert [h["val_accuracy"] for h in ray_history] == [h["val_accuracy"] for h in local_history]
    for name, value in on_ray.net.state_dict().items():
        np.testing.assert_allclose(value.float().numpy(), local.net.state_dict()[name].float().numpy(), atol=1e-3)
    photos = [p for p in sorted((shapes_dataset / "images").iterdir())[:6]]
    np.testing.assert_allclose(on_ray.predict_new(photos), local.predict_new(photos), atol=1e-3)


def test_train_model_on_ray_and_in_several_processes_is_refused(project, capsys):
    code = main(["train-model", "--engine", "ray", "--nproc", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "use one of them" in err and "Traceback" not in err


def test_train_model_engine_ray_without_ray_says_what_to_install(project, without_ray, capsys):
    code = main(["train-model", "--engine", "ray"])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "muses[ray]"' in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_label_review_features_extracted_on_ray_are_the_local_ones(exported, shapes_dataset, tmp_path, runtime,
                                                                    ray_cluster):
    from muses.analysis.label_issues import image_features
    from muses.model.loading import load_model

    predictor = load_model(exported[0], runtime=runtime)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    photos = sorted((shapes_dataset / "images").iterdir())[:10] + [broken]
    local = image_features(predictor, photos, cache_dir=tmp_path / "local", batch_size=4)
    before = _ray_actors(ray_cluster)
    on_ray = image_features(predictor, photos, cache_dir=tmp_path / "ray", batch_size=4,
                            compute=ComputeSettings(engine="ray", workers=2))
    assert _ray_actors(ray_cluster) == before + 2
    assert on_ray.paths == local.paths and len(on_ray.paths) == 10
    assert [p for p, _ in on_ray.skipped] == [p for p, _ in local.skipped] == [broken]
    # the cache holds float16: within one float16 step of the local run's
    np.testing.assert_allclose(on_ray.values, local.values, rtol=2 ** -10, atol=1e-5)
    assert [p.name for p in (tmp_path / "ray").iterdir()] == [p.name for p in (tmp_path / "local").iterdir()]


def test_label_issues_engine_ray_without_ray_says_what_to_install(project, without_ray, capsys):
    code = main(["label-issues", "--engine", "ray"])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "muses[ray]"' in err and "Traceback" not in err
