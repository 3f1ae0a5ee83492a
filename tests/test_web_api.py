"""The web app through FastAPI's TestClient: pages, JSON API, bad uploads, image serving."""
from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from muses.testing.catalog import add_met_items
from muses.classify import classify_collection
from muses.collection.store import Image, Item, Store
from muses.settings import Project, init_project
from muses.web import create_app
from muses.web.uploads import UploadError, read_upload

pytestmark = pytest.mark.filterwarnings("ignore::muses.model.loading.DefinitionsMismatchWarning")


@pytest.fixture(scope="module")
def web_project(tmp_path_factory, met_sample, tiny_model_path, module_store_url) -> Project:
    """Ten classified Met items, one unclassified, one whose stored path leaves the project."""
    project = Project.load(init_project(tmp_path_factory.mktemp("web") / "proj")[0].parent)
    ids = add_met_items(project, met_sample, 10)
    classify_collection(project, model_path=tiny_model_path, ids=ids[:9])
    with Store.for_project(project).transaction() as s:
        s.add(Item(id="escape", title="Bust outside", object_type=["Busts"],
                   images=[Image(position=0, original="x", stored_path="../../../etc/passwd", status="ok")]))
    return project


@pytest.fixture(scope="module")
def client(web_project, tiny_model_path) -> TestClient:
    return TestClient(create_app(web_project, tiny_model_path, max_upload_bytes=400_000, max_pixels=5_000_000))


def jpeg_of(project: Project, item_id: str) -> bytes:
    return (project.images_dir / f"{item_id}.jpg").read_bytes()


def png(size=(32, 32), mode="RGB") -> bytes:
    buf = io.BytesIO()
    PILImage.new(mode, size, 200).save(buf, "PNG")
    return buf.getvalue()


def first_id(project) -> str:
    return next(Store.for_project(project).items()).id


