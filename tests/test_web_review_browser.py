"""The review loop end to end in a real headless Chromium: decide five cards with the keyboard
(undo included), export the decisions for the collection management system, export the dataset
again and find the reviewed labels in it."""
from __future__ import annotations

import csv
import io
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from muses.testing.catalog import add_met_items
from muses.testing.net import free_port
from muses.cli import main
from muses.collection import decisions as dec
from muses.collection.store import Item, Store
from muses.datasets.naive import NaiveExporter
from muses.labeling.definitions import load_definitions
from muses.labeling.matching import LABELED, Matcher, record_fields
from muses.predictions import classification
from muses.settings import Project, init_project
from muses.web import create_app
from test_web_browser import ARGS, CHROMIUM

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

pytestmark = pytest.mark.slow
ARTIFACTS = REPO / "test-artifacts"
OTHER = {"bust": "vessel", "photograph": "miniature", "miniature": "photograph", "medal": "bust", "vessel": "medal"}


def _label_issues_file(project: Project, n: int = 6) -> list[dict]:
    """The first ``n`` labeled demo records as `muses label-issues` lists them, each with a
    class the photos seem to say instead; the rows, in order."""
    matcher = Matcher(load_definitions(project.definitions_path))
    rows = []
    for item in Store.for_project(project).items():
        label = matcher.label(record_fields(item))
        if label.status == LABELED and len(rows) < n:
            rows.append({"id": item.id, "title": item.title, "object_type": " / ".join(item.object_type),
                         "naive_label": label.cls, "suggested": OTHER[label.cls], "confidence": f"{0.97 - len(rows) / 20:.3f}",
                         "label_quality": "0.02", "image": item.images[0].stored_path})
    project.plots_dir.mkdir(parents=True, exist_ok=True)
    with (project.plots_dir / "naive_label_issues.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _wait_until_started(srv, thread, timeout: float = 30) -> None:
    start = time.monotonic()
    while not srv.started:
        assert thread.is_alive() and time.monotonic() - start < timeout, "the server did not start"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory, met_sample):
    import uvicorn

    project = Project.load(init_project(tmp_path_factory.mktemp("review-browser") / "proj")[0].parent)
    shutil.copy(EXAMPLES / "definitions.toml", project.definitions_path)
    add_met_items(project, met_sample, 206)
    rows = _label_issues_file(project)
    port = free_port()
    app = create_app(project, allow_writes=True, reviewer="Ana Ruiz")
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    _wait_until_started(srv, thread)
    yield f"http://127.0.0.1:{port}", project, rows
    srv.should_exit = True
    thread.join(10)


