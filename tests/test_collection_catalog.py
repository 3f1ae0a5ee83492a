"""A museum's catalog fields (muses.collection.catalog): object numbers, makers with roles, dates
read as years; presets for common exports; the migration that fills them in older stores."""
import csv
import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from muses.cli import main
from muses.collection import schema
from muses.collection.catalog import describe_years, makers, parse_date
from muses.collection.importers import import_records
from muses.collection.store import Store
from muses.settings import Project
from muses.testing.net import free_port
from muses.web import create_app


@pytest.mark.parametrize("text, years", [
    ("1827", (1827, 1827)), ("c. 1850", (1850, 1850)), ("ca. 1795", (1795, 1795)), ("c.1850", (1850, 1850)),
    ("1850-1860", (1850, 1860)), ("1850–60", (1850, 1860)), ("ca. 1500–1520", (1500, 1520)),
    ("19th century", (1800, 1899)), ("late 18th century", (1766, 1799)), ("18th–19th century", (1700, 1899)),
    ("second half of the 19th century", (1850, 1899)), ("1850s", (1850, 1859)), ("1840s–50s", (1840, 1859)),
    ("before 1900", (None, 1900)), ("by 1883", (None, 1883)), ("after 1850", (1850, None)),
    ("500–450 BC", (-500, -450)), ("5th century B.C.", (-500, -401)), ("ca. 3000 BCE", (-3000, -3000)),
    ("50 BC–AD 20", (-50, 20)), ("A.D. 1800-1900", (1800, 1900)), ("1903, printed 1908", (1903, 1908)),
    ("undated", (None, None)), ("", (None, None)),
])
def test_a_catalog_date_is_read_as_its_earliest_and_latest_year(text, years):
    assert parse_date(text) == years


def test_years_are_described_as_read():
    assert [describe_years(*y) for y in [(1850, 1860), (1827, 1827), (None, 1900), (1850, None), (-500, -450)]] == [
        "1850–1860", "1827", "by 1900", "from 1850", "500 BC–450 BC"]


def test_makers_keep_their_roles_and_names_in_parentheses():
    assert makers(["Paul Revere (silversmith)", "Mino da Fiesole (Mino di Giovanni)",
                   {"name": "Josiah Wedgwood", "role": "manufacturer"}, "John Flaxman"], ["", "", "", "designer"]) == [
        {"name": "Paul Revere", "role": "silversmith"}, {"name": "Mino da Fiesole (Mino di Giovanni)", "role": ""},
        {"name": "Josiah Wedgwood", "role": "manufacturer"}, {"name": "John Flaxman", "role": "designer"}]


# -- a TMS-shaped export of our own: makers with roles, accession numbers, a multi-line list ----
DEAD_HOST = "127.0.0.1"  # photo URLs on a port nothing listens on


def tms_export(path, n=60, *, port=None):
    """A TMS object export: internal ids, accession numbers, two makers with roles on some rows,
    British and American spellings, and a properly quoted cell listing many names over lines."""
    port = port or free_port()
    columns = ["ObjectID", "ObjectNumber", "Title", "Classification", "DisplayName", "Role", "Dated", "Medium",
               "Dimensions", "CreditLine", "Department", "ImageURL", "PhotoCopyright"]
    names = ", ".join(f"Photographer {k}" for k in range(len(columns) + 2))  # more commas than columns
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for i in range(n):
            two = i % 3 == 0
            w.writerow([
                10_000 + i, f"1985.{i // 10}.{i % 10 + 1}", f"View of the river {i}", "Drawings",
                "Thomas Rowlandson; Robert Pollard" if two else "J. M. W. Turner", "artist; engraver" if two else "",
                ["c. 1790", "1850-1860", "19th century", "before 1900"][i % 4],
                "Watercolour and graphite" if i % 2 else "Watercolor and graphite", "24 x 35 cm",
                "Bequeathed by a collector, 1856", "Prints and Drawings", f"http://{DEAD_HOST}:{port}/photos/{i}.jpg",
                f"© the estate,\n{names},\n{names}" if i % 5 == 0 else "",
            ])
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_tms_export_imports_with_object_numbers_makers_and_dates(project, tmp_path, capsys):
    path = tms_export(tmp_path / "objects.csv")
    code, out, _ = run(capsys, "import", path, "--preset", "tms", "--split", "maker=; ", "--split", "maker_role=; ")
    assert code == 0
    assert ("columns: id <- 'ObjectID', object number <- 'ObjectNumber', maker <- 'DisplayName', "
            "photo <- 'ImageURL'") in out
    assert "runs over lines" not in out and "skipped" not in out.split("records")[0]  # the quoted list of names over three lines is one cell, as it should be
    store = Store.for_project(project)
    assert store.count_items() == 60
    first = store.get_item("10000")
    assert first.object_number == "1985.0.1" and first.title == "View of the river 0"
    assert first.makers == [{"name": "Thomas Rowlandson", "role": "artist"}, {"name": "Robert Pollard", "role": "engraver"}]
    assert first.maker == "Thomas Rowlandson; Robert Pollard"
    assert (first.date, first.date_earliest, first.date_latest) == ("c. 1790", 1790, 1790)
    assert first.credit_line == "Bequeathed by a collector, 1856" and first.department == "Prints and Drawings"
    assert first.raw["PhotoCopyright"].count("\n") == 2
    assert store.get_item("10003").date_latest == 1900 and store.get_item("10003").date_earliest is None

    code, out, _ = run(capsys, "import", path, "--preset", "tms", "--split", "maker=; ", "--split", "maker_role=; ")
    assert code == 0 and "unchanged" in out
    report = json.loads((project.root / "import-report.json").read_text(encoding="utf-8"))
    assert (report["new"], report["updated"], report["unchanged"]) == (0, 0, 60)

    code, out, _ = run(capsys, "items", "--json", "--limit", "1")
    [row] = json.loads(out)
    assert row["object_number"] == "1985.0.1" and row["makers"][1]["role"] == "engraver"
    assert row["date"] == "c. 1790" and row["dimensions"] == "24 x 35 cm"


