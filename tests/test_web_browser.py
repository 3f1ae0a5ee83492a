"""End to end: the real server on a free localhost port, driven by a real headless Chromium."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from muses.testing.catalog import add_met_items
from muses.testing.net import free_port
from muses.classify import classify_collection
from muses.collection.store import Item, Store
from muses.settings import Project, init_project
from muses.web import create_app

REPO = Path(__file__).resolve().parents[1]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
ODD_IDS = ("..", ".", "a/b", "a b#c?d")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::muses.model.loading.DefinitionsMismatchWarning"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, met_sample, tiny_model_path):
    import uvicorn

    project = Project.load(init_project(tmp_path_factory.mktemp("browser") / "proj")[0].parent)
    ids = add_met_items(project, met_sample, 24)
    classify_collection(project, model_path=tiny_model_path)
    with Store.for_project(project).transaction() as s:
        for item in s.scalars(select(Item).where(Item.id.in_(ids))):  # numbers unlike their ids, as the Met's are
            item.object_number = f"MET.{item.id}"
        # ids a browser would normalise away in a path
        s.add_all(Item(id=item_id, title=f"Odd id {item_id}", object_type=["Odds"]) for item_id in ODD_IDS)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(project, tiny_model_path), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", project, ids
    srv.should_exit = True
    thread.join(10)


def test_upload_a_photo_and_browse(server):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium (CI installs it)")
    url, project, ids = server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(url + "/")
        page.set_input_files("#file", str(project.images_dir / f"{ids[1]}.jpg"))
        page.click("button[type=submit]")
        page.wait_for_selector(".result .card")
        assert page.locator(".bars li").count() == 3  # the tiny model's three classes
        assert page.locator(".result .card").count() >= 1
        # Thumbnails are loading="lazy": bring the first into view and let it finish before checking it decoded.
        thumb = page.locator(".result .card img").first
        thumb.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete", arg=thumb.element_handle(), timeout=15_000)
        assert thumb.evaluate("img => img.naturalWidth") > 0  # thumbnails load
        page.screenshot(path=str(ARTIFACTS / "web-upload.png"), full_page=True)

        page.goto(url + "/items?disagree=true")
        assert "catalog label disagrees" in page.content()
        page.screenshot(path=str(ARTIFACTS / "web-items.png"), full_page=True)
        page.locator(".card").first.click()
        page.wait_for_selector("h2:has-text('Predicted classes')")
        assert page.locator(".bars progress").count() >= 1
        # the similar objects come after the page, fetched by its script, as cards like the listing's
        page.wait_for_selector("#similar .grid .card", timeout=15_000)
        assert page.locator("#similar .card .why").first.inner_text()
        assert page.locator("#similar .card .object-number").first.inner_text() in {f"MET.{i}" for i in ids}  # named by object number
        assert page.locator("#similar .similar-status").count() == 0
        from muses.web.templating import templates  # the tooltips item.js takes from the page, as cards.html's
        assert page.locator("#similar .card .tag.predicted").first.get_attribute("title") in (
            templates.env.globals["answer_titles"].values())
        page.screenshot(path=str(ARTIFACTS / "web-item.png"), full_page=True)
        browser.close()


def test_odd_ids_lead_to_their_own_page(server):
    from playwright.sync_api import sync_playwright

    url, _, _ = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        for item_id in ODD_IDS:
            page.goto(url + "/items?naive=(none)&per_page=100")
            page.get_by_text(f"Odd id {item_id}", exact=True).click()
            page.wait_for_selector("h1")
            # the title, then the object number (the id itself: these records have no other)
            assert page.locator("h1").inner_text() == f"Odd id {item_id} {item_id}", page.url
        browser.close()


def test_the_facets_of_a_common_word_fill_the_sidebar_after_the_page(server, monkeypatch):
    """A search past FACETS_AFTER matches shows its page with "counting…" beside it; the page's
    script then puts the counted sidebar in its place, links as the inline one has them."""
    from playwright.sync_api import sync_playwright

    from muses.web import browse

    monkeypatch.setattr(browse, "FACETS_AFTER", 1)  # the server runs in this process
    url, _, _ = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        held = []  # the script's fetch of the counts, let go once "counting…" was seen
        page.route("**/items?*facets=1*", lambda route: held.append(route))
        page.goto(url + "/items?q=odd")
        assert page.locator("aside.facets .counting").is_visible()
        deadline = time.monotonic() + 15
        while not held and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        held.pop().continue_()
        page.unroute("**/items?*facets=1*")
        page.wait_for_selector("aside.facets .facet h3", timeout=15_000)
        assert page.locator("aside.facets .counting").count() == 0
        page.locator("aside.facets .facet li a").first.click()  # the counted sidebar's links filter the listing
        page.wait_for_selector("aside.facets li.on", timeout=15_000)
        browser.close()
