import json

import pytest
from sqlalchemy import text

from muses.collection.importers import (
    ImportFormatError,
    ImportStopped,
    build_mapping,
    guess_format,
    import_records,
)
from muses.collection.store import PENDING, Store

N_MET = 206  # records in the bundled examples/met-demo


@pytest.fixture
def store(any_store_project):
    return Store.for_project(any_store_project)


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_met_sample_imports_with_the_preset_and_reimport_updates(store, met_sample):
    report = import_records(store, met_sample / "records.jsonl", preset="met-scrapi")
    assert (report.new, report.updated, report.skipped) == (N_MET, 0, [])
    assert report.images_added == N_MET and report.unmapped == {}
    stats = store.stats()
    assert stats["items"] == N_MET and stats["images_by_status"] == {PENDING: N_MET}

    bust = store.get_item("10512")
    assert bust.title == "Cain" and bust.source == "records.jsonl"
    assert bust.object_type == ["Sculpture", "Figures", "Marble", "Busts"]
    assert bust.primary_object_type == "Sculpture"
    assert bust.material == "Marble" and bust.period == "A.D. 1800-1900"
    assert bust.object_number == "83.3" and bust.id == "10512"  # the accession number; the Met's id stays the key
    assert bust.maker == "J. Stanley Connor" and bust.makers == [{"name": "J. Stanley Connor", "role": ""}]
    assert (bust.date, bust.date_earliest, bust.date_latest) == ("by 1883", None, 1883)
    assert bust.dimensions == "26 x 21 1/2 x 17 in. (66 x 54.6 x 43.2 cm)"
    assert bust.credit_line == "Gift of Mrs. John Anderson, 1883" and bust.department == ""
    assert report.columns["object_number"] == "accession number" and report.columns["maker"] == "who"
    assert bust.raw["accession number"] == "83.3" and bust.raw["tags"]["faces"]  # the whole record
    image = bust.images[0]
    assert image.original == str((met_sample / "images" / "10512_83.3.jpg").resolve())
    assert image.status == PENDING

    pair = store.get_item("13097")  # a record whose `who` is a list
    assert pair.object_type == ["Paintings", "Oil paintings"] and isinstance(pair.raw["who"], list)
    assert pair.maker == "Samuel Lovett Waldo; William Jewett" and len(pair.makers) == 2
    assert (pair.date_earliest, pair.date_latest) == (1831, 1832)
    stamp = pair.updated_at

    again = import_records(store, met_sample / "records.jsonl", preset="met-scrapi")
    assert (again.new, again.updated, again.unchanged, again.images_added) == (0, 0, N_MET, 0)
    assert store.get_item("13097").updated_at == stamp  # nothing for the search index to redo
    assert store.stats()["items"] == N_MET and store.stats()["images"] == N_MET