def test_the_object_page_names_every_catalog_field(project, met_sample, tmp_path):
    store = Store.for_project(project)
    import_records(store, met_sample / "records.jsonl", preset="met-scrapi")
    page = TestClient(create_app(Project.load(project.root))).get("/items/10427").text
    for label, text in [("Object number", "1985.141.1"), ("Maker", "George Catlin"), ("Date", "1827"),
                        ("Material", "Watercolor on ivory"), ("Dimensions", "2 3/8 x 1 7/8 in."),
                        ("Credit line", "Purchase, Gift in memory of Elizabeth B. Besobrasow, 1985"),
                        ("Record id", "10427")]:
        assert f"<th>{label}</th><td>{text}" in page, label
    api = TestClient(create_app(Project.load(project.root))).get("/api/items/10427").json()
    assert api["object_number"] == "1985.141.1" and api["makers"] == [{"name": "George Catlin", "role": ""}]


# -- the migration ----------------------------------------------------------------------------
def test_db_upgrade_fills_the_catalog_fields_of_older_stores_from_their_records(store_url, met_sample):
    Store(store_url).engine.dispose()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:  # the store as revision 0003 left it, with two items
        schema.command.downgrade(schema._config(conn), "0003")
    met = json.loads((met_sample / "records.jsonl").read_text(encoding="utf-8").splitlines()[0])
    items = sa.table("items", *(sa.column(c) for c in ("id", "source", "title", "material", "period",
                                                       "description", "updated_at")),
                     sa.column("object_type", sa.JSON), sa.column("raw", sa.JSON))
    with engine.begin() as conn:
        conn.execute(items.insert(), [
            {"id": str(met["id"]), "source": "", "title": met["title"], "object_type": met["what"], "material": "",
             "period": met["date"], "description": "", "raw": met, "updated_at": "2026-01-01 00:00:00"},
            {"id": "X-9", "source": "", "title": "No catalog fields", "object_type": [], "material": "",
             "period": "", "description": "", "raw": {"id": "X-9", "who": {"nested": 1}},
             "updated_at": "2026-01-01 00:00:00"},
        ])
    with pytest.raises(schema.StoreOutOfDate, match="muses db upgrade"):
        Store(store_url)
    schema.upgrade(engine, name="test")
    store = Store(store_url)
    catlin = store.get_item("10427")
    assert (catlin.object_number, catlin.maker, catlin.date) == ("1985.141.1", "George Catlin", "1827")
    assert (catlin.date_earliest, catlin.date_latest) == (1827, 1827)
    assert catlin.credit_line.startswith("Purchase, Gift in memory") and catlin.dimensions.startswith("2 3/8")
    other = store.get_item("X-9")
    assert (other.object_number, other.maker, other.makers) == ("X-9", "", [])


