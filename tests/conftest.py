"""Fixtures shared by every test module. Add yours below, never edit another's."""
from __future__ import annotations

from pathlib import Path

import pytest

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
    from muses.settings import Project, init_project

    root = tmp_path / "proj"
    init_project(root)
    monkeypatch.setenv("MUSES_PROJECT", str(root))
    return Project.load(root)


# -- classifier fixtures (naive_classification: backbones, training, model files) -------------
SHAPES = ("circle", "square", "triangle")


def make_shapes_dataset(root: Path, *, per_class: int = 16, size: int = 64, seed: int = 0, classes=SHAPES) -> Path:
    """A dataset folder in the exporter's format (docs/CONTRACTS.md): drawn shapes in random
    colours, sizes and positions on a random background; splits per item, 60/20/20."""
    import csv
    import json
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for cls in classes:
        for i in range(per_class):
            bg = tuple(rng.randint(150, 255) for _ in range(3))
            fg = tuple(rng.randint(0, 110) for _ in range(3))
            img = Image.new("RGB", (size, size), bg)
            draw = ImageDraw.Draw(img)
            r = rng.randint(size // 5, size // 3)
            cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
            if cls == "circle":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
            elif cls == "square":
                draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fg)
            else:
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
            name = f"images/{cls}_{i:03d}.png"
            img.save(root / name)
            split = "train" if i % 5 < 3 else ("val" if i % 5 == 3 else "test")
            rows.append({"item_id": f"{cls}-{i}", "image": name, "class": cls, "split": split, "keyword": cls, "field": "title"})
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    meta = {"classes": list(classes), "definitions_digest": "shapes-digest", "seed": seed,
            "split": [0.6, 0.2, 0.2], "exporter": "naive", "created": "2026-01-01T00:00:00+00:00"}
    (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    return root


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
def _text(value) -> str:
    return "; ".join(map(str, value)) if isinstance(value, list) else str(value or "")


def add_met_items(project, met_sample: Path, n: int) -> list[str]:
    """The first ``n`` Met records as store items, their photos copied to the project's images
    folder as ready ML-size images (status ok); returns the item ids."""
    import json
    import shutil

    from muses.collection.store import Image, Item, Store

    lines = (met_sample / "records.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    project.images_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for record in map(json.loads, lines):
        name = f"{record['id']}.jpg"
        shutil.copy(met_sample / record["image"], project.images_dir / name)
        items.append(Item(
            id=str(record["id"]), title=record["title"], object_type=record["what"],
            material=_text(record.get("medium")), period=_text(record.get("when")), raw=record,
            images=[Image(position=0, original=str(met_sample / record["image"]),
                          stored_path=f"{project.images_dir.name}/{name}", status="ok")],
        ))
    with Store.for_project(project).transaction() as s:
        s.add_all(items)
    return [item.id for item in items]


# -- store backends: SQLite and PostgreSQL (owned by the PostgreSQL work; tests/pg_cluster.py) ----
STORE_BACKENDS = ("sqlite", "postgresql")


def _postgres_missing() -> str | None:
    from benchmarks.pg_cluster import missing

    why = missing()
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
    from benchmarks.pg_cluster import start_cluster

    cluster = start_cluster()
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