def test_review_five_cards_with_the_keyboard_then_export(server, tmp_path, capsys):
    from playwright.sync_api import expect, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium (CI installs it)")
    url, project, rows = server
    ids = [r["id"] for r in rows]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 820})
        page.goto(url + "/review")
        page.click("text=Labels that look wrong")
        progress = page.locator("#progress")
        expect(progress).to_contain_text("0 of 6 decided")
        current = page.locator(".review-card.current")
        expect(current).to_have_attribute("data-id", ids[0])
        expect(current.locator("a.object-number")).to_have_attribute("href", f"/items/{ids[0]}")
        page.wait_for_function("() => document.querySelector('.review-card.current img').complete")
        assert current.locator("img").evaluate("img => img.naturalWidth") > 0
        page.screenshot(path=str(ARTIFACTS / "review.png"))

        page.keyboard.press("c")  # 1: the catalog is right
        expect(progress).to_contain_text("1 of 6 decided")
        expect(current).to_have_attribute("data-id", ids[1])
        page.keyboard.press("s")  # 2: use the suggestion
        expect(progress).to_contain_text("2 of 6 decided")
        page.keyboard.press("n")  # 3: not one of these ... then undone and decided otherwise
        expect(progress).to_contain_text("3 of 6 decided")
        page.keyboard.press("u")
        expect(progress).to_contain_text("2 of 6 decided")
        expect(current).to_have_attribute("data-id", ids[2])
        page.keyboard.press("o")  # 3 again: choose another class, with the arrow keys and Enter
        select = current.locator("select")
        expect(select).to_be_focused()
        page.keyboard.press("ArrowDown")
        chosen = select.input_value()
        page.keyboard.press("Enter")
        expect(progress).to_contain_text("3 of 6 decided")
        page.keyboard.press(" ")  # 4: skip
        expect(progress).to_contain_text("1 skipped")
        expect(current).to_have_attribute("data-id", ids[4])
        page.keyboard.press("n")  # 5: not one of these
        expect(progress).to_contain_text("4 of 6 decided")
        expect(current).to_have_attribute("data-id", ids[5])
        page.reload()  # decided records do not come back; the skipped one does
        expect(page.locator("#progress")).to_contain_text("4 of 6 decided")
        current = page.locator(".review-card.current")
        expect(current).to_have_attribute("data-id", ids[3])
        page.keyboard.press("s")  # 4 after all: use the suggestion
        expect(current).to_have_attribute("data-id", ids[5])
        page.keyboard.press("n")  # 6: the last card; its confirmation stays beside "all done"
        message = page.locator("#message")
        expect(message).to_contain_text(f"{ids[5]}: none of these")
        expect(message).to_contain_text("All cards on this page are done")
        assert "`" not in page.inner_text("body")

        page.reload()  # undo survives a reload: the server knows the reviewer's last decision
        expect(page.locator(".next")).to_contain_text("Nothing left to decide here")
        page.keyboard.press("u")
        expect(page.locator("#message")).to_contain_text(f"undone: your last decision on {ids[5]}")
        page.reload()
        expect(page.locator(".review-card.current")).to_have_attribute("data-id", ids[5])
        expect(page.locator("#progress")).to_contain_text("5 of 6 decided")
        page.screenshot(path=str(ARTIFACTS / "review-card.png"))

        # revise from the object page: "none of these", with a note; withdraw another
        page.goto(url + f"/items/{ids[0]}")
        expect(page.locator("#decision .decided-class")).to_contain_text(rows[0]["naive_label"])
        page.select_option("#decision select[name=chosen]", label=dec.NONE_OF_THESE)
        page.fill("#decision input[name=note]", "a lid, not a whole object")
        page.click("#decision button:has-text('Save decision')")
        expect(page.locator("#decision .decided-class")).to_contain_text(dec.NONE_OF_THESE)
        expect(page.locator("#decision .note")).to_contain_text("a lid")
        page.screenshot(path=str(ARTIFACTS / "object-page.png"), full_page=True)
        page.goto(url + f"/items/{ids[1]}")
        page.click("#decision button:has-text('Withdraw the decision')")
        expect(page.locator("#decision .undecided")).to_contain_text("withdrawn")
        page.goto(url + f"/items/{ids[0]}")
        page.click("text=History of this record’s decisions")
        expect(page.locator("table.history tbody tr")).to_have_count(2)
        page.screenshot(path=str(ARTIFACTS / "history.png"), full_page=True)

        page.goto(url + "/decisions")
        with page.expect_download() as download:
            page.click("button:has-text('Export decisions')")
        data = Path(download.value.path()).read_bytes()
        browser.close()

    assert data.startswith(b"\xef\xbb\xbf")  # the byte-order mark Excel needs for accented names
    exported = {r["object number"]: r for r in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))}
    assert list(exported) == sorted(exported, key=dec.natural_key)
    assert {i: (r["decision"], r["decided value"]) for i, r in exported.items()} == {
        ids[0]: (dec.NOT_ONE, ""),  # revised on the object page: the empty none-of-these cell
        ids[2]: (dec.OTHER_CLASS, chosen),
        ids[3]: (dec.USE_SUGGESTION, rows[3]["suggested"]),
        ids[4]: (dec.NOT_ONE, ""),
    }  # ids[1] withdrawn, ids[5] undone
    assert all(r["decided at"].endswith("+00:00") for r in exported.values())
    assert exported[ids[0]]["title"] == rows[0]["title"] and exported[ids[0]]["note"] == "a lid, not a whole object"
    assert exported[ids[2]]["list"] == "issues" and {r["reviewer"] for r in exported.values()} == {"Ana Ruiz"}

    out = tmp_path / "decisions.csv"
    assert main(["decisions", "export", "--project", str(project.root), "--out", str(out)]) == 0
    assert out.read_bytes() == data  # the button and the command write the same file

    result = NaiveExporter(progress=False).export(project)
    with (result.path / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        manifest = {r["item_id"]: r["class"] for r in csv.DictReader(fh)}
    assert manifest[ids[0]] == manifest[ids[4]] == "other"  # none of these: teaches the class other
    assert manifest[ids[1]] == rows[1]["naive_label"]  # withdrawn: the catalog's label stands
    assert manifest[ids[2]] == chosen
    assert manifest[ids[3]] == rows[3]["suggested"]


def test_collection_cards_mark_uncertain_and_none_of_these_answers(server):
    """Three stored answers (as `muses classify` writes them, threshold 0.5) on the collection
    page: sure, uncertain (dashed, "uncertain: maybe ..."), none of these (grey); never "other"."""
    from playwright.sync_api import expect, sync_playwright

    url, project, _ = server
    store = Store.for_project(project)
    matcher = Matcher(load_definitions(project.definitions_path))
    names = ["bust", "photograph", "miniature", "medal", "vessel", "other"]
    wanted = {"vessel": [0.03, 0, 0, 0.02, 0.91, 0.04], "bust": [0.41, 0, 0, 0.3, 0.2, 0.09],
              None: [0.005, 0.005, 0, 0.005, 0, 0.985]}
    with store.transaction() as s:
        for item in s.scalars(select(Item).order_by(Item.id)):
            label = matcher.label(record_fields(item))
            if item.images and label.cls in wanted:
                item.classification = classification(names, np.array([wanted.pop(label.cls)]), model="naive",
                                                     threshold=0.5)
    assert not wanted
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        deadline = time.monotonic() + 30
        # the classified three, first once the browse index has followed the store (in the background)
        while page.goto(url + "/items?sort=confidence&per_page=3") and page.locator(".grid .tag.predicted").count() < 3:
            assert time.monotonic() < deadline, "the collection page never showed the stored answers"
            time.sleep(0.2)
        tags = page.locator(".grid .tag.predicted")
        expect(tags).to_have_text(["none of these", "vessel 91 %", "uncertain: maybe bust 41 %"])
        uncertain = page.locator(".grid .tag.answer-uncertain")
        assert uncertain.evaluate("e => getComputedStyle(e).borderTopStyle") == "dashed"
        assert "threshold" in uncertain.get_attribute("title")
        page.wait_for_function("() => [...document.querySelectorAll('.grid img')].every(i => i.complete)")
        assert not re.search(r"\bother\b", page.inner_text("body"))
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "cards-answers.png"))
        browser.close()
