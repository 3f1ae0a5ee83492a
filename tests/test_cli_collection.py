import json

import pytest

from muses.cli import main
from muses.collection.store import Store

SOME_MET_IDS = ("10512", "10427", "15541", "12982", "156134")  # bust, miniature, two truncated, cropped


@pytest.fixture
def met_subset(met_sample, tmp_path):
    """Five real Met records whose photos are named by absolute path (so they can live anywhere)."""
    records = [json.loads(line) for line in (met_sample / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    chosen = [r | {"image": str(met_sample / r["image"])} for r in records if str(r["id"]) in SOME_MET_IDS]
    path = tmp_path / "subset.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen), encoding="utf-8")
    return path


def counts(out: str) -> dict[str, int]:
    """The rows of the printed summary tables that end in a number: label → count."""
    rows = (line.rsplit(None, 1) for line in out.splitlines())
    return {row[0].strip(): int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["import", "generate-images", "items", "stats"])
def test_help_has_examples(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"muses {command}" in out


def test_import_generate_items_stats(project, met_sample, met_subset, capsys):
    code, out, _ = run(capsys, "import", str(met_subset), "--preset", "met-scrapi", "--image-root", str(met_sample))
    assert code == 0
    assert counts(out)["new"] == 5 and "next: muses generate-images" in out
    report = json.loads((project.root / "import-report.json").read_text(encoding="utf-8"))
    assert report["new"] == 5 and report["format"] == "jsonl"

    code, out, _ = run(capsys, "import", str(met_subset), "--preset", "met-scrapi", "--image-root", str(met_sample))
    assert code == 0 and counts(out)["unchanged"] == 5

    code, out, err = run(capsys, "generate-images", "--workers", "1")
    assert code == 0
    assert "  62.48.2: truncated: 74% grey fill" in out and "12982_ap62.48.2.jpg" not in out  # by accession number
    assert "cannot repair them: replace each file" in out
    assert out.rstrip().endswith("next: muses export-classification-data   (labels the objects from their catalog words)")
    assert counts(out) == {"checked now": 5, "unchanged (skipped)": 0, "cropped": 1, "ok": 2, "problem": 2,
                           "problem: truncated": 2}
    assert "generate-images: 5/5 photos, 100 %, done in" in err  # stderr is no terminal here: plain lines

    code, out, _ = run(capsys, "generate-images", "--force", "--verbose")
    assert "  62.48.2: truncated" in out and "12982_ap62.48.2.jpg)" in out and "photos/s on" in out

    code, out, _ = run(capsys, "generate-images")
    assert code == 0 and counts(out) == {"checked now": 0, "unchanged (skipped)": 5}

    with Store.for_project(project).transaction() as s:
        from muses.collection.store import Item

        s.get(Item, "10512").classification = {"model": "m", "date": "2026-01-01",
                                               "classes": [{"name": "bust", "probability": 0.91}]}
    code, out, err = run(capsys, "items", "--limit", "2")
    assert code == 0 and "1985.141.1" in out and "bust 0.91" in out  # 10427 by its accession number
    assert "George Catlin" in out
    assert "showing the first 2 items, 3 more not shown; --all lists every one" in err

    code, out, _ = run(capsys, "items", "--problems", "--json")
    rows = json.loads(out)
    assert sorted(r["id"] for r in rows) == ["12982", "15541"]
    assert rows[0]["problem_images"] == 1 and rows[0]["usable_images"] == 0 and rows[0]["problems"][0]
    assert all(r["object_number"] and "credit_line" in r and "date_earliest" in r for r in rows)

    code, out, _ = run(capsys, "stats", "--json")
    stats = json.loads(out)
    assert stats["items"] == 5 and stats["images_by_status"] == {"ok": 2, "cropped": 1, "problem": 2}
    assert stats["problem_categories"] == {"truncated": 2}
    code, out, _ = run(capsys, "stats")
    assert code == 0
    assert counts(out) == {"items": 5, "without photos": 0, "classified": 1, "all": 5, "cropped": 1, "ok": 2,
                           "problem": 2, "truncated": 2}


def test_csv_import_with_map_and_warnings(project, tmp_path, capsys):
    path = tmp_path / "export.csv"
    path.write_text("Number,Name,Kind\n1,Bust of Homer,Sculpture\n2,Vase\n,No number,Vessel\n", encoding="utf-8")
    code, out, _ = run(capsys, "import", str(path), "--map", "id=Number", "--map", "title=Name",
                       "--map", "object_type=Kind", "--source", "main")
    assert code == 0
    assert "line 4: skipped, missing id" in out
    assert "no record has the key 'image', so image is empty" in out
    item = Store.for_project(project).get_item("1")
    assert (item.title, item.object_type, item.source) == ("Bust of Homer", ["Sculpture"], "main")


@pytest.mark.parametrize("argv, message", [
    (["--map", "colour=Colour"], "cannot map to 'colour'"),
    (["--map", "title"], "our_field=their_field"),
    ([], "no record has the id key 'id'"),
])
def test_import_bad_usage_exits_2(project, tmp_path, capsys, argv, message):
    path = tmp_path / "r.jsonl"
    path.write_text('{"ObjectID": 1}\n', encoding="utf-8")
    code, _, err = run(capsys, "import", str(path), *argv)
    assert code == 2 and message in err


def test_import_missing_file_and_unknown_extension_exit_2(project, tmp_path, capsys):
    code, _, err = run(capsys, "import", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "no such file" in err
    (tmp_path / "r.xls").write_text("<records/>", encoding="utf-8")
    code, _, err = run(capsys, "import", str(tmp_path / "r.xls"))
    assert code == 2 and "pass --format" in err


def test_generate_images_bad_flags_exit_2(project, capsys):
    code, _, err = run(capsys, "generate-images", "--workers", "-1")
    assert code == 2 and "workers must be 0" in err
    code, _, err = run(capsys, "items", "--limit", "-3")
    assert code == 2 and "--limit must be 0" in err


def test_import_refused_by_the_store_exits_1_and_keeps_earlier_batches(project, tmp_path, capsys):
    from sqlalchemy import text

    store = Store.for_project(project)
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON items WHEN NEW.id >= '2' "
                          "BEGIN SELECT RAISE(ABORT, 'disk quota'); END"))
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(5)), encoding="utf-8")
    code, _, err = run(capsys, "import", str(path), "--batch-size", "2")
    assert code == 1 and "lines 3-4" in err and "disk quota" in err and "import again" in err
    assert [i.id for i in store.items()] == ["0", "1"]