def test_broken_line_is_reported_by_number_and_the_rest_imports(store, met_sample, tmp_path):
    lines = (met_sample / "records.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[150] = '{"id": 1, "title": "half a record\n'
    lines.insert(200, "[1, 2, 3]\n")
    lines.insert(10, json.dumps({"title": "no id here"}) + "\n")
    bad = tmp_path / "records.jsonl"
    bad.write_text("".join(lines), encoding="utf-8")

    report = import_records(store, bad, preset="met-scrapi")
    reasons = {s.line: s.reason for s in report.skipped}
    assert sorted(reasons) == [11, 152, 202]
    assert reasons[11].startswith("missing id") and reasons[152].startswith("bad JSON")
    assert "expected a JSON object" in reasons[202]
    assert report.new == N_MET - 1 and store.stats()["items"] == N_MET - 1


def test_wrong_types_are_converted_and_unknown_keys_ignored(store, tmp_path):
    path = _write_jsonl(tmp_path / "r.jsonl", [
        {"id": 7, "title": ["Bust", "of a man"], "object_type": "Sculpture", "material": 12.5,
         "period": None, "image": "a.jpg", "favourite colour": "blue"},
        {"id": "8", "title": {"en": "Vase"}},
        {"id": "9", "title": "Two photos", "image": ["a.jpg", "http://example.org/b.jpg", "a.jpg"]},
    ])
    report = import_records(store, path)
    assert [(s.line, s.reason) for s in report.skipped] == [(2, "title: expected text, got a JSON object")]
    item = store.get_item("7")
    assert item.title == "Bust; of a man" and item.object_type == ["Sculpture"]
    assert item.material == "12.5" and item.period == ""
    assert item.images[0].original == str(tmp_path / "a.jpg")
    assert [im.original for im in store.get_item("9").images] == [str(tmp_path / "a.jpg"), "http://example.org/b.jpg"]


def test_csv_with_field_mapping(store, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        "Inventory,Name,Kind,Photo,Notes\n"
        "A-1,Bust of Homer,Sculpture,photos/a1.jpg,marble\n"
        'A-2,"Vase, red-figure",Vessel,,\n'
        "A-3,Too,many,cells,here,!\n"
        ",Nameless,Vessel,,\n",
        encoding="utf-8")
    mapping = build_mapping(None, ["id=Inventory", "title=Name", "object_type=Kind", "image=Photo"])
    report = import_records(store, path, mapping=mapping, source="main catalog")
    assert report.format == "csv" and report.new == 2
    assert [(s.line, s.reason.split(" (")[0]) for s in report.skipped] == [(4, "6 cells, the header has 5"),
                                                                          (5, "missing id")]
    bust = store.get_item("A-1")
    assert (bust.title, bust.object_type, bust.source) == ("Bust of Homer", ["Sculpture"], "main catalog")
    assert bust.images[0].original == str(tmp_path / "photos" / "a1.jpg")
    assert bust.raw["Notes"] == "marble"
    assert store.get_item("A-2").title == "Vase, red-figure" and store.get_item("A-2").images == []
    assert report.unmapped == {"material": "material", "period": "period", "description": "description"}


def test_mapping_and_format_errors_say_what_to_do(store, tmp_path):
    with pytest.raises(ImportFormatError, match="our fields are"):
        build_mapping(None, ["colour=Colour"])
    with pytest.raises(ImportFormatError, match="our_field=their_field"):
        build_mapping(None, ["title"])
    with pytest.raises(ImportFormatError, match="unknown preset"):
        build_mapping("louvre")
    with pytest.raises(ImportFormatError, match="--format"):
        guess_format("records.xls")
    path = _write_jsonl(tmp_path / "r.jsonl", [{"ObjectID": 1, "Title": "x"}])
    with pytest.raises(ImportFormatError, match="'ObjectID', 'Title'.*--map id=KEY"):
        import_records(store, path)
    assert store.stats()["items"] == 0
    with pytest.raises(ImportFormatError, match="no such file"):
        import_records(store, tmp_path / "missing.jsonl")


def test_json_array_import(store, tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"records": [{"id": 1, "title": "a"}, "oops", {"id": 2}]}), encoding="utf-8")
    report = import_records(store, path)
    assert report.new == 2 and [s.line for s in report.skipped] == [2]
    (tmp_path / "bad.json").write_text("[{", encoding="utf-8")
    with pytest.raises(ImportFormatError, match="bad JSON at line 1"):
        import_records(store, tmp_path / "bad.json")


def test_reimport_keeps_checked_photos_and_replaces_changed_ones(store, tmp_path):
    path = _write_jsonl(tmp_path / "r.jsonl", [{"id": 1, "title": "a", "image": ["x.jpg", "y.jpg"]}])
    import_records(store, path)
    with store.transaction() as s:
        for im in store.get_item("1").images:
            s.execute(text("UPDATE images SET status='ok', checksum='c' WHERE id=:i"), {"i": im.id})
    _write_jsonl(path, [{"id": 1, "title": "b", "image": ["y.jpg", "z.jpg"]}, {"id": 1, "title": "c", "image": "y.jpg"}])
    report = import_records(store, path)
    assert [(d.line, d.reason) for d in report.duplicates] == [(2, "id '1' also on line 1; this later record replaces it")]
    item = store.get_item("1")
    assert item.title == "c"
    assert [(im.original, im.position, im.status) for im in item.images] == [(str(tmp_path / "y.jpg"), 0, "ok")]
    assert store.stats()["images"] == 1


