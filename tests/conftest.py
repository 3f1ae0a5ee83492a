"""Fixtures shared by every test module (only fixtures: the helpers they use are in
:mod:`muses.testing`, which test modules import themselves). Add yours below, never edit another's."""
from __future__ import annotations

from pathlib import Path

import pytest

from muses.testing import postgres
from muses.testing.catalog import new_project
from muses.testing.datasets import make_shapes_dataset

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
# Real Met records and photographs bundled with the repository (206 records): the tests need
# nothing beside the checkout. The larger shared Met sample is for benchmarks only.
MET_DEMO = EXAMPLES / "met-demo"


@pytest.fixture(scope="session")
def met_sample() -> Path:
    return MET_DEMO


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh project folder made by `muses init`, also set as $MUSES_PROJECT."""
    return new_project(tmp_path / "proj", monkeypatch)


# -- classifier fixtures (naive_classification: backbones, training, model files) -------------
@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory) -> Path:
    """Circles, squares and triangles (16 each, 64 px) as a dataset folder."""
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes") / "datasets" / "naive")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, shapes_dataset) -> Path:
    """A small real model (Lite0, ImageNet weights, 64 px, head trained on the shapes dataset)
    for tests that need one; returns the path of its .safetensors (the .json sits beside it)."""
    from muses.naive_classification.helpers import setup_classifier

    root = tmp_path_factory.mktemp("tiny_model")
    clf = setup_classifier(64, mode="train", dataset=shapes_dataset, project=root, seed=0, views=2,
                           workers=0, cache_dir=root / "cache", models_dir=root / "models")
    clf.set_optimizer(3e-3)
    clf.train_model(15, model_name="tiny")
    return root / "models" / "tiny.safetensors"


# -- classify / search / web fixtures ---------------------------------------------------------
# -- store backends: SQLite and PostgreSQL (a throwaway cluster: muses/testing/postgres.py) -------
STORE_BACKENDS = ("sqlite", "postgresql")


def _postgres_missing() -> str | None:
    why = postgres.missing()
    return f"{why}: the PostgreSQL store tests skip" if why else None


def pytest_report_header(config):
    missing = _postgres_missing()
    return missing or "store tests run on SQLite and on a throwaway PostgreSQL cluster"


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL cluster on a unix socket in a temporary folder, for this test session."""
    missing = _postgres_missing()
    if missing:
        pytest.skip(missing)
    cluster = postgres.start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request, tmp_path) -> str:
    """An empty store's URL: an SQLite file, or a fresh database in the test PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'muses.sqlite'}"
    return request.getfixturevalue("pg_cluster").new_database()


@pytest.fixture
def any_store_project(project, store_url, monkeypatch):
    """The ``project`` fixture with its store on each backend ($MUSES_STORE_URL)."""
    monkeypatch.setenv("MUSES_STORE_URL", store_url)
    return project


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def module_store_url(request, tmp_path_factory):
    """Like ``store_url`` for a module-scoped fixture, set as $MUSES_STORE_URL for the module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'muses.sqlite'}"
    else:
        url = request.getfixturevalue("pg_cluster").new_database()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUSES_STORE_URL", url)
        yield url