# -- import --preview -------------------------------------------------------------------------
def test_preview_shows_columns_fields_and_map_lines_and_writes_nothing(project, met_sample, capsys):
    store_file = project.root / "muses.sqlite"
    assert not store_file.exists()
    code, out, _ = run(capsys, "import", met_sample / "records.jsonl", "--preview")
    assert code == 0
    assert "columns in all 206 records (filled, examples):" in out
    assert "  accession number         206  1985.141.1 | 83.3 | 49.67" in out
    assert "Id              <- 'id'  10427 | 10512 | 10896" in out
    assert "Object number   none: the id is the object number" in out
    assert """take it with --map object_number="accession number\"""" in out and "take it with --map maker=who" in out
    assert "the columns are those of the 'met-scrapi' preset: add --preset met-scrapi" in out
    assert "nothing was written" in out and not store_file.exists()

    code, out, _ = run(capsys, "import", met_sample / "records.jsonl", "--preview", "--preset", "met-scrapi")
    assert "Object number   <- 'accession number'  1985.141.1 | 83.3 | 49.67" in out
    assert "Maker           <- 'who'  George Catlin | J. Stanley Connor" in out
    assert "Date            <- 'date'  1827 (1827) | by 1883 (by 1883) | ca. 1795 (1795)" in out
    assert "add --preset" not in out and not store_file.exists()


def test_preview_of_a_csv_names_the_makers_roles_and_the_rows_it_would_skip(tmp_path):
    from muses.collection.preview import preview_import

    path = tms_export(tmp_path / "objects.csv", n=5)
    preview = preview_import(path, preset="tms", splits=["maker=; ", "maker_role=; "])
    assert preview.records == 5 and preview.skipped == 0 and not preview.more
    assert preview.fields["maker"][0] == "Thomas Rowlandson (artist); Robert Pollard (engraver)"
    assert [c.name for c, ours in preview.unmapped()] == ["PhotoCopyright"]
    unmapped = preview_import(path, records=2)
    assert unmapped.more and unmapped.skipped == 2  # no column 'id': every record would be skipped
    assert unmapped.to_dict()["preset"] == "tms"


# -- LIDO XML ---------------------------------------------------------------------------------
LIDO = """<?xml version="1.0" encoding="UTF-8"?>
<lido:lidoWrap xmlns:lido="http://www.lido-schema.org">
 <lido:lido>
  <lido:lidoRecID lido:type="local">DE-MUS-000001</lido:lidoRecID>
  <lido:descriptiveMetadata xml:lang="en">
   <lido:objectClassificationWrap>
    <lido:objectWorkTypeWrap><lido:objectWorkType><lido:term>teapot</lido:term></lido:objectWorkType></lido:objectWorkTypeWrap>
   </lido:objectClassificationWrap>
   <lido:objectIdentificationWrap>
    <lido:titleWrap><lido:titleSet><lido:appellationValue>Teapot with a swan lid</lido:appellationValue></lido:titleSet></lido:titleWrap>
    <lido:repositoryWrap><lido:repositorySet>
     <lido:repositoryName><lido:legalBodyName><lido:appellationValue>Decorative Arts</lido:appellationValue></lido:legalBodyName></lido:repositoryName>
     <lido:workID lido:type="inventory number">KG 1923/45</lido:workID>
    </lido:repositorySet></lido:repositoryWrap>
    <lido:objectMeasurementsWrap><lido:objectMeasurementsSet>
     <lido:displayObjectMeasurements>H. 18 cm</lido:displayObjectMeasurements>
    </lido:objectMeasurementsSet></lido:objectMeasurementsWrap>
   </lido:objectIdentificationWrap>
   <lido:eventWrap><lido:eventSet><lido:event>
    <lido:eventType><lido:term>Production</lido:term></lido:eventType>
    <lido:eventActor><lido:actorInRole>
     <lido:actor><lido:nameActorSet><lido:appellationValue>Josiah Wedgwood</lido:appellationValue></lido:nameActorSet></lido:actor>
     <lido:roleActor><lido:term>manufacturer</lido:term></lido:roleActor>
    </lido:actorInRole></lido:eventActor>
    <lido:eventActor><lido:actorInRole>
     <lido:actor><lido:nameActorSet><lido:appellationValue>John Flaxman</lido:appellationValue></lido:nameActorSet></lido:actor>
     <lido:roleActor><lido:term>designer</lido:term></lido:roleActor>
    </lido:actorInRole></lido:eventActor>
    <lido:eventDate><lido:displayDate>ca. 1785–1790</lido:displayDate></lido:eventDate>
    <lido:eventMaterialsTech><lido:displayMaterialsTech>jasperware</lido:displayMaterialsTech></lido:eventMaterialsTech>
   </lido:event></lido:eventSet></lido:eventWrap>
  </lido:descriptiveMetadata>
  <lido:administrativeMetadata xml:lang="en">
   <lido:rightsWorkWrap><lido:rightsWorkSet><lido:creditLine>Bequest of A. Collector</lido:creditLine></lido:rightsWorkSet></lido:rightsWorkWrap>
   <lido:resourceWrap><lido:resourceSet><lido:resourceRepresentation>
    <lido:linkResource>https://iiif.museum.org/iiif/2/KG-1923-45/full/full/0/default.jpg</lido:linkResource>
   </lido:resourceRepresentation></lido:resourceSet></lido:resourceWrap>
  </lido:administrativeMetadata>
 </lido:lido>
 <lido:lido>
  <lido:lidoRecID>DE-MUS-000002</lido:lidoRecID>
  <lido:descriptiveMetadata><lido:objectIdentificationWrap>
   <lido:titleWrap><lido:titleSet><lido:appellationValue>Untitled sherd</lido:appellationValue></lido:titleSet></lido:titleWrap>
  </lido:objectIdentificationWrap></lido:descriptiveMetadata>
 </lido:lido>
</lido:lidoWrap>
"""


