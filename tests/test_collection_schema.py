"""The store's schema through Alembic migrations, on SQLite and PostgreSQL (muses.collection.schema)."""
import shutil
import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, inspect, text

from muses.cli import main
from muses.collection import schema
from muses.collection.store import Base, Image, Item, Store

# The schema as the release before migrations created it (its create_all, as SQLite DDL).
PREVIOUS_RELEASE_SQL = """
CREATE TABLE items (
    id VARCHAR(255) NOT NULL, source VARCHAR(255) NOT NULL, title TEXT NOT NULL, object_type JSON NOT NULL,
    material TEXT NOT NULL, period TEXT NOT NULL, description TEXT NOT NULL, raw JSON NOT NULL,
    classification JSON, updated_at DATETIME NOT NULL, PRIMARY KEY (id));
CREATE TABLE images (
    id INTEGER NOT NULL, item_id VARCHAR(255) NOT NULL, position INTEGER NOT NULL, original TEXT NOT NULL,
    stored_path TEXT, checksum VARCHAR(64), width INTEGER, height INTEGER, status VARCHAR(16) NOT NULL,
    problem TEXT, PRIMARY KEY (id), FOREIGN KEY(item_id) REFERENCES items (id) ON DELETE CASCADE);
CREATE INDEX ix_images_item_id ON images (item_id);
CREATE INDEX ix_images_status ON images (status);
INSERT INTO items VALUES ('DP-1', 'met', 'Bust of a man', '["Sculpture"]', 'Marble', '', '', '{}', NULL,
                          '2026-01-01 00:00:00');
INSERT INTO images VALUES (1, 'DP-1', 0, '/photos/1.jpg', NULL, NULL, NULL, NULL, 'ok', NULL);
"""


def _previous_release_store(path):
    with sqlite3.connect(path) as conn:
        conn.executescript(PREVIOUS_RELEASE_SQL)
    return f"sqlite:///{path}"


def test_a_store_from_the_previous_release_is_stamped_then_upgraded_with_its_items(tmp_path):
    url = _previous_release_store(tmp_path / "old.sqlite")
    with pytest.raises(schema.StoreOutOfDate, match=f"revision {schema.BASELINE}, older than this muses"):
        Store(url)
    schema.upgrade(create_engine(url), name="old.sqlite")
    store = Store(url)
    assert schema.revisions(store.engine).current == schema.head()
    item = store.get_item("DP-1")
    assert item.title == "Bust of a man" and [im.original for im in item.usable_images] == ["/photos/1.jpg"]
    with store.transaction() as s:  # and it takes new items as before
        s.add(Item(id="DP-2", title="Vase", images=[Image(original="/photos/2.jpg")]))
    assert store.stats()["items"] == 2


def test_a_new_store_is_made_at_the_newest_revision(store_url):
    store = Store(store_url)
    assert schema.revisions(store.engine).up_to_date


def test_the_migrations_make_exactly_the_models_schema(store_url):
    # every model's table
    import muses.collection.decisions  # noqa: F401
    import muses.embeddings  # noqa: F401
    import muses.search.browse_index  # noqa: F401
    engine = create_engine(store_url)
    schema.upgrade(engine, name="test")
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == [], "a model changed without a migration: write one (see docs/notes-pg.md)"


def test_a_store_from_a_newer_muses_is_refused(store_url):
    Store(store_url).engine.dispose()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(schema.StoreOutOfDate, match="revision f00d, which this muses does not know: a newer muses"):
        Store(store_url)


@pytest.fixture
def two_revisions(tmp_path, monkeypatch):
    """The real migrations plus a second one adding a column, as a next release would."""
    scripts = tmp_path / "migrations"
    shutil.copytree(schema._SCRIPTS, scripts)
    (scripts / "versions" / "0099_inventory.py").write_text(
        'import sqlalchemy as sa\nfrom alembic import op\n\nrevision = "0099"\ndown_revision = "' + schema.head() + '"\n'
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n"
        '    with op.batch_alter_table("items") as batch:\n'
        '        batch.add_column(sa.Column("inventory", sa.Text(), nullable=True))\n\n\n'
        "def downgrade():\n"
        '    with op.batch_alter_table("items") as batch:\n        batch.drop_column("inventory")\n'
    )
    monkeypatch.setattr(schema, "_SCRIPTS", scripts)


def test_an_older_store_is_refused_until_muses_db_upgrade(any_store_project, two_revisions, capsys):
    store = Store(_url(any_store_project), check_schema=False)
    with store.engine.begin() as conn:  # the previous release's store: revision 0001, one item
        schema.command.upgrade(schema._config(conn), "0001")
        conn.execute(text("INSERT INTO items VALUES ('DP-1', '', 'Bust', '[]', '', '', '', '{}', NULL, "
                          "'2026-01-01 00:00:00')"))
    with pytest.raises(schema.StoreOutOfDate, match=r"revision 0001, older than this muses \(0099\).*`muses db upgrade`"):
        Store(_url(any_store_project))
    assert main(["db", "current"]) == 0
    assert "schema revision: 0001" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert "from schema revision 0001 to 0099" in capsys.readouterr().out
    store = Store(_url(any_store_project))
    assert store.get_item("DP-1").title == "Bust"
    with store.engine.connect() as conn:
        assert "inventory" in {c["name"] for c in inspect(conn).get_columns("items")}
    assert main(["db", "upgrade"]) == 0
    assert "already at the newest schema revision (0099)" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert "the store is up to date" in capsys.readouterr().out


def _url(project) -> str:
    return project.store_url


def _with_a_new_model() -> MetaData:
    """The models plus a table that no migration creates yet (another module's new model)."""
    metadata = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    Table("tags", metadata, Column("id", Integer, primary_key=True))
    return metadata


def test_a_table_no_migration_creates_yet_is_made_on_open(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    Store(url).engine.dispose()  # a store at the newest revision
    engine = create_engine(url)
    schema.prepare(engine, _with_a_new_model(), name="new.sqlite")
    assert "tags" in inspect(engine).get_table_names()
    assert schema.revisions(engine).up_to_date


def test_a_previous_release_store_waits_for_muses_db_upgrade_when_there_is_more(project, two_revisions, capsys):
    url = _previous_release_store(project.root / "muses.sqlite")
    with pytest.raises(schema.StoreOutOfDate, match=r"revision 0001, older than this muses \(0099\)"):
        schema.prepare(create_engine(url), _with_a_new_model(), name="old.sqlite")
    with sqlite3.connect(project.root / "muses.sqlite") as conn:  # left exactly as it was
        assert {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == {"items", "images"}
    assert main(["db", "upgrade"]) == 0
    assert "from schema revision none to 0099" in capsys.readouterr().out
    assert Store.for_project(project).get_item("DP-1").title == "Bust of a man"


def test_muses_db_upgrade_stamps_a_previous_release_store(project, capsys):
    _previous_release_store(project.root / "muses.sqlite")
    assert main(["db", "current"]) == 0
    assert "schema revision: none" in capsys.readouterr().out  # until a command opens it
    assert main(["db", "upgrade"]) == 0
    assert f"to {schema.head()}" in capsys.readouterr().out
    assert Store.for_project(project).get_item("DP-1").title == "Bust of a man"