def test_predict_returns_classes_and_similar_objects(client, web_project):
    item_id = first_id(web_project)
    r = client.post("/api/predict", files={"file": ("photo.jpg", jpeg_of(web_project, item_id), "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny"
    assert [c["name"] for c in body["classes"]] and len(body["classes"]) == 3  # the tiny model has 3 classes
    assert sum(c["probability"] for c in body["classes"]) == pytest.approx(1, abs=1e-3)
    similar = {h["id"]: h for h in body["similar"]}
    # the same photo's item has the same stored top class, so the prediction boost finds it
    assert item_id in similar and similar[item_id]["thumbnail"].startswith("/images/")
    assert similar[item_id]["predicted"] == body["classes"][0]["name"]
    # the answer in words, with the model's own threshold: "circle 97 %" or "uncertain: maybe circle 41 %"
    assert body["answer"].removeprefix("uncertain: maybe ").startswith(body["classes"][0]["name"] + " ")
    assert body["answer_kind"] == ("uncertain" if body["answer"].startswith("uncertain") else "sure")


def test_type_is_sniffed_from_the_content_not_the_name(client):
    r = client.post("/api/predict", files={"file": ("notes.txt", png(), "text/plain")})
    assert r.status_code == 200
    r = client.post("/api/predict", files={"file": ("photo.jpg", b"%PDF-1.4 not a photo", "image/jpeg")})
    assert r.status_code == 415 and "not an image" in r.json()["detail"]


@pytest.mark.parametrize("data, status, message", [
    (b"", 400, "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 415, "not an image"),
    (png()[:60], 400, "corrupt or truncated"),
    (png((5000, 5000), "1"), 413, "pixels"),  # a decompression bomb: 25 Mpx in a few kB
    (b"\xff" * 450_000, 413, "larger than"),  # over max_upload_bytes, refused before reading
])
def test_bad_uploads_get_clear_errors(client, data, status, message):
    r = client.post("/api/predict", files={"file": ("x.png", data, "image/png")})
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_read_upload_limits():
    with pytest.raises(UploadError, match="larger than") as exc:
        read_upload(png(), max_bytes=10)
    assert exc.value.status == 413
    bomb = png((3000, 3000), "1")
    assert len(bomb) < 20_000
    with pytest.raises(UploadError, match="pixels"):
        read_upload(bomb, max_pixels=1_000_000)
    assert read_upload(png()).size == (32, 32)


def test_upload_page_renders_results_and_errors(client, web_project):
    assert "Choose a photo" in client.get("/").text
    r = client.post("/", files={"file": ("bust.jpg", jpeg_of(web_project, first_id(web_project)), "image/jpeg")})
    assert r.status_code == 200
    assert "Similar objects" in r.text and "<progress" in r.text and 'class="card"' in r.text
    assert 'src="data:image/jpeg;base64,' in r.text  # the upload shown beside its classes
    assert 'class="model-answer"' in r.text
    r = client.post("/", files={"file": ("x.txt", b"hello", "text/plain")})
    assert r.status_code == 415 and 'class="error"' in r.text
    assert client.post("/").status_code == 400  # no file chosen
    assert "Content-Security-Policy" in r.headers


def test_items_api_filters_and_paginates(client, web_project):
    everything = client.get("/api/items", params={"per_page": 100}).json()
    assert everything["total"] == 11
    top = {i["id"]: i["predicted"] for i in everything["items"]}
    cls = next(c for c in top.values() if c)
    r = client.get("/api/items", params={"predicted": cls}).json()
    assert {i["id"] for i in r["items"]} == {i for i, c in top.items() if c == cls}
    naive = {i["id"]: i["naive_label"] for i in everything["items"]}
    assert naive["escape"] == "bust"
    busts = client.get("/api/items", params={"naive": "bust", "per_page": 100}).json()
    assert {i["id"] for i in busts["items"]} == {i for i, n in naive.items() if n == "bust"}
    unlabeled = client.get("/api/items", params={"naive": "(none)", "per_page": 100}).json()
    assert {i["id"] for i in unlabeled["items"]} == {i for i, n in naive.items() if n is None}
    # the tiny model predicts shapes, so every classified item with a naive label disagrees
    disagree = client.get("/api/items", params={"disagree": True, "per_page": 100}).json()
    assert {i["id"] for i in disagree["items"]} == {i for i in naive if naive[i] and top[i]}
    page2 = client.get("/api/items", params={"per_page": 4, "page": 2}).json()
    assert page2["pages"] == 3 and [i["id"] for i in page2["items"]] == [i["id"] for i in everything["items"][4:8]]
    assert client.get("/api/items", params={"per_page": 0}).status_code == 422
    # out-of-range pages are clamped to the first or the last page, not an error
    assert client.get("/api/items", params={"page": 0}).json()["page"] == 1
    last = client.get("/api/items", params={"per_page": 4, "page": 99}).json()
    assert last["page"] == 3 and [i["id"] for i in last["items"]] == [i["id"] for i in everything["items"][8:]]


def test_item_detail_and_similar(client, web_project):
    item_id = first_id(web_project)
    detail = client.get(f"/api/items/{item_id}").json()
    assert detail["classification"]["model"] == "tiny"
    assert {"name", "probability"} == set(detail["classification"]["classes"][0])
    assert detail["images"][0]["url"] == f"/images/{detail['images'][0]['id']}"
    assert client.get("/api/items/nope").status_code == 404
    similar = client.get("/api/similar", params={"ids": item_id}).json()["similar"]
    assert similar and item_id not in {h["id"] for h in similar}
    assert client.get("/api/similar", params={"ids": "nope"}).status_code == 404
    assert client.get("/api/similar", params={"ids": " , "}).status_code == 422
    assert detail["answer"].removeprefix("uncertain: maybe ").startswith(detail["classification"]["classes"][0]["name"])
    page = client.get(f"/items/{item_id}")
    assert page.status_code == 200 and "More like this" in page.text and "Predicted classes" in page.text
    # the similar objects come after the page (item.js fetches them), or in it for a browser without JavaScript
    assert 'class="card"' not in page.text and f'data-src="/api/similar?ids={item_id}&amp;limit=12"' in page.text
    assert f'href="/items/{item_id}?similar=1#similar"' in page.text
    with_similar = client.get(f"/items/{item_id}", params={"similar": 1}).text
    assert with_similar.count('class="card"') == len(client.get("/api/similar", params={"ids": item_id, "limit": 12}).json()["similar"])
    assert [h["url"] for h in similar] == [f"/items/{h['id']}" for h in similar]
    assert 'class="model-answer"' in page.text and detail["answer"] in page.text.replace("&#39;", "'")
    assert client.get("/items/nope").status_code == 404


def test_images_are_served_by_id_only_from_the_project(client, web_project):
    detail = client.get(f"/api/items/{first_id(web_project)}").json()
    r = client.get(detail["images"][0]["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"
    escape = client.get("/api/items/escape").json()
    assert client.get(escape["images"][0]["url"]).status_code == 404
    assert client.get("/images/999999").status_code == 404
    assert client.get("/images/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)


def test_browser_pages_render(client):
    page = client.get("/items", params={"disagree": "true"})
    assert page.status_code == 200 and "catalog label disagrees" in page.text
    assert "/docs" in client.get("/").text
    spec = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/items", "/api/items/{item_id}", "/api/similar"} <= set(spec["paths"])


def test_read_only_by_default_and_writes_when_allowed(client, web_project, tiny_model_path):
    unclassified = [i for i in client.get("/api/items", params={"per_page": 100}).json()["items"]
                    if not i["predicted"] and i["id"] != "escape"][0]["id"]
    r = client.post(f"/api/items/{unclassified}/classify")
    assert r.status_code == 403 and "--allow-writes" in r.json()["detail"]
    writer = TestClient(create_app(web_project, tiny_model_path, allow_writes=True))
    writer.app.state.muses.view.refresh_interval = 3600  # no periodic check during the test
    before = {i["id"]: i for i in writer.get("/api/items", params={"per_page": 100}).json()["items"]}
    assert before[unclassified]["predicted"] is None
    r = writer.post(f"/api/items/{unclassified}/classify")
    assert r.status_code == 200 and r.json()["classification"]["model"] == "tiny"
    # the listing shows it at once, not after the browse index's next periodic check
    after = {i["id"]: i for i in writer.get("/api/items", params={"per_page": 100}).json()["items"]}
    assert after[unclassified]["predicted"] == r.json()["predicted"] is not None
    assert after[unclassified]["probability"] > 0
    assert writer.post("/api/items/escape/classify").status_code == 422


def test_without_a_model_browsing_works_and_predict_says_why(web_project, tmp_path):
    app = create_app(web_project, tmp_path / "missing.safetensors")
    c = TestClient(app)
    assert c.get("/api/items").status_code == 200
    r = c.post("/api/predict", files={"file": ("a.png", png(), "image/png")})
    assert r.status_code == 503 and "not found" in r.json()["detail"]


@pytest.mark.parametrize("command", ["serve", "classify", "similar"])
def test_help_has_examples(command, capsys):
    from muses.cli import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0 and "examples:" in capsys.readouterr().out


def test_serve_rejects_a_bad_port(project, capsys):
    from muses.cli import main

    assert main(["serve", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
