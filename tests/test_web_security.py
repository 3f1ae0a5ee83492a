"""The web app against hostile and unlucky requests: bounded bodies (chunked too), cross-site
writes, corrupt models, odd ids and image numbers, error pages, definitions reloaded on change."""
from __future__ import annotations

import asyncio
import html
import io
import json
import re
import shutil
from urllib.parse import unquote, urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from muses.collection.store import Image, Item, Store
from muses.settings import Project, init_project
from muses.web import create_app
from muses.web.cache import DefinitionsCache
from muses.web.templating import item_url

pytestmark = pytest.mark.filterwarnings("ignore::muses.model.loading.DefinitionsMismatchWarning")

ODD_IDS = ("..", ".", "a/b", "a b#c?d", "vase-1")


def png(size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, (180, 60, 20)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def proj(tmp_path) -> Project:
    """Items with odd ids; 'vase-1' has a real photo, so it can be classified."""
    project = Project.load(init_project(tmp_path / "proj")[0].parent)
    project.images_dir.mkdir(parents=True, exist_ok=True)
    (project.images_dir / "vase-1.png").write_bytes(png((64, 64)))
    with Store.for_project(project).transaction() as s:
        for item_id in ODD_IDS:
            images = [Image(position=0, original="vase-1.png", stored_path=f"{project.images_dir.name}/vase-1.png",
                            status="ok")] if item_id == "vase-1" else []
            s.add(Item(id=item_id, title=f"Vase {item_id}", object_type=["Vases"], images=images))
    return project


def classification_of(project: Project, item_id: str):
    return Store.for_project(project).get_item(item_id).classification


# -- the body is counted while it is read ---------------------------------------------------------
def run_asgi(app, path: str, headers: list[tuple[bytes, bytes]], chunks) -> tuple[int, bytes, int]:
    """Send a request body chunk by chunk straight to the ASGI app, as a server does with
    Transfer-Encoding: chunked; returns (status, body, how many chunks the app read)."""
    read = 0
    sent: list[dict] = []

    async def receive():
        nonlocal read
        chunk = next(chunks, None)
        read += chunk is not None
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver"), *headers],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"), read


@pytest.mark.parametrize("path", ["/api/predict", "/"])
def test_a_chunked_upload_stops_at_the_limit(proj, path):
    app = create_app(proj, max_upload_bytes=100_000)
    head = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    chunk = b"\xff" * 65_536

    def body():  # 64 MB if read to the end; the limit is 100 kB (+ 64 kB for the form around it)
        yield head
        for _ in range(1000):
            yield chunk

    status, text, read = run_asgi(app, path, [(b"content-type", b"multipart/form-data; boundary=x")], body())
    assert status == 413
    assert read <= 4, f"read {read} chunks of 64 kB past a 164 kB limit"
    assert b"the upload is larger than 98 kB" in text


def test_a_chunked_upload_through_the_client_gets_the_message(proj):
    client = TestClient(create_app(proj, max_upload_bytes=1_000))
    limit = 1_000 + 64 * 1024

    def body():
        yield b"--x\r\n"
        yield b"\xff" * limit  # the form's bytes pass the limit by one

    r = client.post("/api/predict", content=body(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and r.json()["detail"] == "the upload is larger than 1 kB; send a smaller photo"


def test_a_declared_oversize_upload_is_refused_with_a_message_in_kind(proj):
    client = TestClient(create_app(proj))  # the default limit: 10 MB as --max-upload-mb counts
    big = {"file": ("a.png", b"\xff" * (10 * 2**20 + 70_000), "image/png")}
    r = client.post("/api/predict", files=big)
    assert r.status_code == 413 and r.json()["detail"] == "the upload is larger than 10.0 MB; send a smaller photo"
    page = client.post("/", files=big)
    assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
    assert "the upload is larger than 10.0 MB" in page.text


# -- writes only from our own pages -----------------------------------------------------------------
@pytest.fixture
def writer(proj, tiny_model_path) -> TestClient:
    return TestClient(create_app(proj, tiny_model_path, allow_writes=True))


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Referer": "http://evil.example/page.html"},
    {"Origin": "null"},
    {"Origin": "http://testserver.evil.example"},
    {"Origin": "http://evil.example", "X-Forwarded-Host": "muses.museum.example"},
])
def test_a_cross_site_post_changes_nothing(writer, proj, headers):
    r = writer.post("/api/items/vase-1/classify", data={"any": "thing"}, headers=headers)
    assert r.status_code == 403 and "another site" in r.json()["detail"]
    assert classification_of(proj, "vase-1") is None