def test_a_record_the_store_refuses_costs_only_its_own_line(project, tmp_path):
    store = Store.for_project(project)  # an SQLite trigger makes the failure
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON items WHEN NEW.id = 'r5' "
                          "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"))
    path = _write_jsonl(tmp_path / "r.jsonl", [{"id": f"r{i}", "title": f"t{i}", "image": f"{i}.jpg"} for i in range(8)])
    report = import_records(store, path, batch_size=3)
    assert [(s.line, s.reason) for s in report.skipped] == [(6, "the store refused it (refused by the database)")]
    assert [i.id for i in store.items()] == ["r0", "r1", "r2", "r3", "r4", "r6", "r7"]


def test_a_failing_store_stops_the_import_and_keeps_the_batches_before(project, tmp_path):
    store = Store.for_project(project)
    # A real database failure from the second batch on: every record of it refused.
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON items WHEN NEW.id >= 'r3' "
                          "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"))
    path = _write_jsonl(tmp_path / "r.jsonl", [{"id": f"r{i}", "title": f"t{i}", "image": f"{i}.jpg"} for i in range(8)])
    with pytest.raises(ImportStopped, match="lines 4-6 .*refused by the database.* the 3 records before"):
        import_records(store, path, batch_size=3)
    assert [i.id for i in store.items()] == ["r0", "r1", "r2"]  # batch 1 kept, batch 2 (r3-r5) not started
    assert store.stats()["images"] == 3
    with store.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse"))
    report = import_records(store, path, batch_size=3)  # re-running resumes
    assert (report.new, report.unchanged) == (5, 3) and store.stats()["items"] == 8


def test_encoding_is_checked_before_anything_is_written(store, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("id,title\n1,Bust\n2,Büste eines Mannes\n".encode("cp1252"))
    with pytest.raises(ImportFormatError, match="line 3 is not utf-8 text .*--encoding, e.g. cp1252"):
        import_records(store, path, encoding="utf-8")
    assert store.stats()["items"] == 0
    report = import_records(store, path, encoding="cp1252")
    assert report.new == 2 and store.get_item("2").title == "Büste eines Mannes"
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "\u00e9", "title": "caf\u00e9"}, ensure_ascii=False).encode())
    assert import_records(store, bom).new == 1 and store.get_item("é").title == "café"
    with pytest.raises(ImportFormatError, match="unknown encoding"):
        import_records(store, bom, encoding="klingon")


def test_the_ids_seen_wait_on_disk_not_in_memory(store, tmp_path):
    """Duplicate ids are still found across batches, but the import's memory does not grow with
    the file: ids go to a temporary SQLite file (FirstLines), not a dict of a million strings."""
    import tracemalloc

    from muses.collection.importers import FirstLines

    def peak(n: int) -> int:
        path = tmp_path / f"r{n}.jsonl"
        _write_jsonl(path, [{"id": f"{n}-{i:06d}-{'x' * 40}", "title": "Vase"} for i in range(n)]
                     + [{"id": f"{n}-000000-{'x' * 40}", "title": "Vase again"}])
        tracemalloc.start()
        report = import_records(store, path, batch_size=500)
        result = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert [d.line for d in report.duplicates] == [n + 1]
        return result

    peak(1_000)  # caches warm
    assert peak(12_000) - peak(2_000) < 1_200_000  # a dict of 10,000 more ids adds about 1.8 MB
    seen = FirstLines()
    assert (seen.earlier("a", 1), seen.earlier("b", 2), seen.earlier("a", 9)) == (None, None, 1)
    seen.close()
