"""Property-based fuzzing (Hypothesis) of what takes outside input: the importers, the JSON
array reader, the CSV writer and the web API. Bounded for CI: few examples, no deadline per
example, the whole file well under a minute."""
from __future__ import annotations

import csv
import io
import json
import string
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from muses import csvfile
from muses.collection import jsonstream
from muses.collection.importers import import_records
from muses.collection.store import Item, Store
from muses.errors import MusesError
from muses.settings import Project, init_project
from muses.web import create_app

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Text as hostile exports hold it: controls, NUL, lone surrogates, formula starts, RTL overrides.
hostile_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["\x00", "\ud800", "=1+1", "-12", "\x1b[31m", "\u202e", "nan", " ", "'", '"', "a,b;c|d", "\r\n"])
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | hostile_text
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(hostile_text, inner, max_size=3), max_leaves=10)
records = st.dictionaries(st.sampled_from(["id", "title", "object_type", "image", "x"]) | hostile_text, json_values,
                          max_size=6)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "proj"
    init_project(root)
    return Store.for_project(Project.load(root))


def _import(store, path):
    try:
        report = import_records(store, path)
    except MusesError:
        return None  # a refusal in one sentence is an answer too
    assert report.imported + len(report.skipped) >= 0
    return report


@FUZZ
@given(lines=st.lists(records.map(lambda r: json.dumps(r, allow_nan=True)) | hostile_text, max_size=8))
def test_any_jsonl_imports_or_is_refused_in_one_sentence(store, tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("jsonl") / "r.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    _import(store, path)


@FUZZ
@given(rows=st.lists(st.lists(hostile_text, min_size=1, max_size=4), max_size=8))
def test_any_csv_imports_or_is_refused_in_one_sentence(store, tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "r.csv"
    text = "id,title,object_type\n" + "\n".join(",".join(row) for row in rows)
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _import(store, path)


@FUZZ
@given(data=st.lists(records, max_size=6) | json_values)
def test_any_json_imports_or_is_refused_in_one_sentence(store, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("json") / "r.json"
    path.write_bytes(json.dumps(data).encode("utf-8"))
    _import(store, path)


@FUZZ
@given(data=st.lists(json_values, max_size=8), chunk=st.integers(1, 9), key_first=st.booleans())
def test_the_streamed_array_reader_finds_what_json_loads_finds(data, chunk, key_first):
    text = json.dumps({"other": data[:1], "records": data} if key_first else data)
    old, jsonstream.CHUNK = jsonstream.CHUNK, chunk
    try:
        found = [e.value if isinstance(e, jsonstream.Parsed) else json.loads(e)
                 for e in jsonstream.array_elements(io.StringIO(text), 10_000)]
    finally:
        jsonstream.CHUNK = old
    assert json.dumps(found) == json.dumps(data)  # dumps: nan != nan, but prints the same


@FUZZ
@given(cells=st.lists(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20), min_size=1, max_size=6))
def test_the_csv_writer_is_formula_safe_and_reads_back_what_it_wrote(cells):
    buf = io.StringIO()
    csvfile.Writer(buf, [f"c{i}" for i in range(len(cells))]).row(cells)
    written = list(csv.reader(io.StringIO(buf.getvalue())))[1]
    assert not any(cell.startswith(csvfile.FORMULA_START) for cell in written)
    buf.seek(0)
    columns, rows = csvfile.records(buf)
    row = next(rows)
    assert [row[c] for c in columns] == cells


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("web") / "proj"
    init_project(root)
    project = Project.load(root)
    with Store.for_project(project).transaction() as s:
        s.add_all([Item(id=f"v{i}", title=f"Vase {i}", object_type=["Vases"]) for i in range(3)])
    app = create_app(project, allow_writes=True, reviewer="Ana", allowed_hosts=["testserver"])
    return TestClient(app, raise_server_exceptions=False)


query_text = st.text(max_size=60) | st.sampled_from(["\x00", "%00", "a " * 40, "-1", "9" * 30, "relevance"])


@FUZZ
@given(q=query_text, predicted=query_text, naive=query_text, sort=query_text, page=query_text, per_page=query_text)
def test_the_items_api_never_answers_500(client, q, predicted, naive, sort, page, per_page):
    params = {"q": q, "predicted": predicted, "naive": naive, "sort": sort, "page": page, "per_page": per_page}
    for path in ("/api/items", "/items"):
        r = client.get(path, params=params)
        assert r.status_code < 500, (path, params, r.text[:300])


@FUZZ
@given(body=st.dictionaries(st.sampled_from(["item_id", "action", "chosen", "reviewer", "catalog_value"]),
                            json_values, max_size=5),
       raw=st.sampled_from(["", "{", "[]", '{"item_id": "\\ud800"}', "null", '"x"']))
def test_the_decisions_api_never_answers_500(client, body, raw):
    r = client.post("/api/review/decisions", content=raw or json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code < 500, (body, raw, r.text[:300])
    assert len(r.content) < 20_000  # an error never echoes a large input


@FUZZ
@given(item_id=st.text(alphabet=string.printable, max_size=30) | st.integers(-2**70, 2**70).map(str))
def test_item_pages_and_undo_never_answer_500(client, item_id):
    segment = quote(item_id, safe="")
    for r in (client.get(f"/api/items/{segment}"), client.get("/item", params={"id": item_id}),
              client.post(f"/api/review/decisions/{segment}/undo")):
        assert r.status_code < 500, (item_id, r.text[:300])
