"""The collection map: `muses map` lays out the embedded objects; /map draws them on a canvas."""
from __future__ import annotations

import csv
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from muses.testing.catalog import add_met_items
from muses.testing.net import free_port
from muses.classify import classify_collection
from muses.collection_map import SCALE, MapError, build_map, layout, map_path
from muses.settings import Project, init_project
from muses.web import create_app

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.filterwarnings("ignore::muses.model.loading.DefinitionsMismatchWarning")
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def mapped(tmp_path_factory, met_sample, tiny_model_path):
    """12 Met objects classified with the tiny model, and their map."""
    project = Project.load(init_project(tmp_path_factory.mktemp("map") / "proj")[0].parent)
    ids = add_met_items(project, met_sample, 12)
    classify_collection(project, model_path=tiny_model_path)
    report = build_map(project)
    return project, ids, report


def test_map_places_every_embedded_object(mapped):
    project, ids, report = mapped
    data = json.loads(map_path(project).read_text(encoding="utf-8"))
    assert report.count == data["count"] == 12 and report.method == data["method"] == "pca"  # too few for UMAP
    assert sorted(data["ids"]) == sorted(ids)
    assert min(data["x"]) == 0 and max(data["x"]) == SCALE and all(0 <= y <= SCALE for y in data["y"])
    assert set(data["classes"]) <= {"circle", "square", "triangle"}  # the tiny model's classes
    assert all(0 <= c < len(data["classes"]) for c in data["c"])
    assert len(data["images"]) == 12 and all(isinstance(i, int) for i in data["images"])


def test_no_map_before_classify(project):
    with pytest.raises(MapError, match="muses classify"):
        build_map(project)


def test_layout_refuses_an_unknown_method():
    with pytest.raises(MapError, match="umap, pca"):
        layout(np.ones((5, 4)), method="tsne")


@pytest.mark.slow
def test_umap_keeps_look_alike_groups_together():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 64)) * 4
    labels = np.repeat(np.arange(3), 40)
    xy, used = layout(centers[labels] + rng.normal(size=(120, 64)), method="auto")
    assert used == "umap"
    means = np.stack([xy[labels == k].mean(axis=0) for k in range(3)])
    spread = max(np.linalg.norm(xy[labels == k] - means[k], axis=1).mean() for k in range(3))
    gaps = min(np.linalg.norm(means[a] - means[b]) for a in range(3) for b in range(a + 1, 3))
    assert gaps > 3 * spread


def test_map_page_and_data(mapped, tiny_model_path, tmp_path):
    from fastapi.testclient import TestClient

    project, _, _ = mapped
    with TestClient(create_app(project, tiny_model_path)) as client:
        page = client.get("/map")
        assert page.status_code == 200 and '<canvas id="map"' in page.text and "map.js" in page.text
        assert client.get("/api/map").json()["count"] == 12
    empty = Project.load(init_project(tmp_path / "empty")[0].parent)
    with TestClient(create_app(empty)) as client:
        assert "muses map" in client.get("/map").text
        missing = client.get("/api/map")
        assert missing.status_code == 404 and "muses classify" in missing.json()["detail"]


def test_cli_map(mapped, monkeypatch, capsys):
    from muses.cli import main

    project, _, _ = mapped
    monkeypatch.setenv("MUSES_PROJECT", str(project.root))
    assert main(["map", "--method", "pca"]) == 0
    out = capsys.readouterr().out
    assert "12 objects placed by pca" in out and "muses serve" in out


@pytest.mark.slow
def test_map_draws_and_a_click_opens_the_object(mapped, tiny_model_path):
    import uvicorn
    from playwright.sync_api import expect, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium (CI installs it)")
    project, _, _ = mapped
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(project, tiny_model_path), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 1000, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/map")
            page.wait_for_function("() => window.museMap && window.museMap.ready", timeout=15_000)
            # Dots are drawn: the canvas holds pixels of the class colours, not only a blank page.
            drawn = page.evaluate("""() => { const c = document.getElementById('map');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
            assert drawn > 12 * 4
            assert page.locator("#map-legend li").count() >= 1
            (REPO / "test-artifacts").mkdir(exist_ok=True)
            page.screenshot(path=str(REPO / "test-artifacts" / "map.png"))
            target = page.evaluate("""() => { const m = window.museMap, [x, y] = m.toScreen(0);
                const b = document.getElementById('map').getBoundingClientRect();
                return {id: m.data.ids[0], x: b.left + x, y: b.top + y}; }""")
            page.mouse.move(target["x"] - 20, target["y"] - 20)
            page.mouse.move(target["x"], target["y"], steps=3)
            page.wait_for_selector("#map-tip:not([hidden])")
            assert page.locator("#map-tip .number").inner_text() == target["id"]
            expect(page.locator("#map-tip .title")).not_to_be_empty()  # the title, fetched on hover
            page.mouse.wheel(0, -200)  # zooming moves the dots: the box goes
            expect(page.locator("#map-tip")).to_be_hidden()
            page.evaluate("() => window.museMap.reset()")  # back to the whole map (a double click does it)

            # the legend filters: a hidden class leaves fewer pixels and says how many are shown
            legend = page.locator("#map-legend button").first
            legend.click()
            expect(legend).to_have_attribute("aria-pressed", "false")
            expect(page.locator("#map-count")).to_contain_text("shown")
            legend.click()

            # a box drawn with shift-drag over the whole map selects every object
            box = page.locator("#map").bounding_box()
            page.keyboard.down("Shift")
            page.mouse.move(box["x"] + 2, box["y"] + 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=5)
            page.mouse.up()
            page.keyboard.up("Shift")
            count = page.evaluate("() => window.museMap.data.count")
            expect(page.locator("#map-selection .count")).to_have_text(f"{count} objects selected")
            with page.expect_download() as download:
                page.click("#map-selection button:has-text('Download as CSV')")
            rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))
            assert len(rows) == count and target["id"] in {r["object number"] for r in rows}
            page.click("#map-selection button:has-text('Clear')")

            page.mouse.move(target["x"], target["y"], steps=3)
            page.mouse.click(target["x"], target["y"])
            page.wait_for_url(f"**/item?id={target['id']}")
            assert target["id"] in page.content()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
