"""Catalog exports as spreadsheets really save them: semicolons, cp1252, multi-value cells."""
import csv
import io
import json

import pytest

from muses.collection.importers import (
    ImportFormatError,
    build_mapping,
    count_lines,
    import_records,
    parse_splits,
    sniff_delimiter,
)
from muses.collection.store import Store

HEADER = ["Object Number", "Title", "Classification", "Medium", "Date", "Image"]
EXCEL_MAPPING = ["id=Object Number", "title=Title", "object_type=Classification", "material=Medium",
                 "period=Date", "image=Image"]


@pytest.fixture
def store(project):
    return Store.for_project(project)


def met_rows(met_sample, n=60) -> list[list[str]]:
    """The first ``n`` Met demo records as spreadsheet rows: the facet list in one cell, as a
    collection system exports it, and text cp1252 can hold."""
    records = [json.loads(line) for line in (met_sample / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [[str(r["id"]), r["title"], ", ".join(r["what"]), r["medium"], r["date"], str(met_sample / r["image"])]
            for r in records[:n]]
    return [[cell.encode("cp1252", "replace").decode("cp1252") for cell in row] for row in rows]


def write_excel_csv(path, rows, *, delimiter=";", encoding="cp1252"):
    """What Excel on Windows in most of Europe writes: semicolons, CRLF, cp1252."""
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, lineterminator="\r\n").writerows([HEADER, *rows])
    path.write_bytes(text.getvalue().encode(encoding))
    return path


def test_a_semicolon_cp1252_export_imports_every_record(store, met_sample, tmp_path):
    rows = met_rows(met_sample)
    path = write_excel_csv(tmp_path / "export.csv", rows)
    report = import_records(store, path, mapping=build_mapping(None, EXCEL_MAPPING), roots=[met_sample])
    assert (report.new, report.skipped) == (60, [])
    assert (report.encoding, report.delimiter) == ("cp1252", ";")
    assert report.images_added == 60
    first = store.get_item(rows[0][0])
    assert first.title == rows[0][1] and first.material == rows[0][3]
    assert first.object_type == [rows[0][2]]  # one cell, one value: the summary suggests --split
    [hint] = report.multi_valued
    assert (hint.field, hint.key, hint.separator, hint.cells) == ("object_type", "Classification", ",", 60)
    assert hint.with_separator > 30 and hint.suggestion == '--split object_type=", "'


def test_split_cuts_multi_value_cells_and_fixes_the_primary_type(store, met_sample, tmp_path):
    rows = met_rows(met_sample, n=5)
    path = write_excel_csv(tmp_path / "export.csv", rows)
    report = import_records(store, path, mapping=build_mapping(None, EXCEL_MAPPING), roots=[met_sample],
                            splits=parse_splits(["object_type=, "]))
    bust = store.get_item("10512")
    assert bust.object_type == ["Sculpture", "Figures", "Marble", "Busts"]
    assert bust.primary_object_type == "Sculpture"
    assert report.multi_valued == [] and report.splits == {"object_type": ", "}
    assert report.to_dict()["splits"] == {"object_type": ", "}


def test_split_photo_cells_and_a_separator_without_its_space(store, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("id,object_type,image\n1,\"Vase,Jug ,, Jar\",a.jpg|b.jpg\n", encoding="utf-8")
    import_records(store, path, splits={"object_type": ", ", "image": "|"})
    item = store.get_item("1")
    assert item.object_type == ["Vase", "Jug", "Jar"]
    assert [im.original for im in item.images] == [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]


@pytest.mark.parametrize("splits, message", [
    (["title=, "], "cannot split 'title': only object_type, image, maker and maker_role"),
    (["object_type="], "needs a separator"),
    (["object_type"], "write field=separator"),
])
def test_bad_splits_say_what_to_write(splits, message):
    with pytest.raises(ImportFormatError, match=message):
        parse_splits(splits)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_sniffed(tmp_path, delimiter):
    path = tmp_path / "export.csv"
    other = ";" if delimiter == "," else ","  # the other common delimiter, inside cells
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter).writerows(
        [["id", "title", "description"]] + [[str(i), f"Bust {i}", f"marble{other} bronze{other} wood"] for i in range(5)])
    path.write_text(text.getvalue(), encoding="utf-8")
    assert sniff_delimiter(path, "utf-8") == delimiter


def test_a_one_column_file_reads_with_a_comma(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id\n1\n2\n", encoding="utf-8")
    assert sniff_delimiter(path, "utf-8") == ","


def test_a_wrong_delimiter_names_the_flag(store, tmp_path):
    path = write_excel_csv(tmp_path / "export.csv", [["1", "Bust", "Sculpture", "Marble", "1800", ""]])
    with pytest.raises(ImportFormatError, match="header looks separated by ';': pass --delimiter ';'"):
        import_records(store, path, delimiter="|", mapping=build_mapping(None, EXCEL_MAPPING))
    with pytest.raises(ImportFormatError, match="one character"):
        import_records(store, path, delimiter=";;")
    path.write_text("id\n1,Bust,Sculpture\n", encoding="utf-8")
    report = import_records(store, path, delimiter=",")
    assert "the header has 1 (with cells separated by ','" in report.skipped[0].reason
    assert "--delimiter" in report.skipped[0].reason


def test_utf8_with_and_without_a_byte_order_mark_is_utf8(store, tmp_path):
    for name, prefix in (("plain.csv", b""), ("bom.csv", b"\xef\xbb\xbf")):
        path = tmp_path / name
        path.write_bytes(prefix + "id;title\n1;Büste\n".encode("utf-8"))
        report = import_records(store, path)
        assert (report.encoding, report.delimiter) == ("utf-8-sig", ";")
        assert store.get_item("1").title == "Büste"


def test_neither_utf8_nor_cp1252_is_refused_with_the_line(store, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(b"id,title\n1,ok\n2,\x81\xff\n")  # 0x81 is not cp1252, 0xff not UTF-8
    with pytest.raises(ImportFormatError, match="line 3 is neither UTF-8 nor cp1252 .*--encoding"):
        import_records(store, path)
    assert store.stats()["items"] == 0
    assert import_records(store, path, encoding="latin-1").new == 2


@pytest.mark.parametrize("content, lines", [
    ("id;title\r\n1;a\r\n2;b\r\n", 3),
    ("id;title\n1;a\n2;b", 3),  # no line break after the last record
    ('id;title\n1;a\n2;"two\nlines"\n\n', 5),  # a cell over two lines, then a blank line
    ("", 0),
])
def test_import_progress_ends_at_the_whole_file(store, tmp_path, content, lines):
    path = tmp_path / "export.csv"
    path.write_text(content, encoding="utf-8", newline="")
    calls = []
    if content:
        import_records(store, path, progress=lambda done, total: calls.append((done, total)))
        assert calls[-1] == (lines, lines) and all(done <= total for done, total in calls)
    assert count_lines(path) == lines