@pytest.mark.parametrize("headers", [
    {}, {"Origin": "http://testserver"}, {"Referer": "http://testserver/items/vase-1"},
    {"Origin": "https://muses.museum.example", "X-Forwarded-Host": "muses.museum.example"},  # behind a proxy
])
def test_same_origin_and_non_browser_writes_work(writer, proj, headers):
    r = writer.post("/api/items/vase-1/classify", headers={"Content-Type": "application/json", **headers})
    assert r.status_code == 200, r.text
    assert classification_of(proj, "vase-1")["model"] == "tiny"


def test_a_cross_site_upload_form_gets_a_page_saying_why(writer):
    r = writer.post("/", files={"file": ("a.png", png(), "image/png")}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "another site" in r.text


# -- a damaged model is a 503 with its reason ---------------------------------------------------------
def corrupt_model(tmp_path, tiny_model_path, damage: str):
    folder = tmp_path / "models"
    folder.mkdir()
    weights, meta = folder / "broken.safetensors", folder / "broken.json"
    shutil.copy(tiny_model_path, weights)
    shutil.copy(tiny_model_path.with_suffix(".json"), meta)
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "garbage json":
        meta.write_text("{garbage", encoding="utf-8")
    elif damage == "json not an object":
        meta.write_text("[]", encoding="utf-8")
    elif damage == "classes not matching the weights":
        cfg = json.loads(meta.read_text(encoding="utf-8"))
        meta.write_text(json.dumps({**cfg, "class_names": ["a", "b", "c", "d", "e"]}), encoding="utf-8")
    return weights


@pytest.mark.parametrize("damage", ["truncated weights", "garbage json", "json not an object",
                                    "classes not matching the weights"])
def test_a_corrupt_model_answers_503_with_the_reason(proj, tmp_path, tiny_model_path, damage):
    client = TestClient(create_app(proj, corrupt_model(tmp_path, tiny_model_path, damage)))
    r = client.post("/api/predict", files={"file": ("a.png", png(), "image/png")})
    assert r.status_code == 503, r.text
    assert "broken" in r.json()["detail"]
    page = client.post("/", files={"file": ("a.png", png(), "image/png")})
    assert page.status_code == 503 and 'class="error"' in page.text
    assert client.get("/items").status_code == 200  # browsing needs no model


# -- ids and numbers in addresses ---------------------------------------------------------------------
@pytest.mark.parametrize("image_id", ["99999999999999999999999", "9223372036854775808", "0", "-1", "１２", "x"])
def test_impossible_image_numbers_are_404(proj, image_id):
    r = TestClient(create_app(proj)).get(f"/images/{image_id}")
    assert r.status_code == 404 and "no stored image" in r.text


def test_odd_ids_get_links_that_lead_to_their_own_page(proj):
    client = TestClient(create_app(proj))
    listing = client.get("/items").text
    links = [html.unescape(h) for h in re.findall(r'class="card" href="([^"]+)"', listing)]
    assert sorted(links) == sorted(item_url(i) for i in ODD_IDS)
    for link in links:
        # browsers drop "." and ".." path segments, even percent-encoded, before sending
        assert not {".", ".."} & {unquote(seg) for seg in urlsplit(link).path.split("/")}, link
    for item_id in ODD_IDS:
        page = client.get(item_url(item_id))
        assert page.status_code == 200 and f"<td>{html.escape(item_id)}</td>" in page.text, item_id


def test_similar_takes_a_bounded_number_of_ids(proj):
    r = TestClient(create_app(proj)).get("/api/similar", params={"ids": ",".join(map(str, range(101)))})
    assert r.status_code == 422 and "1 to 100 item ids" in r.json()["detail"]


@pytest.mark.parametrize("item_id", ["a/b", "a b#c?d", ".."])
def test_the_api_takes_encoded_ids(proj, item_id):
    client = TestClient(create_app(proj))
    r = client.get("/api/items/" + "".join(f"%{b:02X}" for b in item_id.encode()))
    assert r.status_code == 200 and r.json()["id"] == item_id


# -- error pages ----------------------------------------------------------------------------------------
def test_pages_fail_with_a_page_and_the_api_with_json(proj):
    client = TestClient(create_app(proj))
    for path in ("/items/nope", "/nowhere", "/item?id=nope"):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "<h1>Not found" in r.text and "Browse the collection" in r.text
    assert "no item with id &#39;nope&#39;" in client.get("/items/nope").text
    r = client.get("/items", params={"page": "abc"})
    assert r.status_code == 422 and "page" in r.text and r.headers["content-type"].startswith("text/html")
    r = client.get("/api/items/nope")
    assert r.status_code == 404 and r.json() == {"detail": "no item with id 'nope'"}
    assert client.get("/api/items", params={"page": "abc"}).json()["detail"][0]["loc"] == ["query", "page"]


def test_an_unexpected_failure_is_a_sentence_not_a_bare_500(proj):
    with Store.for_project(proj).transaction() as s:  # a store edited by hand
        s.get(Item, "vase-1").classification = {"model": "m", "classes": [{"name": "vase", "probability": "high"}]}
    client = TestClient(create_app(proj), raise_server_exceptions=False)
    page = client.get("/items/vase-1")
    assert page.status_code == 500 and "the server&#39;s log has the details" in page.text
    assert "the server's log" in client.get("/api/items/vase-1").json()["detail"]


def test_a_broken_definitions_file_is_a_message(proj):
    client = TestClient(create_app(proj))
    proj.definitions_path.write_text("[[class]\nname = ", encoding="utf-8")
    r = client.get("/api/items")
    assert r.status_code == 503 and "not valid TOML" in r.json()["detail"]
    page = client.get("/items")
    assert page.status_code == 503 and "not valid TOML" in page.text


# -- definitions.toml: parsed once, again when it changes ---------------------------------------------
def test_definitions_are_parsed_once_and_again_when_the_file_changes(proj):
    cache = DefinitionsCache(proj.definitions_path)
    first = cache.get()
    assert first is not None and cache.get() is first
    text = proj.definitions_path.read_text(encoding="utf-8")
    proj.definitions_path.write_text(text.replace('name = "vessel"', 'name = "pot"'), encoding="utf-8")
    changed = cache.get()
    assert changed is not first and "pot" in changed.classes.values()
    proj.definitions_path.unlink()
    assert cache.get() is None


def test_the_collection_follows_a_changed_definitions_file(proj):
    client = TestClient(create_app(proj))
    labels = lambda: {i["id"]: i["naive_label"] for i in client.get("/api/items").json()["items"]}  # noqa: E731
    assert labels()["vase-1"] == "vessel"
    text = proj.definitions_path.read_text(encoding="utf-8")
    proj.definitions_path.write_text(text.replace('name = "vessel"', 'name = "pot"'), encoding="utf-8")
    assert labels()["vase-1"] == "pot"


# -- DNS rebinding: only our own Host names are answered (issue 22) -------------------------------
def served_app(proj, tiny_model_path, *extra):
    """The app as `muses serve --allow-writes` builds it, bound to 127.0.0.1."""
    from muses.web.guard import allowed_hosts

    return create_app(proj, tiny_model_path, allow_writes=True, allowed_hosts=allowed_hosts("127.0.0.1", extra))


@pytest.mark.parametrize("host", ["a.evil:8000", "evil.example", "localhost.evil.example", "127.0.0.1.evil.example"])
def test_a_rebound_host_name_is_refused_and_stores_nothing(proj, tiny_model_path, host):
    client = TestClient(served_app(proj, tiny_model_path), base_url=f"http://{host}")
    r = client.post("/api/items/vase-1/classify", headers={"Origin": f"http://{host}", "Content-Type": "application/json"})
    assert r.status_code == 400 and "--allowed-host" in r.text
    assert client.get("/items").status_code == 400
    assert classification_of(proj, "vase-1") is None


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST", "muses.museum.example"])
def test_our_own_host_names_are_answered(proj, tiny_model_path, host):
    client = TestClient(served_app(proj, tiny_model_path, "muses.museum.example"), base_url=f"http://{host}")
    assert client.get("/items").status_code == 200
    r = client.post("/api/items/vase-1/classify", headers={"Origin": f"http://{host}", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def test_muses_serve_answers_the_hosts_of_muses_toml_and_the_command_line(proj, tmp_path):
    import http.client
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    (proj.root / "muses.toml").write_text('[web]\nallowed_hosts = ["muses.museum.example"]\n', encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    server = subprocess.Popen([sys.executable, "-m", "muses", "serve", "--project", str(proj.root), "--port", str(port),
                               "--workers", "1", "--allowed-host", "kiosk-3"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def status(host: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/items", headers={"Host": host})
        return conn.getresponse().status

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status("localhost")
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.3)
        assert [status(h) for h in (f"localhost:{port}", "muses.museum.example", "kiosk-3:80", "a.evil:8000")] == [
            200, 200, 200, 400]
    finally:
        server.terminate()
        server.wait(10)


def test_pages_never_echo_the_host_header_into_urls(proj):
    client = TestClient(create_app(proj), base_url="http://evil.example")
    for path in ("/", "/items", "/items/vase-1", "/review"):
        page = client.get(path)
        assert "evil.example" not in page.text, path
    assert '<script src="/static/item.js"' in client.get("/items/vase-1").text


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_the_api_docs_cannot_be_framed(proj, path):
    r = TestClient(create_app(proj)).get(path)
    assert r.status_code == 200
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"


# -- no 500 for odd requests (issue 22) -------------------------------------------------------------
def test_a_nul_or_control_character_in_a_search_is_no_500_on_either_store(any_store_project):
    with Store.for_project(any_store_project).transaction() as s:
        s.add(Item(id="v1", title="Vase", object_type=["Vases"]))
    client = TestClient(create_app(any_store_project), raise_server_exceptions=False)
    for params in ({"q": "\x00"}, {"q": "va\x00se"}, {"predicted": "\x00"}, {"naive": "\x1b[31m"}):
        assert client.get("/api/items", params=params).status_code == 200, params
        assert client.get("/items", params=params).status_code == 200, params


def test_a_search_of_400_words_is_a_quick_422(proj):
    import time

    client = TestClient(create_app(proj), raise_server_exceptions=False)
    start = time.monotonic()
    r = client.get("/api/items", params={"q": " ".join(["a"] * 400)})
    assert r.status_code == 422 and "at most 32" in r.json()["detail"]
    assert time.monotonic() - start < 2
    assert client.get("/items", params={"q": " ".join(["vase"] * 32)}).status_code == 200


def test_undo_of_a_number_above_2_63_is_a_422(writer):
    r = writer.post(f"/api/review/decisions/{2**64}/undo")
    assert r.status_code == 422


def test_a_lone_surrogate_in_a_json_body_is_a_422(writer, proj):
    for raw in ('{"item_id": "\\ud800", "action": "not one of these", "reviewer": "Ana"}',
                '{"item_id": "vase-1", "action": "not one of these", "reviewer": "A\\udfffna"}',
                '{"item_id": "vase-1", "action": "not one of these", "reviewer": 5, "\\ud800": 1}'):
        r = writer.post("/api/review/decisions", content=raw.encode(), headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (raw, r.status_code, r.text)


def test_a_10_mb_field_is_a_422_that_does_not_echo_it(writer):
    name = "A" * 10_000_000
    r = writer.post("/api/review/decisions", json={"item_id": "vase-1", "action": "not one of these", "reviewer": name})
    assert r.status_code == 422 and len(r.content) < 2000
    assert r.json()["detail"][0]["loc"] == ["body", "reviewer"]
