import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage

from muses.collection.image_checks import ImageProblem, decode
from muses.collection.images import generate_images
from muses.collection.importers import import_records
from muses.collection.store import CROPPED, OK, PENDING, PROBLEM, Store
from muses.settings import Project, init_project

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def halves(left, right, size=(64, 48), mode="RGB") -> PILImage.Image:
    """Left half one colour, right half another: content, not a blank frame."""
    img = PILImage.new(mode, size, right)
    img.paste(left, (0, 0, size[0] // 2, size[1]))
    return img


def noise_jpeg(size=(320, 240), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def grey_bottom(fraction: float, size=(80, 100)) -> PILImage.Image:
    """A photo whose lower part was lost in a download and filled with flat grey."""
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    arr[size[1] - round(size[1] * fraction):] = 128
    return PILImage.fromarray(arr)


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def make_corpus(folder):
    """Every kind of file a real collection holds, made here; name → file name."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}

    def save(name, img, **kw):
        img.save(folder / name, **kw)
        files[name.split(".")[0]] = name

    def write(name, data):
        (folder / name).write_bytes(data)
        files[name.split(".")[0]] = name

    save("good.jpg", halves(RED, WHITE))
    write("truncated.jpg", noise_jpeg()[: len(noise_jpeg()) // 2])
    write("zero.jpg", b"")
    write("text.jpg", b"<html><body>404 Not Found</body></html>\n")
    write("garbage.jpg", bytes(range(256)) * 4)
    save("cmyk.jpg", halves((0, 255, 255, 0), (0, 0, 0, 0), mode="CMYK"), quality=95)
    gradient = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))
    save("sixteen.png", PILImage.fromarray(gradient))
    palette = PILImage.new("P", (64, 48), 0)
    palette.putpalette([0, 255, 0] + list(RED) + [0] * 762)
    palette.paste(1, (0, 0, 32, 48))
    save("palette.png", palette, transparency=0)  # right half: transparent green
    save("alpha.png", halves((255, 0, 0, 255), (0, 0, 255, 0), mode="RGBA"))  # right half: transparent blue
    save("la.png", halves((0, 255), (0, 0), mode="LA"))  # left black, right transparent
    frames = [halves(RED, WHITE), halves(BLUE, WHITE)]
    save("animated.gif", frames[0], save_all=True, append_images=frames[1:], duration=100)
    rotated = halves(RED, BLUE, size=(60, 30))
    exif = PILImage.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned 90 degrees clockwise
    save("rotated.jpg", rotated, exif=exif, quality=95)
    write("bomb.png", png_header_only(30000, 30000))
    rng = np.random.default_rng(2)
    save("blank.jpg", PILImage.fromarray((200 + rng.integers(-2, 3, (48, 64, 3))).astype(np.uint8)))
    save("grey30.png", grey_bottom(0.3))
    save("grey60.png", grey_bottom(0.6))
    save("big.jpg", PILImage.fromarray(np.kron(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8),
                                               np.ones((100, 100, 1), dtype=np.uint8))), quality=80)
    return files


@pytest.fixture
def corpus_project(project, tmp_path):
    files = make_corpus(tmp_path / "photos")
    records = [{"id": key, "title": key, "image": f"photos/{name}"} for key, name in files.items()]
    records.append({"id": "missing", "title": "gone", "image": "photos/not-there.jpg"})
    records.append({"id": "remote", "title": "web", "image": "https://images.example.org/1.jpg"})
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    store = Store.for_project(project)
    import_records(store, path)
    report = generate_images(project, store=store, workers=1)
    images = {im.item_id: im for im in store.images()}
    return project, store, report, images


def _copy(project, image) -> PILImage.Image:
    assert image.status in (OK, CROPPED), image.problem
    img = PILImage.open(project.path(image.stored_path))
    assert img.format == "JPEG" and img.mode == "RGB"
    return img


def _near(pixel, colour, tol=40):
    return all(abs(a - b) <= tol for a, b in zip(pixel, colour))


EXPECTED_PROBLEMS = {
    "truncated": "truncated: the file ends early",
    "zero": "empty: zero-byte file",
    "text": "not-an-image: the file is text",
    "garbage": "unreadable: not a known image format",
    "bomb": "too-large:",
    "blank": "blank: near-uniform image",
    "grey60": "truncated: 60% grey fill at the bottom",
    "missing": "missing: no file at",
}


def test_each_bad_file_gets_its_problem(corpus_project):
    _, _, report, images = corpus_project
    for key, start in EXPECTED_PROBLEMS.items():
        assert images[key].status == PROBLEM and images[key].problem.startswith(start), (key, images[key].problem)
        assert images[key].stored_path is None
    assert images["zero"].checksum == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert report.problems == {"truncated": 2, "empty": 1, "not-an-image": 1, "unreadable": 1,
                               "too-large": 1, "blank": 1, "missing": 1}
    assert images["remote"].status == PENDING and report.waiting_for_network == 1


def test_usable_files_are_converted_with_the_right_colours(corpus_project):
    project, _, report, images = corpus_project
    for key in ("good", "cmyk", "sixteen", "palette", "alpha", "la", "animated", "rotated", "big"):
        assert images[key].status == OK and images[key].problem is None, (key, images[key].problem)
    assert report.by_status == {OK: 9, CROPPED: 1, PROBLEM: 8}

    def left_right(key):
        img = _copy(project, images[key])
        return img.getpixel((2, img.height // 2)), img.getpixel((img.width - 3, img.height // 2))

    assert _near(left_right("good")[0], RED) and _near(left_right("good")[1], WHITE)
    assert _near(left_right("cmyk")[0], RED) and _near(left_right("cmyk")[1], WHITE)
    dark, bright = left_right("sixteen")
    assert dark[0] < 20 and bright[0] > 235  # 16-bit scaled to 8, not clipped to white
    assert _near(left_right("palette")[0], RED) and _near(left_right("palette")[1], WHITE)
    assert _near(left_right("alpha")[0], RED) and _near(left_right("alpha")[1], WHITE)
    assert _near(left_right("la")[0], (0, 0, 0)) and _near(left_right("la")[1], WHITE)
    assert _near(left_right("animated")[0], RED)  # the first frame

    rotated = _copy(project, images["rotated"])
    assert (images["rotated"].width, images["rotated"].height) == (30, 60)  # as displayed
    assert rotated.size == (30, 60)
    assert _near(rotated.getpixel((15, 3)), RED) and _near(rotated.getpixel((15, 56)), BLUE)

    big = _copy(project, images["big"])
    assert max(big.size) == 256 and (images["big"].width, images["big"].height) == (3000, 2000)


def test_grey_filled_bottom_is_cropped(corpus_project):
    project, _, _, images = corpus_project
    image = images["grey30"]
    assert image.status == CROPPED and image.problem == "truncated: 30% grey fill at the bottom cut off"
    copy = np.asarray(_copy(project, image))
    assert copy.shape[:2] == (70, 80)  # the 30 grey rows are gone
    assert copy[-3:].std() > 30  # the last rows are picture, not grey


def test_rerun_skips_done_work_and_redoes_changed_originals(corpus_project, tmp_path):
    project, store, _, images = corpus_project
    again = generate_images(project, store=store, workers=1)
    assert again.processed == 1 and again.unchanged == 17  # only the missing file is looked for again
    assert again.problems == {"missing": 1}

    halves(BLUE, WHITE).save(tmp_path / "photos" / "good.jpg")  # the museum replaced a photo
    (tmp_path / "photos" / "not-there.jpg").write_bytes((tmp_path / "photos" / "good.jpg").read_bytes())
    third = generate_images(project, store=store, workers=1)
    assert third.processed == 2 and third.by_status == {OK: 2}
    good = store.get_item("good").images[0]
    assert good.checksum != images["good"].checksum
    assert _near(_copy(project, good).getpixel((2, 10)), BLUE)

    usable = sum(im.status in (OK, CROPPED) for im in store.images())
    resized = generate_images(project, store=store, workers=1, max_side=32)  # new size: usable copies redone
    assert (resized.processed, resized.unchanged) == (usable, 18 - usable)
    assert max(_copy(project, store.get_item("big").images[0]).size) == 32

    forced = generate_images(project, store=store, workers=1, force=True, max_side=32)
    assert forced.processed == 18


def test_an_interrupted_run_keeps_its_work_and_resumes(project, tmp_path):
    files = make_corpus(tmp_path / "photos")
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps({"id": k, "image": f"photos/{n}"}) + "\n" for k, n in files.items()),
                    encoding="utf-8")
    store = Store.for_project(project)
    import_records(store, path)

    def ctrl_c_after_five(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_images(project, store=store, workers=1, progress=ctrl_c_after_five)
    statuses = [im.status for im in store.images()]
    assert len(statuses) - statuses.count(PENDING) == 5
    resumed = generate_images(project, store=store, workers=1)
    assert (resumed.processed, resumed.unchanged) == (len(files) - 5, 5)  # the first five only re-hashed
    assert PENDING not in {im.status for im in store.images()}


def test_report_file_lists_problems(corpus_project):
    project, _, report, _ = corpus_project
    content = json.loads((project.images_dir / "report.json").read_text(encoding="utf-8"))
    assert content["collection"]["by_status"] == {OK: 9, CROPPED: 1, PROBLEM: 8, PENDING: 1}
    assert content["collection"]["problems"]["truncated"] == 2
    listed = {f["item_id"]: f["problem"] for f in content["collection"]["problem_files"]}
    assert listed["grey30"].startswith("truncated: 30%") and listed["zero"] == "empty: zero-byte file"
    assert all(f["object_number"] for f in content["collection"]["problem_files"])  # the curator's name for it
    assert content["run"]["processed"] == 18 and content["settings"]["max_side"] == 256


def test_decode_refuses_large_headers_before_decoding_and_reads_jpeg_drafts():
    small = io.BytesIO()
    halves(RED, WHITE, size=(100, 100)).save(small, "PNG")
    with pytest.raises(ImageProblem, match=r"too-large: 100x100 = 10,000 pixels, over the limit of 5,000 \(\[images\] max_pixels") as exc:
        decode(small.getvalue(), max_pixels=5000)
    assert exc.value.category == "too-large"
    big = io.BytesIO()
    PILImage.new("RGB", (4000, 3000), RED).save(big, "JPEG")
    decoded = decode(big.getvalue(), max_pixels=10**8, min_side=256)
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert decoded.image.size == (500, 375)  # decoded at 1/8 scale, never at full size


def test_workers_must_be_sensible(project):
    from muses.settings import ConfigError

    with pytest.raises(ConfigError, match="workers must be 0"):
        generate_images(project, workers=-1)
    with pytest.raises(ConfigError, match="max_side"):
        generate_images(project, max_side=4)


# -- the real Met sample, once for the module -------------------------------------------------
@pytest.fixture(scope="module")
def met_project(tmp_path_factory, met_sample):
    root = tmp_path_factory.mktemp("met") / "proj"
    init_project(root)
    project = Project.load(root)
    store = Store.for_project(project)
    import_records(store, met_sample / "records.jsonl", preset="met-scrapi")
    report = generate_images(project, store=store, workers=2)
    return project, store, report


def test_met_sample_defects_are_found(met_project):
    project, store, report = met_project
    assert report.processed == 206 and report.workers == 2
    images = {im.item_id: im for im in store.images()}
    assert images["12982"].status == PROBLEM and images["12982"].problem.startswith("truncated: 74% grey fill")
    assert images["156134"].status == CROPPED and images["156134"].problem.startswith("truncated: 13%")
    # Plain grey studio backgrounds and white borders are not mistaken for a download's grey fill.
    for plain in ("208148", "15033", "10896"):
        assert images[plain].status == OK, images[plain].problem
    assert report.by_status == {OK: 183, CROPPED: 6, PROBLEM: 17}
    assert report.problems == {"truncated": 17}
    bust = images["10512"]
    assert max(PILImage.open(project.path(bust.stored_path)).size) == 256
    assert (bust.width, bust.height) == PILImage.open(bust.original).size


def test_urls_are_fetched_only_when_allowed(project, tmp_path):
    import functools
    import http.server
    import threading

    served = tmp_path / "site"
    served.mkdir()
    halves(RED, WHITE).save(served / "photo.jpg")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        path = tmp_path / "r.jsonl"
        path.write_text(json.dumps({"id": "1", "image": [f"{base}/photo.jpg", f"{base}/gone.jpg"]}) + "\n",
                        encoding="utf-8")
        store = Store.for_project(project)
        import_records(store, path)
        assert generate_images(project, store=store, workers=1).waiting_for_network == 2
        assert {im.status for im in store.images()} == {PENDING}

        (project.root / "muses.toml").write_text("[images]\nallow_network = true\n", encoding="utf-8")
        refused = generate_images(Project.load(project.root), store=store, workers=1)
        assert refused.problems == {"refused": 2}  # 127.0.0.1 is loopback: not fetched unless allowed
        assert "loopback address" in store.get_item("1").images[0].problem
        report = generate_images(Project.load(project.root), store=store, workers=1, allow_private_urls=True)
        fetched, gone = store.get_item("1").images
        assert fetched.status == OK and _near(_copy(project, fetched).getpixel((2, 10)), RED)
        assert gone.status == PROBLEM and gone.problem.startswith("download-failed:") and "404" in gone.problem
        assert report.problems == {"download-failed": 1}
    finally:
        server.shutdown()


def test_a_display_copy_to_judge_by_beside_the_small_copy_and_served_with_caching(project, tmp_path):
    from fastapi.testclient import TestClient

    from muses.collection.images import display_path
    from muses.web import create_app

    photos = tmp_path / "photos"
    photos.mkdir()
    PILImage.open(io.BytesIO(noise_jpeg((2400, 1600)))).save(photos / "big.jpg", quality=92)
    PILImage.open(io.BytesIO(noise_jpeg((800, 600), seed=1))).save(photos / "small.jpg", quality=92)
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"id": "1998.12", "image": "photos/big.jpg"}) + "\n"
                    + json.dumps({"id": "1998.13", "image": "photos/small.jpg"}) + "\n", encoding="utf-8")
    store = Store.for_project(project)
    import_records(store, path)
    assert project.settings.images.display_side == 1200  # the default: muses.toml [images] display_side
    generate_images(project, store=store, workers=1)
    big, small = store.get_item("1998.12").images[0], store.get_item("1998.13").images[0]
    assert PILImage.open(project.path(big.stored_path)).size == (256, 171)  # the model keeps its small copy
    assert PILImage.open(display_path(project.images_dir, big.checksum, 1200)).size == (1200, 800)
    assert PILImage.open(display_path(project.images_dir, small.checksum, 1200)).size == (800, 600)  # never enlarged

    client = TestClient(create_app(project, project.model_path))
    r = client.get(f"/images/{big.id}/display")
    assert r.status_code == 200 and PILImage.open(io.BytesIO(r.content)).size == (1200, 800)
    assert "max-age" in r.headers["cache-control"] and r.headers["etag"]
    assert client.get(f"/images/{big.id}/display", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    assert client.get(f"/images/{big.id}/original").content == (photos / "big.jpg").read_bytes()
    page = client.get("/items/1998.12").text
    assert f'src="/images/{big.id}/display"' in page and 'class="zoomable"' in page
    assert f'href="/images/{big.id}/original"' in page and "zoom.js" in page

    display_path(project.images_dir, big.checksum, 1200).unlink()  # made before display copies existed
    assert generate_images(project, store=store, workers=1).processed == 1
    assert display_path(project.images_dir, big.checksum, 1200).is_file()
