"""Photos behind URLs: a local copy of the server (--image-url-map), a server that cannot be
reached (given up after a handful, one message, every "next:" line the same), IIIF services
asked for the size needed, and the object page saying why a photo is missing."""
import functools
import http.server
import json
import threading

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from muses.cli import main
from muses.collection.image_checks import ImageProblem
from muses.collection.images import HOST_FAILURES, generate_images
from muses.collection.importers import import_records
from muses.collection.sources import UrlMapError, iiif_sized, mapped_path, parse_url_map
from muses.collection.store import OK, PENDING, PROBLEM, Store
from muses.settings import Project
from muses.testing.net import free_port
from muses.web import create_app

N = 30


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def next_line(out: str) -> str:
    return [line for line in out.splitlines() if line.startswith("next:")][-1]


def _photo(path, colour=(200, 40, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = PILImage.new("RGB", (64, 48), (255, 255, 255))
    image.paste(colour, (0, 0, 32, 48))
    image.save(path)


@pytest.fixture
def dead_server_catalog(project, tmp_path):
    """N records whose photos are on a loopback port nothing listens on, and a local share with
    the same photos."""
    base = f"http://127.0.0.1:{free_port()}/"
    share = tmp_path / "share"
    records = []
    for i in range(N):
        _photo(share / "objects" / f"{i}.jpg")
        records.append({"id": str(i), "object_number": f"2024.{i}", "title": f"Vase {i}",
                        "image": f"{base}objects/{i}.jpg"})
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path, base, share


def test_with_downloads_off_import_generate_and_stats_say_the_same_next_step(project, dead_server_catalog, capsys):
    path, _, _ = dead_server_catalog
    code, out, _ = run(capsys, "import", path)
    assert code == 0
    first = next_line(out)
    assert f"{N} photos are URLs, not fetched while [images] allow_network = false" in first
    code, out, _ = run(capsys, "generate-images", "--workers", "1")
    assert code == 0 and next_line(out) == first  # not "export", which would send the curator back here
    code, out, _ = run(capsys, "stats")
    assert code == 0 and next_line(out) == first
    page = TestClient(create_app(Project.load(project.root))).get("/items/0").text
    assert "photo 1 not fetched yet: photo URLs are read by" in page and "allow_network = true" in page
    code, out, _ = run(capsys, "label-preview")  # the catalog is labeled from its text meanwhile
    assert code == 0 and "vessel" in out


def test_an_unreachable_server_is_given_up_after_a_handful_with_one_message(project, dead_server_catalog, capsys):
    path, base, share = dead_server_catalog
    (project.root / "muses.toml").write_text("[images]\nallow_network = true\n", encoding="utf-8")
    assert run(capsys, "import", path)[0] == 0
    code, out, _ = run(capsys, "generate-images", "--workers", "1", "--allow-private-urls")
    assert code == 0
    assert out.count("could not reach 127.0.0.1") == 1
    assert f"photos in a row): its other {N - HOST_FAILURES} photos are left pending" in out
    assert f"--image-url-map {base}=FOLDER" in out
    store = Store.for_project(project)
    statuses = [im.status for im in store.images()]
    assert statuses.count(PROBLEM) == HOST_FAILURES and statuses.count(PENDING) == N - HOST_FAILURES
    first = next_line(out)
    assert "wait for a server that could not be reached (127.0.0.1)" in first and base in first
    assert next_line(run(capsys, "stats")[1]) == first
    page = TestClient(create_app(Project.load(project.root))).get(f"/items/{N - 1}").text
    assert "not fetched yet: 127.0.0.1 could not be reached" in page

    # the museum's share holds the same photos: mapped, every one is read from it, no network
    code, out, _ = run(capsys, "generate-images", "--workers", "2", "--image-url-map", f"{base}={share}")
    assert code == 0 and "could not reach" not in out
    assert {im.status for im in store.images()} == {OK}
    assert next_line(out).startswith("next: muses export-classification-data")


def test_a_server_down_is_given_up_with_several_workers_too(project, dead_server_catalog):
    path, _, _ = dead_server_catalog
    (project.root / "muses.toml").write_text("[images]\nallow_network = true\n", encoding="utf-8")
    store = Store.for_project(project)
    import_records(store, path)
    report = generate_images(Project.load(project.root), store=store, workers=2, allow_private_urls=True)
    [(host, down)] = report.hosts_down.items()
    assert host == "127.0.0.1" and down["pending"] >= N - HOST_FAILURES - 2 * 4  # at most a window more tried
    assert report.processed + down["pending"] == N


def test_a_url_map_keeps_photos_inside_its_folder(tmp_path):
    (tmp_path / "share").mkdir()
    _photo(tmp_path / "share" / "a b.jpg")
    url_map = parse_url_map([f"https://images.museum.org/photos/={tmp_path / 'share'}"])
    assert mapped_path("https://images.museum.org/photos/a%20b.jpg?w=100", url_map) == str(tmp_path / "share" / "a b.jpg")
    assert mapped_path("https://other.org/photos/a.jpg", url_map) is None
    with pytest.raises(ImageProblem, match="refused: .* maps to a path outside"):
        mapped_path("https://images.museum.org/photos/../../etc/passwd", url_map)
    with pytest.raises(UrlMapError, match="does not exist"):
        parse_url_map([f"https://images.museum.org/={tmp_path / 'nowhere'}"])
    with pytest.raises(UrlMapError, match="write URL_PREFIX=FOLDER"):
        parse_url_map(["/mnt/photos"])


def test_iiif_urls_ask_for_the_size_needed():
    assert iiif_sized("https://iiif.museum.org/iiif/2/abc/full/full/0/default.jpg", 1200) == \
        "https://iiif.museum.org/iiif/2/abc/full/!1200,1200/0/default.jpg"
    assert iiif_sized("https://iiif.museum.org/iiif/3/abc/full/max/0/default.jpg", 800) == \
        "https://iiif.museum.org/iiif/3/abc/full/!800,800/0/default.jpg"
    assert iiif_sized("https://iiif.museum.org/iiif/2/abc/info.json", 1200) == \
        "https://iiif.museum.org/iiif/2/abc/full/!1200,1200/0/default.jpg"
    assert iiif_sized("https://museum.org/photos/full.jpg", 1200) == "https://museum.org/photos/full.jpg"


def test_a_iiif_photo_is_fetched_at_1200_pixels_not_as_the_original(project, tmp_path):
    asked = []
    photo = tmp_path / "p.jpg"
    _photo(photo)

    class IIIF(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the standard library's name
            asked.append(self.path)
            if "/full/!1200,1200/0/default.jpg" not in self.path:
                self.send_error(413, "the original is 20,000 pixels a side")
                return
            data = photo.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(IIIF))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/iiif/2"
        path = tmp_path / "r.jsonl"
        path.write_text(json.dumps({"id": "1", "image": f"{base}/abc/full/full/0/default.jpg"}) + "\n" +
                        json.dumps({"id": "2", "image": f"{base}/def/info.json"}) + "\n", encoding="utf-8")
        (project.root / "muses.toml").write_text("[images]\nallow_network = true\n", encoding="utf-8")
        store = Store.for_project(project)
        import_records(store, path)
        report = generate_images(Project.load(project.root), store=store, workers=1, allow_private_urls=True)
        assert report.by_status == {OK: 2}
        assert sorted(asked) == ["/iiif/2/abc/full/!1200,1200/0/default.jpg", "/iiif/2/def/full/!1200,1200/0/default.jpg"]
    finally:
        server.shutdown()