def test_a_lido_harvest_imports_with_no_mapping(project, tmp_path, capsys):
    path = tmp_path / "harvest.xml"
    path.write_text(LIDO, encoding="utf-8")
    code, out, _ = run(capsys, "import", path)
    assert code == 0 and "object number <- 'object_number'" in out
    store = Store.for_project(project)
    pot = store.get_item("DE-MUS-000001")
    assert (pot.object_number, pot.title, pot.object_type) == ("KG 1923/45", "Teapot with a swan lid", ["teapot"])
    assert pot.makers == [{"name": "Josiah Wedgwood", "role": "manufacturer"}, {"name": "John Flaxman", "role": "designer"}]
    assert (pot.date, pot.date_earliest, pot.date_latest) == ("ca. 1785–1790", 1785, 1790)
    assert (pot.material, pot.dimensions, pot.department) == ("jasperware", "H. 18 cm", "Decorative Arts")
    assert pot.credit_line == "Bequest of A. Collector"
    assert [im.original for im in pot.images] == ["https://iiif.museum.org/iiif/2/KG-1923-45/full/full/0/default.jpg"]
    sherd = store.get_item("DE-MUS-000002")
    assert sherd.object_number == "DE-MUS-000002" and sherd.makers == []


def test_a_file_that_is_not_lido_is_refused_in_one_sentence(project, tmp_path, capsys):
    path = tmp_path / "other.xml"
    path.write_text("<catalog><object/></catalog>", encoding="utf-8")
    code, _, err = run(capsys, "import", path)
    assert code != 0 and "no <lido:lido> records" in err
    path.write_text("<lido:lidoWrap xmlns:lido='http://www.lido-schema.org'><lido:lido>", encoding="utf-8")
    code, _, err = run(capsys, "import", path)
    assert code != 0 and "not well-formed XML at line 1" in err


def test_an_open_data_dump_gets_a_map_line_for_every_catalog_column_and_no_comma_split_for_makers(project, tmp_path,
                                                                                                   capsys):
    path = tmp_path / "artworks.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "accession_number", "artist", "title", "dateText", "medium", "creditLine", "dimensions",
                    "thumbnailUrl"])
        for i in range(20):
            w.writerow([1000 + i, f"N0{i:04d}", "Turner, Joseph Mallord William", f"Study {i}", "c.1796-7",
                        "Graphite and watercolour on paper", "Accepted by the Nation as part of the Turner Bequest 1856",
                        "support: 210 x 271 mm", ""])
    code, out, _ = run(capsys, "import", path, "--preview")
    for line in ["--map object_number=accession_number", "--map maker=artist", "--map date=dateText",
                 "--map material=medium", "--map credit_line=creditLine", "--map image=thumbnailUrl"]:
        assert f"take it with {line}" in out, line
    code, out, _ = run(capsys, "import", path, "--map", "object_number=accession_number", "--map", "maker=artist",
                       "--map", "date=dateText")
    assert code == 0 and "--split maker" not in out  # "Surname, Forename" is one maker
    item = Store.for_project(project).get_item("1000")
    assert (item.object_number, item.maker, item.date_earliest, item.date_latest) == (
        "N00000", "Turner, Joseph Mallord William", 1796, 1797)


def test_an_object_number_too_long_to_be_one_skips_its_record_with_the_reason(project, tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"id": "1", "object_number": "x" * 501}) + "\n" +
                    json.dumps({"id": "2", "object_number": "2024.1"}) + "\n", encoding="utf-8")
    report = import_records(Store.for_project(project), path)
    assert report.new == 1 and "is 501 characters long, more than 500" in report.skipped[0].reason