def excel_export(path, met_sample, n=60):
    """A semicolon-separated cp1252 CSV as Excel on Windows saves it, from real Met records."""
    records = [json.loads(line) for line in (met_sample / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    lines = ["Object Number;Title;Classification;Image"] + [
        f'{r["id"]};"{r["title"]}";"{", ".join(r["what"])}";{met_sample / r["image"]}' for r in records[:n]]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252", "replace"))
    return path


EXCEL_ARGS = ["--map", "id=Object Number", "--map", "title=Title", "--map", "object_type=Classification",
              "--map", "image=Image"]


def test_import_an_excel_csv_says_how_it_read_it_and_suggests_split(project, met_sample, tmp_path, capsys):
    path = excel_export(tmp_path / "export.csv", met_sample)
    code, out, err = run(capsys, "import", str(path), *EXCEL_ARGS, "--image-root", str(met_sample))
    assert code == 0 and counts(out)["new"] == 60
    assert "as cp1252 (Excel on Windows) text, cells separated by ';'" in out
    assert "the column 'Classification' (object_type) holds several values in most cells" in out
    assert 'import again with --split object_type=", "' in out
    assert any(line.startswith("import: 61/61 lines, 100 %, done in") for line in err.splitlines())
    assert Store.for_project(project).get_item("10512").object_type == ["Sculpture, Figures, Marble, Busts"]

    code, out, err = run(capsys, "--quiet", "import", str(path), *EXCEL_ARGS, "--split", "object_type=, ",
                         "--image-root", str(met_sample))
    assert code == 0 and counts(out)["updated"] == 60 and "--split" not in out and err == ""
    assert Store.for_project(project).get_item("10512").object_type == ["Sculpture", "Figures", "Marble", "Busts"]
    assert json.loads((project.root / "import-report.json").read_text())["splits"] == {"object_type": ", "}


def test_import_delimiter_and_encoding_flags(project, tmp_path, capsys):
    path = tmp_path / "export.txt"
    path.write_bytes("id\ttitle\n1\tBüste\n".encode("latin-1"))
    code, out, _ = run(capsys, "import", str(path), "--format", "csv", "--delimiter", "tab", "--encoding", "latin-1",
                       "--quiet")
    assert code == 0 and "as latin-1 text, cells separated by tabs" in out
    assert Store.for_project(project).get_item("1").title == "Büste"
    with pytest.raises(SystemExit):
        main(["import", str(path), "--delimiter", ";;"])
    assert "one character (, ; | or tab)" in capsys.readouterr().err
    code, _, err = run(capsys, "import", str(path), "--split", "title=,")
    assert code == 2 and "cannot split 'title'" in err


def test_items_json_says_when_it_is_limited_and_all_and_jsonl_give_every_item(project, met_sample, tmp_path, capsys):
    path = excel_export(tmp_path / "export.csv", met_sample, n=12)
    assert run(capsys, "-q", "import", str(path), *EXCEL_ARGS, "--image-root", str(met_sample))[0] == 0
    code, out, err = run(capsys, "items", "--json", "--limit", "5")
    assert len(json.loads(out)) == 5 and "showing the first 5 items, 7 more not shown; --all lists every one" in err
    code, out, err = run(capsys, "items", "--json", "--all")
    assert len(json.loads(out)) == 12 and err == ""
    assert {(r["usable_images"], r["problem_images"]) for r in json.loads(out)} == {(0, 0)}  # pending is no problem
    code, out, err = run(capsys, "items", "--jsonl")
    assert [json.loads(line)["id"] for line in out.splitlines()] == sorted(json.loads(line)["id"] for line in out.splitlines())
    assert len(out.splitlines()) == 12 and err == ""
    code, out, err = run(capsys, "items", "--jsonl", "--limit", "3")
    assert len(out.splitlines()) == 3 and "9 more not shown" in err


def test_stats_and_init_end_with_the_next_step(project, met_sample, tmp_path, capsys):
    code, out, _ = run(capsys, "stats")
    assert out.rstrip().endswith("next: muses import EXPORT_FILE   (your catalog export: CSV, JSON or JSON Lines)")
    path = excel_export(tmp_path / "export.csv", met_sample, n=3)
    run(capsys, "-q", "import", str(path), *EXCEL_ARGS, "--image-root", str(met_sample))
    code, out, _ = run(capsys, "stats")
    assert out.rstrip().endswith("next: muses generate-images   (3 photos not checked yet)")
    code, out, _ = run(capsys, "init", str(tmp_path / "new"))
    assert code == 0 and f"then muses import EXPORT_FILE --project {tmp_path / 'new'}" in out
