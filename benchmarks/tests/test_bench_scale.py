"""The scale bench: the synthetic collection and the growth verdicts of its table."""
from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path

import pytest

from benchmarks.scale import Figure, format_table, growth
from benchmarks.synthetic import generate
from muses.collection.importers import import_records
from muses.collection.store import Store
from muses.settings import STORE_URL_ENV


def test_synthetic_records_are_met_shaped_and_reuse_a_few_photos(tmp_path):
    made = generate(tmp_path, 25, images=4)
    lines = made.records.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == made.count == 25 and len({r["_id"] for r in records}) == 25
    assert {"title", "what", "medium", "accession number", "image"} <= set(records[0])
    assert len({r["image"] for r in records}) == 4 and len(list(made.images.iterdir())) == 4


def test_synthetic_records_import_through_the_met_preset(tmp_path, project):
    made = generate(tmp_path / "syn", 30, images=3)
    report = import_records(Store.for_project(project), made.records, preset="met-scrapi", roots=[tmp_path / "syn"])
    assert report.imported == 30
    assert Store.for_project(project).stats()["items"] == 30


def test_growth_says_flat_linear_or_worse():
    assert growth(10.0, 11.0, 100, per_record=False).startswith("flat")
    assert growth(1.0, 90.0, 100, per_record=False).startswith("linear")
    assert growth(1.0, 1000.0, 100, per_record=False).startswith("WORSE")
    # a rate (records/s) that holds up is flat; one that falls 100-fold grew linearly per record
    assert growth(5000.0, 4800.0, 100, per_record=True).startswith("flat")
    assert growth(5000.0, 50.0, 100, per_record=True).startswith("linear")


def test_table_has_a_time_and_a_memory_row_per_command():
    rows = {n: [Figure("import", n / 1000, 70.0, 1000.0, "records/s"), Figure("muses stats", 1.0, 60.0 * n / 10)]
            for n in (10, 1000)}
    table = format_table(rows)
    assert "| import | 1,000.0 records/s (0.0 s) | 1,000.0 records/s (1.0 s) | time flat (x1.00) |" in table
    assert "| muses stats: peak RSS | 60 MB | 6,000 MB | memory linear (x100.0 for x100 records) |" in table


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match=">= 1"):
        generate(tmp_path, 0)


def test_the_file_names_the_database_and_the_header_the_cores():
    from benchmarks.scale import machine_note, store_name

    assert store_name(None) == "sqlite"
    assert store_name("postgresql+psycopg://u@h/db") == "postgresql" and store_name("sqlite:///x.db") == "sqlite"
    assert f"{os.cpu_count()} CPU cores" in machine_note()


def test_the_store_url_reaches_the_commands_through_the_environment(monkeypatch):
    from benchmarks.scale import _store_url

    monkeypatch.setenv(STORE_URL_ENV, "sqlite:///before.db")
    with _store_url("postgresql+psycopg://u@h/muses_scale_10"):
        assert os.environ[STORE_URL_ENV] == "postgresql+psycopg://u@h/muses_scale_10"
    assert os.environ[STORE_URL_ENV] == "sqlite:///before.db"


@pytest.mark.slow
def test_the_bench_runs_on_a_postgresql_cluster_it_starts_and_removes(tmp_path):
    """`--postgres`: no hand set-up; one database per size, the cluster gone afterwards."""
    from muses.testing import postgres
    from benchmarks.scale import main

    if postgres.missing():
        pytest.skip(postgres.missing())
    before = set(Path(tempfile.gettempdir()).glob("muses-pg-*"))
    assert main(["--postgres", "--sizes", "40", "80", "--images", "3", "--results", str(tmp_path)]) == 0
    table = (tmp_path / f"scale-{dt.date.today().isoformat()}-postgresql-80.md").read_text(encoding="utf-8")
    assert "| import | " in table and "| export (100 photos a class): peak RSS |" in table and "(postgresql)" in table
    assert set(Path(tempfile.gettempdir()).glob("muses-pg-*")) == before
